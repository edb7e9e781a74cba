//! What a test reads of a daemon's run directory: its state record (decoded by
//! `dmgr::state`, the product's own reader, so a test sees what `list` sees), its
//! pidfile and that pidfile's lock.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use super::TestEnv;

impl TestEnv {
    /// The path of `name`'s state record.
    pub fn state_path(&self, name: &str) -> PathBuf {
        self.run_dir().join(format!("{name}.state"))
    }

    /// The state record of `name`, as dmgr reads it.
    pub fn record(&self, name: &str) -> Option<dmgr::state::StateRecord> {
        dmgr::state::read(&self.state_path(name))
    }

    /// The state record of `name` as JSON, for a test to look at or change and write
    /// back with [`TestEnv::write_state`].
    pub fn state(&self, name: &str) -> Option<Value> {
        serde_json::to_value(self.record(name)?).ok()
    }

    /// Writes `record` (a state record as JSON) as `name`'s state record, encoded and
    /// sealed by `dmgr::state` as a keeper seals it, so that dmgr reads it as a
    /// keeper's record rather than a torn one.
    #[track_caller]
    pub fn write_state(&self, name: &str, record: &Value) {
        let record: dmgr::state::StateRecord =
            serde_json::from_value(record.clone()).expect("a state record");
        fs::create_dir_all(self.run_dir()).expect("mkdir run dir");
        dmgr::state::write(&self.state_path(name), &record).expect("write the state record");
    }

    /// The daemon PID in `name`'s pidfile.
    pub fn pid(&self, name: &str) -> Option<i32> {
        fs::read_to_string(self.pidfile(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The keeper PID in `name`'s state record.
    pub fn keeper_pid(&self, name: &str) -> Option<i32> {
        Some(self.record(name)?.keeper.pid)
    }

    /// Whether any process holds a lock on `name`'s pidfile right now.
    pub fn pidfile_is_locked(&self, name: &str) -> bool {
        let Ok(file) = fs::File::open(self.pidfile(name)) else {
            return false;
        };
        fs2::FileExt::try_lock_shared(&file).is_err()
    }
}
