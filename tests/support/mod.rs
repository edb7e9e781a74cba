//! The test fixture: [`TestEnv`] gives each test its own config and run directory and
//! runs the real `dmgr` binary in them. Every process the environment ever sees (keepers
//! and daemons named in state records, and anything a test registers) is remembered by
//! identity (PID plus start time) and killed, with its process group, when the
//! environment is dropped, even if the test panicked.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any single `dmgr` call may take before the test fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A process identity: PID and start time in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Proc {
    pub pid: i32,
    pub start: u64,
}

impl Proc {
    /// The identity of the live process `pid`.
    pub fn of(pid: i32) -> Option<Proc> {
        let stat = stat(pid)?;
        Some(Proc {
            pid,
            start: stat.start,
        })
    }

    /// Whether this very process is alive (a zombie is dead).
    pub fn is_alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start == self.start && s.state != 'Z' && s.state != 'X')
    }
}

/// Fields of `/proc/PID/stat`.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    pub tty_nr: i32,
    pub start: u64,
}

/// Reads `/proc/PID/stat`.
pub fn stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: f[0].chars().next()?,
        ppid: f[1].parse().ok()?,
        pgrp: f[2].parse().ok()?,
        session: f[3].parse().ok()?,
        tty_nr: f[4].parse().ok()?,
        start: f[19].parse().ok()?,
    })
}

/// Whether `pid` is alive; a zombie counts as dead (PID 1 reaps lazily here).
pub fn is_alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// Live members of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            stat(pid).is_some_and(|s| s.pgrp == pgid && s.state != 'Z' && s.state != 'X')
        })
        .collect()
}

/// Sends SIGKILL to `pid`.
pub fn sigkill(pid: i32) -> nix::Result<()> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
}

/// Live processes whose session is one of `sessions`. Sessions 0 and 1 are never
/// anyone's daemon (in a container, processes whose session leader is outside the PID
/// namespace show session 0) and match nothing.
pub fn session_members(sessions: &[i32]) -> Vec<i32> {
    let sessions: Vec<i32> = sessions.iter().copied().filter(|&s| s > 1).collect();
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            stat(pid)
                .is_some_and(|s| sessions.contains(&s.session) && s.state != 'Z' && s.state != 'X')
        })
        .collect()
}

/// Live processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            is_alive(pid)
                && fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
        })
        .collect()
}

/// Copies of a daemon whose command line contains `needle`: the live processes with it
/// whose parent lacks it. A shell daemon forks for every command it runs, and until
/// that child execs it carries the shell's command line too; it is not a copy.
pub fn copies_of(needle: &str) -> Vec<i32> {
    let marked = processes_with(needle);
    marked
        .iter()
        .copied()
        .filter(|&pid| stat(pid).is_none_or(|s| !marked.contains(&s.ppid)))
        .collect()
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

/// The path of `program` on `PATH`, or `None` (and a line saying the test is skipped
/// and why) when it is not installed.
pub fn installed(program: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        eprintln!("{test}: skipped: {program} is not installed");
    }
    found
}

/// One test's daemons.d and run directory.
pub struct TestEnv {
    dir: tempfile::TempDir,
    seen: Mutex<BTreeSet<Proc>>,
    config: PathBuf,
    run: PathBuf,
    /// The daemons' cgroups named in state records: everything in one is ours.
    cgroups: Mutex<BTreeSet<PathBuf>>,
    /// Whether keepers may use cgroups (`DMGR_NO_CGROUP` unset).
    cgroups_allowed: bool,
}

impl TestEnv {
    /// A fresh environment with an empty `daemons.d`.
    #[must_use]
    pub fn new() -> TestEnv {
        TestEnv::named(OsStr::new("daemons.d"), OsStr::new("run"))
    }

