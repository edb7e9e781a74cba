//! `limits`, `nice` and `oom_score_adj`, made ready for the forked child: checked
//! against what this process may set, before any fork, and turned into the plain
//! values `sys::spawn_gated` hands to setrlimit(2), setpriority(2) and a write to
//! `/proc/self/oom_score_adj` between fork and exec. Safe code only.
//!
//! A value this process could not set is a start error naming the key, never a silent
//! clamp: a limit above the hard limit (unless it has `CAP_SYS_RESOURCE`), `nofile`
//! above the kernel's `fs.nr_open`, a `nice` below the current one (unless
//! `CAP_SYS_NICE`), an `oom_score_adj` below the current one (unless
//! `CAP_SYS_RESOURCE`).

use nix::sys::resource::{getrlimit, Resource as NixResource, RLIM_INFINITY};

use crate::config::limits::{Limit, Resource};
use crate::config::ProcessSpec;
use crate::sys::Resources;

/// `CAP_SYS_NICE` and `CAP_SYS_RESOURCE`, as capabilities(7) numbers them.
const CAP_SYS_NICE: u32 = 23;
const CAP_SYS_RESOURCE: u32 = 24;

/// Checks the daemon's `limits`, `nice` and `oom_score_adj` against what this process
/// may set and prepares them for [`crate::sys::spawn_gated`]; the error names the key and
/// what to do.
pub(crate) fn prepare(process: &ProcessSpec) -> Result<Resources, String> {
    let caps = effective_capabilities();
    let mut out = Resources::default();
    for (&resource, &limit) in &process.limits {
        let raw = match limit {
            Limit::Unlimited => RLIM_INFINITY,
            Limit::Value(n) => n,
        };
        let nix_resource = nix_resource(resource);
        if !has(caps, CAP_SYS_RESOURCE) {
            let (_, hard) = getrlimit(nix_resource).map_err(|e| {
                format!("cannot read the limit `limits.{resource}` starts from: {e}")
            })?;
            if raw > hard {
                return Err(format!(
                        "`limits.{resource}` = {} is above the hard limit {} that dmgr may raise (it runs as uid {} without CAP_SYS_RESOURCE); lower it, or start the daemon as root",
                        limit.show(resource),
                        Limit::from_raw(hard).show(resource),
                        crate::files::euid()
                    ));
            }
        }
        if resource == Resource::Nofile {
            if let Some(max) = nr_open() {
                if raw > max {
                    return Err(format!(
                            "`limits.nofile` = {} is above the kernel's most open files per process, {max} (sysctl fs.nr_open); lower it or raise fs.nr_open",
                            limit.show(resource)
                        ));
                }
            }
        }
        out.limits
            .push((nix_resource as libc::__rlimit_resource_t, raw));
    }
    if let Some(nice) = process.nice {
        let current = current_nice();
        if nice < current && !has(caps, CAP_SYS_NICE) {
            return Err(format!(
                    "`nice` = {nice} is a higher priority than dmgr's own ({current}), which needs root (CAP_SYS_NICE); write {current} or more, or start the daemon as root"
                ));
        }
        out.nice = Some(nice);
    }
    if let Some(adj) = process.oom_score_adj {
        let current = current_oom_score_adj().unwrap_or(0);
        if adj < current && !has(caps, CAP_SYS_RESOURCE) {
            return Err(format!(
                    "`oom_score_adj` = {adj} is below dmgr's own ({current}), which needs root (CAP_SYS_RESOURCE); write {current} or more, or start the daemon as root"
                ));
        }
        let text = format!("{adj}\n");
        let mut bytes = [0u8; 8];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        out.oom_score_adj = Some((bytes, text.len()));
    }
    Ok(out)
}

impl Limit {
    /// The limit a raw rlimit value stands for.
    fn from_raw(raw: libc::rlim_t) -> Limit {
        if raw == RLIM_INFINITY {
            Limit::Unlimited
        } else {
            Limit::Value(raw)
        }
    }
}

