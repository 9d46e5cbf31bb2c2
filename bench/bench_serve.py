"""`hmmfast serve` under load: batched throughput and paced single-session latency.

Usage: python bench/bench_serve.py [--seconds 10] [--rate 500] [--threads N]
                                   [--out bench/results/serve.md]

One server process (``python -m hmmfast.serve``, uvicorn, one event loop) serves a
CategoricalHMM with N=5 states and M=10 symbols; this process is the load generator,
speaking raw HTTP/1.1 over kept-alive sockets (no client library: its own overhead
stays far below the server's). The machine has 2 cores: the server and the load
generator share them.

1. Throughput: sessions of T=20 through POST /v1/score, batched (100 or 1,000 sessions
   per request), 1 or 2 connections each sending its next request as soon as the reply
   is in (closed loop). Sessions per second over the run.
2. Latency: single-session requests (T=20) paced open-loop at ``--rate`` requests per
   second for ``--seconds``: request i is due at t0 + i / rate and is sent then on an
   idle connection (a pool of 8), whatever the earlier replies do, so a slow reply
   cannot hide the queue behind it (no coordinated omission). Latency is measured from
   the due time to the last byte of the reply. The server's own time per request comes
   from its ``Server-Timing`` header: ``app`` (body read to reply built) and ``lib``
   (inside the library's score_batch). The peer in the same run is the framework floor:
   GET /healthz (uvicorn + Starlette, no work) paced the same way.

3. Hostile and heavy bodies (``_serve_hostile``): a 16 MiB body of one-step sessions
   (refused by --max-sessions) and a valid 16 MB body (10,000 sessions of 800 symbols):
   the reply time, /healthz latency while 4 of them run, the server's memory. With
   ``--baseline-src DIR`` the same cases also run against the hmmfast source tree in DIR
   (e.g. the commit before a change), in the same run; so do 1 and 2.

Every reply is checked: the scores read back must equal ``model.score`` of the same
session exactly (the JSON floats round-trip).
"""

import argparse
import json
import os
import platform
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _serve_hostile as H
import numpy as np
from _benchlib import write_table

import hmmfast

N, M, T = 5, 10, 20
POOL = 8


