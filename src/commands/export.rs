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
            export_systemd(ctx, args, &daemons, &source)
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
    daemons: &[&Daemon],
    source: &Source,
) -> Result<u8> {
    let mut files: Vec<(String, String)> = daemons
        .iter()
        .map(|d| (systemd::unit_name(&d.name), systemd::service(d, source)))
        .collect();
    files.push((
        systemd::TARGET.to_string(),
        systemd::target(daemons, source),
    ));
    let Some(dir) = &args.output else {
        let shown: Vec<String> = files
            .iter()
            .map(|(name, text)| format!("==> {name} <==\n{text}"))
            .collect();
        crate::output::print_raw(&shown.join("\n"))?;
        return Ok(0);
    };
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        action: "create the directory",
        path: dir.clone(),
        source,
    })?;
    for (name, text) in &files {
        let path = dir.join(name);
        write_file(&path, text)?;
        ctx.say(&format!("wrote {}", path.display()));
    }
    Ok(0)
}

fn export_nomad(
    ctx: &Context,
    args: &ExportNomadArgs,
    daemons: &[&Daemon],
    source: &Source,
) -> Result<u8> {
    let job = nomad::job(&args.job, daemons, source);
    // The mappings keep to Nomad's rules; what breaks one is never written.
    let broken = nomad::rules::violations(&job);
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
    match &args.output {
        None => crate::output::print_raw(&text)?,
        Some(path) => {
            write_file(path, &text)?;
            ctx.say(&format!("wrote {}", path.display()));
        }
    }
    Ok(0)
}
