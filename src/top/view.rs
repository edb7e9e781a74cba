//! The screen of `dmgr top`, drawn with ratatui from what the loop holds: a title
//! line, the table (`list`'s columns and CPU %), the selected daemon's last events and
//! last log lines, and a line for messages, the filter being typed or a stop to
//! confirm; `?` draws the keys over it. Below [`MIN_WIDTH`] x [`MIN_HEIGHT`] it says
//! so instead. Everything that came from a file, a record or a daemon's output is
//! escaped, so that none of it can send control sequences to the terminal.

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row as TableRow, Table, TableState,
};
use ratatui::Frame;

use super::app::{App, Mode};
use super::{Detail, Row};
use crate::output::{format_bytes, format_uptime};
use crate::state::Status;
use crate::text::escape;

/// The smallest terminal `top` draws in.
pub(crate) const MIN_WIDTH: u16 = 80;
/// See [`MIN_WIDTH`].
pub(crate) const MIN_HEIGHT: u16 = 24;
/// The most events shown.
pub(crate) const EVENTS_SHOWN: usize = 5;

/// What one frame shows.
pub(crate) struct Screenful<'a> {
    /// The config directory, as shown.
    pub place: &'a str,
    /// Every daemon.
    pub rows: &'a [Row],
    /// The indices of the rows shown (the filter's), in order.
    pub shown: &'a [usize],
    /// The selected one's place in `shown`.
    pub selected: Option<usize>,
    /// The selection, filter, mode and message.
    pub app: &'a App,
    /// The selected daemon's events and log.
    pub detail: &'a Detail,
    /// Whether to colour.
    pub color: bool,
    /// Operations under way, as words.
    pub busy: &'a [String],
}

/// Draws one frame; returns how many rows of the table fit (a page, for PgUp/PgDn).
pub(crate) fn draw(frame: &mut Frame, s: &Screenful, state: &mut TableState) -> usize {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(frame, area);
        return 1;
    }
    let body = area.height - 2;
    let wanted = s.shown.len() as u16 + 1;
    let table_height = wanted.clamp(3, (body - 8).max(3));
    let rest = body - table_height;
    // The events pane takes what its events need (at most EVENTS_SHOWN), the log the
    // rest.
    let events_wanted = s.detail.events.len().clamp(1, EVENTS_SHOWN) as u16 + 1;
    let events_height = events_wanted.min(rest / 2);
    let [top, table, events, log, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(table_height),
        Constraint::Length(events_height),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(title(s), top);
    *state = std::mem::take(state).with_selected(s.selected);
    frame.render_stateful_widget(list(s), table, state);
    frame.render_widget(events_pane(s, events.height), events);
    frame.render_widget(log_pane(s, log.height), log);
    frame.render_widget(footer(s), bottom);
    if s.app.mode == Mode::Help {
        help(frame, area);
    }
    usize::from(table_height.saturating_sub(1)).max(1)
}

fn too_small(frame: &mut Frame, area: Rect) {
    let text = vec![
        Line::from(format!(
            "This terminal is {}x{}; dmgr top needs at least {MIN_WIDTH}x{MIN_HEIGHT}.",
            area.width, area.height
        )),
        Line::from("Enlarge it, or press q to quit."),
    ];
    let middle = Rect {
        y: area.y + area.height / 2,
        height: 2.min(area.height),
        ..area
    };
    frame.render_widget(
        Paragraph::new(text).alignment(Alignment::Center),
        middle.intersection(area),
    );
}

fn title<'a>(s: &Screenful<'a>) -> Paragraph<'a> {
    let mut counts: Vec<(Status, usize)> = Vec::new();
    for row in s.rows {
        match counts
            .iter_mut()
            .find(|(st, _)| *st == row.fact.entry.status)
        {
            Some((_, n)) => *n += 1,
            None => counts.push((row.fact.entry.status, 1)),
        }
    }
    counts.sort_by_key(|(status, _)| Status::ALL.iter().position(|s| s == status));
    let summary: Vec<String> = counts.iter().map(|(st, n)| format!("{n} {st}")).collect();
    let mut line = format!(
        "dmgr top  {}  {} daemon{}: {}",
        s.place,
        s.rows.len(),
        if s.rows.len() == 1 { "" } else { "s" },
        summary.join(", ")
    );
    if !s.app.filter.is_empty() && s.app.mode != Mode::Filter {
        line.push_str(&format!(
            "  [/{}: {} shown]",
            escape(&s.app.filter),
            s.shown.len()
        ));
    }
    Paragraph::new(Line::from(vec![
        Span::styled(line, Style::new().add_modifier(Modifier::BOLD)),
        Span::raw("   ? help"),
    ]))
}

/// The colour of a status word, as `list` paints it (`output::style`).
fn status_color(status: Status) -> Option<Color> {
    match status {
        Status::Running | Status::Done => Some(Color::Green),
        Status::Starting | Status::Stopping | Status::Backoff => Some(Color::Yellow),
        Status::Failed | Status::Invalid => Some(Color::Red),
        Status::Orphaned | Status::Unknown => Some(Color::Magenta),
        Status::Stopped | Status::Waiting => None,
    }
}

