//! `lifecycle __ssd DIR N SSD`: start N sleeps with start-stop-daemon in a loop,
//! then stop them in a loop, and print both times in nanoseconds.
//!
//! `--stop --retry` waits until the PID is gone, and a zombie still has its PID.
//! Where PID 1 reaps lazily (here, 1-2 s late) that would time PID 1, not
//! start-stop-daemon, so this runner is a child subreaper: the detached sleeps
//! are reparented to it and it reaps each as soon as it dies, as a prompt init does.

use super::*;

pub fn main(args: &[String]) -> ExitCode {
    let result = match args {
        [dir, n, ssd] => n
            .parse::<usize>()
            .map_err(|_| io::Error::other(format!("bad count {n:?}")))
            .and_then(|n| run(Path::new(dir), n, Path::new(ssd))),
        _ => Err(io::Error::other(format!("bad arguments {args:?}"))),
    };
    match result {
        Ok((start, stop)) => {
            println!("{} {}", start.as_nanos(), stop.as_nanos());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lifecycle __ssd: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(dir: &Path, n: usize, ssd: &Path) -> io::Result<(Duration, Duration)> {
    sys::set_child_subreaper()?;
    let pidfile = |i: usize| dir.join(format!("{i}.pid"));
    let t = Instant::now();
    for i in 0..n {
        let mut cmd = Command::new(ssd);
        cmd.args(["--start", "--background", "--make-pidfile", "--pidfile"])
            .arg(pidfile(i))
            .args(["--exec", "/bin/sleep", "--", SLEEP_SECS]);
        run_reaping(cmd)?;
    }
    let start = t.elapsed();
    for i in 0..n {
        let text = fs::read_to_string(pidfile(i))?;
        let pid: i32 = text.trim().parse().unwrap_or(0);
        if procfs::stat(pid).is_none_or(|s| s.state == 'Z') {
            return Err(io::Error::other(format!(
                "sleep {i} (pid {pid}) is not running"
            )));
        }
    }
    let t = Instant::now();
    for i in 0..n {
        let mut cmd = Command::new(ssd);
        cmd.args(["--stop", "--pidfile"])
            .arg(pidfile(i))
            .args(["--retry", "TERM/5"]);
        run_reaping(cmd)?;
    }
    let stop = t.elapsed();
    for i in 0..n {
        let _ = fs::remove_file(pidfile(i));
    }
    Ok((start, stop))
}

/// Runs `cmd` and reaps every child until it has exited: the orphans this
/// subreaper adopts die while start-stop-daemon waits for them.
fn run_reaping(mut cmd: Command) -> io::Result<()> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // Dropping a `Child` neither waits nor kills; we reap it below by PID.
    let pid = cmd.spawn()?.id() as i32;
    loop {
        let (reaped, status) = sys::wait_any()?;
        if reaped == pid {
            let status = ExitStatus::from_raw(status);
            if !status.success() {
                return Err(io::Error::other(format!(
                    "start-stop-daemon {}",
                    describe(status)
                )));
            }
            return Ok(());
        }
    }
}
