"""The managers the restart benchmark drives, dmgr and its peers, behind one shape:

    why_not(server)   None, or why this manager cannot run that server here
    start(server)     the server up and answering on self.port when it returns
    restart()         one restart (or crash); returns (begin, end, ok, kill time or None)
    stop()            everything it started gone, its files removed

`server` is "own" (server.py, this directory) or "gunicorn" (2 sync workers serving
app.py). A server binds its port itself unless the manager holds the socket.
"""
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from client import get

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GUNICORN = shutil.which("gunicorn")


def free_port():
    """A TCP port nobody listens on now (the systemd host shares this network)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def server_argv(server, port=None, python=sys.executable, here=HERE, gunicorn=GUNICORN):
    """The server's command line; with `port` it binds that port itself."""
    if server == "own":
        return [python, f"{here}/server.py"] + (["--port", str(port)] if port else [])
    bind = ["--bind", f"127.0.0.1:{port}"] if port else []
    conf = ["--config", f"{here}/gunicorn.conf.py"]
    return [gunicorn, "--workers", "2", "--chdir", here] + conf + bind + ["app:app"]


def wait_answer(port, seconds=60):
    """Waits until the server answers a request ok."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if get(port, timeout=2)[0] == "ok":
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} within {seconds} s")


def is_alive(pid):
    """Whether the process runs; a zombie (PID 1 here reaps late) is dead."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def wait_dead(pid, seconds=30):
    deadline = time.monotonic() + seconds
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not is_alive(pid)


def timed(argv, **kw):
    """Runs a command; returns (begin, end, exit code 0)."""
    begin = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    end = time.monotonic()
    if r.returncode != 0:
        print(f"  {shlex.join(argv)}: exit {r.returncode}: {r.stderr.strip()[:300]}", file=sys.stderr)
    return begin, end, r.returncode == 0


class Dmgr:
    """dmgr, in one of its modes; "crash" SIGKILLs the daemon instead of restarting."""

    label = "dmgr"
    commands = {
        "stop-first, no sockets": "dmgr restart",
        "stop-first, sockets": "dmgr restart",
        "start-first": "dmgr restart",
        "crash (SIGKILL), sockets": "kill -KILL",
    }
    # dmgr's backoff doubles the delay per quick failure (a run under 60 s): the crash
    # rows crash a daemon at most this many times, then start it afresh.
    crashes_per_keeper = 5

    def __init__(self, binary, mode):
        self.binary, self.mode = binary, mode
        self.label, self.command = f"dmgr, {mode}", self.commands[mode]
        self.per_start = self.crashes_per_keeper if mode.startswith("crash") else None
        self.root = None

    def why_not(self, server):
        return None

    def dmgr(self, *args):
        return [self.binary, "-c", f"{self.root}/daemons.d", "--run-dir", f"{self.root}/run", *args]

    def start(self, server):
        self.root = tempfile.mkdtemp(prefix="dmgr-bench-restarts-")
        os.makedirs(f"{self.root}/daemons.d")
        self.port = free_port()
        held = self.mode != "stop-first, no sockets"
        argv = server_argv(server, None if held else self.port)
        # gunicorn.conf.py logs "Worker serving" once a worker has loaded the app.
        ready = "listening" if server == "own" else "Worker serving"
        toml = f"command = {json.dumps(argv)}\nready = {{ log = {json.dumps(ready)} }}\n"
        toml += 'start_wait = "0s"\nstop_timeout = "10s"\n'
        if held:
            toml += f'sockets = {{ http = "tcp://127.0.0.1:{self.port}" }}\n'
        if self.mode == "start-first":
            toml += 'restart_mode = "start-first"\n'
        if self.mode.startswith("crash"):
            toml += 'restart = "always"\nrestart_delay = "100ms"\nmax_restarts = 1000\n'
        with open(f"{self.root}/daemons.d/web.toml", "w") as f:
            f.write(toml)
        subprocess.run(self.dmgr("start", "web"), check=True, capture_output=True)
        wait_answer(self.port)

    def pid(self):
        out = subprocess.run(self.dmgr("list", "--json"), capture_output=True, text=True).stdout
        try:
            return json.loads(out)[0].get("pid") or 0
        except (ValueError, IndexError):
            return 0

    def restart(self):
        if not self.mode.startswith("crash"):
            return timed(self.dmgr("restart", "web")) + (None,)
        old = self.pid()
        begin = time.monotonic()
        os.kill(old, signal.SIGKILL)
        deadline = begin + 60
        while time.monotonic() < deadline and self.pid() in (0, old):
            time.sleep(0.01)
        wait_answer(self.port)
        return begin, time.monotonic(), True, begin

    def stop(self):
        if self.root:
            subprocess.run(self.dmgr("stop", "--all"), capture_output=True)
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


