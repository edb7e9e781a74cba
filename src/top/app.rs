//! What `dmgr top` is showing and what a key does to it: the selection (kept by
//! name, so it stays on its daemon as the list changes), the filter, the mode (help,
//! a filter being typed, a stop awaiting confirmation) and the last message. Pure: a
//! key goes in, the state changes and a [`Todo`] comes out for the loop to carry out;
//! the tests below drive it with no terminal.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// An operation on the selected daemon, carried out as `dmgr VERB NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    /// `s`
    Start,
    /// `x`, once confirmed
    Stop,
    /// `r`
    Restart,
    /// `l`
    Reload,
    /// `o`
    Rotate,
}

impl Verb {
    /// The subcommand.
    pub(crate) fn command(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Reload => "reload",
            Verb::Rotate => "rotate",
        }
    }

    /// The word for it under way.
    pub(crate) fn doing(self) -> &'static str {
        match self {
            Verb::Start => "starting",
            Verb::Stop => "stopping",
            Verb::Restart => "restarting",
            Verb::Reload => "reloading",
            Verb::Rotate => "rotating the logs of",
        }
    }
}

/// What the screen is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The list, keys act.
    Normal,
    /// `/` was typed: keys edit the filter.
    Filter,
    /// `x` on this daemon: `y` stops it, anything else does not.
    Confirm(String),
    /// `?`: the help is shown over the list.
    Help,
}

/// What the loop must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Todo {
    /// Draw again (the state changed).
    Redraw,
    /// Draw again, following the newly selected daemon's log and events.
    Select,
    /// Run `dmgr VERB NAME`.
    Act(Verb, String),
    /// Leave.
    Quit,
}

/// A line for the bottom of the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// The text.
    pub text: String,
    /// Whether it reports a failure.
    pub is_error: bool,
}

/// The state of the screen.
#[derive(Debug, Clone)]
pub(crate) struct App {
    /// What keys do now.
    pub mode: Mode,
    /// Only daemons whose name, status or command contain this (ignoring case).
    pub filter: String,
    /// The filter before `/`, restored by Esc.
    filter_before: String,
    /// The selected daemon's name.
    pub selected: Option<String>,
    /// The last message.
    pub message: Option<Message>,
}

impl App {
    /// Nothing selected, no filter.
    pub(crate) fn new() -> App {
        App {
            mode: Mode::Normal,
            filter: String::new(),
            filter_before: String::new(),
            selected: None,
            message: None,
        }
    }

    /// Returns true if and only if a daemon with these words passes the filter.
    pub(crate) fn shows(&self, words: &[&str]) -> bool {
        let filter = self.filter.to_lowercase();
        filter.is_empty() || words.iter().any(|w| w.to_lowercase().contains(&filter))
    }

    /// The index of the selected daemon in `names` (the rows shown), selecting the
    /// first when the selected one is not among them.
    pub(crate) fn selected_index(&mut self, names: &[&str]) -> Option<usize> {
        let at = self
            .selected
            .as_deref()
            .and_then(|s| names.iter().position(|n| *n == s));
        match (at, names.first()) {
            (Some(at), _) => Some(at),
            (None, Some(first)) => {
                self.selected = Some(first.to_string());
                Some(0)
            }
            (None, None) => {
                self.selected = None;
                None
            }
        }
    }

