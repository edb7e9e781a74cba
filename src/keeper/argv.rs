//! The keeper's command line, built by `dmgr start` and parsed by the keeper, here in
//! one place: `dmgr --config-dir C --run-dir R __keeper --name N --log-dir L
//! --notify-fd F`. It is no clap subcommand: nobody types it, clap's command tree
//! would stay resident in every keeper, and `dmgr`'s own start-up (a raised open-file
//! limit) must not reach the daemons.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::config::Dirs;

/// The word that marks a keeper's argv.
const KEEPER: &str = "__keeper";

/// What a keeper is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperArgv {
    /// The directories of the `dmgr start` that spawned it.
    pub dirs: Dirs,
    /// The daemon's name: its file is `dirs.config_dir/NAME.toml`.
    pub name: String,
    /// The write end of the notify pipe.
    pub notify_fd: RawFd,
}

impl KeeperArgv {
    /// The arguments after argv\[0\].
    pub fn to_args(&self) -> Vec<OsString> {
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

    /// Recognises exactly what [`KeeperArgv::to_args`] builds, after any argv\[0\];
    /// anything else is `None` (and goes to clap as usual).
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Option<KeeperArgv> {
        let args: Vec<OsString> = args.into_iter().collect();
        let [_, c, config_dir, r, run_dir, k, n, name, l, log_dir, f, fd] = &args[..] else {
            return None;
        };
        let flags = [
            (c, "--config-dir"),
            (r, "--run-dir"),
            (k, KEEPER),
            (n, "--name"),
            (l, "--log-dir"),
            (f, "--notify-fd"),
        ];
        if !flags.iter().all(|(arg, want)| arg.to_str() == Some(want)) {
            return None;
        }
        Some(KeeperArgv {
            dirs: Dirs {
                config_dir: PathBuf::from(config_dir),
                run_dir: PathBuf::from(run_dir),
                log_dir: PathBuf::from(log_dir),
            },
            name: name.to_str()?.to_string(),
            notify_fd: fd.to_str()?.parse().ok().filter(|fd| *fd > 2)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(text: &str) -> Vec<OsString> {
        text.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn what_start_builds_the_keeper_parses() {
        let built = KeeperArgv {
            dirs: Dirs {
                config_dir: "/c d".into(),
                run_dir: "/r".into(),
                log_dir: "/l".into(),
            },
            name: "web".into(),
            notify_fd: 5,
        };
        let args = std::iter::once(OsString::from("dmgr")).chain(built.to_args());
        assert_eq!(KeeperArgv::parse(args), Some(built));
    }

    #[test]
    fn nothing_else_parses() {
        assert_eq!(KeeperArgv::parse(argv("dmgr start web")), None);
        let bad_fd =
            "dmgr --config-dir /c --run-dir /r __keeper --name web --log-dir /l --notify-fd";
        for fd in ["x", "1", "-4"] {
            assert_eq!(KeeperArgv::parse(argv(&format!("{bad_fd} {fd}"))), None);
        }
        let swapped =
            "dmgr --run-dir /c --config-dir /r __keeper --name web --log-dir /l --notify-fd 5";
        assert_eq!(KeeperArgv::parse(argv(swapped)), None);
    }
}
