//! `dmgr boot install|uninstall|status`: make `start --all` of this config directory
//! run at boot, with a systemd unit named after the directory; where systemd is not the
//! init system, print what to install by hand.

use super::Context;
use crate::boot::{self, Placement};
use crate::cli::{BootArgs, BootChangeArgs, BootCommand};
use crate::config;
use crate::export::write_file;
use crate::{Error, Result};

/// Runs `dmgr boot`.
pub(super) fn run(ctx: &Context, command: &BootCommand) -> Result<u8> {
    match command {
        BootCommand::Install(args) => install(ctx, args),
        BootCommand::Uninstall(args) => uninstall(ctx, args),
        BootCommand::Status(args) => status(ctx, args),
    }
}

fn install(ctx: &Context, args: &BootChangeArgs) -> Result<u8> {
    let scope = &args.scope;
    let placement = Placement::new(&ctx.dirs.config_dir, scope.user, scope.unit_dir.as_deref())?;
    let loaded = config::load(&ctx.dirs)?;
    let binary = boot::this_binary()?;
    if let Some(risk) = boot::upgrade_risk(&binary, scope.user) {
        warn(&format!("{} is in {risk}", binary.display()));
    }
    if !loaded.invalid.is_empty() {
        warn(&format!(
            "{} file(s) in {} fail to load; `start --all` at boot will skip them (`dmgr check` lists the problems)",
            loaded.invalid.len(),
            ctx.dirs.config_dir.display()
        ));
    }
    let path_env = std::env::var("PATH").ok();
    let text = boot::unit_text(
        &placement,
        &binary,
        &ctx.dirs,
        &loaded.daemons,
        path_env.as_deref(),
    );
    let unit = placement.path();
    let systemctl = boot::systemctl();
    let calls = [
        boot::systemctl_args(&placement, &["daemon-reload"]),
        boot::systemctl_args(&placement, &["enable", &placement.name]),
    ];
    let needs_root = !scope.user && scope.unit_dir.is_none() && !nix::unistd::geteuid().is_root();

    if args.dry_run {
        let mut out = format!("would write {}:\n{text}\nwould run:\n", unit.display());
        for call in &calls {
            out.push_str(&format!("  systemctl {}\n", call.join(" ")));
        }
        if needs_root {
            out.push_str(
                "\nnote: a system unit is installed by root: run it with sudo, or use --user\n",
            );
        }
        if systemctl.is_none() {
            out.push_str(&not_systemd_text(
                &placement,
                &binary,
                ctx,
                path_env.as_deref(),
            ));
        }
        crate::output::print_raw(&out)?;
        return Ok(0);
    }
    let Some(systemctl) = systemctl else {
        if scope.unit_dir.is_some() {
            // An image being built (the man page offers --unit-dir for that): no
            // systemd runs here to ask, so the unit is enabled as `systemctl enable`
            // would, by its link in the target's `.wants` directory.
            return install_offline(ctx, &placement, &text);
        }
        crate::output::print_raw(&not_systemd_text(
            &placement,
            &binary,
            ctx,
            path_env.as_deref(),
        ))?;
        return Err(Error::daemon(
            "boot",
            format!(
                "systemd is not the init system here (PID 1 is {}); nothing was installed",
                boot::init_name()
            ),
        ));
    };
    if needs_root {
        return Err(Error::Usage(format!(
            "a system unit runs dmgr as root and is installed by root: run `sudo dmgr -c {} boot install`, or `dmgr boot install --user` for a user unit",
            ctx.dirs.config_dir.display()
        )));
    }
    refuse_foreign(&placement)?;
    if scope.user && scope.unit_dir.is_none() {
        // `systemctl --user` needs the user's manager: without one it fails with
        // "Failed to connect to bus", and the unit would be written but not enabled.
        if let Some(missing) = boot::missing_user_manager() {
            return Err(Error::daemon(
                "boot",
                format!(
                    "no systemd user manager runs for {} ({missing}); nothing was installed\nhint: `loginctl enable-linger {}` starts one now and at every boot; then run `dmgr boot install --user` again",
                    boot::user_name(),
                    boot::user_name()
                ),
            ));
        }
    }
    warn_of_exported_units(&placement);
    std::fs::create_dir_all(&placement.unit_dir).map_err(|source| Error::Io {
        action: "create the unit directory",
        path: placement.unit_dir.clone(),
        source,
    })?;
    let existed = unit.exists();
    write_file(&unit, &text)?;
    for call in &calls {
        if let Err(err) = boot::run_systemctl(&systemctl, call) {
            // A unit that is written but not enabled would look installed: take back
            // one this call wrote.
            let taken_back = !existed && std::fs::remove_file(&unit).is_ok();
            let what = if taken_back {
                format!("{} was not installed", unit.display())
            } else {
                format!("wrote {}, but it is not enabled", unit.display())
            };
            return Err(Error::daemon("boot", format!("{err}; {what}")));
        }
    }
    let user = if scope.user { " --user" } else { "" };
    ctx.say(&format!(
        "{}: installed {} and enabled it: at boot it starts the autostart daemons of {}",
        placement.name,
        unit.display(),
        ctx.dirs.config_dir.display()
    ));
    ctx.say(&format!(
        "hint: `systemctl{user} start {}` now, so that systemd also stops them at this shutdown (daemons already running are left alone)",
        placement.name
    ));
    if scope.user && !boot::is_lingering(&boot::user_name()) {
        ctx.say(&format!(
            "hint: a user manager starts at boot only for a lingering user: `loginctl enable-linger {}`",
            boot::user_name()
        ));
    }
    Ok(0)
}

