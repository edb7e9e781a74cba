//! Reads of `/proc`: a process's identity (PID plus start time), state, process group,
//! memory, and the members of a process group. Safe code only; every read tolerates
//! the process vanishing underneath it.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A process identity that survives PID reuse: the PID and the kernel's start time of
/// the process in clock ticks since boot (`/proc/PID/stat` field 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    /// The process ID.
    pub pid: i32,
    /// Its start time in clock ticks after boot.
    pub start: u64,
}

impl ProcId {
    /// Reads the identity of a live process; `None` if it does not exist or is a zombie.
    pub fn of(pid: i32) -> Option<ProcId> {
        let stat = Stat::read(pid)?;
        (!stat.is_dead()).then_some(ProcId {
            pid,
            start: stat.start,
        })
    }

    /// Returns true if and only if this very process is still alive (not a zombie).
    pub fn is_alive(&self) -> bool {
        Stat::read(self.pid).is_some_and(|s| s.start == self.start && !s.is_dead())
    }
}

/// The fields of `/proc/PID/stat` that dmgr uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// The parent's PID.
    pub ppid: i32,
    /// The process group.
    pub pgrp: i32,
    /// The session.
    pub session: i32,
    /// Start time in clock ticks after boot.
    pub start: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
    /// CPU time used so far, user and system, in clock ticks (fields 14 and 15).
    pub cpu_ticks: u64,
}

impl Stat {
    /// Reads `/proc/PID/stat`; `None` if the process does not exist.
    pub fn read(pid: i32) -> Option<Stat> {
        if pid <= 0 {
            return None;
        }
        let bytes = crate::files::read(Path::new(&format!("/proc/{pid}/stat"))).ok()?;
        Stat::parse_bytes(&bytes)
    }

    /// Parses the text of `/proc/PID/stat`. The command name may hold spaces and
    /// parentheses, so fields are counted from the last `)`.
    pub fn parse(text: &str) -> Option<Stat> {
        Stat::parse_bytes(text.as_bytes())
    }

    /// [`Stat::parse`] of the file's bytes. The command name need not be UTF-8: the
    /// kernel cuts it at 15 bytes, which may split a character in two (a daemon
    /// `/usr/bin/éééééééé` is `ééééééé\xc3`), so only the fields after it are read
    /// as text.
    pub fn parse_bytes(bytes: &[u8]) -> Option<Stat> {
        let name_end = bytes.iter().rposition(|&b| b == b')')?;
        // The fields one by one, without collecting them: `list` reads one stat a
        // daemon, and needs only the first 22 of its 50 fields (issue 30).
        let mut fields = bytes[name_end + 1..]
            .split(u8::is_ascii_whitespace)
            .filter(|f| !f.is_empty());
        // `fields.next()` first is field 3 of proc(5).
        let mut next = |skip: usize| fields.nth(skip);
        let number = |field: Option<&[u8]>| std::str::from_utf8(field?).ok()?.parse::<u64>().ok();
        let id = |field: Option<&[u8]>| std::str::from_utf8(field?).ok()?.parse::<i32>().ok();
        let state = char::from(*next(0)?.first()?);
        let (ppid, pgrp, session) = (id(next(0))?, id(next(0))?, id(next(0))?);
        // Fields 14 and 15 (user and system time), 22 (start), 24 (RSS).
        let utime = number(next(7))?;
        let stime = number(next(0))?;
        let start = number(next(6))?;
        let rss_pages = number(next(1))?;
        Some(Stat {
            state,
            ppid,
            pgrp,
            session,
            start,
            rss_pages,
            cpu_ticks: utime + stime,
        })
    }

    /// Returns true if and only if the process has exited (zombie or dead).
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// Resident memory in bytes.
    pub fn rss_bytes(&self) -> u64 {
        self.rss_pages * page_size()
    }
}

