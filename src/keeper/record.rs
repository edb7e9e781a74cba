//! The keeper's state record: the record a keeper starts from, how a process ended,
//! writing it (the machine's facts and the loop's), the take-over of changed
//! supervision keys (SIGUSR1), and the end once the keeper's work is done.

use std::time::Duration;

use nix::sys::wait::WaitStatus;

use super::core::machine::{Exit, Input, Now, TakeOver};
use super::Keeper;
use crate::config::{self, Daemon, Dirs};
use crate::events::{Event, History, Kind};
use crate::procinfo::{self, ProcId};
use crate::state::{self, ExitRecord, Reason, StateRecord, Status};

impl Keeper {
    /// SIGUSR1: re-read the file and hand its supervision keys to the machine, leaving
    /// the running process alone.
    pub(super) fn take_over_supervision_keys(&mut self, now: Now) {
        self.take_over_keys(now, true);
    }

    /// [`Keeper::take_over_supervision_keys`]; `say_unchanged`: an `updated` event
    /// even when no key changed (SIGUSR1 says what it found; a restart in the keeper,
    /// which takes the keys on its way, stays quiet then).
    pub(super) fn take_over_keys(&mut self, now: Now, say_unchanged: bool) {
        let identity = state::FileIdentity::of(&self.daemon.file);
        let Ok(fresh) = config::load_daemon(&self.dirs, &self.daemon.name) else {
            return self.feed(Input::TakeOver(None), now);
        };
        // The record describes the file as it is now only while the running process
        // is still the file's: otherwise `list` must read the file.
        self.record.definition = identity
            .filter(|_| self.record.process.changed(&fresh.process).is_empty())
            .map(|file| state::Definition::new(file, &fresh));
        let d = &mut self.daemon;
        d.autostart = fresh.autostart;
        d.description = fresh.description;
        d.after = fresh.after;
        if !say_unchanged && d.supervision == fresh.supervision {
            return;
        }
        d.supervision = fresh.supervision;
        // The memory ceiling's watch follows the keys; one no longer enforced through
        // `memory.high` is taken away from it.
        let cgroup = self.tracked.cgroup.as_ref().map(|c| c.path());
        let (watcher, memory) = super::checks::watch_memory(&self.daemon.supervision, cgroup);
        if let (Some(old), None) = (self.memory_events.take(), &watcher) {
            old.lift();
        }
        self.memory_events = watcher;
        let change = TakeOver {
            supervision: self.daemon.supervision.clone(),
            memory,
        };
        self.feed(Input::TakeOver(Some(Box::new(change))), now);
    }

    /// The machine's end: the cgroup goes, the final record is written, and the
    /// pidfile is unlinked, then its lock released by closing it (never the other way
    /// round). Everything is gone: nothing is left for `stop` or `start` to look for,
    /// which spares them a scan of /proc for every daemon a keeper finished.
    pub(super) fn finish_up(&mut self) {
        self.record.output_pipes.clear();
        if let Some(cgroup) = self.tracked.cgroup.take() {
            cgroup.remove();
        }
        self.record.cgroup = None;
        if let Some(socket) = self.notify_socket.take() {
            socket.remove();
        }
        self.record.notify.socket = None;
        self.save();
        if let Some(pidfile) = self.pidfile.take() {
            pidfile.remove();
        }
    }

    /// Writes the record; a failure is recorded as an event (see [`Keeper::try_save`]).
    pub(super) fn save(&mut self) {
        let _ = self.try_save();
    }

