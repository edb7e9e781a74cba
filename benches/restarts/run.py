#!/usr/bin/env python3
"""The restart benchmark (issue 27): a client sends HTTP requests without pause
while dmgr restarts (or a SIGKILL crashes) the server N times, under each mode:

  stop-first, no sockets   the server binds its port itself (dmgr as it was)
  stop-first, sockets      `sockets` held by the keeper; `dmgr restart` replaces
                           the keeper, so the socket closes meanwhile
  start-first              `restart_mode = "start-first"`: the next generation
                           starts on the held socket beside the old one
  crash (SIGKILL), sockets the daemon is SIGKILLed; its keeper restarts it on the
                           socket it holds (restart_delay 100ms, doubling per quick
                           failure as dmgr's backoff does: at most 5 crashes a row)

for the repo's own server (server.py, LISTEN_FDS) and gunicorn where installed.
Each failure is counted by kind (refused, reset, timeout, non-2xx); the longest gap
is the longest time with no answer completed; p99 is the latency of requests sent
during the restarts; restart time is the median of `dmgr restart`'s own time.

    python3 benches/restarts/run.py [-n N] [--dmgr target/release/dmgr]

N defaults to $DMGR_BENCH_N or 20. Peers (supervisord, pm2, systemd's socket unit)
are listed as not run where this script does not drive them.
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Client(threading.Thread):
    """Sends GET / without pause, one connection a request, and records each."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = False
        self.results = []  # (sent, done, kind)

    def run(self):
        while not self.stop:
            sent = time.monotonic()
            kind = "ok"
            try:
                c = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                c.settimeout(5)
                c.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                data = b""
                while True:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                c.close()
                if not data.startswith(b"HTTP/1.") or data.split(b" ")[1][:1] != b"2":
                    kind = "non-2xx"
            except ConnectionRefusedError:
                kind = "refused"
            except ConnectionResetError:
                kind = "reset"
            except socket.timeout:
                kind = "timeout"
            except OSError as e:
                kind = "other:" + type(e).__name__
            self.results.append((sent, time.monotonic(), kind))
            if kind == "refused":
                time.sleep(0.001)


def dmgr(binary, root, *args, check=True):
    return subprocess.run(
        [binary, "-c", f"{root}/daemons.d", "--run-dir", f"{root}/run", *args],
        capture_output=True,
        text=True,
        check=check,
    )


def pid_of(binary, root):
    import json

    out = dmgr(binary, root, "list", "--json").stdout
    return json.loads(out)[0]["pid"]


def scenario(binary, server, mode, n, gunicorn):
    root = tempfile.mkdtemp(prefix="dmgr-bench-restarts-")
    os.makedirs(f"{root}/daemons.d")
    port = free_port()
    if server == "own":
        own = f'["{sys.executable}", "{HERE}/server.py"'
        command = own + (', "--port", "%d"]' % port if mode == "stop-first, no sockets" else "]")
        ready = 'ready = { log = "listening" }'
    else:
        bind = f', "--bind", "127.0.0.1:{port}"' if mode == "stop-first, no sockets" else ""
        command = f'["{gunicorn}", "--workers", "2", "--chdir", "{HERE}"{bind}, "app:app"]'
        ready = 'ready = { log = "Booting worker" }'
    toml = f"command = {command}\n{ready}\nstart_wait = \"0s\"\nstop_timeout = \"10s\"\n"
    if mode != "stop-first, no sockets":
        toml += f'sockets = {{ http = "tcp://127.0.0.1:{port}" }}\n'
    if mode == "start-first":
        toml += 'restart_mode = "start-first"\n'
    if mode.startswith("crash"):
        # Quick failures double the delay (dmgr's backoff): few crashes, spaced.
        toml += 'restart_delay = "100ms"\nrestart = "always"\nmax_restarts = 1000\n'
        n = min(n, 5)
    with open(f"{root}/daemons.d/web.toml", "w") as f:
        f.write(toml)
    dmgr(binary, root, "start", "web")
    client = Client(port)
    client.start()
    time.sleep(0.5)
    windows, restart_times = [], []
    for _ in range(n):
        begun = time.monotonic()
        if mode.startswith("crash"):
            old = pid_of(binary, root)
            os.kill(old, signal.SIGKILL)
            # Back once a new daemon is up and has answered.
            while True:
                time.sleep(0.02)
                try:
                    new = pid_of(binary, root)
                except Exception:
                    continue
                if new and new != old and any(
                    r[2] == "ok" and r[0] > begun for r in client.results[-20:]
                ):
                    break
        else:
            dmgr(binary, root, "restart", "web", check=False)
        ended = time.monotonic()
        restart_times.append(ended - begun)
        windows.append((begun, ended))
        time.sleep(0.3)
    client.stop = True
    client.join()
    dmgr(binary, root, "stop", "--all", check=False)
    shutil.rmtree(root, ignore_errors=True)
    results = client.results
    failed = {}
    for _, _, kind in results:
        if kind != "ok":
            failed[kind] = failed.get(kind, 0) + 1
    # The longest time with no answer completed, from the first restart on.
    done = sorted(r[1] for r in results if r[2] == "ok" and r[1] >= windows[0][0])
    marks = [windows[0][0]] + done + [windows[-1][1]]
    gap = max(b - a for a, b in zip(marks, marks[1:]))
    during = [
        r[1] - r[0]
        for r in results
        if r[2] == "ok" and any(a <= r[0] <= b + 0.05 for a, b in windows)
    ]
    p99 = statistics.quantiles(during, n=100)[98] if len(during) >= 2 else float("nan")
    return {
        "sent": len(results),
        "failed": sum(failed.values()),
        "kinds": ", ".join(f"{k} {v}" for k, v in sorted(failed.items())) or "-",
        "gap_ms": gap * 1000,
        "p99_ms": p99 * 1000,
        "restart_ms": statistics.median(restart_times) * 1000,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=int(os.environ.get("DMGR_BENCH_N", "20")))
    default = "target/release/dmgr" if os.path.exists("target/release/dmgr") else "target/debug/dmgr"
    parser.add_argument("--dmgr", default=default)
    args = parser.parse_args()
    binary = os.path.abspath(args.dmgr)
    gunicorn = shutil.which("gunicorn")
    servers = ["own"] + (["gunicorn"] if gunicorn else [])
    modes = ["stop-first, no sockets", "stop-first, sockets", "start-first", "crash (SIGKILL), sockets"]
    print(f"dmgr restart benchmark: N = {args.n} per row, {binary}")
    print()
    print("| server | mode | requests | failed | failures by kind | longest gap | p99 latency during restarts | restart time (median) |")
    print("|---|---|---|---|---|---|---|---|")
    for server in servers:
        for mode in modes:
            r = scenario(binary, server, mode, args.n, gunicorn)
            print(
                f"| {server} | {mode} | {r['sent']} | {r['failed']} | {r['kinds']} | "
                f"{r['gap_ms']:.0f} ms | {r['p99_ms']:.0f} ms | {r['restart_ms']:.0f} ms |",
                flush=True,
            )
    for peer in ["supervisord", "pm2"]:
        where = shutil.which(peer)
        print(f"\n{peer}: " + ("installed, not driven by this script" if where else "not installed"))
    print("systemd with a socket unit: not run by this script (see ../shared/tools/systemd-host)")
    if not gunicorn:
        print("gunicorn: not installed")


if __name__ == "__main__":
    main()
