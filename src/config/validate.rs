//! Checks across files: `after` names that exist and form no cycle, no two daemons
//! sharing a pidfile, log or any other file, and the order in which `--all` starts
//! and stops daemons.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::path::Path;

use super::daemon::{file_id, rotation_of, Places};
use super::suggest::Suggester;
use super::{Daemon, Diagnostic, Dirs, Invalid, Loaded};
use crate::text::show_path;

/// Moves daemons whose `after` names an unknown daemon, that lie on a cycle of
/// `after`, or that share a file with another daemon, to `invalid`, each problem
/// located at the key behind it. A name that is an invalid file is not unknown: that
/// file is reported on its own, and `start` says so if it comes to it. Two daemons on
/// one pidfile could never both run (each keeper locks it), and a pidfile that is
/// another daemon's log would be truncated under it, so both daemons are reported
/// rather than the second failing at `start` or destroying the first's file.
pub(super) fn check_across_files(loaded: &mut Loaded, dirs: &Dirs) {
    let names = loaded.names();
    let known: BTreeSet<&str> = names.iter().copied().collect();
    let mut suggester: Option<Suggester<'_>> = None;
    let no_places = Places::default();
    let places = |name: &str| loaded.places.get(name).unwrap_or(&no_places);
    let mut problems: BTreeMap<String, Vec<Located>> = BTreeMap::new();
    for daemon in &loaded.daemons {
        for (i, dep) in daemon.after.iter().enumerate() {
            if !known.contains(dep.as_str()) {
                let hint = suggester
                    .get_or_insert_with(|| Suggester::new(&names))
                    .nearest(dep)
                    .map_or(String::new(), |n| format!(", did you mean `{n}`?"));
                let at = places(&daemon.name).after.get(i).copied().unwrap_or((1, 1));
                problems.entry(daemon.name.clone()).or_default().push((
                    at,
                    format!("`after` names `{dep}`, which is not a daemon in this directory{hint}"),
                ));
            }
        }
    }
    for (name, at, message) in shared_files(loaded, dirs) {
        problems.entry(name).or_default().push((at, message));
    }
    for cycle in cycles(&loaded.daemons) {
        let path = cycle.join(" -> ");
        for pair in cycle.windows(2) {
            let (name, next) = (&pair[0], &pair[1]);
            let at = loaded
                .daemon(name)
                .and_then(|d| d.after.iter().position(|a| a == next))
                .and_then(|i| places(name).after.get(i).copied())
                .unwrap_or((1, 1));
            problems
                .entry(name.clone())
                .or_default()
                .push((at, format!("`after` forms a cycle: {path}")));
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
        let mut diagnostics: Vec<Diagnostic> = problems[&daemon.name]
            .iter()
            .map(|(at, m)| Diagnostic::located(&daemon.file, *at, m.clone()))
            .collect();
        diagnostics.sort_by_key(|d| d.location);
        loaded.warnings.retain(|w| w.file != daemon.file);
        loaded.invalid.push(Invalid {
            name: daemon.name.clone(),
            file: daemon.file.clone(),
            diagnostics,
        });
    }
    loaded.invalid.sort_by(|a, b| a.name.cmp(&b.name));
}

/// A problem's line and column, and its message.
type Located = ((usize, usize), String);

/// What a daemon's path is to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Pidfile,
    Log,
    StderrLog,
}

impl Role {
    fn key(self) -> &'static str {
        match self {
            Role::Pidfile => "pidfile",
            Role::Log => "log",
            Role::StderrLog => "stderr_log",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Role::Pidfile => "pidfile",
            Role::Log => "log",
            Role::StderrLog => "stderr log",
        }
    }
}

/// One path a daemon writes.
#[derive(Debug, Clone, Copy)]
struct Claim<'a> {
    daemon: &'a Daemon,
    role: Role,
    path: &'a Path,
    at: (usize, usize),
}

/// The problems [`shared_files`] found, each reported once.
#[derive(Default)]
struct Shared {
    seen: BTreeSet<(usize, usize)>,
    problems: Vec<(String, (usize, usize), String)>,
}