    /// Handles a key; `names` are the rows shown, `page` how many fit on the screen.
    pub(crate) fn on_key(&mut self, key: KeyEvent, names: &[&str], page: usize) -> Option<Todo> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Some(Todo::Quit);
        }
        match self.mode.clone() {
            Mode::Help => {
                self.mode = Mode::Normal;
                Some(Todo::Redraw)
            }
            Mode::Confirm(name) => {
                self.mode = Mode::Normal;
                if matches!(key.code, KeyCode::Char('y' | 'Y')) {
                    Some(Todo::Act(Verb::Stop, name))
                } else {
                    self.say(format!("{name}: not stopped"), false);
                    Some(Todo::Redraw)
                }
            }
            Mode::Filter => self.on_filter_key(key),
            Mode::Normal => self.on_normal_key(key, names, page),
        }
    }

    fn on_filter_key(&mut self, key: KeyEvent) -> Option<Todo> {
        match key.code {
            KeyCode::Enter => self.mode = Mode::Normal,
            KeyCode::Esc => {
                self.filter = std::mem::take(&mut self.filter_before);
                self.mode = Mode::Normal;
            }
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char(c) if !c.is_control() => self.filter.push(c),
            _ => return None,
        }
        Some(Todo::Select)
    }

    fn on_normal_key(&mut self, key: KeyEvent, names: &[&str], page: usize) -> Option<Todo> {
        let at = self.selected_index(names);
        let last = names.len().saturating_sub(1);
        let step = page.max(1);
        let move_to = |to: usize| names.get(to.min(last)).map(|n| n.to_string());
        let target = match key.code {
            KeyCode::Up | KeyCode::Char('k') => at.map(|i| i.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => at.map(|i| i + 1),
            KeyCode::PageUp => at.map(|i| i.saturating_sub(step)),
            KeyCode::PageDown => at.map(|i| i + step),
            KeyCode::Home | KeyCode::Char('g') => Some(0),
            KeyCode::End | KeyCode::Char('G') => Some(last),
            _ => None,
        };
        if let Some(to) = target {
            let name = move_to(to);
            if name.is_some() && name != self.selected {
                self.selected = name;
                return Some(Todo::Select);
            }
            return None;
        }
        let selected = at.and(self.selected.clone());
        let act = |verb: Verb| selected.clone().map(|name| Todo::Act(verb, name));
        match key.code {
            KeyCode::Char('q') => Some(Todo::Quit),
            KeyCode::Char('?') | KeyCode::F(1) => {
                self.mode = Mode::Help;
                Some(Todo::Redraw)
            }
            KeyCode::Char('/') => {
                self.filter_before = self.filter.clone();
                self.mode = Mode::Filter;
                Some(Todo::Redraw)
            }
            KeyCode::Esc if !self.filter.is_empty() => {
                self.filter.clear();
                Some(Todo::Select)
            }
            KeyCode::Char('s') => act(Verb::Start),
            KeyCode::Char('r') => act(Verb::Restart),
            KeyCode::Char('l') => act(Verb::Reload),
            KeyCode::Char('o') => act(Verb::Rotate),
            KeyCode::Char('x') => {
                let name = selected?;
                self.mode = Mode::Confirm(name);
                Some(Todo::Redraw)
            }
            _ => None,
        }
    }

    /// Shows `text` at the bottom of the screen.
    pub(crate) fn say(&mut self, text: String, is_error: bool) {
        self.message = Some(Message { text, is_error });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn press(app: &mut App, names: &[&str], codes: &[KeyCode]) -> Vec<Option<Todo>> {
        codes
            .iter()
            .map(|&c| app.on_key(key(c), names, 10))
            .collect()
    }

    #[test]
    fn arrows_move_the_selection_by_name_and_stop_at_the_ends() {
        let names = ["api", "db", "web"];
        let mut app = App::new();
        assert_eq!(app.selected_index(&names), Some(0));
        press(
            &mut app,
            &names,
            &[KeyCode::Down, KeyCode::Down, KeyCode::Down],
        );
        assert_eq!(app.selected.as_deref(), Some("web"));
        press(&mut app, &names, &[KeyCode::Home]);
        assert_eq!(app.selected.as_deref(), Some("api"));
        press(&mut app, &names, &[KeyCode::Up]);
        assert_eq!(app.selected.as_deref(), Some("api"));
        // The list changes under the selection: it stays on its daemon.
        assert_eq!(app.selected_index(&["aaa", "api", "web"]), Some(1));
    }

    #[test]
    fn keys_act_on_the_selected_daemon_and_stop_asks_first() {
        let names = ["api", "web"];
        let mut app = App::new();
        app.selected = Some("web".into());
        assert_eq!(
            app.on_key(key(KeyCode::Char('r')), &names, 10),
            Some(Todo::Act(Verb::Restart, "web".into()))
        );
        assert_eq!(
            app.on_key(key(KeyCode::Char('x')), &names, 10),
            Some(Todo::Redraw)
        );
        assert_eq!(app.mode, Mode::Confirm("web".into()));
        assert_eq!(
            app.on_key(key(KeyCode::Char('n')), &names, 10),
            Some(Todo::Redraw)
        );
        assert_eq!(app.mode, Mode::Normal);
        press(&mut app, &names, &[KeyCode::Char('x')]);
        assert_eq!(
            app.on_key(key(KeyCode::Char('y')), &names, 10),
            Some(Todo::Act(Verb::Stop, "web".into()))
        );
        assert_eq!(
            app.on_key(key(KeyCode::Char('q')), &names, 10),
            Some(Todo::Quit)
        );
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.on_key(ctrl_c, &names, 10), Some(Todo::Quit));
    }

    #[test]
    fn slash_edits_the_filter_and_esc_restores_it() {
        let names = ["api", "web"];
        let mut app = App::new();
        press(
            &mut app,
            &names,
            &[
                KeyCode::Char('/'),
                KeyCode::Char('W'),
                KeyCode::Char('x'),
                KeyCode::Backspace,
                KeyCode::Enter,
            ],
        );
        assert_eq!(app.filter, "W");
        assert_eq!(app.mode, Mode::Normal);
        assert!(app.shows(&["web", "running"]));
        assert!(!app.shows(&["api", "running"]));
        press(
            &mut app,
            &names,
            &[KeyCode::Char('/'), KeyCode::Char('z'), KeyCode::Esc],
        );
        assert_eq!(app.filter, "W", "Esc while typing puts the old filter back");
        press(&mut app, &names, &[KeyCode::Esc]);
        assert_eq!(app.filter, "", "Esc in the list clears it");
    }

    #[test]
    fn nothing_acts_when_no_daemon_is_shown() {
        let mut app = App::new();
        assert_eq!(app.on_key(key(KeyCode::Char('r')), &[], 10), None);
        assert_eq!(app.on_key(key(KeyCode::Char('x')), &[], 10), None);
        assert_eq!(app.mode, Mode::Normal);
    }
}
