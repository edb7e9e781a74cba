//! `dmgr metrics --serve ADDR`: a minimal HTTP/1.1 server that answers `GET /metrics`
//! (and `HEAD`) with the exposition, made afresh for each request, and nothing else:
//! any other path is 404, any other method 405. One connection at a time, on one
//! thread, so that it can run as an ordinary dmgr daemon with nothing to tune: a
//! request head may be at most [`MAX_HEAD`] bytes (a longer one is refused, 414 or
//! 431, without being read further), and must arrive within [`TIMEOUT`] (else 408),
//! so a slow or hostile client holds the server up for at most that long. Every
//! response closes the connection.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The most bytes of a request head (request line and headers) that are read.
pub(crate) const MAX_HEAD: usize = 8192;
/// How long a client has to send its request head, and each write of the answer.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `GET /metrics`, or `HEAD` (`head_only`).
    Metrics { head_only: bool },
    /// Another path.
    NotFound,
    /// Another method on `/metrics`.
    MethodNotAllowed,
    /// Not an HTTP/1 request line.
    BadRequest,
}

/// How reading a request head ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// The head is the first `len` bytes, up to its blank line.
    Complete(usize),
    /// [`MAX_HEAD`] bytes came without the blank line.
    TooLong,
    /// [`TIMEOUT`] passed first.
    TimedOut,
    /// The client closed or the connection failed.
    Gone,
}

/// Serves forever; `render` makes the exposition for each `GET /metrics`.
pub(crate) fn serve(listener: &TcpListener, mut render: impl FnMut() -> crate::Result<String>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => answer(stream, &mut render),
            // Out of descriptors or memory, or a connection aborted before it was
            // taken: wait a little rather than spin, and go on.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Reads one request from `stream` and answers it.
fn answer(mut stream: TcpStream, render: &mut impl FnMut() -> crate::Result<String>) {
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    let mut buf = [0u8; MAX_HEAD];
    let response = match read_head(&mut stream, &mut buf) {
        Head::Gone => return,
        Head::TimedOut => plain(
            408,
            "Request Timeout",
            "request head not received in time\n",
        ),
        Head::TooLong if !buf.contains(&b'\n') => plain(
            414,
            "URI Too Long",
            &format!("request line longer than {MAX_HEAD} bytes\n"),
        ),
        Head::TooLong => plain(
            431,
            "Request Header Fields Too Large",
            &format!("request head longer than {MAX_HEAD} bytes\n"),
        ),
        Head::Complete(len) => match route(&buf[..len]) {
            Route::Metrics { head_only } => match render() {
                Ok(body) => {
                    let mut response = head(200, "OK", super::CONTENT_TYPE, body.len(), &[]);
                    if !head_only {
                        response.extend_from_slice(body.as_bytes());
                    }
                    response
                }
                Err(err) => plain(500, "Internal Server Error", &format!("dmgr: {err}\n")),
            },
            Route::NotFound => plain(404, "Not Found", "dmgr serves /metrics only\n"),
            Route::MethodNotAllowed => {
                let text = "use GET or HEAD\n";
                let mut response = head(
                    405,
                    "Method Not Allowed",
                    "text/plain; charset=utf-8",
                    text.len(),
                    &["Allow: GET, HEAD"],
                );
                response.extend_from_slice(text.as_bytes());
                response
            }
            Route::BadRequest => plain(400, "Bad Request", "not an HTTP/1 request\n"),
        },
    };
    let _ = stream.write_all(&response);
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// Reads into `buf` until the blank line that ends a request head, `buf` is full, or
/// [`TIMEOUT`] has passed since the first byte was awaited.
fn read_head(stream: &mut TcpStream, buf: &mut [u8; MAX_HEAD]) -> Head {
    let deadline = Instant::now() + TIMEOUT;
    let mut len = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Head::TimedOut;
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Head::Gone,
            Ok(n) => {
                // The blank line may straddle two reads: look back three bytes.
                let from = len.saturating_sub(3);
                len += n;
                if let Some(end) = head_end(&buf[from..len]) {
                    return Head::Complete(from + end);
                }
                if len == MAX_HEAD {
                    return Head::TooLong;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Head::TimedOut
            }
            Err(_) => return Head::Gone,
        }
    }
}

/// Where the head in `bytes` ends: after `\r\n\r\n`, or `\n\n` (which RFC 9112 lets a
/// server accept).
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What the request head `head` asks for.
fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with(b"HTTP/1.") || method.is_empty() || !target.starts_with(b"/") {
        return Route::BadRequest;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => Route::Metrics { head_only: false },
        (b"HEAD", b"/metrics") => Route::Metrics { head_only: true },
        (_, b"/metrics") => Route::MethodNotAllowed,
        _ => Route::NotFound,
    }
}

/// A status line and headers for a body of `len` bytes.
fn head(code: u16, reason: &str, content_type: &str, len: usize, extra: &[&str]) -> Vec<u8> {
    let mut text = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: close\r\n"
    );
    for line in extra {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// A whole response with a plain-text body.
fn plain(code: u16, reason: &str, body: &str) -> Vec<u8> {
    let mut response = head(code, reason, "text/plain; charset=utf-8", body.len(), &[]);
    response.extend_from_slice(body.as_bytes());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_and_head_of_metrics_are_answered() {
        let r = |line: &str| route(format!("{line}\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(
            r("GET /metrics HTTP/1.1"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            r("GET /metrics?name[]=x HTTP/1.0"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            r("HEAD /metrics HTTP/1.1"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(r("GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(r("GET /metrics/ HTTP/1.1"), Route::NotFound);
        assert_eq!(r("POST /metrics HTTP/1.1"), Route::MethodNotAllowed);
        assert_eq!(r("GET /metrics"), Route::BadRequest);
        assert_eq!(r("GET /metrics HTTP/2"), Route::BadRequest);
        assert_eq!(r("GET  /metrics HTTP/1.1"), Route::BadRequest);
        assert_eq!(r("GET metrics HTTP/1.1"), Route::BadRequest);
    }

    #[test]
    fn a_head_ends_at_its_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }
}