class Idle(Dmgr):
    """No restart at all: the server under dmgr, measured in windows as long as a
    restart, for the gaps and latencies this machine's own load makes."""

    def __init__(self, binary):
        super().__init__(binary, "start-first")
        self.label, self.command = "no restart (the machine's noise)", "-"

    def restart(self):
        begin = time.monotonic()
        time.sleep(0.5)
        return begin, time.monotonic(), True, None


class GunicornHup:
    """gunicorn alone, reloaded in place by SIGHUP: the reference with no manager. Its
    restart time runs until both new workers log that they serve (gunicorn.conf.py)."""

    label = "no manager"
    command = "gunicorn's kill -HUP (in-place reload)"
    per_start = None

    def why_not(self, server):
        if server != "gunicorn":
            return "only gunicorn reloads in place"
        return None

    def start(self, server):
        self.proc = self.log = None
        self.root = tempfile.mkdtemp(prefix="dmgr-bench-gunicorn-")
        self.port = free_port()
        self.log = open(f"{self.root}/gunicorn.log", "w")
        self.proc = subprocess.Popen(
            server_argv(server, self.port), stdout=self.log, stderr=self.log, start_new_session=True
        )
        wait_answer(self.port)

    def serving(self):
        with open(f"{self.root}/gunicorn.log") as f:
            return f.read().count("Worker serving")

    def restart(self):
        before = self.serving()
        begin = time.monotonic()
        self.proc.send_signal(signal.SIGHUP)
        deadline = begin + 60
        while self.serving() < before + 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        return begin, time.monotonic(), self.serving() >= before + 2, None

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.proc = None
        if self.log:
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


class Supervisord:
    """supervisord 4 (from PyPI), `supervisorctl restart`; the server binds its port."""

    label = "supervisord"
    command = "supervisorctl restart"
    per_start = None

    @staticmethod
    def tool(name):
        # Beside this Python first: a pyenv shim costs tens of milliseconds a call.
        beside = os.path.join(os.path.dirname(sys.executable), name)
        return beside if os.access(beside, os.X_OK) else shutil.which(name)

    def why_not(self, server):
        if not (self.tool("supervisord") and self.tool("supervisorctl")):
            return "not installed (pip install supervisor)"
        return None

    def start(self, server):
        self.root = tempfile.mkdtemp(prefix="dmgr-bench-supervisord-")
        self.conf = f"{self.root}/supervisord.conf"
        self.port = free_port()
        with open(self.conf, "w") as f:
            f.write(
                f"[unix_http_server]\nfile={self.root}/supervisor.sock\n"
                f"[supervisord]\nlogfile={self.root}/supervisord.log\n"
                f"pidfile={self.root}/supervisord.pid\nchildlogdir={self.root}\nuser=root\n"
                "[rpcinterface:supervisor]\n"
                "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
                f"[supervisorctl]\nserverurl=unix://{self.root}/supervisor.sock\n"
                f"[program:web]\ncommand={shlex.join(server_argv(server, self.port))}\n"
                "stopasgroup=true\nkillasgroup=true\nstopwaitsecs=10\nredirect_stderr=true\n"
                f"stdout_logfile={self.root}/web.log\n"
            )
        subprocess.run([self.tool("supervisord"), "-c", self.conf], check=True)
        wait_answer(self.port)

    def restart(self):
        return timed([self.tool("supervisorctl"), "-c", self.conf, "restart", "web"]) + (None,)

    def stop(self):
        try:
            with open(f"{self.root}/supervisord.pid") as f:
                pid = int(f.read())
        except (OSError, ValueError):
            pid = 0
        subprocess.run([self.tool("supervisorctl"), "-c", self.conf, "shutdown"], capture_output=True)
        if pid and not wait_dead(pid):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


class Pm2:
    """pm2 in fork mode, `pm2 reload` (a restart in fork mode); the server binds its port."""

    label = "pm2"
    command = "pm2 reload (fork mode)"
    per_start = None

    def why_not(self, server):
        return None if shutil.which("pm2") else "not installed (npm install -g pm2)"

    def pm2(self, *args):
        return subprocess.run(["pm2", *args], capture_output=True, text=True, env=self.env)

    def start(self, server):
        self.root = tempfile.mkdtemp(prefix="dmgr-bench-pm2-")
        self.env = dict(os.environ, PM2_HOME=f"{self.root}/pm2")
        self.port = free_port()
        argv = server_argv(server, self.port)
        interpreter = argv.pop(0) if server == "own" else "none"
        r = self.pm2("start", argv[0], "--name", "web", "--interpreter", interpreter, "--", *argv[1:])
        if r.returncode != 0:
            raise RuntimeError(f"pm2 start failed: {r.stdout}{r.stderr}")
        wait_answer(self.port)

    def restart(self):
        return timed(["pm2", "reload", "web"], env=self.env) + (None,)

    def stop(self):
        self.pm2("kill")
        shutil.rmtree(self.root, ignore_errors=True)


