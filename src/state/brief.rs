//! The state record as `list` reads it: every field it shows or checks, decoded, and
//! the bulk it never shows (the daemon's whole process spec, its supervision keys, the
//! crash history) skipped unbuilt (issue 30).
//!
//! Building those parts (an environment map, a dozen durations and signals, the
//! history's exits) was most of the cost of decoding a record, and decoding records
//! was the largest part of `list`'s own time. serde skips what [`Brief`] does not
//! name without allocating anything. The record on disk is unchanged, so records of
//! every earlier dmgr read as before; the checks of [`super::read_checked`] (the
//! file, the checksum, the daemon's name) all still apply.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ChecksSeen, Definition, ExitRecord, NotifySeen, Reason, StateRecord, Status};
use crate::config::{ProcessSpec, Socket, Supervision};
use crate::procinfo::ProcId;
use crate::text::path_bytes;

/// The fields of [`StateRecord`] that `list` uses, with the same names and serde
/// attributes; `process` is read for its log paths alone. A field added to the record
/// must be added here too (the conversion names every field, so the build says so).
#[derive(Deserialize)]
pub(super) struct Brief {
    name: String,
    keeper: ProcId,
    daemon: Option<ProcId>,
    status: Status,
    started_at_ms: Option<u64>,
    restarts: u32,
    last_exit: Option<ExitRecord>,
    next_restart_ms: Option<u64>,
    error: Option<String>,
    log_error: Option<String>,
    #[serde(with = "path_bytes")]
    pidfile: PathBuf,
    #[serde(with = "path_bytes")]
    log: PathBuf,
    #[serde(with = "path_bytes::option")]
    stderr_log: Option<PathBuf>,
    command: Vec<String>,
    process: BriefProcess,
    #[serde(default)]
    output_pipes: Vec<u64>,
    #[serde(default)]
    boot_id: Option<String>,
    #[serde(default)]
    reason: Option<Reason>,
    #[serde(default, with = "path_bytes::option")]
    cgroup: Option<PathBuf>,
    #[serde(default)]
    no_cgroup: Option<String>,
    #[serde(default, with = "path_bytes::option")]
    daemon_pidfile: Option<PathBuf>,
    #[serde(default)]
    foreground: bool,
    #[serde(default)]
    env_file_digest: Option<u64>,
    #[serde(default)]
    probe: Option<ProcId>,
    #[serde(default)]
    holder: Option<ProcId>,
    #[serde(default, rename = "watch")]
    checks: ChecksSeen,
    #[serde(default)]
    definition: Option<Definition>,
    #[serde(default)]
    next_run_ms: Option<u64>,
    #[serde(default)]
    notify: NotifySeen,
}

/// The log paths of the record's `process`, which `list` compares with the defaults,
/// and the sockets its keeper holds, which `list --json` shows.
#[derive(Deserialize)]
struct BriefProcess {
    #[serde(with = "path_bytes")]
    log: PathBuf,
    #[serde(with = "path_bytes::option")]
    stderr_log: Option<PathBuf>,
    #[serde(default)]
    sockets: Vec<Socket>,
}

