//! The receiver against real senders: systemd's own `systemd-notify`, the `sd-notify`
//! crate (in a copy of this test binary, re-run as a child), and raw datagrams.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;
use crate::sys::{abstract_name, Datagram, NotifyAddress, NotifySocket};

/// Waits (up to 10 s) for a datagram on `socket`.
fn next(socket: &NotifySocket) -> Datagram {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        if let Some(datagram) = socket.receive(&mut buffer) {
            return datagram;
        }
        assert!(Instant::now() < deadline, "no datagram within 10 s");
        let mut fds = [nix::poll::PollFd::new(
            socket.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
    }
}

/// Receives one datagram and parses it, with its sender's PID.
fn next_notification(socket: &NotifySocket) -> (Notification, i32) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(d) = socket.receive(&mut buffer) {
            return (parse(&buffer[..d.len], d.truncated), d.pid);
        }
        assert!(Instant::now() < deadline, "no datagram within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every notification `child` sends until it exits (whose status must be success),
/// each with its sender's PID; each datagram is dropped as soon as it is read, which
/// closes what it passed, as the keeper does (systemd-notify waits on a `BARRIER=1`).
fn until_exit(socket: &NotifySocket, child: &mut std::process::Child) -> Vec<(Notification, i32)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    let mut heard = Vec::new();
    loop {
        while let Some(d) = socket.receive(&mut buffer) {
            heard.push((parse(&buffer[..d.len], d.truncated), d.pid));
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            while let Some(d) = socket.receive(&mut buffer) {
                heard.push((parse(&buffer[..d.len], d.truncated), d.pid));
            }
            return heard;
        }
        assert!(
            Instant::now() < deadline,
            "the sender did not exit within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `systemd-notify`'s path, or `None` (skipped, but a failure under CI).
fn systemd_notify() -> Option<&'static str> {
    let path = "/usr/bin/systemd-notify";
    if Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "systemd-notify is missing (.ci/run installs Debian's systemd package)"
    );
    eprintln!("skipped: systemd-notify is not installed");
    None
}

#[test]
fn systemd_notify_is_heard_with_its_credentials() {
    let Some(program) = systemd_notify() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(dir.path(), "web");
    let socket = NotifySocket::bind(&path, || unreachable!()).unwrap();
    assert_eq!(socket.address(), &NotifyAddress::Path(path.clone()));
    // Reachable by a daemon that dropped to another user: the sender check decides.
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o666);
    let mut child = Command::new(program)
        .args(["--ready", "--status=serving 3 clients"])
        .env("NOTIFY_SOCKET", socket.address().env_value())
        .spawn()
        .unwrap();
    let heard = until_exit(&socket, &mut child);
    // The message, then the barrier it waits on before it exits.
    assert_eq!(heard.len(), 2, "{heard:?}");
    let (n, pid) = heard[0].clone();
    assert!(n.ready, "{n:?}");
    assert_eq!(n.status.as_deref(), Some("serving 3 clients"));
    assert_eq!(n.malformed, 0);
    assert!(heard[1].0.barrier);
    // systemd-notify sends in the name of its parent (this test), as sd_pid_notify
    // does with `--pid` left out; the credentials are what the kernel vouches for.
    assert!(
        pid == child.id() as i32 || pid == std::process::id() as i32,
        "sender {pid}, child {}",
        child.id()
    );
    socket.remove();
    assert!(!path.exists());
}

/// A run directory whose path does not fit `sun_path` (108 bytes) gets an abstract
/// socket, which `systemd-notify` (libsystemd) reaches by its `@` name.
#[test]
fn a_path_too_long_for_a_socket_address_is_an_abstract_name() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir
        .path()
        .join("r".repeat(150 - dir.path().as_os_str().len() - 1));
    std::fs::create_dir(&long).unwrap();
    assert_eq!(long.as_os_str().len(), 150);
    let path = socket_path(&long, "web");
    let socket = NotifySocket::bind(&path, || abstract_name("web")).unwrap();
    let NotifyAddress::Abstract(name) = socket.address().clone() else {
        panic!("{:?}", socket.address());
    };
    assert!(
        name.starts_with(b"dmgr-notify-web-") && name.len() == 32,
        "{name:?}"
    );
    assert!(socket
        .address()
        .env_value()
        .to_string_lossy()
        .starts_with("@dmgr-notify-web-"));
    assert!(!path.exists());
    // Two keepers never share a name.
    assert_ne!(abstract_name("web"), abstract_name("web"));
    let Some(program) = systemd_notify() else {
        return;
    };
    let mut child = Command::new(program)
        .arg("READY=1")
        .env("NOTIFY_SOCKET", socket.address().env_value())
        .spawn()
        .unwrap();
    let heard = until_exit(&socket, &mut child);
    assert!(heard[0].0.ready, "{heard:?}");
}

