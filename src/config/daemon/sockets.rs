//! The `sockets` key (issue 27): listening sockets the keeper binds before the daemon
//! drops to its `user`, holds for its whole life and passes to every start at fds 3,
//! 4, ... in the order written, with systemd's `LISTEN_FDS`, `LISTEN_FDNAMES` and
//! `LISTEN_PID`. `{fd:NAME}` in `command` and `env` values becomes the socket's fd
//! number here, when the file is loaded: the numbers only depend on the order written.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::de::DeValue;

use super::builder::Builder;
use super::instances::PLACEHOLDER;
use super::values::check_address;
use super::{DaemonType, Key, ReadyCheck, RestartMode};
use crate::config::diagnostic::quote;
use crate::config::raw::Value;

/// The most sockets one daemon may declare (fds 3 to 66): the daemon's process moves
/// them into place between fork and exec, in a fixed array.
pub const MAX_SOCKETS: usize = 64;

/// The first fd a socket is passed at (systemd's `SD_LISTEN_FDS_START`).
pub const FIRST_SOCKET_FD: usize = 3;

/// The longest path of a unix socket: `sun_path` holds 108 bytes with its NUL.
const MAX_UNIX_PATH: usize = 107;

/// One socket of `sockets`: its name (for `{fd:NAME}` and `LISTEN_FDNAMES`) and where
/// the keeper binds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Socket {
    /// The name, `[A-Za-z0-9_.-]`, at most 64 characters.
    pub name: String,
    /// What the keeper binds.
    pub address: SocketAddress,
}

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SocketAddress {
    /// A TCP listener on `host:port` (`[::1]:8080` for IPv6).
    Tcp(String),
    /// A UDP socket bound to `host:port`.
    Udp(String),
    /// A unix stream socket at this absolute path, owned by the daemon's user, mode 0660.
    Unix(PathBuf),
}

impl fmt::Display for SocketAddress {
    /// As the file writes it: `tcp://127.0.0.1:8080`, `unix:/run/web.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddress::Tcp(a) => write!(f, "tcp://{a}"),
            SocketAddress::Udp(a) => write!(f, "udp://{a}"),
            SocketAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl SocketAddress {
    /// `self` with `{instance}` as `digits` (a copy of a daemon with `instances`).
    pub(super) fn with_instance(&self, digits: &str) -> SocketAddress {
        match self {
            SocketAddress::Tcp(a) => SocketAddress::Tcp(a.replace(PLACEHOLDER, digits)),
            SocketAddress::Udp(a) => SocketAddress::Udp(a.replace(PLACEHOLDER, digits)),
            SocketAddress::Unix(p) => SocketAddress::Unix(PathBuf::from(
                p.to_string_lossy().replace(PLACEHOLDER, digits),
            )),
        }
    }
}

/// The fd number of socket `index` (0 for the first written).
pub fn socket_fd(index: usize) -> usize {
    FIRST_SOCKET_FD + index
}

/// Returns true if and only if `name` may name a socket.
fn is_socket_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Builder<'_> {
    /// `sockets`: a table of name = address, in the order written.
    pub(super) fn sockets(&mut self, value: Option<&Value<'_>>) -> Vec<Socket> {
        let Some(value) = value else {
            return Vec::new();
        };
        let DeValue::Table(table) = value.get_ref() else {
            self.expected(
                value,
                "a table of name = address, like { http = \"tcp://127.0.0.1:8080\" }",
            );
            return Vec::new();
        };
        // The table is sorted by name; the order written is the order of the spans.
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        if entries.len() > MAX_SOCKETS {
            self.error(
                value.span(),
                format!(
                    "{} sockets; a daemon may have at most {MAX_SOCKETS}",
                    entries.len()
                ),
            );
            return Vec::new();
        }
        let mut sockets = Vec::new();
        for (key, item) in entries {
            let name: &str = key.get_ref();
            if !is_socket_name(name) {
                self.error(
                    key.span(),
                    format!(
                        "`{}` is not a socket name: letters, digits, `_`, `.` and `-`, at most 64",
                        quote(name)
                    ),
                );
                continue;
            }
            let DeValue::String(text) = item.get_ref() else {
                self.expected(
                    item,
                    "an address: \"tcp://HOST:PORT\", \"udp://HOST:PORT\" or \"unix:PATH\"",
                );
                continue;
            };
            match self.socket_address(text) {
                Ok(address) => sockets.push(Socket {
                    name: name.to_string(),
                    address,
                }),
                Err(why) => self.error(item.span(), format!("`sockets.{name}`: {why}")),
            }
        }
        // Two sockets on one address: the second bind would fail at every start.
        for (i, s) in sockets.iter().enumerate() {
            if sockets[..i].iter().any(|t| t.address == s.address) {
                let at = table
                    .iter()
                    .find(|(k, _)| *k.get_ref() == s.name)
                    .map_or(value.span(), |(_, v)| v.span());
                self.error(
                    at,
                    format!("`sockets.{}`: {} is declared twice", s.name, s.address),
                );
            }
        }
        sockets
    }

