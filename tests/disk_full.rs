//! Issue 22, finding 5: a full log disk. The keeper keeps supervising, writes each line
//! whole or drops it whole (never a torn or fused line), counts what it drops and
//! reports the count once writing works again, and `status` shows the log error only
//! while it lasts. The disks are small tmpfs in a private mount namespace
//! ([`PrivateTmpfs`]), so a test that is killed leaves no mount behind.

use std::time::Duration;

use serde_json::Value;

use crate::support::{in_private_mount_namespace, is_alive, wait_until, PrivateTmpfs, TestEnv};

/// The events of `name`, parsed, as stored.
fn events(env: &TestEnv, name: &str) -> Vec<Value> {
    std::fs::read_to_string(env.run_dir().join(format!("{name}.events")))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

/// The "Done when" of finding 5: 100,000 numbered lines through a log disk that fills
/// and frees three times. Every line in the file is one the daemon wrote, whole and in
/// order; the dropped-line counts of the `log-resumed` events add up to the gap; the
/// daemon ran throughout; `status` shows the log error while the disk is full and no
/// more once writing works again.
#[test]
fn lines_through_a_disk_that_fills_and_frees_are_whole_and_every_gap_is_counted() {
    const TEST: &str = "lines_through_a_disk_that_fills_and_frees";
    const LINES: u32 = 100_000;
    const BATCHES: u32 = 7;
    let env = TestEnv::new();
    let Some(disk) = PrivateTmpfs::mount(&env.root().join("disk"), "size=8m,mode=0755", TEST)
    else {
        return;
    };
    let env = env.in_namespace_of(disk.pid());
    let ctl = env.root().join("ctl");
    std::fs::create_dir(&ctl).unwrap();
    // Batch K of the lines is written once `goK` exists; `doneK` says it was. Each
    // line is `seq-NNNNNN ` and N % 37 x's: lines of many lengths, so that a full disk
    // cuts some of them.
    let per = LINES / BATCHES + 1;
    let script = format!(
        "for k in $(seq 0 {last}); do\n\
         \x20 while [ ! -e go$k ]; do sleep 0.01; done\n\
         \x20 awk -v from=$((k * {per} + 1)) -v to=$(((k + 1) * {per})) -v last={LINES} \
               'BEGIN {{ if (to > last) to = last; \
                         for (i = from; i <= to; i++) printf \"seq-%06d %s\\n\", i, substr(\"{xs}\", 1, i % 37) }}'\n\
         \x20 touch done$k\n\
         done\n\
         exec sleep 1000\n",
        last = BATCHES - 1,
        xs = "x".repeat(36)
    );
    std::fs::write(ctl.join("lines.sh"), script).unwrap();
    env.write(
        "web",
        &format!(
            "command = [\"sh\", \"lines.sh\"]\nworking_dir = \"{}\"\nlog = \"{}/web.log\"\nlog_max_size = \"0\"\nstart_wait = \"50ms\"\n",
            ctl.display(),
            disk.dir().display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let pid = env.pid("web").unwrap();
    let log_error = || {
        env.state("web")
            .and_then(|s| s["log_error"].as_str().map(str::to_string))
    };
    for k in 0..BATCHES {
        match k % 2 {
            1 => disk.fill(),
            _ if k > 0 => disk.free(),
            _ => {}
        }
        std::fs::write(ctl.join(format!("go{k}")), "").unwrap();
        wait_until(
            &format!("batch {k} is written"),
            Duration::from_secs(60),
            || ctl.join(format!("done{k}")).exists(),
        );
        if k % 2 == 1 {
            wait_until(
                "the keeper finds the disk full",
                Duration::from_secs(30),
                || count(&events(&env, "web"), "log-error") == (k as usize).div_ceil(2),
            );
            let error = log_error().expect("the record holds the log error");
            assert!(error.contains("No space left on device"), "{error}");
            env.dmgr(&["status", "web"])
                .success()
                .stdout_has("No space left on device");
        } else if k > 0 {
            wait_until("the keeper writes again", Duration::from_secs(30), || {
                count(&events(&env, "web"), "log-resumed") == k as usize / 2
            });
        }
    }
    let log = disk.path("web.log");
    let last = format!("seq-{LINES:06} ");
    wait_until("the last line is written", Duration::from_secs(30), || {
        std::fs::read_to_string(&log)
            .is_ok_and(|text| text.lines().last().is_some_and(|l| l.starts_with(&last)))
    });
    assert!(is_alive(pid), "the daemon died");
    assert_eq!(env.pid("web"), Some(pid), "the daemon was restarted");
    assert_eq!(
        log_error(),
        None,
        "the log error stays after writing works again"
    );
    env.dmgr(&["status", "web"])
        .success()
        .stdout_lacks("log error");

    let text = std::fs::read_to_string(&log).unwrap();
    let mut previous = 0;
    let mut kept = 0u64;
    for line in text.lines() {
        let number: u32 = line
            .strip_prefix("seq-")
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(n, xs)| {
                let n: u32 = n.parse().ok()?;
                (xs.len() == n as usize % 37 && xs.bytes().all(|b| b == b'x')).then_some(n)
            })
            .unwrap_or_else(|| panic!("a line the daemon never wrote: {line:?}"));
        assert!(number > previous, "line {number} after {previous}");
        previous = number;
        kept += 1;
    }
    assert!(text.ends_with('\n'));
    let all = events(&env, "web");
    assert_eq!(count(&all, "log-error"), 3, "{all:#?}");
    assert_eq!(count(&all, "log-resumed"), 3, "{all:#?}");
    let dropped: u64 = all
        .iter()
        .filter(|e| e["event"] == "log-resumed")
        .map(|e| e["dropped_lines"].as_u64().expect("dropped_lines"))
        .sum();
    let gap = u64::from(LINES) - kept;
    assert!(gap > 3 * 10_000, "the disk was full for only {gap} lines");
    eprintln!("{kept} lines kept, {dropped} dropped whole");
    assert_eq!(
        dropped, gap,
        "the dropped-line counts do not add up to the gap"
    );
    env.dmgr(&["stop", "web"]).success();
}

/// Whether signal `number` is pending for `pid` and not yet read (its signalfd).
fn is_pending(pid: i32, number: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("ShdPnd:"))?;
            u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
        })
        .is_some_and(|mask| mask & (1 << (number - 1)) != 0)
}

