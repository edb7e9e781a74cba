//! Issue 24: what dmgr hands to systemd, proven on a real systemd host. A Debian 12
//! root booted with systemd 252 by systemd-nspawn (`tests/systemd-host`, on a pure
//! cgroup v2 hierarchy), the freshly built binary installed in it, and each exported
//! unit's behaviour checked against dmgr's on the same definitions:
//!
//! - a forking unit's `systemctl stop` runs the daemon's own shutdown, 20 times in a
//!   row, as `dmgr stop` does;
//! - the daemon's environment under systemd is the one dmgr gives it, for `env`, an
//!   `env_file` with `export` and quotes, and a name set in both;
//! - stop signal, reload and logs: the same lines in the same log;
//! - a `user = "nobody"` unit leaves the shared log directory's owner unchanged;
//! - the boot unit and the exported target both enabled: one copy of each daemon
//!   after a reboot, and hand-over both ways; with the boot unit alone, every daemon
//!   back after a reboot, `Delegate=yes`, each daemon in a cgroup of its own below
//!   the unit (as `systemd-cgls` shows), no variable of the unit in a daemon, and
//!   `boot status` warning of a stale `TimeoutStartSec=`;
//! - issue 26: the boot unit is `Type=notify`, and a unit ordered `After=` it starts
//!   only once every daemon is ready (`start --all` sends `READY=1` then).
//!
//! The host is booted once for the whole suite. It runs where `DMGR_SYSTEMD_HOST=1`
//! or `CI` is set (`.ci/run` runs it on its own, with its output); elsewhere it says
//! it skipped, as `cargo test` on a shared machine should not boot a container. It
//! skips, saying why, where the host cannot be built (no root, no network to Debian's
//! packages), and fails then where `CI` is set. Runs of it on one machine take turns
//! (a lock beside the host's root).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The variable that asks for the suite outside CI.
const RUN_VAR: &str = "DMGR_SYSTEMD_HOST";

/// The handed-off config directory of the export checks, and its run directory.
const HANDOFF: &str = "/srv/handoff/daemons.d";
/// `dmgr` for [`HANDOFF`].
const D: &str = "dmgr -c /srv/handoff/daemons.d --run-dir /srv/handoff/run";

#[test]
fn systemd_host_suite() {
    let Some(host) = Host::up() else {
        return;
    };
    let began = Instant::now();
    host.install();
    let step = |what: &str, check: &dyn Fn(&Host)| {
        let at = Instant::now();
        check(&host);
        eprintln!(
            "systemd host: ok: {what} ({:.1}s)",
            at.elapsed().as_secs_f64()
        );
    };
    step(
        "a forking unit's systemctl stop runs the daemon's own shutdown, 20 times in a row",
        &forking_unit_stops_gracefully,
    );
    step(
        "the environment under systemd equals the environment under dmgr",
        &environment_is_the_same,
    );
    step(
        "stop signal, reload and logs under systemd as under dmgr",
        &signals_reload_and_logs_are_the_same,
    );
    step(
        "a user = nobody unit leaves the shared log directory's owner unchanged",
        &a_nobody_unit_leaves_the_shared_log_directory_alone,
    );
    step(
        "boot unit and exported target both enabled: one copy of each daemon after a reboot",
        &one_copy_with_both_enabled,
    );
    step(
        "boot unit: every daemon after a reboot, Delegate=yes, a cgroup each, stale TimeoutStartSec= noticed",
        &boot_unit_delegates_and_notices_stale_timeouts,
    );
    step(
        "boot unit Type=notify: a unit After= it starts only once every daemon is ready",
        &a_unit_after_the_boot_unit_starts_once_every_daemon_is_ready,
    );
    step(
        "instances as a template whose copies run, and a schedule's timer that fires",
        &templates_run_and_timers_fire,
    );
    eprintln!(
        "systemd host: suite passed in {:.1}s",
        began.elapsed().as_secs_f64()
    );
}

