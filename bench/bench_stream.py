"""Per-observation latency of the streaming objects: StreamScorer.push and StreamDecoder.push.

Usage: python bench/bench_stream.py [--pushes 100000] [--out bench/results/stream.md]

For each model size it first checks the streams against the offline calls (running
log-likelihood == score to 1e-9 relative, decoder output == decode exactly), then pushes
one Python int at a time: the median is over blocks of 1000 pushes timed together
(time.perf_counter_ns around the block, divided by 1000: the per-push cost a service
loop sees, loop overhead included), and the p99 is over pushes timed one by one (each
sample includes one timer call, ~20-40 ns). "loop" is the same block loop calling a no-op
builtin instead, the floor any per-observation Python call pays. "chunk" pushes all
observations in one call (ns per observation).

There is no streaming peer. As context, the cost per new observation of re-scoring the
growing prefix (T = 1..100), the only way to get a running log-likelihood from hmmlearn,
is reported for hmmlearn and for hmmfast's own score.
"""

import argparse
import gc
import platform
import time

import numpy as np
from _benchlib import hmmlearn_or_none, median_seconds, write_table

import hmmfast

CASES = [(5, 10), (64, 10)]  # (N states, M symbols)
BLOCK = 1000


def build(n, m, seed=0):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n)
    model.emissionprob_ = rng.dirichlet(np.ones(m), size=n)
    return model


def check(model, X):
    scorer = model.stream_scorer()
    for x in X[:5000].tolist():
        scorer.push(x)
    value = scorer.push(X[5000:])
    expected = model.score(X)
    assert abs(value - expected) <= 1e-9 * abs(expected), (value, expected)
    decoder = model.stream_decoder()
    out = [decoder.push(x) for x in X[:5000].tolist()]
    out += [decoder.push(X[5000:]), decoder.flush()]
    assert np.array_equal(np.concatenate(out), model.decode(X)[1])


def block_medians(push, symbols):
    """Median µs per push over blocks of BLOCK pushes timed together."""
    per_push = []
    for start in range(0, len(symbols) - BLOCK + 1, BLOCK):
        block = symbols[start:start + BLOCK]
        t0 = time.perf_counter_ns()
        for x in block:
            push(x)
        per_push.append((time.perf_counter_ns() - t0) / BLOCK / 1000.0)
    return float(np.median(per_push))


def single_p99(push, symbols):
    """99th percentile µs of single pushes, each timed on its own."""
    samples = np.empty(len(symbols))
    clock = time.perf_counter_ns
    for k, x in enumerate(symbols):
        t0 = clock()
        push(x)
        samples[k] = clock() - t0
    return float(np.percentile(samples, 99)) / 1000.0


def measure(make_stream, symbols):
    stream = make_stream()
    for x in symbols[:2000]:  # warm up
        stream.push(x)
    stream = make_stream()
    gc.disable()
    try:
        median = block_medians(stream.push, symbols)
        stream = make_stream()
        p99 = single_p99(stream.push, symbols)
    finally:
        gc.enable()
    return median, p99


def prefix_rescoring(score, X, big_t=100):
    """Mean µs per new observation of score(X[:t]) for t = 1..big_t."""
    def run():
        for t in range(1, big_t + 1):
            score(X[:t])
    return median_seconds(run, repeats=5) / big_t * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=100_000)
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    peer = hmmlearn_or_none()
    rows, context = [], []
    for n, m in CASES:
        model = build(n, m)
        X = model.sample(args.pushes, random_state=1)[0][:, 0]
        check(model, X)
        symbols = X.tolist()
        loop = block_medians(id, symbols)
        for name, make in (("StreamScorer.push(int)", model.stream_scorer),
                           ("StreamDecoder.push(int)", model.stream_decoder)):
            median, p99 = measure(make, symbols)
            whole = lambda: make().push(X)  # noqa: E731
            chunk_ns = median_seconds(whole, repeats=5) / len(X) * 1e9
            rows.append(f"| N={n}, M={m} | {name} | {median:.3f} | {p99:.3f} | {loop:.3f} | "
                        f"{chunk_ns:.0f} |")
        if n == CASES[0][0]:
            prefix = X[:100, None]
            ours = prefix_rescoring(model.score, prefix)
            context.append(f"| hmmfast score(X[:t]) | {ours:.2f} |")
            if peer is not None:
                theirs = peer.CategoricalHMM(n, n_features=m)
                theirs.startprob_ = model.startprob_
                theirs.transmat_ = model.transmat_
                theirs.emissionprob_ = model.emissionprob_
                context.append(f"| hmmlearn score(X[:t]) | "
                               f"{prefix_rescoring(theirs.score, prefix):.2f} |")
    lines = [
        f"Streaming latency, µs per observation ({args.pushes} pushes; "
        f"{platform.processor() or platform.machine()}, hmmfast {hmmfast.__version__})",
        "",
        "| model | call | median (blocks of 1000) | p99 (single pushes) | loop floor | "
        "chunk, ns/obs |",
        "|---|---|---:|---:|---:|---:|",
        *rows,
        "",
        "median: blocks of 1000 pushes of one Python int timed together, per push (the "
        "Python loop included); p99: pushes timed one by one (one timer call included); "
        "loop floor: the same loop calling the builtin id(); chunk: one push of all the "
        "observations, ns per observation.",
        "",
        "No streaming peer. Context, N=5, M=10: µs per new observation when re-scoring the "
        "growing prefix (T = 1..100) instead of streaming",
        "",
        "| call | µs per new observation |",
        "|---|---:|",
        *context,
    ]
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
