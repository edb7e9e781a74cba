//! Every command-line type: the clap derive structs that are also the help text and
//! the source of `man/dmgr.1`. Nothing here acts; `commands/` does.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod host;

pub use host::{
    BootArgs, BootChangeArgs, BootCommand, ExportCommand, ExportNomadArgs, ExportSystemdArgs,
};

/// Run and look after long-running commands, one TOML file per daemon.
///
/// dmgr reads every `*.toml` file in a config directory (`daemons.d`) and starts each
/// daemon under a small keeper process of its own, which holds a lock on the daemon's
/// pidfile, writes its log, restarts it by policy and stops it on request. dmgr itself
/// keeps no state: every call reads `daemons.d` and the pidfiles afresh.
#[derive(Debug, Parser)]
#[command(
    name = "dmgr",
    version,
    propagate_version = true,
    after_help = "Example: dmgr start web && dmgr list",
    max_term_width = 100
)]
pub struct Cli {
    /// Read daemon definitions from DIR instead of the first of `./daemons.d`,
    /// `/etc/dmgr/daemons.d` (root) or `~/.config/dmgr/daemons.d`.
    #[arg(
        short = 'c',
        long,
        global = true,
        env = "DMGR_CONFIG_DIR",
        value_name = "DIR"
    )]
    pub config_dir: Option<PathBuf>,

    /// Keep pidfiles, keeper state and default logs in DIR. A run directory belongs
    /// to the config directory that first started a daemon there; another config
    /// directory is refused (see FILES).
    #[arg(long, global = true, env = "DMGR_RUN_DIR", value_name = "DIR")]
    pub run_dir: Option<PathBuf>,

    /// When to colour output: `auto` (the default) colours only a terminal, and a
    /// non-empty `NO_COLOR` in the environment turns that off; `always` and `never`
    /// override both. `list` and `status` show running in green, starting, stopping
    /// and backoff in yellow, failed and invalid in red and orphaned and unknown in
    /// magenta.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Print nothing on success; errors still go to standard error.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// When to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when standard output is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start daemons and wait until each is up.
    ///
    /// Returns once each command has been exec'd, has stayed up `start_wait` and has
    /// passed its `ready` check. Starting a running daemon succeeds and changes nothing.
    /// Where `NOTIFY_SOCKET` is set (a `Type=notify` unit such as the one `boot
    /// install` writes), `start --all` then sends `READY=1` and a `STATUS=` line to it,
    /// as sd_notify(3) does, and waits up to 5 s for the manager to take them in.
    ///
    /// Example: dmgr start web worker
    Start(StartArgs),

    /// Stop daemons and wait until every process of each is gone.
    ///
    /// Runs `stop_command` if there is one, sends `stop_signal` to the daemon's process
    /// group and to every other process it started (also those that left its session),
    /// then SIGKILL after `stop_timeout`. Stopping a stopped daemon succeeds, and `apply`
    /// leaves a stopped daemon stopped from then on. With --all, every running daemon
    /// is stopped, including orphans whose file was removed.
    ///
    /// Example: dmgr stop --all
    Stop(TargetArgs),

    /// Stop then start daemons, always with their files as they are now.
    ///
    /// The name of a daemon with `instances` means every copy; `NAME@N` is one. With
    /// --rolling, one daemon at a time: each is stopped, started and ready (its
    /// `start_wait` and `ready` check passed) before the next is stopped, so that of
    /// the copies of a daemon at most one is down at any moment; the first that fails
    /// to come back ends the restart (exit 1) and leaves the rest running as they were.
    /// A daemon with `sockets` is restarted by its running keeper, which holds its
    /// sockets open throughout: with `restart_mode = "start-first"` the new generation
    /// starts beside the old one, which gets `stop_signal` once the new one is ready; a
    /// new one that fails is stopped and the old one keeps serving (exit 1, event
    /// `rollback`). With `restart_mode = "stop-first"` the old one is stopped first and
    /// the new one started at once, while connections wait in the kernel's queue; restart
    /// prints the new PID once it is ready. If the old generation ends while the new one
    /// starts, the new one carries on alone: restart answers as soon as it is ready (exit
    /// 0), or, if it fails, with the restart policy's verdict (exit 1). A change only a
    /// new keeper can take (`sockets`, `log`, `stderr_log`, `watchdog`, `type`, the
    /// `user` or `group` of unix sockets) replaces the keeper, which closes the sockets
    /// for the restart; restart says so. `apply` restarts a changed daemon the same way.
    ///
    /// Example: dmgr restart web --rolling
    Restart(RestartArgs),

    /// Send each daemon its `reload_signal` (default HUP), or run its `reload_command`.
    ///
    /// The daemon's keeper does it and answers: `reload_command` runs in the daemon's
    /// tree, with its environment and `MAINPID` set, and its output goes to the daemon's
    /// log; a failure (a non-zero exit, or still running at `stop_timeout`) fails the
    /// reload (exit 1) with the command's last output lines. A `type = "notify"` daemon
    /// gives its own verdict: reload waits for its RELOADING=1, then READY=1 (exit 0)
    /// or ERRNO= (exit 1), within `ready_timeout`; one that says nothing within 2 s
    /// reloads silently, and the signal sent is the answer. With --all, every running
    /// daemon is reloaded and the stopped ones are skipped.
    ///
    /// Example: dmgr reload web
    Reload(TargetArgs),

    /// Send a signal to daemons' main processes.
    ///
    /// Example: dmgr kill -s USR1 web
    Kill(KillArgs),

    /// Show every daemon in a table: defined, orphaned and invalid ones.
    ///
    /// With names, only those daemons (an unknown name is an error, exit 2).
    ///
    /// A daemon whose state record cannot be used (a symlink, a hard link, torn or
    /// edited, another daemon's) is `unknown`, with the reason in the COMMAND column
    /// and in `error`: dmgr says it cannot tell rather than guess `stopped`. Its PID
    /// is shown where the dmgr process holding its pidfile lock has it as a child.
    ///
    /// Example: dmgr list --json | jq '.[] | select(.status != "running")'
    List(ListArgs),

    /// Show the details and last log lines of daemons; of every daemon without a name.
    ///
    /// Exit status follows LSB: 0 running, 1 dead but a pidfile or failure record
    /// remains, 3 not running, 4 no such daemon or (LSB's "status unknown") one whose
    /// state record cannot be used and that is not seen running; with several
    /// daemons, the highest.
    ///
    /// Example: dmgr status web -n 20
    Status(StatusArgs),

    /// Print the last lines of daemons' logs, and follow them with -f.
    ///
    /// With several daemons (or --all, every daemon with a file or a record), each
    /// line starts with the daemon's name.
    ///
    /// Example: dmgr logs -f web worker
    Logs(LogsArgs),

    /// Print what the keepers saw happen to daemons: starts, exits, restarts, stops.
    ///
    /// Each keeper records its daemon's events in `RUN_DIR/NAME.events`, one JSON object
    /// a line, keeping at least the newest 1000; the daemon's log holds only what the
    /// daemon wrote. Without names, every daemon's events are shown, oldest first: each
    /// daemon's in the order its keeper recorded them (a wall clock stepped back never
    /// reorders them), several daemons' interleaved by time. Each line is the time, the
    /// daemon, the event and its details.
    ///
    /// Example: dmgr events web -n 50
    Events(EventsArgs),

    /// Print every daemon's state as Prometheus metrics (text exposition format 0.0.4).
    ///
    /// Metrics: `dmgr_daemon_up`, `dmgr_daemon_ready`, `dmgr_daemon_restarts_total`,
    /// `dmgr_daemon_start_time_seconds`, `dmgr_daemon_memory_bytes`,
    /// `dmgr_daemon_memory_max_bytes`, `dmgr_daemon_cpu_seconds_total`,
    /// `dmgr_daemon_last_exit_code`, `dmgr_daemon_health_failures` and
    /// `dmgr_daemon_info` (with the labels `status` and `type`), each labelled by
    /// `daemon`. A fact that does not apply is left out: a stopped daemon has no memory
    /// or CPU sample, a daemon without `health` no health failures. Memory and CPU
    /// count every process of the daemon (its cgroup where its keeper made one); see
    /// METRICS below for alert rules and a daemon definition that serves them.
    ///
    /// Example: dmgr metrics --textfile /var/lib/prometheus/node-exporter/dmgr.prom
    Metrics(MetricsArgs),

    /// Show every daemon on a full screen that follows what happens, with keys to act.
    ///
    /// The screen has a title line (the config directory and how many daemons are in
    /// each status), the table of `list` with a CPU% column (of one core, over every
    /// process of the daemon: its cgroup where its keeper made one, else every
    /// descendant of its keeper), the selected daemon's last events (times in UTC) and
    /// the last lines of its log, and a bottom line for messages. Keys: Up/Down or j/k
    /// select a daemon (PgUp, PgDn, Home, End too); `s` starts it, `x` stops it after
    /// asking (`y` confirms), `r` restarts it, `l` reloads it, `o` rotates its logs, each
    /// by running `dmgr start|stop|restart|reload|rotate NAME` while the screen goes on;
    /// `/` filters by name, status or command (Enter keeps the filter, Esc cancels, Esc
    /// again clears it); `?` shows the keys; `q` or Ctrl-C quits.
    ///
    /// The screen changes as soon as the run directory, the daemon files or the
    /// selected log do (inotify); otherwise only CPU, MEM and UPTIME are refreshed,
    /// every 2 seconds while a daemon runs, so an idle screen costs next to nothing.
    /// Colours are those of `list` (`--color`, `NO_COLOR`). It needs a terminal of at
    /// least 80x24, and says so in a smaller one. The terminal is restored however
    /// `top` ends: `q`, SIGTERM, SIGHUP, SIGINT, or a panic.
    ///
    /// Example: dmgr top
    Top,

    /// Rotate daemons' logs now, restarting nothing.
    ///
    /// The keeper rotates at once, or at the end of the line the daemon is writing, so
    /// no line is split; an empty log is left as it is. For cron or a logrotate
    /// postrotate hook.
    ///
    /// Example: dmgr rotate --all
    Rotate(TargetArgs),

    /// Check every file in the config directory and print every problem.
    ///
    /// Problems are printed as `FILE:LINE:COL: message`; the exit status is 2 when
    /// there is any. Warnings do not fail the check: among them, a `user` or `group`
    /// that does not exist on this host and a `command`, `stop_command` or
    /// `reload_command` whose program is not found (in the `PATH` a start from here
    /// would use), which `start` would fail on here though the file is valid.
    ///
    /// Example: dmgr check
    Check,

    /// Make the running daemons match the config directory.
    ///
    /// Starts new autostart daemons and those not running though nobody stopped them,
    /// restarts those whose process-affecting keys changed, hands changed supervision
    /// keys to running keepers without a restart, and stops orphans. A daemon stopped
    /// with `dmgr stop` is left stopped, and the plan says so.
    ///
    /// Example: dmgr apply --dry-run
    Apply(ApplyArgs),

    /// Run one daemon in the foreground, without a keeper, logging to the terminal.
    ///
    /// Refuses while the daemon runs. While it runs, it holds the daemon's pidfile lock
    /// and state record as a keeper would: `list` shows it, `start` starts no second
    /// copy, `stop` stops it. Exits with the command's exit status (128 + N when killed
    /// by signal N). A `type = "forking"` daemon is supervised as a keeper would: once
    /// its command exits 0, `run` waits for the process its pidfile names (or the one it
    /// left), forwards signals to it and exits as it does; its output reaches the
    /// terminal only where the daemon still writes there (for logs on the terminal,
    /// run it in the foreground instead: nginx -g 'daemon off;', redis-server
    /// --daemonize no).
    ///
    /// Example: dmgr run web
    Run(RunArgs),

    /// Print a shell completion script.
    ///
    /// Example: dmgr completions bash > ~/.local/share/bash-completion/completions/dmgr
    Completions(CompletionsArgs),

    /// Write the daemons' definitions for systemd or Nomad, so nothing is described twice.
    ///
    /// `export systemd` writes one `dmgr-NAME.service` per daemon and a `dmgr.target` that
    /// wants the autostart ones; `export nomad` writes one job with a `raw_exec` task per
    /// daemon. What the other side cannot express is written as a comment naming the key.
    ///
    /// Example: dmgr export systemd --all -o /etc/systemd/system
    #[command(subcommand)]
    Export(ExportCommand),

    /// Run `dmgr start --all` of this config directory at boot, and `stop --all` at shutdown.
    ///
    /// `boot install` writes and enables a systemd unit that runs this dmgr binary on this
    /// config and run directory; where systemd is not the init system it prints what to
    /// install by hand instead.
    ///
    /// Example: sudo dmgr boot install --dry-run
    #[command(subcommand)]
    Boot(BootCommand),
}

