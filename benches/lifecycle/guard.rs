//! Everything the bench starts lives under a [`Scope`], a temporary directory. A
//! scope's drop, the panic hook and SIGINT/SIGTERM/SIGHUP all lead to the same
//! cleanup: `dmgr stop --all` for each dmgr config, then SIGKILL to every keeper
//! and daemon process group its state records name, to every process whose command
//! line mentions the scope's directory, to every `sleep` named in its pidfile
//! directories, and to runit's `runsvdir`, `runsv`s and services, in that order.
//! Each target is identity-checked (start time after the bench began,
//! or matching the recorded one), so no unrelated process is ever signalled.

use super::*;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

struct Entry {
    id: u64,
    temp: tempfile::TempDir,
    dmgr: Vec<(PathBuf, PathBuf, PathBuf)>,
    pidfile_dirs: Vec<PathBuf>,
    runit: Vec<PathBuf>,
}

static ENTRIES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
/// Held by whoever is cleaning up, so that `main` does not return mid-cleanup.
static CLEANING: Mutex<()> = Mutex::new(());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
/// This process's start time in clock ticks; what we start begins after it.
static BENCH_START: AtomicU64 = AtomicU64::new(0);

/// Installs the panic hook, the SIGINT/SIGTERM/SIGHUP handler and the thread that
/// cleans up when one arrives.
pub fn install() {
    let me = procfs::stat(std::process::id() as i32).map_or(0, |s| s.start);
    BENCH_START.store(me, Ordering::SeqCst);
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        cleanup_all();
    }));
    match sys::pipe_cloexec() {
        Ok((read, write)) => {
            SIGNAL_PIPE.store(write, Ordering::SeqCst);
            let handler = nix::sys::signal::SigAction::new(
                nix::sys::signal::SigHandler::Handler(on_signal),
                nix::sys::signal::SaFlags::SA_RESTART,
                nix::sys::signal::SigSet::empty(),
            );
            for signal in [
                nix::sys::signal::Signal::SIGINT,
                nix::sys::signal::Signal::SIGTERM,
                nix::sys::signal::Signal::SIGHUP,
            ] {
                // SAFETY: `on_signal` only makes one write(2), which is
                // async-signal-safe, to a pipe that stays open for our whole life.
                let _ = unsafe { nix::sys::signal::sigaction(signal, &handler) };
            }
            std::thread::spawn(move || {
                let mut read = File::from(read);
                let mut byte = [0u8; 1];
                if matches!(read.read(&mut byte), Ok(1)) {
                    eprintln!("lifecycle: signal {}: cleaning up", byte[0]);
                    SHUTTING_DOWN.store(true, Ordering::SeqCst);
                    cleanup_all();
                    std::process::exit(130);
                }
            });
        }
        Err(e) => eprintln!("lifecycle: no cleanup on Ctrl-C: {e}"),
    }
}

/// The write end of the self-pipe the signal handler writes to.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

