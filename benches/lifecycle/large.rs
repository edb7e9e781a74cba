//! Large inputs (issue 16): `check` and `list` on a 1 MiB bad file and 10,000 files.

use super::*;

/// One directory of large input, and `check` and `list` timed on it.
pub(crate) struct Large {
    pub(crate) what: &'static str,
    pub(crate) check: Samples,
    pub(crate) list: Samples,
    /// The baseline binary's figures, when one was given: `None` past the timeout.
    pub(crate) baseline: Option<(Option<f64>, Option<f64>)>,
}

/// Times `check` and `list` on the four directories, each beside its clean case.
pub(crate) fn bench_large(opts: &Options) -> Result<Vec<Large>, String> {
    let temp = tempfile::Builder::new()
        .prefix(&temp_tag())
        .tempdir()
        .map_err(|e| e.to_string())?;
    // What a case is, its directory, how many files, and file number i's text.
    type Case = (&'static str, &'static str, usize, fn(usize) -> String);
    let cases: [Case; 4] = [
        ("1 clean file", "one", 1, |_| {
            "command = \"sleep 1\"\n".into()
        }),
        ("1 MiB file of errors", "errors", 1, |_| {
            "=\n".repeat(1 << 19)
        }),
        ("10,000 clean files", "clean", 10_000, |_| {
            "command = \"sleep 1\"\n".into()
        }),
        ("10,000 files, unknown `after`", "after", 10_000, |i| {
            format!("command = \"sleep 1\"\nafter = [\"nosuch{i:05}\"]\n")
        }),
    ];
    let mut out = Vec::new();
    for (what, dir, files, text) in cases {
        let config = temp.path().join(dir).join("daemons.d");
        fs::create_dir_all(&config).map_err(|e| e.to_string())?;
        for i in 0..files {
            fs::write(config.join(format!("d{i:05}.toml")), text(i)).map_err(|e| e.to_string())?;
        }
        let run = temp.path().join(dir).join("run");
        let time = |bin: &Path, verb: &str| -> Result<Duration, String> {
            let mut cmd = Command::new(bin);
            cmd.arg("--config-dir")
                .arg(&config)
                .arg("--run-dir")
                .arg(&run)
                .arg(verb);
            timed_any(cmd)
        };
        let mut case = Large {
            what,
            check: Samples::default(),
            list: Samples::default(),
            baseline: None,
        };
        // One untimed call first, so that every timed one finds the files in the cache.
        time(&opts.bin, "check")?;
        for _ in 0..opts.rounds {
            case.check.push(time(&opts.bin, "check")?);
            case.list.push(time(&opts.bin, "list")?);
        }
        if let Some(baseline) = &opts.baseline {
            let once = |verb| time(baseline, verb).ok().map(|d| d.as_secs_f64());
            case.baseline = Some((once("check"), once("list")));
        }
        out.push(case);
    }
    Ok(out)
}

pub(crate) fn print_large(opts: &Options, large: &[Large]) {
    println!(
        "\n== large inputs (issue 16): medians of {} rounds, min-max ==",
        opts.rounds
    );
    let range = |s: &Samples| match (s.median(), s.min(), s.max()) {
        (Some(m), Some(lo), Some(hi)) => format!("{} ({}-{})", ms(m), ms(lo), ms(hi)),
        _ => "-".into(),
    };
    let base = |v: Option<f64>| v.map_or(format!("> {} s", COMMAND_TIMEOUT.as_secs()), ms);
    print!("{:<32}{:>28}{:>28}", "", "check", "list");
    if let Some(path) = &opts.baseline {
        print!("   baseline {}: check, list", path.display());
    }
    println!();
    for case in large {
        print!(
            "{:<32}{:>28}{:>28}",
            case.what,
            range(&case.check),
            range(&case.list)
        );
        if let Some((check, list)) = case.baseline {
            print!("   {:>10} {:>10}", base(check), base(list));
        }
        println!();
    }
}
