"""The restart benchmark's client and the figures it yields.

The client runs in a process of its own (not a thread of the driver: the driver's
own Python work would hold the interpreter lock and show up as gaps), sends
`GET / HTTP/1.0` without pause, one connection a request, and records for each
request when it was sent, when it ended and how: ok, refused (ECONNREFUSED: nothing
listens), reset (the connection was reset: accepted and dropped), empty (closed with
no answer: what a process killed after reading the request leaves), timeout (no
answer within 5 s), non-2xx, or other. After a refusal it waits 1 ms, so that refusals are counted
at a comparable pace whatever the manager. Times are CLOCK_MONOTONIC, the same clock
in every process, so the driver's restart and kill times line up with them.
"""
import array
import bisect
import multiprocessing
import signal
import socket
import statistics
import time

KINDS = ["ok", "refused", "reset", "empty", "timeout", "non-2xx", "other"]
TIMEOUT = 5.0


def get(port, timeout=TIMEOUT):
    """Sends one request; returns its kind (one of KINDS) and the body."""
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            c.settimeout(timeout)
            c.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
            data = b""
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
        finally:
            c.close()
    except ConnectionRefusedError:
        return "refused", b""
    except ConnectionResetError:
        return "reset", b""
    except socket.timeout:
        return "timeout", b""
    except OSError:
        return "other", b""
    if not data:
        return "empty", b""
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ")
    if not head.startswith(b"HTTP/1.") or len(parts) < 2 or parts[1][:1] != b"2":
        return "non-2xx", body
    return "ok", body


def _loop(port, stop, out):
    # The driver stops this process (its Event, or SIGTERM when it is interrupted).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sent, done, kind = array.array("d"), array.array("d"), array.array("b")
    codes = {k: i for i, k in enumerate(KINDS)}
    while not stop.is_set():
        t = time.monotonic()
        k, _ = get(port)
        sent.append(t)
        done.append(time.monotonic())
        kind.append(codes[k])
        if k == "refused":
            time.sleep(0.001)
    out.send((sent.tobytes(), done.tobytes(), kind.tobytes()))
    out.close()


class Client:
    """A client process sending requests to 127.0.0.1:port until `finish`."""

    def __init__(self, port):
        ctx = multiprocessing.get_context("fork")
        self.stop = ctx.Event()
        self.recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_loop, args=(port, self.stop, send), daemon=True)
        self.proc.start()
        send.close()

    def finish(self):
        """Stops the client; returns its requests as (sent, done, kind) tuples."""
        self.stop.set()
        raw = self.recv.recv()
        self.proc.join()
        sent, done, kind = array.array("d"), array.array("d"), array.array("b")
        sent.frombytes(raw[0])
        done.frombytes(raw[1])
        kind.frombytes(raw[2])
        return [(s, d, KINDS[k]) for s, d, k in zip(sent, done, kind)]


def figures(results, windows, kills=()):
    """The row's figures from the client's requests.

    windows: (begin, end) of each restart: from the command (or the kill) to its
    return (or to the first answer of the new daemon). A restart is over for the
    client once a request sent after `end` is answered: the window the latencies
    and gaps are read in runs from `begin` to that answer, so that a manager whose
    command returns before the new process listens is not flattered.
    kills: the moments of each SIGKILL, to count the requests in flight then.
    """
    ok = sorted((s, d) for s, d, k in results if k == "ok")
    sents = [s for s, _ in ok]
    dones = sorted(d for _, d in ok)
    spans = []
    for begin, end in windows:
        i = bisect.bisect_left(sents, end)
        back = ok[i][1] if i < len(ok) else end
        spans.append((begin, max(back, end)))

    def longest_gap(a, b):
        """The longest time in [a, b] with no answer completed, and when it began."""
        inside = dones[bisect.bisect_left(dones, a) : bisect.bisect_right(dones, b)]
        marks = [a] + inside + [b]
        return max((y - x, x) for x, y in zip(marks, marks[1:]))

    found = [longest_gap(a, b) for a, b in spans]
    gaps = [g for g, _ in found]
    # Where the longest gap fell, to tell the switch-over from the machine's noise:
    # its start and the command's return, from the start of its restart.
    where = None
    if found:
        i = max(range(len(found)), key=lambda j: found[j][0])
        begin, end = windows[i]
        where = (i + 1, (found[i][1] - begin) * 1000, found[i][0] * 1000, (end - begin) * 1000)
    during = []
    for a, b in spans:
        lo, hi = bisect.bisect_left(sents, a), bisect.bisect_right(sents, b)
        during.extend(d - s for s, d in ok[lo:hi])
    # One client sending without pause sends nothing while it waits: a restart that
    # holds one request for 700 ms shows as one slow request among hundreds, and p99
    # hides it ("coordinated omission"). The corrected figures add, for each request
    # that took L, the requests the client would have sent meanwhile at its usual
    # pace I (the median time between sends): L - I, L - 2I, ... (HdrHistogram's
    # recordValueWithExpectedInterval).
    steps = [b[0] - a[0] for a, b in zip(results, results[1:]) if a[2] == "ok"]
    pace = statistics.median(steps) if steps else 0
    corrected = list(during)
    if pace > 0:
        for lat in during:
            missed = lat - pace
            while missed > pace:
                corrected.append(missed)
                missed -= pace
    failed = {}
    for _, _, k in results:
        if k != "ok":
            failed[k] = failed.get(k, 0) + 1
    # One request at a time: the one in flight at t is the last one sent before it.
    all_sent = [s for s, _, _ in results]
    in_flight = 0
    for t in kills:
        i = bisect.bisect_right(all_sent, t) - 1
        if i >= 0 and results[i][1] > t:
            in_flight += 1

    def quantile(q, values=during):
        if len(values) < 2:
            return float("nan")
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1]

    return {
        "sent": len(results),
        "failed": sum(failed.values()),
        "kinds": ", ".join(f"{k} {v}" for k, v in sorted(failed.items())) or "-",
        "gap_ms": max(gaps) * 1000 if gaps else float("nan"),
        "gap_median_ms": statistics.median(gaps) * 1000 if gaps else float("nan"),
        "p50_ms": quantile(50) * 1000,
        "p99_ms": quantile(99) * 1000,
        "p99_corrected_ms": quantile(99, corrected) * 1000,
        "in_flight": in_flight if kills else None,
        "where": where,
    }