/// The systemd host, booted for this suite and powered off when dropped.
struct Host {
    tool: PathBuf,
    _lock: File,
}

impl Host {
    /// Builds and boots the host, or says why it cannot (and fails under CI).
    fn up() -> Option<Host> {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        let asked = std::env::var(RUN_VAR).is_ok_and(|v| v == "1");
        if !ci && !asked {
            eprintln!("skipped: the systemd host suite boots a container; set {RUN_VAR}=1 to run it (.ci/run does)");
            return None;
        }
        let skip = |why: String| -> Option<Host> {
            assert!(!ci, "the systemd host suite could not run: {why}");
            eprintln!("skipped: the systemd host suite: {why}");
            None
        };
        if !nix::unistd::geteuid().is_root() {
            return skip("it needs root (systemd-nspawn, debootstrap)".into());
        }
        let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/systemd-host");
        let root = std::env::var_os("SYSTEMD_HOST_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp/systemd-host/root"));
        let state = root.parent().unwrap_or(Path::new("/var/tmp")).to_path_buf();
        if let Err(e) = std::fs::create_dir_all(&state) {
            return skip(format!("cannot create {}: {e}", state.display()));
        }
        let lock = match File::create(state.join("dmgr-suite.lock")) {
            Ok(lock) => lock,
            Err(e) => return skip(format!("cannot create its lock: {e}")),
        };
        // Another run of the suite on this machine goes first.
        if let Err(e) = fs2::FileExt::lock_exclusive(&lock) {
            return skip(format!("cannot take its lock: {e}"));
        }
        let at = Instant::now();
        let built = run(Command::new(&tool).arg("build"));
        if !built.status.success() {
            return skip(format!(
                "`systemd-host build` failed (no network to Debian's packages?): {}",
                text(&built.stderr).trim()
            ));
        }
        let host = Host { tool, _lock: lock };
        // A host left up by an earlier run starts afresh.
        let _ = run(Command::new(&host.tool).arg("down"));
        if let Err(why) = host.boot() {
            return skip(why);
        }
        eprintln!(
            "systemd host: built and booted in {:.1}s",
            at.elapsed().as_secs_f64()
        );
        Some(host)
    }

    /// Boots the host on a pure cgroup v2 hierarchy, as a Debian 12 machine has.
    fn boot(&self) -> Result<(), String> {
        let out = run(Command::new(&self.tool)
            .arg("boot")
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1"));
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`systemd-host boot` failed: {}",
                text(&out.stderr).trim()
            ))
        }
    }

    /// Powers the host off and boots it again.
    fn reboot(&self) {
        let down = run(Command::new(&self.tool).arg("down"));
        assert!(down.status.success(), "down: {down:?}");
        self.boot().unwrap();
    }

    /// Runs `script` in bash inside the host, as root outside any session.
    fn sh(&self, script: &str) -> Output {
        run(Command::new(&self.tool)
            .args(["exec", "bash", "-c"])
            .arg(format!("set -o pipefail; {script}")))
    }

    /// Runs `script` inside the host and returns its standard output; panics, with
    /// both outputs, when it fails.
    #[track_caller]
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the systemd host, `{script}` failed ({}):\n--- stdout\n{}--- stderr\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Copies `src` to `dest` inside the host.
    fn put(&self, src: &Path, dest: &str) {
        let out = run(Command::new(&self.tool).arg("put").arg(src).arg(dest));
        assert!(out.status.success(), "put {}: {out:?}", src.display());
    }

    /// Writes `text` to `dest` inside the host.
    fn write(&self, dest: &str, text: &str) {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), text).unwrap();
        self.put(tmp.path(), dest);
        self.ok(&format!("chmod 644 {dest}"));
    }

    /// Installs the binary under test and the example daemon, on a clean slate.
    fn install(&self) {
        self.ok(
            "for u in $(systemctl list-units --all --plain --no-legend 'dmgr*' | awk '{print $1}'); do systemctl stop \"$u\"; done; \
             systemctl disable dmgr.service dmgr.target >/dev/null 2>&1 || true; \
             rm -rf /etc/systemd/system/dmgr* /etc/systemd/system/multi-user.target.wants/dmgr* \
                    /etc/dmgr /srv/jobs /srv/handoff /etc/handoff /var/log/dmgr /var/log/handoff-* /run/dmgr /run/handoff-* /run/boot-*; \
             systemctl daemon-reload; systemctl reset-failed",
        );
        // DMGR_SYSTEMD_HOST_BINARY runs the suite against another build (to see it fail
        // against one without a fix).
        let binary = std::env::var_os("DMGR_SYSTEMD_HOST_BINARY")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dmgr")));
        self.put(&binary, "/usr/local/bin/dmgr");
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/classic_daemon.py");
        self.put(&example, "/opt/dmgr-test/classic_daemon.py");
        self.ok("chmod 755 /usr/local/bin/dmgr /opt/dmgr-test/classic_daemon.py; mkdir -p /srv/handoff/daemons.d /etc/dmgr/daemons.d /etc/handoff");
    }

    /// Exports the [`HANDOFF`] directory into the system's unit directory.
    fn export_handoff(&self) {
        self.ok(&format!(
            "{D} export systemd --all -o /etc/systemd/system >/dev/null && systemctl daemon-reload"
        ));
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = run(Command::new(&self.tool).arg("down"));
    }
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run the systemd-host tool")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The unit `export systemd` gives daemon `name` of [`HANDOFF`].
fn handoff_unit(name: &str) -> String {
    format!(
        "{}-{name}.service",
        dmgr::boot::unit_prefix(Path::new(HANDOFF), false)
    )
}

