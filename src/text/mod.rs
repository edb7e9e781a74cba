//! Text that every module may need, and that depends on no other module of dmgr: the
//! escaping of what came from files and processes ([`escape`]), paths as they are shown
//! ([`show_path`]) and stored in JSON ([`path_bytes`]), and times as RFC 3339. A leaf:
//! `config`, `state`, `keeper` and `output` all use it, and so none of them needs
//! another for it.

mod escape;
pub(crate) mod path_bytes;

pub(crate) use escape::{escape, escape_bytes, escape_os};

/// A path as dmgr shows it: as it is when it is UTF-8, else with each byte that is
/// not shown as `\xNN` (`Path::display` would put U+FFFD there, and two different
/// paths would look the same). Control characters are escaped when printed.
pub(crate) fn show_path(path: &std::path::Path) -> std::borrow::Cow<'_, str> {
    match path.to_str() {
        Some(text) => std::borrow::Cow::Borrowed(text),
        None => std::borrow::Cow::Owned(escape_os(path.as_os_str())),
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub(crate) fn rfc3339_ms(ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(time).to_string()
}
