#!/usr/bin/env python3
"""The classic Unix daemon, as the Python Cookbook (recipe 12.14, after Stevens'
APUE) writes it: it refuses to start while its pidfile exists, forks, calls setsid,
forks again, changes to /, sets umask 0, redirects its standard streams, writes its
pidfile, removes it at exit, and exits on SIGTERM. dmgr runs it as it is, with
`type = "forking"` and `pidfile` naming the file it writes (see daemons.d/classic.toml).

    classic_daemon.py --pidfile PATH [--log PATH] [--interval SECONDS]
"""

import argparse
import atexit
import os
import signal
import sys
import time


def daemonize(pidfile, *, stdin="/dev/null", stdout="/dev/null", stderr="/dev/null"):
    if os.path.exists(pidfile):
        raise RuntimeError("Already running")

    # First fork (detaches from parent)
    try:
        if os.fork() > 0:
            raise SystemExit(0)  # Parent exit
    except OSError as e:
        raise RuntimeError("fork #1 failed.") from e

    os.chdir("/")
    os.umask(0)
    os.setsid()
    # Second fork (relinquish session leadership)
    try:
        if os.fork() > 0:
            raise SystemExit(0)
    except OSError as e:
        raise RuntimeError("fork #2 failed.") from e

    # Flush I/O buffers
    sys.stdout.flush()
    sys.stderr.flush()

    # Replace file descriptors for stdin, stdout, and stderr
    with open(stdin, "rb", 0) as f:
        os.dup2(f.fileno(), sys.stdin.fileno())
    with open(stdout, "ab", 0) as f:
        os.dup2(f.fileno(), sys.stdout.fileno())
    with open(stderr, "ab", 0) as f:
        os.dup2(f.fileno(), sys.stderr.fileno())

    # Write the PID file
    with open(pidfile, "w") as f:
        print(os.getpid(), file=f)

    # Arrange to have the PID file removed on exit/signal
    atexit.register(lambda: os.remove(pidfile))

    # Signal handler for termination (required)
    def sigterm_handler(signo, frame):
        raise SystemExit(1)

    signal.signal(signal.SIGTERM, sigterm_handler)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--log", default="/dev/null")
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args()
    # Relative paths mean the directory it was started in, not / where it ends up.
    pidfile, log = os.path.abspath(args.pidfile), os.path.abspath(args.log)
    try:
        daemonize(pidfile, stdout=log, stderr=log)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        raise SystemExit(1)

    sys.stdout.write("Daemon started with pid {}\n".format(os.getpid()))
    # Its own shutdown (SIGTERM raises SystemExit, and atexit runs): a line that only
    # a graceful stop writes, where SIGKILL writes none.
    atexit.register(lambda: print("Daemon stopped with pid {}".format(os.getpid()), flush=True))
    while True:
        sys.stdout.write("Daemon Alive! {}\n".format(time.ctime()))
        sys.stdout.flush()
        time.sleep(args.interval)


if __name__ == "__main__":
    main()
