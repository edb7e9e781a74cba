//! Probes: the checks the keeper runs against its daemon, `ready` now and the liveness
//! check of issue 14 next. A probe never blocks the keeper's loop: a `file` check is a
//! stat(2), every other check is a process the loop waits for like any child.
//!
//! An `exec` check runs the given command with the daemon's environment, user and
//! directory; a `tcp` or `http` check runs this binary again as `dmgr __probe tcp
//! ADDRESS MS` (or `http URL MS`), which resolves, connects and, for http, reads the
//! status line with plain blocking calls, out of the loop. Each probe process gets a
//! session and process group of its own, is on the state record while it runs (so
//! that what a dead keeper left behind includes it), and its whole group is killed
//! with SIGKILL at its deadline, at `ready_timeout` and when a stop begins.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::launch::path_of;
use super::{sys, Keeper};
use crate::config::url::HttpUrl;
use crate::config::ReadyCheck;
use crate::procinfo::{ProcId, Stat};

/// How often a failing readiness probe is retried.
pub(super) const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// The longest one connection attempt of a tcp or http probe may take; a probe whose
/// deadline is nearer gets that instead.
const ATTEMPT: Duration = Duration::from_secs(1);
/// The first argument of the internal probe process.
const INTERNAL: &str = "__probe";

/// A probe process that runs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    /// The process, leader of its own process group.
    pub(super) id: ProcId,
    /// When it is killed if it has not ended.
    pub(super) deadline: Instant,
    /// Killed: its end says nothing about the daemon.
    killed: bool,
}

impl Keeper {
    /// Starts one attempt of `check`, to end by `deadline`. Returns the result when it
    /// is known at once (a `file` check, or a probe that could not be started).
    pub(super) fn start_probe(&mut self, check: &ReadyCheck, deadline: Instant) -> Option<bool> {
        let exe = Path::new("/proc/self/exe");
        let internal = |kind: &str, target: &str| -> Vec<String> {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .min(ATTEMPT);
            let ms = left.as_millis().max(1).to_string();
            ["dmgr", INTERNAL, kind, target, &ms]
                .map(str::to_string)
                .to_vec()
        };
        // tcp and http run as the keeper (the daemon's user may not reach this binary).
        // Every probe writes to the keeper's own /dev/null.
        let (program, argv, daemon_side) = match check {
            ReadyCheck::File(path) => return Some(path.exists()),
            // Never probed: `Launch::prepare` refuses them until the keeper reads them.
            ReadyCheck::Log(_) | ReadyCheck::Fd(_) => return Some(false),
            ReadyCheck::Tcp(address) => (exe.to_path_buf(), internal("tcp", address), false),
            ReadyCheck::Http(url) => (exe.to_path_buf(), internal("http", url), false),
            ReadyCheck::Exec(argv) => {
                let program = argv
                    .first()
                    .and_then(|name| sys::resolve_program(name, path_of(&self.launch.env)));
                (program?, argv.clone(), true)
            }
        };
        let env: Vec<(OsString, OsString)> = Vec::new();
        let options = if daemon_side {
            // Its output is not the daemon's: the log holds only what the daemon wrote.
            sys::SpawnOptions {
                stdout: None,
                stderr: None,
                ..self.spawn_options(&program, &argv, &self.launch.env, true)
            }
        } else {
            sys::SpawnOptions {
                program: &program,
                argv: &argv,
                env: &env,
                working_dir: Path::new("/"),
                umask: 0o022,
                credentials: None,
                stdout: None,
                stderr: None,
                new_session: true,
                keep_stdin: false,
                // The keeper's own internal check, not the daemon's process.
                resources: None,
            }
        };
        let gated = sys::spawn_gated(&self.single, &options).ok()?;
        // On record before it runs, as the daemon is: a keeper killed now leaves no
        // probe that nothing names.
        let pid = gated.pid();
        let id = ProcId {
            pid,
            start: Stat::read(pid).map_or(0, |s| s.start),
        };
        self.record.probe = Some(id);
        self.save();
        self.probe = Some(Probe {
            id,
            deadline,
            killed: false,
        });
        if gated.release().is_err() {
            // It exits by itself; its reaping clears the record.
            self.kill_probe();
            return Some(false);
        }
        None
    }

    /// Kills the running probe's process group, if a probe runs. Its group ID is
    /// pinned while the probe, our child, is unreaped.
    pub(super) fn kill_probe(&mut self) {
        if let Some(probe) = self.probe.as_mut().filter(|p| !p.killed) {
            let _ = nix::sys::signal::killpg(Pid::from_raw(probe.id.pid), Signal::SIGKILL);
            probe.killed = true;
        }
    }

    /// The child `pid` ended with `status`: if it is the probe, clears it and returns
    /// whether it passed (`None` when it was killed, or is no probe).
    pub(super) fn probe_exited(&mut self, pid: i32, status: WaitStatus) -> Option<Option<bool>> {
        let probe = self.probe.filter(|p| p.id.pid == pid)?;
        // Its group may outlive it; reaped, it no longer pins the group's ID, so what
        // is left is stopped with the rest of the daemon's tree (see `tracked`).
        self.probe = None;
        self.record.probe = None;
        self.save();
        Some((!probe.killed).then_some(matches!(status, WaitStatus::Exited(_, 0))))
    }
}

/// The internal probe process: `dmgr __probe tcp ADDRESS MS` or `dmgr __probe http URL
/// MS`. Returns its exit code (0 passed, 1 failed), or `None` for any other argv.
pub fn run_internal(args: &[OsString]) -> Option<u8> {
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