fn list<'a>(s: &Screenful<'a>) -> Table<'a> {
    let header = TableRow::new(
        [
            "NAME", "STATUS", "PID", "UPTIME", "RESTARTS", "CPU%", "MEM", "COMMAND",
        ]
        .into_iter()
        .enumerate()
        .map(|(i, h)| right_if((2..=6).contains(&i), h.to_string())),
    )
    .style(Style::new().add_modifier(Modifier::BOLD));
    let now_ms = crate::state::now_ms();
    let rows: Vec<TableRow> = s
        .shown
        .iter()
        .map(|&i| {
            let row = &s.rows[i];
            let e = &row.fact.entry;
            let mut status = Cell::from(row.status.clone());
            if let Some(color) = status_color(e.status).filter(|_| s.color) {
                status = status.style(Style::new().fg(color));
            }
            let command = match (e.status, &e.command, &e.status_text) {
                (Status::Invalid | Status::Unknown, _, _) => e.error.clone().unwrap_or_default(),
                // A notify daemon's own status line says more than its command.
                (_, Some(command), Some(text)) => format!("{text} | {command}"),
                (_, Some(command), None) => command.clone(),
                _ => String::new(),
            };
            TableRow::new(vec![
                Cell::from(escape(&e.name).into_owned()),
                status,
                right(e.pid.map_or("-".into(), |p| p.to_string())),
                right(row.started_ms.map_or("-".into(), |at| {
                    format_uptime(now_ms.saturating_sub(at) / 1000)
                })),
                right(e.restarts.to_string()),
                right(row.cpu.map_or("-".into(), |c| format!("{c:.1}"))),
                right(e.memory_bytes.map_or("-".into(), format_bytes)),
                Cell::from(escape(&command).into_owned()),
            ])
        })
        .collect();
    let width_of = |f: &dyn Fn(&Row) -> usize, least: usize| {
        let most = s.shown.iter().map(|&i| f(&s.rows[i])).max().unwrap_or(0);
        most.clamp(least, 24) as u16
    };
    let name_width = width_of(&|r: &Row| escape(&r.fact.entry.name).chars().count(), 4);
    let status_width = width_of(&|r: &Row| r.status.chars().count(), 6);
    let widths = [
        Constraint::Length(name_width),
        Constraint::Length(status_width),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Fill(1),
    ];
    Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
}

fn right<'a>(text: String) -> Cell<'a> {
    Cell::from(Line::from(text).alignment(Alignment::Right))
}

fn right_if<'a>(is_right: bool, text: String) -> Cell<'a> {
    if is_right {
        right(text)
    } else {
        Cell::from(text)
    }
}

/// `── TEXT ──────`, the line over a pane.
fn rule(text: &str, width: u16) -> Line<'static> {
    let head = format!("── {text} ");
    let fill = usize::from(width).saturating_sub(head.chars().count());
    Line::from(format!("{head}{}", "─".repeat(fill)))
        .style(Style::new().add_modifier(Modifier::DIM))
}

fn events_pane<'a>(s: &Screenful<'a>, height: u16) -> Paragraph<'a> {
    let d = s.detail;
    let Some(name) = &d.name else {
        return Paragraph::new(rule("no daemon selected", u16::MAX));
    };
    let mut lines = vec![rule(&format!("events of {} (UTC)", escape(name)), 200)];
    let room = usize::from(height.saturating_sub(1));
    let skip = d.events.len().saturating_sub(room);
    if d.events.is_empty() {
        lines.push(Line::from("  no events recorded"));
    }
    for event in &d.events[skip..] {
        let time = event.time.get(11..19).unwrap_or(&event.time);
        let details = event.details();
        lines.push(Line::from(vec![
            Span::raw(format!("{time}  ")),
            Span::styled(
                format!("{:<16}", event.event.as_str()),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw(escape(&details).into_owned()),
        ]));
    }
    Paragraph::new(lines)
}

fn log_pane<'a>(s: &Screenful<'a>, height: u16) -> Paragraph<'a> {
    let d = s.detail;
    let Some(log) = &d.log else {
        return Paragraph::new("");
    };
    let mut lines = vec![rule(&format!("log {}", crate::text::show_path(log)), 200)];
    let room = usize::from(height.saturating_sub(1));
    if d.log_lines.is_empty() {
        lines.push(Line::from("  nothing logged yet"));
    }
    let skip = d.log_lines.len().saturating_sub(room);
    lines.extend(
        d.log_lines[skip..]
            .iter()
            .map(|l| Line::from(escape(l).into_owned())),
    );
    Paragraph::new(lines)
}

