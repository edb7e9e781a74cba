//! What a [`TestEnv`] kills when it goes, even after a panic: what `stop --all` left,
//! each process by identity (PID plus start time, the product's [`ProcId`]), so that a
//! PID reused meanwhile by a parallel test's daemon is never hit.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{procfs, sigkill, ProcId, Run, TestEnv};

impl TestEnv {
    /// Remembers `pid` to kill at the end (never PID 0 or 1). A zombie is remembered
    /// too: what is left in its session dies at the end.
    pub fn track(&self, pid: i32) {
        if let Some(s) = procfs::stat(pid) {
            self.track_identity(ProcId {
                pid,
                start: s.start,
            });
        }
    }

    /// Remembers the process `p` to kill at the end, with whatever is left in a
    /// session or process group it leads (never PID 0 or 1).
    pub fn track_identity(&self, p: ProcId) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if p.pid > 1 && !seen.contains(&p) {
            seen.push(p);
        }
    }

    /// Every cgroup a state record of this environment has named.
    pub fn cgroups(&self) -> Vec<PathBuf> {
        self.remember();
        self.cgroups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Every process this environment has seen.
    pub fn seen(&self) -> Vec<ProcId> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the keepers and daemons named in state records and pidfiles.
    pub(super) fn remember(&self) {
        let Ok(entries) = fs::read_dir(self.run_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            // A test may plant a FIFO here; opening it would block.
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".state") {
                if let Some(record) = self.record(stem) {
                    if let Some(cgroup) = record.cgroup {
                        self.cgroups
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(cgroup);
                    }
                    for p in std::iter::once(record.keeper).chain(record.daemon) {
                        self.track_identity(p);
                    }
                }
            } else if let Some(stem) = name.strip_suffix(".pid") {
                if let Some(pid) = self.pid(stem) {
                    self.track(pid);
                }
            }
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.remember();
        if let Ok(child) = self.command(&["stop", "--all"]).spawn() {
            let _ = Run::try_wait(child, Duration::from_secs(30));
        }
        // What is still in a daemon's cgroup dies with it, and the cgroup goes.
        for cgroup in &self.cgroups() {
            let _ = fs::write(cgroup.join("cgroup.kill"), "1");
            let deadline = Instant::now() + Duration::from_secs(5);
            while cgroup.exists() && fs::remove_dir(cgroup).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Whatever `stop` missed dies now, each process checked by identity just before
        // its signal.
        for p in leftovers(&self.seen()) {
            if p.is_alive() {
                let _ = sigkill(p.pid);
            }
        }
    }
}

/// The live processes among `seen`, and the live members of every session and process
/// group one of them leads (a daemon's PID is its session ID and its group ID).
///
/// Such an ID stays allocated while any member lives, so members are ours even when
/// their leader is gone; but once they are all gone, the kernel may hand the number to a
/// parallel test's daemon, whose session is not ours. So an ID counts only while the PID
/// is free or still names the very process seen (maybe as a zombie), checked before and
/// after the scan, and a member only if it started no earlier than that process.
fn leftovers(seen: &[ProcId]) -> Vec<ProcId> {
    let names_seen = |p: &ProcId| procfs::stat(p.pid).is_none_or(|s| s.start == p.start);
    let leaders: Vec<ProcId> = seen.iter().copied().filter(names_seen).collect();
    let mut found: Vec<(ProcId, ProcId)> = Vec::new();
    for pid in procfs::pids() {
        let Some(s) = procfs::stat(pid).filter(|s| !s.is_dead()) else {
            continue;
        };
        for leader in &leaders {
            if (s.session == leader.pid || s.pgrp == leader.pid) && s.start >= leader.start {
                found.push((
                    ProcId {
                        pid,
                        start: s.start,
                    },
                    *leader,
                ));
            }
        }
    }
    let mut doomed: Vec<ProcId> = seen.iter().copied().filter(ProcId::is_alive).collect();
    for (member, leader) in found {
        if names_seen(&leader) && !doomed.contains(&member) {
            doomed.push(member);
        }
    }
    doomed
}
