//! Unit tests of the state record.

use std::time::Duration;

use super::*;

/// A record as the dmgr before the grouped definition types wrote it (signals by
/// number, top-level copies of `stop_signal` and `stop_timeout`), taken from a real
/// keeper: it still decodes, so `list` shows the daemon, `stop` stops it with the
/// stop keys of its `supervision` and `apply` sees nothing changed.
#[test]
fn record_written_by_the_previous_dmgr_still_reads() {
    const OLD: &str = r#"{"name":"web","keeper":{"pid":860,"start":2148816},"daemon":null,"status":"stopped","started_at_ms":1796218095134,"restarts":0,"last_exit":{"code":null,"signal":"TERM","at_ms":1796218100887,"ran_ms":5764},"history":[{"code":null,"signal":"TERM","at_ms":1796218100887,"ran_ms":5764}],"next_restart_ms":null,"error":null,"log_error":null,"pidfile":"/tmp/layoutcompat.D3oK/r/web.pid","log":"/tmp/layoutcompat.D3oK/r/log/web.log","stderr_log":null,"command":["sleep","300"],"stop_signal":15,"stop_timeout_ms":3000,"process":{"command":["sleep","300"],"env":{},"clear_env":false,"working_dir":"/","user":null,"group":null,"umask":18,"log":"/tmp/layoutcompat.D3oK/r/log/web.log","stderr_log":null},"supervision":{"restart":"on-failure","restart_delay_ms":1000,"max_restarts":10,"start_wait_ms":500,"ready":null,"ready_timeout_ms":30000,"stop_signal":15,"stop_timeout_ms":3000,"reload_signal":1,"reload_command":null,"stop_command":null},"output_pipes":[],"boot_id":"9509e5df-d24e-4576-b4df-e907432ed046","reason":"stopped-by-request","cgroup":null,"daemon_pidfile":null,"foreground":false,"sum":"5929c77aef5f8a36"}"#;
    let Decoded::Record(record) = decode(OLD.as_bytes()) else {
        panic!("the old record does not decode");
    };
    let term = crate::config::units::Signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(record.supervision.stop_signal, term);
    assert_eq!(record.supervision.stop_timeout, Duration::from_secs(3));
    assert_eq!(record.supervision.restart_delay, Duration::from_secs(1));
    assert_eq!(record.process.command, ["sleep", "300"]);
    let mut daemon = crate::config::tests_support::minimal("web");
    daemon.process.command = vec!["sleep".into(), "300".into()];
    daemon.process.log = record.process.log.clone();
    daemon.supervision.stop_timeout = Duration::from_secs(3);
    assert_eq!(record.process.changed(&daemon.process), Vec::<&str>::new());
    assert_eq!(
        record.supervision.changed(&daemon.supervision),
        Vec::<&str>::new()
    );
}

/// The record holds the stop keys once, in its `supervision`: a record of today has
/// no top-level copy, and one read from a record of the previous version (which has
/// them) is written back without them, its supervision unchanged.
#[test]
fn the_stop_keys_are_recorded_once_in_the_supervision() {
    const OLD: &str = r#"{"name":"web","keeper":{"pid":860,"start":2148816},"daemon":null,"status":"stopped","started_at_ms":null,"restarts":0,"last_exit":null,"history":[],"next_restart_ms":null,"error":null,"log_error":null,"pidfile":"/r/web.pid","log":"/r/log/web.log","stderr_log":null,"command":["sleep","300"],"stop_signal":"KILL","stop_timeout_ms":9000,"process":{"command":["sleep","300"],"env":{},"clear_env":false,"working_dir":"/","user":null,"group":null,"umask":18,"log":"/r/log/web.log","stderr_log":null},"supervision":{"restart":"on-failure","restart_delay_ms":1000,"max_restarts":10,"start_wait_ms":500,"ready":null,"ready_timeout_ms":30000,"stop_signal":"INT","stop_timeout_ms":3000,"reload_signal":"HUP","reload_command":null,"stop_command":null}}"#;
    let record: StateRecord = serde_json::from_str(OLD).unwrap();
    assert_eq!(record.supervision.stop_signal.to_string(), "INT");
    assert_eq!(record.supervision.stop_timeout, Duration::from_secs(3));
    let written: serde_json::Value = serde_json::from_slice(&encode(&record).unwrap()).unwrap();
    assert!(written.get("stop_signal").is_none(), "{written}");
    assert!(written.get("stop_timeout_ms").is_none(), "{written}");
    assert_eq!(written["supervision"]["stop_signal"], "INT");
    assert_eq!(written["supervision"]["stop_timeout_ms"], 3000);
}

