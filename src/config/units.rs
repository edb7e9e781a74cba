//! The units a daemon file is written in: durations (`"250ms"`, `"10s"`, `"2m"`),
//! sizes (`"512KiB"`, `"10MiB"`, `"1GB"`) and signals (`TERM`, `SIGTERM`, `15`).
//! Each parses from the text a user writes and prints back the same way.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal as NixSignal;

/// The longest duration a file may give: longer ones are typos, and would overflow
/// the clock arithmetic of the keeper.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a duration such as `"250ms"`, `"10s"`, `"2m"` or `"1h 30m"`, at most 366 days.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let duration = humantime::parse_duration(text).map_err(|e| {
        format!(
            "invalid duration \"{}\": {e} (write it like \"500ms\", \"10s\" or \"2m\")",
            super::diagnostic::quote(text)
        )
    })?;
    if duration > MAX_DURATION {
        return Err(format!(
            "duration \"{}\" is too long: at most 366 days, which is already longer than any daemon waits for anything",
            super::diagnostic::quote(text)
        ));
    }
    Ok(duration)
}

/// Formats a duration the way a user would write it (`"1m 30s"`, `"500ms"`).
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// A size in bytes, written `"512KiB"`, `"10MiB"`, `"1GB"` or a plain number of bytes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let shown = super::diagnostic::quote(text);
        let bad = || {
            format!("invalid size \"{shown}\": write a number with an optional unit, like \"512KiB\", \"10MiB\" or \"1GB\"")
        };
        let number: u64 = digits.parse().map_err(|_| bad())?;
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "KB" | "k" | "kB" => 1_000,
            "KiB" => 1 << 10,
            "M" | "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "G" | "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            "T" | "TB" => 1_000_000_000_000,
            "TiB" => 1 << 40,
            _ => return Err(bad()),
        };
        number
            .checked_mul(multiplier)
            .map(Size)
            .ok_or_else(|| format!("size \"{shown}\" is too large"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, scale) in UNITS {
            if self.0 >= scale && self.0.is_multiple_of(scale) {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// A signal, parsed from `TERM`, `SIGTERM`, `term` or `15`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(pub NixSignal);

impl Signal {
    /// SIGKILL, which ends a stop that `stop_timeout` did not.
    pub const KILL: Signal = Signal(NixSignal::SIGKILL);

    /// The name without the `SIG` prefix, as a user writes it (`TERM`).
    pub fn name(self) -> &'static str {
        let full = self.0.as_str();
        full.strip_prefix("SIG").unwrap_or(full)
    }

    /// The signal numbered `number` (a TOML integer, in whatever radix it was written).
    pub fn from_number(number: i128) -> Result<Signal, String> {
        i32::try_from(number)
            .ok()
            .and_then(|n| NixSignal::try_from(n).ok())
            .map(Signal)
            .ok_or_else(|| {
                format!("there is no signal number {number} (write a name like \"TERM\")")
            })
    }

    /// Whether this signal can be `stop_signal`: it must end a process that does not
    /// handle it. `Ok(Some(warning))` for SIGKILL, which systemd allows too but which
    /// gives the daemon no chance to clean up.
    pub fn check_stop(self) -> Result<Option<String>, String> {
        use NixSignal::*;
        let name = self.0.as_str();
        let why = match self.0 {
            SIGKILL => {
                return Ok(Some(
                    "stop_signal SIGKILL gives the daemon no chance to clean up, and `stop_timeout` never applies; \"TERM\" is what daemons expect".into(),
                ))
            }
            SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => "pauses a process instead of ending it",
            SIGCONT => "resumes a process instead of ending it",
            SIGCHLD | SIGWINCH | SIGURG => "is ignored by a process that does not handle it",
            _ => return Ok(None),
        };
        Err(format!(
            "{name} {why}, so every stop would end in SIGKILL after `stop_timeout`; use a signal that ends the daemon, like \"TERM\", \"INT\" or \"QUIT\""
        ))
    }

    /// Whether this signal can be `reload_signal`: one a daemon can catch, that does not
    /// stop, pause or crash it when it does not.
    pub fn check_reload(self) -> Result<(), String> {
        use NixSignal::*;
        let name = self.0.as_str();
        let why = match self.0 {
            SIGKILL | SIGSTOP => "cannot be caught",
            SIGTERM | SIGINT | SIGQUIT => "is what stops daemons",
            SIGTSTP | SIGTTIN | SIGTTOU | SIGCONT => "is for job control",
            SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGSYS => "reports a crash",
            _ => return Ok(()),
        };
        Err(format!(
            "{name} {why}: `dmgr reload` must not stop the daemon; use \"HUP\", \"USR1\" or \"USR2\""
        ))
    }
}

impl FromStr for Signal {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let parsed = if let Ok(number) = trimmed.parse::<i32>() {
            NixSignal::try_from(number).ok()
        } else {
            let upper = trimmed.to_ascii_uppercase();
            let full = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            NixSignal::from_str(&full).ok()
        };
        parsed.map(Signal).ok_or_else(|| {
            format!(
                "unknown signal \"{}\" (write a name like \"TERM\", \"HUP\", \"USR1\" or a number)",
                super::diagnostic::quote(text)
            )
        })
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// By name (`"TERM"`), as a user writes it; a number (`15`) is read too, as records
/// written by earlier dmgr builds held signals by number.
impl serde::Serialize for Signal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Signal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Reads either form in place; a derived untagged enum would buffer the value
        /// and copy the name (three signals in every record `list` reads).
        struct Form;

        impl serde::de::Visitor<'_> for Form {
            type Value = Signal;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a signal name or number")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Signal, E> {
                name.parse().map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, number: i64) -> Result<Signal, E> {
                Signal::from_number(i128::from(number)).map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<Signal, E> {
                Signal::from_number(i128::from(number)).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(Form)
    }
}

/// A [`Duration`] as whole milliseconds, for `#[serde(with = "millis")]`.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises a duration as its milliseconds (saturating).
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    /// Deserialises milliseconds into a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// Serde for an optional [`Duration`] as milliseconds (see [`millis`]), `null` for none.
pub mod millis_option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises a duration as its milliseconds (saturating), or `null`.
    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::millis::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Deserialises milliseconds, or `null`, into an optional duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(deserializer).map(|ms| ms.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_written_in_the_spec() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999h").is_err());
        assert!(parse_duration("366days").is_ok());
    }

    #[test]
    fn sizes_parse_binary_and_decimal_units() {
        assert_eq!("512KiB".parse(), Ok(Size(512 * 1024)));
        assert_eq!("10MiB".parse(), Ok(Size(10 * 1024 * 1024)));
        assert_eq!("1GB".parse(), Ok(Size(1_000_000_000)));
        assert_eq!("0".parse(), Ok(Size(0)));
        assert_eq!("100".parse(), Ok(Size(100)));
        assert!("10 parsecs".parse::<Size>().is_err());
        assert!("MiB".parse::<Size>().is_err());
        assert!("99999999999999999999TiB".parse::<Size>().is_err());
        assert_eq!(Size(10 << 20).to_string(), "10MiB");
        assert_eq!(Size(1000).to_string(), "1000B");
    }

    #[test]
    fn signals_parse_by_name_prefix_case_and_number() {
        let term = Signal(NixSignal::SIGTERM);
        assert_eq!("TERM".parse(), Ok(term));
        assert_eq!("SIGTERM".parse(), Ok(term));
        assert_eq!("term".parse(), Ok(term));
        assert_eq!("15".parse(), Ok(term));
        assert_eq!(term.to_string(), "TERM");
        assert!("TERMINATE".parse::<Signal>().is_err());
        assert!("0".parse::<Signal>().is_err());
        assert!("99".parse::<Signal>().is_err());
        assert_eq!(Signal::from_number(0o17), Ok(term));
        assert!(Signal::from_number(1 << 40).is_err());
    }

    /// Issue 16: a stop signal must be able to stop, a reload signal must not.
    #[test]
    fn signals_are_checked_for_what_their_key_does() {
        let sig = |name: &str| name.parse::<Signal>().unwrap();
        for refused in [
            "STOP", "TSTP", "TTIN", "TTOU", "CONT", "CHLD", "WINCH", "URG",
        ] {
            let err = sig(refused).check_stop().unwrap_err();
            assert!(err.contains("every stop would end in SIGKILL"), "{err}");
        }
        for fine in ["TERM", "INT", "QUIT", "HUP", "USR1", "ALRM"] {
            assert_eq!(sig(fine).check_stop(), Ok(None), "{fine}");
        }
        assert!(sig("KILL")
            .check_stop()
            .unwrap()
            .unwrap()
            .contains("no chance"));
        for refused in [
            "KILL", "STOP", "TERM", "INT", "QUIT", "TSTP", "CONT", "SEGV",
        ] {
            let err = sig(refused).check_reload().unwrap_err();
            assert!(err.contains("must not stop the daemon"), "{err}");
        }
        for fine in ["HUP", "USR1", "USR2", "WINCH", "ALRM"] {
            assert_eq!(sig(fine).check_reload(), Ok(()), "{fine}");
        }
    }
}
