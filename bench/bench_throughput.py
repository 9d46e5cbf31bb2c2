"""Dense trellis throughput as the state space grows, hmmfast against hmmlearn in one run.

Usage: python bench/bench_throughput.py [--repeats 15] [--out bench/results/throughput.md]

Categorical models with N = 16, 64, 256 states, M = 32 symbols, T = 1000: the median wall
time of score (forward, scaling) and decode (Viterbi), the time per trellis cell
(T * N * N) for hmmfast, and the ratio to hmmlearn on the same model and data (after
checking that the two agree on the log-likelihood and the Viterbi score).
"""

import argparse
import time
from pathlib import Path

import numpy as np

import hmmfast

try:
    from hmmlearn import hmm as hmmlearn_hmm
except ImportError:  # the peer is optional
    hmmlearn_hmm = None

STATES = (16, 64, 256)
N_SYMBOLS, T = 32, 1000


def median_ms(fn, X, repeats):
    """Median wall time of fn(X) in milliseconds, after one warm-up call."""
    fn(X)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(X)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    lines = [
        f"Dense trellis, M={N_SYMBOLS}, T={T}, median of {args.repeats} calls",
        "",
        "| N | call | hmmfast ms | ns per cell | hmmlearn ms | speed-up |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for n in STATES:
        rng = np.random.default_rng(n)
        startprob = rng.dirichlet(np.ones(n))
        transmat = rng.dirichlet(np.ones(n), size=n)
        emissionprob = rng.dirichlet(np.ones(N_SYMBOLS), size=n)
        X = rng.integers(0, N_SYMBOLS, size=(T, 1))
        ours = hmmfast.CategoricalHMM(n)
        ours.startprob_, ours.transmat_, ours.emissionprob_ = startprob, transmat, emissionprob
        peer = None
        if hmmlearn_hmm is not None:
            peer = hmmlearn_hmm.CategoricalHMM(n, n_features=N_SYMBOLS, implementation="scaling")
            peer.startprob_, peer.transmat_, peer.emissionprob_ = startprob, transmat, emissionprob
            assert abs(peer.score(X) - ours.score(X)) <= 1e-9 * abs(ours.score(X))
            assert abs(peer.decode(X)[0] - ours.decode(X)[0]) <= 1e-9 * abs(ours.score(X))
        for call in ("score", "decode"):
            ms = median_ms(getattr(ours, call), X, args.repeats)
            ns_cell = 1e6 * ms / (T * n * n)
            if peer is None:
                lines.append(f"| {n} | {call} | {ms:.3f} | {ns_cell:.2f} | - | - |")
                continue
            peer_ms = median_ms(getattr(peer, call), X, args.repeats)
            lines.append(f"| {n} | {call} | {ms:.3f} | {ns_cell:.2f} | {peer_ms:.2f} | "
                         f"{peer_ms / ms:.0f}x |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
