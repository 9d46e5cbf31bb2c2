"""End-to-end throughput of ``hmmfast decode`` / ``score`` on a big text file.

Usage: python bench/bench_cli.py [--sessions 1000000] [--repeats 3] [--threads 2]
                                 [--out bench/results/cli.md]

Generates ``--sessions`` lines of ~20 integer symbols (lengths 15-25) in /tmp from an
N=5, M=10 CategoricalHMM (and the demo's 2-state casino model), then times the real
command as a subprocess, start-up, parsing and writing the output included (median of
``--repeats`` runs, output to a file in /tmp). Also reports where the time goes
(interpreter start-up + import, then parse / kernel / format / write measured
in-process over the same batches as the command) and two per-sequence Python loops
over the lines, extrapolated from a sample of lines: one calling hmmfast's ``decode``,
one calling hmmlearn's (when installed) -- what a user without the command line would
write. The issue's target: >= 500,000 sessions per second with ``--threads 2``.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import hmmfast
from hmmfast import _textio
from hmmfast._cli_data import DataSource

try:
    from hmmlearn import hmm as hmmlearn_hmm
except ImportError:  # the peer is optional
    hmmlearn_hmm = None

TMP = Path("/tmp/hmmfast_bench_cli")


def make_model(n, m, seed=0):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = rng.dirichlet(np.ones(n))
    sticky = rng.dirichlet(np.ones(n), size=n) + 2 * np.eye(n)  # sessions stay in a state
    model.transmat_ = sticky / sticky.sum(axis=1, keepdims=True)
    model.emissionprob_ = rng.dirichlet(np.ones(m), size=n)
    return model


def write_sessions(path, n_sessions, n_symbols, seed=1):
    """n_sessions lines of 15-25 single-digit symbols separated by spaces (vectorised)."""
    assert n_symbols <= 10
    rng = np.random.default_rng(seed)
    lengths = rng.integers(15, 26, n_sessions)
    ends = np.cumsum(lengths)
    symbols = rng.integers(0, n_symbols, int(ends[-1]))
    chars = np.empty(2 * len(symbols), dtype=np.uint8)
    chars[0::2] = symbols + ord("0")
    chars[1::2] = ord(" ")
    chars[2 * ends - 1] = ord("\n")
    path.write_bytes(chars.tobytes())
    return lengths


def run_command(args, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "hmmfast", *map(str, args)],
                                capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if result.returncode != 0:
            raise RuntimeError(f"hmmfast {' '.join(map(str, args))} failed: {result.stderr}")
    return statistics.median(times)


def startup_seconds(repeats):
    code = "import hmmfast._cli"
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def split_times(model_path, data_path, threads, command):
    """Seconds spent parsing, in the kernels, formatting and writing, in-process."""
    model = hmmfast.load(model_path)
    source = DataSource(str(data_path), symbols=True, n_symbols=model.n_features)
    parse = kernel = fmt = write = 0.0
    with open(TMP / "split.out", "wb") as out:
        t0 = time.perf_counter()
        for batch in source.batches():
            t1 = time.perf_counter()
            if command == "decode":
                values, paths = model.decode_batch(batch.X, threads, lengths=batch.lengths,
                                                   errors="mark")
            else:
                values, paths = model.score_batch(batch.X, threads, lengths=batch.lengths), None
            t2 = time.perf_counter()
            text = _textio.format_results(values, paths, None, n_threads=threads)
            t3 = time.perf_counter()
            out.write(text)
            t4 = time.perf_counter()
            parse += t1 - t0
            kernel += t2 - t1
            fmt += t3 - t2
            write += t4 - t3
            t0 = time.perf_counter()
    return parse, kernel, fmt, write


def python_loop_seconds(decode, data_path, n_lines):
    """Seconds per line of a plain Python loop: parse the line, decode, format the line."""
    lines = []
    with open(data_path) as f:
        for line in f:
            lines.append(line)
            if len(lines) == n_lines:
                break
    out = []
    t0 = time.perf_counter()
    for line in lines:
        X = np.array(line.split(), dtype=np.intp)[:, None]
        logprob, states = decode(X)
        out.append(f"{logprob!r}\t{' '.join(map(str, states.tolist()))}\n")
    return (time.perf_counter() - t0) / len(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    TMP.mkdir(exist_ok=True)
    n = args.sessions
    cases = [("N=5, M=10", make_model(5, 10)), ("casino, N=2, M=6", None)]
    startup = startup_seconds(args.repeats)
    rows = []
    for label, model in cases:
        if model is None:
            from hmmfast._demo import casino_model

            model = casino_model()
        m = model.n_features
        model_path = TMP / f"model_{model.n_components}.npz"
        data_path = TMP / f"sessions_{n}_{m}.txt"
        model.save(model_path)
        if not data_path.exists():
            write_sessions(data_path, n, m)
        size_mb = data_path.stat().st_size / 1e6
        for command in ("decode", "score"):
            seconds = run_command([command, "--threads", args.threads, model_path, data_path,
                                   "-o", TMP / "out.txt"], args.repeats)
            parse, kernel, fmt, write = split_times(model_path, data_path, args.threads,
                                                    command)
            rows.append((label, command, size_mb, seconds, parse, kernel, fmt, write))
        peer_model = None
        if hmmlearn_hmm is not None:
            peer_model = hmmlearn_hmm.CategoricalHMM(model.n_components, n_features=m)
            peer_model.startprob_ = model.startprob_
            peer_model.transmat_ = model.transmat_
            peer_model.emissionprob_ = model.emissionprob_
        loops = [("hmmfast", python_loop_seconds(model.decode, data_path, 20_000))]
        if peer_model is not None:
            loops.append(("hmmlearn", python_loop_seconds(peer_model.decode, data_path, 2_000)))
        rows.append((label, "loops", loops))

    lines = [
        f"`hmmfast decode|score --threads {args.threads} MODEL FILE -o OUT` on {n:,} lines of "
        f"15-25 symbols (median of {args.repeats} runs, end to end: start-up, parsing, "
        f"output); {platform.machine()}, {os.cpu_count()} CPUs, hmmfast {hmmfast.__version__}"
        + (f", hmmlearn {__import__('hmmlearn').__version__}" if hmmlearn_hmm else "")
        + f". Start-up (interpreter + import) {startup:.2f} s.",
        "",
        "| model | command | file | end to end | sessions/s | parse | kernel | format | "
        "write | Python loop, hmmfast decode | Python loop, hmmlearn decode |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row[1] == "loops":
            continue
        label, command, size_mb, seconds, parse, kernel, fmt, write = row
        loops = dict(next(r for r in rows if r[0] == label and r[1] == "loops")[2])
        ext = {k: f"{1 / v:,.0f}/s ({v * n:,.0f} s)" for k, v in loops.items()}
        lines.append(
            f"| {label} | {command} | {size_mb:.0f} MB | {seconds:.2f} s | {n / seconds:,.0f} "
            f"| {parse:.2f} s | {kernel:.2f} s | {fmt:.2f} s | {write:.2f} s | "
            f"{ext.get('hmmfast', '—') if command == 'decode' else ''} | "
            f"{ext.get('hmmlearn', '—') if command == 'decode' else ''} |")
    lines += ["", "Python loop columns: sessions per second of a per-line loop (split, "
              "decode, format), measured on a sample and extrapolated to the whole file."]
    table = "\n".join(lines)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table + "\n")


if __name__ == "__main__":
    main()
