//! How a spawn failed: the step, as the forked child reports it by one byte, and the
//! OS error. Plain data, apart from the `unsafe` code in `sys` that produces it.

use std::io;

/// Why a child could not exec: the step that failed and its errno.
#[derive(Debug)]
pub(crate) struct SpawnError {
    /// What failed.
    pub(crate) step: SpawnStep,
    /// The OS error.
    pub(crate) error: io::Error,
}

/// The steps of a spawn that can fail. The child reports its own by the byte
/// `step as u8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpawnStep {
    /// setsid(2) in the child.
    Setsid = 0,
    /// dup2(2) of the standard streams.
    Dup2 = 1,
    /// chdir(2) to the working directory.
    Chdir = 2,
    /// setgroups(2).
    Setgroups = 3,
    /// setgid(2).
    Setgid = 4,
    /// setuid(2).
    Setuid = 5,
    /// execve(2).
    Exec = 6,
    /// Preparing, before or just after the fork.
    SetUp = 7,
    /// Recording the new process (the caller's step between fork and gate).
    Record = 8,
    /// setrlimit(2) of `limits`.
    Setrlimit = 9,
    /// setpriority(2) of `nice`.
    Setpriority = 10,
    /// The write of `oom_score_adj`.
    OomScoreAdj = 11,
}

impl SpawnStep {
    /// The step the child reported by `byte`; anything else counts as set-up.
    pub(super) fn from_byte(byte: u8) -> SpawnStep {
        const ALL: [SpawnStep; 12] = [
            SpawnStep::Setsid,
            SpawnStep::Dup2,
            SpawnStep::Chdir,
            SpawnStep::Setgroups,
            SpawnStep::Setgid,
            SpawnStep::Setuid,
            SpawnStep::Exec,
            SpawnStep::SetUp,
            SpawnStep::Record,
            SpawnStep::Setrlimit,
            SpawnStep::Setpriority,
            SpawnStep::OomScoreAdj,
        ];
        ALL.get(usize::from(byte))
            .copied()
            .unwrap_or(SpawnStep::SetUp)
    }

    /// Its name in messages.
    fn name(self) -> &'static str {
        match self {
            SpawnStep::Setsid => "setsid",
            SpawnStep::Dup2 => "dup2",
            SpawnStep::Chdir => "chdir",
            SpawnStep::Setgroups => "setgroups",
            SpawnStep::Setgid => "setgid",
            SpawnStep::Setuid => "setuid",
            SpawnStep::Exec => "exec",
            SpawnStep::SetUp => "set up",
            SpawnStep::Record => "record",
            SpawnStep::Setrlimit => "setrlimit",
            SpawnStep::Setpriority => "setpriority",
            SpawnStep::OomScoreAdj => "oom_score_adj",
        }
    }
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reason = match self.error.raw_os_error() {
            Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
            None => self.error.to_string(),
        };
        match self.step {
            SpawnStep::Exec => f.write_str(&reason),
            step => write!(f, "{}: {reason}", step.name()),
        }
    }
}