/// A record rewritten in place over a longer one reads as the new record, though the
/// old one's tail (which ends in a checksum of its own) is still in the file; a path
/// that is not UTF-8 reads back as the same bytes.
#[test]
fn a_record_over_a_longer_old_one_reads_as_written() {
    use std::os::unix::ffi::OsStringExt;
    const OLD: &str = r#"{"name":"web","keeper":{"pid":860,"start":2148816},"daemon":null,"status":"stopped","started_at_ms":null,"restarts":0,"last_exit":null,"history":[],"next_restart_ms":null,"error":null,"log_error":null,"pidfile":"/r/web.pid","log":"/r/log/web.log","stderr_log":null,"command":["sleep","300"],"stop_signal":"TERM","stop_timeout_ms":3000,"process":{"command":["sleep","300"],"env":{},"clear_env":false,"working_dir":"/","user":null,"group":null,"umask":18,"log":"/r/log/web.log","stderr_log":null},"supervision":{"restart":"on-failure","restart_delay_ms":1000,"max_restarts":10,"start_wait_ms":500,"ready":null,"ready_timeout_ms":30000,"stop_signal":"TERM","stop_timeout_ms":3000,"reload_signal":"HUP","reload_command":null,"stop_command":null},"sum":"0"}"#;
    let mut record: StateRecord = serde_json::from_str(OLD).unwrap();
    record.error = Some("a long message that makes the older record longer".repeat(4));
    let older = encode(&record).unwrap();
    record.error = None;
    record.pidfile = PathBuf::from(std::ffi::OsString::from_vec(b"/r/\xffweb.pid".to_vec()));
    let newer = encode(&record).unwrap();
    assert!(newer.len() < older.len());
    let mut file = newer.clone();
    file.extend_from_slice(&older[newer.len()..]);
    for bytes in [&newer, &file] {
        let Decoded::Record(read) = decode(bytes) else {
            panic!("does not decode: {}", String::from_utf8_lossy(bytes));
        };
        assert_eq!(*read, record);
    }
}

/// `list --json` prints each status as the word the table shows.
#[test]
fn each_status_serialises_as_its_word_and_parses_back() {
    for status in Status::ALL {
        let json = serde_json::to_value(status).unwrap();
        assert_eq!(json, status.as_str());
        assert_eq!(status.as_str().parse(), Ok(status));
    }
    assert_eq!("up".parse::<Status>(), Err(()));
}

#[test]
fn signals_are_written_by_name() {
    let record = serde_json::to_value(Supervision::default()).unwrap();
    assert_eq!(record["stop_signal"], "TERM");
    assert_eq!(record["reload_signal"], "HUP");
    assert_eq!(record["stop_timeout_ms"], 10_000);
    let back: Supervision = serde_json::from_value(record).unwrap();
    assert_eq!(back, Supervision::default());
}

fn identity(mtime_ns: i64, ctime_ns: i64, taken_ns: i64) -> FileIdentity {
    FileIdentity {
        dev: 1,
        ino: 2,
        size: 3,
        mtime_ns,
        ctime_ns,
        taken_ns,
    }
}

