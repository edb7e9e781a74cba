//! Prometheus's text exposition format, version 0.0.4: for each metric family a
//! `# HELP` line, a `# TYPE` line and its samples, `name{label="value",...} value`,
//! with label values and help text escaped as the format says. Pure: no IO.

use std::fmt::Write as _;

/// The `Content-Type` of this format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a family's samples mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A count that only grows (and starts again from zero when its source does).
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// The labels of one daemon's sample: `daemon`, and `instance` for a copy of a daemon
/// with `instances`, then any of the family's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Labels {
    /// The daemon's name.
    pub daemon: String,
    /// The copy's number, for a daemon run as several instances.
    pub instance: Option<u32>,
    /// Further labels, in the order written.
    pub extra: Vec<(&'static str, String)>,
}

impl Labels {
    /// The labels of daemon `name`.
    pub(crate) fn daemon(name: &str) -> Labels {
        Labels {
            daemon: name.to_string(),
            instance: None,
            extra: Vec::new(),
        }
    }

    /// With the label `key`.
    pub(crate) fn with(mut self, key: &'static str, value: impl Into<String>) -> Labels {
        self.extra.push((key, value.into()));
        self
    }
}

/// One metric family: its name, help, kind and samples.
#[derive(Debug, Clone)]
pub(crate) struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Labels, f64)>,
}

impl Family {
    /// A family with no samples yet.
    pub(crate) fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample.
    pub(crate) fn add(&mut self, labels: Labels, value: f64) {
        self.samples.push((labels, value));
    }

    /// Adds a sample when there is a value.
    pub(crate) fn add_some(&mut self, labels: &Labels, value: Option<f64>) {
        if let Some(value) = value {
            self.samples.push((labels.clone(), value));
        }
    }
}

/// The exposition of `families`, in the order given.
pub(crate) fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for family in families {
        let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(family.help));
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
        for (labels, value) in &family.samples {
            out.push_str(family.name);
            out.push('{');
            let _ = write!(out, "daemon=\"{}\"", escape_label(&labels.daemon));
            if let Some(instance) = labels.instance {
                let _ = write!(out, ",instance=\"{instance}\"");
            }
            for (key, value) in &labels.extra {
                let _ = write!(out, ",{key}=\"{}\"", escape_label(value));
            }
            let _ = writeln!(out, "}} {}", number(*value));
        }
    }
    out
}

/// A sample value as the format writes it: Go's float syntax, `NaN`, `+Inf`, `-Inf`.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // Rust's shortest round-trip form (`0.25`, `1700000000.123`) parses in Go.
        format!("{value}")
    }
}

/// A label value: `\`, `"` and newline escaped.
fn escape_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text: `\` and newline escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_help_type_and_samples_with_escaped_labels() {
        let mut up = Family::new("dmgr_daemon_up", Kind::Gauge, "1 when up.\nelse 0");
        up.add(Labels::daemon("web"), 1.0);
        up.add(Labels::daemon("a\"b\\c\nd"), 0.0);
        let mut info = Family::new("dmgr_daemon_info", Kind::Gauge, "Facts.");
        let labels = Labels {
            instance: Some(3),
            ..Labels::daemon("web")
        };
        info.add(labels.with("status", "running"), 1.0);
        let mut cpu = Family::new("dmgr_daemon_cpu_seconds_total", Kind::Counter, "CPU.");
        cpu.add(Labels::daemon("web"), 0.25);
        assert_eq!(
            render(&[up, info, cpu]),
            "# HELP dmgr_daemon_up 1 when up.\\nelse 0\n\
             # TYPE dmgr_daemon_up gauge\n\
             dmgr_daemon_up{daemon=\"web\"} 1\n\
             dmgr_daemon_up{daemon=\"a\\\"b\\\\c\\nd\"} 0\n\
             # HELP dmgr_daemon_info Facts.\n\
             # TYPE dmgr_daemon_info gauge\n\
             dmgr_daemon_info{daemon=\"web\",instance=\"3\",status=\"running\"} 1\n\
             # HELP dmgr_daemon_cpu_seconds_total CPU.\n\
             # TYPE dmgr_daemon_cpu_seconds_total counter\n\
             dmgr_daemon_cpu_seconds_total{daemon=\"web\"} 0.25\n"
        );
    }

    #[test]
    fn numbers_are_written_as_go_parses_them() {
        assert_eq!(number(1700000000.125), "1700000000.125");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}