/// `boot install --unit-dir DIR` where systemd is not running: writes the unit and
/// its enable link (relative, so that it holds wherever DIR is mounted).
fn install_offline(ctx: &Context, placement: &Placement, text: &str) -> Result<u8> {
    refuse_foreign(placement)?;
    let link = placement.enable_link();
    let wants = link.parent().unwrap_or(&placement.unit_dir).to_path_buf();
    std::fs::create_dir_all(&wants).map_err(|source| Error::Io {
        action: "create the unit directory",
        path: wants.clone(),
        source,
    })?;
    write_file(&placement.path(), text)?;
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("../{}", placement.name), &link).map_err(|source| {
        Error::Io {
            action: "create the enable link",
            path: link.clone(),
            source,
        }
    })?;
    ctx.say(&format!(
        "{}: installed {} and enabled it ({}): systemd does not run here, so nothing was reloaded; a system booted with this unit directory starts the autostart daemons of {}",
        placement.name,
        placement.path().display(),
        link.display(),
        ctx.dirs.config_dir.display()
    ));
    Ok(0)
}

fn uninstall(ctx: &Context, args: &BootChangeArgs) -> Result<u8> {
    let scope = &args.scope;
    let placement = Placement::new(&ctx.dirs.config_dir, scope.user, scope.unit_dir.as_deref())?;
    let unit = placement.path();
    if !unit.exists() {
        ctx.say(&format!(
            "{}: not installed ({} does not exist)",
            placement.name,
            unit.display()
        ));
        return Ok(0);
    }
    refuse_foreign(&placement)?;
    let systemctl = boot::systemctl();
    let disable = boot::systemctl_args(&placement, &["disable", &placement.name]);
    let reload = boot::systemctl_args(&placement, &["daemon-reload"]);
    if args.dry_run {
        let mut out = String::new();
        if systemctl.is_some() {
            out.push_str(&format!("would run: systemctl {}\n", disable.join(" ")));
        } else if placement.is_enabled() {
            out.push_str(&format!(
                "would remove {}\n",
                placement.enable_link().display()
            ));
        }
        out.push_str(&format!("would remove {}\n", unit.display()));
        if systemctl.is_some() {
            out.push_str(&format!("would run: systemctl {}\n", reload.join(" ")));
        }
        crate::output::print_raw(&out)?;
        return Ok(0);
    }
    match &systemctl {
        Some(program) => boot::run_systemctl(program, &disable)?,
        // Without a running systemd there is nobody to ask: the link `enable` made
        // goes with the unit.
        None if placement.is_enabled() => remove(&placement.enable_link())?,
        None => {}
    }
    remove(&unit)?;
    if let Some(program) = &systemctl {
        boot::run_systemctl(program, &reload)?;
    }
    ctx.say(&format!(
        "{}: removed {}; the daemons keep running (`dmgr stop --all` stops them)",
        placement.name,
        unit.display()
    ));
    Ok(0)
}

