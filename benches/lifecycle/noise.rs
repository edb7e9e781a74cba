//! A shared machine makes timings lie. A thread samples every process's CPU time
//! every 2 s (and at each section's boundaries) and adds up what other programs
//! used, by command name, so each section can say whether it ran undisturbed.
//! The benchmark's processes leave its process tree (double forks), so they are
//! told apart by command lines: theirs, or an ancestor's, name this run's
//! temporary directories. A process that starts and exits between two samples
//! is counted in its parent, when reaped.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// One process as last sampled.
#[derive(Clone, Copy)]
struct Seen {
    /// Its CPU time plus that of the children it reaped.
    total: u64,
    ppid: i32,
    foreign: bool,
}

/// What the sampler knows: every process as last sampled, and the foreign ticks
/// added up since the last [`take`].
struct Sampler {
    me_start: u64,
    seen: HashMap<(i32, u64), Seen>,
    foreign: BTreeMap<String, u64>,
}

static SAMPLER: Mutex<Option<Sampler>> = Mutex::new(None);

/// Starts the sampling thread.
pub fn start() {
    let me_start = super::procfs::stat(std::process::id() as i32).map_or(0, |s| s.start);
    *lock() = Some(Sampler {
        me_start,
        seen: HashMap::new(),
        foreign: BTreeMap::new(),
    });
    sample();
    std::thread::spawn(|| loop {
        std::thread::sleep(Duration::from_secs(2));
        sample();
    });
}

fn lock() -> std::sync::MutexGuard<'static, Option<Sampler>> {
    SAMPLER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a process's CPU time is other load: not this benchmark's, not PID 1
/// (which reaps our orphans) and not a kernel thread (our writeback, softirqs).
/// Ours are this process and whatever has it, or a command line naming one of our
/// temporary directories, among its first few ancestors; and `sleep 100000`,
/// idle, whose parent is PID 1 after the floor's double fork.
fn is_foreign(pid: i32, comm: &str, ppid: i32) -> bool {
    if pid <= 2 || ppid == 2 {
        return false;
    }
    let cmdline = |pid: i32| {
        let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        String::from_utf8_lossy(&bytes).replace('\0', " ")
    };
    if comm == "sleep" && cmdline(pid).trim_end().ends_with(" 100000") {
        return false;
    }
    let me = std::process::id() as i32;
    let tag = super::temp_tag();
    let mut p = pid;
    for _ in 0..6 {
        if p == me || cmdline(p).contains(&tag) {
            return false;
        }
        match super::procfs::stat(p) {
            Some(stat) if stat.ppid > 1 => p = stat.ppid,
            _ => break,
        }
    }
    true
}

/// Reads every process's CPU time and adds what foreign ones used since last time.
/// A short-lived process is counted when its parent reaps it (its time moves into
/// the parent's `cutime`); a child counted while it lived is credited back then.
fn sample() {
    let mut guard = lock();
    let Some(sampler) = guard.as_mut() else {
        return;
    };
    let mut now = HashMap::new();
    let mut procs = Vec::new();
    for pid in super::procfs::pids() {
        if let Some((comm, stat)) = super::procfs::comm_and_stat(pid) {
            procs.push((pid, comm, stat));
            now.insert((pid, stat.start), ());
        }
    }
    // Processes gone since the last sample were reaped: their time, already
    // counted or from before we looked, now shows again in the parent's, or, if
    // the parent is gone too, in the first ancestor still alive.
    let gone: HashMap<i32, i32> = sampler
        .seen
        .iter()
        .filter(|(key, _)| !now.contains_key(key))
        .map(|(key, seen)| (key.0, seen.ppid))
        .collect();
    let mut credit: HashMap<i32, u64> = HashMap::new();
    for (key, seen) in &sampler.seen {
        if now.contains_key(key) {
            continue;
        }
        let mut heir = seen.ppid;
        for _ in 0..8 {
            match gone.get(&heir) {
                Some(&ppid) => heir = ppid,
                None => break,
            }
        }
        *credit.entry(heir).or_default() += seen.total;
    }
    let mut next = HashMap::new();
    for (pid, comm, stat) in procs {
        let total = stat.utime + stat.stime + stat.children;
        let key = (pid, stat.start);
        let (before, foreign) = match sampler.seen.get(&key) {
            Some(seen) => (seen.total, seen.foreign),
            None => {
                let foreign = is_foreign(pid, &comm, stat.ppid);
                // Started after us: all its time is new; else count from now.
                let before = if stat.start >= sampler.me_start {
                    0
                } else {
                    total
                };
                (before, foreign)
            }
        };
        let added = total
            .saturating_sub(before)
            .saturating_sub(credit.get(&pid).copied().unwrap_or(0));
        if foreign && added > 0 {
            *sampler.foreign.entry(comm).or_default() += added;
        }
        next.insert(
            key,
            Seen {
                total,
                ppid: stat.ppid,
                foreign,
            },
        );
    }
    sampler.seen = next;
}

/// The CPU seconds by command name since the last call, largest first.
pub fn take() -> Vec<(String, f64)> {
    sample();
    let hz = super::sys::clock_ticks_per_sec().max(1) as f64;
    let taken = lock()
        .as_mut()
        .map(|s| std::mem::take(&mut s.foreign))
        .unwrap_or_default();
    let mut out: Vec<(String, f64)> = taken
        .into_iter()
        .map(|(name, ticks)| (name, ticks as f64 / hz))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}
