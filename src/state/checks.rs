//! What a keeper's checks saw last, kept in the state record for `list` and `status`:
//! the liveness check's streak and the memory against `memory_max`.

use serde::{Deserialize, Serialize};

/// What the keeper's checks saw last, for `list` and `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksSeen {
    /// The liveness check, once one ended in this run.
    #[serde(default)]
    pub health: Option<HealthSeen>,
    /// The memory ceiling's last sample.
    #[serde(default)]
    pub memory: Option<MemorySeen>,
}

/// The liveness check's last outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSeen {
    /// Checks failed in a row (0 after a pass).
    pub failures_in_row: u32,
    /// `health_failures`: the streak that restarts the daemon.
    pub failures_allowed: u32,
    /// When the last check ended (ms since the epoch).
    pub last_at_ms: u64,
    /// Why the last check failed, or null when it passed.
    pub last_error: Option<String>,
}

/// The memory ceiling's last sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemorySeen {
    /// What the daemon's processes used together, in bytes.
    pub used_bytes: u64,
    /// `memory_max`, in bytes.
    pub max_bytes: u64,
    /// When it was measured (ms since the epoch).
    pub at_ms: u64,
    /// How the keeper watches it (see `man dmgr.toml`, `memory_max`).
    #[serde(default)]
    pub mechanism: MemoryMechanism,
    /// Why the keeper samples rather than waits for the kernel's events, where it does.
    #[serde(default)]
    pub sampling_reason: Option<String>,
}

/// How a keeper learns that its daemon's memory crossed `memory_max`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryMechanism {
    /// A measurement every 2 seconds while the daemon is up.
    #[default]
    Sampled,
    /// The ceiling is the cgroup's `memory.high`; the kernel's `memory.events` wake
    /// the keeper, which measures then and only then.
    CgroupEvents,
}

impl MemoryMechanism {
    /// Its name in the record and in `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryMechanism::Sampled => "sampled",
            MemoryMechanism::CgroupEvents => "cgroup-events",
        }
    }
}

impl MemorySeen {
    /// The share of the ceiling in use, in whole percent.
    pub fn percent(&self) -> u64 {
        self.used_bytes.saturating_mul(100) / self.max_bytes.max(1)
    }

    /// True when the daemon uses 90 % of its ceiling or more.
    pub fn is_near(&self) -> bool {
        self.percent() >= 90
    }
}