fn footer<'a>(s: &Screenful<'a>) -> Paragraph<'a> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let line = match &s.app.mode {
        Mode::Filter => Line::from(vec![
            Span::styled(format!("/{}", escape(&s.app.filter)), bold),
            Span::styled(" ", Style::new().add_modifier(Modifier::REVERSED)),
            Span::raw("  filter by name, status or command; Enter keeps it, Esc cancels"),
        ]),
        Mode::Confirm(name) => Line::from(vec![Span::styled(
            format!("Stop {}? y stops it, any other key does not", escape(name)),
            bold,
        )]),
        _ if !s.busy.is_empty() => Line::from(format!("{}...", s.busy.join(", "))),
        _ => match &s.app.message {
            Some(m) if m.is_error && s.color => Line::from(Span::styled(
                escape(&m.text).into_owned(),
                Style::new().fg(Color::Red),
            )),
            Some(m) => Line::from(escape(&m.text).into_owned()),
            None => Line::from(
                "q quit  s start  x stop  r restart  l reload  o rotate  / filter  ? help",
            ),
        },
    };
    Paragraph::new(line)
}

fn help(frame: &mut Frame, area: Rect) {
    let lines: Vec<Line> = [
        "Up/Down, j/k    select a daemon (PgUp/PgDn, Home/End)",
        "s               start the selected daemon",
        "x               stop it (asks first: y stops it)",
        "r               restart it",
        "l               reload it (reload_signal or reload_command)",
        "o               rotate its logs",
        "/               filter by name, status or command",
        "Esc             clear the filter",
        "q, Ctrl-C       quit",
        "",
        "CPU% is of one core, over every process of the daemon;",
        "MEM is the main process's resident memory, as in list.",
        "The screen changes when the run directory, the daemon",
        "files or the selected log do; CPU and MEM every 2 s.",
        "",
        "Any key closes this help.",
    ]
    .into_iter()
    .map(Line::from)
    .collect();
    let width = 64.min(area.width);
    let height = (lines.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(" dmgr top: keys ")),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::json::ListEntry;
    use crate::state::Observed;
    use crate::survey::Fact;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn row(name: &str, status: Status, pid: Option<i32>) -> Row {
        let observed = Observed {
            status,
            record: None,
            keeper: None,
            daemon: None,
            memory_bytes: None,
            stale_pidfile: None,
            reason: None,
            problem: None,
        };
        let mut entry = ListEntry::new(name, None, &observed);
        entry.pid = pid;
        entry.command = Some(format!("{name} --serve"));
        Row {
            status: status.to_string(),
            fact: Fact { entry, observed },
            cpu: pid.map(|_| 12.5),
            started_ms: None,
        }
    }

    fn render(width: u16, height: u16, rows: &[Row], app: &App) -> String {
        let detail = Detail {
            name: Some("api".into()),
            events: Vec::new(),
            log: Some("/run/api.log".into()),
            log_lines: vec!["listening on :80\x1b[2J".into()],
        };
        let shown: Vec<usize> = (0..rows.len()).collect();
        let screenful = Screenful {
            place: "/etc/dmgr/daemons.d",
            rows,
            shown: &shown,
            selected: Some(0),
            app,
            detail: &detail,
            color: false,
            busy: &[],
        };
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        let mut state = TableState::default();
        terminal
            .draw(|frame| {
                draw(frame, &screenful, &mut state);
            })
            .unwrap();
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..height {
            for x in 0..width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    /// At 80x24 every part of the screen is there, and a log line's escape sequence
    /// is shown escaped, never sent.
    #[test]
    fn an_80x24_screen_has_the_table_the_panes_and_the_keys() {
        let rows = [
            row("api", Status::Running, Some(4242)),
            row("db", Status::Failed, None),
        ];
        let screen = render(80, 24, &rows, &App::new());
        let lines: Vec<&str> = screen.lines().collect();
        assert!(
            lines[0].starts_with("dmgr top  /etc/dmgr/daemons.d  2 daemons: 1 running, 1 failed")
        );
        assert!(
            lines[1].starts_with("NAME STATUS      PID UPTIME RESTARTS  CPU%   MEM COMMAND"),
            "{screen}"
        );
        assert!(
            lines[2].starts_with("api  running    4242      -        0  12.5     - api --serve"),
            "{screen}"
        );
        assert!(
            lines[3].starts_with("db   failed        -      -        0     -     - db --serve"),
            "{screen}"
        );
        assert!(screen.contains("── events of api (UTC) ──"), "{screen}");
        assert!(screen.contains("── log /run/api.log ──"), "{screen}");
        assert!(screen.contains("listening on :80\\e[2J"), "{screen}");
        assert!(lines[23].starts_with("q quit  s start  x stop"), "{screen}");
    }

    #[test]
    fn a_smaller_terminal_is_told_what_top_needs() {
        let rows = [row("api", Status::Running, Some(1))];
        for (width, height) in [(79, 24), (80, 23), (40, 10)] {
            let screen = render(width, height, &rows, &App::new());
            assert!(
                screen.contains(&format!(
                    "This terminal is {width}x{height}; dmgr top needs"
                )),
                "{screen}"
            );
            assert!(!screen.contains("NAME"), "{screen}");
        }
    }
}
