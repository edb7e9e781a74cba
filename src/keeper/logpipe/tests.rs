//! The log sink's unit tests: rotation, timestamps, and writes on a full disk.

use super::*;

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn appends_and_never_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    fs::write(&path, "old\n").unwrap();
    let mut sink = LogSink::open(&path, 0, 5, false).unwrap();
    sink.write_output(b"new\n");
    assert_eq!(read(&path), "old\nnew\n");
}

#[test]
fn rotation_keeps_every_line_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    // 9-byte lines, two to a 20-byte file: 40 lines need 20 files, 25 are kept.
    let mut sink = LogSink::open(&path, 20, 25, false).unwrap();
    let mut all = String::new();
    for i in 0..40 {
        let line = format!("line {i:03}\n");
        all.push_str(&line);
        // Feed lines in odd-sized pieces, as a pipe would deliver them.
        let (a, b) = line.as_bytes().split_at(3);
        sink.write_output(a);
        sink.write_output(b);
    }
    let mut seen = String::new();
    for index in (1..=25).rev() {
        let text = read(&numbered(&path, index));
        assert!(text.len() <= 20, "file {index} too big: {text:?}");
        assert!(text.is_empty() || text.ends_with('\n'));
        seen.push_str(&text);
    }
    seen.push_str(&read(&path));
    assert_eq!(seen, all);
}

#[test]
fn rotation_holds_within_one_large_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let mut sink = LogSink::open(&path, 100, 50, false).unwrap();
    let chunk: String = (0..100).map(|i| format!("line {i:04}\n")).collect();
    sink.write_output(chunk.as_bytes());
    for index in 1..=50 {
        let text = read(&numbered(&path, index));
        assert!(text.len() <= 100, "file {index} holds {} bytes", text.len());
    }
    assert!(read(&path).len() <= 100);
}

/// Issue 16: `log_keep = 4294967295` hung the keeper in billions of renames of
/// files that do not exist; rotation touches only those that do.
#[test]
fn rotation_with_a_huge_keep_touches_only_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let mut sink = LogSink::open(&path, 10, u32::MAX, false).unwrap();
    let started = std::time::Instant::now();
    for i in 0..30 {
        sink.write_output(format!("line {i:02}\n").as_bytes());
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(read(&path), "line 29\n");
    assert_eq!(read(&numbered(&path, 1)), "line 28\n");
    assert_eq!(read(&numbered(&path, 29)), "line 00\n");
    assert!(!numbered(&path, 30).exists());
}

#[test]
fn rotation_keeps_only_log_keep_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let mut sink = LogSink::open(&path, 10, 2, false).unwrap();
    for i in 0..10 {
        sink.write_output(format!("line {i}\n").as_bytes());
    }
    assert!(numbered(&path, 2).exists());
    assert!(!numbered(&path, 3).exists());
    assert_eq!(read(&path), "line 9\n");
    assert_eq!(read(&numbered(&path, 1)), "line 8\n");
}

#[test]
fn timestamps_stamp_lines_not_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let mut sink = LogSink::open(&path, 0, 5, true).unwrap();
    sink.write_output(b"hel");
    sink.write_output(b"lo\nwor");
    sink.write_output(b"ld\n");
    let text = read(&path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].ends_with("Z hello"), "{text}");
    assert!(lines[1].ends_with("Z world"), "{text}");
    assert_eq!(lines[0].find('Z'), Some(23));
}

#[test]
fn a_partial_last_line_is_ended_only_to_stamp_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let mut sink = LogSink::open(&path, 0, 5, false).unwrap();
    sink.write_output(b"partial");
    sink.end_run();
    sink.write_output(b" more\n");
    assert_eq!(read(&path), "partial more\n");
    let stamped = dir.path().join("stamped.log");
    let mut sink = LogSink::open(&stamped, 0, 5, true).unwrap();
    sink.write_output(b"partial");
    sink.end_run();
    sink.write_output(b"next\n");
    let text = read(&stamped);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with("Z partial") && lines[1].ends_with("Z next"),
        "{text}"
    );
}

