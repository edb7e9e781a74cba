//! [`PrivateTmpfs`]: a small tmpfs in a mount namespace of its own (`unshare -m`), for
//! the tests of a full disk. Only processes in that namespace see it: `dmgr` commands
//! run through `nsenter` ([`TestEnv::in_namespace_of`](super::TestEnv)), and so the
//! keepers they start. The test reaches its files through `/proc/PID/root`. The mount
//! goes away with the last process in the namespace, so a test that is killed leaves
//! no mount behind.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A tmpfs mounted at a directory in a mount namespace held by a sleeping process.
pub struct PrivateTmpfs {
    holder: Child,
    dir: PathBuf,
}

impl PrivateTmpfs {
    /// Mounts a tmpfs with mount `options` (`"size=4m,mode=0755"`) at `dir` (created)
    /// in a new mount namespace. `None` where that cannot be done (not root, no
    /// `unshare`): `test` prints that it skipped, and fails instead when `CI` is set.
    pub fn mount(dir: &Path, options: &str, test: &str) -> Option<PrivateTmpfs> {
        fs::create_dir_all(dir).expect("mkdir the mount point");
        let spawned = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs -o \"$1\" tmpfs \"$2\" && echo mounted && exec sleep 100000")
            .args(["sh", options])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let skip = |why: String| {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: cannot run under CI: {why}"
            );
            eprintln!("{test}: skipped: {why}");
            None
        };
        let mut holder = match spawned {
            Ok(child) => child,
            Err(e) => return skip(format!("cannot run unshare: {e}")),
        };
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("piped stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "mounted" {
            let _ = holder.kill();
            let out = holder.wait_with_output().ok();
            let stderr = out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
            return skip(format!(
                "cannot mount a tmpfs in a private mount namespace (root needed): {}",
                stderr.unwrap_or_default().trim()
            ));
        }
        Some(PrivateTmpfs {
            holder,
            dir: dir.to_path_buf(),
        })
    }

    /// The process that holds the namespace.
    pub fn pid(&self) -> i32 {
        self.holder.id() as i32
    }

    /// `name` on the tmpfs, as the test reaches it from outside the namespace.
    pub fn path(&self, name: &str) -> PathBuf {
        let mut path = PathBuf::from(format!("/proc/{}/root", self.pid()));
        path.push(self.dir.strip_prefix("/").unwrap_or(&self.dir));
        path.join(name)
    }

    /// The mount point, as processes in the namespace name it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fills the tmpfs up with a file `filler`, to the last page it can take.
    pub fn fill(&self) {
        let mut filler = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("filler"))
            .expect("open the filler");
        for size in [1 << 20, 4096, 1] {
            let chunk = vec![b'f'; size];
            while filler.write_all(&chunk).is_ok() {}
        }
    }

    /// Frees what [`PrivateTmpfs::fill`] took.
    pub fn free(&self) {
        fs::remove_file(self.path("filler")).expect("remove the filler");
    }
}

impl Drop for PrivateTmpfs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Runs the test `name` (its full path, `module::test`) again, alone, in a mount
/// namespace of its own, where it may mount what it likes: the mounts go away with the
/// last process in the namespace, even if the test is killed. Returns `Some(true)` in
/// the outer run, once the inner one passed; `Some(false)` in the inner run, which
/// goes on with the test; `None` where no namespace can be made (the test skipped,
/// or fails under `CI`).
#[track_caller]
pub fn in_private_mount_namespace(name: &str) -> Option<bool> {
    const INNER: &str = "DMGR_TEST_PRIVATE_MOUNTS";
    if std::env::var_os(INNER).is_some() {
        return Some(false);
    }
    let probe = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .stderr(Stdio::piped())
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        let why = probe.map_or_else(
            |e| e.to_string(),
            |o| String::from_utf8_lossy(&o.stderr).trim().to_string(),
        );
        assert!(
            std::env::var_os("CI").is_none(),
            "{name}: cannot run under CI: no private mount namespace: {why}"
        );
        eprintln!("{name}: skipped: no private mount namespace (root needed): {why}");
        return None;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private"])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(INNER, "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the test in a private mount namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed in its private mount namespace:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(true)
}
