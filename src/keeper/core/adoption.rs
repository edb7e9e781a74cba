//! `type = "forking"`: the command daemonizes itself. The keeper waits for it to exit
//! 0, then adopts the daemon it left behind (reparented to the keeper, a child
//! subreaper) and supervises that process as the daemon. [`look`] is the decision of
//! one look, on the facts the shell reads for it: the keeper's children, and the PID
//! the daemon's own pidfile names.
//!
//! The daemon is the process its own `pidfile` names, once it is the keeper's child,
//! or, without a pidfile, the one child left, once it has been the only one for
//! `start_wait` (the middle process of a double fork exits within that). A double
//! fork's middle process, the keeper's child for an instant, is never taken for the
//! daemon: it is not the one in the pidfile, and it does not last.

use std::path::Path;
use std::time::Instant;

use super::machine::PROBE_INTERVAL;
use crate::config::units::format_duration;
use crate::config::Supervision;
use crate::procinfo::ProcId;

/// The command runs, or has exited 0, and the keeper looks for the daemon it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Adopting {
    /// When start fails if the daemon is not found (`ready_timeout` after the spawn).
    pub(crate) ready_by: Instant,
    /// Whether the command has exited 0.
    pub(crate) exited: bool,
    /// The keeper's children at the last look, and since when they have been these.
    pub(crate) children: Vec<ProcId>,
    pub(crate) since: Instant,
    /// When to look again (a pidfile appears without an event).
    pub(crate) next_look: Instant,
}

impl Adopting {
    /// The look of a command spawned at `now`.
    pub(crate) fn new(now: Instant, s: &Supervision) -> Adopting {
        Adopting {
            ready_by: now + s.ready_timeout,
            exited: false,
            children: Vec::new(),
            since: now,
            next_look: now,
        }
    }

    /// When the keeper must look again.
    pub(crate) fn deadline(&self) -> Instant {
        match self.exited {
            true => self.next_look.min(self.ready_by),
            false => self.ready_by,
        }
    }
}

/// What a look found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Look {
    /// The daemon: supervise `id`, up since `since`.
    Adopt { id: ProcId, since: Instant },
    /// Not yet: look again at `next_look`.
    Wait,
    /// The start fails, for this reason (without the `type = "forking":` prefix).
    Fail(String),
}

/// What the keeper can see of the command's leftovers when it looks.
pub(crate) trait Leftovers {
    /// The keeper's children now, by identity.
    fn children(&self) -> Vec<ProcId>;
    /// The PID the daemon's own pidfile names now, if it names one.
    fn named_pid(&self) -> Option<i32>;
}

