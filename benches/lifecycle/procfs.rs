//! Reads of `/proc` that tolerate processes vanishing underneath: the scanner the
//! integration tests use (process stat fields, PIDs, identities), and the bench's own
//! memory and load figures.

use std::collections::BTreeMap;

#[path = "../../tests/support/procfs.rs"]
mod shared;

pub use shared::*;

/// The command name of a process (`/proc/PID/comm`).
pub fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// A `Name:   123 kB` field of smaps text, in KiB.
pub fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// PSS and Private_Dirty of a process summed by mapping, largest PSS first.
pub fn smaps_breakdown(pid: i32) -> Vec<(String, u64, u64)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Vec::new();
    };
    let mut sums: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping header: address perms offset dev inode [path].
            let perms = words.next().unwrap_or("");
            let path = words.nth(3).unwrap_or("[anon]");
            let short = path.rsplit('/').next().unwrap_or(path);
            current = format!("{short} ({perms})");
        } else if first == "Pss:" {
            let v: u64 = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            sums.entry(current.clone()).or_default().0 += v;
        } else if first == "Private_Dirty:" {
            let v: u64 = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            sums.entry(current.clone()).or_default().1 += v;
        }
    }
    let mut out: Vec<(String, u64, u64)> = sums.into_iter().map(|(k, (p, d))| (k, p, d)).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out.retain(|e| e.1 > 0);
    out
}

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// All CPUs' time in clock ticks since boot, and the part of it stolen by the
/// hypervisor, from the `cpu` line of `/proc/stat`.
pub fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest times are in user).
    Some((v.iter().take(8).sum(), *v.get(7)?))
}