/// `unit` quoted for bash (escaped unit names hold backslashes).
fn q(unit: &str) -> String {
    format!("'{unit}'")
}

/// Finding 1: the textbook double-fork daemon is stopped with its own shutdown (the
/// line its atexit handler prints) by dmgr once and by systemd 20 times in a row,
/// and systemd never SIGKILLs it nor calls it "not our child".
fn forking_unit_stops_gracefully(host: &Host) {
    host.write(
        "/srv/handoff/daemons.d/classic.toml",
        r#"command = ["/opt/dmgr-test/classic_daemon.py", "--pidfile", "/run/handoff-classic.pid", "--log", "/var/log/handoff-classic.out", "--interval", "0.2"]
type = "forking"
pidfile = "/run/handoff-classic.pid"
"#,
    );
    host.ok(&format!("{D} start classic && {D} stop classic"));
    host.export_handoff();
    let unit = q(&handoff_unit("classic"));
    // reset-failed: the daemon exits 1 on SIGTERM (the unit is then `failed`), and
    // each manual start counts against StartLimitBurst=, which max_restarts sets.
    host.ok(&format!(
        "for i in $(seq 1 20); do systemctl reset-failed {unit} 2>/dev/null; systemctl start {unit} && systemctl stop {unit} || exit 1; done"
    ));
    let out = host.ok("cat /var/log/handoff-classic.out");
    let started = out.matches("Daemon started with pid").count();
    let stopped = out.matches("Daemon stopped with pid").count();
    assert_eq!(
        (started, stopped),
        (21, 21),
        "every start (1 by dmgr, 20 by systemd) should end in the daemon's own shutdown:\n{out}"
    );
    let journal = host.ok(&format!("journalctl -b -u {unit} --no-pager -o cat"));
    assert!(
        !journal.contains("SIGKILL") && !journal.contains("not our child"),
        "{journal}"
    );
}

