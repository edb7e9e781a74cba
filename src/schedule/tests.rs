//! The schedule's times and decisions on a fake clock, in a time zone given as a POSIX
//! TZ string (no time zone database needed): Central European Time, whose clocks go
//! forward at 02:00 on the last Sunday of March and back at 03:00 on the last Sunday
//! of October.

use super::*;

fn cet() -> TimeZone {
    TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn cron(text: &str) -> Cron {
    Cron::parse(text).unwrap()
}

/// The next `n` times after `from`, in UTC.
fn times(cron: &Cron, tz: &TimeZone, from: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut t = at(from);
    for _ in 0..n {
        t = cron.next_after(t, tz).unwrap();
        out.push(t.to_string());
    }
    out
}

#[test]
fn five_fields_and_the_at_names_parse() {
    for ok in [
        "* * * * *",
        "30 3 * * *",
        "*/15 9-17 * * mon-fri",
        "0 0 1,15 * *",
        "0 12 * JAN,jul SUN",
        "5/10 * * * *",
        "0 0 * * 7",
        "@daily",
        "@Weekly",
        "@midnight",
        "@annually",
    ] {
        assert!(Cron::parse(ok).is_ok(), "{ok}: {:?}", Cron::parse(ok).err());
    }
    assert_eq!(cron("@weekly").five_fields(), "0 0 * * 0");
    assert_eq!(
        cron("*/15 9-17 * * mon-fri").five_fields(),
        "*/15 9-17 * * 1-5"
    );
}

/// Every problem is named with its field and what to write instead.
#[test]
fn a_bad_schedule_says_what_is_wrong() {
    let err = |text: &str| Cron::parse(text).unwrap_err();
    assert!(err("").contains("an empty schedule"), "{}", err(""));
    assert!(err("* * * *").contains("4 fields"));
    assert!(err("0 * * * * *").contains("no seconds"));
    assert!(err("61 * * * *").contains("minute field `61`: 61 is out of range 0-59"));
    assert!(err("0 24 * * *").contains("hour field"));
    assert!(err("0 0 0 * *").contains("day of month field"));
    assert!(err("0 0 * 13 *").contains("month field"));
    assert!(err("0 0 * * 8").contains("day of week field"));
    assert!(err("0 0 L * *").contains("`L` is not crontab(5) syntax"));
    assert!(err("0 0 * * 5#3").contains("`#` is not crontab(5) syntax"));
    assert!(err("0 0 ? * *").contains("`?`"));
    assert!(err("0 0 * * mon-frx").contains("`frx` is not a number from 0 to 7 nor one of sun"));
    assert!(err("0 0 * * 5-1").contains("runs backwards"));
    assert!(err("*/0 * * * *").contains("not a step"));
    assert!(err("mon * * * *").contains("`mon` is not a number from 0 to 59"));
    assert!(err("@reboot").contains("not a time"));
    assert!(err("@fortnightly").contains("unknown schedule"));
    assert!(err("1,,2 * * * *").contains("empty item"));
}

/// 02:30 does not exist on the day clocks go forward: that day's run is at 03:00, the
/// first instant after the gap, and the next day's at 02:30 again.
#[test]
fn a_time_in_the_skipped_hour_runs_right_after_the_gap() {
    let daily = cron("30 2 * * *");
    assert_eq!(
        times(&daily, &cet(), "2026-03-28T12:00:00Z", 2),
        [
            "2026-03-29T01:00:00Z", // 03:00 CEST, right after the gap
            "2026-03-30T00:30:00Z", // 02:30 CEST
        ]
    );
}

/// 02:30 happens twice on the day clocks go back: a daily run happens once, on the
/// first pass.
#[test]
fn a_fixed_time_in_the_repeated_hour_runs_once() {
    let daily = cron("30 2 * * *");
    assert_eq!(
        times(&daily, &cet(), "2026-10-24T12:00:00Z", 2),
        [
            "2026-10-25T00:30:00Z", // 02:30 CEST, the first pass
            "2026-10-26T01:30:00Z", // 02:30 CET, the next day
        ]
    );
}

/// A schedule that repeats within the hour runs on both passes of the repeated hour,
/// as the wall clock reads them.
#[test]
fn an_interval_runs_on_both_passes_of_the_repeated_hour() {
    let half_hourly = cron("*/30 2 * * *");
    assert_eq!(
        times(&half_hourly, &cet(), "2026-10-24T12:00:00Z", 4),
        [
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST
            "2026-10-25T01:00:00Z", // 02:00 CET
            "2026-10-25T01:30:00Z", // 02:30 CET
        ]
    );
}

/// The 31st is skipped by months without one, the 29th of February waits for a leap
/// year, and `@monthly` is the first of each month, at midnight in the zone.
#[test]
fn month_ends_are_as_the_calendar_has_them() {
    let utc = TimeZone::UTC;
    assert_eq!(
        times(&cron("0 0 31 * *"), &utc, "2026-01-31T00:00:00Z", 3),
        [
            "2026-03-31T00:00:00Z",
            "2026-05-31T00:00:00Z",
            "2026-07-31T00:00:00Z"
        ]
    );
    assert_eq!(
        times(&cron("0 12 29 2 *"), &utc, "2026-01-01T00:00:00Z", 2),
        ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"]
    );
    assert_eq!(
        times(&cron("@monthly"), &cet(), "2026-01-31T22:59:00Z", 2),
        [
            "2026-01-31T23:00:00Z", // 1 February, 00:00 CET
            "2026-02-28T23:00:00Z"  // 1 March
        ]
    );
    // The last day of the month as crontab(5) cannot say it: 28-31 restricted to…
    // nothing more; but 30 in February never comes.
    assert_eq!(
        times(&cron("0 0 30 * *"), &utc, "2026-01-30T00:00:00Z", 1),
        ["2026-03-30T00:00:00Z"]
    );
}

/// crontab(5): when both day fields are restricted, a day matching either runs.
#[test]
fn both_day_fields_restricted_match_either() {
    // The 13th, and every Friday: 2026-02-06 is a Friday, 2026-02-13 a Friday too.
    assert_eq!(
        times(
            &cron("0 0 13 * fri"),
            &TimeZone::UTC,
            "2026-02-01T00:00:00Z",
            3
        ),
        [
            "2026-02-06T00:00:00Z",
            "2026-02-13T00:00:00Z",
            "2026-02-20T00:00:00Z"
        ]
    );
    // With `*` in the day of week, only the 13th.
    assert_eq!(
        times(
            &cron("0 0 13 * *"),
            &TimeZone::UTC,
            "2026-02-01T00:00:00Z",
            1
        ),
        ["2026-02-13T00:00:00Z"]
    );
}

/// A run still going when the next time comes is not started twice: that time is
/// skipped, and the one after runs.
#[test]
fn an_overlapping_time_is_skipped() {
    let mut clock = Clock::new(
        cron("* * * * *"),
        TimeZone::UTC,
        None,
        false,
        at("2026-05-01T10:00:10Z"),
    );
    assert_eq!(clock.deadline(), Some(at("2026-05-01T10:01:00Z")));
    assert_eq!(
        clock.fire(at("2026-05-01T10:00:59Z"), false),
        None,
        "not due yet"
    );
    assert_eq!(
        clock.fire(at("2026-05-01T10:01:00Z"), false),
        Some(Fire::Run {
            due: at("2026-05-01T10:01:00Z"),
            missed: 0
        })
    );
    // The run takes more than a minute.
    assert_eq!(
        clock.fire(at("2026-05-01T10:02:00Z"), true),
        Some(Fire::Skip {
            due: at("2026-05-01T10:02:00Z")
        })
    );
    assert_eq!(
        clock.fire(at("2026-05-01T10:03:00.004Z"), false),
        Some(Fire::Run {
            due: at("2026-05-01T10:03:00Z"),
            missed: 0
        })
    );
    assert_eq!(clock.deadline(), Some(at("2026-05-01T10:04:00Z")));
}

/// With `catch_up`, a keeper back after three scheduled times passed without it runs
/// once at once, for the latest of them, and then keeps to the schedule.
#[test]
fn catch_up_after_three_missed_times_runs_exactly_once() {
    let last = at("2026-05-01T03:00:00Z");
    let back = at("2026-05-04T09:00:00Z"); // the 2nd, 3rd and 4th at 03:00 were missed
    let mut clock = Clock::new(cron("0 3 * * *"), TimeZone::UTC, Some(last), true, back);
    assert_eq!(clock.deadline(), Some(Timestamp::MIN), "due at once");
    assert_eq!(
        clock.fire(back, false),
        Some(Fire::Run {
            due: at("2026-05-04T03:00:00Z"),
            missed: 3
        })
    );
    assert_eq!(clock.deadline(), Some(at("2026-05-05T03:00:00Z")));
    assert_eq!(
        clock.fire(at("2026-05-04T09:00:01Z"), false),
        None,
        "exactly once"
    );
    assert_eq!(clock.fire(at("2026-05-05T02:59:59Z"), false), None);
}

/// Without `catch_up`, or with nothing missed, or with no last time known (the first
/// start), nothing is owed.
#[test]
fn nothing_is_caught_up_unless_asked_and_missed() {
    let daily = cron("0 3 * * *");
    let back = at("2026-05-04T09:00:00Z");
    let owes = |last: Option<&str>, catch_up: bool| {
        Clock::new(daily.clone(), TimeZone::UTC, last.map(at), catch_up, back).deadline()
            == Some(Timestamp::MIN)
    };
    assert!(!owes(Some("2026-05-01T03:00:00Z"), false));
    assert!(
        !owes(Some("2026-05-04T03:00:00Z"), true),
        "the last run was the latest time"
    );
    assert!(!owes(Some("2026-05-04T08:00:00Z"), true));
    assert!(!owes(None, true));
    assert!(owes(Some("2026-05-04T02:59:59Z"), true));
}

/// A run owed while the last is still going (a keeper taking over a running job) is
/// skipped, not queued.
#[test]
fn an_owed_run_is_skipped_while_one_runs() {
    let back = at("2026-05-04T09:00:00Z");
    let mut clock = Clock::new(
        cron("0 3 * * *"),
        TimeZone::UTC,
        Some(at("2026-05-01T03:00:00Z")),
        true,
        back,
    );
    assert_eq!(
        clock.fire(back, true),
        Some(Fire::Skip {
            due: at("2026-05-04T03:00:00Z")
        })
    );
    assert_eq!(clock.fire(back, false), None);
}

/// A keeper that slept through several times (a suspended host) runs once, and its
/// next time is after the wake-up.
#[test]
fn sleeping_through_times_runs_once() {
    let mut clock = Clock::new(
        cron("*/5 * * * *"),
        TimeZone::UTC,
        None,
        false,
        at("2026-05-01T10:00:00Z"),
    );
    assert_eq!(
        clock.fire(at("2026-05-01T10:31:00Z"), false),
        Some(Fire::Run {
            due: at("2026-05-01T10:05:00Z"),
            missed: 0
        })
    );
    assert_eq!(clock.deadline(), Some(at("2026-05-01T10:35:00Z")));
}

/// A clock set back or forward: the next time is worked out from the new now.
#[test]
fn a_changed_clock_is_followed() {
    let mut clock = Clock::new(
        cron("0 * * * *"),
        TimeZone::UTC,
        None,
        false,
        at("2026-05-01T10:10:00Z"),
    );
    assert_eq!(clock.next_time(), Some(at("2026-05-01T11:00:00Z")));
    clock.clock_changed(at("2026-05-01T07:30:00Z"));
    assert_eq!(clock.next_time(), Some(at("2026-05-01T08:00:00Z")));
    clock.clock_changed(at("2026-05-02T00:00:30Z"));
    assert_eq!(clock.next_time(), Some(at("2026-05-02T01:00:00Z")));
}

/// The count of missed times is bounded, and the owed run is still for the latest.
#[test]
fn a_long_downtime_counts_missed_times_up_to_a_limit() {
    let last = at("2026-01-01T00:00:00Z");
    let back = at("2026-03-01T00:00:30Z");
    let mut clock = Clock::new(cron("* * * * *"), TimeZone::UTC, Some(last), true, back);
    assert_eq!(
        clock.fire(back, false),
        Some(Fire::Run {
            due: at("2026-03-01T00:00:00Z"),
            missed: MISSED_COUNT_LIMIT
        })
    );
}

#[test]
fn a_schedule_is_stored_as_written() {
    let c = cron("@daily");
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(json, "\"@daily\"");
    let back: Cron = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
    assert!(serde_json::from_str::<Cron>("\"nonsense\"").is_err());
}

#[test]
fn a_localtime_link_into_zoneinfo_is_read_as_the_zone_it_names() {
    let zoneinfo = std::path::Path::new("/usr/share/zoneinfo/Europe/Paris");
    if !zoneinfo.is_file() {
        eprintln!("skipped: no /usr/share/zoneinfo/Europe/Paris");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs the zoneinfo files"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("localtime");
    std::os::unix::fs::symlink(zoneinfo, &link).unwrap();
    let tz = super::linked_zone(&link).expect("read as a zone");
    assert_eq!(tz.iana_name(), Some("Europe/Paris"));
    // Summer and winter time, as jiff's own database reads them.
    let paris = TimeZone::get("Europe/Paris").unwrap();
    for instant in ["2026-07-01T12:00:00Z", "2026-12-01T12:00:00Z"] {
        let t = at(instant);
        assert_eq!(tz.to_offset(t), paris.to_offset(t));
    }
    // Not a link, or a link elsewhere: jiff's way.
    let copy = dir.path().join("copy");
    std::fs::copy(zoneinfo, &copy).unwrap();
    assert!(super::linked_zone(&copy).is_none());
}
