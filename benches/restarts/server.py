"""The restart benchmark's own HTTP server: takes its listening socket from
LISTEN_FDS (fd 3, systemd's protocol, as dmgr's `sockets` passes it) or binds
--port itself; answers every request 200 with its PID; on SIGTERM stops
accepting and exits once the request it serves is answered."""
import os
import signal
import socket
import sys

stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
if os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS"):
    s = socket.socket(fileno=3)
else:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[sys.argv.index("--port") + 1])))
    s.listen(4096)
s.settimeout(0.05)
print("listening", flush=True)
while not stop:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    c.settimeout(5)
    try:
        c.recv(4096)
        body = str(os.getpid()).encode()
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    except OSError:
        pass
    c.close()
