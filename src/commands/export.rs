//! `dmgr export systemd|nomad [NAME... | --all]`: the daemons' definitions written for
//! systemd or Nomad. `--all` is every daemon in the config directory (`autostart` is
//! mapped, not filtered on); a file that fails to load stops the export, so a partial
//! set is never written as if it were whole.

use super::{resolve, Context};
use crate::cli::{ExportCommand, ExportNomadArgs, ExportSystemdArgs, TargetArgs};
use crate::config::{self, Daemon, Loaded};
use crate::export::{nomad, systemd, write_file, Source};
use crate::{Error, Result};

/// Runs `dmgr export`.
pub(super) fn run(ctx: &Context, command: &ExportCommand) -> Result<u8> {
    let loaded = config::load(&ctx.dirs)?;
    let source = Source::new(&ctx.dirs);
    match command {
        ExportCommand::Systemd(args) => {
            let daemons = select(ctx, &loaded, &args.target)?;
            export_systemd(ctx, args, &loaded, &daemons)
        }
        ExportCommand::Nomad(args) => {
            let daemons = select(ctx, &loaded, &args.target)?;
            export_nomad(ctx, args, &daemons, &source)
        }
    }
}

/// The daemons named, or with --all every daemon, refusing any file that is invalid.
fn select<'a>(ctx: &Context, loaded: &'a Loaded, target: &TargetArgs) -> Result<Vec<&'a Daemon>> {
    if !target.all {
        return resolve(ctx, loaded, &target.names);
    }
    if !loaded.invalid.is_empty() {
        return Err(Error::Config {
            diagnostics: loaded
                .invalid
                .iter()
                .flat_map(|i| i.diagnostics.iter().cloned())
                .collect(),
        });
    }
    Ok(loaded.daemons.iter().collect())
}

fn export_systemd(
    ctx: &Context,
    args: &ExportSystemdArgs,
    loaded: &Loaded,
    daemons: &[&Daemon],
) -> Result<u8> {
    let mut source = Source::new(&ctx.dirs);
    // Units written into a user's own unit directory are the user manager's, --user
    // or not (issue 24: a user export wanted multi-user.target and never started).
    let user_dir = systemd_unit_dir(true).ok();
    let into_user_dir = |dir: &std::path::Path| {
        user_dir
            .as_deref()
            .is_some_and(|u| std::path::absolute(dir).is_ok_and(|d| d == u))
    };
    source.user = args.user
        || (!nix::unistd::geteuid().is_root() && args.output.as_deref().is_some_and(into_user_dir));
    source.unit_dir = match &args.output {
        Some(dir) => std::path::absolute(dir).map_err(|source| Error::Io {
            action: "find",
            path: dir.clone(),
            source,
        })?,
        None => systemd_unit_dir(args.user)?,
    };
    // The target wants every autostart daemon of the directory, exported now or not.
    let all: Vec<&Daemon> = loaded.daemons.iter().collect();
    if !loaded.invalid.is_empty() {
        warn(&format!(
            "{} file(s) fail to load; the target leaves them out (`dmgr check` lists the problems)",
            loaded.invalid.len()
        ));
    }
    let files = systemd::files(daemons, &all, &source);
    warn_of_boot_unit(&source);
    let Some(dir) = &args.output else {
        let shown: Vec<String> = files
            .iter()
            .map(|f| format!("==> {} <==\n{}", f.name, f.text))
            .collect();
        crate::output::print_raw(&shown.join("\n"))?;
        return Ok(0);
    };
    // Nothing is written unless every file may be: one dmgr did not write, or wrote
    // for another config directory, stays as it is.
    for file in &files {
        refuse_foreign(&source, &dir.join(&file.name))?;
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        action: "create the directory",
        path: dir.clone(),
        source,
    })?;
    for file in &files {
        let path = dir.join(&file.name);
        write_file(&path, &file.text)?;
        ctx.say(&format!("wrote {}", path.display()));
    }
    Ok(0)
}