/// Findings 2 and 3: `env`, an `env_file` with `export` and quotes, and a name set in
/// both give the same environment under systemd as under dmgr (dmgr run with the
/// environment systemd gives a service, and systemd's own three variables aside).
fn environment_is_the_same(host: &Host) {
    host.write(
        "/etc/handoff/envd.env",
        "# a comment\nexport EXPORTED=value1\nQUOTED=\"two words with \\\"quotes\\\"\"\nSINGLE='a $b \"c\"'\nFROM_ENV=file-loses\n",
    );
    host.write(
        "/srv/handoff/daemons.d/envd.toml",
        r#"command = ["/bin/sh", "-c", "env | sort > /run/handoff-env.tmp && mv /run/handoff-env.tmp /run/handoff-env; exec sleep 1000"]
env_file = "/etc/handoff/envd.env"
env = { FROM_ENV = "env-wins", ONLY_ENV = "a b" }
"#,
    );
    let read = "for i in $(seq 1 100); do [ -s /run/handoff-env ] && break; sleep 0.05; done; cat /run/handoff-env; rm -f /run/handoff-env";
    let under_dmgr = host.ok(&format!(
        "env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 {D} start envd >/dev/null && {read} && {D} stop envd >/dev/null"
    ));
    host.export_handoff();
    let unit = q(&handoff_unit("envd"));
    let under_systemd = host.ok(&format!(
        "systemctl start {unit} && {read} && systemctl stop {unit}"
    ));
    let own = ["INVOCATION_ID=", "JOURNAL_STREAM=", "SYSTEMD_EXEC_PID="];
    let lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !own.iter().any(|o| l.starts_with(o)))
            .map(str::to_string)
            .collect()
    };
    for expected in [
        "EXPORTED=value1",
        "FROM_ENV=env-wins",
        "ONLY_ENV=a b",
        "QUOTED=two words with \"quotes\"",
        "SINGLE=a $b \"c\"",
    ] {
        assert!(
            lines(&under_dmgr).iter().any(|l| l == expected),
            "{expected} not under dmgr:\n{under_dmgr}"
        );
    }
    assert_eq!(lines(&under_systemd), lines(&under_dmgr));
}

/// Stop signal and grace, reload and logs: the daemon writes the same lines into
/// the same log under both, and a stop by its own signal leaves the unit inactive.
fn signals_reload_and_logs_are_the_same(host: &Host) {
    host.write(
        "/srv/handoff/daemons.d/sigd.toml",
        r#"command = ["/bin/sh", "-c", "echo up; trap 'echo got-HUP' HUP; trap 'echo got-INT; exit 0' INT; while :; do sleep 0.1; done"]
stop_signal = "INT"
reload_signal = "HUP"
log = "/var/log/handoff-sigd.log"
"#,
    );
    let wait_for = |what: &str| {
        format!("for i in $(seq 1 100); do [ \"$(grep -c {what} /var/log/handoff-sigd.log)\" = \"$n\" ] && break; sleep 0.05; done")
    };
    host.ok(&format!(
        "n=1; {D} start sigd && {D} reload sigd && {} && {D} stop sigd",
        wait_for("got-HUP")
    ));
    let under_dmgr = host.ok("cat /var/log/handoff-sigd.log");
    assert_eq!(under_dmgr, "up\ngot-HUP\ngot-INT\n");
    host.export_handoff();
    let unit = q(&handoff_unit("sigd"));
    host.ok(&format!(
        "n=2; systemctl start {unit} && {} && systemctl reload {unit} && {} && systemctl stop {unit}",
        wait_for("up"),
        wait_for("got-HUP")
    ));
    let both = host.ok("cat /var/log/handoff-sigd.log");
    assert_eq!(both, format!("{under_dmgr}{under_dmgr}"));
    let state = host.sh(&format!("systemctl is-failed {unit}"));
    assert_eq!(text(&state.stdout).trim(), "inactive");
}

