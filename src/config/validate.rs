//! Checks across files: `after` names that exist and form no cycle, no two daemons
//! sharing a pidfile, and the order in which `--all` starts and stops daemons.

use std::collections::{BTreeMap, BTreeSet};

use super::raw::nearest;
use super::{Daemon, Diagnostic, Invalid, Loaded};

/// Moves daemons whose `after` names an unknown daemon, that lie on a cycle of
/// `after`, or whose pidfile is another daemon's too, to `invalid`. A name that is an
/// invalid file is not unknown: that file is reported on its own, and `start` says so
/// if it comes to it. Two daemons on one pidfile could never both run (each keeper
/// locks it), so both are reported rather than the second failing at `start`.
pub(super) fn check_across_files(loaded: &mut Loaded) {
    let known: BTreeSet<&str> = loaded.names().into_iter().collect();
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for daemon in &loaded.daemons {
        for dep in &daemon.after {
            if !known.contains(dep.as_str()) {
                let names: Vec<&str> = known.iter().copied().collect();
                let hint = nearest(dep, &names)
                    .map_or(String::new(), |n| format!(", did you mean `{n}`?"));
                problems
                    .entry(daemon.name.clone())
                    .or_default()
                    .push(format!(
                        "`after` names `{dep}`, which is not a daemon in this directory{hint}"
                    ));
            }
        }
    }
    let mut by_pidfile: BTreeMap<&std::path::Path, Vec<&str>> = BTreeMap::new();
    for daemon in &loaded.daemons {
        for path in std::iter::once(&daemon.pidfile).chain(&daemon.forking_pidfile) {
            by_pidfile
                .entry(path.as_path())
                .or_default()
                .push(daemon.name.as_str());
        }
    }
    for (pidfile, names) in by_pidfile.iter().filter(|(_, names)| names.len() > 1) {
        for name in names {
            let others: Vec<String> = names
                .iter()
                .filter(|other| *other != name)
                .map(|other| format!("`{other}`"))
                .collect();
            problems.entry(name.to_string()).or_default().push(format!(
                "pidfile {} is also the pidfile of {}; give each daemon its own",
                pidfile.display(),
                others.join(", ")
            ));
        }
    }
    for cycle in cycles(&loaded.daemons) {
        let path = cycle.join(" -> ");
        for name in &cycle[..cycle.len() - 1] {
            problems
                .entry(name.clone())
                .or_default()
                .push(format!("`after` forms a cycle: {path}"));
        }
    }
    if problems.is_empty() {
        return;
    }
    let (bad, good): (Vec<Daemon>, Vec<Daemon>) = std::mem::take(&mut loaded.daemons)
        .into_iter()
        .partition(|d| problems.contains_key(&d.name));
    loaded.daemons = good;
    for daemon in bad {
        let diagnostics = problems[&daemon.name]
            .iter()
            .map(|m| Diagnostic::file(&daemon.file, m.clone()))
            .collect();
        loaded.invalid.push(Invalid {
            name: daemon.name.clone(),
            file: daemon.file.clone(),
            diagnostics,
        });
    }
    loaded.invalid.sort_by(|a, b| a.name.cmp(&b.name));
}

/// Every cycle of `after` edges, each as a path that ends where it starts.
fn cycles(daemons: &[Daemon]) -> Vec<Vec<String>> {
    let edges: BTreeMap<&str, &[String]> = daemons
        .iter()
        .map(|d| (d.name.as_str(), d.after.as_slice()))
        .collect();
    let mut state: BTreeMap<&str, u8> = BTreeMap::new(); // 1 on the path, 2 done
    let mut found = Vec::new();
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, &'a [String]>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
        found: &mut Vec<Vec<String>>,
    ) {
        state.insert(node, 1);
        path.push(node);
        for next in edges.get(node).copied().unwrap_or_default() {
            let next = next.as_str();
            match state.get(next) {
                Some(1) => {
                    let start = path.iter().position(|n| *n == next).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(next.to_string());
                    found.push(cycle);
                }
                Some(_) => {}
                None if edges.contains_key(next) => visit(next, edges, state, path, found),
                None => {}
            }
        }
        path.pop();
        state.insert(node, 2);
    }
    for name in edges.keys() {
        if !state.contains_key(name) {
            visit(name, &edges, &mut state, &mut Vec::new(), &mut found);
        }
    }
    found
}