/// Returns true if and only if process `id` is dying though /proc does not show it
/// dead yet: SIGKILL is pending (nothing blocks or catches it; a loaded machine may
/// take a while to run the process into its exit) or it is exiting (`PF_EXITING`,
/// flag 0x4 of field 9 of `/proc/PID/stat`). It never runs its own code again, but
/// holds its files (and their locks) and its children until the kernel is done.
pub fn is_dying(id: ProcId) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(text) = std::fs::read_to_string(format!("/proc/{}/stat", id.pid)) else {
        return false;
    };
    if !Stat::parse(&text).is_some_and(|s| s.start == id.start && !s.is_dead()) {
        return false;
    }
    // Field 9, counted from the last `)` as in `Stat::parse`.
    let flags = text[text.rfind(')').map_or(0, |i| i + 1)..]
        .split_ascii_whitespace()
        .nth(9 - 3)
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{}/status", id.pid)).unwrap_or_default();
    flags & PF_EXITING != 0
        || ["SigPnd:", "ShdPnd:"]
            .iter()
            .any(|field| mask_has(&status, field, libc::SIGKILL))
}

/// The memory of process `pid` in bytes: its proportional set size (`Pss` of
/// `/proc/PID/smaps_rollup`, Linux 4.14: a page shared by `n` processes counts `1/n`
/// for each, so a sum over processes counts shared memory once), else its resident
/// set size; `None` if it is gone.
pub fn proportional_memory(pid: i32) -> Option<u64> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        if let Some(bytes) = pss_of(&text) {
            return Some(bytes);
        }
    }
    Stat::read(pid).map(|stat| stat.rss_bytes())
}

/// The `Pss:` line of `smaps_rollup`, in bytes.
fn pss_of(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    let kib: u64 = line["Pss:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Clock ticks a second, the unit of [`Stat::cpu_ticks`] (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .and_then(|v| u64::try_from(v).ok())
            .filter(|&v| v > 0)
            .unwrap_or(100)
    })
}

fn page_size() -> u64 {
    static PAGE_SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE_SIZE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(4096)
    })
}

/// The live (non-zombie) members of process group `pgid` in session `session`, found
/// by scanning `/proc`.
pub fn group_members(pgid: i32, session: i32) -> Vec<i32> {
    pids()
        .filter(|&pid| {
            Stat::read(pid).is_some_and(|s| s.pgrp == pgid && s.session == session && !s.is_dead())
        })
        .collect()
}