/// Finding 4: an exported `user = "nobody"` unit appends to the shared log directory
/// as root, as dmgr's keeper does: the directory and every log in it stay root's,
/// and the next `dmgr start` of a root daemon logging there works.
fn a_nobody_unit_leaves_the_shared_log_directory_alone(host: &Host) {
    host.write(
        "/srv/handoff/daemons.d/rootd.toml",
        "command = \"sleep 1002\"\nlog = \"/var/log/dmgr/rootd.log\"\n",
    );
    host.write(
        "/srv/handoff/daemons.d/nobodyd.toml",
        "command = [\"/bin/sh\", \"-c\", \"echo hello from $(id -un); exec sleep 1003\"]\nuser = \"nobody\"\nlog = \"/var/log/dmgr/nobodyd.log\"\n",
    );
    host.ok(&format!("{D} start rootd && {D} stop rootd"));
    let owners = "stat -c '%U:%G %n' /var/log/dmgr /var/log/dmgr/*";
    let before = host.ok(owners);
    host.export_handoff();
    let unit = q(&handoff_unit("nobodyd"));
    host.ok(&format!("systemctl start {unit} && for i in $(seq 1 100); do grep -q hello /var/log/dmgr/nobodyd.log 2>/dev/null && break; sleep 0.05; done"));
    assert!(host
        .ok("cat /var/log/dmgr/nobodyd.log")
        .contains("hello from nobody"));
    let after = host.ok(owners);
    for line in after.lines() {
        assert!(line.starts_with("root:root "), "{line}\nbefore:\n{before}");
    }
    host.ok(&format!(
        "{D} start rootd && {D} stop rootd && systemctl stop {unit}"
    ));
}

/// The default config directory's daemons, each with a command line of its own to
/// count its processes by.
fn write_boot_daemons(host: &Host) {
    host.write(
        "/etc/dmgr/daemons.d/ticker.toml",
        "command = [\"/bin/sh\", \"-c\", \"while :; do echo boot-ticker; sleep 1; done\"]\n",
    );
    host.write(
        "/etc/dmgr/daemons.d/classic.toml",
        "command = [\"/opt/dmgr-test/classic_daemon.py\", \"--pidfile\", \"/run/boot-classic.pid\", \"--log\", \"/var/log/boot-classic.out\"]\ntype = \"forking\"\npidfile = \"/run/boot-classic.pid\"\n",
    );
    host.write(
        "/etc/dmgr/daemons.d/memd.toml",
        "command = [\"sleep\", \"1004\"]\nmemory_max = \"64MiB\"\n",
    );
}

/// How many processes run each boot daemon's command.
fn copies(host: &Host) -> Vec<(String, usize)> {
    [
        ("ticker", "[b]oot-ticker; sleep"),
        (
            "classic",
            "[c]lassic_daemon.py --pidfile /run/boot-classic.pid",
        ),
        ("memd", "[s]leep 1004$"),
    ]
    .iter()
    .map(|(name, pattern)| {
        let out = host.sh(&format!("ps -eo args= | grep -c -- '{pattern}'"));
        (
            name.to_string(),
            text(&out.stdout).trim().parse().unwrap_or(0),
        )
    })
    .collect()
}

/// Finding 6: with the boot unit and the exported target both enabled, a reboot runs
/// one copy of each daemon (systemd keeps one of the two conflicting units), `dmgr
/// start` starts no second one and `list` does not call systemd's copies stopped;
/// starting the other owner hands the daemons over, both ways.
fn one_copy_with_both_enabled(host: &Host) {
    write_boot_daemons(host);
    let installed = host.sh("dmgr boot install");
    assert!(installed.status.success(), "{installed:?}");
    host.ok("dmgr export systemd --all -o /etc/systemd/system >/dev/null && systemctl daemon-reload && systemctl enable dmgr.target 2>/dev/null");
    let warned = host.sh("dmgr boot install");
    assert!(
        text(&warned.stderr)
            .contains("dmgr.target (from `dmgr export systemd`) runs the same daemons"),
        "{warned:?}"
    );
    host.reboot();
    let active = host.ok("systemctl is-active dmgr.service dmgr.target || true");
    let expected: Vec<(String, usize)> = ["ticker", "classic", "memd"]
        .iter()
        .map(|n| (n.to_string(), 1))
        .collect();
    assert_eq!(copies(host), expected, "after a reboot with both: {active}");
    eprintln!(
        "systemd host: with both enabled, systemd kept {}",
        if active.starts_with("active") {
            "dmgr.service"
        } else {
            "dmgr.target"
        }
    );
    // Whoever runs them, dmgr never starts a second copy, and list tells the truth.
    let started = host.sh("dmgr start --all");
    assert_eq!(copies(host), expected, "{started:?}");
    let listed = host.ok("dmgr list");
    assert_eq!(listed.matches("running").count(), 3, "{listed}");
    // Each owner takes over from the other, with one copy throughout.
    host.ok("systemctl start dmgr.target");
    assert_eq!(copies(host), expected);
    assert!(host.ok("dmgr list").contains("running (systemd)"));
    host.ok("systemctl start dmgr.service");
    assert_eq!(copies(host), expected);
    let listed = host.ok("dmgr list");
    assert!(
        !listed.contains("systemd") && listed.matches("running").count() == 3,
        "{listed}"
    );
    // Leave the daemons to dmgr from now on.
    host.ok("systemctl disable dmgr.target 2>/dev/null; rm -f /etc/systemd/system/dmgr-*.service /etc/systemd/system/dmgr-logdir@.service /etc/systemd/system/dmgr.target; systemctl daemon-reload");
}

