//! A notify daemon for dmgr's tests, speaking the protocol through the `sd-notify`
//! crate as Rust daemons do. Its arguments are the steps it takes, in order:
//!
//! ```text
//! ready                 READY=1
//! status:TEXT           STATUS=TEXT
//! extend:MS             EXTEND_TIMEOUT_USEC= (MS milliseconds)
//! errno:N               ERRNO=N
//! stopping              STOPPING=1
//! trigger               WATCHDOG=trigger
//! ping:MS:N             N watchdog pings, one every MS milliseconds
//! pings                 watchdog pings for ever, at half of WATCHDOG_USEC
//! pings-for:MS          watchdog pings every 50 ms for MS milliseconds, once
//!                       WATCHDOG_USEC and WATCHDOG_PID say the watchdog is for it
//! mainpid               spawns a copy of itself running `forever` and names it in
//!                       MAINPID=, then goes on (a hand-over once this process exits)
//! send:K=V              any assignment, as written
//! sleep:MS              sleeps
//! exit:N                exits with status N
//! forever               sleeps until a signal ends it (a SIGHUP is a reload:
//!                       RELOADING=1 with MONOTONIC_USEC=, then READY=1, or
//!                       ERRNO=22 if the file named by $FAIL_RELOAD exists)
//! ```
//!
//! Example: `sd_notify_daemon status:warming extend:2000 sleep:1500 ready forever`

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        eprintln!("sd_notify_daemon: cannot notify: {e}");
    }
}

fn ms(text: &str) -> Duration {
    Duration::from_millis(text.parse().expect("milliseconds"))
}

fn forever() -> ! {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT]).unwrap();
    for signal in signals.forever() {
        if signal != SIGHUP {
            std::process::exit(0);
        }
        let monotonic = NotifyState::monotonic_usec_now().unwrap();
        send(&[NotifyState::Reloading, monotonic]);
        std::thread::sleep(Duration::from_millis(100));
        let fail = std::env::var_os("FAIL_RELOAD")
            .is_some_and(|path| std::path::Path::new(&path).exists());
        if fail {
            send(&[NotifyState::Errno(22), NotifyState::Status("reload failed")]);
        } else {
            send(&[NotifyState::Ready, NotifyState::Status("reloaded")]);
        }
    }
    std::process::exit(0)
}

fn main() {
    println!("sd_notify_daemon {} started", std::process::id());
    for step in std::env::args().skip(1) {
        let (verb, rest) = step.split_once(':').unwrap_or((step.as_str(), ""));
        match verb {
            "ready" => send(&[NotifyState::Ready]),
            "status" => send(&[NotifyState::Status(rest)]),
            "extend" => send(&[NotifyState::ExtendTimeoutUsec(ms(rest).as_micros() as u32)]),
            "errno" => send(&[NotifyState::Errno(rest.parse().expect("errno"))]),
            "stopping" => send(&[NotifyState::Stopping]),
            "trigger" => send(&[NotifyState::WatchdogTrigger]),
            "send" => send(&[NotifyState::Custom(rest)]),
            "ping" => {
                let (every, count) = rest.split_once(':').expect("ping:MS:N");
                for _ in 0..count.parse::<u32>().expect("count") {
                    send(&[NotifyState::Watchdog]);
                    std::thread::sleep(ms(every));
                }
            }
            "pings" => {
                let period = sd_notify::watchdog_enabled().expect("WATCHDOG_USEC for this PID");
                std::thread::spawn(move || loop {
                    send(&[NotifyState::Watchdog]);
                    std::thread::sleep(period / 2);
                });
            }
            "pings-for" => {
                sd_notify::watchdog_enabled().expect("WATCHDOG_USEC and WATCHDOG_PID for this PID");
                let until = std::time::Instant::now() + ms(rest);
                while std::time::Instant::now() < until {
                    send(&[NotifyState::Watchdog]);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            "mainpid" => {
                let exe = std::env::current_exe().unwrap();
                // Left running on purpose: once this process exits, the keeper (the
                // subreaper) adopts the child, which is the daemon from then on.
                #[allow(clippy::zombie_processes)]
                let child = std::process::Command::new(exe)
                    .arg("forever")
                    .env_remove("NOTIFY_SOCKET")
                    .spawn()
                    .unwrap();
                println!("sd_notify_daemon: main process now {}", child.id());
                send(&[NotifyState::MainPid(child.id())]);
            }
            "sleep" => std::thread::sleep(ms(rest)),
            "exit" => std::process::exit(rest.parse().expect("status")),
            "forever" => forever(),
            _ => panic!("unknown step {step}"),
        }
    }
}
