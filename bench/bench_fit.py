"""Baum-Welch per iteration, hmmfast against hmmlearn in the same run.

Usage: python bench/bench_fit.py [--repeats 5] [--out bench/results/fit.md]

Both libraries start from the same parameters (init_params="") and run a fixed number of
iterations (tol=-inf); a first fit checks that their parameters agree after them. The
time per iteration is (median time of a fit with 2k iterations - median time with k) / k,
so set-up and hmmfast's final scoring pass are not counted. hmmfast runs on 1 and on 2
threads; hmmlearn with implementation="scaling" (its faster one).
"""

import argparse
import warnings

import numpy as np
from _benchlib import bar_chart, hmmlearn_or_none, median_seconds, write_table

import hmmfast

CASES = [  # label, N, M, sequences, T, iterations
    ("clickstream: N=5, M=10, 1,000 x 100", 5, 10, 1000, 100, 10),
    ("N=64, M=32, 100 x 1,000", 64, 32, 100, 1000, 4),
]


def setup(n, m, n_seq, big_t, seed=0):
    rng = np.random.default_rng(seed)
    params = (rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n), size=n),
              rng.dirichlet(np.ones(m), size=n))
    truth = hmmfast.CategoricalHMM(n)
    truth.startprob_, truth.transmat_, truth.emissionprob_ = params
    X = np.concatenate([truth.sample(big_t, random_state=seed + k)[0] for k in range(n_seq)])
    start = (rng.dirichlet(np.ones(n) * 5), rng.dirichlet(np.ones(n) * 5, size=n),
             rng.dirichlet(np.ones(m) * 5, size=n))
    return start, X, [big_t] * n_seq


def fitter(make, start, X, lengths):
    def run(n_iter):
        model = make(n_iter)  # in the constructor: hmmlearn's monitor copies n_iter there
        model.startprob_, model.transmat_, model.emissionprob_ = start
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, lengths)
        return model
    return run


def per_iteration_ms(run, iters, repeats):
    """(median fit time with 2 * iters iterations - with iters) / iters, in ms."""
    short = median_seconds(lambda: run(iters), repeats, warmup=0)
    long = median_seconds(lambda: run(2 * iters), repeats, warmup=0)
    return 1e3 * (long - short) / iters


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    hmm = hmmlearn_or_none()
    lines = [
        f"Baum-Welch, ms per iteration (medians of {args.repeats} fits of k and 2k iterations)",
        "",
        "| case | hmmfast 1 thread | hmmfast 2 threads | 2-thread speed-up | "
        "ns per step x state^2 (1 thread) | hmmlearn (scaling) | speed-up (1 thread) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    chart_rows = []
    for label, n, m, n_seq, big_t, iters in CASES:
        start, X, lengths = setup(n, m, n_seq, big_t)
        ours = {}
        for threads in (1, 2):
            run = fitter(lambda k, threads=threads: hmmfast.CategoricalHMM(
                n, n_features=m, n_iter=k, tol=-np.inf, init_params="", n_threads=threads),
                start, X, lengths)
            fitted = run(iters)
            ours[threads] = per_iteration_ms(run, iters, args.repeats)
        theirs = None
        if hmm is not None:
            peer = fitter(lambda k: hmm.CategoricalHMM(
                n, n_features=m, n_iter=k, tol=-np.inf, init_params="",
                implementation="scaling"),
                start, X, lengths)
            their_model = peer(iters)
            np.testing.assert_allclose(fitted.transmat_, their_model.transmat_, rtol=1e-6,
                                       atol=1e-10)
            np.testing.assert_allclose(fitted.emissionprob_, their_model.emissionprob_,
                                       rtol=1e-6, atol=1e-10)
            theirs = per_iteration_ms(peer, iters, max(1, args.repeats // 2))
        ns_cell = 1e6 * ours[1] / (sum(lengths) * n * n)
        peer_cols = (f"{theirs:.1f} | {theirs / ours[1]:.1f}x" if theirs else "- | -")
        lines.append(f"| {label} | {ours[1]:.2f} | {ours[2]:.2f} | {ours[1] / ours[2]:.2f}x | "
                     f"{ns_cell:.3f} | {peer_cols} |")
        chart_rows.append((label.split(":")[0], ours[1], ours[2], theirs or np.nan))

    def chart(path):
        bar_chart(path, [r[0] for r in chart_rows],
                  {"hmmfast, 1 thread": [r[1] for r in chart_rows],
                   "hmmfast, 2 threads": [r[2] for r in chart_rows],
                   "hmmlearn": [r[3] for r in chart_rows]},
                  "ms per EM iteration (log scale)")

    write_table(lines, args.out, chart)


if __name__ == "__main__":
    main()
