//! Schedules: the `schedule` and `restart_schedule` keys, and the pure decisions a
//! scheduled keeper makes on a clock it is given.
//!
//! A [`Cron`] is a crontab(5) expression: five fields (minute, hour, day of month,
//! month, day of week) of numbers, `*`, ranges `a-b`, steps `/n`, lists `,` and the
//! three-letter month and day names, or one of `@yearly`, `@annually`, `@monthly`,
//! `@weekly`, `@daily`, `@midnight`, `@hourly`. dmgr checks the syntax itself, so that
//! a problem is named precisely and the expression can be written out again for
//! systemd and Nomad, and leaves the times to croner, with its handling of
//! daylight-saving changes (see [`Cron::next_after`]).
//!
//! [`Clock`] is the timer of a scheduled keeper: when it should wake next, and what
//! to do when it wakes (run, or skip because a run is still going), including the one
//! run that `catch_up` owes for times missed while the keeper was not there. It reads
//! no clock: every call is given `now`, so its tests use a fake one.

mod calendar;
#[cfg(test)]
mod tests;

pub use calendar::Field;

use std::fmt;
use std::str::FromStr;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A crontab(5) schedule, checked and ready to compute times with.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cron {
    /// As written in the file.
    text: String,
    /// The five fields, the `@` names spelled out.
    fields: [Field; 5],
    /// croner's form, which computes the times.
    parsed: croner::Cron,
}

/// The `@` names crontab(5) knows, as five fields (`@weekly` is Sunday, as in cron;
/// systemd's `weekly` is Monday, which is why the export spells it out).
const NAMES: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

impl Cron {
    /// Parses a schedule; the error is a message for `check`, naming what is wrong
    /// and how to write it.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let trimmed = text.trim();
        let spelled = if trimmed.starts_with('@') {
            let lower = trimmed.to_ascii_lowercase();
            match NAMES.iter().find(|(name, _)| *name == lower) {
                Some((_, fields)) => *fields,
                None if lower == "@reboot" => {
                    return Err("`@reboot` is not a time: a daemon with `autostart = true` starts with `dmgr start --all`, which `dmgr boot install` runs at boot".into())
                }
                None => {
                    return Err(format!(
                        "unknown schedule `{trimmed}`: use five fields like \"30 3 * * *\", or one of {}",
                        NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ))
                }
            }
        } else {
            trimmed
        };
        let words: Vec<&str> = spelled.split_whitespace().collect();
        if words.len() != 5 {
            let hint = match words.len() {
                0 => "an empty schedule".to_string(),
                6 | 7 => format!(
                    "{} fields, but a schedule has five (minute hour day-of-month month day-of-week): no seconds or years",
                    words.len()
                ),
                n => format!(
                    "{n} field{}, but a schedule has five: minute hour day-of-month month day-of-week",
                    if n == 1 { "" } else { "s" }
                ),
            };
            return Err(format!(
                "{hint}; for example \"30 3 * * *\" is 03:30 every day"
            ));
        }
        let mut fields: [Field; 5] = Default::default();
        for (i, word) in words.iter().enumerate() {
            fields[i] = Field::parse(calendar::KINDS[i], word)?;
        }
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build();
        // Written out in numbers, which croner reads as crontab(5) does.
        let numeric: Vec<String> = fields.iter().map(Field::numeric).collect();
        let parsed = parser
            .parse(&numeric.join(" "))
            .map_err(|e| format!("not a schedule croner accepts: {e}"))?;
        Ok(Cron {
            text: text.to_string(),
            fields,
            parsed,
        })
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The five fields (minute, hour, day of month, month, day of week), `@` names
    /// spelled out.
    pub fn fields(&self) -> &[Field; 5] {
        &self.fields
    }

    /// The five fields as one crontab(5) line, in numbers (for Nomad's `cron`).
    pub fn five_fields(&self) -> String {
        let numeric: Vec<String> = self.fields.iter().map(Field::numeric).collect();
        numeric.join(" ")
    }

    /// The first scheduled time strictly after `after`, in the time zone `tz`, or
    /// `None` past the end of the calendar croner searches.
    ///
    /// Daylight-saving changes are handled as croner defines them (the Open Cron
    /// Pattern Specification, as Vixie cron does): a time that falls in the hour
    /// skipped when clocks go forward runs at the first instant after the gap; a time
    /// in the hour repeated when clocks go back runs once, on its first pass, unless
    /// the schedule repeats within the hour (`*/15 * * * *`), which then runs on both
    /// passes as the clock reads them.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let zoned = after.to_zoned(tz.clone());
        self.parsed
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.text)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Cron {
    fn eq(&self, other: &Cron) -> bool {
        self.text == other.text
    }
}

impl Eq for Cron {}

impl FromStr for Cron {
    type Err = String;

    fn from_str(text: &str) -> Result<Cron, String> {
        Cron::parse(text)
    }
}

impl TryFrom<String> for Cron {
    type Error = String;

    fn try_from(text: String) -> Result<Cron, String> {
        Cron::parse(&text)
    }
}

impl From<Cron> for String {
    fn from(cron: Cron) -> String {
        cron.text
    }
}

