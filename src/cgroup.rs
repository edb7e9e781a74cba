//! A cgroup v2 of the daemon's own, where the keeper may create one: every process the
//! daemon starts stays in it, whatever it does with sessions, process groups or
//! double forks, so a stop finds and kills them all (`cgroup.kill`, Linux 5.14).
//!
//! The keeper creates `dmgr-NAME-RUNHASH` (see [`Cgroup::name_for`]) on the cgroup2
//! mount (`/sys/fs/cgroup` on a pure v2 host, `/sys/fs/cgroup/unified` on a hybrid
//! one), and moves the daemon's
//! process into it while that process waits at its start gate. Where it goes:
//!
//! - where systemd is not the init system (a container, another init), beside the
//!   keeper, under its own cgroup, where it has write access;
//! - under systemd, only inside a subtree systemd delegated (the boot unit's
//!   `Delegate=yes`, which systemd marks with the `user.delegate` or
//!   `trusted.delegate` attribute): there `dmgr start` first moves itself into the
//!   leaf `keepers` of the unit's cgroup ([`enter_keepers_leaf`]), so that the
//!   launcher and the keepers live there and each daemon's cgroup is its sibling,
//!   and the unit's cgroup, left with no process of its own, can pass the memory
//!   controller on to the daemons ([`enable_memory`]). In a unit that delegates
//!   nothing (a session scope, a service without `Delegate=`) dmgr creates no
//!   cgroup: that subtree is systemd's (systemd.resource-control(5), "Delegation").
//!
//! Where it creates none, the keeper tracks the daemon's processes as a child
//! subreaper instead, and `status` says why. `DMGR_NO_CGROUP=1` in the environment of
//! `dmgr start` turns cgroups off. Safe code only, but for one attribute read in
//! [`crate::sys::xattr`]: the kernel interface is plain files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The variable that turns cgroups off when set to anything but empty or `0`.
pub(crate) const DISABLE_VAR: &str = "DMGR_NO_CGROUP";

