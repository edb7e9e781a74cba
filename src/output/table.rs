//! The one table builder, so every table looks alike: comfy-table's borderless layout,
//! laid out here directly when every cell is one line (issue 30).
//!
//! A table of one-line cells in columns as wide as their widest cell needs no more
//! than the cells' display widths (unicode-width, the crate comfy-table measures
//! with). comfy-table builds it through a `Cell` per cell, each split into lines,
//! measured, aligned and padded as a string of its own, then lines joined and our
//! colouring re-cuts each line: several allocations a cell, for `list` of 500
//! daemons about a tenth of its own time. [`build`] lays out such tables itself,
//! byte for byte as comfy-table does (a unit test compares the two), and hands any
//! other table to comfy-table.

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};
use unicode_width::UnicodeWidthStr;

/// Space between columns.
const GAP: usize = 2;

/// Builds a borderless table with a header row; `right` lists the columns that hold
/// numbers and align right. `paint` may wrap a cell's text in colour: it is called
/// with the column index and the cell's text after the layout is done, so escape codes
/// never count towards a column's width.
pub(crate) fn build(
    header: &[&str],
    rows: Vec<Vec<String>>,
    right: &[usize],
    paint: impl Fn(usize, &str) -> Option<String>,
) -> String {
    match build_plain(header, &rows, right, &paint) {
        Some(table) => table,
        None => build_comfy(header, rows, right, paint),
    }
}

/// The table of one-line cells, every row as long as the header; `None` for any
/// other, which comfy-table lays out.
fn build_plain(
    header: &[&str],
    rows: &[Vec<String>],
    right: &[usize],
    paint: &impl Fn(usize, &str) -> Option<String>,
) -> Option<String> {
    // comfy-table makes every column at least one character wide.
    let mut widths = vec![1usize; header.len()];
    let mut measure = |column: usize, text: &str| {
        if text.contains('\n') {
            return None;
        }
        let width = text.width();
        // comfy-table keeps widths in a u16.
        if width > usize::from(u16::MAX) {
            return None;
        }
        widths[column] = widths[column].max(width);
        Some(width)
    };
    for (column, text) in header.iter().enumerate() {
        measure(column, text)?;
    }
    let mut cell_widths = Vec::with_capacity(rows.len() * header.len());
    for row in rows {
        if row.len() != header.len() {
            return None;
        }
        for (column, text) in row.iter().enumerate() {
            cell_widths.push(measure(column, text)?);
        }
    }
    let line_width: usize = widths.iter().map(|w| w + GAP).sum();
    let mut out = String::with_capacity((rows.len() + 1) * (line_width + 1));
    let mut push_line = |cells: &mut dyn Iterator<Item = (&str, usize)>, painted: bool| {
        let start = out.len();
        for (column, (text, width)) in cells.enumerate() {
            let pad = widths[column] - width;
            let right_aligned = right.contains(&column);
            if right_aligned {
                out.extend(std::iter::repeat_n(' ', pad));
            }
            match painted.then(|| paint(column, text)).flatten() {
                Some(colored) if !text.is_empty() => out.push_str(&colored),
                _ => out.push_str(text),
            }
            if !right_aligned {
                out.extend(std::iter::repeat_n(' ', pad));
            }
            out.extend(std::iter::repeat_n(' ', GAP));
        }
        let kept = out[start..].trim_end().len();
        out.truncate(start + kept);
        out.push('\n');
    };
    let header_widths: Vec<usize> = header.iter().map(|h| h.width()).collect();
    push_line(&mut header.iter().copied().zip(header_widths), false);
    for (row, row_widths) in rows.iter().zip(cell_widths.chunks(header.len().max(1))) {
        push_line(
            &mut row
                .iter()
                .map(String::as_str)
                .zip(row_widths.iter().copied()),
            true,
        );
    }
    Some(out)
}

/// The table as comfy-table lays it out, with multi-line cells and all.
fn build_comfy(
    header: &[&str],
    rows: Vec<Vec<String>>,
    right: &[usize],
    paint: impl Fn(usize, &str) -> Option<String>,
) -> String {
    let mut table = Table::new();
    table
        .load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(Cell::new));
    let row_count = rows.len();
    let cells = rows.clone();
    for row in rows {
        table.add_row(row);
    }
    for &index in right {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, GAP as u16));
    }
    let widths: Vec<usize> = table
        .column_max_content_widths()
        .into_iter()
        .map(usize::from)
        .collect();
    let lines: Vec<String> = table.lines().collect();
    // A cell spread over several lines would break the line-to-row mapping; such a
    // table is printed as it is, uncoloured.
    let can_paint = lines.len() == row_count + 1;
    let mut out = String::new();
    for (index, line) in lines.iter().enumerate() {
        let painted = match index.checked_sub(1).and_then(|row| cells.get(row)) {
            Some(row) if can_paint => paint_line(line, row, &widths, &paint),
            _ => line.clone(),
        };
        out.push_str(painted.trim_end());
        out.push('\n');
    }
    out
}

