//! What a keeper is handed by its holder (see `launcher::holder`), and what it tells
//! the holder back: the output pipes the holder made and keeps, and where and how the
//! logs are written, should the keeper die and the holder write them on.

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The output pipes a holder made for its keeper, and the pipe the keeper tells it the
/// log settings on.
#[derive(Debug)]
pub(crate) struct Handoff {
    /// Standard output's pipe: read end, write end.
    pub(crate) out: (OwnedFd, OwnedFd),
    /// Standard error's, used only with `stderr_log`.
    pub(crate) err: (OwnedFd, OwnedFd),
    /// Where the keeper tells the holder the settings.
    pub(crate) settings: SettingsPipe,
}

/// The write end of the pipe the keeper tells its holder the log settings on.
#[derive(Debug)]
pub(crate) struct SettingsPipe(OwnedFd);

impl SettingsPipe {
    /// The write end `fd` of the pipe the holder reads once its keeper is gone.
    pub(crate) fn new(fd: OwnedFd) -> SettingsPipe {
        SettingsPipe(fd)
    }

    /// Tells the holder where and how to write the logs should this keeper die. The
    /// message is small and the pipe empty: the write never blocks, and the holder
    /// reads it only once the keeper has exited.
    pub(crate) fn tell(self, settings: &Settings) {
        if let Ok(bytes) = serde_json::to_vec(settings) {
            let _ = File::from(self.0).write_all(&bytes);
        }
    }
}

/// What the holder needs to write the logs as the keeper did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Settings {
    /// The daemon's name, for events.
    pub(crate) name: String,
    /// Its event history.
    #[serde(with = "crate::text::path_bytes")]
    pub(crate) events: PathBuf,
    /// `log`.
    #[serde(with = "crate::text::path_bytes")]
    pub(crate) log: PathBuf,
    /// `stderr_log`, if any.
    #[serde(with = "crate::text::path_bytes::option")]
    pub(crate) stderr_log: Option<PathBuf>,
    /// `log_max_size` in bytes.
    pub(crate) max_size: u64,
    /// `log_keep`.
    pub(crate) keep: u32,
    /// `log_timestamps`.
    pub(crate) timestamps: bool,
}