/// git's racy rule: a file changed within the timestamps' granularity of the moment
/// its identity was taken could change again with the same times, so its identity
/// proves nothing; one changed earlier is trusted.
#[test]
fn an_identity_taken_within_the_granularity_of_the_last_change_is_not_trusted() {
    let g = TIMESTAMP_GRANULARITY_NS;
    let t = 1_800_000_000_000_000_000;
    assert!(identity(t - g - 1, t - g - 1, t).is_trusted());
    assert!(!identity(t - g, t - g - 1, t).is_trusted());
    assert!(
        !identity(t - g - 1, t - g, t).is_trusted(),
        "ctime counts too"
    );
    assert!(!identity(t, t, t).is_trusted());
    // A time in the future (clock set back, another host's clock) is not trusted.
    assert!(!identity(t + 5 * g, t + 5 * g, t).is_trusted());
}

#[test]
fn any_change_of_device_inode_size_or_times_is_another_file() {
    let old = identity(10, 20, 1_000_000_000);
    let later = FileIdentity {
        taken_ns: 9_000_000_000,
        ..old
    };
    assert!(old.is_same_file(&later), "when it was taken does not count");
    for changed in [
        FileIdentity { dev: 9, ..later },
        FileIdentity { ino: 9, ..later },
        FileIdentity { size: 9, ..later },
        FileIdentity {
            mtime_ns: 11,
            ..later
        },
        FileIdentity {
            ctime_ns: 21,
            ..later
        },
    ] {
        assert!(!old.is_same_file(&changed), "{changed:?}");
    }
}

#[test]
fn the_identity_of_a_file_follows_its_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.toml");
    std::fs::write(&path, "command = \"a\"\n").unwrap();
    let first = FileIdentity::of(&path).unwrap();
    assert_eq!(first.size, 14);
    assert!(first.taken_ns >= first.ctime_ns - TIMESTAMP_GRANULARITY_NS);
    std::fs::write(&path, "command = \"bb\"\n").unwrap();
    assert!(!first.is_same_file(&FileIdentity::of(&path).unwrap()));
    assert!(FileIdentity::of(&dir.path().join("none.toml")).is_none());
}

#[test]
fn torn_records_are_detected_and_longer_old_tails_ignored() {
    assert!(matches!(
        decode(b"{\"a\":1,\"sum\":\"0000000000000000\"}"),
        Decoded::Torn
    ));
    assert!(matches!(decode(b"{\"na"), Decoded::Torn));
    let body = b"{\"name\":1";
    let mut good = body.to_vec();
    good.extend_from_slice(format!(",\"sum\":\"{:016x}\"}}\nold tail", fnv1a(body)).as_bytes());
    // Checksummed, but not a StateRecord: invalid, not torn.
    assert!(matches!(decode(&good), Decoded::Invalid(_)));
}

/// A record for the tests below, of the daemon `name`.
fn sample(name: &str) -> StateRecord {
    const OLD: &str = r#"{"name":"web","keeper":{"pid":860,"start":2148816},"daemon":null,"status":"stopped","started_at_ms":null,"restarts":0,"last_exit":null,"history":[],"next_restart_ms":null,"error":null,"log_error":null,"pidfile":"/r/web.pid","log":"/r/log/web.log","stderr_log":null,"command":["sleep","300"],"stop_signal":"TERM","stop_timeout_ms":3000,"process":{"command":["sleep","300"],"env":{},"clear_env":false,"working_dir":"/","user":null,"group":null,"umask":18,"log":"/r/log/web.log","stderr_log":null},"supervision":{"restart":"on-failure","restart_delay_ms":1000,"max_restarts":10,"start_wait_ms":500,"ready":null,"ready_timeout_ms":30000,"stop_signal":"TERM","stop_timeout_ms":3000,"reload_signal":"HUP","reload_command":null,"stop_command":null}}"#;
    let mut record: StateRecord = serde_json::from_str(OLD).unwrap();
    record.name = name.to_string();
    record
}

fn unknown(reading: Reading) -> String {
    match reading {
        Reading::Unknown(why) => why,
        other => panic!("not unknown: {other:?}"),
    }
}

