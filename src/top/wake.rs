//! Everything that wakes `dmgr top`, as messages on one channel, so that its loop
//! sleeps in one blocking receive with no polling: keys and resizes (a thread in
//! crossterm's blocking read), changes in the run directory, the config directory and
//! the followed log (a thread in a blocking inotify read, see [`Watcher`]), SIGTERM,
//! SIGHUP, SIGINT and SIGQUIT (a thread reading signal-hook's self-pipe), and the end
//! of an operation (a thread waiting for `dmgr VERB NAME`).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use ratatui::crossterm::event::{self, Event, KeyEvent};

use super::app::Verb;
use crate::config::Dirs;

/// Why the loop woke.
#[derive(Debug)]
pub(crate) enum Wake {
    /// A key was pressed.
    Key(KeyEvent),
    /// The terminal changed size.
    Resize,
    /// Files changed in watched directories: each event's watch and file name.
    Changed(Vec<(WatchDescriptor, Option<OsString>)>),
    /// `dmgr VERB NAME` ended: whether it succeeded, and the last line it printed.
    Done {
        /// The daemon.
        name: String,
        /// The operation.
        verb: Verb,
        /// Whether it exited 0.
        ok: bool,
        /// Its last line of output.
        said: String,
    },
    /// Leave: a signal, or the terminal is gone.
    Quit,
}

/// Starts the key and signal threads; the receiver, and a sender for the rest.
pub(crate) fn start() -> (Sender<Wake>, Receiver<Wake>) {
    let (tx, rx) = channel();
    let keys = tx.clone();
    std::thread::spawn(move || loop {
        let wake = match event::read() {
            Ok(Event::Key(key)) => Wake::Key(key),
            Ok(Event::Resize(..)) => Wake::Resize,
            Ok(_) => continue,
            // The terminal is gone (hung up): nothing more can be read or shown.
            Err(_) => Wake::Quit,
        };
        let quit = matches!(wake, Wake::Quit);
        if keys.send(wake).is_err() || quit {
            return;
        }
    });
    let signals = tx.clone();
    if let Ok(mut set) = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGQUIT,
    ]) {
        std::thread::spawn(move || {
            if set.forever().next().is_some() {
                let _ = signals.send(Wake::Quit);
            }
        });
    }
    (tx, rx)
}

/// Runs `dmgr VERB NAME` (this very binary, on the same directories) on a thread of
/// its own, and reports its end; the screen goes on meanwhile.
pub(crate) fn act(tx: &Sender<Wake>, exe: &Path, dirs: &Dirs, verb: Verb, name: &str) {
    let mut command = Command::new(exe);
    command
        .arg("--config-dir")
        .arg(&dirs.config_dir)
        .arg("--run-dir")
        .arg(&dirs.run_dir)
        .args(["--color", "never", verb.command(), "--", name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (tx, name) = (tx.clone(), name.to_string());
    std::thread::spawn(move || {
        let (ok, said) = match command.output() {
            Ok(out) => {
                let ok = out.status.success();
                (ok, what_it_said(ok, &out.stdout, &out.stderr))
            }
            Err(e) => (false, format!("cannot run dmgr {}: {e}", verb.command())),
        };
        let _ = tx.send(Wake::Done {
            name,
            verb,
            ok,
            said,
        });
    });
}

/// The line that tells how `dmgr VERB NAME` went: on failure the first error line
/// (`dmgr: web: cannot start: ...`; the log lines and hint that may follow are for a
/// terminal, not a one-line message), else the last line it printed.
fn what_it_said(ok: bool, stdout: &[u8], stderr: &[u8]) -> String {
    let lines = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
    };
    let (out, err) = (lines(stdout), lines(stderr));
    let error = err.iter().find(|l| l.starts_with("dmgr: "));
    let line = match (ok, error) {
        (false, Some(error)) => Some(error),
        _ => out.last().or(err.last()),
    };
    line.map_or_else(String::new, |l| {
        l.strip_prefix("dmgr: ").unwrap_or(l).to_string()
    })
}

/// What a batch of changes touched.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Touched {
    /// A record, pidfile, event history or daemon file: the list may have changed.
    pub list: bool,
    /// The followed log.
    pub log: bool,
}

/// The inotify watches of `top`: the run directory (records, pidfiles, event
/// histories), the config directory (daemon files), and the followed log (its file
/// for writes, its directory for the rename and create of a rotation), read on a
/// thread of their own. A log that another daemon writes to wakes nothing: only the
/// followed file is watched for writes.
pub(crate) struct Watcher {
    inotify: Option<Arc<Inotify>>,
    run_dir: PathBuf,
    config_dir: PathBuf,
    run: Option<WatchDescriptor>,
    config: Option<WatchDescriptor>,
    log: Option<Followed>,
}

/// The followed log's watches.
struct Followed {
    path: PathBuf,
    file: Option<WatchDescriptor>,
    dir: Option<WatchDescriptor>,
}

