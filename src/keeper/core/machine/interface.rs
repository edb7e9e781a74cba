//! What goes in and out of the [`Machine`](super::Machine): the time of a wake-up,
//! the inputs, the effects, and the facts it reads through the loop.

use std::time::{Duration, Instant};

use super::super::adoption::Leftovers;
use super::super::handover::Processes;
use super::hooks::Hook;
use super::millis;
use crate::config::units::Signal;
use crate::config::{ReadyCheck, Supervision};
use crate::events::Event;
use crate::keeper::report::Report;
use crate::keeper::sd_notify::message::Notification;
use crate::memory::{MemoryEvents, Usage};
use crate::procinfo::ProcId;
use crate::state::ExitRecord;

/// The time of one wake-up, read once by the loop: the monotonic clock for timers, the
/// wall clock (ms since the epoch) for what the record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    /// For timers and durations.
    pub(crate) at: Instant,
    /// For the record: when a run started or ended, when the next restart is.
    pub(crate) wall_ms: u64,
}

#[cfg(test)]
impl Now {
    /// `self`, `by` later on both clocks.
    pub(crate) fn after(self, by: Duration) -> Now {
        Now {
            at: self.at + by,
            wall_ms: self.wall_ms + millis(by),
        }
    }
}

/// How a process ended, as the machine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exit {
    /// Its exit code, when it exited.
    pub(crate) code: Option<i32>,
    /// The signal that killed it, by name (`KILL`), when one did.
    pub(crate) signal: Option<String>,
}

impl Exit {
    /// Returns true if and only if it exited 0.
    pub(crate) fn is_success(&self) -> bool {
        self.code == Some(0)
    }

    /// `exit 1` or `signal KILL`, for messages.
    pub(crate) fn describe(&self) -> String {
        self.record(Duration::ZERO, 0).describe()
    }

    /// The record of a run that lasted `ran` and ended so at `wall_ms`.
    pub(crate) fn record(&self, ran: Duration, wall_ms: u64) -> ExitRecord {
        ExitRecord {
            code: self.code,
            signal: self.signal.clone(),
            at_ms: wall_ms,
            ran_ms: millis(ran),
        }
    }
}

/// A command the keeper runs for the daemon, in its tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    /// `stop_command`, at a requested stop.
    Stop,
    /// `reload_command`, at `dmgr reload`.
    Reload,
}

/// How the daemon's memory is watched, as the loop could set it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MemoryMode {
    /// The kernel's `memory.events` of the daemon's cgroup wake the keeper.
    Events,
    /// A sample every few seconds; `reason` says why not the kernel's events.
    Sampled { reason: Option<String> },
}

/// What happened, for the machine to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// The keeper is set up: start the daemon, if its first record was written.
    Start { recorded: Result<(), String> },
    /// A wake-up: what is due at `now` runs, and a drain looks at what is left.
    Tick,
    /// The daemon's process was forked and waits at its start gate (see
    /// [`Effect::SpawnDaemon`]).
    Forked { id: ProcId },
    /// It exec'd the command.
    Spawned,
    /// It could not be started; `unrecorded` when only its record could not be written.
    SpawnFailed { reason: String, unrecorded: bool },
    /// A child of the keeper was reaped; `output` is the last lines it wrote, where the
    /// keeper read its output (`reload_command`).
    Reaped {
        pid: i32,
        exit: Exit,
        output: Vec<String>,
    },
    /// A stop: `dmgr stop`'s (`outside` none), or one from outside, `outside` saying who
    /// sent it.
    Stop { outside: Option<String> },
    /// `dmgr reload` asks, with its request's number.
    Reload { request: Option<u32> },
    /// `reload_signal` was sent to the daemon, or could not be.
    ReloadSignalled { result: Result<(), String> },
    /// A command the keeper runs started as `pid`.
    CommandStarted { command: Command, pid: i32 },
    /// It could not be started, for `reason`.
    CommandFailed { command: Command, reason: String },
    /// The probe asked for runs as the process `id`.
    ProbeStarted { id: ProcId },
    /// The probe asked for answered at once (a `file` check), or could not run.
    ProbeAnswered { passed: bool },
    /// `apply` handed over the supervision keys of the file as it is now (`None`: the
    /// file does not load).
    TakeOver(Option<Box<TakeOver>>),
    /// The kernel changed the cgroup's `memory.events`: the counters now.
    MemoryEvents(MemoryEvents),
    /// The hook asked for ([`Effect::RunHook`]) runs as `pid`.
    HookStarted { pid: i32 },
    /// It could not be started, for `reason`.
    HookFailed { reason: String },
    /// The wall clock was set (a schedule's times are worked out again).
    ClockChanged,
    /// `dmgr restart` asks (its request's number) for a start-first restart.
    Restart { request: Option<u32> },
    /// The daemon's cgroup is gone: `note` goes with the next `started` event, and
    /// memory is watched as `memory` says from now on.
    CgroupLost {
        note: String,
        memory: Option<MemoryMode>,
    },
    /// A datagram arrived on the notify socket from the process `pid` (0: one with no
    /// PID in the keeper's namespace), saying `message`.
    Notify { pid: i32, message: Notification },
    /// The daemon wrote a newline on `ready = { fd }`'s pipe, or a line that matches
    /// `ready = { log }`.
    SaidReady,
}