/// Issue 22, findings 6 and 7: a record that is truncated, garbled, a symlink, a hard
/// link or another daemon's is `unknown` with the reason, never "no record".
#[test]
fn a_record_that_is_not_whole_or_not_its_own_is_unknown_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(format!("{name}.state"));
    assert!(matches!(read_checked(&path("web"), "web"), Reading::Absent));
    write(&path("web"), &sample("web")).unwrap();
    write(&path("db"), &sample("db")).unwrap();
    assert_eq!(read(&path("web")).unwrap().name, "web");

    let whole = std::fs::read(path("web")).unwrap();
    std::fs::write(path("web"), &whole[..whole.len() / 2]).unwrap();
    assert!(unknown(read_checked(&path("web"), "web")).contains("checksum"));
    std::fs::write(path("web"), "").unwrap();
    assert!(unknown(read_checked(&path("web"), "web")).contains("checksum"));

    std::fs::remove_file(path("web")).unwrap();
    std::os::unix::fs::symlink(path("db"), path("web")).unwrap();
    assert!(unknown(read_checked(&path("web"), "web")).contains("symlink"));

    std::fs::remove_file(path("web")).unwrap();
    std::fs::hard_link(path("db"), path("web")).unwrap();
    assert!(unknown(read_checked(&path("web"), "web")).contains("2 hard links"));

    std::fs::remove_file(path("web")).unwrap();
    std::fs::copy(path("db"), path("web")).unwrap();
    assert!(unknown(read_checked(&path("web"), "web")).contains("another daemon, `db`"));
    assert!(read(&path("web")).is_none());
}

/// Issue 22, finding 3: a write that fails leaves the previous record whole; one that
/// works replaces it (and a symlink or a hard link planted in its place, never what
/// that points to, now or at the writes after, which reuse the previous record's file).
#[test]
fn a_failed_write_leaves_the_previous_record_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.state");
    let mut file = StateFile::open(&path).unwrap();
    let mut record = sample("web");
    file.write(&record).unwrap();
    // The temporary file's name taken by a directory: its write fails.
    std::fs::create_dir(dir.path().join(".web.state.tmp")).unwrap();
    record.restarts = 7;
    assert!(file.write(&record).is_err());
    assert_eq!(read(&path).unwrap().restarts, 0);
    std::fs::remove_dir(dir.path().join(".web.state.tmp")).unwrap();
    file.write(&record).unwrap();
    assert_eq!(read(&path).unwrap().restarts, 7);
    record.restarts = 8;
    file.write(&record).unwrap();
    assert_eq!(read(&path).unwrap().restarts, 8);

    let victim = dir.path().join("victim");
    for plant in ["symlink", "hard link"] {
        std::fs::write(&victim, "precious").unwrap();
        std::fs::remove_file(&path).unwrap();
        match plant {
            "symlink" => std::os::unix::fs::symlink(&victim, &path).unwrap(),
            _ => std::fs::hard_link(&victim, &path).unwrap(),
        }
        for restarts in [9, 10, 11] {
            record.restarts = restarts;
            file.write(&record).unwrap();
            assert_eq!(read(&path).unwrap().restarts, restarts, "{plant}");
            assert_eq!(
                std::fs::read_to_string(&victim).unwrap(),
                "precious",
                "{plant}"
            );
        }
    }
}

/// `Reason::ALL` holds every reason (a new variant breaks the match below until it is
/// listed), and each one's name is the one `--json` and the record's summary use.
#[test]
fn every_reason_is_listed_once_and_read_back_by_its_name() {
    for reason in Reason::ALL {
        match reason {
            Reason::StoppedByRequest
            | Reason::Exited
            | Reason::GaveUp
            | Reason::StartFailed
            | Reason::HostRestarted
            | Reason::KeeperLost
            | Reason::OutsideStop => {}
        }
        assert_eq!(
            serde_json::to_string(&reason).unwrap(),
            format!("\"{}\"", reason.as_str())
        );
        assert_eq!(Reason::from_name(reason.as_str().as_bytes()), Some(reason));
    }
    let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Reason::ALL.len());
    assert_eq!(Reason::from_name(b"gone"), None);
}
