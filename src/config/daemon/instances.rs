//! `instances = N`: one file, N copies named `NAME@1` ... `NAME@N`, each an ordinary
//! daemon with a keeper of its own. The file is built once, with `{instance}` left
//! as written, and [`expand`] makes the copies, putting each copy's number where
//! `{instance}` stands.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::{Daemon, ReadyCheck};

/// What `{instance}` in a value becomes.
pub const PLACEHOLDER: &str = "{instance}";

/// The most copies one file may ask for: each is a keeper and a process.
pub const MAX_INSTANCES: u32 = 1000;

/// One copy of a daemon with `instances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The name of the file and of the whole set (`web` for `web@2`).
    pub base: String,
    /// This copy's number, from 1.
    pub number: u32,
    /// How many copies the file asks for.
    pub count: u32,
}

/// The name of copy `number` of `base`.
pub fn instance_name(base: &str, number: u32) -> String {
    format!("{base}@{number}")
}

/// Splits `web@2` into `("web", 2)`; `None` for a name that is no copy's.
pub fn split_instance_name(name: &str) -> Option<(&str, u32)> {
    let (base, number) = name.rsplit_once('@')?;
    // No sign, no leading zero: `web@02` is not `web@2`.
    if number.starts_with('0') || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: u32 = number.parse().ok()?;
    (super::is_valid_name(base) && (1..=MAX_INSTANCES).contains(&number)).then_some((base, number))
}

/// The copies of `template` (named after the file), `count` of them.
pub(super) fn expand(template: &Daemon, count: u32) -> Vec<Daemon> {
    (1..=count).map(|n| copy(template, n, count)).collect()
}

fn copy(template: &Daemon, number: u32, count: u32) -> Daemon {
    let digits = number.to_string();
    let text = |s: &String| s.replace(PLACEHOLDER, &digits);
    let path = |p: &Path| put_number(p, &digits);
    let mut d = template.clone();
    d.name = instance_name(&template.name, number);
    d.instance = Some(Instance {
        base: template.name.clone(),
        number,
        count,
    });
    d.pidfile = path(&d.pidfile);
    d.forking_pidfile = d.forking_pidfile.as_deref().map(path);
    let p = &mut d.process;
    p.command = p.command.iter().map(text).collect();
    p.env = p.env.iter().map(|(k, v)| (k.clone(), text(v))).collect();
    p.working_dir = path(&p.working_dir);
    p.log = path(&p.log);
    p.stderr_log = p.stderr_log.as_deref().map(path);
    for socket in &mut p.sockets {
        socket.address = socket.address.with_instance(&digits);
    }
    let s = &mut d.supervision;
    for check in [&mut s.ready, &mut s.health].into_iter().flatten() {
        *check = match check {
            ReadyCheck::Tcp(a) => ReadyCheck::Tcp(text(a)),
            ReadyCheck::Http(u) => ReadyCheck::Http(text(u)),
            ReadyCheck::File(f) => ReadyCheck::File(path(f)),
            ReadyCheck::Exec(argv) => ReadyCheck::Exec(argv.iter().map(text).collect()),
            // A pattern and a descriptor number are not among the places SPEC names.
            ReadyCheck::Log(_) | ReadyCheck::Fd(_) => continue,
        };
    }
    d
}

/// `path` with each `{instance}` replaced by `digits` (paths need not be UTF-8).
fn put_number(path: &Path, digits: &str) -> PathBuf {
    let bytes = path.as_os_str().as_bytes();
    let needle = PLACEHOLDER.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(digits.as_bytes());
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    PathBuf::from(OsString::from_vec(out))
}

/// Returns true if and only if `path` holds `{instance}`.
pub(super) fn has_placeholder(path: &Path) -> bool {
    let needle = PLACEHOLDER.as_bytes();
    path.as_os_str()
        .as_bytes()
        .windows(needle.len())
        .any(|w| w == needle)
}

impl Daemon {
    /// The name `NAME` that means this daemon in a command: its own name, or for a
    /// copy the name of the whole set (`web` for `web@2`).
    pub fn base_name(&self) -> &str {
        self.instance.as_ref().map_or(&self.name, |i| &i.base)
    }

    /// Returns true if and only if `name` means this daemon: its own name, or the
    /// whole set it is a copy of.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.instance.as_ref().is_some_and(|i| i.base == name)
    }

    /// The variables dmgr sets for the daemon's process beside the file's: for a copy,
    /// `DMGR_INSTANCE` (its number) and `DMGR_INSTANCES` (how many copies the file
    /// asked for when it started). Not part of `env`: a change of `instances` does not
    /// restart the copies that stay.
    pub fn dmgr_variables(&self) -> Vec<(&'static str, String)> {
        match &self.instance {
            Some(i) => vec![
                ("DMGR_INSTANCE", i.number.to_string()),
                ("DMGR_INSTANCES", i.count.to_string()),
            ],
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_names_split_back() {
        assert_eq!(split_instance_name("web@2"), Some(("web", 2)));
        assert_eq!(split_instance_name("a.b-c@1000"), Some(("a.b-c", 1000)));
        for not in [
            "web", "web@", "web@0", "web@02", "web@+2", "web@1001", "@2", "w@b@2", "web@x",
        ] {
            assert_eq!(split_instance_name(not), None, "{not}");
        }
    }

    #[test]
    fn each_copy_gets_its_number_where_the_placeholder_stands() {
        let mut t = super::super::tests_support::minimal("web");
        t.process.command = vec!["serve".into(), "--port=80{instance}".into()];
        t.process.env.insert("PORT".into(), "80{instance}".into());
        t.process.log = PathBuf::from("/var/log/web-{instance}.log");
        t.supervision.ready = Some(ReadyCheck::Tcp("127.0.0.1:80{instance}".into()));
        let copies = expand(&t, 3);
        assert_eq!(copies.len(), 3);
        let c = &copies[1];
        assert_eq!(c.name, "web@2");
        assert_eq!(c.base_name(), "web");
        assert!(c.answers_to("web") && c.answers_to("web@2") && !c.answers_to("web@1"));
        assert_eq!(c.process.command, ["serve", "--port=802"]);
        assert_eq!(c.process.env["PORT"], "802");
        assert_eq!(c.process.log, Path::new("/var/log/web-2.log"));
        assert_eq!(
            c.supervision.ready,
            Some(ReadyCheck::Tcp("127.0.0.1:802".into()))
        );
        assert_eq!(
            c.dmgr_variables(),
            [
                ("DMGR_INSTANCE", "2".to_string()),
                ("DMGR_INSTANCES", "3".to_string())
            ]
        );
    }
}