const DIR_CHANGES: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO);

impl Watcher {
    /// Watches `dirs` and sends what changes to `tx`; a watcher that watches nothing
    /// where the kernel has no inotify (the loop then looks every 2 s).
    pub(crate) fn start(tx: &Sender<Wake>, dirs: &Dirs) -> Watcher {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC).ok().map(Arc::new);
        if let Some(inotify) = &inotify {
            let (inotify, tx) = (inotify.clone(), tx.clone());
            std::thread::spawn(move || loop {
                let Ok(events) = inotify.read_events() else {
                    return;
                };
                let changes = events.into_iter().map(|e| (e.wd, e.name)).collect();
                if tx.send(Wake::Changed(changes)).is_err() {
                    return;
                }
            });
        }
        let mut watcher = Watcher {
            inotify,
            run_dir: dirs.run_dir.clone(),
            config_dir: dirs.config_dir.clone(),
            run: None,
            config: None,
            log: None,
        };
        watcher.watch_dirs();
        watcher
    }

    /// Adds the watches on the run and config directories that are missing (a
    /// directory that does not exist yet is tried again at the next look).
    pub(crate) fn watch_dirs(&mut self) {
        let Some(inotify) = &self.inotify else {
            return;
        };
        if self.run.is_none() {
            let mask = DIR_CHANGES | AddWatchFlags::IN_MODIFY;
            self.run = inotify.add_watch(&self.run_dir, mask).ok();
        }
        if self.config.is_none() {
            let mask = DIR_CHANGES | AddWatchFlags::IN_CLOSE_WRITE;
            self.config = inotify.add_watch(&self.config_dir, mask).ok();
        }
    }

    /// Returns true if and only if every change is seen as it happens: the loop
    /// otherwise surveys again at each 2 s refresh.
    pub(crate) fn sees_everything(&self) -> bool {
        self.run.is_some() && self.config.is_some()
    }

    /// Follows the log at `path` instead of the one followed so far.
    pub(crate) fn follow(&mut self, path: Option<&Path>) {
        if self.log.as_ref().map(|l| l.path.as_path()) == path {
            return;
        }
        let Some(inotify) = &self.inotify else {
            return;
        };
        if let Some(old) = self.log.take() {
            for wd in [old.file, old.dir].into_iter().flatten() {
                // The directory may be the run directory: its watch stays.
                if Some(wd) != self.run && Some(wd) != self.config {
                    let _ = inotify.rm_watch(wd);
                }
            }
        }
        self.log = path.map(|path| Followed {
            path: path.to_path_buf(),
            file: inotify.add_watch(path, AddWatchFlags::IN_MODIFY).ok(),
            dir: path
                .parent()
                .and_then(|dir| inotify.add_watch(dir, DIR_CHANGES).ok()),
        });
    }

    /// What `changes` touched; a rotated log's new file is watched from now on.
    pub(crate) fn touched(&mut self, changes: &[(WatchDescriptor, Option<OsString>)]) -> Touched {
        let mut touched = Touched::default();
        for (wd, name) in changes {
            let name = name.as_deref().unwrap_or_default();
            if let Some(log) = &mut self.log {
                let is_log_name = log.path.file_name() == Some(name);
                if Some(*wd) == log.file || (Some(*wd) == log.dir && is_log_name) {
                    touched.log = true;
                    if Some(*wd) == log.dir {
                        // Rotated or created: watch the file now at the path.
                        if let Some(inotify) = &self.inotify {
                            log.file = inotify.add_watch(&log.path, AddWatchFlags::IN_MODIFY).ok();
                        }
                    }
                }
            }
            if Some(*wd) == self.run && is_run_file(name) {
                touched.list = true;
            }
            if Some(*wd) == self.config && is_daemon_file(name) {
                touched.list = true;
            }
        }
        touched
    }
}

/// A file of the run directory whose change may change the list.
fn is_run_file(name: &OsStr) -> bool {
    let name = name.as_bytes();
    [b".state".as_slice(), b".pid", b".events"]
        .iter()
        .any(|end| name.ends_with(end))
}

/// A daemon file of the config directory.
fn is_daemon_file(name: &OsStr) -> bool {
    let name = name.as_bytes();
    name.ends_with(b".toml") && !name.starts_with(b".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_told_by_its_error_line_and_a_success_by_its_last_line() {
        let stderr = b"dmgr: web: cannot start: exited 1 within start_wait\n  | Traceback...\n  | boom\nhint: see dmgr logs web\n";
        assert_eq!(
            what_it_said(false, b"", stderr),
            "web: cannot start: exited 1 within start_wait"
        );
        assert_eq!(
            what_it_said(true, b"web: restarted (pid 42)\n", b""),
            "web: restarted (pid 42)"
        );
        assert_eq!(what_it_said(false, b"", b""), "");
    }
}
