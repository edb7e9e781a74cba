#!/usr/bin/env python3
"""The restart benchmark (issue 27): a client sends HTTP requests without pause while
a manager restarts the server N times (or SIGKILLs it, for the crash row), and every
failure is counted by kind. dmgr's rows:

  stop-first, no sockets   the server binds its port itself (dmgr before issue 27)
  stop-first, sockets      `sockets` held by the keeper, `dmgr restart`
  start-first              `restart_mode = "start-first"`: the next generation
                           starts on the held socket beside the old one
  crash (SIGKILL), sockets the daemon is SIGKILLed; its keeper restarts it on the
                           socket it holds (`restart_delay = "100ms"`, doubling per
                           quick failure: each keeper is crashed 5 times, then a new
                           one is started, outside the measured windows)

a row with no restart at all (the gaps and latencies the machine's own load makes),
and, in the same run, the peers where they are installed: gunicorn's own in-place
reload (`kill -HUP`, no manager), supervisord (`supervisorctl restart`), pm2 (`pm2
reload`, fork mode), and systemd (`systemctl restart`, plain and with a `.socket`
unit) on ../shared/tools/systemd-host. A peer that cannot run says why in its row.
Servers: the repository's own server.py (takes fd 3 from LISTEN_FDS, or binds --port)
and gunicorn (2 sync workers) where installed.

    python3 benches/restarts/run.py [-n N] [--dmgr PATH] [--only TEXT]

N defaults to $DMGR_BENCH_N, else 100. Without --dmgr the script builds dmgr in
release (`cargo build --release`) and measures target/release/dmgr. Setup for the
peers: `pip install supervisor`, `npm install -g pm2`, and for systemd, as root,
`SYSTEMD_HOST_ROOT=/var/tmp/systemd-host-bench/root SYSTEMD_HOST_PACKAGES=gunicorn
../shared/tools/systemd-host build` (SYSTEMD_HOST_ROOT, for this script as for the
tool, picks where the root lives; the default is that one, apart from the root the
test suite boots). The script boots the host if it is down, and powers it off after.
What each column means is in client.py's `figures` and in BENCHMARKS.md.
"""
import argparse
import datetime
import math
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from client import Client, figures  # noqa: E402
from managers import (  # noqa: E402
    GUNICORN,
    REPO,
    Dmgr,
    GunicornHup,
    Idle,
    Pm2,
    Supervisord,
    SystemdHost,
)

COLUMNS = [
    "server",
    "manager",
    "restart by",
    "restarts",
    "requests",
    "failed",
    "failures by kind",
    "in flight at the kills",
    "longest gap",
    "gap per restart (median)",
    "latency during restarts: p50 / p99 / p99 corrected",
    "restart time (median)",
]


WHERE = []  # where each row's longest gap fell, printed after the table


def ms(x):
    return "-" if x is None or math.isnan(x) else f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def measure(manager, server, n, settle):
    """Runs one row: n restarts under load; returns its cells after the first three."""
    results, windows, kills, times, good = [], [], [], [], 0
    while len(windows) < n:
        client = None
        try:
            manager.start(server)
            client = Client(manager.port)
            time.sleep(0.5)
            for _ in range(min(n - len(windows), manager.per_start or n)):
                begin, end, ok, kill = manager.restart()
                windows.append((begin, end))
                times.append(end - begin)
                good += ok
                if kill is not None:
                    kills.append(kill)
                time.sleep(settle)
            results += client.finish()
            client = None
        finally:
            if client:
                client.proc.terminate()
            manager.stop()
    f = figures(results, windows, kills)
    if f["where"]:
        k, at, gap, returned = f["where"]
        WHERE.append(
            f"- {server}, {manager.label}: restart {k}, {gap:.0f} ms from +{at:.0f} ms "
            f"(its command returned at +{returned:.0f} ms)"
        )
    timed = not isinstance(manager, Idle)
    return [
        str(n) if good == n else f"{good} of {n} ok",
        str(f["sent"]),
        str(f["failed"]),
        f["kinds"],
        "-" if f["in_flight"] is None else str(f["in_flight"]),
        ms(f["gap_ms"]),
        ms(f["gap_median_ms"]),
        f"{ms(f['p50_ms'])} / {ms(f['p99_ms'])} / {ms(f['p99_corrected_ms'])}",
        ms(sorted(times)[len(times) // 2] * 1000) if timed else "-",
    ]


def interrupted(signum, _frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def build_release():
    print("building dmgr in release (cargo build --release) ...", file=sys.stderr, flush=True)
    subprocess.run(["cargo", "build", "--release", "--bin", "dmgr"], cwd=REPO, check=True)
    return os.path.join(REPO, "target", "release", "dmgr")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=int(os.environ.get("DMGR_BENCH_N", "100")))
    parser.add_argument("--dmgr", help="the dmgr binary to measure (default: build release)")
    parser.add_argument("--only", help="only the rows whose server, manager or mode holds this")
    parser.add_argument("--settle", type=float, default=0.3, help="seconds between restarts")
    parser.add_argument(
        "--systemd-host", default=os.path.join(REPO, "..", "shared", "tools", "systemd-host")
    )
    args = parser.parse_args()
    # Stopped (even from a background job, where SIGINT is ignored), it still stops
    # what it started: the finally blocks below run.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupted)
    binary = os.path.abspath(args.dmgr) if args.dmgr else build_release()
    tool = os.path.abspath(args.systemd_host)
    commit = subprocess.run(
        ["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    servers = ["own", "gunicorn"]
    managers = [Idle(binary), GunicornHup()]
    managers += [Dmgr(binary, mode) for mode in Dmgr.commands]
    managers += [Supervisord(), Pm2(), SystemdHost(tool, False), SystemdHost(tool, True)]
    load = os.getloadavg()
    print(f"restart benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M}, N = {args.n} a row")
    print(f"dmgr: {binary} (commit {commit}); {os.cpu_count()} CPUs")
    print(f"load average at the start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print()
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    try:
        for server in servers:
            for manager in managers:
                cells = [server, manager.label, getattr(manager, "command", "")]
                if args.only and not any(args.only in c for c in cells):
                    continue
                reason = manager.why_not(server)
                if server == "gunicorn" and not GUNICORN:
                    reason = "not run: gunicorn not installed"
                if reason == "only gunicorn reloads in place":
                    continue
                if reason:
                    cells += [reason] + [""] * (len(COLUMNS) - 4)
                else:
                    try:
                        cells += measure(manager, server, args.n, args.settle)
                    except Exception as e:  # a peer that breaks says so in its row
                        cells += [f"failed: {e}"] + [""] * (len(COLUMNS) - 4)
                print("| " + " | ".join(cells) + " |", flush=True)
    finally:
        SystemdHost.power_off(managers)
    load = os.getloadavg()
    print()
    print("The longest gap of each row, from the start of its restart:")
    print("\n".join(WHERE))
    print()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
