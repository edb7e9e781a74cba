//! Reads of small files in as few system calls as possible. `dmgr list` reads a daemon
//! file, a state record and a `/proc` entry per daemon on every call, so open + read +
//! close instead of std's open + statx + read + read + close matters at hundreds of
//! daemons.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The usual size of what dmgr reads: a daemon file, a state record, a `/proc` stat.
const TYPICAL: usize = 4096;

/// Reads all of `file`, which is expected to be small, with one `read` when it fits in
/// `hint` bytes (for `/proc` files, whose size is not known in advance).
pub(crate) fn read_to_end(mut file: &File, hint: usize) -> io::Result<Vec<u8>> {
    let mut buffer = vec![0u8; hint.max(64)];
    let mut filled = 0;
    loop {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled < buffer.len() {
                    // A short read of a regular or /proc file means end of file: the
                    // kernel fills the buffer as far as the data goes.
                    break;
                }
                buffer.resize(buffer.len() * 2, 0);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buffer.truncate(filled);
    Ok(buffer)
}

/// Opens and reads a small file. The open does not block on a FIFO planted at `path`
/// (see [`open_regular`]), and a read of one returns nothing or fails at once: no
/// type check is needed, which saves a system call per file in `dmgr list`.
pub(crate) fn read(path: &Path) -> io::Result<Vec<u8>> {
    read_to_end(&open_nonblocking(path)?, TYPICAL)
}

/// Opens `path` for reading only if it is a regular file, and returns its metadata
/// too. A FIFO planted where dmgr expects a daemon file or a log would otherwise block
/// the reader forever in `open`; with `O_NONBLOCK` the open returns at once and the
/// type check refuses it.
pub(crate) fn open_regular(path: &Path) -> io::Result<(File, std::fs::Metadata)> {
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other(NOT_REGULAR));
    }
    Ok((file, meta))
}

/// Opens `path` read-only with `O_NONBLOCK`, which changes nothing on a regular file.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// The effective user ID of this process, asked of the kernel once.
pub(crate) fn euid() -> u32 {
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *EUID.get_or_init(|| nix::unistd::geteuid().as_raw())
}

/// The soft `RLIMIT_NOFILE` this process was started with, before [`raise_fd_limit`].
static ORIGINAL_NOFILE: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

/// Raises the soft limit on open files to the hard limit: `start --all` and
/// `stop --all` hold a few descriptors per daemon at once. Keepers get the original
/// limit back before they exec (see [`original_fd_limit`]), so daemons inherit the
/// caller's limit, not ours.
pub(crate) fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let _ = ORIGINAL_NOFILE.set((soft, hard));
    if soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// The `(soft, hard)` open-file limit the caller gave us, if it was raised.
pub(crate) fn original_fd_limit() -> Option<(u64, u64)> {
    ORIGINAL_NOFILE.get().copied()
}

/// How many daemons a batch may handle at once, each holding up to three
/// descriptors, within the open-file limit.
pub(crate) fn batch_size() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    usize::try_from(soft.saturating_sub(64) / 3)
        .unwrap_or(usize::MAX)
        .max(16)
}

/// Opens a file dmgr writes (a pidfile, a state record, a log) with `options`, safely
/// in a directory someone else might have planted things in: a symlink is refused
/// (`O_NOFOLLOW`), and so is anything but a regular file (`O_NONBLOCK` keeps a FIFO
/// from blocking the open; on a regular file it changes nothing).
pub(crate) fn open_planted_safe(
    options: &mut std::fs::OpenOptions,
    path: &Path,
) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| match err.raw_os_error() {
            Some(libc::ELOOP) => io::Error::other(SYMLINK_REFUSED),
            Some(libc::ENXIO) => io::Error::other(NOT_REGULAR),
            _ => err,
        })?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(NOT_REGULAR));
    }
    Ok(file)
}

/// Why a file that is not a regular one is refused.
pub(crate) const NOT_REGULAR: &str = "it is not a regular file; remove it";

/// Why a symlink where dmgr opens a file is refused.
pub(crate) const SYMLINK_REFUSED: &str = "it is a symlink, which dmgr refuses to follow";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whole_files_of_any_size() {
        let dir = tempfile::tempdir().unwrap();
        for size in [0, 1, 63, 64, 4095, 4096, 4097, 100_000] {
            let path = dir.path().join(format!("f{size}"));
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            assert_eq!(read(&path).unwrap(), data, "size {size}");
        }
        let stat = read(Path::new("/proc/self/stat")).unwrap();
        assert!(stat.ends_with(b"\n"));
    }
}