    /// One address, as `tcp://`, `udp://` or `unix:`.
    fn socket_address(&self, text: &str) -> Result<SocketAddress, String> {
        if let Some(rest) = text.strip_prefix("tcp://") {
            check_address(&self.stand_in(rest))?;
            return Ok(SocketAddress::Tcp(rest.to_string()));
        }
        if let Some(rest) = text.strip_prefix("udp://") {
            check_address(&self.stand_in(rest))?;
            return Ok(SocketAddress::Udp(rest.to_string()));
        }
        if let Some(rest) = text.strip_prefix("unix:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err("the path is empty".into());
            }
            let path = self.base.join(path);
            let len = self.stand_in(&path.to_string_lossy()).len();
            if len > MAX_UNIX_PATH {
                return Err(format!(
                    "{} is {len} bytes long; a unix socket's path is at most {MAX_UNIX_PATH}",
                    path.display()
                ));
            }
            return Ok(SocketAddress::Unix(path));
        }
        Err(format!(
            "`{}` is not an address: \"tcp://HOST:PORT\", \"tcp://[::1]:PORT\", \"udp://HOST:PORT\" or \"unix:PATH\"",
            quote(text)
        ))
    }

    /// Puts each socket's fd number where `{fd:NAME}` stands in `command` and in the
    /// `env` values, and notes a name no socket has. A forking daemon's process is not
    /// the one `LISTEN_PID` names: warned of.
    pub(super) fn put_socket_fds<'v>(
        &mut self,
        get: impl Fn(Key) -> Option<&'v Value<'v>>,
        sockets: &[Socket],
        kind: DaemonType,
        command: Option<&mut Vec<String>>,
        env: &mut std::collections::BTreeMap<String, String>,
    ) {
        if let Some(argv) = command {
            let span = get(Key::Command).map_or(0..0, |v| v.span());
            for arg in argv.iter_mut() {
                match put_fds(arg, sockets) {
                    Ok(done) => *arg = done,
                    Err(why) => self.error(span.clone(), format!("`command`: {why}")),
                }
            }
        }
        let env_table = get(Key::Env);
        for (key, value) in env.iter_mut() {
            match put_fds(value, sockets) {
                Ok(done) => *value = done,
                Err(why) => {
                    let span = match env_table.map(|v| v.get_ref()) {
                        Some(DeValue::Table(t)) => t
                            .iter()
                            .find(|(k, _)| *k.get_ref() == key.as_str())
                            .map(|(_, v)| v.span()),
                        _ => None,
                    };
                    self.error(span.unwrap_or(0..0), format!("`env.{key}`: {why}"));
                }
            }
        }
        if kind == DaemonType::Forking && !sockets.is_empty() {
            let at = get(Key::Type)
                .or(get(Key::Sockets))
                .map_or(0..0, |v| v.span());
            self.warning(
                at,
                "type = \"forking\" with `sockets`: the daemon's process is not the one that was exec'd, so `LISTEN_PID` does not name it and programs that check it (sd_listen_fds) ignore the sockets; pass them with `{fd:NAME}` instead, or use type = \"simple\"",
            );
        }
    }
}

