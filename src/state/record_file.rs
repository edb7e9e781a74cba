//! The state record on disk: written whole or not at all, read without trusting it.
//!
//! A writer (the keeper, or `stop` of a daemon whose keeper is gone, each holding the
//! daemon's pidfile lock) writes the record to a temporary file in the run directory,
//! fsyncs it, swaps it with `NAME.state` in one step (renameat2's `RENAME_EXCHANGE`,
//! or a rename over it where there is none yet) and fsyncs the directory, all
//! relative to the run directory's descriptor (see [`crate::trusted_dir`]), as systemd
//! writes its state files (`write_string_file_atomic`, then `fsync_directory_of_file`).
//! The swap keeps the previous record as the next write's temporary file, rewritten in
//! place: a rename over a file frees an inode on each write and makes one on the next,
//! which on ext4 made `start --all` and `stop --all` of 50 daemons take twice as long
//! again; the swap costs a quarter more than the in-place rewrite of before. A write
//! that fails, on a full disk for instance, leaves the previous record as it was and
//! removes the temporary file (issue 22, finding 3).
//!
//! A reader opens the record with `O_NOFOLLOW` and never concludes anything from one
//! it cannot use: a symlink, a file with other hard links, one that is not a regular
//! file, one that does not parse or whose checksum fails, or the record of another
//! daemon is [`Reading::Unknown`] with the reason (findings 6 and 7), and `list`
//! shows the daemon as `unknown` rather than stopped. The checksum that ends each
//! record still tells a torn read, which only a keeper of an older dmgr, rewriting
//! its record in place, can cause; such a read is retried.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::OFlag;

use super::StateRecord;
use crate::trusted_dir::{LastLink, TrustedDir};

/// What reading a daemon's state record found.
#[derive(Debug, Clone)]
pub enum Reading {
    /// There is no record.
    Absent,
    /// A whole record of this daemon.
    Record(Box<StateRecord>),
    /// A record that cannot be used, and why (a sentence about "its state record").
    Unknown(String),
}

impl Reading {
    /// The record, if there is a usable one.
    pub fn record(self) -> Option<StateRecord> {
        match self {
            Reading::Record(record) => Some(*record),
            Reading::Absent | Reading::Unknown(_) => None,
        }
    }
}

/// Reads a state record; `None` when there is none or it cannot be used (see
/// [`read_checked`]). The daemon's name is the file's stem.
pub fn read(path: &Path) -> Option<StateRecord> {
    let name = path.file_stem()?.to_str()?;
    read_checked(path, name).record()
}

/// Reads the state record of the daemon `name` at `path`, checking that the file is
/// its own: not a symlink (it is opened with `O_NOFOLLOW`), a regular file with no
/// other hard link, whole (its checksum), and naming `name`.
pub fn read_checked(path: &Path, name: &str) -> Reading {
    read_with(path, name, decode)
}

/// Reads the state record of `name` as [`read_checked`] does, checks and all, but
/// decodes only what `list` shows (see [`super::brief`]): the record's `process`
/// holds only its log paths, its `supervision` is the default and its `history` is
/// empty. For `list` alone, which shows none of those.
pub fn read_brief(path: &Path, name: &str) -> Reading {
    read_with(path, name, decode_brief)
}

/// [`decode`] into the brief record of [`read_brief`].
pub(super) fn decode_brief(bytes: &[u8]) -> Decoded {
    // The record's summary where it has a whole one; else its JSON, as before.
    if let Some(record) = super::summary::decode(bytes) {
        return Decoded::Record(Box::new(record));
    }
    let Some(end) = whole(bytes) else {
        return Decoded::Torn;
    };
    match serde_json::from_slice::<super::brief::Brief>(&bytes[..end]) {
        Ok(brief) => Decoded::Record(Box::new(brief.into())),
        Err(e) => Decoded::Invalid(e.to_string()),
    }
}

/// [`read_checked`] with `decode` as the decoder of the file's bytes.
fn read_with(path: &Path, name: &str, decode: impl Fn(&[u8]) -> Decoded) -> Reading {
    for _ in 0..100 {
        let file =
            match crate::files::open_planted_safe(std::fs::OpenOptions::new().read(true), path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Reading::Absent,
                Err(e) => return Reading::Unknown(format!("cannot be read: {}", os_reason(&e))),
            };
        let links = file.metadata().map_or(1, |m| m.nlink());
        if links != 1 {
            return Reading::Unknown(format!(
                "has {links} hard links, so it may be another file's"
            ));
        }
        let bytes = match crate::files::read_to_end(&file, 4096) {
            Ok(bytes) => bytes,
            Err(e) => return Reading::Unknown(format!("cannot be read: {}", os_reason(&e))),
        };
        match decode(&bytes) {
            Decoded::Record(record) if record.name == name => return Reading::Record(record),
            Decoded::Record(record) => {
                return Reading::Unknown(format!(
                    "is the record of another daemon, `{}`",
                    crate::text::escape(&record.name)
                ))
            }
            Decoded::Torn => std::thread::yield_now(),
            Decoded::Invalid(why) => {
                return Reading::Unknown(format!("does not parse ({why})"));
            }
        }
    }
    Reading::Unknown("is not whole: its checksum does not match (truncated or edited?)".into())
}

/// What [`decode`] made of a file's bytes.
pub(super) enum Decoded {
    Record(Box<StateRecord>),
    Torn,
    Invalid(String),
}

