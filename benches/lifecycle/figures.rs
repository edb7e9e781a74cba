//! What one run measures: each timed quantity, its samples, and the figures of one N.

use super::*;

/// One timed quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Metric {
    FloorExec,
    FloorStart,
    FloorProbe,
    FloorProbeInProcess,
    FloorProbeOne,
    FloorStop,
    DmgrStart,
    DmgrList,
    DmgrListJson,
    DmgrListRecorded,
    DmgrListJsonRecorded,
    DmgrStatus,
    DmgrRestart,
    DmgrStop,
    SsdStart,
    SsdStop,
    RunitUp,
    RunitStatus,
    RunitDown,
}

impl Metric {
    pub(crate) const ALL: [Metric; 19] = [
        Metric::FloorExec,
        Metric::FloorStart,
        Metric::FloorProbe,
        Metric::FloorProbeInProcess,
        Metric::FloorProbeOne,
        Metric::FloorStop,
        Metric::DmgrStart,
        Metric::DmgrList,
        Metric::DmgrListJson,
        Metric::DmgrListRecorded,
        Metric::DmgrListJsonRecorded,
        Metric::DmgrStatus,
        Metric::DmgrRestart,
        Metric::DmgrStop,
        Metric::SsdStart,
        Metric::SsdStop,
        Metric::RunitUp,
        Metric::RunitStatus,
        Metric::RunitDown,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Metric::FloorExec => "floor  exec of a no-op command",
            Metric::FloorStart => "floor  start N",
            Metric::FloorProbe => "floor  probe N (a command)",
            Metric::FloorProbeInProcess => "floor  probe N (in-process)",
            Metric::FloorProbeOne => "floor  probe 1 (a command)",
            Metric::FloorStop => "floor  stop N",
            Metric::DmgrStart => "dmgr   start --all",
            Metric::DmgrList => "dmgr   list",
            Metric::DmgrListJson => "dmgr   list --json",
            Metric::DmgrListRecorded => "dmgr   list, identity given",
            Metric::DmgrListJsonRecorded => "dmgr   list --json, identity given",
            Metric::DmgrStatus => "dmgr   status NAME",
            Metric::DmgrRestart => "dmgr   restart --all",
            Metric::DmgrStop => "dmgr   stop --all",
            Metric::SsdStart => "s-s-d  --start N times",
            Metric::SsdStop => "s-s-d  --stop --retry N times",
            Metric::RunitUp => "runit  sv up N (runsv already up)",
            Metric::RunitStatus => "runit  sv status N",
            Metric::RunitDown => "runit  sv down N (until down)",
        }
    }

    /// The floor figures this one is compared with, and how the ratio is labelled.
    pub(crate) fn floor(self) -> Option<(&'static [Metric], &'static str)> {
        match self {
            Metric::DmgrStart | Metric::SsdStart | Metric::RunitUp => {
                Some((&[Metric::FloorStart], "floor start"))
            }
            Metric::DmgrList
            | Metric::DmgrListJson
            | Metric::DmgrListRecorded
            | Metric::DmgrListJsonRecorded
            | Metric::RunitStatus => Some((&[Metric::FloorProbe], "floor probe N")),
            Metric::DmgrStatus => Some((&[Metric::FloorProbeOne], "floor probe 1")),
            Metric::DmgrStop | Metric::SsdStop | Metric::RunitDown => {
                Some((&[Metric::FloorStop], "floor stop"))
            }
            Metric::DmgrRestart => Some((
                &[Metric::FloorStop, Metric::FloorStart],
                "floor stop + start",
            )),
            _ => None,
        }
    }
}

/// Repeated measurements of one quantity, in seconds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Samples(pub(crate) Vec<f64>);

impl Samples {
    pub(crate) fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64());
    }

    pub(crate) fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    pub(crate) fn median(&self) -> Option<f64> {
        let v = self.sorted();
        match v.len() {
            0 => None,
            n if n % 2 == 1 => Some(v[n / 2]),
            n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    pub(crate) fn min(&self) -> Option<f64> {
        self.sorted().first().copied()
    }

    pub(crate) fn max(&self) -> Option<f64> {
        self.sorted().last().copied()
    }
}

/// The keepers' memory with N running.
#[derive(Debug, Clone, Default)]
pub(crate) struct Memory {
    pub(crate) pss_kb: Vec<u64>,
    pub(crate) rss_kb: Vec<u64>,
    /// Private_Dirty of each keeper, the part no other keeper shares.
    pub(crate) private_dirty_kb: Vec<u64>,
    pub(crate) threads: u64,
    /// Where the PSS of the median keeper sits: (mapping, PSS KiB, Private_Dirty KiB).
    pub(crate) breakdown: Vec<(String, u64, u64)>,
}

/// The keepers' CPU use while idle.
#[derive(Debug, Clone)]
pub(crate) struct Idle {
    pub(crate) secs: u64,
    pub(crate) keepers: usize,
    pub(crate) ticks: u64,
    pub(crate) busy_keepers: usize,
    pub(crate) clock_ticks_per_sec: i64,
}

/// Everything measured at one N.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    pub(crate) n: usize,
    pub(crate) rounds: usize,
    pub(crate) restart_rounds: usize,
    pub(crate) ssd_rounds: usize,
    pub(crate) runit_rounds: usize,
    pub(crate) times: BTreeMap<Metric, Samples>,
    pub(crate) memory: Option<Memory>,
    /// The keepers' holders (one per keeper, its parent).
    pub(crate) holder_memory: Option<Memory>,
    /// runit's `runsv`s with their services up.
    pub(crate) runit_memory: Option<Memory>,
    pub(crate) idle: Option<Idle>,
    pub(crate) failures: Vec<String>,
    /// The 1-minute load average when this N began, and the share of CPU time the
    /// hypervisor stole meanwhile: other load makes every figure of this N suspect.
    pub(crate) load_before: String,
    pub(crate) steal_percent: Option<f64>,
    /// CPU seconds used meanwhile by other programs, by command name.
    pub(crate) foreign: Vec<(String, f64)>,
}

impl Figures {
    pub(crate) fn record(&mut self, metric: Metric, d: Duration) {
        self.times.entry(metric).or_default().push(d);
    }

    pub(crate) fn median(&self, metric: Metric) -> Option<f64> {
        self.times.get(&metric).and_then(Samples::median)
    }

    /// The ratio of `metric` to its floor, by medians.
    pub(crate) fn ratio(&self, metric: Metric) -> Option<(f64, &'static str)> {
        let (floors, label) = metric.floor()?;
        let floor: f64 = floors
            .iter()
            .map(|&m| self.median(m))
            .sum::<Option<f64>>()?;
        let value = self.median(metric)?;
        (floor > 0.0).then(|| (value / floor, label))
    }

    pub(crate) fn fail(&mut self, what: &str, error: impl std::fmt::Display) {
        let message = format!("N = {}: {what}: {error}", self.n);
        eprintln!("  FAILED {message}");
        self.failures.push(message);
    }
}