class SystemdHost:
    """systemd 252 on the systemd host (../shared/tools/systemd-host), `systemctl restart`,
    with the socket in a `.socket` unit or (plain) bound by the server itself. The host
    shares this machine's network, so the client runs here."""

    label = "systemd"
    per_start = None
    unit = "dmgr-bench-web"
    booted = False

    def __init__(self, tool, sockets):
        self.tool, self.sockets = tool, sockets
        self.command = "systemctl restart, " + (".socket unit" if sockets else "plain service")
        # A root of the benchmark's own, not the one the test suite boots.
        self.root = os.environ.get("SYSTEMD_HOST_ROOT", "/var/tmp/systemd-host-bench/root")
        self.env = dict(os.environ, SYSTEMD_HOST_ROOT=self.root)

    def why_not(self, server):
        if not os.access(self.tool, os.X_OK):
            return f"not installed: no {self.tool}"
        if os.geteuid() != 0:
            return "not run: the systemd host needs root"
        if not os.path.exists(f"{self.root}/lib/systemd/systemd"):
            return (
                f"not run: no systemd host root at {self.root} "
                f"(SYSTEMD_HOST_ROOT={self.root} SYSTEMD_HOST_PACKAGES=gunicorn {self.tool} build)"
            )
        if server == "gunicorn" and not os.path.exists(f"{self.root}/usr/bin/gunicorn"):
            return f"not run: no gunicorn in {self.root} (build it with SYSTEMD_HOST_PACKAGES=gunicorn)"
        return None

    def host(self, *args, check=True):
        return subprocess.run(
            [self.tool, *args], capture_output=True, text=True, check=check, env=self.env
        )

    def start(self, server):
        if self.host("status", check=False).returncode != 0:
            self.host("boot")
            SystemdHost.booted = True
        # "up: PID 1 is N here"
        self.leader = self.host("status").stdout.split("PID 1 is ")[1].split()[0]
        self.port = free_port()
        inside = "/opt/dmgr-bench"
        os.makedirs(f"{self.root}{inside}", exist_ok=True)
        for name in ("server.py", "app.py", "gunicorn.conf.py"):
            shutil.copy(f"{HERE}/{name}", f"{self.root}{inside}/{name}")
        argv = server_argv(
            server, None if self.sockets else self.port, "/usr/bin/python3", inside, "/usr/bin/gunicorn"
        )
        units = f"{self.root}/etc/systemd/system"
        with open(f"{units}/{self.unit}.service", "w") as f:
            # No start limit: systemd refuses a sixth start within 10 s by default,
            # and a manual `systemctl restart` counts.
            f.write(
                "[Unit]\nStartLimitIntervalSec=0\n"
                f"[Service]\nExecStart={shlex.join(argv)}\nTimeoutStopSec=10\n"
            )
        if self.sockets:
            with open(f"{units}/{self.unit}.socket", "w") as f:
                f.write(f"[Socket]\nListenStream=127.0.0.1:{self.port}\nBacklog=4096\n")
        self.host("exec", "systemctl", "daemon-reload")
        self.host("exec", "systemctl", "start", f"{self.unit}.{'socket' if self.sockets else 'service'}")
        wait_answer(self.port)

    def restart(self):
        # nsenter straight into the host's PID 1: `systemd-host exec` looks the PID up
        # (pgrep) on every call, 0.2-0.6 s on a busy machine, which is no part of
        # systemd's restart.
        inside = ["nsenter", "-t", self.leader, "-a", "/usr/bin/env", "-C", "/"]
        return timed(inside + ["systemctl", "restart", f"{self.unit}.service"]) + (None,)

    def stop(self):
        self.host("exec", "systemctl", "stop", f"{self.unit}.socket", f"{self.unit}.service", check=False)
        for ext in ("service", "socket"):
            try:
                os.remove(f"{self.root}/etc/systemd/system/{self.unit}.{ext}")
            except FileNotFoundError:
                pass
        self.host("exec", "systemctl", "daemon-reload", check=False)

    @classmethod
    def power_off(cls, managers):
        """Powers the host off again if this run booted it."""
        for m in managers:
            if isinstance(m, cls) and cls.booted:
                subprocess.run([m.tool, "down"], capture_output=True, env=m.env)
                cls.booted = False