    /// Writes the record as the machine and the loop know it now, whole or not at all
    /// (see [`state::StateFile`]). A failure leaves the previous record in place and is
    /// returned; the first of a run of failures is a `record-error` event (which may not
    /// reach a full disk either), and so is the first write that works again, with how
    /// many failed meanwhile. Nothing else follows from a failed write: the daemon is
    /// neither stopped nor restarted for it, except that a process is never started
    /// that no record names.
    pub(super) fn try_save(&mut self) -> std::result::Result<(), String> {
        self.machine.write_record(&mut self.record);
        match self.state_file.write(&self.record) {
            Ok(()) => {
                if let Some(trouble) = self.record_trouble.take() {
                    let again = Event::new(&self.daemon.name, Kind::RecordError).message(format!(
                        "the state record is written again, after {} writes failed since {}",
                        trouble.failures,
                        crate::text::rfc3339_ms(trouble.since_ms)
                    ));
                    self.record_event(again);
                }
                Ok(())
            }
            Err(e) => {
                let reason = format!(
                    "cannot write the state record {}: {e}",
                    self.dirs.state_file(&self.daemon.name).display()
                );
                match &mut self.record_trouble {
                    Some(trouble) => trouble.failures += 1,
                    None => {
                        self.record_trouble = Some(RecordTrouble {
                            since_ms: state::now_ms(),
                            failures: 1,
                        });
                        let event = Event::new(&self.daemon.name, Kind::RecordError).message(
                            format!("{reason}; the previous record stays, and the keeper goes on"),
                        );
                        self.record_event(event);
                    }
                }
                Err(reason)
            }
        }
    }
}

/// A run of failed writes of the state record.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecordTrouble {
    /// When the first failed (ms since the epoch).
    since_ms: u64,
    /// How many failed.
    failures: u32,
}

/// The state record a keeper starts from.
pub(crate) fn initial_record(daemon: &Daemon) -> StateRecord {
    let me = ProcId::of(std::process::id() as i32).unwrap_or(ProcId {
        pid: std::process::id() as i32,
        start: 0,
    });
    StateRecord {
        name: daemon.name.clone(),
        keeper: me,
        daemon: None,
        status: Status::Starting,
        started_at_ms: None,
        restarts: 0,
        last_exit: None,
        history: Vec::new(),
        next_restart_ms: None,
        error: None,
        log_error: None,
        pidfile: daemon.pidfile.clone(),
        log: daemon.process.log.clone(),
        stderr_log: daemon.process.stderr_log.clone(),
        command: daemon.process.command.clone(),
        process: daemon.process.clone(),
        supervision: daemon.supervision.clone(),
        output_pipes: Vec::new(),
        boot_id: procinfo::boot_id().map(str::to_string),
        reason: None,
        cgroup: None,
        no_cgroup: None,
        daemon_pidfile: daemon.forking_pidfile.clone(),
        foreground: false,
        probe: None,
        holder: None,
        env_file_digest: None,
        checks: Default::default(),
        next_run_ms: None,
        definition: None,
        notify: Default::default(),
    }
}

/// Leaves a `failed` record when a start fails before the daemon ever ran. Called only
/// while holding the pidfile lock, so it never overwrites a live keeper's record.
pub(crate) fn record_failure(dirs: &Dirs, daemon: &Daemon, reason: &str) {
    let mut record = initial_record(daemon);
    record.status = Status::Failed;
    record.reason = Some(Reason::StartFailed);
    record.error = Some(reason.to_string());
    let _ = state::write(&dirs.state_file(&daemon.name), &record);
    let gave_up = Event::now(&daemon.name, Kind::GaveUp).message(reason);
    History::open(&dirs.events_file(&daemon.name)).append(&gave_up);
}

/// How a process ended, from its wait status.
pub(crate) fn exit_of(status: WaitStatus) -> Exit {
    Exit {
        code: match status {
            WaitStatus::Exited(_, code) => Some(code),
            _ => None,
        },
        signal: match status {
            WaitStatus::Signaled(_, signal, _) => {
                Some(signal.as_str().trim_start_matches("SIG").to_string())
            }
            _ => None,
        },
    }
}

/// How a run that lasted `ran` ended, from its wait status.
pub(crate) fn exit_record(status: WaitStatus, ran: Duration) -> ExitRecord {
    exit_of(status).record(ran, state::now_ms())
}

/// `exit 1` or `signal KILL`, for messages.
pub(crate) fn describe_wait(status: WaitStatus) -> String {
    exit_of(status).describe()
}
