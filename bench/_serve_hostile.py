"""`hmmfast serve` under hostile and heavy bodies: the load targets of issue 27.

Used by bench_serve.py. Each case runs against a fresh server process (so its memory is
its own) and measures, from a client on the same machine:

- the reply time of one body: from its first byte sent to the reply's last byte read
  (the client sends the whole body, then reads, as http clients do);
- /healthz round trips (10 ms apart on one kept-alive connection) with the server idle,
  then while 4 such bodies are sent back to back on 4 connections;
- the server's resident memory (RSS, sampled every 10 ms): before, the peak during the
  load, and 2 s after it.

Cases: "tiny sessions", 16 MiB of one-step sessions ({"sessions": [[1],[1],...]}, 4.2
million of them, refused with 413 for --max-sessions); "valid 16 MB", 10,000 sessions
of 800 symbols (within every limit, scored: 200).
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np

MiB = 1024 * 1024


def tiny_sessions_body(size=16 * MiB - 64):
    n = (size - 20) // 4
    return b'{"sessions": [' + b"[1]," * n + b"[1]]}"


def valid_body(n_sessions=10_000, length=800, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 10, size=(n_sessions, length))
    return json.dumps({"sessions": x.tolist()}, separators=(",", ":")).encode()


def _request(path, body):
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _reply(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                  if k.strip().lower() == "content-length")
    while len(rest) < length:
        chunk = sock.recv(max(1 << 16, length - len(rest)))
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    return int(lines[0].split()[1]), rest[:length]


def one_reply_seconds(port, body, repeats):
    """Seconds from the first byte sent to the reply read, per repeat; and the status."""
    request = _request("/v1/score", body)
    times, status = [], None
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(repeats):
            t0 = time.perf_counter()
            sock.sendall(request)
            status, _ = _reply(sock)
            times.append(time.perf_counter() - t0)
    return np.array(times), status


class RSS:
    """Samples a process's resident memory every 10 ms in a thread."""

    def __init__(self, pid):
        import psutil

        self.proc = psutil.Process(pid)
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self):
        return self.proc.memory_info().rss

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(self.now())
            time.sleep(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def probe(port, seconds, gap=0.01):
    """/healthz round trips (s, from send to reply) on one kept-alive connection, one
    every ``gap`` seconds after the previous reply, for ``seconds``."""
    lat = []
    get = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            sock.sendall(get)
            _reply(sock)
            lat.append(time.perf_counter() - t0)
            time.sleep(gap)
    return np.array(lat)


def healthz_under_load(port, body, seconds, attackers=4):
    """(/healthz round trips with the server idle, the same while ``attackers``
    connections send ``body`` back to back, the attackers' reply times), seconds."""
    idle = probe(port, min(seconds, 3.0))
    stop = threading.Event()
    replies = []
    request = _request("/v1/score", body)

    def attack():
        with socket.create_connection(("127.0.0.1", port)) as sock:
            while not stop.is_set():
                t0 = time.perf_counter()
                sock.sendall(request)
                _reply(sock)
                replies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=attack, daemon=True) for _ in range(attackers)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    loaded = probe(port, seconds)
    stop.set()
    for t in threads:
        t.join(120)
    return idle, loaded, np.array(replies)


def start(model_path, port, src=None, new_options=True):
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    cmd = [sys.executable, "-m", "hmmfast.serve", str(model_path), "--port", str(port),
           "--log-level", "warning"]
    if new_options:
        cmd += ["--no-state", "--drain-seconds", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                if _reply(s)[0] == 200:
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not become ready")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_case(model_path, free_port, name, body, seconds, repeats, src=None,
             new_options=True):
    """One case against a fresh server: a dict of measured figures."""
    port = free_port()
    proc = start(model_path, port, src, new_options)
    try:
        rss = RSS(proc.pid)
        before = rss.now()
        one, status = one_reply_seconds(port, body, 1)  # warm-up (and the status)
        with rss:
            one, status = one_reply_seconds(port, body, repeats)
            idle, lat, replies = healthz_under_load(port, body, seconds)
        peak = max(rss.samples)
        time.sleep(2.0)
        after = rss.now()
    finally:
        stop(proc)
    return {"case": name, "body": len(body), "status": status, "one": one,
            "idle": idle, "healthz": lat, "replies": replies, "rss_before": before, "rss_peak": peak,
            "rss_after": after}


def table(results, load):
    ms = 1e3
    lines = [
        f"Hostile and heavy bodies (1-minute load average before the runs {load:.2f}; the "
        "load generator shares the cores; each case on a fresh server). /healthz: round "
        "trips on one kept-alive connection, 10 ms apart, first with the server idle "
        "(the floor, same run), then while 4 connections send the body back to back.",
        "",
        "| server | body | status | one body: reply, median (max) ms | with 4 at once: "
        "reply median ms | /healthz p50 / p99 / max ms, idle | /healthz p50 / p99 / max "
        "ms, 4 bodies at once | RSS before → peak → 2 s after, MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]

    def trio(x):
        return (f"{np.percentile(x, 50) * ms:.1f} / {np.percentile(x, 99) * ms:.1f} / "
                f"{x.max() * ms:.1f}")

    for r in results:
        replies = r["replies"]
        lines.append(
            f"| {r['server']} | {r['case']} ({r['body'] / MiB:.1f} MiB) | {r['status']} | "
            f"{np.median(r['one']) * ms:.0f} ({r['one'].max() * ms:.0f}) | "
            f"{np.median(replies) * ms if replies.size else float('nan'):.0f} | "
            f"{trio(r['idle'])} | {trio(r['healthz'])} | {r['rss_before'] / 1e6:.0f} → "
            f"{r['rss_peak'] / 1e6:.0f} → {r['rss_after'] / 1e6:.0f} |")
    return lines