/// Not a test of its own: the sender that `the_sd_notify_crate_is_heard` runs, as a
/// copy of this test binary with `DMGR_TEST_SD_NOTIFY` set.
#[test]
fn sd_notify_crate_sender() {
    if std::env::var_os("DMGR_TEST_SD_NOTIFY").is_none() {
        return;
    }
    use sd_notify::NotifyState;
    sd_notify::notify(&[
        NotifyState::Status("from the crate"),
        NotifyState::ExtendTimeoutUsec(5_000_000),
        NotifyState::MainPid(4242),
        NotifyState::Ready,
    ])
    .unwrap();
}

#[test]
fn the_sd_notify_crate_is_heard() {
    let dir = tempfile::tempdir().unwrap();
    let socket = NotifySocket::bind(&socket_path(dir.path(), "web"), || unreachable!()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "keeper::sd_notify::tests::sd_notify_crate_sender",
            "--exact",
            "--quiet",
        ])
        .env("DMGR_TEST_SD_NOTIFY", "1")
        .env("NOTIFY_SOCKET", socket.address().env_value())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let heard = until_exit(&socket, &mut child);
    assert_eq!(heard.len(), 1, "{heard:?}");
    let (n, pid) = heard[0].clone();
    assert!(n.ready);
    assert_eq!(n.status.as_deref(), Some("from the crate"));
    assert_eq!(n.extend_timeout, Some(Duration::from_secs(5)));
    assert_eq!(n.main_pid, Some(4242));
    // The crate sends no credentials; the kernel attaches them (SO_PASSCRED).
    assert_eq!(pid, child.id() as i32);
}

#[test]
fn a_datagram_longer_than_the_buffer_is_marked_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(dir.path(), "web");
    let socket = NotifySocket::bind(&path, || unreachable!()).unwrap();
    let sender = UnixDatagram::unbound().unwrap();
    let long = format!("READY=1\nSTATUS={}\n", "x".repeat(MAX_DATAGRAM));
    sender.send_to(long.as_bytes(), &path).unwrap();
    let datagram = next(&socket);
    assert!(datagram.truncated);
    assert_eq!(datagram.len, MAX_DATAGRAM);
    assert_eq!(datagram.pid, std::process::id() as i32);
    assert_eq!(datagram.uid, nix::unistd::getuid().as_raw());
    // And one that fits is not.
    sender.send_to(b"READY=1\n", &path).unwrap();
    let datagram = next(&socket);
    assert!(!datagram.truncated);
    assert_eq!(datagram.len, 8);
}

/// `BARRIER=1`: the sender passes a pipe's write end and waits for end-of-file on
/// the read end, which comes once the keeper has dropped the datagram.
#[test]
fn a_barriers_descriptor_is_closed_when_the_datagram_is_dropped() {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(dir.path(), "web");
    let socket = NotifySocket::bind(&path, || unreachable!()).unwrap();
    let (read, write) = nix::unistd::pipe().unwrap();
    let sender = UnixDatagram::unbound().unwrap();
    let fds = [write.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"BARRIER=1\n")];
    let to = UnixAddr::new(&path).unwrap();
    sendmsg(
        sender.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        Some(&to),
    )
    .unwrap();
    drop(write);
    let datagram = next(&socket);
    assert_eq!(datagram.fds.len(), 1);
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    assert!(parse(&b"BARRIER=1\n"[..], false).barrier);
    assert!(socket.receive(&mut buffer).is_none());
    // Still open in the datagram: the read end would block. Dropped: end-of-file.
    drop(datagram);
    let mut read = std::fs::File::from(read);
    let mut rest = Vec::new();
    assert_eq!(read.read_to_end(&mut rest).unwrap(), 0);
}

/// A socket file left by a killed keeper is replaced; a file that is not a socket
/// is not dmgr's to remove.
#[test]
fn a_leftover_socket_is_replaced_and_another_file_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(dir.path(), "web");
    let first = NotifySocket::bind(&path, || unreachable!()).unwrap();
    drop(first);
    assert!(path.exists());
    let second = NotifySocket::bind(&path, || unreachable!()).unwrap();
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"READY=1\n", &path)
        .unwrap();
    assert!(next_notification(&second).0.ready);
    second.remove();
    std::fs::write(&path, "mine").unwrap();
    let err = NotifySocket::bind(&path, || unreachable!()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
}