/// One daemon's cgroup, by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// Where the cgroup for the daemon `name` of the run directory `run_dir` goes (see
    /// the module's documentation), or why it gets none. Its name is derived (see
    /// [`Cgroup::name_for`]), so a keeper killed before it recorded the path leaves no
    /// cgroup that cannot be found.
    pub(crate) fn planned(name: &str, run_dir: &Path) -> Result<PathBuf, String> {
        if is_disabled(std::env::var_os(DISABLE_VAR).as_deref()) {
            return Err(format!("{DISABLE_VAR} is set"));
        }
        let own = own_cgroup_dir().ok_or("no cgroup v2 is mounted here")?;
        let parent = daemons_parent(&own, systemd_is_init())?;
        Ok(parent.join(Cgroup::name_for(name, run_dir)))
    }

    /// The cgroup's directory name, `dmgr-NAME-HASH`: the daemon's name and a digest
    /// of its run directory's path, so that it can be found again from those two
    /// alone when the state record that names it is lost or unusable (issue 22): a
    /// cgroup is never leaked, nor a daemon left running in one. Two run directories
    /// never share one; one daemon's keepers, one after another, reuse it.
    pub(crate) fn name_for(name: &str, run_dir: &Path) -> String {
        use std::os::unix::ffi::OsStrExt;
        let digest = run_dir
            .as_os_str()
            .as_bytes()
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, &b| {
                (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
        format!("dmgr-{name}-{digest:016x}")
    }

    /// Finds the cgroup of the daemon `name` of `run_dir` without its record: where
    /// this process would make it, or else anywhere on the cgroup2 mount (a `stop` run
    /// from another login session is in another cgroup than the `start` was).
    pub(crate) fn find(name: &str, run_dir: &Path) -> Option<Cgroup> {
        if let Some(cgroup) = Cgroup::planned(name, run_dir)
            .ok()
            .as_deref()
            .and_then(Cgroup::open)
        {
            return Some(cgroup);
        }
        let wanted = Cgroup::name_for(name, run_dir);
        if let Some(cgroup) = own_cgroup_dir().and_then(|dir| Cgroup::open(&dir.join(&wanted))) {
            return Some(cgroup);
        }
        let found = dmgr_cgroups()
            .iter()
            .find(|p| p.file_name() == Some(wanted.as_ref()))?;
        Cgroup::open(found)
    }

    /// Creates the cgroup at `path` (from [`Cgroup::planned`]), or says why it cannot
    /// (no write access, or not a cgroup file system).
    pub(crate) fn create(path: &Path) -> Result<Cgroup, String> {
        let cgroup = Cgroup {
            path: path.to_path_buf(),
        };
        match fs::create_dir(&cgroup.path) {
            Ok(()) => {}
            // Left by a killed keeper that had this PID: usable once empty.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !cgroup.is_populated() => {}
            Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
        }
        // Not a cgroup file system after all, or one without the files we need.
        if !cgroup.path.join("cgroup.procs").is_file() {
            cgroup.remove();
            return Err(format!("{} is no cgroup", path.display()));
        }
        Ok(cgroup)
    }

    /// The cgroup at `path` (from a state record), if it still exists.
    pub(crate) fn open(path: &Path) -> Option<Cgroup> {
        path.join("cgroup.procs").is_file().then(|| Cgroup {
            path: path.to_path_buf(),
        })
    }

    /// Its directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the process `pid` into the cgroup.
    pub(crate) fn add(&self, pid: i32) -> io::Result<()> {
        fs::write(self.path.join("cgroup.procs"), format!("{pid}\n"))
    }

    /// The PIDs in the cgroup now (zombies may be among them).
    pub(crate) fn members(&self) -> Vec<i32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Returns true if and only if a live process is in the cgroup (`populated 1` in
    /// `cgroup.events`; a zombie does not count).
    pub(crate) fn is_populated(&self) -> bool {
        match fs::read_to_string(self.path.join("cgroup.events")) {
            Ok(events) => events.lines().any(|l| l.trim() == "populated 1"),
            // No events file (the cgroup is gone): nothing can be in it.
            Err(_) => false,
        }
    }

    /// SIGKILLs every process in the cgroup at once, new forks included; returns false
    /// where the kernel has no `cgroup.kill` (before 5.14), and the caller must signal
    /// the members one by one.
    pub(crate) fn kill(&self) -> bool {
        fs::write(self.path.join("cgroup.kill"), "1\n").is_ok()
    }

    /// Removes the cgroup; it must be empty (a populated one stays, and the error is
    /// ignored: the next `stop` or `start` tries again from the state record).
    pub(crate) fn remove(&self) {
        let _ = fs::remove_dir(&self.path);
    }
}

/// Makes the memory controller's files (`memory.high`, `memory.events`) appear in the
/// cgroup `dir`: where they are missing, writes `+memory` to the parent's
/// `cgroup.subtree_control`. That works where the parent has the controller and no
/// processes of its own, or is the root cgroup (cgroup v2 gives domain controllers only
/// to the children of a cgroup without processes); the error says which it was not.
/// A controller enabled this way stays enabled: other children of the parent get it too.
pub(crate) fn enable_memory(dir: &Path) -> Result<(), String> {
    let has_files = || dir.join("memory.high").is_file() && dir.join("memory.events").is_file();
    if has_files() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(dir);
    let controllers = fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "memory") {
        let listed = match controllers.trim() {
            "" => "none",
            some => some,
        };
        return Err(format!(
            "the memory controller is not available in {} (its cgroup.controllers: {listed})",
            parent.display()
        ));
    }
    if let Err(e) = fs::write(parent.join("cgroup.subtree_control"), "+memory\n") {
        let why = match e.raw_os_error() {
            Some(libc::EBUSY) => {
                " (it has processes of its own, the keeper among them, and is not the root cgroup)"
            }
            _ => "",
        };
        return Err(format!(
            "cannot enable the memory controller below {}: {e}{why}",
            parent.display()
        ));
    }
    if has_files() {
        Ok(())
    } else {
        Err(format!(
            "{} has no memory.high or memory.events",
            dir.display()
        ))
    }
}

/// The name of the leaf cgroup of a delegated unit that the launcher and the keepers
/// live in, beside the daemons' cgroups.
pub(crate) const KEEPERS_LEAF: &str = "keepers";

/// Where the daemons' cgroups go for a process whose cgroup is `own`: `own` itself
/// where systemd does not manage the tree (`under_systemd` false); under systemd,
/// inside the delegated unit `own` is in (its cgroup, when `own` is its keepers'
/// leaf), or nowhere, with why.
fn daemons_parent(own: &Path, under_systemd: bool) -> Result<PathBuf, String> {
    if !under_systemd {
        return Ok(own.to_path_buf());
    }
    let Some(unit) = unit_of(own) else {
        // Not in a unit (a container's own root): nobody else manages it.
        return Ok(own.to_path_buf());
    };
    if !is_delegated(unit) {
        return Err(format!(
            "its keeper runs in {}, which systemd manages and did not delegate (no Delegate=yes); dmgr's boot unit delegates one",
            unit_name(unit)
        ));
    }
    if own.parent() == Some(unit) && own.file_name() == Some(KEEPERS_LEAF.as_ref()) {
        return Ok(unit.to_path_buf());
    }
    Ok(own.to_path_buf())
}

/// The cgroup of the systemd unit `dir` is in: the nearest of `dir` and its parents
/// whose name is a service's or a scope's.
fn unit_of(dir: &Path) -> Option<&Path> {
    dir.ancestors().find(|d| {
        d.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".service") || n.ends_with(".scope"))
    })
}