/// The record is one JSON object whose last key, `sum`, is a checksum of every byte
/// before it: `{...,"sum":"0123456789abcdef"}`. The sequence `,"sum":"` cannot occur
/// earlier (a quote inside a JSON string is escaped, and no record field is named
/// `sum`). Anything after the object is the tail of a longer, older record not yet
/// truncated away (records of an older dmgr were rewritten in place).
pub(super) fn decode(bytes: &[u8]) -> Decoded {
    let Some(end) = whole(bytes) else {
        return Decoded::Torn;
    };
    // The object as it stands, `sum` and all: the record's fields ignore unknown keys.
    match serde_json::from_slice(&bytes[..end]) {
        Ok(record) => Decoded::Record(Box::new(record)),
        Err(e) => Decoded::Invalid(e.to_string()),
    }
}

/// Where the whole record in `bytes` ends (after its `"sum":"..."}`), if its checksum
/// matches; `None` for a torn or edited record (see [`decode`]).
fn whole(bytes: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b",\"sum\":\"";
    // The key, the 16 digits, then `"}`.
    const TAIL: usize = KEY.len() + 16 + 2;
    let checked = |at: usize| {
        let (body, rest) = bytes.split_at(at);
        let sum = rest.get(KEY.len()..KEY.len() + 16)?;
        let ok = sum == format!("{:016x}", fnv1a(body)).as_bytes()
            && rest.get(KEY.len() + 16..TAIL) == Some(b"\"}".as_slice());
        ok.then_some(at + TAIL)
    };
    // Most reads find the record alone in the file, its key a fixed distance from the
    // end; a file with an older record's tail after it is searched from the start.
    let at_end = bytes
        .trim_ascii_end()
        .len()
        .checked_sub(TAIL)
        .filter(|&at| bytes[at..].starts_with(KEY));
    at_end.and_then(checked).or_else(|| {
        let at = bytes.windows(KEY.len()).position(|w| w == KEY)?;
        checked(at)
    })
}

pub(super) fn encode(record: &StateRecord) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(record).map_err(io::Error::other)?;
    // The summary that `list` reads first (issue 30).
    let mut bytes = super::summary::prepend(record, body);
    bytes.pop(); // the closing brace; `sum` goes before it
    let sum = fnv1a(&bytes);
    bytes.extend_from_slice(format!(",\"sum\":\"{sum:016x}\"}}\n").as_bytes());
    Ok(bytes)
}

/// FNV-1a, 64 bits: enough to tell a torn or edited record from a whole one.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where one daemon's record is written: the run directory, held open, and the
/// record's name in it.
#[derive(Debug)]
pub struct StateFile {
    dir: TrustedDir,
    name: OsString,
    temporary: OsString,
}

impl StateFile {
    /// Opens the run directory that holds the record at `path` (creating it, and
    /// checking it as `TrustedDir::open` does). Nothing is written yet.
    pub fn open(path: &Path) -> io::Result<StateFile> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io::Error::other("a state record's path names no file"));
        };
        let dir = TrustedDir::open(dir, true, LastLink::Refuse)
            .map_err(|e| io::Error::other(e.to_string()))?;
        // Hidden, so `recorded_names` never takes it for a daemon's record.
        let mut temporary = OsString::from(".");
        temporary.push(name);
        temporary.push(".tmp");
        Ok(StateFile {
            dir,
            name: name.to_os_string(),
            temporary,
        })
    }

    /// Replaces the record, whole or not at all: on an error the previous record is
    /// still in place.
    pub fn write(&mut self, record: &StateRecord) -> io::Result<()> {
        let bytes = encode(record)?;
        let result = self.write_temporary(&bytes).and_then(|()| {
            // Swapped with the record (renameat2's RENAME_EXCHANGE) rather than
            // renamed over it: on ext4 a rename over a file frees an inode and the
            // next write makes one, which costs several times the write itself; the
            // previous record becomes the next write's temporary file. Where there is
            // no record yet, or the file system cannot swap, a plain rename.
            match self.dir.exchange(&self.temporary, &self.name) {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINVAL)) => {
                    self.dir.rename(&self.temporary, &self.name)?
                }
                Err(e) => return Err(e),
            }
            // Durable once the directory is: a failure here loses no record, the new
            // one or the old one is there.
            let _ = self.dir.sync();
            Ok(())
        });
        if result.is_err() {
            let _ = self.dir.remove(&self.temporary);
        }
        result
    }

    /// Writes `bytes` into the temporary file, whole and on disk. The file is the
    /// previous record, rewritten in place where it is a regular file with no other
    /// link (what a swap brought there may be what someone planted at the record's
    /// name: a symlink, a FIFO, a hard link to another file), made anew otherwise.
    /// Writers hold the daemon's pidfile lock, so no other one is writing it.
    fn write_temporary(&self, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let flags = OFlag::O_RDWR | OFlag::O_CREAT;
        let reused = self
            .dir
            .open_file(&self.temporary, flags, 0o644)
            .ok()
            .filter(|file| file.metadata().is_ok_and(|m| m.nlink() == 1));
        let file = match reused {
            Some(file) => file,
            None => {
                let _ = self.dir.remove(&self.temporary);
                self.dir
                    .open_file(&self.temporary, flags | OFlag::O_EXCL, 0o644)?
            }
        };
        file.write_all_at(bytes, 0)?;
        file.set_len(bytes.len() as u64)?;
        file.sync_data()
    }

    /// Removes the record (one that could not be used, once nothing of its daemon is
    /// left).
    pub fn remove(&self) -> io::Result<()> {
        self.dir.remove(&self.name)
    }

    /// The record's file name.
    pub fn name(&self) -> &OsStr {
        &self.name
    }
}

/// Writes a state record (for `stop` of a daemon whose keeper is gone).
pub fn write(path: &Path, record: &StateRecord) -> io::Result<()> {
    StateFile::open(path)?.write(record)
}

/// The OS reason without Rust's " (os error N)" suffix.
fn os_reason(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => err.to_string(),
    }
}
