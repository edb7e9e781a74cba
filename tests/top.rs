//! `dmgr top` in a real terminal: tmux runs a shell, `send-keys` types, and
//! `capture-pane` reads the screen.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{required, sleeper, wait_until, TestEnv};

/// The shell prompt in the pane.
const PROMPT: &str = "top-test$";

/// A tmux server of the test's own (its socket in the test's directory), with one
/// session running an interactive `sh`; killed on drop.
struct Tmux {
    tmux: PathBuf,
    socket: PathBuf,
    server: Option<i32>,
}

impl Tmux {
    fn start(tmux: PathBuf, env: &TestEnv, width: u16, height: u16) -> Tmux {
        let socket = env.root().join("tmux.sock");
        let mut this = Tmux {
            tmux,
            socket,
            server: None,
        };
        let started = this
            .command()
            .args(["new-session", "-d", "-s", "top", "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .arg(format!("env PS1='{PROMPT} ' ENV= sh -i"))
            .status()
            .unwrap();
        assert!(started.success(), "tmux new-session failed");
        this.server = this.show("#{pid}").trim().parse().ok();
        wait_until("the shell prompts", Duration::from_secs(10), || {
            this.screen().contains(PROMPT)
        });
        this
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.tmux);
        command.arg("-S").arg(&self.socket).env_remove("TMUX");
        command
    }

    /// Types `keys` (tmux key names, such as `Enter`).
    fn keys(&self, keys: &[&str]) {
        let status = self
            .command()
            .args(["send-keys", "-t", "top"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        let status = self
            .command()
            .args(["send-keys", "-t", "top", "-l", text])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The text on the screen now.
    fn screen(&self) -> String {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-t", "top"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A tmux format (`#{alternate_on}`) of the pane.
    fn show(&self, format: &str) -> String {
        let out = self
            .command()
            .args(["display-message", "-p", "-t", "top", format])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits until the screen satisfies `condition`; panics with the screen.
    #[track_caller]
    fn wait_for(&self, what: &str, condition: impl Fn(&str) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if condition(&screen) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting until {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `dmgr top` of `env` in the shell.
    fn run_top(&self, env: &TestEnv) {
        let quote = |p: &Path| format!("'{}'", p.display());
        self.type_text(&format!(
            "{} --config-dir {} --run-dir {} top",
            quote(Path::new(env!("CARGO_BIN_EXE_dmgr"))),
            quote(&env.config_dir()),
            quote(&env.run_dir())
        ));
        self.keys(&["Enter"]);
    }

    /// Checks that `top` has given the terminal back: the main screen, the prompt on
    /// the last line, and the line discipline as the shell wants it (output of a
    /// command starts a line of its own; in raw mode it would not).
    #[track_caller]
    fn assert_restored(&self) {
        wait_until(
            "top leaves the alternate screen",
            Duration::from_secs(10),
            || self.show("#{alternate_on}") == "0",
        );
        self.wait_for("the prompt is back", |s| {
            s.lines()
                .rfind(|l| !l.trim().is_empty())
                .is_some_and(|l| l.trim_end() == PROMPT)
        });
        self.type_text("echo ok-$((40+2))");
        self.keys(&["Enter"]);
        self.wait_for("the shell runs a command", |s| {
            s.lines().any(|l| l == "ok-42")
        });
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
        if let Some(pid) = self.server {
            // If kill-server could not reach it, it goes by PID (only if it is still
            // a tmux: the PID is not reused while we are its parent... it is not our
            // child, so check its name first).
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "tmux: server" || comm.trim() == "tmux" {
                let _ = crate::support::sigkill(pid);
            }
        }
    }
}

/// The table row of `name` on `screen`, if shown.
fn row<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
}

/// The screen shows every daemon with its status; `r` restarts the selected one and
/// its PID on the screen changes; `/` filters; `q` gives the terminal back.
#[test]
fn top_shows_every_daemon_restarts_on_r_filters_and_quits_cleanly() {
    let test = "top_shows_every_daemon_restarts_on_r_filters_and_quits_cleanly";
    let Some(tmux) = required("tmux", test) else {
        return;
    };
    let env = TestEnv::new()
        .daemon("alpha", &sleeper("top-alpha"))
        .daemon("bravo", &sleeper("top-bravo"))
        .daemon("charlie", &sleeper("top-charlie"))
        .daemon("broken", "command = 5\n");
    env.dmgr(&["start", "alpha", "bravo"]).success();
    let alpha = env.entry("alpha")["pid"].as_i64().unwrap().to_string();
    let bravo = env.entry("bravo")["pid"].as_i64().unwrap().to_string();
    let term = Tmux::start(tmux, &env, 100, 30);
    term.run_top(&env);
    term.wait_for("every daemon is shown with its status", |s| {
        row(s, "alpha").is_some_and(|r| r.contains("running") && r.contains(&alpha))
            && row(s, "bravo").is_some_and(|r| r.contains("running") && r.contains(&bravo))
            && row(s, "charlie").is_some_and(|r| r.contains("stopped"))
            && row(s, "broken").is_some_and(|r| r.contains("invalid"))
    });
    assert_eq!(
        term.show("#{alternate_on}"),
        "1",
        "top draws on the alternate screen"
    );

    // The first row is selected: `r` restarts alpha.
    term.keys(&["r"]);
    let mut new = String::new();
    wait_until("alpha runs with a new PID", Duration::from_secs(20), || {
        let entry = env.entry("alpha");
        new = entry["pid"]
            .as_i64()
            .map(|p| p.to_string())
            .unwrap_or_default();
        entry["status"] == "running" && !new.is_empty() && new != alpha
    });
    term.wait_for("the new PID is on the screen", |s| {
        row(s, "alpha").is_some_and(|r| r.contains(&new) && !r.contains(&alpha))
    });
    assert_eq!(
        env.entry("bravo")["pid"].as_i64().unwrap().to_string(),
        bravo
    );

    term.keys(&["/"]);
    term.type_text("brav");
    term.keys(&["Enter"]);
    term.wait_for("only bravo is shown", |s| {
        row(s, "bravo").is_some()
            && row(s, "alpha").is_none()
            && row(s, "charlie").is_none()
            && row(s, "broken").is_none()
    });

    term.keys(&["q"]);
    term.assert_restored();
}

/// Below 80x24 the screen says what it needs; SIGTERM gives the terminal back.
#[test]
fn top_says_when_the_terminal_is_too_small_and_restores_it_on_sigterm() {
    let test = "top_says_when_the_terminal_is_too_small_and_restores_it_on_sigterm";
    let Some(tmux) = required("tmux", test) else {
        return;
    };
    let env = TestEnv::new().daemon("alpha", &sleeper("top-small"));
    let term = Tmux::start(tmux, &env, 100, 30);
    term.run_top(&env);
    term.wait_for("alpha is shown", |s| row(s, "alpha").is_some());
    let resized = term
        .command()
        .args(["resize-window", "-t", "top", "-x", "70", "-y", "20"])
        .status()
        .unwrap();
    assert!(resized.success());
    term.wait_for("the screen says it is too small", |s| {
        s.contains("This terminal is 70x20; dmgr top needs at least 80x24.")
    });
    let shell: i32 = term.show("#{pane_pid}").parse().unwrap();
    let mut top = None;
    wait_until("top runs under the shell", Duration::from_secs(10), || {
        top = dmgr::procinfo::children_of(shell).into_iter().find(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains("top"))
        });
        top.is_some()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(top.unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    term.assert_restored();
}
