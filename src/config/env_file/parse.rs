//! The parser of `env_file`'s syntax, systemd's `EnvironmentFile=` (see the module
//! above): a state machine over the characters of a file, collecting assignments and
//! located syntax errors. No error quotes a line of the file: an environment file
//! holds secrets, and errors reach the world-readable state record and events.

use super::super::diagnostic::{quote, MAX_SHOWN};

/// A syntax error at a byte offset of an environment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where it is, in bytes from the start of the file.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses the text of an environment file into its assignments, in order, or every
/// syntax error in it (at most [`MAX_SHOWN`] + 1).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, Vec<SyntaxError>> {
    let parser = Parser::run(text);
    if parser.errors.is_empty() {
        Ok(parser.vars)
    } else {
        Err(parser.errors)
    }
}

/// The names `text` assigns with an `export ` prefix, lines systemd skips ("Ignoring
/// invalid environment assignment"): `export systemd` converts such a file.
pub fn exported_names(text: &str) -> Vec<String> {
    Parser::run(text).exported
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    PreKey,
    Key,
    PreValue,
    Value,
    ValueEscape,
    Single,
    Double,
    DoubleEscape,
    Comment,
}

#[derive(Default)]
struct Parser {
    state: State,
    key: String,
    key_at: usize,
    /// Where the key's trailing blanks begin, if it has some.
    key_blank: Option<usize>,
    value: String,
    /// Where the unquoted value's trailing blanks begin, if it has some.
    value_blank: Option<usize>,
    /// Where the quote that is open began.
    quote_at: usize,
    vars: Vec<(String, String)>,
    /// The names given with an `export ` prefix.
    exported: Vec<String>,
    errors: Vec<SyntaxError>,
}

/// What systemd counts as a line end and as blank.
fn is_newline(c: char) -> bool {
    c == '\n' || c == '\r'
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t') || is_newline(c)
}

impl Parser {
    fn run(text: &str) -> Parser {
        let mut parser = Parser::default();
        for (at, c) in text.char_indices() {
            parser.step(at, c);
        }
        parser.end(text.len());
        parser
    }

    fn step(&mut self, at: usize, c: char) {
        if c == '\0' {
            self.error(
                at,
                "a NUL byte is not allowed in an environment file".into(),
            );
        }
        match self.state {
            State::PreKey => {
                if c == '#' || c == ';' {
                    self.state = State::Comment;
                } else if !is_blank(c) {
                    self.state = State::Key;
                    self.key_at = at;
                    self.key_blank = None;
                    self.key.push(c);
                }
            }
            State::Key => {
                if is_newline(c) {
                    // The line is not quoted: an environment file holds secrets, and
                    // the error reaches the state record and the event history, which
                    // every user may read (issue 22, finding 2).
                    self.error(
                        self.key_at,
                        "this line has no `=`: write KEY=VALUE, or start the line with # to make it a comment"
                            .into(),
                    );
                    self.key.clear();
                    self.state = State::PreKey;
                } else if c == '=' {
                    self.state = State::PreValue;
                    self.value_blank = None;
                } else {
                    if !is_blank(c) {
                        self.key_blank = None;
                    } else if self.key_blank.is_none() {
                        self.key_blank = Some(self.key.len());
                    }
                    self.key.push(c);
                }
            }
            State::PreValue => {
                if is_newline(c) {
                    self.push();
                } else if c == '\'' {
                    self.state = State::Single;
                    self.quote_at = at;
                } else if c == '"' {
                    self.state = State::Double;
                    self.quote_at = at;
                } else if c == '\\' {
                    self.state = State::ValueEscape;
                } else if !is_blank(c) {
                    self.state = State::Value;
                    self.value.push(c);
                }
            }
            State::Value => {
                if is_newline(c) {
                    self.chomp();
                    self.push();
                } else if c == '\\' {
                    self.state = State::ValueEscape;
                    self.value_blank = None;
                } else {
                    if !is_blank(c) {
                        self.value_blank = None;
                    } else if self.value_blank.is_none() {
                        self.value_blank = Some(self.value.len());
                    }
                    self.value.push(c);
                }
            }
            State::ValueEscape => {
                self.state = State::Value;
                // A backslash before a line end joins the lines.
                if !is_newline(c) {
                    self.value.push(c);
                }
            }
            State::Single => {
                if c == '\'' {
                    self.state = State::PreValue;
                } else {
                    self.value.push(c);
                }
            }
            State::Double => {
                if c == '"' {
                    self.state = State::PreValue;
                } else if c == '\\' {
                    self.state = State::DoubleEscape;
                } else {
                    self.value.push(c);
                }
            }
            State::DoubleEscape => {
                self.state = State::Double;
                if matches!(c, '"' | '\\' | '`' | '$') {
                    self.value.push(c);
                } else if c != '\n' {
                    // As a shell does: the backslash stays before other characters.
                    self.value.push('\\');
                    self.value.push(c);
                }
            }
            State::Comment => {
                if is_newline(c) {
                    self.state = State::PreKey;
                }
            }
        }
    }

    fn end(&mut self, len: usize) {
        match self.state {
            State::Single | State::Double | State::DoubleEscape => {
                let which = if self.state == State::Single {
                    "single"
                } else {
                    "double"
                };
                self.error(
                    self.quote_at,
                    format!("this {which} quote is not closed before the end of the file"),
                );
            }
            State::Key => {
                self.step(len, '\n');
            }
            State::Value | State::ValueEscape => {
                self.chomp();
                self.push();
            }
            State::PreValue => self.push(),
            State::PreKey | State::Comment => {}
        }
    }

    /// Drops the unquoted value's trailing blanks.
    fn chomp(&mut self) {
        if let Some(at) = self.value_blank.take() {
            self.value.truncate(at);
        }
    }

    /// Ends one assignment at a line end (or the end of the file).
    fn push(&mut self) {
        self.state = State::PreKey;
        if let Some(at) = self.key_blank.take() {
            self.key.truncate(at);
        }
        let mut key = std::mem::take(&mut self.key);
        let value = std::mem::take(&mut self.value);
        let mut key_at = self.key_at;
        if let Some(rest) = key.strip_prefix("export") {
            if rest.starts_with([' ', '\t']) {
                let name = rest.trim_start();
                key_at += key.len() - name.len();
                key = name.to_string();
                self.exported.push(key.clone());
            }
        }
        if !crate::config::daemon::is_env_name(&key) {
            self.error(
                key_at,
                format!(
                    "`{}` is not a valid variable name: letters, digits and `_`, not starting with a digit",
                    quote(&key)
                ),
            );
            return;
        }
        self.vars.push((key, value));
    }

    fn error(&mut self, offset: usize, message: String) {
        if self.errors.len() <= MAX_SHOWN {
            self.errors.push(SyntaxError { offset, message });
        }
    }
}