/// The unit of the cgroup `dir`, for messages: its name.
fn unit_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// Returns true if and only if systemd delegated the cgroup `dir` (systemd 251 and
/// later mark it so; an older one, or a cgroup of a unit without `Delegate=`, has no
/// mark).
fn is_delegated(dir: &Path) -> bool {
    ["user.delegate", "trusted.delegate"]
        .iter()
        .any(|name| crate::sys::xattr::get(dir, name).as_deref() == Some(b"1".as_slice()))
}

/// Returns true if and only if systemd is the init system (as sd_booted(3) decides).
fn systemd_is_init() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Moves the calling process into the [`KEEPERS_LEAF`] of the delegated unit it runs
/// in, when it runs in the unit's own cgroup or its `.control` cgroup (where systemd
/// starts `ExecReload=` and `ExecStop=`): the launcher and keepers it starts then live
/// in the leaf, beside the daemons' cgroups. Does nothing elsewhere. Called by the CLI
/// before it starts a launcher.
pub(crate) fn enter_keepers_leaf() {
    if !systemd_is_init() || is_disabled(std::env::var_os(DISABLE_VAR).as_deref()) {
        return;
    }
    let Some(own) = look_up_own_cgroup_dir() else {
        return;
    };
    let Some(unit) = unit_of(&own) else {
        return;
    };
    let at_top = own == unit || (own.parent() == Some(unit) && own.ends_with(".control"));
    if !at_top || !is_delegated(unit) {
        return;
    }
    let leaf = unit.join(KEEPERS_LEAF);
    match fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(_) => return,
    }
    // The process's own PID moves all of it (a process has one cgroup on v2).
    let _ = fs::write(
        leaf.join("cgroup.procs"),
        format!("{}\n", std::process::id()),
    );
}

/// Every `dmgr-*` directory on the cgroup2 mount, looked for once per process (`stop
/// --all` may look for many daemons' cgroups): at most 12 levels deep, at most
/// 100,000 directories.
fn dmgr_cgroups() -> &'static [PathBuf] {
    static FOUND: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        let mut found = Vec::new();
        let Some(mount) = cgroup2_mount() else {
            return found;
        };
        let mut level = vec![mount];
        let mut seen = 0;
        for _ in 0..12 {
            let mut next = Vec::new();
            for dir in &level {
                let Ok(entries) = fs::read_dir(dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    seen += 1;
                    if seen > 100_000 {
                        return found;
                    }
                    if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                        continue;
                    }
                    if entry.file_name().as_encoded_bytes().starts_with(b"dmgr-") {
                        found.push(entry.path());
                    }
                    next.push(entry.path());
                }
            }
            level = next;
        }
        found
    })
}

/// Returns true if and only if the value of [`DISABLE_VAR`] turns cgroups off.
fn is_disabled(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0")
}

/// The directory of the calling process's cgroup on the cgroup2 mount, looked up once
/// per process: the launcher looks it up before it forks, and its keepers, which stay
/// in its cgroup, inherit the answer. (The CLI may move itself before it starts the
/// launcher, [`enter_keepers_leaf`], which looks it up afresh.)
pub(super) fn own_cgroup_dir() -> Option<PathBuf> {
    static DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(look_up_own_cgroup_dir).clone()
}

fn look_up_own_cgroup_dir() -> Option<PathBuf> {
    let mount = cgroup2_mount()?;
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    // The unified hierarchy's line is `0::/PATH`.
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let relative = path.trim_start_matches('/');
    let dir = if relative.is_empty() {
        mount
    } else {
        mount.join(relative)
    };
    dir.is_dir().then_some(dir)
}