/// Groups daemons into levels: each level only depends on earlier levels, so the
/// daemons within one level can start in parallel. Only dependencies inside the given
/// set count; a cycle (already reported by `check_across_files`) ends up in the last level.
pub fn start_order<'a>(daemons: &[&'a Daemon]) -> Vec<Vec<&'a Daemon>> {
    let names: BTreeSet<&str> = daemons.iter().map(|d| d.name.as_str()).collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut left: Vec<&'a Daemon> = daemons.to_vec();
    left.sort_by(|a, b| a.name.cmp(&b.name));
    let mut levels = Vec::new();
    while !left.is_empty() {
        let (ready, waiting): (Vec<&'a Daemon>, Vec<&'a Daemon>) =
            left.into_iter().partition(|d| {
                d.after
                    .iter()
                    .all(|dep| !names.contains(dep.as_str()) || placed.contains(dep.as_str()))
            });
        if ready.is_empty() {
            levels.push(waiting);
            break;
        }
        placed.extend(ready.iter().map(|d| d.name.as_str()));
        levels.push(ready);
        left = waiting;
    }
    levels
}

/// The reverse of [`start_order`]: dependents stop before what they depend on.
pub fn stop_order<'a>(daemons: &[&'a Daemon]) -> Vec<Vec<&'a Daemon>> {
    let mut levels = start_order(daemons);
    levels.reverse();
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(name: &str, after: &[&str]) -> Daemon {
        let mut d = crate::config::daemon::tests_support::minimal(name);
        d.after = after.iter().map(|s| s.to_string()).collect();
        d
    }

    fn names(levels: Vec<Vec<&Daemon>>) -> Vec<Vec<&str>> {
        levels
            .into_iter()
            .map(|l| l.into_iter().map(|d| d.name.as_str()).collect())
            .collect()
    }

    #[test]
    fn levels_follow_after_and_group_independent_daemons() {
        let all = [
            daemon("web", &["db", "cache"]),
            daemon("db", &[]),
            daemon("cache", &[]),
            daemon("worker", &["web"]),
        ];
        let refs: Vec<&Daemon> = all.iter().collect();
        assert_eq!(
            names(start_order(&refs)),
            vec![vec!["cache", "db"], vec!["web"], vec!["worker"]]
        );
        assert_eq!(
            names(stop_order(&refs)),
            vec![vec!["worker"], vec!["web"], vec!["cache", "db"]]
        );
        // Dependencies outside the set do not hold anything back.
        assert_eq!(names(start_order(&refs[..1])), vec![vec!["web"]]);
    }

    #[test]
    fn unknown_names_and_cycles_make_daemons_invalid() {
        let mut loaded = Loaded {
            daemons: vec![
                daemon("a", &["b"]),
                daemon("b", &["a"]),
                daemon("c", &["nope"]),
                daemon("d", &["c"]),
            ],
            invalid: Vec::new(),
        };
        check_across_files(&mut loaded);
        let bad: Vec<&str> = loaded.invalid.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(bad, ["a", "b", "c"]);
        assert!(loaded.invalid[0].diagnostics[0]
            .message
            .contains("cycle: a -> b -> a"));
        assert!(loaded.invalid[2].diagnostics[0].message.contains("`nope`"));
        assert_eq!(
            loaded
                .daemons
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>(),
            ["d"]
        );
    }

    #[test]
    fn daemons_sharing_a_pidfile_are_all_invalid() {
        let mut shared = [daemon("a", &[]), daemon("b", &[]), daemon("c", &[])];
        shared[1].pidfile = shared[0].pidfile.clone();
        let mut loaded = Loaded {
            daemons: shared.to_vec(),
            invalid: Vec::new(),
        };
        check_across_files(&mut loaded);
        let bad: Vec<&str> = loaded.invalid.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(bad, ["a", "b"]);
        assert!(loaded.invalid[0].diagnostics[0]
            .message
            .contains("is also the pidfile of `b`"));
        assert!(loaded.invalid[1].diagnostics[0]
            .message
            .contains("is also the pidfile of `a`"));
        assert_eq!(loaded.daemons.len(), 1);
    }
}
