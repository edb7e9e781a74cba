//! The one table builder (comfy-table), so every table looks alike.

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table};

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
