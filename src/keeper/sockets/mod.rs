//! The daemon's held sockets (`sockets`, issue 27): bound once by the keeper, as root
//! where it runs as root and before the daemon drops to its `user` (so that an
//! unprivileged daemon can serve port 80), and held open, close-on-exec, for the
//! keeper's whole life. Each start of the daemon gets them at fds 3, 4, ... in the
//! order written (the child moves them there between fork and exec, see
//! `sys::spawn_gated`), with `LISTEN_FDS` and `LISTEN_FDNAMES` from [`listen_env`]
//! and `LISTEN_PID` written by the child itself. A connection that arrives while the
//! daemon restarts or crashes waits in the kernel's queue instead of being refused.
//!
//! A unix socket's file is made with mode 0660 and given to the daemon's user and
//! group; a stale socket file nobody listens on is replaced, anything else there is
//! an error. The file is left in place when the keeper ends, as systemd's
//! `RemoveOnStop=no` does.

mod holders;

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, UnixAddr,
};

use crate::config::{Socket, SocketAddress};
use crate::sys::Credentials;

/// The sockets a keeper (or `dmgr run`) holds for its daemon, in the order written.
#[derive(Debug, Default)]
pub(crate) struct HeldSockets {
    held: Vec<OwnedFd>,
}

impl HeldSockets {
    /// Binds every socket of `sockets`; a unix socket's file goes to `owner` (the
    /// daemon's credentials) when there is one. The first failure is the error, with
    /// the socket's name and address, the reason and who holds the address where
    /// `/proc` tells; the sockets bound before it are closed.
    pub(crate) fn bind(
        sockets: &[Socket],
        owner: Option<&Credentials>,
    ) -> Result<HeldSockets, String> {
        let mut held = Vec::with_capacity(sockets.len());
        for socket in sockets {
            let fd = bind_one(&socket.address, owner).map_err(|why| {
                let mut message = format!(
                    "cannot bind socket `{}` ({}): {why}",
                    socket.name, socket.address
                );
                let holders = holders::of(&socket.address);
                if !holders.is_empty() {
                    message.push_str(&format!("; held by {}", holders.join(", ")));
                }
                message
            })?;
            held.push(fd);
        }
        Ok(HeldSockets { held })
    }

    /// The held sockets, to pass at fds 3, 4, ...
    pub(crate) fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.held.iter().map(AsFd::as_fd).collect()
    }
}

/// `LISTEN_FDS` and `LISTEN_FDNAMES` for `sockets` (none without sockets);
/// `LISTEN_PID` is the child's own, written after the fork.
pub(crate) fn listen_env(sockets: &[Socket]) -> Vec<(OsString, OsString)> {
    if sockets.is_empty() {
        return Vec::new();
    }
    let names: Vec<&str> = sockets.iter().map(|s| s.name.as_str()).collect();
    vec![
        ("LISTEN_FDS".into(), sockets.len().to_string().into()),
        ("LISTEN_FDNAMES".into(), names.join(":").into()),
    ]
}

/// Binds one address and, for a stream, listens with the system's largest backlog
/// (as systemd's `Backlog=` default), so that clients queue during a restart.
fn bind_one(address: &SocketAddress, owner: Option<&Credentials>) -> Result<OwnedFd, String> {
    match address {
        SocketAddress::Tcp(text) => bind_inet(text, SockType::Stream),
        SocketAddress::Udp(text) => bind_inet(text, SockType::Datagram),
        SocketAddress::Unix(path) => bind_unix(path, owner),
    }
}

fn bind_inet(text: &str, kind: SockType) -> Result<OwnedFd, String> {
    let address: SocketAddr = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {text}: {e}"))?
        .next()
        .ok_or_else(|| format!("{text} resolves to no address"))?;
    let family = match address {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(family, kind, SockFlag::SOCK_CLOEXEC, None).map_err(reason)?;
    // A listener of an earlier keeper may have left connections in TIME_WAIT.
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(reason)?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(address)).map_err(reason)?;
    if kind == SockType::Stream {
        socket::listen(&fd, Backlog::MAXCONN).map_err(reason)?;
    }
    Ok(fd)
}

fn bind_unix(path: &Path, owner: Option<&Credentials>) -> Result<OwnedFd, String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A socket someone still answers on is theirs; one nobody answers on is
            // what a keeper that ended left behind.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(Errno::EADDRINUSE.desc().to_string());
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot remove the stale socket file: {e}"))?;
        }
        Ok(_) => {
            return Err(format!(
                "{} exists and is not a socket; remove it or choose another path",
                path.display()
            ))
        }
        Err(_) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
        }
    }
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(reason)?;
    let address = UnixAddr::new(path).map_err(reason)?;
    // Made with no access for others from the start, then given its mode and owner.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = socket::bind(fd.as_raw_fd(), &address);
    nix::sys::stat::umask(old);
    bound.map_err(reason)?;
    if let Some(owner) = owner {
        std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid))
            .map_err(|e| format!("cannot give the socket file to uid {}: {e}", owner.uid))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("cannot set the socket file's mode: {e}"))?;
    socket::listen(&fd, Backlog::MAXCONN).map_err(reason)?;
    Ok(fd)
}

/// The OS reason in words.
fn reason(errno: Errno) -> String {
    errno.desc().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(name: &str, address: &str) -> Socket {
        Socket {
            name: name.into(),
            address: SocketAddress::Tcp(address.into()),
        }
    }

    #[test]
    fn the_environment_names_every_socket_in_order() {
        let env = listen_env(&[tcp("http", "127.0.0.1:1"), tcp("admin", "127.0.0.1:2")]);
        assert_eq!(
            env,
            [
                ("LISTEN_FDS".into(), "2".into()),
                ("LISTEN_FDNAMES".into(), "http:admin".into())
            ]
        );
        assert!(listen_env(&[]).is_empty());
    }

    #[test]
    fn an_address_in_use_names_it_and_who_holds_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let err = HeldSockets::bind(&[tcp("http", &address)], None).unwrap_err();
        assert!(
            err.contains(&format!("`http` (tcp://{address})"))
                && err.contains("Address already in use")
                && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
    }

    #[test]
    fn a_held_listener_queues_connections_nobody_accepts() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = free.local_addr().unwrap();
        drop(free);
        let held = HeldSockets::bind(&[tcp("http", &address.to_string())], None).unwrap();
        assert_eq!(held.fds().len(), 1);
        // Nobody accepts: the kernel completes the handshake and queues it.
        std::net::TcpStream::connect(address).unwrap();
    }

    #[test]
    fn a_unix_socket_replaces_a_stale_file_and_gets_mode_0660() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/web.sock");
        let socket = Socket {
            name: "web".into(),
            address: SocketAddress::Unix(path.clone()),
        };
        let first = HeldSockets::bind(std::slice::from_ref(&socket), None).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
        // Still listened on: refused.
        let err = HeldSockets::bind(std::slice::from_ref(&socket), None).unwrap_err();
        assert!(err.contains("Address already in use"), "{err}");
        drop(first);
        // Left behind: replaced.
        let _again = HeldSockets::bind(&[socket], None).unwrap();
        std::os::unix::net::UnixStream::connect(&path).unwrap();
    }
}
