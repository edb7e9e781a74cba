use super::*;

#[test]
fn paths_are_escaped_as_systemd_escape_does() {
    assert_eq!(
        escape_path(Path::new("/srv/app/daemons.d")),
        "srv-app-daemons.d"
    );
    assert_eq!(
        escape_path(Path::new("/work/wt-handoff/daemons.d")),
        "work-wt\\x2dhandoff-daemons.d"
    );
    assert_eq!(escape_path(Path::new("/a b/.hidden")), "a\\x20b-.hidden");
    assert_eq!(escape_path(Path::new("/.dot")), "\\x2edot");
    assert_eq!(escape_path(Path::new("/")), "-");
}

#[test]
fn unit_names_never_collide_and_the_default_directory_is_plain() {
    assert_eq!(
        unit_name(Path::new("/etc/dmgr/daemons.d"), false),
        "dmgr.service"
    );
    let a = unit_name(Path::new("/srv/a/daemons.d"), false);
    let b = unit_name(Path::new("/srv/b/daemons.d"), false);
    assert_eq!(a, "dmgr.srv-a-daemons.d.service");
    assert_ne!(a, b);
    // dmgr-NAME.service is what `export systemd` writes; boot units never look so.
    assert!(!a.starts_with("dmgr-"));
    let long = PathBuf::from(format!("/{}", "x".repeat(300)));
    let name = unit_name(&long, false);
    assert!(name.len() < 64 && name.starts_with("dmgr.") && name.ends_with(".service"));
}

#[test]
fn the_system_directory_is_found_again_without_a_run_dir() {
    let system = Dirs {
        config_dir: config::SYSTEM_CONFIG_DIR.into(),
        run_dir: config::SYSTEM_RUN_DIR.into(),
        log_dir: config::SYSTEM_LOG_DIR.into(),
    };
    assert_eq!(dir_args(&system), ["--config-dir", "/etc/dmgr/daemons.d"]);
    let project = Dirs {
        config_dir: "/p/daemons.d".into(),
        run_dir: "/p/.dmgr".into(),
        log_dir: "/p/.dmgr/log".into(),
    };
    assert_eq!(
        dir_args(&project),
        ["--config-dir", "/p/daemons.d", "--run-dir", "/p/.dmgr"]
    );
}

#[test]
fn binaries_that_upgrades_move_are_named() {
    let risk = |p: &str, user| upgrade_risk(Path::new(p), user);
    assert!(risk("/home/a/src/dmgr/target/release/dmgr", false)
        .unwrap()
        .contains("cargo build"));
    assert!(risk("/home/a/.rustup/toolchains/stable/bin/dmgr", true)
        .unwrap()
        .contains("version manager"));
    assert!(risk("/home/a/.nvm/versions/node/v20/bin/dmgr", true)
        .unwrap()
        .contains(".nvm"));
    assert!(risk("/home/a/.cargo/bin/dmgr", false)
        .unwrap()
        .contains("home directory"));
    assert_eq!(risk("/home/a/.cargo/bin/dmgr", true), None);
    assert_eq!(risk("/usr/local/bin/dmgr", false), None);
    assert_eq!(risk("/usr/bin/dmgr", true), None);
}

#[test]
fn an_installed_unit_reads_back() {
    let placement = Placement {
        user: false,
        name: "dmgr.p-daemons.d.service".into(),
        unit_dir: "/etc/systemd/system".into(),
    };
    let dirs = Dirs {
        config_dir: "/p 1/daemons.d".into(),
        run_dir: "/p 1/.dmgr$x".into(),
        log_dir: "/p 1/.dmgr$x/log".into(),
    };
    let text = unit_text(
        &placement,
        Path::new("/usr/local/bin/dmgr"),
        &dirs,
        &[],
        Some("/usr/bin:/bin"),
    );
    let installed = parse_installed(&text).unwrap();
    assert_eq!(
        installed.binary.as_deref(),
        Some(Path::new("/usr/local/bin/dmgr"))
    );
    assert_eq!(
        installed.config_dir.as_deref(),
        Some(Path::new("/p 1/daemons.d"))
    );
    assert_eq!(
        installed.run_dir.as_deref(),
        Some(Path::new("/p 1/.dmgr$x"))
    );
    assert_eq!(installed.stop_timeout, Some(STOP_SLACK));
    assert!(parse_installed("[Unit]\n").is_none());
}

#[test]
fn timeouts_cover_the_slowest_chain_of_after() {
    let files = crate::export::tests_support::Files::new();
    let a = files.daemon("a", "command = \"x\"\nstop_timeout = \"20s\"\nready = { tcp = \"127.0.0.1:1\" }\nready_timeout = \"9s\"\n");
    let b = files.daemon(
        "b",
        "command = \"x\"\nstop_timeout = \"7s\"\nafter = [\"a\"]\n",
    );
    let c = files.daemon("c", "command = \"x\"\nstop_timeout = \"3s\"\n");
    let daemons = [a, b, c];
    // b stops first, then a and c together: 7 + 20, and 5 s a level, and 30 s.
    assert_eq!(
        stop_timeout(&daemons),
        Duration::from_secs(7 + 20 + 10 + 30)
    );
    let placement = Placement::new(&files.dirs.config_dir, false, Some(files.tmp.path())).unwrap();
    let text = unit_text(
        &placement,
        Path::new("/usr/bin/dmgr"),
        &files.dirs,
        &daemons,
        None,
    );
    assert!(text.contains("\nTimeoutStopSec=67s\n"), "{text}");
    assert!(
        text.contains("# Slowest stop chain now: b 7s, then a 20s."),
        "{text}"
    );
    // a starts first (500 ms and 9 s for its check), then b: 9.5 + 0.5 + 10 + 60.
    assert!(text.contains("\nTimeoutStartSec=80s\n"), "{text}");
    assert!(!text.contains("Environment="));
}