/// The directory units are installed in by default: the system's, or the user's
/// (`${XDG_CONFIG_HOME:-~/.config}/systemd/user`).
fn systemd_unit_dir(user: bool) -> Result<std::path::PathBuf> {
    if !user {
        return Ok(crate::export::SYSTEM_UNIT_DIR.into());
    }
    crate::boot::Placement::new(std::path::Path::new("/"), true, None).map(|p| p.unit_dir)
}

/// Refuses to overwrite `path` unless `export systemd` wrote it from this config
/// directory (or it is the template every directory shares).
fn refuse_foreign(source: &Source, path: &std::path::Path) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let config_dir = &source.dirs.config_dir;
    match systemd::written_from(&text) {
        None => Err(Error::daemon(
            "export",
            format!(
                "{} exists and was not written by `dmgr export systemd`; nothing was written: move it away, or export into another directory with -o",
                path.display()
            ),
        )),
        Some(Some(from)) if from != *config_dir && from.parent() != Some(config_dir.as_path()) => {
            Err(Error::daemon(
                "export",
                format!(
                    "{} was written from {}, another config directory; nothing was written: export into another directory with -o",
                    path.display(),
                    from.display()
                ),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// Warns when the boot unit of this config directory is installed: it runs the same
/// daemons, and with both enabled systemd starts only one of them (`Conflicts=`).
fn warn_of_boot_unit(source: &Source) {
    let Ok(placement) = crate::boot::Placement::new(&source.dirs.config_dir, source.user, None)
    else {
        return;
    };
    let unit = placement.path();
    let ours = std::fs::read_to_string(&unit)
        .ok()
        .and_then(|text| crate::boot::parse_installed(&text));
    if ours.is_none() {
        return;
    }
    let enabled = if placement.is_enabled() {
        "enabled"
    } else {
        "not enabled"
    };
    warn(&format!(
        "{} ({enabled}) runs these daemons at boot with dmgr; the exported units conflict with it, so systemd runs one or the other: `dmgr boot uninstall{}` before enabling {}",
        unit.display(),
        if source.user { " --user" } else { "" },
        systemd::Names::of(source).target()
    ));
}

/// A warning on standard error that does not fail the command.
fn warn(message: &str) {
    let style = crate::output::Style::for_stderr();
    eprintln!("{} {message}", style.hint("dmgr: warning:"));
}

fn export_nomad(
    ctx: &Context,
    args: &ExportNomadArgs,
    daemons: &[&Daemon],
    source: &Source,
) -> Result<u8> {
    // A daemon with `schedule` is a periodic batch job of its own, beside the one
    // service job of the rest.
    let jobs = nomad::jobs(&args.job, daemons, source);
    let mut texts = Vec::new();
    for job in &jobs {
        // The mappings keep to Nomad's rules; what breaks one is never written.
        let broken = nomad::rules::violations(job);
        if !broken.is_empty() {
            return Err(Error::daemon(
                "export",
                format!(
                    "the job would fail Nomad's validation:\n{}",
                    broken.join("\n")
                ),
            ));
        }
        let text = if args.json {
            // JSON holds no comments: what Nomad cannot express goes to standard error.
            if !ctx.quiet {
                for (task, lost) in job.lost() {
                    eprintln!("dmgr: note: {task}: {}", lost.line());
                }
            }
            let mut text = serde_json::to_string_pretty(&job.to_json()).unwrap_or_default();
            text.push('\n');
            text
        } else {
            job.to_hcl()
        };
        texts.push((job.name.clone(), text));
    }
    match &args.output {
        None => {
            let all: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
            crate::output::print_raw(&all.join("\n"))?
        }
        Some(path) => {
            // The first job is FILE; each periodic job a file of its own beside it,
            // named after the job (Nomad reads one job a file).
            for (at, (name, text)) in texts.iter().enumerate() {
                let target = match at {
                    0 => path.clone(),
                    _ => path.with_file_name(format!(
                        "{name}.nomad.{}",
                        if args.json { "json" } else { "hcl" }
                    )),
                };
                write_file(&target, text)?;
                ctx.say(&format!("wrote {}", target.display()));
            }
        }
    }
    Ok(0)
}
