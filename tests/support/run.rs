//! [`Run`]: a finished `dmgr` call, with assertions on its exit code and output.

use std::io::Read;
use std::process::Output;
use std::time::{Duration, Instant};

/// How long any single `dmgr` call may take before the test fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A finished `dmgr` call.
#[derive(Debug)]
pub struct Run {
    args: String,
    output: Output,
}

impl Run {
    pub(super) fn wait(child: std::process::Child, args: &[&str]) -> Run {
        let args = args.join(" ");
        match Run::try_wait(child, CALL_TIMEOUT) {
            Some(output) => Run { args, output },
            None => panic!("dmgr {args} did not finish within {CALL_TIMEOUT:?}"),
        }
    }

    /// Waits for `child` with a deadline, reading its output; kills it past the deadline.
    pub fn try_wait(mut child: std::process::Child, timeout: Duration) -> Option<Output> {
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let out = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut buf);
            }
            buf
        });
        let err = std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut buf);
            }
            buf
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Some(Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    }

    /// Standard output.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Standard error.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Standard output as the bytes written.
    pub fn stdout_bytes(&self) -> &[u8] {
        &self.output.stdout
    }

    /// Asserts that standard output lacks `text`.
    #[track_caller]
    pub fn stdout_lacks(self, text: &str) -> Run {
        assert!(
            !self.stdout().contains(text),
            "dmgr {}: stdout has {text:?}:\n{}",
            self.args,
            self.stdout()
        );
        self
    }

    /// Asserts that standard error lacks `text`.
    #[track_caller]
    pub fn stderr_lacks(self, text: &str) -> Run {
        assert!(
            !self.stderr().contains(text),
            "dmgr {}: stderr has {text:?}:\n{}",
            self.args,
            self.stderr()
        );
        self
    }

    /// The exit code.
    pub fn exit_code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn success(self) -> Run {
        self.code(0)
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.output.status.code(),
            Some(code),
            "dmgr {} exited {:?}, expected {code}\n--- stdout\n{}--- stderr\n{}",
            self.args,
            self.output.status,
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts that standard output contains `text`.
    #[track_caller]
    pub fn stdout_has(self, text: &str) -> Run {
        assert!(
            self.stdout().contains(text),
            "dmgr {}: stdout lacks {text:?}:\n{}",
            self.args,
            self.stdout()
        );
        self
    }

    /// Asserts that standard error contains `text`.
    #[track_caller]
    pub fn stderr_has(self, text: &str) -> Run {
        assert!(
            self.stderr().contains(text),
            "dmgr {}: stderr lacks {text:?}:\n{}",
            self.args,
            self.stderr()
        );
        self
    }
}
