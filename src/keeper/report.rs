//! The keeper's one report to the `dmgr start` that spawned it, over the notify pipe:
//! both ends, as one typed message. The keeper writes [`Report::encode`] once, when the
//! start's outcome is known, and closes the pipe; `dmgr start` reads to end-of-file and
//! decodes. A keeper that dies first leaves end-of-file and nothing else.

use std::fs::File;
use std::io::{Read, Write};

/// How a start ended, as the keeper reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// The daemon is up (past `start_wait` and `ready`) as the process `pid`.
    Started {
        /// The daemon's PID, always above 0.
        pid: i32,
    },
    /// A oneshot ran to completion (exit 0) in `ran_ms`.
    Done { ran_ms: u64 },
    /// A scheduled oneshot waits for its next time, `next_ms` (ms since the epoch; 0
    /// when it has none).
    Waiting { next_ms: u64 },
    /// The start failed; `reason` may span lines (every problem of an invalid file).
    Failed {
        /// Why, for the user.
        reason: String,
    },
}

impl Report {
    /// The bytes on the pipe: `ok PID\n` or `err REASON\n`.
    pub(crate) fn encode(&self) -> String {
        match self {
            Report::Started { pid } => format!("ok {pid}\n"),
            Report::Done { ran_ms } => format!("done {ran_ms}\n"),
            Report::Waiting { next_ms } => format!("waiting {next_ms}\n"),
            Report::Failed { reason } => format!("err {reason}\n"),
        }
    }

    /// The report in `text`; `None` for anything [`Report::encode`] never writes (a
    /// keeper that died mid-write, a PID that is no PID).
    pub(crate) fn decode(text: &str) -> Option<Report> {
        let text = text.strip_suffix('\n')?;
        if let Some(pid) = text.strip_prefix("ok ") {
            let pid: i32 = pid.parse().ok()?;
            return (pid > 0).then_some(Report::Started { pid });
        }
        if let Some(ms) = text.strip_prefix("done ") {
            return Some(Report::Done {
                ran_ms: ms.parse().ok()?,
            });
        }
        if let Some(ms) = text.strip_prefix("waiting ") {
            return Some(Report::Waiting {
                next_ms: ms.parse().ok()?,
            });
        }
        let reason = text.strip_prefix("err ")?;
        Some(Report::Failed {
            reason: reason.to_string(),
        })
    }
}

/// The keeper's end: the notify pipe, until the start's outcome is reported.
#[derive(Debug)]
pub(crate) struct Reporter(Option<File>);

impl Reporter {
    /// The end of `pipe`, or a reporter with nobody to tell.
    pub(crate) fn new(pipe: Option<File>) -> Reporter {
        Reporter(pipe)
    }

    /// Returns true if and only if the start's outcome has not been reported yet.
    pub(crate) fn is_pending(&self) -> bool {
        self.0.is_some()
    }

    /// Reports `report` and closes the pipe; later reports go nowhere.
    pub(crate) fn send(&mut self, report: &Report) {
        if let Some(mut pipe) = self.0.take() {
            // The CLI may have gone (interrupted); nobody else needs to know.
            let _ = pipe.write_all(report.encode().as_bytes());
        }
    }

    /// Closes the pipe without a report.
    pub(crate) fn close(&mut self) {
        self.0 = None;
    }
}

/// The CLI's end: everything the keeper wrote on `pipe`, decoded.
pub(crate) fn read_report(mut pipe: File) -> Option<Report> {
    let mut text = String::new();
    pipe.read_to_string(&mut text).ok()?;
    Report::decode(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_through_the_pipe_format() {
        for report in [
            Report::Started { pid: 4242 },
            Report::Failed {
                reason: "invalid file:\nweb.toml:1:1: bad".into(),
            },
            Report::Failed { reason: "".into() },
            Report::Done { ran_ms: 1234 },
            Report::Waiting {
                next_ms: 1_700_000_000_000,
            },
        ] {
            assert_eq!(Report::decode(&report.encode()), Some(report));
        }
    }

    #[test]
    fn a_bad_pid_or_a_torn_report_is_no_report() {
        for text in [
            "ok 0\n", "ok -3\n", "ok x\n", "ok \n", "ok 12", "", "err", "hello\n",
        ] {
            assert_eq!(Report::decode(text), None, "{text:?}");
        }
    }
}
