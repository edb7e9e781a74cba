//! The holder: a keeper's parent, which keeps the daemon's output pipes open and its
//! processes in reach when the keeper dies (issue 22, findings 9 and 10).
//!
//! A keeper reads its daemon's output from pipes. Were it the only reader, its death
//! (SIGKILL, the OOM killer) would leave the pipes without one: the daemon's next
//! write would kill it with SIGPIPE, and whatever sat in the pipes would be lost.
//! daemontools, runit and s6 solved this long ago: the supervisor opens the pipe and
//! keeps both ends, so a logger that dies and comes back finds the data waiting.
//! dmgr's keepers have no supervisor above them, so each gets one of its own: the
//! middle process of the classic double fork stays, as the holder.
//!
//! The launcher forks the holder; the holder calls setsid(2), creates the output
//! pipes, makes itself a child subreaper and forks the keeper, which uses those pipes
//! and tells the holder where the logs go (a [`Settings`] message left in a pipe, see `keeper::handoff`). The
//! holder then only waits for the keeper, asleep in waitpid(2), holding the pipes'
//! read ends: it costs no CPU, and as a fork that writes almost nothing it shares all
//! but a few pages with the keepers. When the keeper exits:
//!
//! - the daemon's output goes on: the holder drains the pipes into the logs (whole
//!   lines, the keeper's rotation and timestamps), so the daemon keeps running and
//!   logging, and nothing left in the pipes is lost;
//! - the daemon and everything it started are the holder's descendants (a subreaper
//!   inherits the orphans of the keeper's tree), also a forking daemon's process
//!   that the keeper had not adopted yet: the state record names the holder, and
//!   `stop` and `start` find them there (`leftovers`) even without a cgroup;
//! - the holder reaps them as they exit and ends once none is left and every writer
//!   of the pipes is gone. After a keeper's normal exit that is at once.
//!
//! A keeper's restarted daemon writes into the same pipes: they live as long as the
//! keeper. The holder never reads while the keeper lives: one reader at a time.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::config::Dirs;
use crate::events::{self, Event, Kind};
use crate::keeper::handoff::{Handoff, Settings, SettingsPipe};
use crate::keeper::logpipe::{LogSink, Notice};
use crate::keeper::report::{Report, Reporter};
use crate::sys;
use crate::Result;

/// How the holder's and the keeper's titles are set, once each knows which it is.
pub(super) struct Titles {
    /// The argument area, if it was found.
    pub(super) area: Option<sys::ArgumentArea>,
    /// The bytes of it each title may use.
    pub(super) prefix: usize,
    /// The keeper's title.
    pub(super) keeper: Vec<OsString>,
}

impl Titles {
    fn set(&self, single: &sys::SingleThreaded, title: &[OsString]) {
        if let Some(area) = self.area {
            area.set_title(single, title, self.prefix);
        }
    }

    /// The holder's title: the keeper's with `__holder` for `__keeper`, and without
    /// the notify descriptor, which the holder does not hold.
    fn holder(&self) -> Vec<OsString> {
        let mut title: Vec<OsString> = self
            .keeper
            .iter()
            .map(|word| match word.to_str() {
                Some("__keeper") => "__holder".into(),
                _ => word.clone(),
            })
            .collect();
        if title.len() >= 2 && title[title.len() - 2] == "--notify-fd" {
            title.truncate(title.len() - 2);
        }
        title
    }
}

/// Runs in the launcher's child for daemon `name`: becomes its holder, forks its
/// keeper (which runs [`crate::keeper::run`] and returns its result here) and holds.
pub(super) fn run(
    dirs: &Dirs,
    name: &str,
    notify: Option<File>,
    single: sys::SingleThreaded,
    titles: Titles,
) -> Result<u8> {
    // A session of its own, as the middle process of a double fork: the keeper,
    // not its leader, can never acquire a controlling terminal.
    let _ = nix::unistd::setsid();
    // Like its keeper, the holder outlives the shell that started it.
    let _ = std::env::set_current_dir("/");
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC);
    let pipes = pipe().and_then(|out| Ok((out, pipe()?, pipe()?)));
    let (out, err, (settings_read, settings_write)) = match pipes {
        Ok(pipes) => pipes,
        Err(e) => return Ok(fail(notify, &format!("cannot create a pipe: {e}"))),
    };
    // The keeper's orphans are its own (it is a subreaper too, and nearer); once it
    // is gone, they are ours.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    match sys::fork(&single) {
        Err(e) => Ok(fail(notify, &format!("cannot start a keeper: {e}"))),
        Ok(sys::Forked::Child) => {
            drop(settings_read);
            titles.set(&single, &titles.keeper);
            let handoff = Handoff {
                out,
                err,
                settings: SettingsPipe::new(settings_write),
            };
            crate::keeper::run(dirs, name, notify, single, Some(handoff))
        }
        Ok(sys::Forked::Parent(keeper)) => {
            // Only the keeper reports, and only its death may end `start`'s wait.
            drop(notify);
            drop((out.1, err.1, settings_write));
            titles.set(&single, &titles.holder());
            Ok(hold(keeper, [out.0, err.0], settings_read))
        }
    }
}