/// nix's name for a resource.
fn nix_resource(resource: Resource) -> NixResource {
    match resource {
        Resource::Nofile => NixResource::RLIMIT_NOFILE,
        Resource::Nproc => NixResource::RLIMIT_NPROC,
        Resource::Core => NixResource::RLIMIT_CORE,
        Resource::Memlock => NixResource::RLIMIT_MEMLOCK,
        Resource::Stack => NixResource::RLIMIT_STACK,
        Resource::Fsize => NixResource::RLIMIT_FSIZE,
        Resource::As => NixResource::RLIMIT_AS,
        Resource::Cpu => NixResource::RLIMIT_CPU,
        Resource::Data => NixResource::RLIMIT_DATA,
        Resource::Rss => NixResource::RLIMIT_RSS,
        Resource::Msgqueue => NixResource::RLIMIT_MSGQUEUE,
        Resource::Sigpending => NixResource::RLIMIT_SIGPENDING,
        Resource::Locks => NixResource::RLIMIT_LOCKS,
    }
}

/// The effective capability set of this process (`CapEff` in /proc/self/status), read
/// once per process (the launcher reads it before it forks its keepers, which never
/// change their own credentials).
pub(crate) fn effective_capabilities() -> u64 {
    static CAPS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *CAPS.get_or_init(read_effective_capabilities)
}

fn read_effective_capabilities() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

fn has(caps: u64, cap: u32) -> bool {
    caps & (1 << cap) != 0
}

/// The kernel's ceiling on `nofile` (`/proc/sys/fs/nr_open`).
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// This process's nice value (`/proc/self/stat`, field 19).
fn current_nice() -> i32 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    stat.rfind(')')
        .and_then(|at| stat[at + 2..].split_whitespace().nth(16)?.parse().ok())
        .unwrap_or(0)
}

fn current_oom_score_adj() -> Option<i32> {
    std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_raw_limits_and_text() {
        let mut process = ProcessSpec::default();
        process.limits.insert(Resource::Core, Limit::Value(0));
        process.oom_score_adj = Some(500);
        process.nice = Some(current_nice() + 1);
        let prepared = prepare(&process).unwrap();
        assert_eq!(
            prepared.limits,
            [(NixResource::RLIMIT_CORE as libc::__rlimit_resource_t, 0)]
        );
        let (bytes, len) = prepared.oom_score_adj.unwrap();
        assert_eq!(&bytes[..len], b"500\n");
        assert_eq!(
            prepare(&ProcessSpec::default()).unwrap(),
            Resources::default()
        );
    }

    #[test]
    fn a_limit_above_what_dmgr_may_raise_is_an_error_naming_the_key() {
        if has(effective_capabilities(), CAP_SYS_RESOURCE) {
            eprintln!("skipped: this process has CAP_SYS_RESOURCE and may raise any limit");
            return;
        }
        let (_, hard) = getrlimit(NixResource::RLIMIT_NOFILE).unwrap();
        if hard == RLIM_INFINITY {
            eprintln!("skipped: the hard limit on open files is unlimited");
            return;
        }
        let mut process = ProcessSpec::default();
        process
            .limits
            .insert(Resource::Nofile, Limit::Value(hard + 1));
        let err = prepare(&process).unwrap_err();
        assert!(err.starts_with("`limits.nofile` = "), "{err}");
        assert!(err.contains("above the hard limit"), "{err}");
    }

    #[test]
    fn nofile_above_the_kernel_ceiling_is_an_error_even_for_root() {
        let Some(max) = nr_open() else {
            eprintln!("skipped: no /proc/sys/fs/nr_open");
            return;
        };
        let mut process = ProcessSpec::default();
        process
            .limits
            .insert(Resource::Nofile, Limit::Value(max + 1));
        let err = prepare(&process).unwrap_err();
        assert!(err.starts_with("`limits.nofile`"), "{err}");
    }
}
