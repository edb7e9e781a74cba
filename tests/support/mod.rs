//! The test fixture: [`TestEnv`] gives each test its own config and run directory and
//! runs the real `dmgr` binary in them. Every process the environment ever sees (keepers
//! and daemons named in state records, and anything a test registers) is remembered by
//! identity (PID plus start time) and killed, with its process group, when the
//! environment is dropped, even if the test panicked.
#![allow(dead_code)]

mod cleanup;
mod env;
mod namespace;
mod ports;
pub mod procfs;
mod record;
mod run;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use env::TestEnv;
pub use namespace::{in_private_mount_namespace, PrivateTmpfs};
pub use ports::{ephemeral_range, free_port, free_port_decade, Port};
pub use procfs::{
    copies_of, environ, group_members, is_alive, processes_with, session_members, stat, ProcId,
};
pub use run::Run;

/// Sends SIGKILL to `pid`.
pub fn sigkill(pid: i32) -> nix::Result<()> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
}

/// Polls `condition` every 10 ms until it holds; panics with `what` after `timeout`.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A unique marker for command lines, so a test can count its own processes.
pub fn marker(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "dmgr-test-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A number of seconds for `sleep` that no other process on the machine uses, so a
/// test can count the sleeps it started: `BASE.<pid><counter>`.
pub fn unique_seconds(base: u32) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{base}.{}{:03}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A daemon that sleeps, with a unique marker in its command line (the shell stays,
/// as `$0`, so the marker does too).
pub fn sleeper(mark: &str) -> String {
    format!(
        "command = [\"sh\", \"-c\", \"sleep 1000; true\", \"{mark}\"]\nstart_wait = \"100ms\"\n"
    )
}

/// An environment with daemon `name` running `sleep 1000`, its description a unique
/// marker (returned too).
pub fn sleeper_env(name: &str) -> (TestEnv, String) {
    let mark = marker(name);
    let env = TestEnv::new().daemon(
        name,
        &format!(
            "command = [\"sleep\", \"1000\"]\nstart_wait = \"100ms\"\ndescription = \"{mark}\"\n"
        ),
    );
    (env, mark)
}

/// The path of `program` on `PATH`, or `None` (and a line saying the test is skipped
/// and why) when it is not installed. Where `CI` is set, a missing program fails the
/// test instead: `.ci/run` installs every program a test needs.
#[track_caller]
pub fn installed(program: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: {program} is not installed, and CI is set: .ci/run installs it"
        );
        eprintln!("{test}: skipped: {program} is not installed");
    }
    found
}

/// The path of `program` as [`installed`] finds it, for a test that `.ci/run` installs
/// the program for: where it is missing the test says it is skipped and passes, but
/// under CI (the `CI` variable set) it fails, so that a missing install step is seen.
#[track_caller]
pub fn required(program: &str, test: &str) -> Option<PathBuf> {
    let found = installed(program, test);
    if found.is_none() && std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{test}: {program} is not installed, and CI must run this test (see .ci/run)");
    }
    found
}

/// Says that `test` is skipped because `why`, and lets it pass; where `CI` is set
/// (`.ci/run`, which runs as root with every program installed) a skip fails the test
/// instead, so that a test CI must run cannot pass without running.
#[track_caller]
pub fn skip(test: &str, why: &str) {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    assert!(!ci, "{test}: cannot run, and CI is set: {why}");
    eprintln!("{test}: skipped: {why}");
}

/// A tmpfs mounted at `dir` with mount `options` (`"size=16k,mode=0755"`), unmounted
/// when the guard goes; `None` where it cannot be mounted (not root, no `mount`), and
/// the test says it skipped.
pub fn mount_tmpfs(dir: &Path, options: &str) -> Option<Unmount> {
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        skip(&dir.display().to_string(), "cannot mount a tmpfs here");
        return None;
    }
    Some(Unmount(dir.to_path_buf()))
}

/// A mounted file system, lazily unmounted on drop.
pub struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A child process that is killed and reaped when the guard goes, even if the test
/// panicked first (for processes such as `dmgr logs -f` that never end by themselves).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A file whose presence holds a test's daemon where it is (unready, or not yet
/// writing its pidfile: its command waits while the file exists), so that the test
/// acts in that window however slowly the machine runs; removed when dropped.
pub struct Hold(PathBuf);

impl Hold {
    /// Creates `path`.
    pub fn new(path: PathBuf) -> Hold {
        std::fs::write(&path, b"").unwrap();
        Hold(path)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