/// `ms` since the epoch as the host's local time, to the minute (`2026-12-08 03:30
/// CET`), for what `start`, `list` and `status` say of a schedule's next time.
pub fn local_time(ms: u64) -> String {
    let Ok(at) = Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX)) else {
        return "?".to_string();
    };
    at.to_zoned(system_time_zone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// The host's time zone, as jiff's `TimeZone::system()` finds it, without loading the
/// names of every zone in the system's zoneinfo database on the way.
///
/// jiff looks the name that `/etc/localtime` links to up in that database, which
/// first lists `/usr/share/zoneinfo`: about 200 KiB of names that a scheduled keeper
/// would then hold for its whole life, to read one file. Where `TZ` is unset and
/// `/etc/localtime` links into a `zoneinfo/` directory, as on Debian, Fedora and
/// Arch, that file is read here as jiff reads it, under the same name; anything else
/// (`TZ`, a copied `/etc/localtime`) goes to jiff.
pub fn system_time_zone() -> TimeZone {
    if std::env::var_os("TZ").is_none() {
        if let Some(tz) = linked_zone(std::path::Path::new("/etc/localtime")) {
            return tz;
        }
    }
    TimeZone::system()
}

/// The zone that `link` (a symbolic link into a `zoneinfo/` directory) names, read
/// from the file it links to.
fn linked_zone(link: &std::path::Path) -> Option<TimeZone> {
    let target = std::fs::read_link(link).ok()?;
    let target = target.to_str()?;
    let needle = "zoneinfo/";
    let name = &target[target.rfind(needle)? + needle.len()..];
    let data = std::fs::read(link).ok()?;
    TimeZone::tzif(name, &data).ok()
}

/// What a scheduled keeper does when its timer fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fire {
    /// Start a run for the time `due` (event `scheduled`).
    Run {
        /// The scheduled time the run is for.
        due: Timestamp,
        /// How many scheduled times were missed before it, when this is the one run
        /// `catch_up` owes (0 for a run on time).
        missed: u32,
    },
    /// The time `due` came while the last run is still going: not started twice
    /// (event `skipped`).
    Skip {
        /// The scheduled time that was skipped.
        due: Timestamp,
    },
}

/// The most missed times [`Clock`] counts for its message; past it, "at least".
pub const MISSED_COUNT_LIMIT: u32 = 1000;

/// The timer of a scheduled keeper: the next scheduled time, and the one missed run
/// owed by `catch_up`. Pure: every call is given `now`.
#[derive(Debug, Clone)]
pub struct Clock {
    cron: Cron,
    tz: TimeZone,
    /// The next time to wake for.
    next: Option<Timestamp>,
    /// A missed time owed to `catch_up`, and how many were missed.
    owed: Option<(Timestamp, u32)>,
}

impl Clock {
    /// The clock of a keeper starting at `now`. `last` is the last time the schedule
    /// was accounted for (the last run's scheduled time, or when a keeper of this
    /// daemon first started), kept in the run directory. With `catch_up`, a scheduled
    /// time between `last` and `now` is owed one run, due at once; however many were
    /// missed, it runs once. Without a `last`, nothing is owed: a schedule counts from
    /// its first start.
    pub fn new(
        cron: Cron,
        tz: TimeZone,
        last: Option<Timestamp>,
        catch_up: bool,
        now: Timestamp,
    ) -> Clock {
        let owed = match last {
            Some(last) if catch_up => missed_between(&cron, &tz, last, now),
            _ => None,
        };
        let next = cron.next_after(now, &tz);
        Clock {
            cron,
            tz,
            next,
            owed,
        }
    }

    /// When the keeper should wake for this schedule: at once for an owed run, else at
    /// the next scheduled time; `None` when no time is left.
    pub fn deadline(&self) -> Option<Timestamp> {
        match self.owed {
            Some(_) => Some(Timestamp::MIN),
            None => self.next,
        }
    }

    /// The next scheduled time (what `list` and `status` show), not counting an owed
    /// run.
    pub fn next_time(&self) -> Option<Timestamp> {
        self.next
    }

    /// The keeper woke at `now`; `running` says whether the last run is still going.
    /// Returns what to do, if anything is due, and moves the clock on past `now`: a
    /// keeper that slept through several times (a suspended host, the clock set
    /// forward) acts once, not once per time.
    pub fn fire(&mut self, now: Timestamp, running: bool) -> Option<Fire> {
        if let Some((due, missed)) = self.owed.take() {
            self.next = self.cron.next_after(now, &self.tz);
            return Some(match running {
                true => Fire::Skip { due },
                false => Fire::Run { due, missed },
            });
        }
        let due = self.next.filter(|next| *next <= now)?;
        self.next = self.cron.next_after(now, &self.tz);
        Some(match running {
            true => Fire::Skip { due },
            false => Fire::Run { due, missed: 0 },
        })
    }

    /// The wall clock was changed (set, or a time zone came into force): the next time
    /// is worked out again from `now`. Nothing is owed for the times jumped over; a
    /// clock set back does not run a time twice before it is due again.
    pub fn clock_changed(&mut self, now: Timestamp) {
        self.next = self.cron.next_after(now, &self.tz);
    }
}

/// The last scheduled time in `(last, now]` and how many there were (at most
/// [`MISSED_COUNT_LIMIT`]), or `None` when none was missed.
fn missed_between(
    cron: &Cron,
    tz: &TimeZone,
    last: Timestamp,
    now: Timestamp,
) -> Option<(Timestamp, u32)> {
    let mut at = cron.next_after(last, tz).filter(|t| *t <= now)?;
    let mut count = 1;
    while count < MISSED_COUNT_LIMIT {
        match cron.next_after(at, tz) {
            Some(t) if t <= now => {
                at = t;
                count += 1;
            }
            _ => return Some((at, count)),
        }
    }
    // Past the limit, the latest missed time is found from the other end.
    let latest = cron
        .parsed
        .find_previous_occurrence(&now.to_zoned(tz.clone()), true)
        .ok()
        .map_or(at, |z| z.timestamp());
    Some((latest, count))
}
