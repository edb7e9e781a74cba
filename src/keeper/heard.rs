//! What the daemon says of itself, read for the machine: the datagrams on a notify
//! daemon's socket (`sd_notify`), and `ready = { fd }`'s newline. Each becomes an
//! [`Input`]; what it means is the machine's to decide.

use nix::errno::Errno;

use super::core::machine::{Input, Now};
use super::{sd_notify, Keeper};

impl Keeper {
    /// Reads `ready = { fd }`'s pipe: a newline is the daemon's word that it is ready
    /// (s6's readiness notification); the pipe is closed then, or at its end.
    #[inline(never)]
    pub(super) fn read_ready_fd(&mut self, now: Now) {
        let Some(fd) = &self.ready_fd else {
            return;
        };
        let mut buffer = [0u8; 512];
        let (said, ended) = match nix::unistd::read(fd, &mut buffer) {
            Ok(0) => (false, true),
            Ok(n) => (buffer[..n].contains(&b'\n'), false),
            Err(Errno::EAGAIN | Errno::EINTR) => (false, false),
            Err(_) => (false, true),
        };
        if said || ended {
            self.ready_fd = None;
        }
        if said {
            self.feed(Input::SaidReady, now);
        }
    }

    /// Reads every datagram waiting on the notify socket, parsed, for the machine.
    #[inline(never)]
    pub(super) fn read_notify_socket(&mut self, now: Now) {
        // Bounded per wake-up: a sender that floods the socket cannot hold the keeper
        // away from its signals.
        for _ in 0..64 {
            let mut buffer = [0u8; sd_notify::message::MAX_DATAGRAM];
            let Some(datagram) = self
                .notify_socket
                .as_ref()
                .and_then(|s| s.receive(&mut buffer))
            else {
                return;
            };
            let message = sd_notify::message::parse(&buffer[..datagram.len], datagram.truncated);
            self.feed(
                Input::Notify {
                    pid: datagram.pid,
                    message,
                },
                now,
            );
            // `BARRIER=1`: the sender waits until the descriptor it passed is closed,
            // once everything before it is handled; dropped here.
            drop(datagram.fds);
        }
    }
}