/// Rebuilds one laid-out line with each cell that `paint` colours replaced in place:
/// the cell's text keeps its position and the padding around it.
fn paint_line(
    line: &str,
    row: &[String],
    widths: &[usize],
    paint: &impl Fn(usize, &str) -> Option<String>,
) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut start = 0;
    for (column, width) in widths.iter().enumerate() {
        let end = (start + width + GAP).min(chars.len());
        let slot: String = chars[start.min(end)..end].iter().collect();
        let text = row.get(column).map_or("", String::as_str);
        match paint(column, text) {
            Some(colored) if !text.is_empty() && slot.contains(text) => {
                out.push_str(&slot.replacen(text, &colored, 1));
            }
            _ => out.push_str(&slot),
        }
        start = end;
    }
    out.extend(chars.get(start..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table of one-line cells comes out byte for byte as comfy-table lays it
    /// out, painted or not: numbers aligned right, wide and combining characters,
    /// empty cells and columns, trailing blanks trimmed.
    #[test]
    fn plain_layout_matches_comfy_table() {
        let header = ["NAME", "STATUS", "PID", "UPTIME", "COMMAND"];
        let cases: Vec<Vec<Vec<String>>> = vec![
            vec![],
            vec![vec!["a", "running", "12", "3s", "sleep 100"]],
            vec![
                vec![
                    "web",
                    "running",
                    "1234567",
                    "2h 3m",
                    "nginx -g 'daemon off;'",
                ],
                vec!["x", "failed (exit 1)", "-", "-", ""],
                vec!["日本語", "stopped", "-", "-", "café e\u{301} 🦀"],
                vec!["", "", "", "", ""],
                vec![
                    "long-name-of-a-daemon@10",
                    "starting",
                    "9",
                    "0s",
                    "  spaced  ",
                ],
            ],
        ]
        .into_iter()
        .map(|rows| {
            rows.into_iter()
                .map(|row| row.into_iter().map(String::from).collect())
                .collect()
        })
        .collect();
        let red =
            |column: usize, text: &str| (column == 1).then(|| format!("\x1b[31m{text}\x1b[0m"));
        for rows in cases {
            for right in [&[][..], &[2, 3][..], &[0, 4][..]] {
                let plain = build_plain(&header, &rows, right, &|_, _| None);
                let comfy = build_comfy(&header, rows.clone(), right, |_, _| None);
                assert_eq!(plain.as_deref(), Some(comfy.as_str()), "{rows:?} {right:?}");
                // Painted, the same text; comfy-table's re-cutting of each line by
                // characters missed cells after a wide character (`日本語` above),
                // which the direct layout paints too.
                let painted = build_plain(&header, &rows, right, &red).unwrap();
                assert_eq!(strip_escapes(&painted), comfy, "{rows:?} {right:?}");
                for row in rows.iter().filter(|row| !row[1].is_empty()) {
                    assert!(painted.contains(&red(1, &row[1]).unwrap()), "{painted}");
                }
                if rows.iter().flatten().all(|cell| cell.is_ascii()) {
                    let comfy = build_comfy(&header, rows.clone(), right, red);
                    assert_eq!(painted, comfy, "{rows:?} {right:?}");
                }
            }
        }
        let multi_line = vec![vec!["a\nb".to_string(); 5]];
        assert!(build_plain(&header, &multi_line, &[], &|_, _| None).is_none());
        assert!(build(&header, multi_line, &[], |_, _| None).contains('b'));
    }

    fn strip_escapes(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn painted_cells_keep_the_columns_of_the_plain_table() {
        let rows = vec![
            vec!["a".into(), "running".into(), "12".into(), "x".into()],
            vec![
                "bbbbbb".into(),
                "failed (exit 1)".into(),
                "3".into(),
                "y".into(),
            ],
        ];
        let plain = build(&["N", "STATUS", "PID", "C"], rows.clone(), &[2], |_, _| {
            None
        });
        let painted = build(&["N", "STATUS", "PID", "C"], rows, &[2], |column, text| {
            (column == 1).then(|| format!("\x1b[31m{text}\x1b[0m"))
        });
        assert_ne!(plain, painted);
        assert_eq!(strip_escapes(&painted), plain);
        assert!(painted.contains("\x1b[31mfailed (exit 1)\x1b[0m"));
        assert!(!painted.lines().next().unwrap().contains('\x1b'));
    }
}
