//! The report: the tables, the summary and the budgets.

use super::*;

pub(crate) struct Machine {
    pub(crate) nproc: usize,
    pub(crate) model: String,
    pub(crate) kernel: String,
}

impl Machine {
    pub(crate) fn read() -> Machine {
        let model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            model,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into()),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CPUs ({}), Linux {}",
            self.nproc, self.model, self.kernel
        )
    }
}

pub(crate) fn ms(secs: f64) -> String {
    let ms = secs * 1000.0;
    if ms >= 10_000.0 {
        format!("{:.1} s", secs)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

pub(crate) fn median_u64(v: &[u64]) -> Option<u64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

pub(crate) fn print_figures(f: &Figures) {
    println!(
        "== N = {} ({} rounds; restart {}, start-stop-daemon {}, runit {}) ==",
        f.n, f.rounds, f.restart_rounds, f.ssd_rounds, f.runit_rounds
    );
    println!(
        "machine: load average {} at the start, CPU steal {} meanwhile",
        f.load_before,
        f.steal_percent
            .map_or("unknown".to_string(), |p| format!("{p:.1}%"))
    );
    print_foreign(&f.foreign);
    println!(
        "{:<34} {:>10} {:>22} {:>11}   vs floor (medians)",
        "", "median", "min - max", "per daemon"
    );
    for metric in Metric::ALL {
        let Some(samples) = f.times.get(&metric) else {
            continue;
        };
        let (Some(median), Some(min), Some(max)) = (samples.median(), samples.min(), samples.max())
        else {
            continue;
        };
        let per = match metric {
            Metric::FloorExec | Metric::FloorProbeOne | Metric::DmgrStatus => String::new(),
            _ => format!("{:.1} us", median * 1e6 / f.n as f64),
        };
        let ratio = f
            .ratio(metric)
            .map(|(r, label)| format!("{r:.2}x {label}"))
            .unwrap_or_default();
        println!(
            "{:<34} {:>10} {:>22} {:>11}   {}",
            metric.label(),
            ms(median),
            format!("{} - {}", ms(min), ms(max)),
            per,
            ratio
        );
    }
    let row = |label: &str, v: &[u64]| {
        let mut s = v.to_vec();
        s.sort_unstable();
        if let (Some(med), Some(min), Some(max)) = (median_u64(v), s.first(), s.last()) {
            println!(
                "{:<34} {:>10} {:>22}",
                label,
                format!("{med} KB"),
                format!("{min} - {max} KB")
            );
        }
    };
    if let Some(m) = &f.memory {
        row("keeper PSS (smaps_rollup)", &m.pss_kb);
        row("keeper RSS", &m.rss_kb);
        row("keeper Private_Dirty", &m.private_dirty_kb);
        println!(
            "  median keeper: {} thread(s); PSS by mapping (PSS KB / private dirty KB):",
            m.threads
        );
        for (name, pss, dirty) in m.breakdown.iter().take(8) {
            println!("    {pss:>5} / {dirty:>4}  {name}");
        }
    }
    if let Some(m) = &f.holder_memory {
        row("holder PSS (smaps_rollup)", &m.pss_kb);
        row("holder RSS", &m.rss_kb);
        row("holder Private_Dirty", &m.private_dirty_kb);
    }
    if let Some(m) = &f.runit_memory {
        row("runsv PSS (smaps_rollup)", &m.pss_kb);
        row("runsv RSS", &m.rss_kb);
        row("runsv Private_Dirty", &m.private_dirty_kb);
    }
    if let Some(idle) = &f.idle {
        println!(
            "keepers' idle CPU over {} s: {} ticks in all ({} of {} keepers used any; {} ticks = 1 s)",
            idle.secs, idle.ticks, idle.busy_keepers, idle.keepers, idle.clock_ticks_per_sec
        );
    }
    println!();
}

pub(crate) fn print_foreign(foreign: &[(String, f64)]) {
    let total: f64 = foreign.iter().map(|(_, s)| s).sum();
    if total >= 0.5 {
        let top: Vec<String> = foreign
            .iter()
            .take(4)
            .map(|(name, secs)| format!("{name} {secs:.1} s"))
            .collect();
        println!(
            "WARNING: other programs used {total:.1} CPU-seconds meanwhile ({}); these figures are suspect",
            top.join(", ")
        );
    }
}

pub(crate) fn rate(secs: Option<f64>) -> Option<(f64, f64)> {
    let secs = secs.filter(|&s| s > 0.0)?;
    Some((
        payload_bytes() as f64 / secs / 1e6,
        PAYLOAD_LINES as f64 / secs,
    ))
}

pub(crate) fn print_log(log: &LogFigures) {
    println!(
        "== log throughput: {PAYLOAD_LINES} lines, {:.0} MB ({} rounds) ==",
        payload_bytes() as f64 / 1e6,
        log.dmgr.0.len().max(log.floor.0.len())
    );
    for (label, samples) in [
        ("floor  sh -c 'yes | head | cat > file'", &log.floor),
        ("dmgr   yes | head through the keeper", &log.dmgr),
    ] {
        let (Some(median), Some(min), Some(max)) = (samples.median(), samples.min(), samples.max())
        else {
            continue;
        };
        let (mbs, lps) = rate(Some(median)).unwrap_or_default();
        println!(
            "{label:<42} {:>9} ({} - {})  {mbs:>7.1} MB/s  {:>5.2} M lines/s",
            ms(median),
            ms(min),
            ms(max),
            lps / 1e6
        );
    }
    if let (Some((dmgr, _)), Some((floor, _))) = (rate(log.dmgr.median()), rate(log.floor.median()))
    {
        println!("dmgr's throughput is {:.2}x cat's", dmgr / floor);
    }
    print_foreign(&log.foreign);
    println!();
}

pub(crate) fn print_summary(all: &[Figures]) {
    if all.len() < 2 {
        return;
    }
    println!("== side by side (medians; ratio to floor in brackets) ==");
    print!("{:<34}", "");
    for f in all {
        print!(" {:>20}", format!("N = {}", f.n));
    }
    println!();
    for metric in Metric::ALL {
        if all.iter().all(|f| f.median(metric).is_none()) {
            continue;
        }
        print!("{:<34}", metric.label());
        for f in all {
            let cell = match (f.median(metric), f.ratio(metric)) {
                (Some(m), Some((r, _))) => format!("{} ({r:.2}x)", ms(m)),
                (Some(m), None) => ms(m),
                _ => "-".into(),
            };
            print!(" {cell:>20}");
        }
        println!();
    }
    let memory_row = |label: &str, kb: &dyn Fn(&Figures) -> Option<u64>| {
        print!("{label:<34}");
        for f in all {
            let cell = kb(f).map_or("-".into(), |k| format!("{k} KB"));
            print!(" {cell:>20}");
        }
        println!();
    };
    let median_of = |m: &Option<Memory>, pick: fn(&Memory) -> &Vec<u64>| {
        m.as_ref().and_then(|m| median_u64(pick(m)))
    };
    memory_row("keeper PSS, median", &|f| {
        median_of(&f.memory, |m| &m.pss_kb)
    });
    memory_row("keeper RSS, median", &|f| {
        median_of(&f.memory, |m| &m.rss_kb)
    });
    memory_row("holder PSS, median", &|f| {
        median_of(&f.holder_memory, |m| &m.pss_kb)
    });
    if all.iter().any(|f| f.runit_memory.is_some()) {
        memory_row("runsv PSS, median", &|f| {
            median_of(&f.runit_memory, |m| &m.pss_kb)
        });
    }
    println!();
}

pub(crate) struct Budget {
    pub(crate) what: String,
    pub(crate) value: String,
    pub(crate) limit: String,
    pub(crate) met: bool,
    pub(crate) miss: String,
}

pub(crate) fn ratio_budget(f: &Figures, metric: Metric, limit: f64, what: &str) -> Option<Budget> {
    let (r, label) = f.ratio(metric)?;
    Some(Budget {
        what: format!("N = {}: {what}", f.n),
        value: format!("{r:.2}x {label}"),
        limit: format!("<= {limit:.1}x"),
        met: r <= limit,
        miss: format!("{:.0}% over", (r / limit - 1.0) * 100.0),
    })
}

pub(crate) fn budgets(all: &[Figures], log: &LogFigures) -> Vec<Budget> {
    let official: Vec<&Figures> = all.iter().filter(|f| f.n == 100 || f.n == 500).collect();
    let checked: Vec<&Figures> = if official.is_empty() {
        all.iter().collect()
    } else {
        official
    };
    let mut out = Vec::new();
    for f in &checked {
        out.extend(ratio_budget(f, Metric::DmgrStart, 1.2, "start --all"));
        out.extend(ratio_budget(f, Metric::DmgrList, 1.2, "list"));
        out.extend(ratio_budget(f, Metric::DmgrStop, 3.0, "stop --all"));
        if let Some(pss) = f.memory.as_ref().and_then(|m| median_u64(&m.pss_kb)) {
            out.push(Budget {
                what: format!("N = {}: keeper PSS", f.n),
                value: format!("{pss} KB"),
                limit: format!("< {PSS_BUDGET_KB:.0} KB"),
                met: (pss as f64) < PSS_BUDGET_KB,
                miss: format!(
                    "{:.0} KB over ({:.1}x)",
                    pss as f64 - PSS_BUDGET_KB,
                    pss as f64 / PSS_BUDGET_KB
                ),
            });
        }
    }
    for f in all {
        if let Some(idle) = &f.idle {
            out.push(Budget {
                what: format!("N = {}: idle keepers, {} s", f.n, idle.secs),
                value: format!("{} ticks", idle.ticks),
                limit: "0 ticks".into(),
                met: idle.ticks == 0,
                miss: format!("{} keepers woke", idle.busy_keepers),
            });
        }
    }
    if let (Some((dmgr, _)), Some((floor, _))) = (rate(log.dmgr.median()), rate(log.floor.median()))
    {
        let r = dmgr / floor;
        out.push(Budget {
            what: "log throughput".into(),
            value: format!("{dmgr:.0} MB/s = {r:.2}x cat"),
            limit: ">= 0.5x cat".into(),
            met: r >= 0.5,
            miss: format!("{:.0}% short", (1.0 - r / 0.5) * 100.0),
        });
    }
    out
}

pub(crate) fn print_budgets(budgets: &[Budget]) {
    println!("== budgets of issue 15 ==");
    for b in budgets {
        let verdict = if b.met {
            "met".to_string()
        } else {
            format!("NOT MET ({})", b.miss)
        };
        println!("{:<32} {:>26}  {:<12} {verdict}", b.what, b.value, b.limit);
    }
}