fn status(ctx: &Context, args: &BootArgs) -> Result<u8> {
    let scopes: Vec<bool> = match (args.user, &args.unit_dir) {
        (true, _) => vec![true],
        (false, Some(_)) => vec![false],
        (false, None) => vec![false, true],
    };
    let loaded = config::load(&ctx.dirs)?;
    let mut found = false;
    let mut out = String::new();
    for user in scopes {
        let Ok(placement) = Placement::new(&ctx.dirs.config_dir, user, args.unit_dir.as_deref())
        else {
            continue;
        };
        let kind = if user { "user" } else { "system" };
        let unit = placement.path();
        let Ok(text) = std::fs::read_to_string(&unit) else {
            out.push_str(&format!(
                "{}: no {kind} unit for {} ({} does not exist)\n",
                placement.name,
                ctx.dirs.config_dir.display(),
                unit.display()
            ));
            continue;
        };
        let Some(installed) = boot::parse_installed(&text) else {
            out.push_str(&format!(
                "{}: {} exists but was not written by dmgr\n",
                placement.name,
                unit.display()
            ));
            continue;
        };
        found = true;
        let enabled = if placement.is_enabled() {
            "enabled"
        } else {
            "not enabled"
        };
        out.push_str(&format!(
            "{}: installed ({kind} unit {}), {enabled}\n",
            placement.name,
            unit.display()
        ));
        let shown = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map_or("-".to_string(), |p| p.display().to_string())
        };
        out.push_str(&format!("  config dir: {}\n", shown(&installed.config_dir)));
        out.push_str(&format!(
            "  run dir:    {}\n",
            installed
                .run_dir
                .as_ref()
                .map_or("(found from the config dir)".to_string(), |p| p
                    .display()
                    .to_string())
        ));
        out.push_str(&format!("  binary:     {}\n", shown(&installed.binary)));
        if let Some(binary) = installed.binary.as_ref().filter(|b| !b.exists()) {
            out.push_str(&format!(
                "  warning: {} no longer exists: run `dmgr boot install` again\n",
                binary.display()
            ));
        }
        for stale in boot::stale_timeouts(
            &ctx.dirs.config_dir,
            args.unit_dir.as_deref(),
            &loaded.daemons,
        ) {
            if let Some(why) = stale.strip_prefix(&format!("{}: ", placement.name)) {
                out.push_str(&format!("  warning: {why}\n"));
            }
        }
        for other in others(&placement) {
            out.push_str(&format!(
                "  also in {}: {other}\n",
                placement.unit_dir.display()
            ));
        }
    }
    if !boot::systemd_is_init() {
        out.push_str(&format!(
            "note: systemd is not the init system here (PID 1 is {})\n",
            boot::init_name()
        ));
    }
    crate::output::print_raw(&out)?;
    Ok(if found { 0 } else { 3 })
}

/// Other boot units dmgr wrote into the same directory, each with its config dir.
fn others(placement: &Placement) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(&placement.unit_dir) else {
        return Vec::new();
    };
    let mut found: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let ours =
                name == "dmgr.service" || (name.starts_with("dmgr.") && name.ends_with(".service"));
            if !ours || name == placement.name {
                return None;
            }
            let installed = boot::parse_installed(&std::fs::read_to_string(e.path()).ok()?)?;
            let dir = installed
                .config_dir
                .map_or("-".to_string(), |d| d.display().to_string());
            Some(format!("{name} for {dir}"))
        })
        .collect();
    found.sort();
    found
}

/// Warns when `export systemd` units of the same config directory are installed: with
/// both enabled, systemd runs the daemons under one of the two (`Conflicts=`).
fn warn_of_exported_units(placement: &Placement) {
    let target = format!("{}.target", placement.name.trim_end_matches(".service"));
    let path = placement.unit_dir.join(&target);
    let exported = std::fs::read_to_string(&path)
        .ok()
        .is_some_and(|text| crate::export::systemd::written_from(&text).is_some());
    if exported {
        let user = if placement.user { " --user" } else { "" };
        warn(&format!(
            "{} (from `dmgr export systemd`) runs the same daemons; they conflict with {}, so systemd runs one or the other: `systemctl{user} disable {target}` and remove the exported units to leave them to dmgr",
            path.display(),
            placement.name
        ));
    }
}

/// Refuses to overwrite or remove a unit file that dmgr did not write.
fn refuse_foreign(placement: &Placement) -> Result<()> {
    let unit = placement.path();
    match std::fs::read_to_string(&unit) {
        Ok(text) if boot::parse_installed(&text).is_none() => Err(Error::daemon(
            "boot",
            format!("{} exists and was not written by `dmgr boot install`; remove it yourself or pass --unit-dir", unit.display()),
        )),
        _ => Ok(()),
    }
}

fn remove(path: &std::path::Path) -> Result<()> {
    std::fs::remove_file(path).map_err(|source| Error::Io {
        action: "remove",
        path: path.to_path_buf(),
        source,
    })
}

fn not_systemd_text(
    placement: &Placement,
    binary: &std::path::Path,
    ctx: &Context,
    path_env: Option<&str>,
) -> String {
    format!(
        "\nsystemd is not the init system here (PID 1 is {}): install one of these by hand.\n\n{}",
        boot::init_name(),
        boot::hand_install(placement, binary, &ctx.dirs, path_env)
    )
}

/// A warning on standard error that does not fail the command.
fn warn(message: &str) {
    let style = crate::output::Style::for_stderr();
    eprintln!("{} {message}", style.hint("dmgr: warning:"));
}