impl Builder<'_> {
    /// `restart_mode`: `start-first` needs `sockets` (two generations serve on the
    /// same sockets) and a daemon whose process the keeper started itself.
    pub(super) fn restart_mode(
        &mut self,
        value: Option<&Value<'_>>,
        sockets: &[Socket],
        kind: DaemonType,
    ) -> RestartMode {
        let Some(value) = value else {
            return RestartMode::StopFirst;
        };
        let mode = match value.get_ref() {
            DeValue::String(s) if s == "stop-first" => RestartMode::StopFirst,
            DeValue::String(s) if s == "start-first" => RestartMode::StartFirst,
            _ => {
                self.error(
                    value.span(),
                    "expected \"stop-first\" (stop the daemon, then start it) or \"start-first\" (start the new generation on the held sockets, then stop the old one)",
                );
                return RestartMode::StopFirst;
            }
        };
        if mode == RestartMode::StartFirst {
            if sockets.is_empty() {
                self.error(
                    value.span(),
                    "restart_mode = \"start-first\" needs `sockets`: the new generation serves on the sockets the keeper holds while the old one still runs; declare them, or use \"stop-first\"",
                );
            } else if matches!(kind, DaemonType::Forking | DaemonType::Oneshot) {
                self.error(
                    value.span(),
                    format!("restart_mode = \"start-first\" is for a daemon the keeper runs itself, not type = \"{}\"", kind.as_str()),
                );
            }
        }
        mode
    }

    /// With `start-first`, a `tcp` or `http` readiness check on the held sockets is
    /// answered by the old generation, which still serves there: warned of.
    pub(super) fn check_ready_of_generations(
        &mut self,
        value: Option<&Value<'_>>,
        mode: RestartMode,
        ready: Option<&ReadyCheck>,
        sockets: Option<usize>,
    ) {
        // The sockets take fds 3, 4, ...: a readiness pipe there would replace one.
        if let (Some(value), Some(ReadyCheck::Fd(n)), Some(sockets)) = (value, ready, sockets) {
            let taken = FIRST_SOCKET_FD..FIRST_SOCKET_FD + sockets;
            if usize::try_from(*n).is_ok_and(|n| taken.contains(&n)) {
                self.error(
                    value.span(),
                    format!(
                        "ready = {{ fd = {n} }} is the fd of a socket of `sockets` (fds {} to {}); choose a number above them",
                        taken.start,
                        taken.end - 1
                    ),
                );
            }
        }
        if mode != RestartMode::StartFirst {
            return;
        }
        if let (Some(value), Some(ReadyCheck::Tcp(_) | ReadyCheck::Http(_))) = (value, ready) {
            self.warning(
                value.span(),
                "with restart_mode = \"start-first\", a tcp or http `ready` check on the held sockets is answered by the old generation while the new one starts: use `ready = { exec }`, `{ file }`, `{ log }` or `{ fd }`, a port of the new process's own, or `start_wait`",
            );
        }
    }
}

/// `text` with each `{fd:NAME}` as the fd number of socket NAME.
fn put_fds(text: &str, sockets: &[Socket]) -> Result<String, String> {
    const OPEN: &str = "{fd:";
    if !text.contains(OPEN) {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let after = &rest[at + OPEN.len()..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`{{fd:` is not closed in `{}`", quote(text)))?;
        let name = &after[..end];
        let index = sockets.iter().position(|s| s.name == name).ok_or_else(|| {
            let known: Vec<&str> = sockets.iter().map(|s| s.name.as_str()).collect();
            match known.is_empty() {
                true => format!(
                    "`{{fd:{}}}` names a socket, and `sockets` declares none",
                    quote(name)
                ),
                false => format!(
                    "`{{fd:{}}}` names no socket of `sockets` ({})",
                    quote(name),
                    known.join(", ")
                ),
            }
        })?;
        out.push_str(&socket_fd(index).to_string());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(name: &str) -> Socket {
        Socket {
            name: name.into(),
            address: SocketAddress::Tcp("127.0.0.1:80".into()),
        }
    }

    #[test]
    fn fd_placeholders_become_the_fd_numbers_in_the_order_written() {
        let sockets = [socket("http"), socket("admin")];
        assert_eq!(put_fds("--fd {fd:http}", &sockets).unwrap(), "--fd 3");
        assert_eq!(put_fds("{fd:admin};{fd:http};", &sockets).unwrap(), "4;3;");
        assert_eq!(put_fds("plain {fd}", &sockets).unwrap(), "plain {fd}");
        let err = put_fds("{fd:web}", &sockets).unwrap_err();
        assert!(
            err.contains("names no socket") && err.contains("http, admin"),
            "{err}"
        );
        assert!(put_fds("{fd:http", &sockets)
            .unwrap_err()
            .contains("not closed"));
        assert!(put_fds("{fd:x}", &[])
            .unwrap_err()
            .contains("declares none"));
    }

    #[test]
    fn addresses_print_as_written() {
        assert_eq!(
            SocketAddress::Tcp("[::1]:8080".into()).to_string(),
            "tcp://[::1]:8080"
        );
        assert_eq!(
            SocketAddress::Unix("/run/a.sock".into()).to_string(),
            "unix:/run/a.sock"
        );
        assert_eq!(
            SocketAddress::Udp("0.0.0.0:53{instance}".into())
                .with_instance("2")
                .to_string(),
            "udp://0.0.0.0:532"
        );
    }
}
