//! `dmgr top` left open on N idle daemons (issue 29): its CPU time over the idle
//! window beside the CPU time of one `dmgr list` of the same daemons, and its resident
//! memory. top runs in a pseudo-terminal of 120x40 whose output is read and dropped;
//! the window starts once its first screens are drawn. While daemons run it refreshes
//! CPU and MEM every 2 s and otherwise sleeps: the target is under 1 % of one core.

use std::os::fd::OwnedFd;

use super::*;

/// The target of issue 29: top's average CPU use, in percent of one core.
const TARGET_PERCENT: f64 = 1.0;
/// `dmgr list` calls timed for its CPU cost.
const LIST_CALLS: u32 = 10;
/// Time for top's start-up and first refreshes, before the window.
const WARM_UP: Duration = Duration::from_secs(5);

/// What `top` cost.
pub(crate) struct TopFigures {
    pub(crate) n: usize,
    pub(crate) secs: u64,
    /// top's user + system CPU over the window.
    pub(crate) cpu: Duration,
    /// One `dmgr list`'s user + system CPU (the mean of [`LIST_CALLS`]).
    pub(crate) list_cpu: Duration,
    /// top's resident memory at the end, and its PSS and peak, in KiB.
    pub(crate) rss_kb: u64,
    pub(crate) pss_kb: u64,
    pub(crate) hwm_kb: u64,
}

/// Starts `n` idle daemons, measures `dmgr list`, then top over `secs`.
pub(crate) fn bench_top(opts: &Options, n: usize, secs: u64) -> Result<TopFigures, String> {
    let scope = guard::Scope::new(&format!("{}top-", temp_tag()))
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let root = scope.path().to_path_buf();
    let config = root.join("daemons.d");
    fs::create_dir_all(&config).map_err(|e| format!("{}: {e}", config.display()))?;
    for i in 0..n {
        let file = config.join(format!("{}.toml", daemon_name(i)));
        let text = format!("command = [\"sleep\", \"{SLEEP_SECS}\"]\nstart_wait = \"0s\"\n");
        fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    let dmgr = Dmgr::new(&opts.bin, &config, &root.join("run"), &root.join("stderr"));
    scope.track_dmgr(&opts.bin, &config, &dmgr.run);
    eprintln!("dmgr top on {n} idle daemons for {secs} s");
    dmgr.timed(&["-q", "start", "--all"], 0)?;

    let children_cpu = || {
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
            .map(|u| {
                let (user, system) = (u.user_time(), u.system_time());
                let micros =
                    |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
                Duration::from_micros(micros(user) + micros(system))
            })
            .map_err(|e| format!("getrusage: {e}"))
    };
    let before = children_cpu()?;
    for _ in 0..LIST_CALLS {
        dmgr.run_untimed(&["list"])?;
    }
    let list_cpu = (children_cpu()? - before) / LIST_CALLS;

    let winsize = nix::pty::Winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(&winsize, None).map_err(|e| format!("openpty: {e}"))?;
    let slave = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
    let mut command = dmgr.command(&["top"]);
    command.env("TERM", "xterm-256color");
    let mut top = command
        .stdin(slave(&pty.slave).map_err(|e| e.to_string())?)
        .stdout(slave(&pty.slave).map_err(|e| e.to_string())?)
        .stderr(slave(&pty.slave).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("dmgr top: {e}"))?;
    drop(pty.slave);
    // The screen is read and dropped, so that top never waits on a full terminal.
    let mut master = File::from(pty.master);
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while matches!(master.read(&mut buf), Ok(n) if n > 0) {}
    });
    let pid = top.id() as i32;
    let ticks = || procfs::stat(pid).map(|s| s.utime + s.stime);
    std::thread::sleep(WARM_UP);
    let start = ticks().ok_or("dmgr top exited during its start-up")?;
    std::thread::sleep(Duration::from_secs(secs));
    let end = ticks().ok_or("dmgr top exited during the window")?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let figures = TopFigures {
        n,
        secs,
        cpu: Duration::from_secs_f64((end - start) as f64 / sys::clock_ticks_per_sec() as f64),
        list_cpu,
        rss_kb: procfs::kb_field(&status, "VmRSS:").unwrap_or(0),
        pss_kb: procfs::kb_field(&rollup, "Pss:").unwrap_or(0),
        hwm_kb: procfs::kb_field(&status, "VmHWM:").unwrap_or(0),
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = wait_deadline(&mut top, Duration::from_secs(10));
    let _ = dmgr.run_untimed(&["-q", "stop", "--all"]);
    Ok(figures)
}

/// Prints what top cost beside `list`.
pub(crate) fn print_top(top: &Result<TopFigures, String>) {
    let t = match top {
        Ok(t) => t,
        Err(e) => {
            println!("\ndmgr top: failed: {e}");
            return;
        }
    };
    let percent = t.cpu.as_secs_f64() * 100.0 / t.secs as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "\ndmgr top open on {} idle daemons for {} s (a 120x40 pseudo-terminal):",
        t.n, t.secs
    );
    println!(
        "  top:  {:>8.1} ms CPU over the window = {percent:.3} % of one core (target < {TARGET_PERCENT} %: {})",
        ms(t.cpu),
        if percent < TARGET_PERCENT { "met" } else { "NOT met" }
    );
    println!(
        "  list: {:>8.1} ms CPU per call (mean of {LIST_CALLS}); top's window cost {:.1} lists, one every {:.1} s",
        ms(t.list_cpu),
        t.cpu.as_secs_f64() / t.list_cpu.as_secs_f64().max(1e-9),
        t.secs as f64 / (t.cpu.as_secs_f64() / t.list_cpu.as_secs_f64().max(1e-9)).max(1e-9)
    );
    println!(
        "  memory: RSS {} KiB, PSS {} KiB, peak RSS {} KiB",
        t.rss_kb, t.pss_kb, t.hwm_kb
    );
}
