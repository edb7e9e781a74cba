//! The record's summary: every fact `list` reads from a state record, in one short
//! line of fixed order at the head of the record, so that `list` decodes no JSON
//! (issue 30).
//!
//! The summary is the record's first key, a JSON string, so the file is still the
//! JSON object that every earlier dmgr reads (unknown keys are ignored):
//!
//! ```text
//! {"brief":"s1 HASH FIELD FIELD ...","name":"web",...,"sum":"FNV-1a"}
//! ```
//!
//! `HASH` is [`quick_sum`] of every byte from the first field to the record's `sum`
//! key: the summary and the whole JSON body after it. A reader that checks it has
//! checked the whole record, as the FNV-1a `sum` does, at a small part of the cost
//! (FNV-1a takes one byte at a time, a multiplication each; this takes 32 bytes a
//! step in four independent lanes), so a record cut short, emptied or edited is
//! refused here as there, and then read (and refused) the old way. So is every record
//! without a summary: those of keepers started by an older dmgr, which keep running
//! across an upgrade, and those whose facts the summary cannot hold (a keeper that
//! holds `sockets`).
//!
//! Fields are separated by one space, in the order of [`put`] and [`take`]: numbers
//! in decimal, a process identity as `PID.START`, `~` for nothing, `+` before the
//! fields of an optional group, a list as its length then its items, a word for an
//! enum. A string or path is `=` then its bytes, with `%`, space, `"`, `\`, control
//! bytes and those past ASCII written `%XX`: the JSON string around it needs no escape
//! and is UTF-8 whatever the path.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::{
    ChecksSeen, Definition, ExitRecord, FileIdentity, HealthSeen, MemoryMechanism, MemorySeen,
    NotifySeen, Reason, StateRecord, Status,
};
use crate::config::{ProcessSpec, Supervision};
use crate::procinfo::ProcId;

/// How a record with a summary begins, up to the summary's version.
const HEAD: &[u8] = b"{\"brief\":\"s1 ";
/// The key that ends every record, before its FNV-1a checksum (see `record_file`).
const SUM_KEY: &[u8] = b",\"sum\":\"";

/// The record's JSON `body` (an object, as serde writes it) with the summary of
/// `record` as its first key, its quick sum filled in; `body` unchanged where the
/// summary cannot hold the record (a keeper that holds sockets).
pub(super) fn prepend(record: &StateRecord, body: Vec<u8>) -> Vec<u8> {
    if !record.process.sockets.is_empty() || !body.starts_with(b"{") {
        return body;
    }
    let mut out = Vec::with_capacity(body.len() + 320);
    out.extend_from_slice(HEAD);
    let hash_at = out.len();
    out.extend_from_slice(&[b'0'; 16]);
    let fields_at = out.len() + 1;
    put(&mut Writer(&mut out), record);
    out.extend_from_slice(b"\",");
    // The body less its opening brace; an empty object needs no comma.
    match &body[1..] {
        b"}" => {
            out.pop();
            out.push(b'}');
        }
        rest => out.extend_from_slice(rest),
    }
    // The quick sum covers what the FNV-1a sum will: up to the end of the body,
    // without its closing brace, before which `sum` goes.
    let end = out.len() - 1;
    let hash = format!("{:016x}", quick_sum(&out[fields_at..end]));
    out[hash_at..hash_at + 16].copy_from_slice(hash.as_bytes());
    out
}

/// The record as `list` reads it (see `state::brief`), from its summary; `None`
/// when the file has none, or it is not whole (the quick sum does not match), or it
/// does not parse: the caller then reads the JSON, checks and all.
pub(super) fn decode(bytes: &[u8]) -> Option<StateRecord> {
    let rest = bytes.strip_prefix(HEAD)?;
    let (hash, rest) = rest.split_at_checked(16)?;
    let rest = rest.strip_prefix(b" ")?;
    let fields_at = bytes.len() - rest.len();
    let summary_len = rest.iter().position(|&b| b == b'"')?;
    // The record alone in the file, as every dmgr that writes summaries leaves it:
    // `,"sum":"`, 16 digits, `"}`, a newline.
    let trimmed = bytes.trim_ascii_end();
    let end = trimmed.len().checked_sub(SUM_KEY.len() + 18)?;
    let tail = &trimmed[end..];
    if !tail.starts_with(SUM_KEY) || !tail.ends_with(b"\"}") || end < fields_at + summary_len {
        return None;
    }
    if parse_hex(hash)? != quick_sum(&bytes[fields_at..end]) {
        return None;
    }
    let mut tokens = Tokens(rest[..summary_len].split(is_space as fn(&u8) -> bool));
    let record = take(&mut tokens)?;
    tokens.0.next().is_none().then_some(record)
}

