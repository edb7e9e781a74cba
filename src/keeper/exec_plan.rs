//! Everything prepared to exec a daemon's command, at each start: its program found in
//! `PATH`, its environment (inherited or not, `env_file` read now, then `env`), its
//! credentials and its resource limits, each checked before any fork. The keeper, `dmgr
//! run` and `dmgr reload`'s own `reload_command` use it.

use std::ffi::OsString;

use nix::errno::Errno;

use crate::config::Daemon;
use crate::sys;

/// Everything prepared for exec'ing the command, at each start.
pub(crate) struct ExecPlan {
    pub(crate) program: std::path::PathBuf,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) credentials: Option<sys::Credentials>,
    /// `limits`, `nice` and `oom_score_adj`, checked.
    pub(crate) resources: sys::Resources,
    /// The digest of the `env_file` files read for this start.
    pub(crate) env_file_digest: Option<u64>,
}

/// What systemd (or another manager above dmgr) sets for the process it started:
/// they describe `dmgr start`'s unit and its journal stream, socket, watchdog and
/// notify socket, not the daemon's, which would answer or log to a manager that does
/// not supervise it. A daemon never inherits them; `env` or `env_file` may set them.
pub(crate) const MANAGER_VARIABLES: &[&str] = &[
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "SYSTEMD_EXEC_PID",
    "MANAGERPID",
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
];

impl ExecPlan {
    pub(crate) fn prepare(daemon: &Daemon) -> std::result::Result<ExecPlan, String> {
        // The inherited environment as bytes: a variable that is not UTF-8 is passed
        // on as it is (std::env::vars would panic on it).
        // What the daemon file sets: `env_file` in order, then `env`, which wins.
        let (set, env_file_digest) = set_variables(daemon)?;
        let mut env: Vec<(OsString, OsString)> = if daemon.process.clear_env {
            Vec::new()
        } else {
            std::env::vars_os()
                .filter(|(k, _)| {
                    k.to_str()
                        .is_none_or(|k| !set.contains_key(k) && !MANAGER_VARIABLES.contains(&k))
                })
                .collect()
        };
        env.extend(
            set.iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        // A copy's number and count (`instances`), whatever the environment says.
        for (key, value) in daemon.dmgr_variables() {
            env.retain(|(k, _)| k != key);
            env.push((key.into(), value.into()));
        }
        let credentials = credentials_for(daemon)?;
        if let (Some(_), Some(name)) = (&credentials, &daemon.process.user) {
            // As login(1) and systemd's User= do: the user's own identity variables,
            // unless the file sets them.
            if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
                let own = [
                    ("USER", user.name.clone()),
                    ("LOGNAME", user.name.clone()),
                    ("HOME", user.dir.display().to_string()),
                ];
                for (key, value) in own {
                    if !set.contains_key(key) {
                        env.retain(|(k, _)| k != key);
                        env.push((key.into(), value.into()));
                    }
                }
            }
        }
        match std::fs::metadata(&daemon.process.working_dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "working_dir {} is not a directory",
                    daemon.process.working_dir.display()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "working_dir {}: {}",
                    daemon.process.working_dir.display(),
                    os_reason(&e)
                ))
            }
        }
        let name = &daemon.process.command[0];
        let program = crate::config::resolve_program(name, path_of(&env))
            .ok_or_else(|| format!("{name}: not found in PATH"))?;
        let resources = super::resources::prepare(&daemon.process)?;
        Ok(ExecPlan {
            program,
            env,
            credentials,
            resources,
            env_file_digest,
        })
    }
}

/// The variables the daemon file sets, `env_file` read now and then `env` on top,
/// and the digest of the files read (`None` without `env_file`).
fn set_variables(
    daemon: &Daemon,
) -> std::result::Result<(std::collections::BTreeMap<String, String>, Option<u64>), String> {
    let mut set = std::collections::BTreeMap::new();
    let mut digest = None;
    if !daemon.process.env_file.is_empty() {
        let loaded = crate::config::env_file::load(&daemon.process.env_file)?;
        set.extend(loaded.vars);
        digest = Some(loaded.digest);
    }
    set.extend(
        daemon
            .process
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    Ok((set, digest))
}

fn credentials_for(daemon: &Daemon) -> std::result::Result<Option<sys::Credentials>, String> {
    use nix::unistd::{Group, User};
    if daemon.process.user.is_none() && daemon.process.group.is_none() {
        return Ok(None);
    }
    let user = match &daemon.process.user {
        Some(name) => Some(
            User::from_name(name)
                .map_err(|e| format!("cannot look up user {name}: {e}"))?
                .ok_or_else(|| format!("unknown user {name}"))?,
        ),
        None => None,
    };
    let group_gid = match &daemon.process.group {
        Some(name) => Some(
            Group::from_name(name)
                .map_err(|e| format!("cannot look up group {name}: {e}"))?
                .ok_or_else(|| format!("unknown group {name}"))?
                .gid,
        ),
        None => None,
    };
    let me = nix::unistd::geteuid();
    let uid = user.as_ref().map_or(me, |u| u.uid);
    let gid = group_gid
        .or(user.as_ref().map(|u| u.gid))
        .unwrap_or(nix::unistd::getegid());
    if !me.is_root() {
        if uid == me && gid == nix::unistd::getegid() {
            return Ok(None);
        }
        return Err("user and group need dmgr to run as root".to_string());
    }
    // As initgroups(user, gid) sets them, the way systemd, sudo and start-stop-daemon
    // do: the user's member groups in the group database plus the daemon's gid. The
    // user's primary group is not added when `group` names another, so a daemon keeps
    // no access its configuration took away.
    let groups: Vec<libc::gid_t> = match &user {
        Some(u) => {
            let name =
                std::ffi::CString::new(u.name.as_str()).map_err(|_| "bad user name".to_string())?;
            nix::unistd::getgrouplist(&name, gid)
                .map_err(|e| format!("cannot read the groups of {}: {e}", u.name))?
                .into_iter()
                .map(|g| g.as_raw())
                .collect()
        }
        None => vec![gid.as_raw()],
    };
    Ok(Some(sys::Credentials {
        uid: uid.as_raw(),
        gid: gid.as_raw(),
        groups,
    }))
}

pub(crate) fn path_of(env: &[(OsString, OsString)]) -> Option<&str> {
    env.iter()
        .find(|(k, _)| k == "PATH")
        .and_then(|(_, v)| v.to_str())
}

/// The OS reason without Rust's " (os error N)" suffix.
fn os_reason(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}

/// `env` with `MAINPID` set to `main`, for `stop_command` and `reload_command`.
pub(crate) fn with_mainpid(env: &[(OsString, OsString)], main: i32) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = env
        .iter()
        .filter(|(k, _)| k != "MAINPID")
        .cloned()
        .collect();
    env.push(("MAINPID".into(), main.to_string().into()));
    env
}
