use super::super::record_file::{decode, decode_brief, encode, Decoded};
use super::*;
use crate::config::{Socket, SocketAddress};

/// A record as a keeper writes it, with every field the summary holds set, and
/// strings that need escaping.
fn rich() -> StateRecord {
    let old = r#"{"name":"web","keeper":{"pid":860,"start":2148816},"daemon":null,"status":"stopped","started_at_ms":1796218095134,"restarts":0,"last_exit":{"code":null,"signal":"TERM","at_ms":1796218100887,"ran_ms":5764},"history":[{"code":null,"signal":"TERM","at_ms":1796218100887,"ran_ms":5764}],"next_restart_ms":null,"error":null,"log_error":null,"pidfile":"/r/web.pid","log":"/r/log/web.log","stderr_log":null,"command":["sleep","300"],"process":{"command":["sleep","300"],"env":{},"clear_env":false,"working_dir":"/","user":null,"group":null,"umask":18,"log":"/r/log/web.log","stderr_log":null},"supervision":{"restart":"on-failure","restart_delay_ms":1000,"max_restarts":10,"start_wait_ms":500,"ready":null,"ready_timeout_ms":30000,"stop_signal":15,"stop_timeout_ms":3000,"reload_signal":1,"reload_command":null,"stop_command":null},"boot_id":"9509e5df-d24e-4576-b4df-e907432ed046","reason":"stopped-by-request"}"#;
    let mut r: StateRecord = serde_json::from_str(old).unwrap();
    r.daemon = Some(ProcId {
        pid: 861,
        start: 2148900,
    });
    r.status = Status::Running;
    r.restarts = 3;
    r.last_exit.as_mut().unwrap().code = Some(-2);
    r.error = Some("it said \"no\" 100% \\ twice\n\tand\u{7f} stop".into());
    r.log_error = Some(String::new());
    r.stderr_log = Some("/r/log/web err.log".into());
    r.process.stderr_log = Some("/r/log/web err.log".into());
    r.process.env.insert("PORT".into(), "80".into());
    r.command = vec![
        "sh".into(),
        "-c".into(),
        "echo ~ + = %41 é".into(),
        String::new(),
    ];
    r.process.command = r.command.clone();
    r.output_pipes = vec![7, 8];
    r.reason = Some(Reason::OutsideStop);
    r.cgroup = Some(PathBuf::from(OsString::from_vec(
        b"/sys/fs/cgroup/d\xffmgr".to_vec(),
    )));
    r.no_cgroup = Some("not delegated".into());
    r.daemon_pidfile = Some("/r/nginx.pid".into());
    r.foreground = true;
    r.env_file_digest = Some(u64::MAX);
    r.probe = r.daemon;
    r.holder = Some(r.keeper);
    r.checks.health = Some(HealthSeen {
        failures_in_row: 2,
        failures_allowed: 3,
        last_at_ms: 40,
        last_error: Some("connection refused".into()),
    });
    r.checks.memory = Some(MemorySeen {
        used_bytes: 10,
        max_bytes: 20,
        at_ms: 30,
        mechanism: MemoryMechanism::CgroupEvents,
        sampling_reason: None,
    });
    r.definition = Some(Definition {
        file: FileIdentity {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns: -4,
            ctime_ns: 5,
            taken_ns: 6,
        },
        after: vec!["db".into(), "cache".into()],
        description: Some("the web server".into()),
    });
    r.next_run_ms = Some(1796218200000);
    r.notify = NotifySeen {
        socket: Some("@dmgr-notify".into()),
        status_text: Some("serving 3 requests".into()),
        refused: 1,
        malformed: 2,
        last_refused: Some("pid 9 is not the main process".into()),
    };
    r
}

/// The record as the JSON path of `list`'s read makes it (`state::brief`).
fn from_json(bytes: &[u8]) -> StateRecord {
    let Some(body_end) = bytes.windows(8).rposition(|w| w == b",\"sum\":\"") else {
        panic!("no sum");
    };
    let mut json = bytes[..body_end].to_vec();
    json.push(b'}');
    let brief: super::super::brief::Brief = serde_json::from_slice(&json).unwrap();
    brief.into()
}