def build_model(seed=0):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(N)
    model.startprob_ = rng.dirichlet(np.ones(N))
    model.transmat_ = rng.dirichlet(np.ones(N), size=N)
    model.emissionprob_ = rng.dirichlet(np.ones(M), size=N)
    return model


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Connection:
    """One kept-alive HTTP/1.1 connection speaking raw bytes."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, request):
        self.sock.sendall(request)

    def receive(self):
        """(status, headers dict, body) of the next reply."""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", 0))
        while len(rest) < n:
            chunk = self.sock.recv(max(1 << 16, n - len(rest)))
            if not chunk:
                raise ConnectionError("server closed the connection")
            rest += chunk
        self.buf = rest[n:]
        return status, headers, rest[:n]

    def close(self):
        self.sock.close()


def post(path, body):
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def get(path):
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def server_timing(headers):
    out = {}
    for part in headers.get("server-timing", "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur) / 1e3
    return out


def start_server(model_path, port, threads, src=None):
    """The server of this tree, or (``src``) of the hmmfast tree in that directory."""
    cmd = [sys.executable, "-m", "hmmfast.serve", str(model_path), "--port", str(port),
           "--log-level", "warning"]
    if src is None:
        cmd += ["--no-state", "--drain-seconds", "0"]
    if threads:
        cmd += ["--threads", str(threads)]
    env = dict(os.environ, **({"PYTHONPATH": src} if src else {}))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()}")
        try:
            c = Connection(port)
            c.send(get("/readyz"))
            if c.receive()[0] == 200:
                c.close()
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not become ready in 30 s")


def sessions(model, n, seed):
    rng = np.random.default_rng(seed)
    return [model.sample(T, random_state=rng)[0].ravel() for _ in range(n)]


# ---------------------------------------------------------------------- throughput


def throughput(port, model, batch, n_conn, seconds):
    pool = sessions(model, 4 * batch, seed=batch)
    bodies = [json.dumps({"sessions": [s.tolist() for s in pool[i * batch:(i + 1) * batch]]})
              .encode() for i in range(4)]
    expected = [model.score_batch(pool[i * batch:(i + 1) * batch]) for i in range(4)]
    counts = [0] * n_conn
    errors = []
    stop = time.perf_counter() + seconds

    def worker(k):
        c = Connection(port)
        i = 0
        try:
            while time.perf_counter() < stop:
                c.send(post("/v1/score", bodies[i % 4]))
                status, _, body = c.receive()
                if status != 200:
                    errors.append(body[:200])
                    return
                if i < 4:  # check each distinct body once per connection
                    got = np.array(json.loads(body)["scores"])
                    if not np.array_equal(got, expected[i % 4]):
                        errors.append(b"scores differ from the library's")
                counts[k] += batch
                i += 1
        finally:
            c.close()

    start = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(n_conn)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"throughput run failed: {errors[0]!r}")
    return sum(counts) / elapsed, len(bodies[0])


# ---------------------------------------------------------------------- latency


def paced(port, requests, checks, rate, seconds):
    """Open-loop: request i due at t0 + i / rate. Returns arrays of seconds: latency from
    the due time, latency from the send, server app time, server lib time; and the
    number of late sends (> 1 ms behind their due time)."""
    n = int(rate * seconds)
    idle = queue.Queue()
    conns = [Connection(port) for _ in range(POOL)]
    jobs = {id(c): queue.Queue() for c in conns}
    due = np.empty(n)
    sent = np.empty(n)
    done = np.empty(n)
    app = np.full(n, np.nan)
    lib = np.full(n, np.nan)
    failures = []

    def reader(c):
        while True:
            i = jobs[id(c)].get()
            if i is None:
                return
            status, headers, body = c.receive()
            done[i] = time.perf_counter()
            timing = server_timing(headers)
            app[i] = timing.get("app", np.nan)
            lib[i] = timing.get("lib", np.nan)
            check = checks[i % len(checks)]
            if status != 200 or (check is not None and check(body)):
                failures.append((i, status, body[:200]))
            idle.put(c)

    readers = [threading.Thread(target=reader, args=(c,), daemon=True) for c in conns]
    for c in conns:
        idle.put(c)
    for r in readers:
        r.start()
    t0 = time.perf_counter() + 0.05
    for i in range(n):
        due[i] = t0 + i / rate
        wait = due[i] - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        c = idle.get()
        sent[i] = time.perf_counter()
        c.send(requests[i % len(requests)])
        jobs[id(c)].put(i)
    for _ in conns:  # wait for the last replies
        idle.get()
    for c in conns:
        jobs[id(c)].put(None)
        c.close()
    if failures:
        raise RuntimeError(f"latency run: {len(failures)} bad replies, first {failures[0]}")
    late = int(np.sum(sent - due > 1e-3))
    return done - due, done - sent, app, lib, late


def pct(x, q):
    return float(np.percentile(x, q)) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="paced run length (10)")
    ap.add_argument("--rate", type=float, default=500.0, help="paced requests/s (500)")
    ap.add_argument("--throughput-seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=None,
                    help="server --threads (default: the server's default, 1)")
    ap.add_argument("--out", help="write the markdown table here")
    ap.add_argument("--hostile-seconds", type=float, default=10.0,
                    help="/healthz probing time per hostile case (10)")
    ap.add_argument("--hostile-repeats", type=int, default=5,
                    help="single-body replies timed per hostile case (5)")
    ap.add_argument("--baseline-src", metavar="DIR",
                    help="also run the hostile cases against the hmmfast tree in DIR")
    ap.add_argument("--only", choices=("normal", "hostile", "compare"),
                    help="run only the normal load (1, 2), the hostile bodies (3), or the "
                    "comparison with --baseline-src in alternation")
    args = ap.parse_args()

    model = build_model()
    load_before = os.getloadavg()[0]
    lines = []
    if args.only in (None, "normal"):
        lines += normal_load(args, model, load_before)
    if args.only in (None, "normal", "compare") and args.baseline_src:
        lines += ["", *interleaved(args, model)]
    if args.only in (None, "hostile"):
        lines += ["", *hostile(args, model)]
    write_table(lines, args.out)


def interleaved(args, model, rounds=8, seconds=1.0):
    """Requests/s of this tree's server and the baseline's, measured in alternation
    (``rounds`` of ``seconds`` each per server and request kind, closed loop on one
    connection), so both see the same machine; medians and their ratio."""
    load = os.getloadavg()[0]
    kinds = {f"{n} session{'s' if n > 1 else ''}": n for n in (1, 100, 1000)}
    pool = sessions(model, 1000, seed=3)
    requests = {k: post("/v1/score", json.dumps({"sessions": [s.tolist() for s in pool[:n]]})
                        .encode()) for k, n in kinds.items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.npz"
        model.save(path)
        servers = {}
        rates = {(name, k): [] for name in ("this", "baseline") for k in kinds}
        try:
            for name, src in (("this", None), ("baseline", args.baseline_src)):
                port = free_port()
                servers[name] = (start_server(path, port, args.threads, src), port)
            for _ in range(rounds):
                for name, (_, port) in servers.items():
                    c = Connection(port)
                    for k, request in requests.items():
                        n, start = 0, time.perf_counter()
                        while time.perf_counter() - start < seconds:
                            c.send(request)
                            status, _, _ = c.receive()
                            if status != 200:
                                raise RuntimeError(f"{name}: status {status}")
                            n += 1
                        rates[name, k].append(n / (time.perf_counter() - start))
                    c.close()
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait()
    lines = [f"This server against the baseline ({args.baseline_src}), measured in "
             f"alternation ({rounds} rounds of {seconds:g} s per server and request, closed "
             f"loop, one connection; 1-minute load average before {load:.2f}), requests/s",
             "", "| request | this server | baseline | ratio |", "|---|---:|---:|---:|"]
    for k in kinds:
        this, base = np.median(rates["this", k]), np.median(rates["baseline", k])
        lines.append(f"| POST /v1/score, {k} of T={T} | {this:,.0f} | {base:,.0f} | "
                     f"{this / base:.2f} |")
    return lines


def hostile(args, model):
    load = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.npz"
        model.save(path)
        bodies = (("tiny sessions", H.tiny_sessions_body()), ("valid 16 MB", H.valid_body()))
        servers = [("hmmfast serve", None, True)]
        if args.baseline_src:
            servers.append((f"baseline ({args.baseline_src})", args.baseline_src, False))
        for server, src, new in servers:
            for name, body in bodies:
                r = H.run_case(path, free_port, name, body, args.hostile_seconds,
                               args.hostile_repeats, src, new)
                r["server"] = server
                results.append(r)
                print(f"{server}, {name}: status {r['status']}, reply "
                      f"{np.median(r['one']) * 1e3:.0f} ms, /healthz p99 "
                      f"{np.percentile(r['healthz'], 99) * 1e3:.1f} ms (idle "
                      f"{np.percentile(r['idle'], 99) * 1e3:.1f})", flush=True)
    return H.table(results, load)


def normal_load(args, model, load_before, src=None):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.npz"
        model.save(path)
        port = free_port()
        proc = start_server(path, port, args.threads, src)
        try:
            rows = []
            for batch, n_conn in ((100, 1), (1000, 1), (1000, 2)):
                throughput(port, model, batch, n_conn, 0.5)  # warm-up
                rate, size = throughput(port, model, batch, n_conn, args.throughput_seconds)
                rows.append((batch, n_conn, size, rate))
                print(f"throughput: {batch} sessions/request, {n_conn} connection(s): "
                      f"{rate:,.0f} sessions/s", flush=True)

            pool = sessions(model, 1000, seed=7)
            requests = [post("/v1/score", json.dumps({"sessions": [s.tolist()]}).encode())
                        for s in pool]
            expected = [float(model.score(s)) for s in pool]

            def checker(e):
                return lambda body: json.loads(body)["scores"] != [e]

            checks = [checker(e) for e in expected]
            paced(port, requests, checks, args.rate, 1.0)  # warm-up
            score = paced(port, requests, checks, args.rate, args.seconds)
            print("paced /v1/score done", flush=True)
            floor = paced(port, [get("/healthz")], [None], args.rate, args.seconds)
            print("paced /healthz done", flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

    threads = args.threads or 1
    lines = [
        f"`hmmfast serve` on this machine ({platform.machine()}, {os.cpu_count()} cores "
        f"shared by the server and the load generator; one server process, kernel threads "
        f"{threads}; hmmfast {hmmfast.__version__}; CategoricalHMM N={N}, M={M}, "
        f"sessions of T={T}; 1-minute load average before the run {load_before:.2f}: "
        "other processes' share of the machine)",
        "",
        "Throughput, POST /v1/score, closed loop (each connection sends its next request "
        "when the reply is in)",
        "",
        "| sessions per request | connections | request body | sessions/s |",
        "|---:|---:|---:|---:|",
    ]
    for batch, n_conn, size, rate in rows:
        lines.append(f"| {batch} | {n_conn} | {size / 1024:.0f} KiB | {rate:,.0f} |")
    n = int(args.rate * args.seconds)
    lines += [
        "",
        f"Latency, single-session requests paced open-loop at {args.rate:.0f} requests/s "
        f"for {args.seconds:.0f} s ({n} requests), ms",
        "",
        "| request | measured | p50 | p90 | p99 | p99.9 | max |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, (from_due, from_sent, app, lib, _) in (("POST /v1/score", score),
                                                        ("GET /healthz (floor)", floor)):
        for label, x in (("client, from due time", from_due),
                         ("client, from send", from_sent),
                         ("server app time", app), ("library (score_batch)", lib)):
            x = x[np.isfinite(x)]
            if x.size == 0:
                continue
            lines.append(f"| {name} | {label} | {pct(x, 50):.3f} | {pct(x, 90):.3f} | "
                         f"{pct(x, 99):.3f} | {pct(x, 99.9):.3f} | {x.max() * 1e3:.3f} |")
    _, _, s_app, s_lib, s_late = score
    share = np.nanmedian(s_lib) / np.nanmedian(s_app)
    lines += [
        "",
        f"Median server time per single-session request {np.nanmedian(s_app) * 1e6:.0f} µs, "
        f"of which the library {np.nanmedian(s_lib) * 1e6:.1f} µs ({share:.0%}); the rest "
        "is the body read, JSON parsing and checks, the reply and the metrics. Client "
        "latency adds uvicorn's HTTP parsing and the loopback round trip (the floor row). "
        f"Sends more than 1 ms behind their due time: {s_late} of {n} (/v1/score), "
        f"{floor[4]} of {n} (/healthz).",
        "",
        "Every reply was checked against the library: scores equal `model.score` / "
        "`score_batch` of the same sessions exactly.",
    ]
    return lines


if __name__ == "__main__":
    main()
