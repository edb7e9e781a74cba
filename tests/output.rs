//! What dmgr prints, as a user sees it: `-q`, colour on and off a terminal, and a
//! broken pipe on standard output.

use crate::support::{sleeper_env, TestEnv};

/// `-q` silences success lines; errors still reach stderr.
#[test]
fn quiet_silences_success_only() {
    let (env, _) = sleeper_env("web");
    let run = env.dmgr(&["-q", "start", "web"]).success();
    assert_eq!(run.stdout(), "");
    env.dmgr(&["-q", "start", "nosuch"])
        .code(2)
        .stderr_has("nosuch: no such daemon");
}

/// Colour only when asked for or on a terminal, never with `--color never`.
#[test]
fn colour_follows_color_and_no_color() {
    let (env, _) = sleeper_env("web");
    let plain = env.dmgr(&["start", "nosuch"]).code(2);
    assert!(
        !plain.stderr().contains('\u{1b}'),
        "colour on a pipe: {:?}",
        plain.stderr()
    );
    let out = env
        .command(&["--color", "always", "start", "nosuch"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\u{1b}["),
        "--color always gave no colour"
    );
    let out = env
        .command(&["--color", "never", "start", "nosuch"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains('\u{1b}'));
}

/// A broken pipe on stdout (`dmgr list | head -1`) is a success.
#[test]
fn broken_pipe_on_stdout_is_success() {
    let env = TestEnv::new();
    for i in 0..200 {
        env.write(&format!("d{i:03}"), "command = \"sleep 1\"\n");
    }
    let mut child = env
        .command(&["list"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

/// Runs `command` with its standard output on a new pseudo-terminal and returns what
/// it printed there.
fn output_on_a_terminal(mut command: std::process::Command) -> String {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors into the locals it is given; the name,
    // termios and window-size arguments may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created by openpty and are owned by nobody else.
    let (mut master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let status = command.stdout(slave).status().unwrap();
    // The command holds the slave until dropped; the reads below end only once no
    // slave is open.
    drop(command);
    assert!(status.success(), "{status:?}");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Everything written is in the terminal's buffer once the command has exited; the
    // read ends with EIO when the buffer is empty and no slave is open.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).replace("\r\n", "\n")
}

fn strip_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `list` and `status` colour each status word (green running, red invalid) with
/// `--color always` and on a terminal, never with `NO_COLOR`, `--color never` or on a
/// pipe; colour never moves a column.
#[test]
fn list_and_status_colour_statuses_only_when_asked_or_on_a_terminal() {
    let (env, _) = sleeper_env("web");
    env.write("idle", "command = \"sleep 1000\"\n");
    env.write("broken", "command = 5\n");
    env.dmgr(&["start", "web"]).success();
    let list = |color: &str, no_color: bool| {
        let mut command = env.command(&["--color", color, "list"]);
        if !no_color {
            command.env_remove("NO_COLOR");
        }
        command
    };
    let out = String::from_utf8(list("always", false).output().unwrap().stdout).unwrap();
    assert!(out.contains("\u{1b}[32mrunning\u{1b}[0m"), "{out:?}");
    assert!(out.contains("\u{1b}[31minvalid\u{1b}[0m"), "{out:?}");
    assert!(!out.contains("\u{1b}[32mstopped"), "{out:?}");
    // The escape codes take no room: every row's COMMAND starts under its header.
    let plain = strip_escapes(&out);
    let mut lines = plain.lines();
    let column = lines.next().unwrap().find("COMMAND").unwrap();
    for line in lines {
        assert_eq!(line[..column].chars().last(), Some(' '), "{plain}");
        assert_ne!(line[column..].chars().next(), Some(' '), "{plain}");
    }
    let status = env
        .command(&["--color", "always", "status", "web"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("\u{1b}[32mrunning"));

    for (what, out) in [
        ("a pipe", list("auto", false).output().unwrap().stdout),
        (
            "--color never",
            list("never", false).output().unwrap().stdout,
        ),
        (
            "NO_COLOR on a pipe",
            list("auto", true).output().unwrap().stdout,
        ),
    ] {
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains('\u{1b}'), "colour with {what}: {out:?}");
        assert!(out.contains("running"), "{out}");
    }
    let on_terminal = output_on_a_terminal(list("auto", false));
    assert!(on_terminal.contains("\u{1b}[32mrunning"), "{on_terminal:?}");
    for (what, command) in [
        ("NO_COLOR", list("auto", true)),
        ("--color never", list("never", false)),
    ] {
        let out = output_on_a_terminal(command);
        assert!(
            !out.contains('\u{1b}'),
            "colour on a terminal with {what}: {out:?}"
        );
        assert!(out.contains("running"), "{out:?}");
    }
}