/// Where cgroup2 is mounted, from `/proc/self/mountinfo`.
fn cgroup2_mount() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        // Field 5 is the mount point; spaces in it are written as \040.
        let point = before.split_whitespace().nth(4)?;
        Some(PathBuf::from(point.replace("\\040", " ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under systemd a cgroup goes only into a delegated unit, beside the keepers'
    /// leaf; elsewhere beside the keeper (stand-in directories; the attribute cannot
    /// be set without root, so only the refusal and the non-systemd case run here).
    #[test]
    fn cgroups_go_only_where_systemd_delegated() {
        let root = tempfile::tempdir().unwrap();
        let scope = root.path().join("user.slice/user-0.slice/session-3.scope");
        fs::create_dir_all(&scope).unwrap();
        assert_eq!(daemons_parent(&scope, false), Ok(scope.clone()));
        let refused = daemons_parent(&scope, true).unwrap_err();
        assert!(
            refused.contains("session-3.scope") && refused.contains("Delegate=yes"),
            "{refused}"
        );
        let below = scope.join("payload");
        fs::create_dir_all(&below).unwrap();
        assert!(daemons_parent(&below, true)
            .unwrap_err()
            .contains("session-3.scope"));
        // No unit at all: a container's root, which no one else manages.
        assert_eq!(
            daemons_parent(root.path(), true),
            Ok(root.path().to_path_buf())
        );
        assert_eq!(unit_of(&below), Some(scope.as_path()));
    }

    #[test]
    fn the_environment_variable_turns_cgroups_off() {
        assert!(is_disabled(Some("1".as_ref())) && is_disabled(Some("yes".as_ref())));
        assert!(!is_disabled(None) && !is_disabled(Some("".as_ref())));
        assert!(!is_disabled(Some("0".as_ref())));
    }

    /// A daemon's cgroup is named after it and its run directory, so it can be found
    /// from those alone; two run directories never share one.
    #[test]
    fn the_name_is_derived_from_the_daemon_and_its_run_directory() {
        let a = Cgroup::name_for("web", Path::new("/run/dmgr"));
        assert_eq!(a, Cgroup::name_for("web", Path::new("/run/dmgr")));
        assert!(
            a.starts_with("dmgr-web-") && a.len() == "dmgr-web-".len() + 16,
            "{a}"
        );
        assert_ne!(a, Cgroup::name_for("web", Path::new("/srv/app/.dmgr")));
        assert_ne!(a, Cgroup::name_for("db", Path::new("/run/dmgr")));
    }

    /// Outside a cgroup file system the directory is created, found wanting (no
    /// `cgroup.procs`) and removed again.
    #[test]
    fn a_directory_that_is_no_cgroup_is_removed_again() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Cgroup::create(&dir.path().join("dmgr-web-42")).is_err());
        assert!(!dir.path().join("dmgr-web-42").exists());
    }

    #[test]
    fn a_missing_cgroup_is_empty_and_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let gone = Cgroup {
            path: dir.path().join("none"),
        };
        assert!(!gone.is_populated());
        assert!(gone.members().is_empty());
        assert!(Cgroup::open(&dir.path().join("none")).is_none());
    }

    /// A cgroup that has the memory files needs nothing; one whose parent lacks the
    /// controller is refused with the parent's list; one whose parent has it gets
    /// `+memory` written to the parent (stand-in directories, regular files).
    #[test]
    fn the_memory_controller_is_enabled_through_the_parent_or_refused_with_why() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("dmgr-web-42");
        fs::create_dir(&dir).unwrap();
        fs::write(parent.path().join("cgroup.controllers"), "hugetlb\n").unwrap();
        let refused = enable_memory(&dir).unwrap_err();
        assert!(
            refused.contains("memory controller is not available"),
            "{refused}"
        );
        assert!(refused.contains("hugetlb"), "{refused}");

        fs::write(parent.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        fs::write(parent.path().join("cgroup.subtree_control"), "").unwrap();
        // The kernel would make the files now; a plain directory does not.
        let missing = enable_memory(&dir).unwrap_err();
        assert!(missing.contains("no memory.high"), "{missing}");
        let control = fs::read_to_string(parent.path().join("cgroup.subtree_control")).unwrap();
        assert_eq!(control, "+memory\n");

        fs::write(dir.join("memory.high"), "max\n").unwrap();
        fs::write(dir.join("memory.events"), "high 0\n").unwrap();
        fs::remove_file(parent.path().join("cgroup.controllers")).unwrap();
        assert_eq!(enable_memory(&dir), Ok(()));
    }
}
