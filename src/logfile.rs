//! Reading daemon logs: the last lines of a log, across its rotated files. Writing
//! belongs to the keeper (`keeper::logpipe`).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// How many bytes from the end of a file one read looks at.
const CHUNK: u64 = 64 * 1024;

/// `web.log` and 2 give `web.log.2`.
pub fn rotated(path: &Path, index: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{index}"));
    PathBuf::from(name)
}

/// The last `n` lines of the log at `path`, reaching into `path.1`, `path.2`, ...
/// when the current file holds fewer. Invalid UTF-8 is replaced, not fatal.
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    tail_bytes(path, n)
        .iter()
        .map(|line| String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned())
        .collect()
}

/// The last `n` lines as [`tail`] finds them, as the bytes the daemon wrote, without
/// their newlines.
pub fn tail_bytes(path: &Path, n: usize) -> Vec<Vec<u8>> {
    if n == 0 {
        return Vec::new();
    }
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut index = 0;
    loop {
        let file = if index == 0 {
            path.to_path_buf()
        } else {
            rotated(path, index)
        };
        let Some(mut older) = tail_of_file(&file, n - lines.len()) else {
            break;
        };
        older.append(&mut lines);
        lines = older;
        if lines.len() >= n || index >= 1000 {
            break;
        }
        index += 1;
    }
    lines
}

/// The last `n` lines of one file, reading backwards in chunks; `None` if it does not
/// exist.
fn tail_of_file(path: &Path, n: usize) -> Option<Vec<Vec<u8>>> {
    let (mut file, meta) = crate::files::open_regular(path).ok()?;
    let len = meta.len();
    let mut start = len;
    let mut bytes: Vec<u8> = Vec::new();
    while start > 0 {
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; usize::try_from(start - from).ok()?];
        file.seek(SeekFrom::Start(from)).ok()?;
        file.read_exact(&mut chunk).ok()?;
        chunk.extend_from_slice(&bytes);
        bytes = chunk;
        start = from;
        // n lines need n + 1 newlines before the last (possibly unterminated) line.
        if bytes.iter().filter(|&&b| b == b'\n').count() > n {
            break;
        }
    }
    let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let all: Vec<&[u8]> = if text.is_empty() {
        Vec::new()
    } else {
        text.split(|&b| b == b'\n').collect()
    };
    let skip = all.len().saturating_sub(n);
    // The first line may be cut if we did not read from the file's start.
    let skip = if start > 0 { skip.max(1) } else { skip };
    Some(all[skip..].iter().map(|s| s.to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_reaches_into_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("web.log");
        std::fs::write(rotated(&log, 2), "a\nb\n").unwrap();
        std::fs::write(rotated(&log, 1), "c\nd\n").unwrap();
        std::fs::write(&log, "e\nf").unwrap();
        assert_eq!(tail(&log, 3), ["d", "e", "f"]);
        assert_eq!(tail(&log, 10), ["a", "b", "c", "d", "e", "f"]);
        assert!(tail(&dir.path().join("none.log"), 3).is_empty());
    }

    #[test]
    fn tail_of_a_big_file_reads_only_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("big.log");
        let text: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, text).unwrap();
        assert_eq!(tail(&log, 2), ["line 49998", "line 49999"]);
    }
}
