//! The history file: appended one line at a time, compacted to the newest [`BOUND`]
//! lines by the holder of the daemon's pidfile lock, read back whole lines only, and
//! merged across daemons by time (see the parent module for the locking).

use std::borrow::Borrow;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Event, BOUND};

/// The history of one daemon, held by the process that owns compaction (the holder
/// of the daemon's pidfile lock).
#[derive(Debug)]
pub(crate) struct History {
    path: PathBuf,
    file: Option<File>,
    /// Lines in the file, as far as this writer knows.
    lines: usize,
    /// A write failed part-way and the torn line could not be cut off yet.
    torn: bool,
}

impl History {
    /// Opens (creating) the history at `path` and compacts it if it is over the bound.
    /// Never fails: a history that cannot be written loses events, not the daemon.
    pub(crate) fn open(path: &Path) -> History {
        let file = open_append(path).ok();
        let lines = file.as_ref().map_or(0, count_lines);
        let mut history = History {
            path: path.to_path_buf(),
            file,
            lines,
            torn: false,
        };
        history.compact_if_due();
        history
    }

    /// Appends `event`, compacting the file when it passes twice the bound.
    pub(crate) fn append(&mut self, event: &Event) {
        if self.file.is_none() {
            // A previous failure: the disk may have room now.
            self.file = open_append(&self.path).ok();
        }
        let Some(file) = &mut self.file else {
            return;
        };
        if self.torn {
            self.torn = end_at_line(file).is_err();
        }
        let mut line = event.to_line();
        if self.torn {
            // The torn line stays (readers skip it), but this one starts a line.
            line.insert(0, b'\n');
        }
        if file.write_all(&line).is_err() {
            // A full disk, say: cut off what got written, or the next event would be
            // fused with it. A history that cannot be written loses events, never
            // its keeper.
            self.torn = end_at_line(file).is_err();
            self.file = None;
            return;
        }
        self.torn = false;
        self.lines += 1;
        self.compact_if_due();
    }

    fn compact_if_due(&mut self) {
        if self.lines <= 2 * BOUND {
            return;
        }
        if let Some(file) = &self.file {
            if let Ok(kept) = compact(&self.path, file, BOUND) {
                self.lines = kept;
            }
        }
        self.file = open_append(&self.path).ok();
    }
}

/// Appends one event to the history at `path` for a process that does not own it
/// (see the module documentation).
pub(crate) fn append(path: &Path, event: &Event) {
    for _ in 0..10 {
        let Ok(file) = open_append(path) else {
            return;
        };
        if fs2::FileExt::lock_shared(&file).is_err() {
            return;
        }
        // Still the file at the path? A compaction may have replaced it meanwhile.
        let same = match (file.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(held), Ok(now)) => held.ino() == now.ino() && held.dev() == now.dev(),
            _ => false,
        };
        if same {
            if (&file).write_all(&event.to_line()).is_err() {
                let _ = end_at_line(&file);
            }
            return;
        }
    }
}

/// Cuts off an unfinished last line of `file`, left by a write that failed part-way
/// (a full disk), so that the next line appended starts a line of its own. Under an
/// exclusive lock, taken only if no appender holds the file now: it fails rather than
/// wait. Truncating needs no space.
fn end_at_line(file: &File) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    fs2::FileExt::try_lock_exclusive(file)?;
    let result = (|| {
        let len = file.metadata()?.len();
        let mut end = len;
        let mut chunk = [0u8; 512];
        while end > 0 {
            let from = end.saturating_sub(chunk.len() as u64);
            let part = &mut chunk[..(end - from) as usize];
            file.read_exact_at(part, from)?;
            if let Some(last) = part.iter().rposition(|&b| b == b'\n') {
                end = from + last as u64 + 1;
                break;
            }
            end = from;
        }
        if end < len {
            file.set_len(end)?;
        }
        Ok(())
    })();
    let _ = fs2::FileExt::unlock(file);
    result
}