#[test]
fn rotate_waits_for_the_end_of_a_half_written_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let mut sink = LogSink::open(&path, 0, 5, false).unwrap();
    sink.write_output(b"first\nsec");
    sink.rotate();
    assert!(!numbered(&path, 1).exists(), "rotated mid-line");
    sink.write_output(b"ond\nthird\n");
    assert_eq!(read(&numbered(&path, 1)), "first\nsecond\n");
    assert_eq!(read(&path), "third\n");
    sink.rotate();
    assert_eq!(read(&numbered(&path, 1)), "third\n");
    assert_eq!(read(&numbered(&path, 2)), "first\nsecond\n");
}

/// Issue 22: `dmgr rotate` of an empty log renamed it over `NAME.log.1`, pushing
/// the oldest kept file out for an empty one.
#[test]
fn rotating_an_empty_log_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    fs::write(numbered(&path, 1), "newer\n").unwrap();
    fs::write(numbered(&path, 2), "older\n").unwrap();
    let mut sink = LogSink::open(&path, 0, 2, false).unwrap();
    sink.rotate();
    sink.rotate();
    assert_eq!(read(&numbered(&path, 1)), "newer\n");
    assert_eq!(read(&numbered(&path, 2)), "older\n");
    assert!(path.exists() && read(&path).is_empty());
    sink.write_output(b"line\n");
    sink.rotate();
    assert_eq!(read(&numbered(&path, 1)), "line\n");
    assert_eq!(read(&numbered(&path, 2)), "newer\n");
}

#[test]
fn a_line_longer_than_a_file_goes_on_in_the_next_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let mut sink = LogSink::open(&path, 100, 50, false).unwrap();
    let chunk = [b'x'; 40];
    for _ in 0..20 {
        sink.write_output(&chunk);
    }
    sink.write_output(b"\nafter\n");
    let mut files = Vec::new();
    for index in (1..=50).rev() {
        if numbered(&path, index).exists() {
            files.push(read(&numbered(&path, index)));
        }
    }
    files.push(read(&path));
    assert!(files.len() >= 7, "{} files", files.len());
    for text in &files {
        // At most one chunk past the limit.
        assert!(text.len() <= 140, "a file holds {} bytes", text.len());
    }
    assert_eq!(files.concat(), format!("{}\nafter\n", "x".repeat(800)));
}

/// A sink whose file cannot grow past `disk` bytes, as on a disk that is full.
fn full_at(sink: &mut LogSink, disk: Option<u64>) {
    sink.disk = disk;
}

#[test]
fn a_line_torn_by_a_full_disk_is_cut_back_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let mut sink = LogSink::open(&path, 0, 5, false).unwrap();
    full_at(&mut sink, Some(7));
    sink.write_output(b"aaaa\nbbbb\n");
    assert_eq!(read(&path), "aaaa\n", "the torn line is cut back");
    assert!(sink.error().is_some_and(|e| e.contains("No space left")));
    // Still full: a new line that only half fits is dropped whole too.
    sink.write_output(b"cc\n");
    assert_eq!(read(&path), "aaaa\n");
    let failed = sink.take_notices();
    assert!(
        matches!(&failed[..], [Notice::Failed(e)] if e.contains("web.log")),
        "{failed:?}"
    );
    full_at(&mut sink, None);
    sink.write_output(b"dddd\n");
    assert_eq!(read(&path), "aaaa\ndddd\n");
    assert_eq!(sink.error(), None, "the error clears once a write succeeds");
    let resumed = sink.take_notices();
    assert!(
        matches!(&resumed[..], [Notice::Resumed { dropped: 2, error }] if error.contains("No space left")),
        "{resumed:?}"
    );
}

#[test]
fn a_line_written_in_pieces_is_dropped_whole_with_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let mut sink = LogSink::open(&path, 0, 5, false).unwrap();
    sink.write_output(b"first\nhel");
    assert_eq!(read(&path), "first\nhel");
    full_at(&mut sink, Some(9));
    sink.write_output(b"lo\nnext\n");
    assert_eq!(
        read(&path),
        "first\n",
        "the start of the torn line is gone too"
    );
    full_at(&mut sink, None);
    sink.write_output(b"after\n");
    assert_eq!(read(&path), "first\nafter\n");
    assert!(matches!(
        &sink.take_notices()[..],
        [Notice::Failed(_), Notice::Resumed { dropped: 2, .. }]
    ));
}

