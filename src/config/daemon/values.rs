//! The builder's value parsers: each key's value checked and converted, with the
//! problem noted at its span.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use toml::de::DeValue;

use super::*;
use crate::config::diagnostic::quote;
use crate::config::raw::{self, Value, READY_KEYS};
use crate::config::suggest;
use crate::config::units::{self, Signal, Size};
use crate::text::show_path;

impl Builder<'_> {
    pub(super) fn expected(&mut self, value: &Value<'_>, what: &str) {
        let found = raw::type_name(value.get_ref());
        self.error(value.span(), format!("expected {what}, found {found}"));
    }

    pub(super) fn string(&mut self, value: Option<&Value<'_>>) -> Option<String> {
        let value = value?;
        match value.get_ref() {
            DeValue::String(s) if s.contains('\0') => {
                self.error(value.span(), "a NUL character is not allowed here");
                None
            }
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.expected(value, "a string");
                None
            }
        }
    }

    /// A user or group name: what `getpwnam(3)` could know, and nothing that reads as
    /// an option or a path (`-rf`, `../etc`), as systemd's relaxed rule has it.
    pub(super) fn name_string(&mut self, value: Option<&Value<'_>>, what: &str) -> Option<String> {
        let span = value?.span();
        let text = self.string(value)?;
        let bad_char =
            |c: char| c.is_control() || c.is_whitespace() || matches!(c, ':' | '/' | ',');
        let valid = !text.is_empty()
            && text.len() <= 256
            && !text.starts_with(['-', '+'])
            && text != "."
            && text != ".."
            && !text.contains(bad_char);
        if !valid {
            self.error(
                span,
                format!(
                    "`{}` is not a valid {what} name: no whitespace, `:`, `/` or `,`, and not starting with `-` or `+`",
                    quote(&text)
                ),
            );
            return None;
        }
        Some(text)
    }

    pub(super) fn bool(&mut self, value: Option<&Value<'_>>) -> Option<bool> {
        let value = value?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.expected(value, "true or false");
                None
            }
        }
    }

    /// An integer as TOML means it, in any radix (`0x10` is 16, `0o17` is 15).
    pub(super) fn integer(&mut self, value: &Value<'_>) -> Option<i128> {
        let DeValue::Integer(int) = value.get_ref() else {
            return None;
        };
        let parsed = i128::from_str_radix(int.as_str(), int.radix()).ok();
        if parsed.is_none() {
            self.error(value.span(), format!("the number {int} is too large"));
        }
        parsed
    }

    /// A whole number from 0 to `max`; `why` says why not more.
    pub(super) fn uint(&mut self, value: Option<&Value<'_>>, max: u32, why: &str) -> Option<u32> {
        let value = value?;
        if !matches!(value.get_ref(), DeValue::Integer(_)) {
            self.expected(value, "a whole number");
            return None;
        }
        let number = self.integer(value)?;
        match u32::try_from(number) {
            Ok(n) if n <= max => Some(n),
            _ => {
                self.error(
                    value.span(),
                    format!("expected a whole number from 0 to {max}, found {number}: {why}"),
                );
                None
            }
        }
    }

    /// A size: a string like `"10MiB"` or a number of bytes.
    pub(super) fn size(&mut self, value: &Value<'_>, example: &str) -> Option<Size> {
        match value.get_ref() {
            DeValue::String(s) => match s.parse::<Size>() {
                Ok(size) => Some(size),
                Err(message) => {
                    self.error(value.span(), message);
                    None
                }
            },
            DeValue::Integer(_) => {
                let number = self.integer(value)?;
                match u64::try_from(number) {
                    Ok(n) => Some(Size(n)),
                    Err(_) => {
                        self.error(value.span(), format!("a size cannot be {number}"));
                        None
                    }
                }
            }
            _ => {
                self.expected(value, &format!("a size like \"{example}\""));
                None
            }
        }
    }

    pub(super) fn log_size(&mut self, value: Option<&Value<'_>>) -> Option<Size> {
        let value = value?;
        let size = self.size(value, "10MiB")?;
        if size.0 != 0 && !(MIN_LOG_SIZE..=MAX_LOG_SIZE).contains(&size.0) {
            let why = if size.0 < MIN_LOG_SIZE {
                "a smaller log would rotate at nearly every line"
            } else {
                "a larger log is never rotated in practice"
            };
            self.error(
                value.span(),
                format!(
                    "`log_max_size` is {size}: write 0 to never rotate, or a size from {} to {}; {why}",
                    Size(MIN_LOG_SIZE),
                    Size(MAX_LOG_SIZE)
                ),
            );
            return None;
        }
        Some(size)
    }

    /// A signal by name, or by number in any radix, that `check` accepts for its key;
    /// `check` may also return a warning.
    pub(super) fn signal(
        &mut self,
        value: Option<&Value<'_>>,
        check: impl Fn(Signal) -> Result<Option<String>, String>,
    ) -> Option<Signal> {
        let value = value?;
        let parsed = match value.get_ref() {
            DeValue::String(s) => s.parse::<Signal>(),
            DeValue::Integer(_) => {
                let number = self.integer(value)?;
                Signal::from_number(number)
            }
            _ => {
                self.expected(value, "a signal name like \"TERM\"");
                return None;
            }
        };
        let result = parsed.and_then(|signal| check(signal).map(|warning| (signal, warning)));
        match result {
            Ok((signal, warning)) => {
                if let Some(warning) = warning {
                    self.warning(value.span(), warning);
                }
                Some(signal)
            }
            Err(message) => {
                self.error(value.span(), message);
                None
            }
        }
    }

    pub(super) fn duration(&mut self, value: Option<&Value<'_>>) -> Option<Duration> {
        let value = value?;
        let DeValue::String(text) = value.get_ref() else {
            self.expected(value, "a duration like \"10s\"");
            return None;
        };
        match units::parse_duration(text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.error(value.span(), message);
                None
            }
        }
    }

    pub(super) fn command(&mut self, value: &Value<'_>) -> Option<Vec<String>> {
        let mut argv = match value.get_ref() {
            DeValue::String(text) => match shlex::split(text) {
                Some(words) => words,
                None => {
                    self.error(
                        value.span(),
                        "cannot split the command into words: a quote is not closed",
                    );
                    return None;
                }
            },
            DeValue::Array(items) => {
                let mut argv = Vec::new();
                for item in items {
                    match item.get_ref() {
                        DeValue::String(s) => argv.push(s.to_string()),
                        _ => self.expected(item, "a string"),
                    }
                }
                argv
            }
            _ => {
                self.expected(value, "a string or an array of strings");
                return None;
            }
        };
        if argv.first().is_none_or(|a| a.is_empty()) {
            self.error(value.span(), "the command is empty");
            return None;
        }
        if argv.iter().any(|a| a.contains('\0')) {
            self.error(value.span(), "a NUL character is not allowed in a command");
            return None;
        }
        if argv[0].contains('/') && !argv[0].starts_with('/') {
            let program = resolve(self.base, Path::new(&argv[0]));
            let Some(program) = program.to_str() else {
                self.error(
                    value.span(),
                    format!(
                        "the program {} is relative to a directory whose path is not valid UTF-8; give its absolute path",
                        show_path(&program)
                    ),
                );
                return None;
            };
            argv[0] = program.to_string();
        }
        Some(argv)
    }

    /// An argument vector written as an array (`reload_command`, `stop_command`),
    /// checked as `command` is.
    pub(super) fn argv(&mut self, value: &Value<'_>) -> Option<Vec<String>> {
        if !matches!(value.get_ref(), DeValue::Array(_)) {
            self.expected(
                value,
                "an array of strings, like [\"nginx\", \"-s\", \"reload\"]",
            );
            return None;
        }
        self.command(value)
    }

    pub(super) fn env(&mut self, value: Option<&Value<'_>>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let Some(value) = value else {
            return env;
        };
        let DeValue::Table(table) = value.get_ref() else {
            self.expected(value, "a table of strings, like { PORT = \"8080\" }");
            return env;
        };
        for (key, item) in table.iter() {
            let key_text: &str = key.get_ref();
            if !is_env_name(key_text) {
                self.error(
                    key.span(),
                    format!(
                        "`{}` is not a valid environment variable name: letters, digits and `_`, not starting with a digit",
                        quote(key_text)
                    ),
                );
                continue;
            }
            match item.get_ref() {
                DeValue::String(s) if !s.contains('\0') => {
                    env.insert(key_text.to_string(), s.to_string());
                }
                DeValue::String(_) => {
                    self.error(item.span(), "a NUL character is not allowed here")
                }
                _ => self.error(
                    item.span(),
                    format!(
                        "expected a string for `env.{key_text}`, found {}; quote it",
                        raw::type_name(item.get_ref())
                    ),
                ),
            }
        }
        env
    }

    pub(super) fn umask(&mut self, value: Option<&Value<'_>>) -> Option<u32> {
        let value = value?;
        let DeValue::String(text) = value.get_ref() else {
            self.expected(value, "an octal string like \"022\"");
            return None;
        };
        let octal =
            !text.is_empty() && text.len() <= 4 && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
        match u32::from_str_radix(text, 8) {
            Ok(mask) if octal && mask <= 0o777 => Some(mask),
            _ => {
                self.error(
                    value.span(),
                    format!(
                        "invalid umask \"{}\": write an octal string like \"022\" or \"0027\"",
                        quote(text)
                    ),
                );
                None
            }
        }
    }

    pub(super) fn restart(&mut self, value: Option<&Value<'_>>) -> Option<RestartPolicy> {
        let value = value?;
        match value.get_ref() {
            DeValue::String(s) if s == "no" => Some(RestartPolicy::No),
            DeValue::String(s) if s == "on-failure" => Some(RestartPolicy::OnFailure),
            DeValue::String(s) if s == "always" => Some(RestartPolicy::Always),
            _ => {
                self.error(
                    value.span(),
                    "expected \"no\", \"on-failure\" or \"always\"",
                );
                None
            }
        }
    }

    pub(super) fn kill_mode(&mut self, value: Option<&Value<'_>>) -> Option<KillMode> {
        let value = value?;
        match value.get_ref() {
            DeValue::String(s) if s == "group" => Some(KillMode::Group),
            DeValue::String(s) if s == "mixed" => Some(KillMode::Mixed),
            _ => {
                self.error(
                    value.span(),
                    "expected \"group\" (stop_signal to every process of the daemon) or \"mixed\" (stop_signal to the main process, SIGKILL to what is left once it exited)",
                );
                None
            }
        }
    }

    pub(super) fn kind(&mut self, value: Option<&Value<'_>>) -> Option<DaemonType> {
        let value = value?;
        match value.get_ref() {
            DeValue::String(s) if s == "simple" => Some(DaemonType::Simple),
            DeValue::String(s) if s == "forking" => Some(DaemonType::Forking),
            DeValue::String(s) if s == "notify" => Some(DaemonType::Notify),
            DeValue::String(s) if s == "oneshot" => Some(DaemonType::Oneshot),
            _ => {
                self.error(
                    value.span(),
                    "expected \"simple\", \"forking\", \"notify\" or \"oneshot\"",
                );
                None
            }
        }
    }

    pub(super) fn ready(&mut self, value: &Value<'_>) -> Option<ReadyCheck> {
        self.check_table(value, "ready", READY_KEYS)
    }

    /// A check table (`ready`, `health`) with exactly one of `keys`.
    pub(super) fn check_table(
        &mut self,
        value: &Value<'_>,
        name: &str,
        keys: &[&str],
    ) -> Option<ReadyCheck> {
        let DeValue::Table(table) = value.get_ref() else {
            self.expected(value, "a table like { tcp = \"127.0.0.1:8080\" }");
            return None;
        };
        for (key, _) in table.iter() {
            let key_name: &str = key.get_ref();
            if !keys.contains(&key_name) {
                let hint = suggest::nearest(key_name, keys)
                    .map_or(String::new(), |k| format!(", did you mean `{k}`?"));
                self.error(
                    key.span(),
                    format!("unknown key `{name}.{}`{hint}", quote(key_name)),
                );
            }
        }
        let present: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| table.get(*k).is_some())
            .collect();
        if present.len() != 1 {
            let listed: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
            self.error(
                value.span(),
                format!("`{name}` takes exactly one of {}", listed.join(", ")),
            );
            return None;
        }
        match present[0] {
            "tcp" => {
                let item = table.get("tcp")?;
                let address = self.string(Some(item))?;
                match check_address(&self.stand_in(&address)) {
                    Ok(()) => Some(ReadyCheck::Tcp(address)),
                    Err(why) => {
                        self.error(
                            item.span(),
                            format!(
                                "invalid address \"{}\": {why}; write \"host:port\", like \"127.0.0.1:8080\" or \"[::1]:8080\"",
                                quote(&address)
                            ),
                        );
                        None
                    }
                }
            }
            "file" => self.path(table.get("file")).map(ReadyCheck::File),
            "log" => self.log_pattern(table.get("log")?),
            "fd" => self.ready_fd(table.get("fd")?),
            "http" => {
                let item = table.get("http")?;
                let url = self.string(Some(item))?;
                match crate::config::url::HttpUrl::parse(&self.stand_in(&url)) {
                    Ok(_) => Some(ReadyCheck::Http(url)),
                    Err(why) => {
                        self.error(
                            item.span(),
                            format!(
                                "invalid URL \"{}\": {why}; write \"http://host:port/path\", like \"http://127.0.0.1:8080/healthz\"",
                                quote(&url)
                            ),
                        );
                        None
                    }
                }
            }
            _ => {
                let item = table.get("exec")?;
                self.command(item).map(ReadyCheck::Exec)
            }
        }
    }

    pub(super) fn after(&mut self, value: Option<&Value<'_>>, own: &str) -> Vec<String> {
        let Some(value) = value else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.expected(value, "an array of daemon names");
            return Vec::new();
        };
        let mut names = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(s) if s == own => {
                    self.error(item.span(), "a daemon cannot start after itself")
                }
                DeValue::String(s) if split_instance_name(s).is_some() => self.error(
                    item.span(),
                    format!(
                        "`after` names a daemon, not one of its copies: `{}` waits for every copy",
                        split_instance_name(s).map_or("", |(base, _)| base)
                    ),
                ),
                DeValue::String(s) if !is_valid_name(s) => self.error(
                    item.span(),
                    format!("`{}` is not a valid daemon name", quote(s)),
                ),
                DeValue::String(s) => {
                    names.push(s.to_string());
                    self.places.after.push(item.span().start);
                }
                _ => self.expected(item, "a daemon name"),
            }
        }
        names
    }
}

/// Returns true if and only if `name` is a portable environment variable name,
/// `[A-Za-z_][A-Za-z0-9_]*`, as systemd's `Environment=` requires.
pub(in crate::config) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a `host:port` address: a host name, an IPv4 address or a bracketed IPv6
/// address, and a port from 1 to 65535.
pub(super) fn check_address(address: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or("the `[` of an IPv6 address is not closed")?;
        inside
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("`{}` is not an IPv6 address", quote(inside)))?;
        let port = after
            .strip_prefix(':')
            .ok_or("the port goes after the `]`, as in \"[::1]:8080\"")?;
        (inside, port)
    } else {
        let (host, port) = address.rsplit_once(':').ok_or("there is no port")?;
        if host.contains(':') {
            return Err("an IPv6 address goes in brackets".into());
        }
        let valid = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Err(format!("`{}` is not a host name", quote(host)));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    match port.parse::<u16>() {
        Ok(0) => Err("port 0 cannot be connected to".into()),
        Ok(_) => Ok(()),
        Err(_) => Err(format!("`{}` is not a port from 1 to 65535", quote(port))),
    }
}