/// Names of daemons, or --all (one of the two, which the usage line shows).
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// Daemon names (file stems in the config directory; a daemon with `instances`
    /// means every copy, `NAME@N` one).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// Every daemon this command applies to.
    #[arg(long)]
    pub all: bool,
}

/// Arguments of `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The daemons to start.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Arguments of `restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// The daemons to restart.
    #[command(flatten)]
    pub target: TargetArgs,

    /// One at a time, each ready before the next is stopped.
    #[arg(long)]
    pub rolling: bool,
}

/// One or more daemon names.
#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Daemon names (file stems in the config directory).
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

/// Arguments of `kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal by name (TERM, SIGTERM) or number (15).
    #[arg(short, long, value_name = "SIG", default_value = "TERM")]
    pub signal: String,

    /// The daemons to signal.
    #[command(flatten)]
    pub names: NamesArgs,
}

/// Arguments of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Show only these daemons (every daemon when none is named).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// Print a JSON array of objects with stable keys instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The daemons to describe; every daemon when none is named.
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// Every daemon, as with no name.
    #[arg(long, conflicts_with = "names")]
    pub all: bool,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,

    /// How many log lines to show.
    #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
    pub lines: usize,
}

/// Arguments of `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The daemons whose logs to print; --all is every daemon with a log.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Keep printing new lines as they are written, across rotation and restarts.
    #[arg(short, long)]
    pub follow: bool,

    /// How many lines to print first.
    #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
    pub lines: usize,

    /// Print the `stderr_log` file instead, for daemons that have one (others write
    /// standard error to their `log`).
    #[arg(long)]
    pub stderr: bool,

    /// Print the lines exactly as the daemon wrote them, control characters and
    /// invalid UTF-8 included. This is the default when standard output is not a
    /// terminal; on a terminal, control characters are shown escaped (`\e[31m`),
    /// since a daemon's output must not drive the terminal.
    ///
    /// Example: dmgr logs --raw web | less -R
    #[arg(long)]
    pub raw: bool,
}

