//! What a daemon whose keeper is gone left running, found by identity from its state
//! record: `list` shows it, and `stop` and `start` stop it (see `client::leftovers`).

use super::StateRecord;
use crate::cgroup::Cgroup;
use crate::procinfo::{self, ProcId};

/// The processes a dead keeper's daemons left behind, by identity: those started since
/// the keeper that still write to the log pipe it gave them (see
/// [`StateRecord::output_pipes`]; a keeper that
/// finished its work clears them, so only a keeper that died makes this scan /proc). Not the members of
/// the main process's session or group once the main process is dead: that ID may have
/// been freed and handed to an unrelated session since, every dmgr daemon leads one.
pub(crate) fn left_behind(record: &StateRecord) -> Vec<ProcId> {
    if !record.is_this_boot() {
        return Vec::new();
    }
    let mut found = procinfo::pipe_writers(&record.output_pipes, record.keeper.start);
    // A probe that ran when the keeper died, whatever it did with its output.
    if let Some(probe) = record.probe.filter(|p| p.is_alive() && !found.contains(p)) {
        found.push(probe);
    }
    // Every descendant of the keeper's holder is one of the daemon's: a subreaper, it
    // inherited the keeper's whole tree, whatever the processes did with their output
    // or sessions (a forking daemon not adopted yet, too).
    if let Some(holder) = record.holder.filter(ProcId::is_alive) {
        for id in procinfo::descendants(holder.pid) {
            if !found.contains(&id) && id != record.keeper {
                found.push(id);
            }
        }
    }
    // Every process in the daemon's cgroup is one of its own, whatever it did with
    // its output: only the keeper put a process there.
    if let Some(cgroup) = record.cgroup.as_deref().and_then(Cgroup::open) {
        for id in cgroup.members().into_iter().filter_map(ProcId::of) {
            if !found.contains(&id) {
                found.push(id);
            }
        }
    }
    found
}