#[test]
fn the_rest_of_a_dropped_line_is_dropped_as_it_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    let mut sink = LogSink::open(&path, 0, 5, false).unwrap();
    full_at(&mut sink, Some(0));
    sink.write_output(b"abc");
    full_at(&mut sink, None);
    // Space is back, but this is the rest of a line whose start was dropped.
    sink.write_output(b"def\nghi\n");
    assert_eq!(
        read(&path),
        "ghi\n",
        "never a line the daemon did not write"
    );
    let notices = sink.take_notices();
    assert!(
        matches!(
            &notices[..],
            [Notice::Failed(_), Notice::Resumed { dropped: 1, .. }]
        ),
        "{notices:?}"
    );
}

/// Lines fed in random pieces through a disk that fills and frees at random: every
/// line in the files is one the daemon wrote, whole and in order, and the counts in
/// the notices add up to the lines missing.
#[test]
fn through_a_disk_that_fills_and_frees_every_line_is_whole_and_every_gap_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    for (max_size, timestamps) in [(0, false), (4096, false), (0, true), (3000, true)] {
        let _ = fs::remove_dir_all(dir.path());
        fs::create_dir_all(dir.path()).unwrap();
        let mut sink = LogSink::open(&path, max_size, 1000, timestamps).unwrap();
        let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let total = 5000;
        let text: String = (0..total)
            .map(|i| format!("line-{i:06}{}\n", "x".repeat((i * 7 % 50) as usize)))
            .collect();
        let mut data = text.as_bytes();
        let mut dropped = 0;
        while !data.is_empty() {
            if next() % 20 == 0 {
                // Fill the disk a few bytes past what is there, or free it.
                let len = fs::metadata(&path).map_or(0, |m| m.len());
                let disk = (next() % 2 == 0).then(|| len + next() % 40);
                full_at(&mut sink, disk);
            }
            let take = (1 + next() % 200) as usize;
            let (piece, rest) = data.split_at(take.min(data.len()));
            sink.write_output(piece);
            data = rest;
            for notice in sink.take_notices() {
                if let Notice::Resumed { dropped: n, .. } = notice {
                    dropped += n;
                }
            }
        }
        full_at(&mut sink, None);
        sink.write_output(b"end\n");
        for notice in sink.take_notices() {
            if let Notice::Resumed { dropped: n, .. } = notice {
                dropped += n;
            }
        }
        let mut kept = String::new();
        for index in (1..=1000).rev() {
            kept.push_str(&read(&numbered(&path, index)));
        }
        kept.push_str(&read(&path));
        let mut expected = text.lines().map(|l| l.to_string());
        let mut seen = 0;
        for line in kept.lines() {
            let line = match timestamps {
                true => line.split_once(' ').map(|(_, rest)| rest).unwrap_or(line),
                false => line,
            };
            if line == "end" {
                continue;
            }
            assert!(
                expected.any(|e| e == line),
                "{line:?} is not a line the daemon wrote, or out of order (max_size {max_size}, timestamps {timestamps})"
            );
            seen += 1;
        }
        assert!(kept.ends_with("end\n"));
        assert!(dropped > 0, "the disk never filled");
        assert_eq!(
            dropped,
            total - seen,
            "max_size {max_size}, timestamps {timestamps}"
        );
    }
}

/// A holder taking over from its dead keeper goes on with the line the keeper left
/// unfinished: no stamp in the middle of it, and a full disk drops all of it.
#[test]
fn a_sink_opened_to_continue_goes_on_with_the_unfinished_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.log");
    fs::write(
        &path,
        "2026-01-01T00:00:00.000Z whole\n2026-01-01T00:00:01.000Z hal",
    )
    .unwrap();
    let mut sink = LogSink::open_continuing(&path, 0, 5, true).unwrap();
    sink.write_output(b"f\nnext\n");
    let text = read(&path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "2026-01-01T00:00:01.000Z half", "{text}");
    assert!(lines[2].ends_with("Z next"), "{text}");
    fs::write(&path, "whole\nhal").unwrap();
    let mut sink = LogSink::open_continuing(&path, 0, 5, false).unwrap();
    full_at(&mut sink, Some(11));
    sink.write_output(b"f and more\nnext\n");
    assert_eq!(
        read(&path),
        "whole\n",
        "the unfinished line is dropped whole"
    );
}
