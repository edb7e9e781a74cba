//! `dmgr metrics --textfile PATH`: the exposition written for node_exporter's textfile
//! collector, which reads every `*.prom` file of its directory at each scrape. The
//! file is replaced atomically: written whole to a hidden temporary file in the same
//! directory (a name the collector skips), flushed to disk, renamed over `PATH`, and
//! the directory flushed, so a reader sees the old file or the new one, never half of
//! one, even across a crash.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Replaces `path` with `text`, atomically.
pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    let file_name = path.file_name().ok_or_else(|| {
        Error::Usage(format!(
            "--textfile {}: name a file, such as /var/lib/node_exporter/textfile/dmgr.prom",
            crate::text::show_path(path)
        ))
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = dir.join(temp_name);
    // A leftover of a killed run with this PID goes first; create_new then refuses
    // anything planted at the name meanwhile (a symlink included).
    let _ = std::fs::remove_file(&temp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&temp)
        .map_err(io("create a temporary file in", &dir))?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write", &temp))
        .and_then(|()| std::fs::rename(&temp, path).map_err(io("replace", path)));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(err);
    }
    // The rename itself reaches the disk with the directory.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io("flush the directory", &dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_and_no_temporary_file_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dmgr.prom");
        write(&path, "a 1\n").unwrap();
        write(&path, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["dmgr.prom"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(&dir.path().join("no/dmgr.prom"), "a 1\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot create a temporary file in")
                && err.to_string().contains("/no"),
            "{err}"
        );
    }
}