fn full(bytes: &[u8]) -> StateRecord {
    match decode(bytes) {
        Decoded::Record(record) => *record,
        _ => panic!("does not decode: {}", String::from_utf8_lossy(bytes)),
    }
}

/// `list` reads from the summary exactly what it read from the JSON, of a plain
/// record and of one with every field set and strings to escape; the file is still
/// the JSON record that earlier dmgrs read, whole by its FNV-1a sum.
#[test]
fn the_summary_holds_all_that_list_reads_of_the_json() {
    let mut plain = rich();
    plain.last_exit = None;
    plain.checks = ChecksSeen::default();
    plain.definition = None;
    plain.notify = NotifySeen::default();
    plain.reason = None;
    for record in [rich(), plain] {
        let bytes = encode(&record).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(bytes.starts_with(HEAD), "{text}");
        let Some(summary) = super::decode(&bytes) else {
            panic!("no summary in {text}");
        };
        assert_eq!(summary, from_json(&bytes), "{text}");
        assert!(matches!(decode_brief(&bytes), Decoded::Record(r) if *r == summary));
        assert_eq!(full(&bytes), record);
    }
}

/// A record cut short, emptied or with any byte changed (but the FNV-1a digits,
/// which the quick sum cannot cover) has no summary: the reader goes the JSON way,
/// which refuses it as before.
#[test]
fn a_record_not_whole_has_no_summary() {
    let bytes = encode(&rich()).unwrap();
    assert!(super::decode(&bytes).is_some(), "the whole record has one");
    let sum_at = bytes.windows(8).rposition(|w| w == b",\"sum\":\"").unwrap();
    for cut in [
        0,
        1,
        HEAD.len(),
        bytes.len() / 2,
        bytes.len() - 3,
        bytes.len() - 2,
    ] {
        assert!(super::decode(&bytes[..cut]).is_none(), "cut to {cut}");
    }
    for at in (0..bytes.len() - 1).filter(|at| !(sum_at + 8..sum_at + 24).contains(at)) {
        let mut edited = bytes.clone();
        edited[at] ^= 0x01;
        assert!(super::decode(&edited).is_none(), "byte {at} edited");
    }
    let edited = String::from_utf8_lossy(&bytes).replace("\"restarts\":3", "\"restarts\":5");
    assert!(super::decode(edited.as_bytes()).is_none());
}

/// Records without a summary are read from their JSON: those of keepers started by
/// an older dmgr, and those of keepers that hold sockets (which the summary does not
/// hold).
#[test]
fn records_of_older_keepers_and_with_sockets_are_read_from_their_json() {
    let mut record = rich();
    let bytes = encode(&record).unwrap();
    // The same record as the dmgr before summaries wrote it.
    let body_at = HEAD.len() + bytes[HEAD.len()..].iter().position(|&b| b == b'"').unwrap() + 2;
    let sum_at = bytes.windows(8).rposition(|w| w == b",\"sum\":\"").unwrap();
    let mut old = b"{".to_vec();
    old.extend_from_slice(&bytes[body_at..sum_at]);
    let sum = super::super::record_file::fnv1a(&old);
    old.extend_from_slice(format!(",\"sum\":\"{sum:016x}\"}}\n").as_bytes());
    assert!(super::decode(&old).is_none());
    assert_eq!(full(&old), record);
    assert!(matches!(decode_brief(&old), Decoded::Record(r) if *r == from_json(&bytes)));

    record.process.sockets = vec![Socket {
        name: "http".into(),
        address: SocketAddress::Tcp("127.0.0.1:8080".into()),
    }];
    let bytes = encode(&record).unwrap();
    assert!(bytes.starts_with(b"{\"name\":"));
    assert!(super::decode(&bytes).is_none());
    assert!(matches!(decode_brief(&bytes), Decoded::Record(r) if r.process.sockets.len() == 1));
}

/// The quick sum is part of the file format: records written by one dmgr are read
/// by the next.
#[test]
fn the_quick_sum_never_changes() {
    assert_eq!(quick_sum(b""), 0x60fd_bca5_f430_fc35);
    assert_eq!(quick_sum(b"{\"name\":\"web\"}"), 0x59dc_e6ae_6286_6dec);
    let long: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    assert_eq!(quick_sum(&long), 0xd41a_5835_7dc8_a585);
}