impl From<Brief> for StateRecord {
    fn from(b: Brief) -> StateRecord {
        StateRecord {
            process: ProcessSpec {
                command: b.command.clone(),
                log: b.process.log,
                stderr_log: b.process.stderr_log,
                sockets: b.process.sockets,
                ..ProcessSpec::default()
            },
            supervision: Supervision::default(),
            history: Vec::new(),
            name: b.name,
            keeper: b.keeper,
            daemon: b.daemon,
            status: b.status,
            started_at_ms: b.started_at_ms,
            restarts: b.restarts,
            last_exit: b.last_exit,
            next_restart_ms: b.next_restart_ms,
            error: b.error,
            log_error: b.log_error,
            pidfile: b.pidfile,
            log: b.log,
            stderr_log: b.stderr_log,
            command: b.command,
            output_pipes: b.output_pipes,
            boot_id: b.boot_id,
            reason: b.reason,
            cgroup: b.cgroup,
            no_cgroup: b.no_cgroup,
            daemon_pidfile: b.daemon_pidfile,
            foreground: b.foreground,
            env_file_digest: b.env_file_digest,
            probe: b.probe,
            holder: b.holder,
            checks: b.checks,
            definition: b.definition,
            next_run_ms: b.next_run_ms,
            notify: b.notify,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::record_file::{decode, decode_brief, encode, Decoded};
    use super::*;
    use crate::state::{FileIdentity, MemorySeen};

    /// A record as the dmgr before this one wrote it (top-level copies of the stop
    /// keys, signals by name), its checksum and all.
    const PREVIOUS: &str = r#"{"name":"web","keeper":{"pid":860,"start":2148816},"daemon":null,"status":"stopped","started_at_ms":1796218095134,"restarts":0,"last_exit":{"code":null,"signal":"TERM","at_ms":1796218100887,"ran_ms":5764},"history":[{"code":null,"signal":"TERM","at_ms":1796218100887,"ran_ms":5764}],"next_restart_ms":null,"error":null,"log_error":null,"pidfile":"/tmp/layoutcompat.D3oK/r/web.pid","log":"/tmp/layoutcompat.D3oK/r/log/web.log","stderr_log":null,"command":["sleep","300"],"stop_signal":15,"stop_timeout_ms":3000,"process":{"command":["sleep","300"],"env":{},"clear_env":false,"working_dir":"/","user":null,"group":null,"umask":18,"log":"/tmp/layoutcompat.D3oK/r/log/web.log","stderr_log":null},"supervision":{"restart":"on-failure","restart_delay_ms":1000,"max_restarts":10,"start_wait_ms":500,"ready":null,"ready_timeout_ms":30000,"stop_signal":15,"stop_timeout_ms":3000,"reload_signal":1,"reload_command":null,"stop_command":null},"output_pipes":[],"boot_id":"9509e5df-d24e-4576-b4df-e907432ed046","reason":"stopped-by-request","cgroup":null,"daemon_pidfile":null,"foreground":false,"sum":"5929c77aef5f8a36"}"#;

    fn full(bytes: &[u8]) -> StateRecord {
        match decode(bytes) {
            Decoded::Record(record) => *record,
            _ => panic!("does not decode: {}", String::from_utf8_lossy(bytes)),
        }
    }

    fn brief(bytes: &[u8]) -> StateRecord {
        match decode_brief(bytes) {
            Decoded::Record(record) => *record,
            _ => panic!(
                "does not decode briefly: {}",
                String::from_utf8_lossy(bytes)
            ),
        }
    }

    /// The full record less what the brief one leaves out.
    fn as_brief(mut record: StateRecord) -> StateRecord {
        record.process = ProcessSpec {
            command: record.command.clone(),
            log: record.process.log,
            stderr_log: record.process.stderr_log,
            ..ProcessSpec::default()
        };
        record.supervision = Supervision::default();
        record.history.clear();
        record
    }

    /// `list` reads records briefly: of a record written by the previous dmgr (whose
    /// keepers keep running across an upgrade) and of one of today with every field
    /// that `list` shows set, it gets every such field as the full decode does.
    #[test]
    fn a_brief_record_holds_all_that_list_shows_of_old_and_new_records() {
        let old = full(PREVIOUS.as_bytes());
        assert_eq!(brief(PREVIOUS.as_bytes()), as_brief(old.clone()));

        let mut rich = old;
        rich.daemon = Some(ProcId {
            pid: 861,
            start: 2148900,
        });
        rich.status = Status::Running;
        rich.restarts = 3;
        rich.error = Some("it said no".into());
        rich.log_error = Some("disk full".into());
        rich.stderr_log = Some("/r/log/web.err".into());
        rich.process.stderr_log = Some("/r/log/web.err".into());
        rich.process.env.insert("PORT".into(), "80".into());
        rich.supervision.max_restarts = 99;
        rich.output_pipes = vec![7, 8];
        rich.reason = Some(Reason::KeeperLost);
        rich.cgroup = Some("/sys/fs/cgroup/dmgr/web".into());
        rich.no_cgroup = Some("not delegated".into());
        rich.daemon_pidfile = Some("/r/nginx.pid".into());
        rich.foreground = true;
        rich.env_file_digest = Some(42);
        rich.probe = rich.daemon;
        rich.holder = Some(rich.keeper);
        rich.checks.memory = Some(MemorySeen {
            used_bytes: 10,
            max_bytes: 20,
            at_ms: 30,
            mechanism: crate::state::MemoryMechanism::default(),
            sampling_reason: Some("no cgroup".into()),
        });
        rich.definition = Some(Definition {
            file: FileIdentity {
                dev: 1,
                ino: 2,
                size: 3,
                mtime_ns: 4,
                ctime_ns: 5,
                taken_ns: 6,
            },
            after: vec!["db".into()],
            description: Some("the web server".into()),
        });
        rich.notify.status_text = Some("serving".into());
        rich.next_run_ms = Some(1796218200000);
        let bytes = encode(&rich).unwrap();
        assert_eq!(brief(&bytes), as_brief(full(&bytes)));
        assert_eq!(full(&bytes), rich);
    }

    /// The brief decode makes the same checks: a record whose checksum fails is not
    /// whole, one that is not a record does not parse.
    #[test]
    fn a_brief_read_refuses_what_the_full_read_refuses() {
        let edited = PREVIOUS.replace("\"restarts\":0", "\"restarts\":9");
        assert!(matches!(decode_brief(edited.as_bytes()), Decoded::Torn));
        assert!(matches!(decode(edited.as_bytes()), Decoded::Torn));
        let mut garbled = encode(&full(PREVIOUS.as_bytes())).unwrap();
        let at = garbled.windows(7).position(|w| w == b"\"name\":").unwrap();
        garbled[at + 1] = b'N';
        // Re-sealed, so that only the parse can refuse it.
        let body_end = garbled
            .windows(8)
            .rposition(|w| w == b",\"sum\":\"")
            .unwrap();
        garbled.truncate(body_end);
        let sum = super::super::record_file::fnv1a(&garbled);
        garbled.extend_from_slice(format!(",\"sum\":\"{sum:016x}\"}}\n").as_bytes());
        assert!(matches!(decode_brief(&garbled), Decoded::Invalid(_)));
        assert!(matches!(decode(&garbled), Decoded::Invalid(_)));
    }
}