/// A checksum of `bytes` that tells a torn or edited record from a whole one, as
/// FNV-1a does, in a fraction of its time: four lanes, each taking one 8-byte word
/// a step (xor, multiply by an odd constant, rotate: each step is a bijection of the
/// word and of the lane, so a change to any one word always changes its lane's end
/// state), then the length and the lanes folded together and mixed. Its value is
/// part of the file format: it must never change.
pub(crate) fn quick_sum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let step = |lane: u64, word: &[u8]| {
        let mut w = [0u8; 8];
        w[..word.len()].copy_from_slice(word);
        (lane ^ u64::from_le_bytes(w))
            .wrapping_mul(K)
            .rotate_left(29)
    };
    let mut lanes: [u64; 4] = [
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    ];
    let mut chunks = bytes.chunks_exact(32);
    for chunk in &mut chunks {
        for (lane, word) in lanes.iter_mut().zip(chunk.chunks_exact(8)) {
            *lane = step(*lane, word);
        }
    }
    for (lane, word) in lanes.iter_mut().zip(chunks.remainder().chunks(8)) {
        *lane = step(*lane, word);
    }
    let mut hash = bytes.len() as u64;
    for lane in lanes {
        hash = step(hash, &lane.to_le_bytes());
    }
    // MurmurHash3's finaliser: every bit of the result depends on every bit before.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// Writes the fields of `r`'s summary, in order.
fn put(w: &mut Writer, r: &StateRecord) {
    w.string(&r.name);
    w.id(Some(r.keeper));
    w.id(r.daemon);
    w.word(r.status.as_str());
    w.number(r.started_at_ms);
    w.number(Some(r.restarts));
    match &r.last_exit {
        None => w.word("~"),
        Some(e) => {
            w.word("+");
            w.number(e.code);
            w.opt_string(e.signal.as_deref());
            w.number(Some(e.at_ms));
            w.number(Some(e.ran_ms));
        }
    }
    w.number(r.next_restart_ms);
    w.opt_string(r.error.as_deref());
    w.opt_string(r.log_error.as_deref());
    w.path(Some(&r.pidfile));
    w.path(Some(&r.log));
    w.path(r.stderr_log.as_deref());
    w.number(Some(r.command.len()));
    for arg in &r.command {
        w.string(arg);
    }
    w.path(Some(&r.process.log));
    w.path(r.process.stderr_log.as_deref());
    w.number(Some(r.output_pipes.len()));
    for &pipe in &r.output_pipes {
        w.number(Some(pipe));
    }
    w.opt_string(r.boot_id.as_deref());
    w.word(r.reason.map_or("~", Reason::as_str));
    w.path(r.cgroup.as_deref());
    w.opt_string(r.no_cgroup.as_deref());
    w.path(r.daemon_pidfile.as_deref());
    w.number(Some(u8::from(r.foreground)));
    w.number(r.env_file_digest);
    w.id(r.probe);
    w.id(r.holder);
    match &r.checks.health {
        None => w.word("~"),
        Some(h) => {
            w.word("+");
            w.number(Some(h.failures_in_row));
            w.number(Some(h.failures_allowed));
            w.number(Some(h.last_at_ms));
            w.opt_string(h.last_error.as_deref());
        }
    }
    match &r.checks.memory {
        None => w.word("~"),
        Some(m) => {
            w.word("+");
            w.number(Some(m.used_bytes));
            w.number(Some(m.max_bytes));
            w.number(Some(m.at_ms));
            w.word(m.mechanism.as_str());
            w.opt_string(m.sampling_reason.as_deref());
        }
    }
    match &r.definition {
        None => w.word("~"),
        Some(d) => {
            w.word("+");
            let f = &d.file;
            w.number(Some(f.dev));
            w.number(Some(f.ino));
            w.number(Some(f.size));
            w.number(Some(f.mtime_ns));
            w.number(Some(f.ctime_ns));
            w.number(Some(f.taken_ns));
            w.number(Some(d.after.len()));
            for name in &d.after {
                w.string(name);
            }
            w.opt_string(d.description.as_deref());
        }
    }
    w.number(r.next_run_ms);
    let n = &r.notify;
    w.opt_string(n.socket.as_deref());
    w.opt_string(n.status_text.as_deref());
    w.number(Some(n.refused));
    w.number(Some(n.malformed));
    w.opt_string(n.last_refused.as_deref());
}

