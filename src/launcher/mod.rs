//! The launcher: the one fresh process that a `dmgr start` execs to make all the
//! keepers it asks for. It is single-threaded by construction (a fresh
//! exec that starts no thread), so it may fork and let each child run the keeper's
//! ordinary Rust code with no exec of its own: one exec per `start` instead of one per
//! daemon, and every keeper shares the launcher's relocated pages copy-on-write
//! instead of dirtying a copy of its own.
//!
//! Each keeper is detached with the classic double fork, whose middle process stays as
//! the keeper's holder ([`holder`]): the launcher forks the holder, which
//! closes every notify pipe but its own, calls setsid(2), forks the keeper and takes
//! the title `dmgr ... __holder --name NAME ...`; the keeper takes `dmgr ... __keeper
//! --name NAME ...` and runs [`crate::keeper::run`]. A fork that fails is reported on that
//! daemon's pipe, as the keeper would report a failed start. The launcher exits once
//! every holder is made; `dmgr start` reaps it.

pub(crate) mod argv;
pub(crate) mod holder;

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsRawFd;

use crate::keeper::report::{Report, Reporter};
use crate::sys;
use crate::Result;
use argv::{KeeperArgv, LauncherArgv};

/// Runs the launcher of `args`, whose argv\[0\] was `argv0`. Returns in the launcher
/// once every keeper is made, and in each keeper once it is done.
pub(crate) fn run(argv0: OsString, args: LauncherArgv) -> Result<u8> {
    let mut pipes: Vec<(String, Option<File>)> = args
        .keepers
        .iter()
        .map(|(name, fd)| (name.clone(), sys::take_inherited_fd(*fd)))
        .collect();
    let keep: Vec<i32> = pipes
        .iter()
        .filter_map(|(_, pipe)| pipe.as_ref().map(AsRawFd::as_raw_fd))
        .collect();
    sys::close_inherited_fds(&keep);
    let Some(single) = sys::SingleThreaded::check() else {
        for (_, pipe) in pipes {
            let reason = "cannot start a keeper: the launcher runs more than one thread";
            Reporter::new(pipe).send(&Report::Failed {
                reason: reason.into(),
            });
        }
        return Ok(1);
    };
    // What every keeper would look up the same way: looked up once here, and
    // inherited by each fork.
    let _ = crate::procinfo::boot_id();
    let _ = crate::cgroup::own_cgroup_dir();
    let _ = crate::keeper::resources::effective_capabilities();
    // Every keeper's title fits in the first `prefix` bytes of the argument area (the
    // longest name with the widest descriptor number makes the longest title); the
    // rest, which names the other keepers, is blanked once here, in pages every keeper
    // then shares rather than copies.
    let longest = args.keepers.iter().max_by_key(|(name, _)| name.len());
    let widest = args.keepers.iter().map(|&(_, fd)| fd).max();
    let prefix = match (longest, widest) {
        (Some((name, _)), Some(fd)) => title(&argv0, &args, name, fd)
            .iter()
            .map(|word| word.len() + 1)
            .sum(),
        _ => 0,
    };
    let area = sys::ArgumentArea::find();
    if let Some(area) = area {
        area.blank_from(&single, prefix);
    }
    for index in 0..pipes.len() {
        match sys::fork(&single) {
            Ok(sys::Forked::Child) => {
                // This process is the holder of `pipes[index]`'s daemon, and forks its
                // keeper: the other pipes belong to their own keepers. They are
                // closed, but the list is not freed: freeing it would write to (and so
                // copy) every heap page it lies in, pages this keeper otherwise shares
                // with all the others.
                let name = pipes[index].0.clone();
                let pipe = pipes[index].1.take();
                sys::close_all_and_leak(pipes, |(_, other)| other.as_ref());
                let fd = pipe.as_ref().map_or(-1, AsRawFd::as_raw_fd);
                let titles = holder::Titles {
                    area,
                    prefix,
                    keeper: title(&argv0, &args, &name, fd),
                };
                return holder::run(&args.dirs, &name, pipe, single, titles);
            }
            Ok(sys::Forked::Parent(_)) => {
                // The keeper has its own copy; ours would keep `start` from seeing
                // end-of-file should the keeper die without a report. The holder is
                // not waited for: it lives as long as its keeper, and longer.
                pipes[index].1 = None;
            }
            Err(e) => {
                let reason = format!("cannot start a keeper: {e}");
                Reporter::new(pipes[index].1.take()).send(&Report::Failed { reason });
            }
        }
    }
    Ok(0)
}

/// The words ps(1) shows for the keeper of `name` with notify descriptor `fd`.
fn title(argv0: &OsString, args: &LauncherArgv, name: &str, fd: i32) -> Vec<OsString> {
    let keeper = KeeperArgv {
        dirs: args.dirs.clone(),
        name: name.to_string(),
        notify_fd: fd,
    };
    std::iter::once(argv0.clone())
        .chain(keeper.to_args())
        .collect()
}
