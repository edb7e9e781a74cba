//! The probe process, `dmgr __probe tcp ADDRESS MS` or `dmgr __probe http URL MS`: a
//! process of its own that a keeper starts for a tcp or http check (see
//! `keeper::probe`), so that the resolve, the connect and the read of the status line
//! block it and never the keeper's loop. Its exit status is the answer.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config::url::HttpUrl;

/// The longest one connection attempt of a tcp or http probe may take; a probe whose
/// deadline is nearer gets that instead.
pub(crate) const ATTEMPT: Duration = Duration::from_secs(1);
/// The first argument of the internal probe process.
pub(crate) const INTERNAL: &str = "__probe";

/// The internal probe process: `dmgr __probe tcp ADDRESS MS` or `dmgr __probe http URL
/// MS`. Returns its exit code (0 passed, 1 failed), or `None` for any other argv.
pub(crate) fn run_internal(args: &[OsString]) -> Option<u8> {
    let [_, first, kind, target, ms] = args else {
        return None;
    };
    if first.to_str() != Some(INTERNAL) {
        return None;
    }
    let timeout = Duration::from_millis(ms.to_str()?.parse().ok()?);
    let passed = match (kind.to_str()?, target.to_str()?) {
        ("tcp", address) => connect(address, timeout).is_some(),
        ("http", url) => HttpUrl::parse(url).is_ok_and(|url| http_passes(&url, timeout)),
        _ => return None,
    };
    Some(u8::from(!passed))
}

/// A connection to any address `address` resolves to, within `timeout` each.
fn connect(address: &str, timeout: Duration) -> Option<TcpStream> {
    address
        .to_socket_addrs()
        .ok()?
        .find_map(|a| TcpStream::connect_timeout(&a, timeout).ok())
}

/// Returns true if and only if a GET of `url` answers with a 2xx or 3xx status.
fn http_passes(url: &HttpUrl, timeout: Duration) -> bool {
    let Some(mut stream) = connect(&url.address(), timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let host = match url.port {
        80 => url.host.clone(),
        port => format!("{}:{port}", url.host),
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: dmgr-probe\r\nConnection: close\r\n\r\n",
        url.path
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    status_passes(&head)
}

/// Returns true if and only if `head` starts with an HTTP status line of 2xx or 3xx.
fn status_passes(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let version = words.next().unwrap_or_default();
    let code = words
        .next()
        .and_then(|c| std::str::from_utf8(c).ok()?.trim().parse::<u16>().ok());
    version.starts_with(b"HTTP/") && code.is_some_and(|c| (200..400).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_and_three_hundreds_pass() {
        assert!(status_passes(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_passes(b"HTTP/1.0 302 Found\r\nLocation: /\r\n"));
        assert!(!status_passes(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(!status_passes(b"HTTP/1.1 503 Busy\r\n"));
        assert!(!status_passes(b"SSH-2.0-OpenSSH\r\n"));
        assert!(!status_passes(b""));
    }

    #[test]
    fn the_internal_argv_is_recognised_and_nothing_else() {
        let argv = |s: &str| s.split(' ').map(OsString::from).collect::<Vec<_>>();
        assert_eq!(run_internal(&argv("dmgr __probe udp x 5")), None);
        assert_eq!(run_internal(&argv("dmgr start web")), None);
        assert_eq!(run_internal(&argv("dmgr __probe tcp 127.0.0.1:1 x")), None);
        // Port 1 on loopback refuses at once.
        assert_eq!(
            run_internal(&argv("dmgr __probe tcp 127.0.0.1:1 500")),
            Some(1)
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        assert_eq!(
            run_internal(&argv(&format!("dmgr __probe tcp {address} 500"))),
            Some(0)
        );
    }
}