/// Reads the fields [`put`] writes, into the record `list` reads: `process` holds
/// only the command and the log paths, `supervision` is the default and `history`
/// empty, as in `state::brief`.
fn take(t: &mut Tokens) -> Option<StateRecord> {
    let name = t.string()?;
    let keeper = t.id()??;
    let daemon = t.id()?;
    let status: Status = std::str::from_utf8(t.next()?).ok()?.parse().ok()?;
    let started_at_ms = t.number()?;
    let restarts = t.number()??;
    let last_exit = match t.group()? {
        false => None,
        true => Some(ExitRecord {
            code: t.number()?,
            signal: t.opt_string()?,
            at_ms: t.number()??,
            ran_ms: t.number()??,
        }),
    };
    let next_restart_ms = t.number()?;
    let error = t.opt_string()?;
    let log_error = t.opt_string()?;
    let pidfile = t.path()??;
    let log = t.path()??;
    let stderr_log = t.path()?;
    let command = t.list(Tokens::string)?;
    let process_log = t.path()??;
    let process_stderr_log = t.path()?;
    let output_pipes = t.list(|t| t.number()?)?;
    let boot_id = t.opt_string()?;
    let reason = match t.next()? {
        b"~" => None,
        word => Some(Reason::from_name(word)?),
    };
    let cgroup = t.path()?;
    let no_cgroup = t.opt_string()?;
    let daemon_pidfile = t.path()?;
    let foreground = match t.next()? {
        b"0" => false,
        b"1" => true,
        _ => return None,
    };
    let env_file_digest = t.number()?;
    let probe = t.id()?;
    let holder = t.id()?;
    let health = match t.group()? {
        false => None,
        true => Some(HealthSeen {
            failures_in_row: t.number()??,
            failures_allowed: t.number()??,
            last_at_ms: t.number()??,
            last_error: t.opt_string()?,
        }),
    };
    let memory = match t.group()? {
        false => None,
        true => Some(MemorySeen {
            used_bytes: t.number()??,
            max_bytes: t.number()??,
            at_ms: t.number()??,
            mechanism: mechanism(t.next()?)?,
            sampling_reason: t.opt_string()?,
        }),
    };
    let definition = match t.group()? {
        false => None,
        true => Some(Definition {
            file: FileIdentity {
                dev: t.number()??,
                ino: t.number()??,
                size: t.number()??,
                mtime_ns: t.number()??,
                ctime_ns: t.number()??,
                taken_ns: t.number()??,
            },
            after: t.list(Tokens::string)?,
            description: t.opt_string()?,
        }),
    };
    let next_run_ms = t.number()?;
    let notify = NotifySeen {
        socket: t.opt_string()?,
        status_text: t.opt_string()?,
        refused: t.number()??,
        malformed: t.number()??,
        last_refused: t.opt_string()?,
    };
    Some(StateRecord {
        process: ProcessSpec {
            command: command.clone(),
            log: process_log,
            stderr_log: process_stderr_log,
            ..ProcessSpec::default()
        },
        supervision: Supervision::default(),
        history: Vec::new(),
        name,
        keeper,
        daemon,
        status,
        started_at_ms,
        restarts,
        last_exit,
        next_restart_ms,
        error,
        log_error,
        pidfile,
        log,
        stderr_log,
        command,
        output_pipes,
        boot_id,
        reason,
        cgroup,
        no_cgroup,
        daemon_pidfile,
        foreground,
        env_file_digest,
        probe,
        holder,
        checks: ChecksSeen { health, memory },
        definition,
        next_run_ms,
        notify,
    })
}

/// The mechanism named `word`, as [`MemoryMechanism::as_str`] writes it.
fn mechanism(word: &[u8]) -> Option<MemoryMechanism> {
    [MemoryMechanism::Sampled, MemoryMechanism::CgroupEvents]
        .into_iter()
        .find(|m| m.as_str().as_bytes() == word)
}

/// The separator of fields.
fn is_space(b: &u8) -> bool {
    *b == b' '
}

/// Sixteen lowercase hexadecimal digits as a number.
fn parse_hex(digits: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(digits).ok()?;
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        .then(|| u64::from_str_radix(text, 16).ok())?
}