#[test]
fn a_user_unit_waits_for_no_system_target() {
    let files = crate::export::tests_support::Files::new();
    let placement = Placement::new(&files.dirs.config_dir, true, Some(files.tmp.path())).unwrap();
    let text = unit_text(
        &placement,
        Path::new("/usr/bin/dmgr"),
        &files.dirs,
        &[],
        Some("/bin"),
    );
    assert!(text.contains("\nWantedBy=default.target\n"));
    assert!(!text.contains("network-online.target\n"));
    assert!(text.contains("\nEnvironment=\"PATH=/bin\"\n"));
    assert_eq!(
        placement.enable_link(),
        files
            .tmp
            .path()
            .join("default.target.wants")
            .join(&placement.name)
    );
}

#[test]
fn init_script_names_need_no_quoting() {
    let placement = Placement {
        user: false,
        name: unit_name(Path::new("/work/wt-handoff/daemons.d"), false),
        unit_dir: "/etc/systemd/system".into(),
    };
    assert_eq!(placement.script_name(), "dmgr.work-wt_handoff-daemons.d");
    let text = hand_install(
        &placement,
        Path::new("/usr/bin/dmgr"),
        &Dirs {
            config_dir: "/work/wt-handoff/daemons.d".into(),
            run_dir: "/r 1".into(),
            log_dir: "/r 1/log".into(),
        },
        Some("/usr/bin:/b%in"),
    );
    assert!(text.contains("@reboot PATH='/usr/bin:/b\\%in' /usr/bin/dmgr --config-dir /work/wt-handoff/daemons.d --run-dir '/r 1' start --all\n"), "{text}");
    assert!(text.contains("#!/sbin/openrc-run") && text.contains("### BEGIN INIT INFO"));
    assert!(text.contains("rc-update add dmgr.work-wt_handoff-daemons.d default"));
}

/// Issue 24, finding 9 and point 2: the boot unit delegates its cgroup to dmgr, has
/// systemctl reload run `apply`, runs as root's login (HOME, USER), and conflicts with
/// the exported target of the same directory.
#[test]
fn the_unit_delegates_reloads_and_conflicts_with_the_exported_target() {
    let files = crate::export::tests_support::Files::new();
    let placement = Placement::new(&files.dirs.config_dir, false, Some(files.tmp.path())).unwrap();
    let text = unit_text(
        &placement,
        Path::new("/usr/bin/dmgr"),
        &files.dirs,
        &[],
        None,
    );
    let prefix = unit_prefix(&files.dirs.config_dir, false);
    for line in [
        "Delegate=yes".to_string(),
        "User=root".to_string(),
        format!("Conflicts={prefix}.target"),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
    let reload = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecReload="))
        .unwrap();
    assert!(
        reload.starts_with("/usr/bin/dmgr --config-dir ") && reload.ends_with(" apply"),
        "{reload}"
    );
    let user = Placement::new(&files.dirs.config_dir, true, Some(files.tmp.path())).unwrap();
    let text = unit_text(&user, Path::new("/usr/bin/dmgr"), &files.dirs, &[], None);
    assert!(!text.contains("User="), "{text}");
    assert!(text.lines().any(|l| l == "Delegate=yes"));
}

/// `boot status`, `check`, `apply` and `start` read back both timeouts: a daemon
/// added with a long `ready_timeout` makes the installed TimeoutStartSec= stale.
#[test]
fn stale_timeouts_name_the_slow_chain() {
    let files = crate::export::tests_support::Files::new();
    let quick = files.daemon("quick", "command = \"x\"\n");
    let placement = Placement::new(&files.dirs.config_dir, false, Some(files.tmp.path())).unwrap();
    let text = unit_text(
        &placement,
        Path::new("/usr/bin/dmgr"),
        &files.dirs,
        std::slice::from_ref(&quick),
        None,
    );
    std::fs::write(placement.path(), &text).unwrap();
    let installed = parse_installed(&text).unwrap();
    assert_eq!(
        installed.start_timeout,
        Some(start_timeout(std::slice::from_ref(&quick)).0)
    );
    let dir = Some(files.tmp.path());
    assert!(stale_timeouts(&files.dirs.config_dir, dir, std::slice::from_ref(&quick)).is_empty());
    let slow = files.daemon(
        "slow",
        "command = \"x\"\nready = { tcp = \"127.0.0.1:1\" }\nready_timeout = \"150s\"\nstop_timeout = \"90s\"\n",
    );
    let stale = stale_timeouts(&files.dirs.config_dir, dir, &[quick, slow]);
    assert_eq!(stale.len(), 2, "{stale:?}");
    assert!(stale[0].starts_with(&format!("{}: its TimeoutStartSec= (", placement.name)));
    assert!(
        stale[0].contains("(3m 35s 500ms: slow 2m 30s 500ms)"),
        "{}",
        stale[0]
    );
    assert!(stale[1].contains("TimeoutStopSec="), "{}", stale[1]);
}