/// Also finding 5: the event history on a full disk. Events written while the run
/// directory's disk is full are lost, and one cut short is cut off, so the next one,
/// once space is back, starts a line of its own: every line of the history parses,
/// the keeper never stops supervising. Both writers are exercised: the keeper (an
/// `updated` event for each SIGUSR1) and the CLI (`dmgr kill`).
#[test]
fn a_history_on_a_full_disk_keeps_whole_lines_and_its_keeper() {
    const NAME: &str = "disk_full::a_history_on_a_full_disk_keeps_whole_lines_and_its_keeper";
    if in_private_mount_namespace(NAME) != Some(false) {
        return;
    }
    let env = TestEnv::new();
    std::fs::create_dir(env.run_dir()).unwrap();
    let _unmount = crate::support::mount_tmpfs(&env.run_dir(), "size=64k,mode=0755")
        .expect("a tmpfs in a private mount namespace");
    env.write(
        "web",
        &format!(
            "command = [\"sleep\", \"1000\"]\nstart_wait = \"0s\"\nlog = \"{}/web.log\"\n",
            env.root().display()
        ),
    );
    env.dmgr(&["start", "web"]).success();
    let (pid, keeper) = (env.pid("web").unwrap(), env.keeper_pid("web").unwrap());
    let filler = env.run_dir().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    for size in [4096, 1] {
        let chunk = vec![b'f'; size];
        while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
    }
    drop(file);
    let updated = || {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(keeper),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .unwrap();
        wait_until(
            "the keeper read its signal",
            Duration::from_secs(10),
            || !is_pending(keeper, 10),
        );
    };
    for _ in 0..40 {
        updated();
        env.dmgr(&["kill", "-s", "CONT", "web"]).success();
    }
    std::fs::remove_file(&filler).unwrap();
    let before = count(&events(&env, "web"), "updated");
    updated();
    env.dmgr(&["kill", "-s", "WINCH", "web"]).success();
    wait_until("events are written again", Duration::from_secs(10), || {
        let all = events(&env, "web");
        all.iter().any(|e| e["signal"] == "WINCH") && count(&all, "updated") > before
    });
    let all = events(&env, "web");
    assert!(
        all.len() < 80,
        "the disk was never full: {} events written",
        all.len()
    );
    assert!(is_alive(keeper) && is_alive(pid));
    assert_eq!(env.pid("web"), Some(pid));
    env.dmgr(&["stop", "web"]).success();
}
