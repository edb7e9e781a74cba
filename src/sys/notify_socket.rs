//! The receiving end of a notify daemon's socket: a non-blocking `AF_UNIX` datagram
//! socket with `SO_PASSCRED`, so that the kernel attaches each sender's credentials
//! (`SCM_CREDENTIALS`) whatever the sender sends, bound at a path in the run
//! directory or, where that path does not fit `sun_path`, at a Linux abstract name.
//! Descriptors a sender passes (`BARRIER=1`'s pipe, `FDSTORE=1`'s, which dmgr does
//! not keep) come back owned, so that dropping them closes them.

use std::ffi::OsString;
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{
    self, setsockopt, sockopt, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    UnixAddr, UnixCredentials,
};

/// The most descriptors one message can carry (the kernel's `SCM_MAX_FD`): room for
/// them all, so that the control data is never cut short, which would leave passed
/// descriptors open in the keeper with nothing to close them.
const MAX_PASSED_FDS: usize = 253;

/// Where a notify socket is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotifyAddress {
    /// A socket file.
    Path(PathBuf),
    /// A name in the Linux abstract namespace (without the leading NUL).
    Abstract(Vec<u8>),
}

impl NotifyAddress {
    /// The value of `NOTIFY_SOCKET` that names it: the path, or `@` and the name, as
    /// sd_notify(3) reads it.
    pub(crate) fn env_value(&self) -> OsString {
        match self {
            NotifyAddress::Path(path) => path.clone().into_os_string(),
            NotifyAddress::Abstract(name) => {
                let mut value = b"@".to_vec();
                value.extend_from_slice(name);
                OsString::from_vec(value)
            }
        }
    }
}

/// One datagram received.
#[derive(Debug)]
pub(crate) struct Datagram {
    /// How many bytes of the buffer it filled.
    pub(crate) len: usize,
    /// Whether it was longer than the buffer (and cut short).
    pub(crate) truncated: bool,
    /// The sender's PID in the keeper's PID namespace; 0 when it has none there.
    pub(crate) pid: i32,
    /// The sender's user ID.
    pub(crate) uid: u32,
    /// Descriptors it passed, closed when dropped.
    pub(crate) fds: Vec<OwnedFd>,
}

/// A bound notify socket; the socket file, if any, is removed by [`NotifySocket::remove`].
#[derive(Debug)]
pub(crate) struct NotifySocket {
    fd: OwnedFd,
    address: NotifyAddress,
}

impl NotifySocket {
    /// Binds a socket at `path`, replacing a socket file left there (by a keeper that
    /// was killed: the caller holds the daemon's lock), or at the abstract `name()`
    /// when `path` is too long for a socket address. The socket file is writable by
    /// every user, as systemd's own notify socket is: a daemon that drops to its
    /// `user` must reach it, and the sender check, not the file mode, decides whom
    /// the keeper believes.
    pub(crate) fn bind(path: &Path, name: impl FnOnce() -> Vec<u8>) -> io::Result<NotifySocket> {
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        setsockopt(&fd, sockopt::PassCred, &true)?;
        let address = match UnixAddr::new(path) {
            Ok(unix) => {
                match std::fs::symlink_metadata(path) {
                    Ok(meta) if is_socket(&meta) => std::fs::remove_file(path)?,
                    // Not a socket: not dmgr's to remove; bind fails and says so.
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                socket::bind(fd.as_raw_fd(), &unix)?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
                NotifyAddress::Path(path.to_path_buf())
            }
            Err(Errno::ENAMETOOLONG) => {
                let name = name();
                socket::bind(fd.as_raw_fd(), &UnixAddr::new_abstract(&name)?)?;
                NotifyAddress::Abstract(name)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(NotifySocket { fd, address })
    }

    /// Where it is bound.
    pub(crate) fn address(&self) -> &NotifyAddress {
        &self.address
    }

    /// Receives one datagram into `buffer`; `None` once none is waiting (or on an
    /// error, which the next wake-up meets again).
    pub(crate) fn receive(&self, buffer: &mut [u8]) -> Option<Datagram> {
        let mut control = nix::cmsg_space!(UnixCredentials, [RawFd; MAX_PASSED_FDS]);
        let mut iov = [IoSliceMut::new(buffer)];
        let message = loop {
            match socket::recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut control),
                MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(message) => break message,
                Err(Errno::EINTR) => continue,
                Err(_) => return None,
            }
        };
        let mut datagram = Datagram {
            len: message.bytes,
            truncated: message.flags.contains(MsgFlags::MSG_TRUNC),
            pid: 0,
            uid: u32::MAX,
            fds: Vec::new(),
        };
        // The control buffer holds every descriptor a message can carry, so it is
        // never cut short (which nix reports as ENOBUFS).
        if let Ok(cmsgs) = message.cmsgs() {
            for cmsg in cmsgs {
                match cmsg {
                    ControlMessageOwned::ScmCredentials(creds) => {
                        datagram.pid = creds.pid();
                        datagram.uid = creds.uid();
                    }
                    ControlMessageOwned::ScmRights(fds) => {
                        datagram.fds.extend(fds.into_iter().map(owned));
                    }
                    _ => {}
                }
            }
        }
        Some(datagram)
    }

    /// Closes the socket and removes its file, if it has one.
    pub(crate) fn remove(self) {
        if let NotifyAddress::Path(path) = &self.address {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl AsFd for NotifySocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn is_socket(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_socket()
}

/// Takes ownership of a descriptor the kernel just installed in this process.
fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` came in an SCM_RIGHTS message that recvmsg(2) has just installed
    // in this process's table; nothing else knows of it, so this is its one owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A name for an abstract socket that no other process uses: `dmgr-notify-`, the
/// daemon's name and 16 random hex digits (from the kernel's random source, or the
/// clock and PID where that cannot be read).
pub(crate) fn abstract_name(daemon: &str) -> Vec<u8> {
    let mut random = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut random));
    if read.is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        random = (nanos ^ (u64::from(std::process::id()) << 32)).to_le_bytes();
    }
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("dmgr-notify-{daemon}-{hex}").into_bytes()
}
