//! Issue 26: the notify protocol. dmgr as a sender: `start --all` tells the manager
//! above it (the boot unit, `Type=notify`) when every daemon it started is up.

use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::TestEnv;

/// A manager's notify socket at `path`: every datagram it receives, as text, on the
/// channel (a passed descriptor is closed by the kernel as the datagram is read, which
/// answers a `BARRIER=1`).
fn manager_socket(path: &std::path::Path) -> mpsc::Receiver<String> {
    let socket = UnixDatagram::bind(path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buffer) {
            if tx
                .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

/// `start --all` sends READY=1, with a status line, once every daemon it started is
/// up (its own output says so first), then waits on a barrier; a named start sends
/// nothing, and neither does a start with no NOTIFY_SOCKET.
#[test]
fn start_all_tells_its_manager_ready_once_every_daemon_is_up() {
    let env = TestEnv::new()
        .daemon("web", "command = \"sleep 100\"\nstart_wait = \"300ms\"\n")
        .daemon("db", "command = \"sleep 100\"\nstart_wait = \"100ms\"\n")
        .daemon("broken", "command = \"/nonexistent/program\"\n");
    let path = env.root().join("manager.notify");
    let heard = manager_socket(&path);
    env.dmgr_env(&["start", "web"], &[("NOTIFY_SOCKET", path.as_os_str())])
        .success();
    assert!(heard.recv_timeout(Duration::from_millis(200)).is_err());
    env.dmgr(&["stop", "web"]).success();

    let run = env
        .dmgr_env(&["start", "--all"], &[("NOTIFY_SOCKET", path.as_os_str())])
        .code(1);
    assert!(run.stdout().contains("web: started") && run.stdout().contains("db: started"));
    let ready = heard.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        ready,
        "READY=1\nSTATUS=2 daemons up, 1 failed to start (`dmgr list` says which)\n"
    );
    assert_eq!(
        heard.recv_timeout(Duration::from_secs(5)).unwrap(),
        "BARRIER=1\n"
    );
    // The barrier was answered: no warning that the manager did not listen.
    assert!(!run.stderr().contains("warning"), "{}", run.stderr());
}

/// A NOTIFY_SOCKET nobody listens on is a warning, never a failed start.
#[test]
fn a_manager_that_does_not_listen_is_a_warning() {
    let env = TestEnv::new().daemon("web", "command = \"sleep 100\"\nstart_wait = \"50ms\"\n");
    let path = env.root().join("nobody.notify");
    env.dmgr_env(&["start", "--all"], &[("NOTIFY_SOCKET", path.as_os_str())])
        .success()
        .stdout_has("web: started")
        .stderr_has("dmgr: warning: cannot reach NOTIFY_SOCKET=");
}