impl Shared {
    /// Claim `i` is also claim `j` (or its rotated file `.n`).
    fn report(&mut self, claims: &[Claim<'_>], i: usize, j: usize, rotated: Option<u32>) {
        let (a, b) = (claims[i], claims[j]);
        if a.daemon.name == b.daemon.name || !self.seen.insert((i, j)) {
            return;
        }
        let what = match rotated {
            Some(n) => format!("rotated {} `.{n}`", b.role.what()),
            None => b.role.what().to_string(),
        };
        self.problems.push((
            a.daemon.name.clone(),
            a.at,
            format!(
                "`{}` {} is also the {what} of `{}`; give each daemon its own files",
                a.role.key(),
                show_path(a.path),
                b.daemon.name
            ),
        ));
    }

    fn report_all(&mut self, claims: &[Claim<'_>], group: &[usize]) {
        for &i in group {
            for &j in group {
                self.report(claims, i, j, None);
            }
        }
    }
}

/// Every path one daemon writes that another daemon also claims or is defined by:
/// the same path, the same file under another name (device and inode, where it
/// exists), one of the other's rotated logs, or the other's daemon file. Each problem
/// comes back as the daemon's name, where in its file, and the message.
fn shared_files(loaded: &Loaded, dirs: &Dirs) -> Vec<(String, (usize, usize), String)> {
    let no_places = Places::default();
    let mut claims: Vec<Claim<'_>> = Vec::new();
    let mut any_explicit = false;
    for d in &loaded.daemons {
        let at = loaded.places.get(&d.name).unwrap_or(&no_places);
        let mut claim = |role, path, at| {
            claims.push(Claim {
                daemon: d,
                role,
                path,
                at,
            })
        };
        claim(Role::Pidfile, d.pidfile.as_path(), at.pidfile);
        if let Some(own) = &d.forking_pidfile {
            claim(Role::Pidfile, own.as_path(), at.pidfile);
        }
        claim(Role::Log, d.process.log.as_path(), at.log);
        if let Some(err) = &d.process.stderr_log {
            claim(Role::StderrLog, err.as_path(), at.stderr_log);
        }
        any_explicit |= d.pidfile != dirs.pidfile(&d.name)
            || d.process.log != dirs.log_dir.join(format!("{}.log", d.name))
            || d.process.stderr_log.is_some()
            || d.forking_pidfile.is_some();
    }
    // The default paths are distinct by construction (each holds its daemon's name);
    // only a path set in a file can meet another.
    if !any_explicit {
        return Vec::new();
    }
    let mut by_path: HashMap<&OsStr, Vec<usize>> = HashMap::new();
    for (i, claim) in claims.iter().enumerate() {
        by_path.entry(claim.path.as_os_str()).or_default().push(i);
    }
    let mut shared = Shared::default();
    for group in by_path.values().filter(|v| v.len() > 1) {
        shared.report_all(&claims, group);
    }
    // `a.log.2` is a file of `a` as long as `a` keeps two or more.
    for (i, claim) in claims.iter().enumerate() {
        let Some(stem) = claim.path.file_stem() else {
            continue;
        };
        let log = claim.path.with_file_name(stem);
        for &j in by_path.get(log.as_os_str()).into_iter().flatten() {
            let owner = claims[j];
            let is_log = owner.role != Role::Pidfile;
            if let Some(n) = rotation_of(claim.path, owner.path, owner.daemon.logs.log_keep, is_log)
            {
                shared.report(&claims, i, j, Some(n));
                shared.report(&claims, j, i, None);
            }
        }
    }
    // The same file under two names, or a daemon file: only files that exist can be
    // compared.
    {
        let mut by_id: BTreeMap<(u64, u64), Vec<usize>> = BTreeMap::new();
        for (i, claim) in claims.iter().enumerate() {
            if let Some(id) = file_id(claim.path) {
                by_id.entry(id).or_default().push(i);
            }
        }
        for group in by_id.values().filter(|v| v.len() > 1) {
            shared.report_all(&claims, group);
        }
        for d in &loaded.daemons {
            let Some(id) = loaded.places.get(&d.name).and_then(|p| p.file_id) else {
                continue;
            };
            for &i in by_id.get(&id).into_iter().flatten() {
                let claim = claims[i];
                if claim.daemon.name != d.name {
                    shared.problems.push((
                        claim.daemon.name.clone(),
                        claim.at,
                        format!(
                            "`{}` {} is the daemon file of `{}` (a link to it); choose another path",
                            claim.role.key(),
                            show_path(claim.path),
                            d.name
                        ),
                    ));
                }
            }
        }
    }
    shared.problems
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

    /// Directories nothing in these tests lives in.
    fn dirs() -> Dirs {
        Dirs {
            config_dir: "/nonexistent/daemons.d".into(),
            run_dir: "/nonexistent/run".into(),
            log_dir: "/nonexistent/run/log".into(),
        }
    }

    fn check(daemons: Vec<Daemon>) -> Loaded {
        let mut loaded = Loaded {
            daemons,
            ..Loaded::default()
        };
        check_across_files(&mut loaded, &dirs());
        loaded
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
        let loaded = check(vec![
            daemon("a", &["b"]),
            daemon("b", &["a"]),
            daemon("c", &["nope"]),
            daemon("d", &["c"]),
        ]);
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
        let loaded = check(shared.to_vec());
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

    /// Issue 16: a pidfile that is another daemon's log (or its rotated log, or its
    /// stderr log) makes both invalid.
    #[test]
    fn daemons_sharing_any_file_are_all_invalid() {
        let mut a = daemon("a", &[]);
        let mut b = daemon("b", &[]);
        let c = daemon("c", &[]);
        a.pidfile = b.process.log.clone();
        let loaded = check(vec![a.clone(), b.clone(), c.clone()]);
        let bad: Vec<&str> = loaded.invalid.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(bad, ["a", "b"]);
        assert!(loaded.invalid[0].diagnostics[0]
            .message
            .contains("`pidfile` /nonexistent/b.log is also the log of `b`"));
        assert!(loaded.invalid[1].diagnostics[0]
            .message
            .contains("`log` /nonexistent/b.log is also the pidfile of `a`"));

        a.pidfile = std::path::PathBuf::from("/nonexistent/b.log.3");
        let loaded = check(vec![a.clone(), b.clone(), c.clone()]);
        assert!(loaded.invalid[0].diagnostics[0]
            .message
            .contains("is also the rotated log `.3` of `b`"));
        b.logs.log_keep = 2;
        assert!(check(vec![a.clone(), b.clone(), c.clone()])
            .invalid
            .is_empty());

        a.pidfile = "/nonexistent/a.pid".into();
        a.process.stderr_log = Some(c.pidfile.clone());
        let loaded = check(vec![a, b, c]);
        let bad: Vec<&str> = loaded.invalid.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(bad, ["a", "c"]);
    }

    /// Issue 16: problems across files carry the place of the key behind them.
    #[test]
    fn problems_across_files_are_located() {
        let mut loaded = Loaded {
            daemons: vec![daemon("a", &["b", "nope"]), daemon("b", &["a"])],
            ..Loaded::default()
        };
        loaded.places.insert(
            "a".into(),
            Places {
                after: vec![(3, 10), (3, 15)],
                ..Places::default()
            },
        );
        loaded.places.insert(
            "b".into(),
            Places {
                after: vec![(2, 10)],
                ..Places::default()
            },
        );
        check_across_files(&mut loaded, &dirs());
        let a: Vec<String> = loaded.invalid[0]
            .diagnostics
            .iter()
            .map(Diagnostic::short)
            .collect();
        assert_eq!(
            a,
            [
                "3:10: `after` forms a cycle: a -> b -> a",
                "3:15: `after` names `nope`, which is not a daemon in this directory",
            ]
        );
        assert_eq!(
            loaded.invalid[1].diagnostics[0].short(),
            "2:10: `after` forms a cycle: a -> b -> a"
        );
    }
}