/// Point 3: with the boot unit alone, a reboot brings every daemon back under it:
/// `Delegate=yes`, the keepers in the leaf `keepers` and each daemon in a cgroup of
/// its own below the unit, no variable of the unit in a daemon but HOME and USER as
/// for root's login, reload runs `apply`, `stop` prints a line per daemon, and a
/// daemon added with a long `ready_timeout` makes `boot status` warn.
fn boot_unit_delegates_and_notices_stale_timeouts(host: &Host) {
    host.reboot();
    let expected: Vec<(String, usize)> = ["ticker", "classic", "memd"]
        .iter()
        .map(|n| (n.to_string(), 1))
        .collect();
    assert_eq!(copies(host), expected);
    assert_eq!(host.ok("systemctl is-active dmgr.service").trim(), "active");
    assert_eq!(
        host.ok("systemctl show -p Delegate dmgr.service").trim(),
        "Delegate=yes"
    );
    let tree = host.ok("systemd-cgls --no-pager -u dmgr.service");
    eprintln!("systemd host: systemd-cgls -u dmgr.service:\n{tree}");
    for name in ["ticker", "classic", "memd"] {
        let pid = host.ok(&format!("dmgr list --json | python3 -c 'import json,sys; print([e[\"pid\"] for e in json.load(sys.stdin) if e[\"name\"] == \"{name}\"][0])'"));
        let cgroup = host.ok(&format!("grep '^0::' /proc/{}/cgroup", pid.trim()));
        assert!(
            cgroup.starts_with(&format!("0::/system.slice/dmgr.service/dmgr-{name}-")),
            "{name}: {cgroup}"
        );
        assert!(tree.contains(&format!("dmgr-{name}-")), "{tree}");
        let environ = host.ok(&format!("tr '\\0' '\\n' < /proc/{}/environ", pid.trim()));
        assert!(environ.lines().any(|l| l == "HOME=/root"), "{environ}");
        assert!(environ.lines().any(|l| l == "USER=root"), "{environ}");
        for own in ["INVOCATION_ID=", "JOURNAL_STREAM=", "SYSTEMD_EXEC_PID="] {
            assert!(!environ.contains(own), "{name}: {own} in {environ}");
        }
    }
    // The leaf holds dmgr's own processes (keepers, and what keeps their pipes), no
    // daemon's; the unit's cgroup itself holds none.
    let keepers = "for p in $(cat /sys/fs/cgroup/system.slice/dmgr.service/keepers/cgroup.procs); do tr '\\0' ' ' < /proc/$p/cmdline; echo; done";
    let in_leaf = host.ok(keepers);
    assert!(
        in_leaf.lines().count() >= 3
            && in_leaf
                .lines()
                .all(|l| l.starts_with("/usr/local/bin/dmgr ")),
        "{in_leaf}\n{tree}"
    );
    assert_eq!(
        host.ok("cat /sys/fs/cgroup/system.slice/dmgr.service/cgroup.procs"),
        ""
    );
    let memory = host.ok("dmgr status memd | grep -E 'memory via|cgroup'");
    eprintln!("systemd host: memd under the boot unit:\n{memory}");
    // systemctl reload is dmgr apply: a new daemon starts, in a cgroup of its own.
    host.write(
        "/etc/dmgr/daemons.d/late.toml",
        "command = [\"sleep\", \"1005\"]\n",
    );
    host.ok("systemctl reload dmgr.service");
    let late = host.ok("dmgr status late");
    assert!(
        late.contains("cgroup:     /sys/fs/cgroup/system.slice/dmgr.service/dmgr-late-"),
        "{late}"
    );
    let in_leaf_now = host.ok(keepers);
    assert!(
        in_leaf_now.contains("__keeper --name late"),
        "{in_leaf_now}"
    );
    // A daemon added with a long ready_timeout makes the unit's TimeoutStartSec= stale.
    assert!(!host.ok("dmgr boot status").contains("warning"));
    host.write(
        "/etc/dmgr/daemons.d/slow.toml",
        "command = [\"sleep\", \"1006\"]\nready = { tcp = \"127.0.0.1:1\" }\nready_timeout = \"150s\"\n",
    );
    let status = host.ok("dmgr boot status");
    assert!(
        status.contains("warning: its TimeoutStartSec= (") && status.contains("slow 2m 30s 500ms"),
        "{status}"
    );
    let checked = host.sh("dmgr check");
    assert!(
        text(&checked.stderr).contains("its TimeoutStartSec= ("),
        "{checked:?}"
    );
    host.ok("rm /etc/dmgr/daemons.d/slow.toml");
    // At shutdown stop --all says each result; the journal has a line per daemon.
    host.ok("systemctl stop dmgr.service");
    let journal = host.ok("journalctl -b -u dmgr.service --no-pager -o cat");
    for name in ["ticker", "classic", "memd", "late"] {
        assert!(
            journal.contains(&format!("{name}: stopped")),
            "{name}: {journal}"
        );
    }
    assert_eq!(copies(host).iter().map(|(_, n)| n).sum::<usize>(), 0);
}