/// Every live (non-zombie) process started at or after `since` (clock ticks after
/// boot) whose standard output or error is one of the pipes `inodes`, each by
/// identity. Processes this user may not inspect are left out.
pub fn pipe_writers(inodes: &[u64], since: u64) -> Vec<ProcId> {
    if inodes.is_empty() {
        return Vec::new();
    }
    let writes_to_one = |pid: i32| {
        [1, 2].iter().any(|fd| {
            fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .ok()
                .and_then(|target| {
                    let target = target.to_str()?;
                    target
                        .strip_prefix("pipe:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                })
                .is_some_and(|inode: u64| inodes.contains(&inode))
        })
    };
    pids()
        .filter_map(ProcId::of)
        .filter(|p| p.start >= since && writes_to_one(p.pid))
        .collect()
}

/// The children of `parent`, zombies included: from `/proc/PID/task/TID/children`
/// where the kernel has those files (one small read per thread), else by scanning
/// `/proc`. Empty once `parent` is gone.
pub fn children_of(parent: i32) -> Vec<i32> {
    let tasks = match fs::read_dir(format!("/proc/{parent}/task")) {
        Ok(tasks) => tasks,
        Err(_) => return Vec::new(),
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        match fs::read_to_string(task.path().join("children")) {
            Ok(text) => children.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            ),
            // CONFIG_PROC_CHILDREN is off, or the thread just ended: look at every
            // process's parent instead.
            Err(_) => {
                return pids()
                    .filter(|&pid| Stat::read(pid).is_some_and(|s| s.ppid == parent))
                    .collect()
            }
        }
    }
    children
}

/// The live children of `parent`, by identity. A child listed by [`children_of`] that
/// is dead when its identity is read has handed its own children to `parent` (when
/// `parent` is their subreaper) before it died, after the list was read: the list is
/// read again, so that a double fork's middle process, exiting at that instant, does
/// not hide the daemon it leaves behind.
pub fn live_children(parent: i32) -> Vec<ProcId> {
    settled_children(|| children_of(parent), ProcId::of)
}

/// [`live_children`] over the reads it is given: reads the children again while some
/// child listed in the last read died before its identity was read (at most a few
/// times: each read sees the hand-over of every child that died before it).
fn settled_children(
    read: impl Fn() -> Vec<i32>,
    identity: impl Fn(i32) -> Option<ProcId>,
) -> Vec<ProcId> {
    let mut dead: Vec<i32> = Vec::new();
    let mut live = Vec::new();
    for _ in 0..8 {
        live.clear();
        let mut died_meanwhile = false;
        for pid in read() {
            match identity(pid) {
                Some(id) => live.push(id),
                None if !dead.contains(&pid) => {
                    dead.push(pid);
                    died_meanwhile = true;
                }
                None => {}
            }
        }
        if !died_meanwhile {
            break;
        }
    }
    live
}

/// Every live (non-zombie) descendant of `ancestor`, by identity, parents before
/// their children. A process that exits meanwhile may hand its children up to a
/// subreaper between two reads: callers look again on the next SIGCHLD.
pub fn descendants(ancestor: i32) -> Vec<ProcId> {
    let mut found = Vec::new();
    let mut next = vec![ancestor];
    while let Some(parent) = next.pop() {
        for child in children_of(parent) {
            if let Some(id) = ProcId::of(child) {
                if !found.contains(&id) {
                    found.push(id);
                    next.push(child);
                }
            }
        }
    }
    found
}

/// This boot's ID (`/proc/sys/kernel/random/boot_id`), read once; `None` where the
/// kernel does not provide one.
pub fn boot_id() -> Option<&'static str> {
    static BOOT_ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            let text = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
            Some(text.trim().to_string()).filter(|id| !id.is_empty())
        })
        .as_deref()
}

/// Returns true if and only if process `pid` blocks signal number `signal` (its
/// `SigBlk` mask in `/proc/PID/status`): a keeper blocks the signals it reads from its
/// signalfd, so one that does not block the request signal would die of it.
pub fn blocks_signal(pid: i32, signal: i32) -> bool {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    mask_has(&text, "SigBlk:", signal)
}

/// Whether the hexadecimal signal mask on the `field` line of `status` text has
/// `signal` (bit `signal - 1`).
fn mask_has(status: &str, field: &str, signal: i32) -> bool {
    let Some(mask) = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        return false;
    };
    (1..=64).contains(&signal) && mask & (1 << (signal - 1)) != 0
}

