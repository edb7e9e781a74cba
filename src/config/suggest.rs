//! "Did you mean ...?": the nearest known key or daemon name to a word that is
//! neither, when it is close enough to be a typo. Bounded, so that hostile files cannot
//! make it slow: a word much longer than any name is not compared at all, only names of
//! a similar length are, and one [`Suggester`] stops suggesting after
//! [`BUDGET`] comparisons (10,000 files naming 10,000 unknown daemons in `after` would
//! otherwise cost 10^8 edit distances, most of a minute).

/// No key or daemon name is longer than 64 characters; a word longer than this cannot
/// be a few edits away from one.
const MAX_WORD: usize = 64 + 21;

/// The most edit distances one [`Suggester`] works out; past it, it suggests nothing.
pub(super) const BUDGET: usize = 20_000;

/// Suggests the nearest of a fixed set of names, for many words in a row.
#[derive(Debug, Clone)]
pub(super) struct Suggester<'k> {
    /// The names with their length in characters, sorted by length (then by the order
    /// they were given in, which breaks ties between equally near names).
    names: Vec<(usize, &'k str)>,
    budget: usize,
}

impl<'k> Suggester<'k> {
    /// A suggester over `names`.
    pub(super) fn new(names: &[&'k str]) -> Self {
        let mut names: Vec<(usize, &'k str)> =
            names.iter().map(|n| (n.chars().count(), *n)).collect();
        names.sort_by_key(|(len, _)| *len);
        Suggester {
            names,
            budget: BUDGET,
        }
    }

    /// The nearest name to `word`: at most a third of its length in edits (at least
    /// one; a transposition counts as one), the first given among equally near ones.
    pub(super) fn nearest(&mut self, word: &str) -> Option<&'k str> {
        let len = word.chars().count();
        if len > MAX_WORD {
            return None;
        }
        let allowed = (len / 3).max(1);
        let from = self.names.partition_point(|(l, _)| *l + allowed < len);
        let mut best: Option<(usize, &'k str)> = None;
        for &(name_len, name) in &self.names[from..] {
            if name_len > len + allowed || self.budget == 0 {
                break;
            }
            self.budget -= 1;
            let edits = strsim::osa_distance(word, name);
            if edits <= allowed && best.is_none_or(|(b, _)| edits < b) {
                best = Some((edits, name));
            }
        }
        best.map(|(_, name)| name)
    }
}

/// The nearest of `known` to `word`, if it is close enough to be a likely typo (see
/// `Suggester::nearest`).
pub fn nearest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    Suggester::new(known).nearest(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KEYS;

    #[test]
    fn nearest_key_suggests_typos_only() {
        assert_eq!(nearest("comand", KEYS), Some("command"));
        assert_eq!(nearest("stop_timout", KEYS), Some("stop_timeout"));
        assert_eq!(nearest("zzzzzz", KEYS), None);
        assert_eq!(nearest("wbe", &["web", "db"]), Some("web"));
        assert_eq!(nearest("xyz", &["web", "db"]), None);
        assert_eq!(nearest("", &["web", "db"]), None);
    }

    #[test]
    fn ties_go_to_the_first_name_given() {
        assert_eq!(nearest("lag", &["log", "lap"]), Some("log"));
        assert_eq!(nearest("lag", &["lap", "log"]), Some("lap"));
    }

    /// Issue 16: a megabyte-long word is not compared, and many words against many
    /// names stop at the budget instead of taking a minute.
    #[test]
    fn suggestions_are_bounded() {
        assert_eq!(nearest(&"x".repeat(1 << 20), KEYS), None);
        let names: Vec<String> = (0..10_000).map(|i| format!("d{i:05}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut suggester = Suggester::new(&refs);
        assert_eq!(suggester.nearest("d0001x"), Some("d00010"));
        let started = std::time::Instant::now();
        for i in 0..10_000 {
            let _ = suggester.nearest(&format!("e{i:05}"));
        }
        assert_eq!(suggester.budget, 0);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(suggester.nearest("d0001x"), None, "the budget is spent");
    }
}
