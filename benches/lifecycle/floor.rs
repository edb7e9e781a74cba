//! The physical floor, run as `lifecycle __floor OP ...` so that, like `dmgr`, each
//! operation is one command: `noop`, `start DIR N SLEEP`, `probe DIR N`,
//! `stop DIR N`. Pidfiles are `DIR/I.pid`.

use super::*;

pub fn main(args: &[String]) -> ExitCode {
    let result = match args {
        [op] if op == "noop" => Ok(()),
        [op, dir, n, sleep] if op == "start" => {
            count(n).and_then(|n| start(Path::new(dir), n, Path::new(sleep)))
        }
        [op, dir, n] if op == "probe" => count(n).and_then(|n| {
            let stdout = io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let alive = probe(Path::new(dir), n, &mut out)?;
            out.flush()?;
            if alive == n {
                Ok(())
            } else {
                Err(io::Error::other(format!("{alive} of {n} alive")))
            }
        }),
        [op, dir, n] if op == "stop" => count(n).and_then(|n| stop(Path::new(dir), n)),
        _ => Err(io::Error::other(format!("bad arguments {args:?}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lifecycle __floor: {e}");
            ExitCode::from(1)
        }
    }
}

fn count(n: &str) -> io::Result<usize> {
    n.parse()
        .map_err(|_| io::Error::other(format!("bad count {n:?}")))
}

pub fn pidfile(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{i}.pid"))
}

/// N times: fork, setsid, fork, lock the pidfile, write the PID, exec `sleep`.
/// `spawn` returns once the grandchild has exec'd: std's exec-error pipe is
/// close-on-exec and the grandchild holds its write end until then.
fn start(dir: &Path, n: usize, sleep: &Path) -> io::Result<()> {
    for i in 0..n {
        let path = CString::new(pidfile(dir, i).as_os_str().as_bytes())?;
        let mut cmd = Command::new(sleep);
        cmd.arg(SLEEP_SECS)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: the closure runs between fork and exec in the child of this
        // single-threaded process; `detach_and_lock` makes only async-signal-safe
        // calls on a path prepared before the fork.
        unsafe {
            cmd.pre_exec(move || sys::detach_and_lock(&path));
        }
        // The first child exits at once; reap it.
        let status = cmd.spawn()?.wait()?;
        if !status.success() {
            return Err(io::Error::other(format!("first child {status}")));
        }
    }
    Ok(())
}

/// For each pidfile: try a shared lock (held: a live owner), read the PID, read
/// `/proc/PID/stat`; writes one line per daemon and returns how many are alive.
pub fn probe(dir: &Path, n: usize, out: &mut impl Write) -> io::Result<usize> {
    let mut alive = 0;
    let mut buf = [0u8; 32];
    for i in 0..n {
        let mut file = File::open(pidfile(dir, i))?;
        // Got the lock: nobody holds it, stale. Closing the file releases it.
        let locked = !sys::try_flock(&file, libc::LOCK_SH)?;
        let len = file.read(&mut buf)?;
        drop(file);
        let pid: i32 = std::str::from_utf8(&buf[..len])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let stat = procfs::stat(pid);
        let running = locked && stat.is_some_and(|s| s.state != 'Z');
        alive += usize::from(running);
        let status = if running { "running" } else { "stale" };
        writeln!(out, "{i} {status} {pid} {}", stat.map_or(0, |s| s.start))?;
    }
    Ok(alive)
}

/// SIGTERM each, then wait until each is dead: its pidfd turns readable when it
/// exits, zombie or not (PID 1 reaps lazily). Removes the pidfiles.
fn stop(dir: &Path, n: usize) -> io::Result<()> {
    sys::raise_nofile_limit();
    let mut waiting: Vec<(i32, Option<OwnedFd>)> = Vec::with_capacity(n);
    for i in 0..n {
        let text = fs::read_to_string(pidfile(dir, i))?;
        let pid: i32 = text
            .trim()
            .parse()
            .map_err(|_| io::Error::other(format!("bad pidfile {i}: {text:?}")))?;
        match sys::pidfd_open(pid) {
            Ok(fd) => {
                sys::pidfd_send_signal(&fd, libc::SIGTERM)?;
                waiting.push((pid, Some(fd)));
            }
            Err(_) => {
                sys::kill(pid, libc::SIGTERM);
                waiting.push((pid, None));
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (pid, fd) in &waiting {
        if let Some(fd) = fd {
            if !sys::poll_readable(fd, 30_000)? {
                return Err(io::Error::other(format!("pid {pid} survived SIGTERM")));
            }
        }
        while procfs::stat(*pid).is_some_and(|s| s.state != 'Z') {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!("pid {pid} survived SIGTERM")));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    for i in 0..n {
        fs::remove_file(pidfile(dir, i))?;
    }
    Ok(())
}
