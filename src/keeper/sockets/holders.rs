//! Who holds an address the keeper could not bind, as far as `/proc` tells: the
//! socket's inode from `/proc/net/{tcp,tcp6,udp,udp6,unix}`, then the processes with
//! a descriptor on it (`/proc/PID/fd/N -> socket:[INODE]`). Only another user's
//! processes that we may not look into stay unnamed.

use std::path::Path;

use crate::config::SocketAddress;

/// The most holders named in one message.
const MAX_NAMED: usize = 3;

/// `pid N (command)` of each process holding a socket bound where `address` is.
pub(super) fn of(address: &SocketAddress) -> Vec<String> {
    let inodes = match address {
        SocketAddress::Tcp(text) => inet_inodes(text, &["tcp", "tcp6"], true),
        SocketAddress::Udp(text) => inet_inodes(text, &["udp", "udp6"], false),
        SocketAddress::Unix(path) => unix_inodes(path),
    };
    if inodes.is_empty() {
        return Vec::new();
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let mut found = Vec::new();
    for pid in crate::procinfo::pids() {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
        });
        if holds {
            let command = crate::procinfo::command_line(pid, 80).unwrap_or_default();
            found.push(format!("pid {pid} ({command})"));
            if found.len() == MAX_NAMED {
                break;
            }
        }
    }
    found
}

/// The inodes of the sockets in the `tables` of `/proc/net` bound to the port of
/// `text` (`host:port`), listening ones only for a stream.
fn inet_inodes(text: &str, tables: &[&str], listening: bool) -> Vec<u64> {
    let Some(port) = text
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
    else {
        return Vec::new();
    };
    let mut inodes = Vec::new();
    for table in tables {
        let Ok(text) = std::fs::read_to_string(format!("/proc/net/{table}")) else {
            continue;
        };
        inodes.extend(text.lines().skip(1).filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let inode: u64 = fields.get(9)?.parse().ok()?;
            let (_, hex_port) = local.rsplit_once(':')?;
            let bound = u16::from_str_radix(hex_port, 16).ok()?;
            // 0A is TCP_LISTEN.
            (bound == port && (!listening || *state == "0A") && inode != 0).then_some(inode)
        }));
    }
    inodes
}

/// The inodes of the unix sockets bound at `path`.
fn unix_inodes(path: &Path) -> Vec<u64> {
    let Ok(text) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let bound = fields.get(7)?;
            (Path::new(bound) == path)
                .then(|| fields.get(6)?.parse().ok())
                .flatten()
        })
        .collect()
}
