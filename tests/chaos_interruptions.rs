//! Issue 22's faults for the chaos test (`hostile::random_sigkills_break_no_invariant`),
//! the logs-and-interruptions half: a log disk that fills and frees, and keepers
//! killed while `start` waits for `ready` and while a forking daemon's command has
//! exited and its daemon is not adopted yet. Each round may inject one of them on
//! daemons of their own (`x0` to `x2`); the invariants are checked here, after each
//! fault and at the end: never two copies, a failed start leaves nothing behind, and
//! every line of the chatty daemon's log is one it wrote, whole.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::{copies_of, is_alive, marker, sigkill, Hold, PrivateTmpfs, Run, TestEnv};

/// The chaos test's environment with this half's daemons, and its log disk: a small
/// tmpfs in a private mount namespace that every `dmgr` of the test runs in (`None`,
/// and logs on the ordinary disk, where no namespace can be made: not root).
pub(crate) struct Faults {
    disk: Option<PrivateTmpfs>,
    /// The marks of `x0` (slow to be ready), `x1` (slow to be adopted), `x2` (chatty).
    marks: [String; 3],
    /// How many faults of each kind were injected, for the closing line.
    injected: [u32; 3],
    /// The daemons' working directory, where a fault puts `x0.hold` and `x1.hold`.
    var: PathBuf,
}

impl Faults {
    /// Makes the environment and writes the daemons `x0`, `x1` and `x2`.
    pub(crate) fn new() -> (TestEnv, Faults) {
        let env = TestEnv::new();
        let disk = PrivateTmpfs::mount(
            &env.root().join("logdisk"),
            "size=256k,mode=0755",
            "random_sigkills_break_no_invariant (disk full)",
        );
        let env = match &disk {
            Some(disk) => env.in_namespace_of(disk.pid()),
            None => env,
        };
        let marks = [marker("chaos-x0"), marker("chaos-x1"), marker("chaos-x2")];
        let var = env.root().join("var");
        std::fs::create_dir_all(&var).unwrap();
        let common = format!(
            "working_dir = \"{}\"\nrestart = \"always\"\nrestart_delay = \"10ms\"\nstart_wait = \"20ms\"\nstop_timeout = \"300ms\"\n",
            var.display()
        );
        // Ready 300 ms after it starts (its file is removed first), or later, once
        // `x0.hold` is gone: the fault holds it unready for as long as it needs.
        env.write(
            "x0",
            &format!(
                "command = [\"sh\", \"-c\", \"rm -f x0.ready; sleep 0.3; while [ -e x0.hold ]; do sleep 0.02; done; touch x0.ready; sleep 1000; true\", \"{}\"]\n\
                 ready = {{ file = \"{}/x0.ready\" }}\n{common}",
                marks[0],
                var.display()
            ),
        );
        // Forks a daemon that leaves the session, closes its output and writes its
        // pidfile 300 ms after the command exited, or later, once `x1.hold` is gone
        // (the fault holds it unadopted for as long as it needs). Its mark is split in two
        // arguments, as the chaos test's own forking daemon's, so that only the
        // process left behind carries it.
        let (prefix, suffix) = marks[1].split_at(marks[1].len() - 2);
        env.write(
            "x1",
            &format!(
                "type = \"forking\"\ncommand = [\"sh\", \"-c\", \"rm -f x1.pid; setsid sh -c 'exec >/dev/null 2>&1 </dev/null; sleep 0.3; while [ -e x1.hold ]; do sleep 0.02; done; echo $$ > x1.pid; sleep 1000; true' \\\"$0$1\\\" & exit 0\", \"{prefix}\", \"{suffix}\"]\n\
                 pidfile = \"{}/x1.pid\"\n{common}",
                var.display()
            ),
        );
        // Writes numbered lines of many lengths, into a log on the small disk.
        let log = match &disk {
            Some(disk) => disk.dir().join("x2.log"),
            None => env.root().join("x2.log"),
        };
        env.write(
            "x2",
            &format!(
                "command = [\"sh\", \"-c\", \"i=0; while :; do i=$((i+1)); printf 'line-%d-%.*s\\\\n' $i $((i % 50)) {xs}; [ $((i % 20)) = 0 ] && sleep 0.05; done\", \"{}\"]\n\
                 log = \"{}\"\nlog_max_size = \"64KiB\"\nlog_keep = 2\n{common}",
                marks[2],
                log.display(),
                xs = "x".repeat(50)
            ),
        );
        let faults = Faults {
            disk,
            marks,
            injected: [0; 3],
            var,
        };
        (env, faults)
    }

    /// One round's fault of this half, picked by `roll`, then the invariants.
    pub(crate) fn round(&mut self, env: &TestEnv, roll: u64, context: &str) {
        match roll % 8 {
            0 | 1 => self.fill_or_free(roll / 8),
            2 => self.kill_keeper_while_start_waits(env, context),
            3 => self.kill_keeper_during_adoption(env, context),
            4 => {
                // The chatty daemon's keeper: its holder logs on.
                if let Some(keeper) = env.keeper_pid("x2") {
                    env.track(keeper);
                    let _ = sigkill(keeper);
                }
            }
            _ => {}
        }
        for mark in &self.marks {
            let copies = copies_of(mark);
            assert!(
                copies.len() <= 1,
                "{context}: two copies of {mark}: {copies:?}"
            );
        }
    }