/// Keeps the newest `keep` lines of the history `file` at `path`: copies them into a
/// new file, renamed over the old one under an exclusive lock. Returns how many lines
/// the new file holds.
fn compact(path: &Path, file: &File, keep: usize) -> io::Result<usize> {
    fs2::FileExt::lock_exclusive(file)?;
    let mut reader = BufReader::new(File::open(path)?);
    let total = count_lines(reader.get_ref());
    reader.seek(SeekFrom::Start(0))?;
    let mut skipped = 0;
    let mut line = Vec::new();
    while skipped < total.saturating_sub(keep) {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        skipped += 1;
    }
    let tmp = temporary(path);
    let _ = std::fs::remove_file(&tmp);
    let mut new = crate::files::open_planted_safe(
        OpenOptions::new().write(true).create_new(true).mode(0o644),
        &tmp,
    )?;
    io::copy(&mut reader, &mut new)?;
    std::fs::rename(&tmp, path)?;
    Ok(total - skipped)
}

/// `RUN_DIR/.NAME.events`: beside the history, and like it one of dmgr's own files
/// that no pidfile or log may name.
fn temporary(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    path.with_file_name(name)
}

/// Opens the history for appending, and for reading to count its lines.
fn open_append(path: &Path) -> io::Result<File> {
    crate::files::open_planted_safe(
        OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o644),
        path,
    )
}

/// The lines in `file` from its start, read through a small buffer.
fn count_lines(file: &File) -> usize {
    let mut reader = BufReader::with_capacity(8192, file);
    let _ = reader.seek(SeekFrom::Start(0));
    let mut count = 0;
    loop {
        let buffer = match reader.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(buffer) => buffer,
        };
        count += buffer.iter().filter(|&&b| b == b'\n').count();
        let len = buffer.len();
        reader.consume(len);
    }
    count
}

/// The events in the history at `path` as stored lines and their parsed form,
/// oldest first; lines that do not parse (a line cut by a full disk) are skipped.
pub(crate) fn read(path: &Path) -> Vec<(String, Event)> {
    let Ok((mut file, _)) = crate::files::open_regular(path) else {
        return Vec::new();
    };
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| Some((line.to_string(), serde_json::from_str(line).ok()?)))
        .collect()
}

/// The last `n` events of the histories at `paths`, oldest first: each history in the
/// order it was written, several merged by time (see [`merge`]).
pub(crate) fn merged(paths: &[PathBuf], n: usize) -> Vec<(String, Event)> {
    let mut all = merge(paths.iter().map(|p| read(p)).collect());
    let skip = all.len().saturating_sub(n);
    all.split_off(skip)
}