/// Issue 26: the boot unit is `Type=notify` (`start --all` sends `READY=1` once every
/// daemon it started is up), so that a unit ordered `After=` it, here one that looks
/// for the file a slow daemon's readiness check waits for, runs only once that
/// daemon is ready; systemd shows `start --all`'s status line.
fn a_unit_after_the_boot_unit_starts_once_every_daemon_is_ready(host: &Host) {
    host.write(
        "/etc/dmgr/daemons.d/slowready.toml",
        "command = [\"/bin/sh\", \"-c\", \"sleep 3; touch /run/boot-slowready; exec sleep 1007\"]\nready = { file = \"/run/boot-slowready\" }\nready_timeout = \"20s\"\n",
    );
    host.write(
        "/etc/systemd/system/after-dmgr.service",
        "[Unit]\nAfter=dmgr.service\nRequires=dmgr.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c 'if [ -e /run/boot-slowready ]; then echo ready; else echo early; fi > /run/after-dmgr.seen'\n[Install]\nWantedBy=multi-user.target\n",
    );
    host.ok("dmgr boot install >/dev/null && systemctl enable after-dmgr.service 2>/dev/null");
    assert_eq!(
        host.ok("systemctl show -p Type dmgr.service").trim(),
        "Type=notify"
    );
    assert_eq!(
        host.ok("systemctl show -p NotifyAccess dmgr.service")
            .trim(),
        "NotifyAccess=main"
    );
    host.reboot();
    assert_eq!(host.ok("cat /run/after-dmgr.seen").trim(), "ready");
    assert_eq!(host.ok("systemctl is-active dmgr.service").trim(), "active");
    let daemons = host.ok("ls /etc/dmgr/daemons.d/*.toml | wc -l");
    let up = match daemons.trim() {
        "1" => "1 daemon up".to_string(),
        n => format!("{n} daemons up"),
    };
    let status = host.ok("systemctl show -p StatusText dmgr.service");
    assert_eq!(status.trim(), format!("StatusText={up}"), "{status}");
    host.ok("systemctl disable after-dmgr.service 2>/dev/null; rm /etc/systemd/system/after-dmgr.service /etc/dmgr/daemons.d/slowready.toml; systemctl daemon-reload; systemctl stop dmgr.service");
}

