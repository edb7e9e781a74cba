//! The launcher's command line, built by `dmgr start` and parsed by the launcher, and
//! the keeper's title, which each keeper shows in ps(1), here in one place. The
//! launcher's is `dmgr --config-dir C --run-dir R __launch --log-dir L` and then
//! `--name N --notify-fd F` for each daemon; a keeper's is `dmgr --config-dir C
//! --run-dir R __keeper --name N --log-dir L --notify-fd F`. Neither is a clap
//! subcommand: nobody types them, clap's command tree would stay resident in every
//! keeper, and `dmgr`'s own start-up (a raised open-file limit) must not reach the
//! daemons.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::config::Dirs;

/// The word that marks a keeper's argv.
const KEEPER: &str = "__keeper";

/// What a keeper is: the title it shows in ps(1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeeperArgv {
    /// The directories of the `dmgr start` that spawned it.
    pub(crate) dirs: Dirs,
    /// The daemon's name: its file is `dirs.config_dir/NAME.toml`.
    pub(crate) name: String,
    /// The write end of the notify pipe.
    pub(crate) notify_fd: RawFd,
}

impl KeeperArgv {
    /// The title's words after argv\[0\].
    pub(crate) fn to_args(&self) -> Vec<OsString> {
        vec![
            "--config-dir".into(),
            self.dirs.config_dir.clone().into(),
            "--run-dir".into(),
            self.dirs.run_dir.clone().into(),
            KEEPER.into(),
            "--name".into(),
            self.name.clone().into(),
            "--log-dir".into(),
            self.dirs.log_dir.clone().into(),
            "--notify-fd".into(),
            self.notify_fd.to_string().into(),
        ]
    }
}

/// The word that marks the launcher's argv.
const LAUNCH: &str = "__launch";

/// What the launcher is started with: the keepers to fork, each a daemon's name and
/// the write end of its notify pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LauncherArgv {
    /// The directories of the `dmgr start` that spawned it.
    pub(crate) dirs: Dirs,
    /// Each daemon to keep, with its notify fd.
    pub(crate) keepers: Vec<(String, RawFd)>,
}

impl LauncherArgv {
    /// The arguments after argv\[0\]: `--config-dir C --run-dir R __launch --log-dir L`
    /// and then `--name N --notify-fd F` for each keeper. For one keeper that is as
    /// long as the keeper's own title ([`KeeperArgv::to_args`]), for more it is
    /// longer: each keeper's title fits in the argument area it inherits.
    pub(crate) fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--config-dir".into(),
            self.dirs.config_dir.clone().into(),
            "--run-dir".into(),
            self.dirs.run_dir.clone().into(),
            LAUNCH.into(),
            "--log-dir".into(),
            self.dirs.log_dir.clone().into(),
        ];
        for (name, fd) in &self.keepers {
            args.extend(["--name".into(), name.into(), "--notify-fd".into()]);
            args.push(fd.to_string().into());
        }
        args
    }

    /// Recognises exactly what [`LauncherArgv::to_args`] builds, after any argv\[0\];
    /// anything else is `None` (and goes to clap as usual).
    pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Option<LauncherArgv> {
        let args: Vec<OsString> = args.into_iter().collect();
        let [_, c, config_dir, r, run_dir, k, l, log_dir, rest @ ..] = &args[..] else {
            return None;
        };
        let flags = [
            (c, "--config-dir"),
            (r, "--run-dir"),
            (k, LAUNCH),
            (l, "--log-dir"),
        ];
        if !flags.iter().all(|(arg, want)| arg.to_str() == Some(want)) {
            return None;
        }
        if rest.is_empty() || rest.len() % 4 != 0 {
            return None;
        }
        let keepers = rest
            .chunks(4)
            .map(|k| match k {
                [n, name, f, fd] if n == "--name" && f == "--notify-fd" => Some((
                    name.to_str()?.to_string(),
                    fd.to_str()?.parse().ok().filter(|fd| *fd > 2)?,
                )),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(LauncherArgv {
            dirs: Dirs {
                config_dir: PathBuf::from(config_dir),
                run_dir: PathBuf::from(run_dir),
                log_dir: PathBuf::from(log_dir),
            },
            keepers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(text: &str) -> Vec<OsString> {
        text.split(' ').map(OsString::from).collect()
    }

    fn dirs() -> Dirs {
        Dirs {
            config_dir: "/c d".into(),
            run_dir: "/r".into(),
            log_dir: "/l".into(),
        }
    }

    #[test]
    fn what_start_builds_the_launcher_parses() {
        let built = LauncherArgv {
            dirs: dirs(),
            keepers: vec![("web".into(), 5), ("db".into(), 7)],
        };
        let args = std::iter::once(OsString::from("dmgr")).chain(built.to_args());
        assert_eq!(LauncherArgv::parse(args), Some(built));
    }

    /// Each keeper's title must fit where the launcher's argv was.
    #[test]
    fn a_keeper_title_is_no_longer_than_the_launcher_argv() {
        let length = |args: Vec<OsString>| args.iter().map(|a| a.len() + 1).sum::<usize>();
        let keeper = KeeperArgv {
            dirs: dirs(),
            name: "web".into(),
            notify_fd: 1234,
        };
        let one = LauncherArgv {
            dirs: dirs(),
            keepers: vec![("web".into(), 1234)],
        };
        assert_eq!(length(keeper.to_args()), length(one.to_args()));
    }

    #[test]
    fn nothing_else_parses() {
        assert_eq!(LauncherArgv::parse(argv("dmgr start web")), None);
        let base = "dmgr --config-dir /c --run-dir /r __launch --log-dir /l";
        assert_eq!(LauncherArgv::parse(argv(base)), None);
        for fd in ["x", "1", "-4"] {
            let args = argv(&format!("{base} --name web --notify-fd {fd}"));
            assert_eq!(LauncherArgv::parse(args), None);
        }
        let cut = argv(&format!("{base} --name web --notify-fd 5 --name db"));
        assert_eq!(LauncherArgv::parse(cut), None);
        let swapped =
            "dmgr --run-dir /c --config-dir /r __launch --log-dir /l --name web --notify-fd 5";
        assert_eq!(LauncherArgv::parse(argv(swapped)), None);
    }
}
