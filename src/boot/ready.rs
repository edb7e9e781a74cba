//! dmgr as a sender of the notify protocol: `dmgr start --all` tells the manager that
//! started it (the boot unit, `Type=notify`) that every daemon it started is up, so
//! that a unit ordered `After=` the boot unit starts only then.
//!
//! As `systemd-notify --ready` does, it sends `READY=1` (with a `STATUS=` line saying
//! how the start went), then a `BARRIER=1` with a pipe, and waits for the manager to
//! close the pipe: the manager has then read the message, and so learns of the
//! readiness before it learns of the process's exit (a `Type=notify` service whose
//! main process exits before `READY=1` has failed).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

/// How long `start --all` waits for its manager to take in the message.
const BARRIER_WAIT: Duration = Duration::from_secs(5);

/// Tells the manager named by `NOTIFY_SOCKET`, if any, that the start is done, with
/// `status` as the unit's status line. Returns what went wrong, for a warning; a
/// manager that does not listen cannot stop the start.
pub fn tell_manager_ready(status: &str) -> Result<(), String> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let address = address_of(target.as_bytes())
        .ok_or_else(|| format!("NOTIFY_SOCKET={} is no socket address", target.display()))?;
    let socket = UnixDatagram::unbound().map_err(|e| format!("cannot make a socket: {e}"))?;
    socket
        .connect_addr(&address)
        .map_err(|e| format!("cannot reach NOTIFY_SOCKET={}: {e}", target.display()))?;
    let status: String = status.chars().filter(|c| !c.is_control()).collect();
    socket
        .send(format!("READY=1\nSTATUS={status}\n").as_bytes())
        .map_err(|e| format!("cannot send READY=1 to {}: {e}", target.display()))?;
    barrier(&socket).map_err(|e| format!("the manager did not take in READY=1: {e}"))
}

/// The address `NOTIFY_SOCKET` names: a path, or `@name` in the abstract namespace.
fn address_of(value: &[u8]) -> Option<SocketAddr> {
    match value {
        [] => None,
        [b'@', name @ ..] => SocketAddr::from_abstract_name(name).ok(),
        [b'/', ..] => SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(value)).ok(),
        _ => None,
    }
}

/// Sends `BARRIER=1` with the write end of a pipe and waits (up to [`BARRIER_WAIT`])
/// until the manager closes it, which it does once every message before is handled.
fn barrier(socket: &UnixDatagram) -> Result<(), String> {
    let (read, write) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    let fds = [write.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(b"BARRIER=1\n")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(|e| e.to_string())?;
    drop(write);
    let mut fds = [PollFd::new(read.as_fd(), PollFlags::POLLIN)];
    let timeout =
        PollTimeout::try_from(BARRIER_WAIT.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    match nix::poll::poll(&mut fds, timeout) {
        Ok(0) => Err(format!(
            "no answer within {}",
            crate::config::units::format_duration(BARRIER_WAIT)
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_names_a_path_or_an_abstract_name() {
        let path = address_of(b"/run/systemd/notify").unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let name = address_of(b"@/org/freedesktop/systemd1/notify").unwrap();
        assert_eq!(
            name.as_abstract_name(),
            Some(&b"/org/freedesktop/systemd1/notify"[..])
        );
        assert!(address_of(b"").is_none());
        assert!(address_of(b"relative/path").is_none());
    }
}
