//! The one `/proc` scanner of the tests and the benchmark (which includes this file
//! with `#[path]`): the fields of `/proc/PID/stat` either needs, the PIDs `/proc` lists,
//! and the processes found by group, session or command line. A process's identity is
//! the product's own [`ProcId`] (PID plus start time). Every read tolerates the process
//! vanishing underneath it; a zombie counts as dead (PID 1 reaps lazily here).

// Each user takes what it needs.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::Read;

pub use dmgr::procinfo::ProcId;

/// The fields of `/proc/PID/stat` the tests and the benchmark use.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    pub tty_nr: i32,
    pub utime: u64,
    pub stime: u64,
    /// CPU time of reaped children (`cutime + cstime`).
    pub children: u64,
    /// Start time in clock ticks after boot.
    pub start: u64,
}

impl Stat {
    /// Whether the process has exited (a zombie, or dead).
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Reads `/proc/PID/stat` into a stack buffer; `None` if the process is gone.
pub fn stat(pid: i32) -> Option<Stat> {
    comm_and_stat(pid).map(|(_, stat)| stat)
}

/// The command name (from between the parentheses) and the fields of
/// `/proc/PID/stat`, in one read.
pub fn comm_and_stat(pid: i32) -> Option<(String, Stat)> {
    if pid <= 0 {
        return None;
    }
    let mut buf = [0u8; 1024];
    let mut file = File::open(format!("/proc/{pid}/stat")).ok()?;
    let len = file.read(&mut buf).ok()?;
    let text = &buf[..len];
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let comm = String::from_utf8_lossy(text.get(open + 1..close)?).into_owned();
    Some((comm, parse_stat(text)?))
}

/// Parses the text of `/proc/PID/stat`; the command name may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &[u8]) -> Option<Stat> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state); field k is f[k - 3].
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
        tty_nr: f.get(4)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
        children: f.get(13)?.parse::<u64>().ok()? + f.get(14)?.parse::<u64>().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

/// Every PID in `/proc`.
pub fn pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` is alive; a zombie counts as dead.
pub fn is_alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| !s.is_dead())
}

/// Live processes whose `/proc/PID/stat` satisfies `wanted`.
fn live_where(wanted: impl Fn(&Stat) -> bool) -> Vec<i32> {
    pids()
        .into_iter()
        .filter(|&pid| stat(pid).is_some_and(|s| !s.is_dead() && wanted(&s)))
        .collect()
}

/// Live members of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    live_where(|s| s.pgrp == pgid)
}

/// Live processes whose session is one of `sessions`. Sessions 0 and 1 are never
/// anyone's daemon (in a container, processes whose session leader is outside the PID
/// namespace show session 0) and match nothing.
pub fn session_members(sessions: &[i32]) -> Vec<i32> {
    let sessions: Vec<i32> = sessions.iter().copied().filter(|&s| s > 1).collect();
    live_where(|s| sessions.contains(&s.session))
}

/// Live processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<i32> {
    pids()
        .into_iter()
        .filter(|&pid| {
            is_alive(pid)
                && fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
        })
        .collect()
}

/// Copies of a daemon whose command line contains `needle`: the live processes with it
/// whose parent lacks it. A shell daemon forks for every command it runs, and until
/// that child execs it carries the shell's command line too; it is not a copy.
pub fn copies_of(needle: &str) -> Vec<i32> {
    let marked = processes_with(needle);
    marked
        .iter()
        .copied()
        .filter(|&pid| stat(pid).is_none_or(|s| !marked.contains(&s.ppid)))
        .collect()
}

/// The environment of process `pid`, by name.
pub fn environ(pid: i32) -> std::collections::BTreeMap<String, String> {
    let bytes = fs::read(format!("/proc/{pid}/environ")).unwrap();
    bytes
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (k, v) = text.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}
