//! Keepers: their memory (read the same way for runit's `runsv`s) and idle CPU.

use super::*;

pub(crate) use procfs::ProcId;

/// The identities in `RUN/NAME.state` (`keeper`, `daemon`), as dmgr reads them
/// (`dmgr::state`, which retries a torn read).
pub(crate) fn state_ids(path: &Path) -> Option<(Option<ProcId>, Option<ProcId>)> {
    let record = dmgr::state::read(path)?;
    Some((Some(record.keeper), record.daemon))
}

/// The live keepers recorded in a run directory.
pub(crate) fn keepers(run: &Path) -> Vec<ProcId> {
    let Ok(entries) = fs::read_dir(run) else {
        return Vec::new();
    };
    let mut ids: Vec<ProcId> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "state"))
        .filter_map(|p| state_ids(&p)?.0)
        .filter(|k| k.is_alive())
        .collect();
    ids.sort_by_key(|k| k.pid);
    ids
}

/// Gives each live keeper's record that has none the definition its keeper would
/// record: its file's identity (`list`'s fast path, issue 15). Returns how many it
/// gave; none once keepers record it themselves.
pub(crate) fn record_identities(config: &Path, run: &Path) -> Result<usize, String> {
    let mut given = 0;
    let entries = fs::read_dir(run).map_err(|e| format!("{}: {e}", run.display()))?;
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.extension().is_none_or(|x| x != "state") {
            continue;
        }
        let Some(mut record) = dmgr::state::read(&path) else {
            continue;
        };
        if record.definition.is_some() || !record.keeper.is_alive() {
            continue;
        }
        let file = config.join(format!("{}.toml", record.name));
        let identity = dmgr::state::FileIdentity::of(&file)
            .filter(dmgr::state::FileIdentity::is_trusted)
            .ok_or_else(|| format!("{}: no trusted identity", file.display()))?;
        record.definition = Some(dmgr::state::Definition {
            file: identity,
            after: Vec::new(),
            description: None,
        });
        dmgr::state::write(&path, &record).map_err(|e| format!("{}: {e}", path.display()))?;
        given += 1;
    }
    Ok(given)
}

pub(crate) fn keeper_memory(run: &Path) -> Result<Memory, String> {
    memory_of(&keepers(run))
}

/// The live holders recorded in a run directory (each keeper's parent, which keeps
/// the daemon's output pipes open should the keeper die).
pub(crate) fn holders(run: &Path) -> Vec<ProcId> {
    let Ok(entries) = fs::read_dir(run) else {
        return Vec::new();
    };
    let mut ids: Vec<ProcId> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "state"))
        .filter_map(|p| dmgr::state::read(&p)?.holder)
        .map(|h| ProcId {
            pid: h.pid,
            start: h.start,
        })
        .filter(|h| h.is_alive())
        .collect();
    ids.sort_by_key(|h| h.pid);
    ids
}

pub(crate) fn holder_memory(run: &Path) -> Result<Memory, String> {
    memory_of(&holders(run))
}

/// The memory of each of `processes` (dmgr's keepers, runit's `runsv`s) from
/// `/proc/PID/smaps_rollup`, and the breakdown of the median one.
pub(crate) fn memory_of(keepers: &[ProcId]) -> Result<Memory, String> {
    sync();
    if keepers.is_empty() {
        return Err("no live process found".into());
    }
    let mut memory = Memory::default();
    let mut by_pss = Vec::new();
    for keeper in keepers {
        let path = format!("/proc/{}/smaps_rollup", keeper.pid);
        let text = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let field = |name: &str| procfs::kb_field(&text, name).unwrap_or(0);
        memory.pss_kb.push(field("Pss:"));
        memory.rss_kb.push(field("Rss:"));
        memory.private_dirty_kb.push(field("Private_Dirty:"));
        by_pss.push((field("Pss:"), keeper.pid));
    }
    by_pss.sort_unstable();
    let median_pid = by_pss[by_pss.len() / 2].1;
    memory.breakdown = procfs::smaps_breakdown(median_pid);
    memory.threads = fs::read_to_string(format!("/proc/{median_pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0);
    Ok(memory)
}

pub(crate) fn idle_cpu(run: &Path, secs: u64) -> Result<Idle, String> {
    let keepers = keepers(run);
    if keepers.is_empty() {
        return Err("no live keeper found".into());
    }
    // Let every keeper finish its start-up (the last state write) first.
    std::thread::sleep(Duration::from_secs(1));
    let ticks = |k: &ProcId| procfs::stat(k.pid).map(|s| s.utime + s.stime);
    let before: Vec<Option<u64>> = keepers.iter().map(ticks).collect();
    std::thread::sleep(Duration::from_secs(secs));
    let after: Vec<Option<u64>> = keepers.iter().map(ticks).collect();
    if keepers.iter().any(|k| !k.is_alive()) {
        return Err("a keeper exited during the idle window".into());
    }
    let deltas: Vec<u64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| match (b, a) {
            (Some(b), Some(a)) => a.saturating_sub(*b),
            _ => 0,
        })
        .collect();
    Ok(Idle {
        secs,
        keepers: keepers.len(),
        ticks: deltas.iter().sum(),
        busy_keepers: deltas.iter().filter(|&&d| d > 0).count(),
        clock_ticks_per_sec: sys::clock_ticks_per_sec(),
    })
}
