//! `sockets` and `{fd:NAME}` as `check` sees them.

use std::path::Path;

use super::tests::{load_full, load_text, problems};
use super::*;

#[test]
fn sockets_keep_the_order_written_and_fd_names_become_numbers() {
    let d = load_text(
        "command = [\"uvicorn\", \"--fd\", \"{fd:http}\"]\nenv = { NGINX = \"{fd:http};{fd:admin};\" }\n\
         sockets = { http = \"tcp://127.0.0.1:8080\", admin = \"unix:admin.sock\", dns = \"udp://[::1]:53\" }\n",
    )
    .unwrap();
    let names: Vec<&str> = d.process.sockets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["http", "admin", "dns"]);
    assert_eq!(
        d.process.sockets[0].address,
        SocketAddress::Tcp("127.0.0.1:8080".into())
    );
    // Relative to the file's directory, as every path of the file.
    let SocketAddress::Unix(path) = &d.process.sockets[1].address else {
        panic!("{:?}", d.process.sockets[1]);
    };
    assert!(path.ends_with("daemons.d/admin.sock") && path.is_absolute());
    assert_eq!(
        d.process.sockets[2].address,
        SocketAddress::Udp("[::1]:53".into())
    );
    assert_eq!(d.process.command, ["uvicorn", "--fd", "3"]);
    assert_eq!(d.process.env["NGINX"], "3;4;");
}

#[test]
fn bad_sockets_are_each_named_at_their_place() {
    let found = problems(
        "command = \"serve {fd:htp}\"\n\
         sockets = { http = \"tcp://127.0.0.1:1\", d = \"tcp://127.0.0.1\", b = \"ftp://x\", \"a b\" = \"unix:/a\", c = \"tcp://[::1]:0\" }\n",
    );
    assert_eq!(
        found,
        [
            "1:11: `command`: `{fd:htp}` names no socket of `sockets` (http)",
            "2:45: `sockets.d`: there is no port",
            "2:68: `sockets.b`: `ftp://x` is not an address: \"tcp://HOST:PORT\", \"tcp://[::1]:PORT\", \"udp://HOST:PORT\" or \"unix:PATH\"",
            "2:79: `a b` is not a socket name: letters, digits, `_`, `.` and `-`, at most 64",
            "2:102: `sockets.c`: port 0 cannot be connected to",
        ]
    );
}

#[test]
fn fd_names_without_sockets_and_a_forking_daemon_are_told() {
    let found = problems("command = \"a\"\nenv = { FD = \"{fd:http}\" }\n");
    assert_eq!(
        found,
        ["2:14: `env.FD`: `{fd:http}` names a socket, and `sockets` declares none"]
    );
    let (_tmp, loaded) = load_full(
        "command = \"a\"\ntype = \"forking\"\nsockets = { http = \"tcp://127.0.0.1:80\" }\n",
    );
    let warnings: Vec<String> = loaded.unwrap().warnings.iter().map(|w| w.short()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("2:8: warning: type = \"forking\" with `sockets`"),
        "{warnings:?}"
    );
    let long = format!("/{}", "a".repeat(120));
    let found = problems(&format!(
        "command = \"a\"\nsockets = {{ s = \"unix:{long}\" }}\n"
    ));
    assert!(found[0].contains("at most 107"), "{found:?}");
    assert!(Path::new(&long).is_absolute());
}

#[test]
fn start_first_needs_sockets_and_warns_of_a_ready_check_the_old_generation_answers() {
    let d = load_text(
        "command = \"a\"\nrestart_mode = \"start-first\"\nsockets = { http = \"tcp://127.0.0.1:80\" }\n",
    )
    .unwrap();
    assert_eq!(d.supervision.restart_mode, RestartMode::StartFirst);
    assert_eq!(
        load_text("command = \"a\"\n")
            .unwrap()
            .supervision
            .restart_mode,
        RestartMode::StopFirst
    );
    let found = problems("command = \"a\"\nrestart_mode = \"start-first\"\n");
    assert!(
        found[0].starts_with("2:16: restart_mode = \"start-first\" needs `sockets`"),
        "{found:?}"
    );
    let found = problems(
        "command = \"a\"\nready = { fd = 4 }\nsockets = { a = \"tcp://127.0.0.1:1\", b = \"tcp://127.0.0.1:2\" }\n",
    );
    assert_eq!(
        found,
        ["2:9: ready = { fd = 4 } is the fd of a socket of `sockets` (fds 3 to 4); choose a number above them"]
    );
    let found = problems("command = \"a\"\nrestart_mode = \"rolling\"\n");
    assert!(found[0].contains("expected \"stop-first\""), "{found:?}");
    let (_tmp, loaded) = load_full(
        "command = \"a\"\nrestart_mode = \"start-first\"\nready = { tcp = \"127.0.0.1:80\" }\nsockets = { http = \"tcp://127.0.0.1:80\" }\n",
    );
    let warnings: Vec<String> = loaded.unwrap().warnings.iter().map(|w| w.short()).collect();
    assert!(
        warnings.len() == 1
            && warnings[0].starts_with(
                "3:9: warning: with restart_mode = \"start-first\", a tcp or http `ready`"
            ),
        "{warnings:?}"
    );
}