/// Merges histories, each in the order its events were appended, into one: at each
/// step the earliest of the histories' next events comes first (the first history's
/// on a tie). A history is never reordered: its file order is the order things
/// happened, while its times follow the wall clock, which may be stepped back (an
/// event written after another may carry an earlier time); timestamps are for people
/// and for interleaving daemons, not for ordering one daemon's history.
pub(crate) fn merge<T: Borrow<Event>>(histories: Vec<Vec<(String, T)>>) -> Vec<(String, T)> {
    let total = histories.iter().map(Vec::len).sum();
    let mut merged = Vec::with_capacity(total);
    let mut heads: Vec<std::vec::IntoIter<(String, T)>> =
        histories.into_iter().map(Vec::into_iter).collect();
    let mut next: Vec<Option<(String, T)>> = heads.iter_mut().map(Iterator::next).collect();
    loop {
        let earliest = next
            .iter()
            .enumerate()
            .filter_map(|(index, head)| Some((index, head.as_ref()?.1.borrow().time.as_str())))
            // `min_by` keeps the first of equal elements: ties go to the earlier history.
            .min_by(|a, b| a.1.cmp(b.1))
            .map(|(index, _)| index);
        let Some(index) = earliest else {
            return merged;
        };
        if let Some(event) = std::mem::replace(&mut next[index], heads[index].next()) {
            merged.push(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Kind;

    #[test]
    fn an_event_is_one_json_line_without_empty_keys() {
        let event = Event::now("web", Kind::Exited).pid(42).signal("KILL");
        let line = String::from_utf8(event.to_line()).unwrap();
        assert!(line.ends_with("}\n") && !line[..line.len() - 1].contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["event"], "exited");
        assert_eq!(value["signal"], "KILL");
        assert_eq!(value["daemon"], "web");
        assert!(value.get("exit_code").is_none() && value.get("message").is_none());
        assert_eq!(event.details(), "pid 42, signal KILL");
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back, event);
        assert_eq!(
            serde_json::to_value(Kind::MemoryExceeded).unwrap(),
            Kind::MemoryExceeded.as_str()
        );
    }

    #[test]
    fn the_history_keeps_the_newest_events_in_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.events");
        let mut history = History::open(&path);
        for i in 0..(2 * BOUND + 1) {
            history.append(&Event::now("web", Kind::Started).pid(i as i32));
        }
        let events = read(&path);
        assert_eq!(events.len(), BOUND);
        assert_eq!(events[0].1.pid, Some((BOUND + 1) as i32));
        assert_eq!(events[BOUND - 1].1.pid, Some(2 * BOUND as i32));
        assert!(!temporary(&path).exists());
        // Appends go on into the new file, by this writer and by others.
        history.append(&Event::now("web", Kind::Stopping));
        append(&path, &Event::now("web", Kind::Signalled).signal("HUP"));
        let events = read(&path);
        assert_eq!(events.len(), BOUND + 2);
        assert_eq!(events[BOUND + 1].1.event, Kind::Signalled);
        // A new writer counts what is there.
        assert_eq!(History::open(&path).lines, BOUND + 2);
    }

    /// Issue 22, finding 12: the wall clock stepped back between two events; the
    /// history keeps the order they were written in, and a merge with another daemon
    /// interleaves by time without reordering either.
    #[test]
    fn a_clock_stepped_back_never_reorders_one_history() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.events"), dir.path().join("b.events"));
        let at = |daemon: &str, kind: Kind, time: &str| Event {
            time: time.to_string(),
            ..Event::now(daemon, kind)
        };
        let mut ha = History::open(&a);
        ha.append(&at("a", Kind::Started, "2026-01-01T12:00:00.000Z"));
        // The clock went back an hour here.
        ha.append(&at("a", Kind::Exited, "2026-01-01T11:00:00.000Z"));
        ha.append(&at("a", Kind::Restarting, "2026-01-01T11:00:01.000Z"));
        let mut hb = History::open(&b);
        hb.append(&at("b", Kind::Started, "2026-01-01T11:30:00.000Z"));
        hb.append(&at("b", Kind::Stopped, "2026-01-01T12:30:00.000Z"));
        let kinds = |events: &[(String, Event)]| -> Vec<String> {
            events
                .iter()
                .map(|(_, e)| format!("{} {}", e.daemon, e.event.as_str()))
                .collect()
        };
        assert_eq!(
            kinds(&merged(std::slice::from_ref(&a), 10)),
            ["a started", "a exited", "a restarting"]
        );
        let both = merged(&[a, b], 10);
        assert_eq!(
            kinds(&both),
            [
                "b started",
                "a started",
                "a exited",
                "a restarting",
                "b stopped"
            ]
        );
        assert_eq!(
            kinds(&merge(vec![Vec::new(), Vec::new()])),
            Vec::<String>::new()
        );
    }

    /// Issue 22: on a full disk an event was written part-way, and the next one, once
    /// space returned, was fused with it; now the torn line is cut off first.
    #[test]
    fn a_line_torn_by_a_full_disk_is_cut_off_before_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.events");
        let mut history = History::open(&path);
        history.append(&Event::now("web", Kind::Started).pid(1));
        let torn = b"{\"time\":\"2026-01-01T00:00:00.000Z\",\"daemon\":\"web\",\"ev";
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(torn)
            .unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        end_at_line(&file).unwrap();
        history.append(&Event::now("web", Kind::Stopped));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert_eq!(read(&path).len(), 2);
        // A file that is one torn line is emptied; a whole one is left alone.
        std::fs::write(&path, &torn[..]).unwrap();
        end_at_line(&File::options().write(true).read(true).open(&path).unwrap()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        std::fs::write(&path, b"{}\n").unwrap();
        end_at_line(&File::options().write(true).read(true).open(&path).unwrap()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
    }

    #[test]
    fn histories_merge_by_time_and_keep_the_last_n() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.events"), dir.path().join("b.events"));
        let at = |daemon: &str, time: &str| Event {
            time: time.to_string(),
            ..Event::now(daemon, Kind::Started)
        };
        let mut ha = History::open(&a);
        ha.append(&at("a", "2026-01-01T00:00:01.000Z"));
        ha.append(&at("a", "2026-01-01T00:00:03.000Z"));
        let mut hb = History::open(&b);
        hb.append(&at("b", "2026-01-01T00:00:02.000Z"));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&b)
            .unwrap()
            .write_all(b"{\"cut by a full di")
            .unwrap();
        let merged = merged(&[a, b], 2);
        let order: Vec<&str> = merged.iter().map(|(_, e)| e.daemon.as_str()).collect();
        assert_eq!(order, ["b", "a"]);
    }
}
