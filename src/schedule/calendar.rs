//! One field of a crontab(5) line: parsed and checked here, so that a problem names
//! the field and the value, and written out again as numbers (for croner and Nomad)
//! or as the values it stands for (for systemd's `OnCalendar=`).

/// What a field of the five is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Kind {
    name: &'static str,
    min: u32,
    max: u32,
    /// Three-letter names for the values from `min` on (months, days of the week).
    names: &'static [&'static str],
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The five fields, in order.
pub(super) const KINDS: [Kind; 5] = [
    Kind {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Kind {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Kind {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Kind {
        name: "month",
        min: 1,
        max: 12,
        names: MONTHS,
    },
    // 7 is Sunday too, as crontab(5) allows.
    Kind {
        name: "day of week",
        min: 0,
        max: 7,
        names: DAYS,
    },
];

/// One field: `*`, or a list of ranges, each with an optional step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Field {
    kind: Kind,
    /// Each item of the list: first, last, step (`*` is min..=max).
    items: Vec<(u32, u32, u32)>,
    /// Whether the field starts with `*`: crontab(5) then matches a day when either
    /// day field matches only if both are restricted (neither starts with `*`).
    star: bool,
}

impl Field {
    /// Parses `word` as a field of `kind`.
    pub(super) fn parse(kind: Kind, word: &str) -> Result<Field, String> {
        let mut items = Vec::new();
        for item in word.split(',') {
            items.push(
                parse_item(kind, item)
                    .map_err(|why| format!("the {} field `{word}`: {why}", kind.name))?,
            );
        }
        Ok(Field {
            kind,
            items,
            star: word.starts_with('*'),
        })
    }

    /// Returns true if and only if the field starts with `*` (every value, or a step
    /// through all of them).
    pub fn is_star(&self) -> bool {
        self.star
    }

    /// Returns true if and only if the field matches every value of its kind.
    pub fn is_every(&self) -> bool {
        let distinct = match self.kind.names {
            // 0 and 7 are both Sunday.
            DAYS => 7,
            _ => (self.kind.max - self.kind.min + 1) as usize,
        };
        self.values().len() == distinct
    }

    /// The values the field matches, sorted, each once (a Sunday written 7 is 0).
    pub fn values(&self) -> Vec<u32> {
        let mut values: Vec<u32> = self
            .items
            .iter()
            .flat_map(|&(first, last, step)| (first..=last).step_by(step as usize))
            .map(|v| {
                if self.kind.names == DAYS && v == 7 {
                    0
                } else {
                    v
                }
            })
            .collect();
        values.sort_unstable();
        values.dedup();
        values
    }

    /// The field in numbers, as croner and Nomad read it.
    pub(super) fn numeric(&self) -> String {
        let items: Vec<String> = self
            .items
            .iter()
            .map(|&(first, last, step)| {
                let range = if self.star && first == self.kind.min && last == self.kind.max {
                    "*".to_string()
                } else if first == last {
                    first.to_string()
                } else {
                    format!("{first}-{last}")
                };
                match step {
                    1 => range,
                    step => format!("{range}/{step}"),
                }
            })
            .collect();
        items.join(",")
    }

    /// The three-letter English name of a day of the week (0 and 7 are Sunday), in
    /// systemd's spelling (`Mon`).
    pub fn day_name(value: u32) -> &'static str {
        ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][(value % 7) as usize]
    }
}

/// One item of a list: `*`, `N`, `A-B`, each optionally `/STEP`.
fn parse_item(kind: Kind, item: &str) -> Result<(u32, u32, u32), String> {
    if item.is_empty() {
        return Err("an empty item in the list".into());
    }
    let quartz = |c: char| {
        format!(
            "`{c}` is not crontab(5) syntax (Quartz's `L`, `W`, `#` and `?` are not supported); use numbers, names, `*`, `-`, `/` and `,`"
        )
    };
    if let Some(c) = item.chars().find(|c| matches!(c, '#' | '?' | '+')) {
        return Err(quartz(c));
    }
    if kind.names.is_empty() {
        if let Some(c) = item.chars().find(|c| matches!(c, 'L' | 'l' | 'W' | 'w')) {
            return Err(quartz(c));
        }
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => {
            let step: u32 = step.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                format!("`/{step}` is not a step: a step is a whole number from 1")
            })?;
            (range, step)
        }
        None => (item, 1),
    };
    let (first, last) = if range == "*" {
        (kind.min, kind.max)
    } else if let Some((a, b)) = range.split_once('-') {
        let (a, b) = (value(kind, a)?, value(kind, b)?);
        if a > b {
            return Err(format!(
                "the range `{range}` runs backwards; write the smaller value first"
            ));
        }
        (a, b)
    } else {
        let a = value(kind, range)?;
        // `5/15` is `5-59/15`, as Vixie cron reads it.
        (a, if step > 1 { kind.max } else { a })
    };
    if step > kind.max - kind.min + 1 {
        return Err(format!(
            "the step `/{step}` is larger than the field ({}-{})",
            kind.min, kind.max
        ));
    }
    Ok((first, last, step))
}

/// One value: a number within the field, or a three-letter name where the field has
/// them.
fn value(kind: Kind, text: &str) -> Result<u32, String> {
    if let Ok(n) = text.parse::<u32>() {
        if (kind.min..=kind.max).contains(&n) {
            return Ok(n);
        }
        return Err(format!("{n} is out of range {}-{}", kind.min, kind.max));
    }
    let lower = text.to_ascii_lowercase();
    if let Some(at) = kind.names.iter().position(|n| *n == lower) {
        return Ok(kind.min + at as u32);
    }
    Err(match kind.names {
        [] => format!("`{text}` is not a number from {} to {}", kind.min, kind.max),
        names => format!(
            "`{text}` is not a number from {} to {} nor one of {}",
            kind.min,
            kind.max,
            names.join(", ")
        ),
    })
}
