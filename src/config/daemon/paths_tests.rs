//! The paths a daemon file names, as the builder checks them: where dmgr writes must
//! be a file of its own, away from the config directory and dmgr's own files.

use super::super::tests::{dirs, load_text, problem, problems};
use super::super::*;

/// A pidfile or log that would overwrite a daemon file, dmgr's own
/// files, or another path of the same daemon is refused where it is set.
#[test]
fn paths_dmgr_writes_cannot_be_its_own_files_or_each_other() {
    let at_config = problem("pidfile = \"pf.toml\"");
    assert!(
        at_config.contains("inside the config directory"),
        "{at_config}"
    );
    assert!(problem("log = \"lg.toml\"").contains("inside the config directory"));
    assert!(problem("stderr_log = \"sub/x.log\"").contains("inside the config directory"));
    assert!(problem("log = \"../run/web.state\"").contains("dmgr's own files"));
    assert!(problem("pidfile = \"../run/other.lock\"").contains("dmgr's own files"));
    assert!(problem("log = \"../run/web.events\"").contains("dmgr's own files"));
    let same = problems("command = \"a\"\npidfile = \"/tmp/x\"\nlog = \"/tmp/x\"\n");
    assert_eq!(
        same,
        ["3:7: `log` is the same file as `pidfile` (/tmp/x); give each its own path"]
    );
    assert!(problem("log = \"../run/web.pid\"").contains("same file as `pidfile`"));
    assert!(problem("stderr_log = \"../run/web.pid\"").contains("same file as `pidfile`"));
    assert!(problem("pidfile = \"../run/log/web.log.2\"").contains("rotated file `.2`"));
    assert!(load_text("command = \"a\"\npidfile = \"../run/log/web.log.6\"\n").is_ok());
    assert!(problem("stderr_log = \"../run/log/web.log\"").contains("leave it out"));
}

/// A link elsewhere to the daemon's own file is the same file.
#[test]
fn a_hard_link_to_the_daemon_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = dirs(tmp.path());
    std::fs::create_dir_all(&dirs.config_dir).unwrap();
    let file = dirs.config_dir.join("web.toml");
    std::fs::write(&file, "command = \"a\"\npidfile = \"../link\"\n").unwrap();
    std::fs::hard_link(&file, tmp.path().join("link")).unwrap();
    let invalid = load_file(&dirs, &file).err().unwrap();
    assert!(
        invalid.diagnostics[0]
            .message
            .contains("this daemon's own file"),
        "{:?}",
        invalid.diagnostics
    );
}