/// One look at `now` for the daemon the command left, with `pidfile` the daemon's own
/// pidfile, if it has one; updates what `adopting` remembers between looks.
pub(crate) fn look(
    adopting: &mut Adopting,
    now: Instant,
    s: &Supervision,
    pidfile: Option<&Path>,
    seen: &impl Leftovers,
) -> Look {
    let timeout = format_duration(s.ready_timeout);
    if !adopting.exited {
        if now >= adopting.ready_by {
            return Look::Fail(format!(
                "the command did not exit within ready_timeout ({timeout})"
            ));
        }
        return Look::Wait;
    }
    let children = seen.children();
    if children.is_empty() {
        return Look::Fail("the command exited 0 but left no process behind".into());
    }
    adopting.next_look = now + PROBE_INTERVAL;
    let named = pidfile.and_then(|_| seen.named_pid());
    let found = match pidfile {
        Some(_) => named
            .and_then(|pid| children.iter().find(|c| c.pid == pid))
            .map(|&id| (id, now)),
        None => {
            if children != adopting.children {
                adopting.children = children.clone();
                adopting.since = now;
            }
            let settle_at = adopting.since + s.start_wait;
            adopting.next_look = adopting.next_look.min(settle_at.max(now));
            match children[..] {
                _ if now < settle_at => None,
                [only] => Some((only, adopting.since)),
                _ => {
                    return Look::Fail(format!(
                        "the command left {} processes behind; set `pidfile` to the file the program writes, so that dmgr knows which one is the daemon",
                        children.len()
                    ))
                }
            }
        }
    };
    match (found, pidfile) {
        (Some((id, since)), _) => Look::Adopt { id, since },
        (None, Some(path)) if now >= adopting.ready_by => Look::Fail(match named {
            None => format!(
                "pidfile {} did not appear within ready_timeout ({timeout})",
                path.display()
            ),
            Some(pid) => format!(
                "pidfile {} names pid {pid}, which is not a process the command left behind",
                path.display()
            ),
        }),
        (None, None) if now >= adopting.ready_by => Look::Fail(format!(
            "the processes the command left kept changing until ready_timeout ({timeout})"
        )),
        (None, _) => Look::Wait,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Made-up leftovers: the keeper's children and what the pidfile names.
    struct Seen(Vec<ProcId>, Option<i32>);

    impl Leftovers for Seen {
        fn children(&self) -> Vec<ProcId> {
            self.0.clone()
        }
        fn named_pid(&self) -> Option<i32> {
            self.1
        }
    }

    const DAEMON: ProcId = ProcId { pid: 300, start: 9 };
    const MIDDLE: ProcId = ProcId { pid: 299, start: 8 };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn supervision() -> Supervision {
        Supervision {
            start_wait: ms(500),
            ready_timeout: ms(5000),
            ..Supervision::default()
        }
    }

    fn exited(t0: Instant) -> Adopting {
        Adopting {
            exited: true,
            ..Adopting::new(t0, &supervision())
        }
    }

    /// SPEC `type = "forking"`: the process the daemon's own `pidfile` names is
    /// adopted as soon as it is the keeper's child.
    #[test]
    fn the_process_the_pidfile_names_is_adopted() {
        let t0 = crate::keeper::test_epoch();
        let s = supervision();
        let pidfile = Some(Path::new("/run/x.pid"));
        let mut a = exited(t0);
        let seen = Seen(vec![MIDDLE, DAEMON], Some(DAEMON.pid));
        let found = look(&mut a, t0 + ms(10), &s, pidfile, &seen);
        assert_eq!(
            found,
            Look::Adopt {
                id: DAEMON,
                since: t0 + ms(10)
            }
        );
        // Named but not (yet) a child: look again.
        let seen = Seen(vec![MIDDLE], Some(DAEMON.pid));
        assert_eq!(look(&mut a, t0 + ms(10), &s, pidfile, &seen), Look::Wait);
        assert_eq!(a.next_look, t0 + ms(10) + PROBE_INTERVAL);
    }

    /// Without a pidfile, the only child left is the daemon once it has been the only
    /// one for `start_wait`; a double fork's middle process does not last that long.
    #[test]
    fn without_a_pidfile_the_one_child_that_lasts_is_adopted() {
        let t0 = crate::keeper::test_epoch();
        let s = supervision();
        let mut a = exited(t0);
        let both = Seen(vec![MIDDLE, DAEMON], None);
        assert_eq!(look(&mut a, t0, &s, None, &both), Look::Wait);
        let daemon = Seen(vec![DAEMON], None);
        let later = t0 + ms(100);
        assert_eq!(look(&mut a, later, &s, None, &daemon), Look::Wait);
        assert_eq!(a.since, later, "the set of children changed");
        assert_eq!(
            look(&mut a, later + ms(500), &s, None, &daemon),
            Look::Adopt {
                id: DAEMON,
                since: later
            }
        );
    }

    /// A command that leaves several processes and no pidfile fails the start, with a
    /// hint to set `pidfile`.
    #[test]
    fn several_children_and_no_pidfile_fail_the_start() {
        let t0 = crate::keeper::test_epoch();
        let s = supervision();
        let mut a = exited(t0);
        let both = Seen(vec![MIDDLE, DAEMON], None);
        assert_eq!(look(&mut a, t0, &s, None, &both), Look::Wait);
        let Look::Fail(why) = look(&mut a, t0 + ms(500), &s, None, &both) else {
            panic!("two processes stayed");
        };
        assert!(
            why.contains("left 2 processes behind; set `pidfile`"),
            "{why}"
        );
    }

    /// Nothing left, a command that never exits, a pidfile that never appears: each
    /// fails the start with its reason.
    #[test]
    fn a_start_with_nothing_to_adopt_fails_with_its_reason() {
        let t0 = crate::keeper::test_epoch();
        let s = supervision();
        let mut a = exited(t0);
        let none = Seen(vec![], None);
        assert_eq!(
            look(&mut a, t0, &s, None, &none),
            Look::Fail("the command exited 0 but left no process behind".into())
        );
        let mut running = Adopting::new(t0, &s);
        assert_eq!(
            look(&mut running, t0 + ms(4999), &s, None, &none),
            Look::Wait
        );
        assert_eq!(
            look(&mut running, t0 + ms(5000), &s, None, &none),
            Look::Fail("the command did not exit within ready_timeout (5s)".into())
        );
        let pidfile = Some(Path::new("/run/x.pid"));
        let mut a = exited(t0);
        let unnamed = Seen(vec![DAEMON], None);
        assert_eq!(
            look(&mut a, t0 + ms(5000), &s, pidfile, &unnamed),
            Look::Fail("pidfile /run/x.pid did not appear within ready_timeout (5s)".into())
        );
        let stranger = Seen(vec![DAEMON], Some(1));
        let Look::Fail(why) = look(&mut a, t0 + ms(5000), &s, pidfile, &stranger) else {
            panic!("pid 1 is not the command's");
        };
        assert!(why.contains("names pid 1, which is not a process the command left behind"));
    }
}
