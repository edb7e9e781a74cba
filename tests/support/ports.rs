//! TCP ports for the servers the tests run (nginx, redis, haproxy, gunicorn, ...),
//! which bind their port themselves, some time after the test picked it.
//!
//! A port the kernel hands out for `bind(127.0.0.1:0)` and that the test then closes
//! is free only for a moment: it lies in the ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`), where every other `bind(..:0)` and the
//! source port of every outgoing connection (a readiness probe's, a load thread's, a
//! client's, and their TIME_WAITs) come from, in this test binary and in every other
//! one on the machine. A server that finds its port so taken fails to start (nginx:
//! "bind() to 127.0.0.1:P failed (98: Address already in use)").
//!
//! So a test's port lies below the ephemeral range, where the kernel never picks one
//! by itself, and is reserved while the test runs: [`Port`] binds the abstract Unix
//! socket `dmgr-test-port-P`, which no other test (of this binary or another run on
//! the machine, CI's or a developer's) can bind until the reservation is dropped,
//! and the kernel frees even if the test process is killed. A port something else
//! listens on is passed over.

use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port a test uses: above the well-known services a developer's machine
/// may run on fixed ports (8080, 9090, ...).
const LOWEST: u16 = 10_000;

/// A TCP port on 127.0.0.1 that nothing listened on when it was reserved, and that no
/// other test is handed until this is dropped.
#[derive(Debug)]
pub struct Port {
    number: u16,
    _reservation: UnixListener,
}

impl Port {
    /// The port's number.
    pub fn number(&self) -> u16 {
        self.number
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.number.fmt(f)
    }
}

/// The kernel's ephemeral port range, `(low, high)`: the ports it picks by itself.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut numbers = text.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((numbers.next()??, numbers.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// The ports a test may use: from [`LOWEST`] to below the ephemeral range, or above
/// it where the range starts too low to leave room below.
fn candidates() -> std::ops::Range<u32> {
    let (low, high) = ephemeral_range();
    if low >= LOWEST + 1000 {
        u32::from(LOWEST)..u32::from(low)
    } else {
        u32::from(high) + 1..65536
    }
}

/// Where in the candidates this process starts looking, and looks next: spread over
/// the range by process ID, so that parallel test runs rarely try the same ports.
fn next_offset(len: u32) -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let seed = std::process::id().wrapping_mul(7919) % len;
    let _ = NEXT.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
    NEXT.fetch_add(1, Ordering::Relaxed) % len
}

impl Port {
    /// Reserves `port` if no other test holds it and nothing listens on it.
    pub fn reserve(port: u16) -> Option<Port> {
        try_reserve(port)
    }
}

/// Reserves `port` if no other test holds it and nothing listens on it.
fn try_reserve(port: u16) -> Option<Port> {
    let name = format!("dmgr-test-port-{port}");
    let address = SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
    let reservation = UnixListener::bind_addr(&address).ok()?;
    // A server of another program (or a test's server that outlived its reservation)
    // may listen on it: pass it over.
    TcpListener::bind(("127.0.0.1", port)).ok()?;
    Some(Port {
        number: port,
        _reservation: reservation,
    })
}

/// A port for a server the test runs, reserved until the result is dropped: keep it
/// alive at least as long as the server (declare it before the `TestEnv`).
#[track_caller]
pub fn free_port() -> Port {
    let range = candidates();
    let len = range.end - range.start;
    for _ in 0..len {
        let port = (range.start + next_offset(len)) as u16;
        if let Some(reserved) = try_reserve(port) {
            return reserved;
        }
    }
    panic!("no free TCP port in {range:?}");
}

/// `count` (at most 9) reserved ports numbered `PREFIX1`, `PREFIX2`, ... (the ports
/// `10 * PREFIX + n`), for copies of a daemon that name their port as `{prefix}{n}`;
/// returns the prefix and the reservations.
#[track_caller]
pub fn free_port_decade(count: u16) -> (u16, Vec<Port>) {
    assert!((1..=9).contains(&count), "a decade holds 9 ports");
    let range = candidates();
    let decades = (range.start.div_ceil(10), (range.end - 10) / 10);
    let len = decades.1 - decades.0;
    for _ in 0..len {
        let prefix = (decades.0 + next_offset(len)) as u16;
        let ports: Vec<Port> = (1..=count)
            .map_while(|n| try_reserve(prefix * 10 + n))
            .collect();
        if ports.len() == usize::from(count) {
            return (prefix, ports);
        }
    }
    panic!("no {count} free TCP ports PREFIX1.. in {range:?}");
}