/// The summary being written.
struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    /// A field as it is, after the separator.
    fn word(&mut self, word: &str) {
        self.0.push(b' ');
        self.0.extend_from_slice(word.as_bytes());
    }

    /// A number, or `~`.
    fn number(&mut self, n: Option<impl std::fmt::Display>) {
        use std::io::Write;
        self.0.push(b' ');
        let _ = match n {
            Some(n) => write!(self.0, "{n}"),
            None => write!(self.0, "~"),
        };
    }

    /// A process identity, `PID.START`, or `~`.
    fn id(&mut self, id: Option<ProcId>) {
        use std::io::Write;
        self.0.push(b' ');
        let _ = match id {
            Some(id) => write!(self.0, "{}.{}", id.pid, id.start),
            None => write!(self.0, "~"),
        };
    }

    /// A string, `=` and its bytes escaped.
    fn string(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    /// A string or `~`.
    fn opt_string(&mut self, text: Option<&str>) {
        match text {
            Some(text) => self.string(text),
            None => self.word("~"),
        }
    }

    /// A path or `~`.
    fn path(&mut self, path: Option<&Path>) {
        match path {
            Some(path) => self.bytes(path.as_os_str().as_bytes()),
            None => self.word("~"),
        }
    }

    /// `=` and `bytes`, each that JSON or the separator would mind as `%XX`.
    fn bytes(&mut self, bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        self.0.extend_from_slice(b" =");
        for &b in bytes {
            if matches!(b, b'%' | b' ' | b'"' | b'\\' | 0..=0x1f | 0x7f..) {
                self.0.extend_from_slice(&[
                    b'%',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
            } else {
                self.0.push(b);
            }
        }
    }
}

/// The summary's fields, in order.
struct Tokens<'a>(std::slice::Split<'a, u8, fn(&u8) -> bool>);

impl<'a> Tokens<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        self.0.next()
    }

    /// A number: `Some(None)` for `~`, `None` when the field is not one.
    fn number<T: std::str::FromStr>(&mut self) -> Option<Option<T>> {
        match self.next()? {
            b"~" => Some(None),
            digits => Some(Some(std::str::from_utf8(digits).ok()?.parse().ok()?)),
        }
    }

    /// `PID.START`: `Some(None)` for `~`.
    fn id(&mut self) -> Option<Option<ProcId>> {
        let field = self.next()?;
        if field == b"~" {
            return Some(None);
        }
        let text = std::str::from_utf8(field).ok()?;
        let (pid, start) = text.split_once('.')?;
        Some(Some(ProcId {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        }))
    }

    /// `~` (false) or `+` (true, the group's fields follow).
    fn group(&mut self) -> Option<bool> {
        match self.next()? {
            b"~" => Some(false),
            b"+" => Some(true),
            _ => None,
        }
    }

    /// A length, then as many items read by `item`.
    fn list<T>(&mut self, item: impl Fn(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let len: usize = self.number()??;
        // No more items than fields left could hold; a garbled length allocates nothing.
        let mut items = Vec::with_capacity(len.min(64));
        for _ in 0..len {
            items.push(item(self)?);
        }
        Some(items)
    }

    /// The unescaped bytes of a string field: `Some(None)` for `~`.
    fn raw(&mut self) -> Option<Option<Vec<u8>>> {
        let field = self.next()?;
        if field == b"~" {
            return Some(None);
        }
        let escaped = field.strip_prefix(b"=")?;
        let mut bytes = Vec::with_capacity(escaped.len());
        let mut rest = escaped;
        while let Some((&b, after)) = rest.split_first() {
            if b == b'%' {
                let (hex, after) = after.split_at_checked(2)?;
                let hex = std::str::from_utf8(hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
                rest = after;
            } else {
                bytes.push(b);
                rest = after;
            }
        }
        Some(Some(bytes))
    }

    /// A string (UTF-8).
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.raw()??).ok()
    }

    /// A string or `~`.
    fn opt_string(&mut self) -> Option<Option<String>> {
        match self.raw()? {
            None => Some(None),
            Some(bytes) => Some(Some(String::from_utf8(bytes).ok()?)),
        }
    }

    /// A path: `Some(None)` for `~`.
    fn path(&mut self) -> Option<Option<PathBuf>> {
        Some(self.raw()?.map(|b| PathBuf::from(OsString::from_vec(b))))
    }
}

#[cfg(test)]
mod tests;
