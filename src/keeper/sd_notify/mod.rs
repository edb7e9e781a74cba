//! The notify protocol (sd_notify(3)) as a notify daemon's keeper speaks it: the
//! messages ([`message`], pure), whom it believes ([`sender`], pure) and the socket
//! they arrive on (`sys::notify_socket`, bound in the run directory).
//!
//! The keeper's core turns what a believed message says into its transitions (a
//! start ended by `READY=1`, a reload's verdict, a main-PID hand-over, a watchdog
//! ping); this module only reads and judges.

pub(crate) mod message;
pub(crate) mod protocol;
pub(crate) mod sender;

#[cfg(test)]
pub(crate) use message::{parse, Notification, MAX_DATAGRAM};

/// The socket of the daemon `name` in `run_dir`: `RUN_DIR/NAME.notify`.
pub(crate) fn socket_path(run_dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    run_dir.join(format!("{name}.notify"))
}

#[cfg(test)]
mod tests;