/// Arguments of `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The daemons whose events to print; every daemon when none is named.
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,

    /// How many events to print first (the newest N, oldest first).
    #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
    pub lines: usize,

    /// Keep printing new events as they are recorded, until interrupted.
    #[arg(short, long)]
    pub follow: bool,

    /// Print the events as they are stored: one JSON object a line, with the keys
    /// `time`, `daemon`, `event` and, where they apply, `pid`, `exit_code`, `signal`,
    /// `delay_ms` and `message`.
    ///
    /// Example: dmgr events web --json | jq -r 'select(.event == "exited") | .time'
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Write the metrics to PATH for node_exporter's textfile collector, atomically (a
    /// temporary file in the same directory, flushed, renamed over PATH), and exit.
    /// Run it from cron or a loop; node_exporter reads `*.prom` files.
    #[arg(long, value_name = "PATH", conflicts_with = "serve")]
    pub textfile: Option<PathBuf>,

    /// Serve the metrics over HTTP at `http://ADDR/metrics` until killed, one request
    /// at a time, made afresh for each request. Any other path is answered 404; a
    /// request head longer than 8 KiB, or not received within 5 s, is refused.
    ///
    /// Example: dmgr metrics --serve 127.0.0.1:9101
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<String>,
}

/// Arguments of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The daemon to run in the foreground.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to print a completion script for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_lines_show_names_or_all() {
        let mut cli = Cli::command();
        for name in ["start", "stop", "restart", "reload", "rotate", "logs"] {
            let usage = cli
                .find_subcommand_mut(name)
                .unwrap()
                .render_usage()
                .to_string();
            assert!(usage.contains("<NAME|--all>"), "{name}: {usage}");
        }
    }

    #[test]
    fn stop_needs_names_or_all_but_not_both() {
        assert!(Cli::try_parse_from(["dmgr", "stop"]).is_err());
        assert!(Cli::try_parse_from(["dmgr", "stop", "--all", "web"]).is_err());
        assert!(Cli::try_parse_from(["dmgr", "stop", "--all"]).is_ok());
        assert!(Cli::try_parse_from(["dmgr", "stop", "web", "db"]).is_ok());
    }
}