    /// Fills the log disk up, or frees it.
    fn fill_or_free(&mut self, roll: u64) {
        let Some(disk) = &self.disk else {
            return;
        };
        if roll.is_multiple_of(2) {
            disk.fill();
            self.injected[0] += 1;
        } else {
            let _ = std::fs::remove_file(disk.path("filler"));
        }
    }

    /// Starts `name` again, held (`NAME.hold` exists until the result is dropped), and
    /// waits until `window` holds, as seen by the test; returns the running `start`
    /// and the hold. The window is the daemon's to leave only once the hold is gone,
    /// so a loaded machine cannot make the test miss it: missing it fails.
    fn start_held(
        &self,
        env: &TestEnv,
        name: &str,
        context: &str,
        mut window: impl FnMut() -> bool,
    ) -> (std::process::Child, Hold) {
        env.dmgr(&["stop", name]);
        let hold = Hold::new(self.var.join(format!("{name}.hold")));
        let start = env.command(&["start", name]).spawn().unwrap();
        crate::support::wait_until(
            &format!("{context}: the start of {name} is in the fault's window"),
            Duration::from_secs(30),
            &mut window,
        );
        (start, hold)
    }

    /// Finding 8: the keeper of `x0` killed while `start` waits for `ready`. The start
    /// fails and leaves neither a daemon nor a pidfile.
    fn kill_keeper_while_start_waits(&mut self, env: &TestEnv, context: &str) {
        // The command removes its ready file too, but the keeper's first check may
        // come first on a loaded machine, and find the last run's.
        let _ = std::fs::remove_file(self.var.join("x0.ready"));
        let (start, _hold) = self.start_held(env, "x0", context, || {
            env.state("x0")
                .is_some_and(|s| s["status"] == "starting" && !s["daemon"].is_null())
                && !copies_of(&self.marks[0]).is_empty()
        });
        let keeper = env.keeper_pid("x0").expect("a keeper while x0 starts");
        env.track(keeper);
        let _ = sigkill(keeper);
        let out = Run::try_wait(start, Duration::from_secs(30)).expect("start returns");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{context}: a start whose keeper died while it waited for ready: {out:?}"
        );
        self.injected[1] += 1;
        assert!(
            copies_of(&self.marks[0]).is_empty(),
            "{context}: a start whose keeper died while it waited for ready left the daemon running"
        );
        assert!(
            !env.pidfile("x0").exists(),
            "{context}: a start whose keeper died left the pidfile"
        );
    }

    /// Findings 10 and 8: the keeper of `x1` killed after the command exited, before
    /// the daemon it left was adopted; the start fails and stops that daemon.
    fn kill_keeper_during_adoption(&mut self, env: &TestEnv, context: &str) {
        let (start, _hold) = self.start_held(env, "x1", context, || {
            env.state("x1")
                .is_some_and(|s| s["status"] == "starting" && s["daemon"].is_null())
                && copies_of(&self.marks[1]).len() == 1
        });
        let keeper = env.keeper_pid("x1").expect("a keeper while x1 starts");
        let left = copies_of(&self.marks[1]);
        env.track(keeper);
        for &pid in &left {
            env.track(pid);
        }
        let _ = sigkill(keeper);
        let out = Run::try_wait(start, Duration::from_secs(30)).expect("start returns");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{context}: a start whose keeper died during adoption: {out:?}"
        );
        self.injected[2] += 1;
        assert!(
            left.iter().all(|&pid| !is_alive(pid)) && copies_of(&self.marks[1]).is_empty(),
            "{context}: the daemon left during adoption runs on"
        );
    }

    /// The log of `x2` and its rotated files, oldest first, as the test reaches them.
    fn chatty_log(&self, env: &TestEnv) -> Vec<PathBuf> {
        let at = |name: &str| match &self.disk {
            Some(disk) => disk.path(name),
            None => env.root().join(name),
        };
        vec![at("x2.log.2"), at("x2.log.1"), at("x2.log")]
    }

    /// The end, after `stop --all`: nothing of these daemons runs, every line of the
    /// chatty daemon's log is whole (`line-N-` and N % 50
    /// x's), never torn or fused by a full disk; and the faults were injected.
    pub(crate) fn finish(&self, env: &TestEnv, rounds: u32) {
        for mark in &self.marks {
            assert!(
                crate::support::processes_with(mark).is_empty(),
                "stop --all left {mark} running"
            );
        }
        let mut lines = 0;
        for path in self.chatty_log(env) {
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            // The last line may be one the daemon had not finished when it was stopped.
            let whole = text.rsplit_once('\n').map_or("", |(whole, _)| whole);
            for line in whole.lines() {
                let ok = line
                    .strip_prefix("line-")
                    .and_then(|rest| rest.split_once('-'))
                    .and_then(|(n, xs)| {
                        let n: usize = n.parse().ok()?;
                        Some(xs.len() == n % 50 && xs.bytes().all(|b| b == b'x'))
                    });
                assert_eq!(
                    ok,
                    Some(true),
                    "{}: a line the daemon never wrote: {line:?}",
                    path.display()
                );
                lines += 1;
            }
        }
        eprintln!(
            "chaos, issue 22: {} disk fills, {} keepers killed while start waited, {} during adoption, {lines} chatty lines checked",
            self.injected[0], self.injected[1], self.injected[2]
        );
        if rounds >= 30 {
            assert!(
                self.injected[1] > 0 && self.injected[2] > 0,
                "no keeper was killed during start or adoption: {:?}",
                self.injected
            );
        }
    }
}