    /// A fresh environment whose config directory (created, empty) and run directory
    /// have these names, which need not be UTF-8.
    #[must_use]
    pub fn named(config: &OsStr, run: &OsStr) -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("dmgr-test-")
            .tempdir()
            .expect("tempdir");
        let (config, run) = (dir.path().join(config), dir.path().join(run));
        fs::create_dir(&config).expect("mkdir daemons.d");
        TestEnv {
            dir,
            seen: Mutex::new(BTreeSet::new()),
            config,
            run,
            cgroups: Mutex::new(BTreeSet::new()),
            cgroups_allowed: true,
        }
    }

    /// Keepers of this environment use no cgroups (`DMGR_NO_CGROUP=1`), so that only
    /// the subreaper's process tracking finds what a daemon started.
    #[must_use]
    pub fn without_cgroups(mut self) -> TestEnv {
        self.cgroups_allowed = false;
        self
    }

    /// Adds `daemons.d/NAME.toml` (builder form).
    #[must_use]
    pub fn daemon(self, name: &str, toml: &str) -> TestEnv {
        self.write(name, toml);
        self
    }

    /// Writes (or replaces) `daemons.d/NAME.toml`.
    pub fn write(&self, name: &str, toml: &str) {
        fs::write(self.config_dir().join(format!("{name}.toml")), toml).expect("write daemon file");
    }

    /// Removes `daemons.d/NAME.toml`.
    pub fn remove(&self, name: &str) {
        fs::remove_file(self.config_dir().join(format!("{name}.toml")))
            .expect("remove daemon file");
    }

    /// The temporary directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `daemons.d`.
    pub fn config_dir(&self) -> PathBuf {
        self.config.clone()
    }

    /// The run directory.
    pub fn run_dir(&self) -> PathBuf {
        self.run.clone()
    }

    /// The pidfile of `name`.
    pub fn pidfile(&self, name: &str) -> PathBuf {
        self.run_dir().join(format!("{name}.pid"))
    }

    /// Runs `dmgr ARGS` in this environment and waits for it (at most a minute).
    #[track_caller]
    pub fn dmgr(&self, args: &[&str]) -> Run {
        self.run(self.command(args), args)
    }

    /// Runs `command` (made by [`TestEnv::command`] and changed by the test), named
    /// `args` in messages, and waits for it (at most a minute).
    #[track_caller]
    pub fn run(&self, mut command: Command, args: &[&str]) -> Run {
        let child = command.spawn().expect("spawn dmgr");
        let run = Run::wait(child, args);
        self.remember();
        run
    }

    /// Runs `dmgr ARGS` in this environment with extra environment variables (and
    /// without `DMGR_SYSTEMCTL` and `DMGR_SYSTEMD_UNIT_DIR` unless given).
    #[track_caller]
    pub fn dmgr_env(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Run {
        let mut command = self.command(args);
        command
            .env_remove("DMGR_SYSTEMCTL")
            .env_remove("DMGR_SYSTEMD_UNIT_DIR");
        for (key, value) in env {
            command.env(key, value);
        }
        let run = Run::wait(command.spawn().expect("spawn dmgr"), args);
        self.remember();
        run
    }

    /// The `dmgr` command for this environment, to spawn by hand.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_in(self.config_dir().as_os_str(), args)
    }

    /// The `dmgr` command for this environment as user `uid` and group `gid`, run from
    /// a copy of the binary in this environment's directory. The checkout may sit in a
    /// directory only its owner can enter (`/root/src/dmgr`), so the binary cargo built
    /// is out of another user's reach; the copy is not. The environment's directory is
    /// opened for traversal (mode 0711) so the user can reach the copy.
    pub fn command_as(&self, uid: u32, gid: u32, args: &[&str]) -> Command {
        use std::os::unix::fs::PermissionsExt;
        let copy = self.root().join("bin/dmgr");
        if !copy.exists() {
            fs::create_dir_all(copy.parent().unwrap()).expect("mkdir bin");
            fs::copy(env!("CARGO_BIN_EXE_dmgr"), &copy).expect("copy the dmgr binary");
            fs::set_permissions(copy.parent().unwrap(), fs::Permissions::from_mode(0o755))
                .expect("chmod bin");
            fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod dmgr");
            let mode = fs::metadata(self.root())
                .expect("stat root")
                .permissions()
                .mode();
            fs::set_permissions(self.root(), fs::Permissions::from_mode(mode | 0o711))
                .expect("chmod root");
        }
        let mut command = self.command_of(&copy, self.config_dir().as_os_str(), args);
        std::os::unix::process::CommandExt::uid(&mut command, uid);
        std::os::unix::process::CommandExt::gid(&mut command, gid);
        command
    }

    /// The `dmgr` command for this environment's run directory and another config
    /// directory.
    pub fn command_in(&self, config_dir: &OsStr, args: &[&str]) -> Command {
        self.command_of(Path::new(env!("CARGO_BIN_EXE_dmgr")), config_dir, args)
    }

    fn command_of(&self, program: &Path, config_dir: &OsStr, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .arg("--config-dir")
            .arg(config_dir)
            .arg("--run-dir")
            .arg(self.run_dir())
            .args(args)
            .env_remove("DMGR_CONFIG_DIR")
            .env_remove("DMGR_RUN_DIR")
            .env_remove("DMGR_NO_CGROUP")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !self.cgroups_allowed {
            command.env("DMGR_NO_CGROUP", "1");
        }
        command
    }

    /// The state record of `name` as JSON.
    pub fn state(&self, name: &str) -> Option<Value> {
        let path = self.run_dir().join(format!("{name}.state"));
        // The keeper rewrites the record in place; retry a torn read.
        for _ in 0..100 {
            let text = fs::read_to_string(&path).ok()?;
            // The first JSON value; what follows it is the tail of an older record.
            if let Some(Ok(value)) = serde_json::Deserializer::from_str(&text)
                .into_iter::<Value>()
                .next()
            {
                return Some(value);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }

    /// Writes `record` as `name`'s state record, sealed with the checksum dmgr expects
    /// (FNV-1a of everything before the trailing `"sum"` key), so that dmgr reads it as
    /// a keeper's record rather than a torn one.
    pub fn write_state(&self, name: &str, record: &Value) {
        let mut record = record.clone();
        if let Some(object) = record.as_object_mut() {
            object.remove("sum");
        }
        let text = serde_json::to_string(&record).unwrap();
        let body = &text[..text.len() - 1];
        let sum = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        fs::create_dir_all(self.run_dir()).unwrap();
        fs::write(
            self.run_dir().join(format!("{name}.state")),
            format!("{body},\"sum\":\"{sum:016x}\"}}"),
        )
        .unwrap();
    }

    /// The daemon PID in `name`'s pidfile.
    pub fn pid(&self, name: &str) -> Option<i32> {
        fs::read_to_string(self.pidfile(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The keeper PID in `name`'s state record.
    pub fn keeper_pid(&self, name: &str) -> Option<i32> {
        self.state(name)?["keeper"]["pid"]
            .as_i64()
            .map(|p| p as i32)
    }

    /// Whether any process holds a lock on `name`'s pidfile right now.
    pub fn pidfile_is_locked(&self, name: &str) -> bool {
        let Ok(file) = fs::File::open(self.pidfile(name)) else {
            return false;
        };
        fs2::FileExt::try_lock_shared(&file).is_err()
    }

    /// `dmgr list --json`, parsed.
    #[track_caller]
    pub fn list(&self) -> Vec<Value> {
        let run = self.dmgr(&["list", "--json"]).success();
        serde_json::from_str::<Value>(&run.stdout())
            .expect("list --json is JSON")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The `list --json` entry of `name`.
    #[track_caller]
    pub fn entry(&self, name: &str) -> Value {
        self.list()
            .into_iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in list"))
    }

    /// The log of `name`.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.run_dir().join(format!("log/{name}.log"))).unwrap_or_default()
    }

    /// Runs `dmgr ARGS` (a `-f` that runs until killed) with its standard output read
    /// line by line on a thread; the process is killed when the result is dropped.
    pub fn follow(&self, args: &[&str]) -> (KillOnDrop, std::sync::mpsc::Receiver<String>) {
        use std::io::BufRead;
        let mut child = KillOnDrop(
            self.command(args)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let stdout = child.0.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        (child, rx)
    }

    /// The event history of `name` as `dmgr events NAME` prints it, all of it.
    pub fn events(&self, name: &str) -> String {
        self.dmgr(&["events", "-n", "100000", name])
            .success()
            .stdout()
    }

    /// The bytes of `daemons.d/NAME.toml`.
    pub fn file(&self, name: &str) -> Vec<u8> {
        fs::read(self.config_dir().join(format!("{name}.toml"))).unwrap_or_default()
    }

    /// Remembers `pid` to kill at the end (never PID 0 or 1).
    pub fn track(&self, pid: i32) {
        if let Some(p) = Proc::of(pid).filter(|p| p.pid > 1) {
            self.seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(p);
        }
    }

    /// Waits (at most 15 s) until `list` shows `name` running again with a PID other
    /// than `old`, as after the keeper restarted a killed daemon; returns the new PID.
    #[track_caller]
    pub fn wait_for_restart(&self, name: &str, old: i32) -> i32 {
        let mut new = None;
        wait_until(
            &format!("{name} runs again with a PID other than {old}"),
            Duration::from_secs(15),
            || {
                let entry = self.entry(name);
                new = entry["pid"].as_i64().map(|p| p as i32);
                entry["status"] == "running" && new.is_some_and(|p| p != old)
            },
        );
        new.unwrap_or_default()
    }

    /// Every cgroup a state record of this environment has named.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        self.remember();
        self.cgroups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Every process this environment has seen.
    pub fn seen(&self) -> Vec<Proc> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Records the keepers and daemons named in state records and pidfiles.
    fn remember(&self) {
        let Ok(entries) = fs::read_dir(self.run_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            // A test may plant a FIFO here; opening it would block.
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".state") {
                if let Some(state) = self.state(stem) {
                    if let Some(cgroup) = state["cgroup"].as_str() {
                        self.cgroups
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(PathBuf::from(cgroup));
                    }
                    for key in ["keeper", "daemon"] {
                        if let (Some(pid @ 2..), Some(start)) =
                            (state[key]["pid"].as_i64(), state[key]["start"].as_u64())
                        {
                            self.seen
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(Proc {
                                    pid: pid as i32,
                                    start,
                                });
                        }
                    }
                }
            } else if let Some(stem) = name.strip_suffix(".pid") {
                if let Some(pid) = self.pid(stem) {
                    self.track(pid);
                }
            }
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.remember();
        if let Ok(child) = self.command(&["stop", "--all"]).spawn() {
            let _ = Run::try_wait(child, Duration::from_secs(30));
        }
        // What is still in a daemon's cgroup dies with it, and the cgroup goes.
        let cgroups: Vec<PathBuf> = self
            .cgroups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        for cgroup in &cgroups {
            let _ = fs::write(cgroup.join("cgroup.kill"), "1");
            let deadline = Instant::now() + Duration::from_secs(5);
            while cgroup.exists() && fs::remove_dir(cgroup).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Whatever `stop` missed dies now: every live process in a session this env
        // saw (a daemon's PID is its session ID, and an ID stays allocated while any
        // member lives, so these are ours even when the leader is gone), then each
        // process by identity, with its group.
        let seen: Vec<i32> = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|p| p.pid)
            .collect();
        for pid in session_members(&seen) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for p in self.seen.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if p.is_alive() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(p.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// A finished `dmgr` call.
#[derive(Debug)]
pub struct Run {
    args: String,
    output: Output,
}

impl Run {
    fn wait(child: std::process::Child, args: &[&str]) -> Run {
        let args = args.join(" ");
        match Run::try_wait(child, CALL_TIMEOUT) {
            Some(output) => Run { args, output },
            None => panic!("dmgr {args} did not finish within {CALL_TIMEOUT:?}"),
        }
    }

    /// Waits for `child` with a deadline, reading its output; kills it past the deadline.
    pub fn try_wait(mut child: std::process::Child, timeout: Duration) -> Option<Output> {
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let out = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut buf);
            }
            buf
        });
        let err = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut buf);
            }
            buf
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Some(Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }

    /// Standard output.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Standard error.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Standard output as the bytes written.
    pub fn stdout_bytes(&self) -> &[u8] {
        &self.output.stdout
    }

    /// Asserts that standard error lacks `text`.
    #[track_caller]
    pub fn stderr_lacks(self, text: &str) -> Run {
        assert!(
            !self.stderr().contains(text),
            "dmgr {}: stderr has {text:?}:\n{}",
            self.args,
            self.stderr()
        );
        self
    }

    /// The exit code.
    pub fn exit_code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn success(self) -> Run {
        self.code(0)
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.output.status.code(),
            Some(code),
            "dmgr {} exited {:?}, expected {code}\n--- stdout\n{}--- stderr\n{}",
            self.args,
            self.output.status,
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts that standard output contains `text`.
    #[track_caller]
    pub fn stdout_has(self, text: &str) -> Run {
        assert!(
            self.stdout().contains(text),
            "dmgr {}: stdout lacks {text:?}:\n{}",
            self.args,
            self.stdout()
        );
        self
    }

    /// Asserts that standard error contains `text`.
    #[track_caller]
    pub fn stderr_has(self, text: &str) -> Run {
        assert!(
            self.stderr().contains(text),
            "dmgr {}: stderr lacks {text:?}:\n{}",
            self.args,
            self.stderr()
        );
        self
    }
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
        eprintln!("note: cannot mount a tmpfs here; skipped");
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