/// The command line of `pid`, its arguments joined by spaces (at most `max` bytes,
/// cut at a character boundary); `None` if it is gone or has none (a kernel thread).
pub fn command_line(pid: i32, max: usize) -> Option<String> {
    let bytes = crate::files::read(Path::new(&format!("/proc/{pid}/cmdline"))).ok()?;
    let words: Vec<String> = bytes
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let mut line = words.join(" ");
    if line.is_empty() {
        return None;
    }
    if line.len() > max {
        let mut cut = max;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    Some(line)
}

/// The PIDs `/proc` lists now (none if it cannot be read).
pub fn pids() -> impl Iterator<Item = i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A double fork's middle process listed alive, then dead when its identity is
    /// read: it handed the daemon over meanwhile, and the second read finds it. Before,
    /// the look found no child at all ("left no process behind").
    #[test]
    fn a_child_that_dies_between_the_list_and_its_identity_is_looked_past() {
        use std::cell::Cell;
        let (middle, daemon) = (299, 300);
        let reads = Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            match reads.get() {
                1 => vec![middle],
                _ => vec![middle, daemon],
            }
        };
        let identity = |pid| (pid == daemon).then_some(ProcId { pid, start: 9 });
        assert_eq!(
            settled_children(read, identity),
            vec![ProcId {
                pid: daemon,
                start: 9
            }]
        );
        assert_eq!(reads.get(), 2, "read again once, then settled");
        // A zombie that stays listed (not reaped yet) does not make it read forever.
        let reads = Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            vec![middle]
        };
        assert_eq!(settled_children(read, |_| None), vec![]);
        assert_eq!(reads.get(), 2);
    }

    #[test]
    fn a_blocked_signal_is_read_from_the_status_mask() {
        let status = "Name:\tdmgr\nSigBlk:\t0000000000014003\nSigCgt:\t0\n";
        assert!(mask_has(status, "SigBlk:", 1) && mask_has(status, "SigBlk:", 2));
        assert!(!mask_has(status, "SigBlk:", 3));
        assert!(mask_has(status, "SigBlk:", 15) && mask_has(status, "SigBlk:", 17));
        assert!(!mask_has(status, "SigBlk:", 0) && !mask_has(status, "SigBlk:", 65));
        assert!(!mask_has("Name: x\n", "SigBlk:", 1));
        let me = std::process::id() as i32;
        assert!(
            !is_dying(ProcId::of(me).unwrap()),
            "a live process is not dying"
        );
        assert!(command_line(me, 4096).is_some_and(|c| !c.is_empty()));
        assert!(command_line(me, 3).is_some_and(|c| c.len() <= 6));
    }

    #[test]
    fn pss_is_read_from_smaps_rollup() {
        let text = "55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:  2048 kB\nPss:  1536 kB\nPss_Anon: 1000 kB\n";
        assert_eq!(pss_of(text), Some(1536 * 1024));
        assert_eq!(pss_of("Rss: 1 kB\n"), None);
    }

    #[test]
    fn stat_parses_names_with_spaces_and_parens() {
        let text = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 50 18446744073709551615";
        let stat = Stat::parse(text).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 1);
        assert_eq!(stat.pgrp, 42);
        assert_eq!(stat.session, 42);
        assert_eq!(stat.start, 123456);
        assert_eq!(stat.rss_pages, 50);
        assert_eq!(stat.cpu_ticks, 3, "utime 1 plus stime 2");
    }

    /// The kernel cuts a command name at 15 bytes, in the middle of a character if
    /// need be: such a process is still read (it was taken for gone, and `list`
    /// showed its daemon as not running).
    #[test]
    fn stat_of_a_process_whose_name_is_cut_inside_a_character_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("éééééééé");
        std::fs::copy("/bin/sleep", &program).unwrap();
        let mut child = std::process::Command::new(&program)
            .arg("30")
            .spawn()
            .unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let bytes = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
        let stat = Stat::read(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert!(std::str::from_utf8(&bytes).is_err(), "{bytes:?}");
        assert_eq!(stat.map(|s| s.ppid), Some(std::process::id() as i32));
    }

    /// A shell and the sleep it started in the background are both found below us.
    #[test]
    fn descendants_include_grandchildren() {
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let shell_pid = shell.id() as i32;
        let me = std::process::id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut below = Vec::new();
        while std::time::Instant::now() < deadline {
            below = descendants(me)
                .into_iter()
                .filter(|p| {
                    p.pid == shell_pid || Stat::read(p.pid).is_some_and(|s| s.ppid == shell_pid)
                })
                .collect();
            if below.len() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for pid in children_of(shell_pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = shell.kill();
        let _ = shell.wait();
        assert_eq!(below.len(), 2, "the shell and its sleep: {below:?}");
        assert_eq!(
            below[0].pid, shell_pid,
            "parents come before their children"
        );
    }

    #[test]
    fn own_identity_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcId::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let other = ProcId {
            start: me.start + 1,
            ..me
        };
        assert!(!other.is_alive());
        assert!(Stat::read(me.pid).unwrap().rss_bytes() > 0);
    }
}
