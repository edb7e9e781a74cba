//! The `limits` table: resource limits (setrlimit(2)) set on the daemon, soft and hard
//! alike, as systemd's `LimitNOFILE=` and friends set them. This module names the
//! resources and their units; the keeper checks them against what it may raise and
//! applies them (`keeper::resources`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::units::Size;

/// A resource `limits` can set, in the order the man page lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// Open file descriptors (`RLIMIT_NOFILE`).
    Nofile,
    /// Processes of the user (`RLIMIT_NPROC`).
    Nproc,
    /// Core dump size, bytes (`RLIMIT_CORE`).
    Core,
    /// Locked memory, bytes (`RLIMIT_MEMLOCK`).
    Memlock,
    /// Stack size, bytes (`RLIMIT_STACK`).
    Stack,
    /// Largest file written, bytes (`RLIMIT_FSIZE`).
    Fsize,
    /// Address space, bytes (`RLIMIT_AS`).
    As,
    /// CPU time, seconds (`RLIMIT_CPU`).
    Cpu,
    /// Data segment, bytes (`RLIMIT_DATA`).
    Data,
    /// Resident set, bytes (`RLIMIT_RSS`; Linux ignores it, as systemd notes).
    Rss,
    /// POSIX message queues, bytes (`RLIMIT_MSGQUEUE`).
    Msgqueue,
    /// Queued signals (`RLIMIT_SIGPENDING`).
    Sigpending,
    /// File locks (`RLIMIT_LOCKS`).
    Locks,
}

/// How a resource is counted, which decides what a value may be written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A number of things.
    Count,
    /// Bytes: a size like `"64MiB"` or a number of bytes.
    Bytes,
    /// Seconds: a duration like `"2h"` or a number of seconds.
    Seconds,
}

impl Resource {
    /// Every resource, in man-page order.
    pub const ALL: [Resource; 13] = [
        Resource::Nofile,
        Resource::Nproc,
        Resource::Core,
        Resource::Memlock,
        Resource::Stack,
        Resource::Fsize,
        Resource::As,
        Resource::Cpu,
        Resource::Data,
        Resource::Rss,
        Resource::Msgqueue,
        Resource::Sigpending,
        Resource::Locks,
    ];

    /// The key inside `limits`.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Nofile => "nofile",
            Resource::Nproc => "nproc",
            Resource::Core => "core",
            Resource::Memlock => "memlock",
            Resource::Stack => "stack",
            Resource::Fsize => "fsize",
            Resource::As => "as",
            Resource::Cpu => "cpu",
            Resource::Data => "data",
            Resource::Rss => "rss",
            Resource::Msgqueue => "msgqueue",
            Resource::Sigpending => "sigpending",
            Resource::Locks => "locks",
        }
    }

    /// The names of every resource, for "did you mean".
    pub fn names() -> Vec<&'static str> {
        Resource::ALL.iter().map(|r| r.name()).collect()
    }

    /// The resource named `name` in `limits`.
    pub fn from_name(name: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.name() == name)
    }

    /// How its value is counted.
    pub fn unit(self) -> Unit {
        match self {
            Resource::Nofile | Resource::Nproc | Resource::Sigpending | Resource::Locks => {
                Unit::Count
            }
            Resource::Cpu => Unit::Seconds,
            _ => Unit::Bytes,
        }
    }

    /// The name of systemd's setting for it (`LimitNOFILE`).
    pub fn systemd_name(self) -> String {
        format!("Limit{}", self.name().to_ascii_uppercase())
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A limit's value: a number in the resource's unit, or no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    /// `"unlimited"` (`RLIM_INFINITY`).
    Unlimited,
    /// A number of things, bytes or seconds.
    #[serde(untagged)]
    Value(u64),
}

impl Limit {
    /// The value as written for `resource`: `"unlimited"`, a count, a size or seconds.
    pub fn show(self, resource: Resource) -> String {
        match (self, resource.unit()) {
            (Limit::Unlimited, _) => "unlimited".to_string(),
            (Limit::Value(n), Unit::Bytes) if n >= 1 << 10 => format!("{n} ({})", Size(n)),
            (Limit::Value(n), Unit::Seconds) => format!("{n}s"),
            (Limit::Value(n), _) => n.to_string(),
        }
    }
}

/// The `limits` table: each resource set, in man-page order.
pub type Limits = BTreeMap<Resource, Limit>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_units_and_systemd_names() {
        assert_eq!(Resource::names().len(), 13);
        assert_eq!(Resource::from_name("nofile"), Some(Resource::Nofile));
        assert_eq!(Resource::from_name("NOFILE"), None);
        assert_eq!(Resource::Nofile.systemd_name(), "LimitNOFILE");
        assert_eq!(Resource::Msgqueue.systemd_name(), "LimitMSGQUEUE");
        assert_eq!(Resource::Core.unit(), Unit::Bytes);
        assert_eq!(Resource::Cpu.unit(), Unit::Seconds);
        // The map iterates in man-page order, as `ALL` lists them.
        let mut sorted = Resource::ALL;
        sorted.sort();
        assert_eq!(sorted, Resource::ALL);
    }

    #[test]
    fn limits_round_trip_through_json() {
        let mut limits = Limits::new();
        limits.insert(Resource::Nofile, Limit::Value(65536));
        limits.insert(Resource::Core, Limit::Unlimited);
        let json = serde_json::to_string(&limits).unwrap();
        assert_eq!(json, r#"{"nofile":65536,"core":"unlimited"}"#);
        assert_eq!(serde_json::from_str::<Limits>(&json).unwrap(), limits);
    }
}
