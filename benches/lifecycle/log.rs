//! Log throughput: the daemon's output into its log, against `cat`.

use super::*;

#[derive(Debug, Default)]
pub(crate) struct LogFigures {
    pub(crate) dmgr: Samples,
    pub(crate) floor: Samples,
    pub(crate) failures: Vec<String>,
    pub(crate) foreign: Vec<(String, f64)>,
}

impl LogFigures {
    pub(crate) fn fail(&mut self, error: impl std::fmt::Display) {
        let message = format!("log throughput: {error}");
        eprintln!("  FAILED {message}");
        self.failures.push(message);
    }
}

pub(crate) fn payload_bytes() -> u64 {
    (PAYLOAD_LINE.len() as u64 + 1) * PAYLOAD_LINES
}

pub(crate) fn bench_log(opts: &Options) -> LogFigures {
    let mut figures = LogFigures::default();
    noise::take();
    let scope = match guard::Scope::new(&format!("{}log-", temp_tag())) {
        Ok(scope) => scope,
        Err(e) => {
            figures.fail(format!("cannot create a temporary directory: {e}"));
            return figures;
        }
    };
    let root = scope.path().to_path_buf();
    let config = root.join("daemons.d");
    if let Err(e) = fs::create_dir_all(&config) {
        figures.fail(format!("{}: {e}", config.display()));
        return figures;
    }
    let dmgr = Dmgr::new(&opts.bin, &config, &root.join("run"), &root.join("stderr"));
    scope.track_dmgr(&opts.bin, &config, &dmgr.run);
    for round in 0..opts.rounds {
        eprintln!("log throughput: round {}/{}", round + 1, opts.rounds);
        let file = root.join("floor.out");
        match log_floor(&file) {
            Ok(d) => figures.floor.push(d),
            Err(e) => figures.fail(format!("floor: {e}")),
        }
        let _ = fs::remove_file(&file);
        let name = format!("log{}", round + 1);
        match log_dmgr(&dmgr, &config, &name) {
            Ok(d) => figures.dmgr.push(d),
            Err(e) => figures.fail(format!("dmgr: {e}")),
        }
        let _ = dmgr.run_untimed(&["-q", "stop", &name]);
        let _ = fs::remove_file(dmgr.run.join("log").join(format!("{name}.log")));
    }
    drop(scope);
    figures.foreign = noise::take();
    figures
}

pub(crate) fn yes_head() -> String {
    format!("yes \"{PAYLOAD_LINE}\" | head -n {PAYLOAD_LINES}")
}

/// `yes | head | cat > FILE` under `sh -c`: the same pipeline as the daemon's, into a
/// file through one extra process, as the keeper is one.
pub(crate) fn log_floor(file: &Path) -> Result<Duration, String> {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{} | cat > \"$1\"", yes_head()))
        .arg("sh")
        .arg(file);
    let elapsed = timed(cmd)?;
    let size = fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if size != payload_bytes() {
        return Err(format!(
            "cat wrote {size} bytes, expected {}",
            payload_bytes()
        ));
    }
    Ok(elapsed)
}

/// Starts a daemon that writes the payload and then sleeps; the time runs from
/// `dmgr start` until the log holds the payload (and the note lines an older keeper
/// wrote, for the baseline).
pub(crate) fn log_dmgr(dmgr: &Dmgr, config: &Path, name: &str) -> Result<Duration, String> {
    let command = format!("{}; sleep {SLEEP_SECS}", yes_head());
    let toml = format!(
        "command = [\"sh\", \"-c\", {}]\nstart_wait = \"0s\"\nstop_timeout = \"10s\"\nlog_max_size = 0\n",
        toml_string(&command)
    );
    let file = config.join(format!("{name}.toml"));
    fs::write(&file, toml).map_err(|e| format!("{}: {e}", file.display()))?;
    let log = dmgr.run.join("log").join(format!("{name}.log"));
    let payload = payload_bytes();
    let t = Instant::now();
    dmgr.timed(&["start", name], 0)?;
    let deadline = t + Duration::from_secs(120);
    let mut target = None;
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    loop {
        let now = size(&log);
        if now >= payload {
            // An older keeper noted `started (pid N): ...` before the first payload line.
            let target = *target.get_or_insert_with(|| payload + note_bytes(&log));
            if now >= target {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} holds {} of {payload} payload bytes after 120 s",
                log.display(),
                size(&log)
            ));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let elapsed = t.elapsed();
    let text = fs::read(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let lines = text
        .split(|&b| b == b'\n')
        .filter(|l| *l == PAYLOAD_LINE.as_bytes())
        .count() as u64;
    if lines != PAYLOAD_LINES {
        return Err(format!(
            "{} holds {lines} payload lines, expected {PAYLOAD_LINES}",
            log.display()
        ));
    }
    Ok(elapsed)
}

/// The bytes of the keeper's note lines (`[dmgr ...] ...`) at the head of a log.
pub(crate) fn note_bytes(log: &Path) -> u64 {
    let mut head = vec![0u8; 8192];
    let len = File::open(log)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    head[..len]
        .split_inclusive(|&b| b == b'\n')
        .take_while(|l| l.starts_with(b"[dmgr ") && l.ends_with(b"\n"))
        .map(|l| l.len() as u64)
        .sum()
}

pub(crate) fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