/// Reports a failed start on `notify`; the exit code.
fn fail(notify: Option<File>, reason: &str) -> u8 {
    Reporter::new(notify).send(&Report::Failed {
        reason: reason.to_string(),
    });
    1
}

/// Waits for the keeper, then drains the pipes and reaps until nothing is left.
fn hold(keeper: i32, pipes: [OwnedFd; 2], settings: OwnedFd) -> u8 {
    // Asleep until the keeper dies, perhaps for days: its stack below this frame and
    // its mappings of dmgr's code go back (not its heap: see `sys::release_mappings`).
    sys::release_mappings();
    // While the keeper lives it is our only child: its orphans go to it.
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(keeper), None) {
            Err(Errno::EINTR) => continue,
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    let mut bytes = Vec::new();
    let _ = File::from(settings).read_to_end(&mut bytes);
    let settings: Option<Settings> = serde_json::from_slice(&bytes).ok();
    take_over(pipes, settings.as_ref());
    0
}

/// The keeper is gone: writes what comes through the pipes to the logs and reaps the
/// daemon's processes, until every writer of the pipes has closed them and no child
/// is left.
fn take_over(pipes: [OwnedFd; 2], settings: Option<&Settings>) {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    let _ = mask.thread_block();
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok();
    let mut open: Vec<Option<OwnedFd>> = pipes.into_iter().map(Some).collect();
    let mut sinks: [Option<LogSink>; 2] = [None, None];
    let mut buffer: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let children = reap();
        if !children && open.iter().all(Option::is_none) {
            break;
        }
        let mut fds: Vec<PollFd> = Vec::with_capacity(3);
        if let Some(signals) = &signals {
            fds.push(PollFd::new(signals.as_fd(), PollFlags::POLLIN));
        }
        let watched: Vec<usize> = (0..open.len()).filter(|&i| open[i].is_some()).collect();
        for &i in &watched {
            if let Some(fd) = &open[i] {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
        }
        // Without a signalfd, look for exited children once a second.
        let timeout = match signals {
            Some(_) => PollTimeout::NONE,
            None => PollTimeout::from(1000u16),
        };
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break,
        }
        drop(fds);
        if let Some(signals) = &signals {
            while let Ok(Some(_)) = signals.read_signal() {}
        }
        for i in watched {
            let Some(fd) = &open[i] else { continue };
            let ended = loop {
                match sys::read_spare(fd.as_fd(), &mut buffer) {
                    Ok([]) => break true,
                    Ok(read) => {
                        if let Some(sink) = sink(&mut sinks[i], settings, i) {
                            sink.write_output(read);
                        }
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => break false,
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                    Err(_) => break true,
                }
            };
            if ended {
                open[i] = None;
            }
        }
        if let Some(settings) = settings {
            record_notices(&mut sinks, settings);
        }
    }
}

/// The sink of pipe `index` (0 standard output, 1 standard error), opened on first
/// use: the keeper has closed its own by then. `None` when there is nowhere to write.
fn sink<'a>(
    slot: &'a mut Option<LogSink>,
    settings: Option<&Settings>,
    index: usize,
) -> Option<&'a mut LogSink> {
    if slot.is_none() {
        let s = settings?;
        let path = match index {
            0 => &s.log,
            _ => s.stderr_log.as_ref()?,
        };
        *slot = LogSink::open_continuing(path, s.max_size, s.keep, s.timestamps).ok();
    }
    slot.as_mut()
}

/// Reaps every exited child; returns whether any child is left.
fn reap() -> bool {
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return true,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Records the sinks' notices as the keeper would have (see `Keeper::take_log_notices`).
fn record_notices(sinks: &mut [Option<LogSink>; 2], settings: &Settings) {
    for sink in sinks.iter_mut().flatten() {
        for notice in sink.take_notices() {
            let event = Event::now(&settings.name, Kind::LogError);
            let event = match notice {
                Notice::Failed(error) => event.message(error),
                Notice::Resumed { dropped, error } => {
                    let mut event = Event::now(&settings.name, Kind::LogResumed)
                        .message(LogSink::resumed_message(dropped, &error));
                    event.dropped_lines = Some(dropped);
                    event
                }
            };
            events::append(&settings.events, &event);
        }
    }
}