/// A signal handler that only writes the signal number to the self-pipe. A handler,
/// not a blocked mask and sigwait: std's `Command` passes the signal mask on to
/// children, and a blocked SIGTERM would make every daemon immune to `stop`.
extern "C" fn on_signal(signal: libc::c_int) {
    let byte = signal as u8;
    let fd = SIGNAL_PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// A temporary directory and what runs in it; dropping it cleans both up.
pub struct Scope {
    id: u64,
    path: PathBuf,
}

impl Scope {
    pub fn new(prefix: &str) -> io::Result<Scope> {
        if SHUTTING_DOWN.load(Ordering::SeqCst) {
            return Err(io::Error::other("interrupted"));
        }
        let temp = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
        let path = temp.path().to_path_buf();
        entries().push(Entry {
            id,
            temp,
            dmgr: Vec::new(),
            pidfile_dirs: Vec::new(),
            runit: Vec::new(),
        });
        Ok(Scope { id, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Registers a dmgr config and run directory to stop on cleanup.
    pub fn track_dmgr(&self, bin: &Path, config: &Path, run: &Path) {
        self.with(|e| {
            e.dmgr
                .push((bin.to_path_buf(), config.to_path_buf(), run.to_path_buf()))
        });
    }

    /// Registers a directory of pidfiles whose `sleep`s to kill on cleanup.
    pub fn track_pidfiles(&self, dir: &Path) {
        self.with(|e| e.pidfile_dirs.push(dir.to_path_buf()));
    }

    /// Registers a runit scan directory whose `runsvdir`, `runsv`s and services to
    /// kill on cleanup.
    pub fn track_runit(&self, scan: &Path) {
        self.with(|e| e.runit.push(scan.to_path_buf()));
    }

    /// Kills the sleeps named in one pidfile directory and removes the pidfiles.
    pub fn kill_pidfile_processes(&self, dir: &Path) {
        while kill_pidfile_sleeps(dir) > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.filter_map(Result::ok) {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Kills whatever dmgr left behind in this scope (after a failed round).
    pub fn kill_dmgr_leftovers(&self) {
        let runs: Vec<PathBuf> = {
            let all = entries();
            all.iter()
                .filter(|e| e.id == self.id)
                .flat_map(|e| e.dmgr.iter().map(|d| d.2.clone()))
                .collect()
        };
        for run in runs {
            kill_recorded(&run);
        }
        kill_mentioning(&self.path, true);
    }

    fn with(&self, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = entries().iter_mut().find(|e| e.id == self.id) {
            f(e);
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let taken: Vec<Entry> = {
            let mut all = entries();
            let (mine, rest): (Vec<Entry>, Vec<Entry>) =
                all.drain(..).partition(|e| e.id == self.id);
            *all = rest;
            mine
        };
        let _cleaning = CLEANING.lock().unwrap_or_else(PoisonError::into_inner);
        taken.into_iter().for_each(clean);
    }
}

/// Once a signal has started the cleanup, the main thread stops here, at its next
/// command, rather than start processes or recreate directories behind it.
pub fn checkpoint() {
    while SHUTTING_DOWN.load(Ordering::SeqCst) {
        std::thread::park();
    }
}

fn entries() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    ENTRIES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Cleans every scope; safe to call more than once and from any thread.
pub fn cleanup_all() {
    let _cleaning = CLEANING.lock().unwrap_or_else(PoisonError::into_inner);
    let taken: Vec<Entry> = entries().drain(..).collect();
    taken.into_iter().for_each(clean);
}

fn clean(entry: Entry) {
    // Commands in flight first (a `dmgr start` or a floor start may still be
    // creating processes), then a graceful stop, then SIGKILL for what is left.
    // A child forked by a command just killed can still write its pidfile and
    // exec, so the passes repeat until one finds nothing.
    while kill_mentioning(entry.temp.path(), false) > 0 {
        std::thread::sleep(Duration::from_millis(20));
    }
    for scan in &entry.runit {
        kill_runit(scan);
    }
    for (bin, config, run) in &entry.dmgr {
        let child = Command::new(bin)
            .arg("--config-dir")
            .arg(config)
            .arg("--run-dir")
            .arg(run)
            .args(["-q", "stop", "--all"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            let _ = wait_deadline(&mut child, Duration::from_secs(60));
        }
    }
    for _ in 0..10 {
        let mut killed = kill_mentioning(entry.temp.path(), true);
        for (_, _, run) in &entry.dmgr {
            killed += kill_recorded(run);
        }
        for dir in &entry.pidfile_dirs {
            killed += kill_pidfile_sleeps(dir);
        }
        if killed == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(entry.temp);
}

fn started_by_us(start: u64) -> bool {
    start >= BENCH_START.load(Ordering::SeqCst)
}

/// SIGKILLs the keepers and daemon process groups that a run directory's state
/// records name, when the recorded identity still matches.
fn kill_recorded(run: &Path) -> usize {
    let Ok(entries) = fs::read_dir(run) else {
        return 0;
    };
    let mut killed = 0;
    let mut groups = Vec::new();
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.extension().is_none_or(|x| x != "state") {
            continue;
        }
        let Some((keeper, daemon)) = state_ids(&path) else {
            continue;
        };
        if let Some(k) = keeper.filter(|k| k.is_alive() && started_by_us(k.start)) {
            sys::kill(k.pid, libc::SIGKILL);
            killed += 1;
        }
        if let Some(d) = daemon.filter(|d| started_by_us(d.start)) {
            groups.push(d.pid);
        }
    }
    if groups.is_empty() {
        return killed;
    }
    // A daemon's process group is led by the daemon; members may outlive it.
    for pid in procfs::pids() {
        if let Some(s) = procfs::stat(pid) {
            if groups.contains(&s.pgrp) && s.state != 'Z' && started_by_us(s.start) {
                sys::killpg(s.pgrp, libc::SIGKILL);
                killed += 1;
            }
        }
    }
    killed
}

/// SIGKILLs every process started after us whose command line mentions `dir`:
/// dmgr commands, `__floor` and `__ssd` runners, and keepers (and their holders) too
/// if `keepers` (they carry `--config-dir DIR/...` and `__keeper` or `__holder`).
fn kill_mentioning(dir: &Path, keepers: bool) -> usize {
    let needle = dir.as_os_str().as_bytes();
    if needle.len() < 8 {
        return 0;
    }
    let mut killed = 0;
    let me = std::process::id() as i32;
    for pid in procfs::pids() {
        if pid == me {
            continue;
        }
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let is_keeper = cmdline
            .split(|&b| b == 0)
            .any(|arg| arg == b"__keeper" || arg == b"__holder");
        if cmdline.windows(needle.len()).any(|w| w == needle)
            && (keepers || !is_keeper)
            && procfs::stat(pid).is_some_and(|s| s.state != 'Z' && started_by_us(s.start))
        {
            sys::kill(pid, libc::SIGKILL);
            killed += 1;
        }
    }
    killed
}

/// SIGKILLs a runit tree: the `runsvdir` whose command line names `scan` first (so
/// that it starts no `runsv`), then each `runsv` (so that it restarts no service),
/// then the services, until a pass finds none. A process is ours when it started after
/// us and runs in `scan`: `runsv` and its services run in their service's directory.
pub fn kill_runit(scan: &Path) {
    let Ok(scan) = scan.canonicalize() else {
        return;
    };
    let needle = scan.as_os_str().as_bytes();
    let ours = |pid: i32| procfs::stat(pid).is_some_and(|s| !s.is_dead() && started_by_us(s.start));
    for pid in procfs::pids() {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if procfs::comm(pid).as_deref() == Some("runsvdir")
            && cmdline.windows(needle.len()).any(|w| w == needle)
            && ours(pid)
        {
            sys::kill(pid, libc::SIGKILL);
        }
    }
    for _ in 0..50 {
        let inside: Vec<i32> = procfs::pids()
            .into_iter()
            .filter(|&pid| {
                fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&scan))
                    && ours(pid)
            })
            .collect();
        if inside.is_empty() {
            return;
        }
        let (runsvs, services): (Vec<i32>, Vec<i32>) = inside
            .into_iter()
            .partition(|&pid| procfs::comm(pid).as_deref() == Some("runsv"));
        for pid in runsvs.into_iter().chain(services) {
            sys::kill(pid, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILLs each live `sleep` started after us whose PID a pidfile in `dir` holds.
fn kill_pidfile_sleeps(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut killed = 0;
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        let Some(pid) = fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        else {
            continue;
        };
        let ours = procfs::stat(pid).is_some_and(|s| s.state != 'Z' && started_by_us(s.start));
        if ours && procfs::comm(pid).as_deref() == Some("sleep") {
            sys::kill(pid, libc::SIGKILL);
            killed += 1;
        }
    }
    killed
}