/// Supervision keys taken over from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TakeOver {
    /// The keys as they are now.
    pub(crate) supervision: Supervision,
    /// How memory can be watched with them.
    pub(crate) memory: Option<MemoryMode>,
}

/// What the machine asks the loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Start the daemon's process: fork it to wait at its start gate, answer
    /// [`Input::Forked`], write the pidfile and the record (which now name it), open the
    /// gate and answer [`Input::Spawned`]; or answer [`Input::SpawnFailed`]. `again`: a
    /// restart, which prepares the exec again (`env_file` is read at each start).
    SpawnDaemon { again: bool },
    /// Run `command`'s `argv` in the daemon's tree with `MAINPID` set to `main`; answer
    /// [`Input::CommandStarted`] or [`Input::CommandFailed`].
    RunCommand {
        command: Command,
        argv: Vec<String>,
        main: i32,
    },
    /// SIGKILL to a command the keeper runs, and to its process group.
    KillCommand { pid: i32 },
    /// Start one attempt of `check`, killed at `deadline`; answer
    /// [`Input::ProbeStarted`] or [`Input::ProbeAnswered`].
    StartProbe {
        check: ReadyCheck,
        deadline: Instant,
    },
    /// SIGKILL to the probe's process group.
    KillProbe { pid: i32 },
    /// A new drain begins: every process may get the stop signal once again.
    BeginDrain,
    /// `signal` to every process of the daemon (to the main process's group while the
    /// main process `main` is unreaped, and to each other one by identity).
    SignalAll { signal: Signal, main: Option<i32> },
    /// `signal`, then SIGCONT, to the process group of `pid`, an unreaped child of the
    /// keeper that leads it (a generation of a start-first restart).
    SignalGroup { pid: i32, signal: Signal },
    /// `signal`, then SIGCONT, by identity to each live process of the daemon's tree
    /// in the process group `group`, whose leader (a generation's main process) was
    /// reaped: what a generation left behind when it died.
    SignalLeftOfGroup { group: i32, signal: Signal },
    /// `signal`, then SIGCONT, to the main process `pid` alone.
    SignalMain { pid: i32, signal: Signal },
    /// `reload_signal` to the main process `pid`; answer [`Input::ReloadSignalled`].
    SendReloadSignal { pid: i32, signal: Signal },
    /// Write the daemon's PID to the pidfile.
    WritePid { pid: i32 },
    /// Empty the pidfile: no daemon process runs.
    ClearPidfile,
    /// Read what the log pipes hold into the logs.
    PumpLogs,
    /// The run ended: a partial last line goes to the log as it is.
    EndLogRun,
    /// Record `event`, the daemon's `exited`; first, if `dead` is given, remove the
    /// daemon's own pidfile if it still names that dead process, saying so in the
    /// event's message.
    RecordExit { event: Event, dead: Option<i32> },
    /// Append an event to the history.
    Record(Event),
    /// Write the state record, from [`Machine::write_record`] and what the loop knows.
    SaveRecord,
    /// Tell `dmgr start` how the start went.
    Report(Report),
    /// Run `hook`'s `argv` with the daemon's user, environment and directory plus
    /// `DMGR_NAME`, `DMGR_LOG` and `vars`, its output into the log with a prefix naming
    /// it; answer [`Input::HookStarted`] or [`Input::HookFailed`].
    RunHook {
        hook: Hook,
        argv: Vec<String>,
        vars: Vec<(String, String)>,
    },
    /// Keep `ms` (since the epoch) in the run directory as the last scheduled time
    /// accounted for, for `catch_up`.
    SaveLastRun { ms: u64 },
    /// The end: remove the cgroup, write the final record, remove the pidfile (which
    /// releases its lock), then leave the loop.
    Finish,
}

/// What the machine reads of the processes around the keeper when it needs to.
pub(crate) trait Facts: Processes + Leftovers {
    /// Returns true if and only if nothing of the daemon's is left: the keeper has no
    /// child, and its cgroup (if any) is empty.
    fn tree_is_empty(&self) -> bool;
    /// Returns true if and only if some process of the daemon's lives.
    fn anything_live(&self) -> bool;
    /// What the daemon's processes use, `leave_out` (a probe) left out.
    fn memory_usage(&self, leave_out: Option<i32>) -> Usage;
    /// The counters of the daemon's cgroup's `memory.events`, where memory is watched
    /// through them.
    fn memory_events(&self) -> Option<MemoryEvents>;
}
