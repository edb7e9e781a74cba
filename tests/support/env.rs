//! [`TestEnv`]: one test's daemons.d and run directory, and the `dmgr` commands that
//! run in them.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::{wait_until, KillOnDrop, ProcId, Run};

/// One test's daemons.d and run directory.
pub struct TestEnv {
    dir: tempfile::TempDir,
    /// Every process identity this environment has seen, each once.
    pub(super) seen: Mutex<Vec<ProcId>>,
    config: PathBuf,
    run: PathBuf,
    /// The daemons' cgroups named in state records: everything in one is ours.
    pub(super) cgroups: Mutex<BTreeSet<PathBuf>>,
    /// Whether keepers may use cgroups (`DMGR_NO_CGROUP` unset).
    cgroups_allowed: bool,
    /// The process whose mount namespace `dmgr` runs in (through `nsenter`), if not ours.
    namespace: Option<ProcId>,
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
            seen: Mutex::new(Vec::new()),
            config,
            run,
            cgroups: Mutex::new(BTreeSet::new()),
            cgroups_allowed: true,
            namespace: None,
        }
    }

    /// Keepers of this environment use no cgroups (`DMGR_NO_CGROUP=1`), so that only
    /// the subreaper's process tracking finds what a daemon started.
    #[must_use]
    pub fn without_cgroups(mut self) -> TestEnv {
        self.cgroups_allowed = false;
        self
    }

    /// `dmgr` runs, and so starts its keepers, in the mount namespace of the process
    /// `pid` (a [`PrivateTmpfs`](super::PrivateTmpfs)'s), through `nsenter`.
    #[must_use]
    pub fn in_namespace_of(mut self, pid: i32) -> TestEnv {
        self.namespace = super::procfs::stat(pid).map(|s| ProcId {
            pid,
            start: s.start,
        });
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
        // Once the namespace's holder is gone (a test that panicked drops it first),
        // `dmgr` runs in ours: what it must reach (the run directory, the processes)
        // is the same from both; only the namespace's own mounts are not.
        let namespace = self.namespace.filter(|p| {
            super::procfs::stat(p.pid).is_some_and(|s| s.start == p.start && !s.is_dead())
        });
        let mut command = match namespace.map(|p| p.pid) {
            None => Command::new(program),
            Some(pid) => {
                let mut nsenter = Command::new("nsenter");
                nsenter
                    .args(["-t", &pid.to_string(), "-m", "--"])
                    .arg(program);
                nsenter
            }
        };
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
        let mut child = KillOnDrop(self.command(args).stdout(Stdio::piped()).spawn().unwrap());
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
}