/// Issue 28: the copies of a daemon with `instances` run under systemd as instances of
/// the exported template, each with its number (in its command line, `DMGR_INSTANCE`
/// and its own log), and the timer of a `* * * * *` schedule starts its oneshot.
fn templates_run_and_timers_fire(host: &Host) {
    let jobs = "/srv/jobs/daemons.d";
    let dmgr = format!("dmgr -c {jobs} --run-dir /srv/jobs/run");
    host.ok(&format!("mkdir -p {jobs} /srv/jobs/log"));
    host.write(
        &format!("{jobs}/worker.toml"),
        "command = [\"/bin/sh\", \"-c\", \"echo worker $DMGR_INSTANCE of $DMGR_INSTANCES; exec sleep 1000\", \"worker-{instance}\"]\ninstances = 3\nlog = \"/srv/jobs/log/worker-{instance}.log\"\n",
    );
    host.write(
        &format!("{jobs}/tick.toml"),
        "command = [\"/bin/sh\", \"-c\", \"date +%s >> /srv/jobs/ticks\"]\ntype = \"oneshot\"\nschedule = \"* * * * *\"\n",
    );
    host.ok(&format!(
        "{dmgr} export systemd --all -o /etc/systemd/system >/dev/null && systemctl daemon-reload"
    ));
    let prefix = dmgr::boot::unit_prefix(Path::new(jobs), false);
    host.ok(&format!(
        "systemctl start {}",
        q(&format!("{prefix}.target"))
    ));
    for n in 1..=3 {
        let unit = format!("{prefix}-worker@{n}.service");
        host.ok(&format!("systemctl is-active --quiet {}", q(&unit)));
        let pid = host.ok(&format!("systemctl show -p MainPID --value {}", q(&unit)));
        let environ = host.ok(&format!("tr '\\0' '\\n' < /proc/{}/environ", pid.trim()));
        assert!(
            environ.lines().any(|l| l == format!("DMGR_INSTANCE={n}")),
            "worker@{n}: {environ}"
        );
        // `%i` in ExecStart= became the copy's number.
        let exec = host.ok(&format!("systemctl show -p ExecStart --value {}", q(&unit)));
        assert!(exec.contains(&format!("worker-{n} ")), "worker@{n}: {exec}");
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = host.sh(&format!("cat /srv/jobs/log/worker-{n}.log"));
            if text(&log.stdout).contains(&format!("worker {n} of 3")) {
                break;
            }
            assert!(Instant::now() < deadline, "worker@{n}'s log: {log:?}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    // The timer is active and fires within its minute (and a bit).
    host.ok(&format!(
        "systemctl is-active --quiet {}",
        q(&format!("{prefix}-tick.timer"))
    ));
    let deadline = Instant::now() + std::time::Duration::from_secs(75);
    while host.sh("test -s /srv/jobs/ticks").status.code() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the timer did not fire: {}",
            host.ok(&format!(
                "systemctl status --no-pager {} || true",
                q(&format!("{prefix}-tick.timer"))
            ))
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let result = host.ok(&format!(
        "systemctl show -p Result --value {}",
        q(&format!("{prefix}-tick.service"))
    ));
    assert_eq!(result.trim(), "success");
    host.ok(&format!(
        "systemctl stop {}",
        q(&format!("{prefix}.target"))
    ));
}
