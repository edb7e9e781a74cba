//! `sockets` as systemd has them: a `PREFIX-NAME.socket` unit beside the service, with
//! one `ListenStream=` or `ListenDatagram=` line a socket, in the order written, so
//! that systemd passes them at the fds dmgr does (`{fd:NAME}` was made a number from
//! that order when the file was loaded). The service requires it and is ordered
//! after it; a unit of the same name is the service systemd starts for it.
//!
//! `FileDescriptorName=` names every fd of one socket unit alike, and systemd passes
//! the fds of several socket units in no set order: with one socket, its name; with
//! more, the daemon's name, and `LISTEN_FDNAMES` differs from dmgr's (said in a
//! comment).

use std::net::ToSocketAddrs;

use super::super::{Lost, Source};
use super::{header, path, value, write_section, File, Names, Unit};
use crate::config::{Daemon, SocketAddress};

impl Names {
    /// The socket unit of daemon `name`: `PREFIX-NAME.socket`.
    pub(crate) fn socket(&self, name: &str) -> String {
        format!("{}-{name}.socket", self.prefix)
    }
}

/// `sockets`: the socket unit, and the service's `Requires=` and `After=` on it.
pub(super) fn sockets(d: &Daemon, source: &Source, unit: &mut Unit) {
    let sockets = &d.process.sockets;
    if sockets.is_empty() {
        return;
    }
    if d.instance.is_some() {
        unit.lost.push(Lost::new(
            "sockets",
            "not exported for the copies of a daemon with `instances`: each copy binds its own addresses, which a template socket unit cannot name",
        ));
        return;
    }
    let names = Names::of(source);
    let name = names.socket(&d.name);
    let mut text = header(&d.file, &name);
    write_section(
        &mut text,
        "Unit",
        &[
            format!(
                "Description={}",
                value(&format!("dmgr sockets of {}", d.name))
            ),
            format!("PartOf={}", names.target()),
        ],
    );
    let mut lines = Vec::new();
    let mut unix = false;
    for socket in sockets {
        let (key, address) = match &socket.address {
            SocketAddress::Tcp(a) => ("ListenStream", resolved(a, &mut unit.lost)),
            SocketAddress::Udp(a) => ("ListenDatagram", resolved(a, &mut unit.lost)),
            SocketAddress::Unix(p) => {
                unix = true;
                ("ListenStream", path(p))
            }
        };
        lines.push(format!("{key}={address}"));
    }
    let fd_name = match sockets.as_slice() {
        [one] => one.name.clone(),
        _ => {
            let dmgr: Vec<&str> = sockets.iter().map(|s| s.name.as_str()).collect();
            unit.lost.push(Lost::new(
                "sockets",
                format!(
                    "systemd names every fd of one socket unit alike: LISTEN_FDNAMES is {0}:...:{0}, not {1} as under dmgr; the fd numbers are the same",
                    d.name,
                    dmgr.join(":")
                ),
            ));
            d.name.clone()
        }
    };
    lines.push(format!("FileDescriptorName={}", value(&fd_name)));
    if unix {
        lines.push("SocketMode=0660".into());
        if let Some(user) = &d.process.user {
            lines.push(format!("SocketUser={}", value(user)));
        }
        if let Some(group) = &d.process.group {
            lines.push(format!("SocketGroup={}", value(group)));
        }
    }
    write_section(&mut text, "Socket", &lines);
    unit.files.push(File { name, text });
    let socket_unit = names.socket(&d.name);
    unit.unit.push(format!("Requires={socket_unit}"));
    unit.unit.push(format!("After={socket_unit}"));
    unit.service.push(format!("Sockets={socket_unit}"));
}

/// `restart_mode = "start-first"`: systemd restarts stop-then-start.
pub(super) fn restart_mode(d: &Daemon, _: &Source, unit: &mut Unit) {
    if d.supervision.restart_mode == crate::config::RestartMode::StartFirst {
        unit.lost.push(Lost::new(
            "restart_mode = \"start-first\"",
            "systemd stops the old process before it starts the new one; the socket unit holds the sockets meanwhile, so clients wait instead of being refused",
        ));
    }
}

/// `host:port` as systemd takes it: an IP address, a host name resolved now (noted).
fn resolved(text: &str, lost: &mut Vec<Lost>) -> String {
    let host = text.rsplit_once(':').map_or(text, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<std::net::IpAddr>().is_ok() {
        return text.to_string();
    }
    match text.to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(address) => {
            lost.push(Lost::new(
                format!("sockets: {text}"),
                format!("systemd takes no host name: resolved to {address} when exported"),
            ));
            address.to_string()
        }
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tests_support::Files;
    use super::super::service;
    use super::*;

    #[test]
    fn sockets_become_a_socket_unit_the_service_requires_in_the_order_written() {
        let files = Files::new();
        let d = files.daemon(
            "web",
            "command = [\"/usr/bin/uvicorn\", \"--fd\", \"{fd:http}\"]\nuser = \"www-data\"\n\
             sockets = { http = \"tcp://[::1]:8080\", dns = \"udp://127.0.0.1:5353\", admin = \"unix:/run/web/admin.sock\" }\n",
        );
        let source = files.source();
        let names = Names::of(&source);
        let (unit, extra) = service(&d, &source);
        let socket = extra
            .iter()
            .find(|f| f.name == names.socket("web"))
            .expect("a socket unit");
        let lines: Vec<&str> = socket
            .text
            .lines()
            .skip_while(|l| *l != "[Socket]")
            .collect();
        assert_eq!(
            lines,
            [
                "[Socket]",
                "ListenStream=[::1]:8080",
                "ListenDatagram=127.0.0.1:5353",
                "ListenStream=/run/web/admin.sock",
                "FileDescriptorName=web",
                "SocketMode=0660",
                "SocketUser=www-data",
            ]
        );
        let socket_unit = names.socket("web");
        for line in [
            format!("Requires={socket_unit}"),
            format!("After={socket_unit}"),
            format!("Sockets={socket_unit}"),
            "ExecStart=/usr/bin/uvicorn --fd 3".to_string(),
        ] {
            assert!(
                unit.text.lines().any(|l| l == line),
                "{line} in:\n{}",
                unit.text
            );
        }
        assert!(unit
            .text
            .contains("LISTEN_FDNAMES is web:...:web, not http:dns:admin"));
        // One socket keeps its own name.
        let d = files.daemon(
            "one",
            "command = \"/bin/sleep 1\"\nsockets = { http = \"tcp://127.0.0.1:8080\" }\n",
        );
        let (_, extra) = service(&d, &source);
        assert!(extra[0].text.contains("\nFileDescriptorName=http\n"));
    }
}
