//! The command-line types of what dmgr hands to the host's own supervisors: `dmgr
//! export` (systemd units, a Nomad job) and `dmgr boot` (the boot unit that runs
//! `apply`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::TargetArgs;

/// The targets of `dmgr export`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write a systemd unit `dmgr-NAME.service` per daemon and a `dmgr.target`.
    ///
    /// The names are those of the default config directory; another directory's units
    /// are `dmgr.ESCAPED-PATH-NAME.service` and `dmgr.ESCAPED-PATH.target`, so that two
    /// directories never collide. The target wants every autostart daemon of the
    /// directory, whichever daemons are exported. Without -o, every file is printed to
    /// standard output under a `==> FILE <==` line. Install the units with
    /// `-o /etc/systemd/system` (or `--user -o ~/.config/systemd/user`), then
    /// `systemctl daemon-reload` and `systemctl enable --now dmgr.target`; they conflict
    /// with the unit of `dmgr boot install`, so the daemons run under one of the two.
    ///
    /// Example: dmgr export systemd web worker -o ./units
    Systemd(ExportSystemdArgs),

    /// Write one Nomad job: a group and a `raw_exec` task per daemon.
    ///
    /// Daemons joined by `after` share a group, the ones others wait for as prestart
    /// sidecars. HCL by default; --json writes the HTTP API's form (`{"Job": {...}}`) for
    /// `nomad job run -json` or `PUT /v1/jobs`.
    ///
    /// Example: dmgr export nomad --all --job web -o web.nomad.hcl
    Nomad(ExportNomadArgs),
}

/// Arguments of `export systemd`.
#[derive(Debug, Args)]
pub struct ExportSystemdArgs {
    /// The daemons to export; --all is every daemon in the config directory.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Write the unit files into DIR (created if missing) instead of standard output.
    /// A file there that `export systemd` did not write, or wrote from another config
    /// directory, is never overwritten: then nothing is written.
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,

    /// Units for a user's systemd manager (`~/.config/systemd/user`): the target is
    /// wanted by `default.target`, and `user` and `group` are left out. A user other
    /// than root exporting into that directory gets these without the option.
    #[arg(long)]
    pub user: bool,
}

/// Arguments of `export nomad`.
#[derive(Debug, Args)]
pub struct ExportNomadArgs {
    /// The daemons to export; --all is every daemon in the config directory.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Write the job into FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Write the HTTP API's JSON instead of HCL.
    #[arg(long)]
    pub json: bool,

    /// The job's name and ID (Nomad refuses an ID with a space in it).
    #[arg(long, value_name = "NAME", default_value = "dmgr", value_parser = job_id)]
    pub job: String,
}

/// A Nomad job ID: not empty, and without the space or NUL that Nomad's
/// `Job.Validate` refuses.
fn job_id(text: &str) -> Result<String, String> {
    if text.is_empty() || text.contains([' ', '\0']) {
        return Err("a Nomad job ID is not empty and has no space in it".into());
    }
    Ok(text.to_string())
}

/// The subcommands of `dmgr boot`.
#[derive(Debug, Subcommand)]
pub enum BootCommand {
    /// Write and enable a systemd unit that runs `start --all` at boot.
    ///
    /// The unit is `dmgr.service` for the default config directory and
    /// `dmgr.ESCAPED-PATH.service` for any other, so several directories never collide.
    /// It names this dmgr binary and the config and run directories by absolute path;
    /// run `boot install` again after moving dmgr or changing `stop_timeout` or `after`.
    ///
    /// Example: sudo dmgr boot install
    Install(BootChangeArgs),

    /// Disable and remove the unit that `boot install` wrote for this config directory.
    ///
    /// The daemons keep running; `dmgr stop --all` stops them.
    ///
    /// Example: dmgr boot uninstall --user
    Uninstall(BootChangeArgs),

    /// Say whether a boot unit is installed and enabled, and for which directories.
    ///
    /// Exits 0 when this config directory has a unit, 3 when it has none.
    ///
    /// Example: dmgr boot status
    Status(BootArgs),
}

/// Arguments of the `boot` subcommands.
#[derive(Debug, Args)]
pub struct BootArgs {
    /// A user unit for the systemd user manager (`~/.config/systemd/user`), started when
    /// the user's manager starts: at boot only with `loginctl enable-linger`.
    #[arg(long)]
    pub user: bool,

    /// Use DIR instead of `/etc/systemd/system` or `~/.config/systemd/user` (for images
    /// being built, and for tests).
    #[arg(long, env = "DMGR_SYSTEMD_UNIT_DIR", value_name = "DIR")]
    pub unit_dir: Option<PathBuf>,
}

/// Arguments of `boot install` and `boot uninstall`.
#[derive(Debug, Args)]
pub struct BootChangeArgs {
    /// Which unit, and where.
    #[command(flatten)]
    pub scope: BootArgs,

    /// Print the unit and the commands that would run, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}
