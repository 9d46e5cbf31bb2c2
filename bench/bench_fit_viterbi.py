"""Viterbi training (fit_viterbi) against Baum-Welch (fit) in the same run.

Usage: python bench/bench_fit_viterbi.py [--repeats 5] [--out bench/results/fit_viterbi.md]

Per iteration: both start from the same parameters (init_params="") and run a fixed
number of iterations (tol=-inf); the time per iteration is (median time of 2k iterations
- median time of k) / k, so set-up and the final pass are not counted. To convergence:
the default tol=1e-2 from a k-means start (random_state=0), iterations and total time,
and each result's log-likelihood on the training data. One thread.
"""

import argparse
import time
import warnings

import numpy as np
from _benchlib import median_seconds, write_table

import hmmfast

CASES = [  # label, model factory, data factory
    ("CategoricalHMM N=5, M=10, 1,000 x 100", "categorical"),
    ("GaussianHMM diag N=8, D=13, 50 x 500", "gaussian"),
    ("left-to-right GaussianHMM N=8, D=13, 200 x 60", "left_right"),
]


def case(kind, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "categorical":
        n, m = 5, 10
        truth = hmmfast.CategoricalHMM(n)
        truth.startprob_ = rng.dirichlet(np.ones(n))
        truth.transmat_ = rng.dirichlet(np.ones(n), size=n)
        truth.emissionprob_ = rng.dirichlet(np.ones(m), size=n)
        lengths = [100] * 1000

        def make(**kw):
            return hmmfast.CategoricalHMM(n, n_features=m, n_threads=1, **kw)
    else:
        n, d = 8, 13
        left_right = kind == "left_right"
        truth = hmmfast.GaussianHMM(n, "diag")
        if left_right:
            truth.startprob_, truth.transmat_ = hmmfast.topology.left_right(n, skip=1,
                                                                            self_loop=0.8)
            lengths = [60] * 200
        else:
            a = np.full((n, n), 0.02) + 0.84 * np.eye(n)
            truth.startprob_, truth.transmat_ = np.full(n, 1 / n), a / a.sum(1, keepdims=True)
            lengths = [500] * 50
        truth.means_ = rng.normal(0, 2, (n, d))
        truth.covars_ = np.ones((n, d))

        def make(**kw):
            model = hmmfast.GaussianHMM(n, "diag", n_threads=1, **kw)
            if left_right:
                model.init_params = kw.get("init_params", "mc")
                if "s" not in model.init_params:
                    model.startprob_, model.transmat_ = hmmfast.topology.left_right(n)
            return model
    X = np.concatenate([truth.sample(t, random_state=rng)[0] for t in lengths])
    return make, X, lengths


def per_iteration_ms(make, X, lengths, method, iters, repeats):
    start = make(random_state=0, n_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start.fit(X, lengths)  # a common starting point

    def run(k):
        model = make(n_iter=k, tol=-np.inf, init_params="")
        for name in start._param_shapes(start.n_components):
            setattr(model, name, start._covars_ if name == "covars_" and hasattr(
                start, "_covars_") else getattr(start, name))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            getattr(model, method)(X, lengths)

    short = median_seconds(lambda: run(iters), repeats, warmup=0)
    long = median_seconds(lambda: run(2 * iters), repeats, warmup=0)
    return 1e3 * (long - short) / iters


def to_convergence(make, X, lengths, method):
    model = make(random_state=0, n_iter=200)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(model, method)(X, lengths)
    return time.perf_counter() - t0, model.monitor_.iter, model.score(X, lengths)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    lines = [
        f"fit_viterbi against fit, one thread (per iteration: medians of {args.repeats} fits "
        "of k and 2k iterations; to convergence: tol=1e-2 from the same k-means start)",
        "",
        "| case | Baum-Welch ms/iter | Viterbi ms/iter | speed-up per iteration | "
        "Baum-Welch: iterations, s, log-likelihood | Viterbi: iterations, s, "
        "log-likelihood |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, kind in CASES:
        make, X, lengths = case(kind)
        bw = per_iteration_ms(make, X, lengths, "fit", 5, args.repeats)
        vt = per_iteration_ms(make, X, lengths, "fit_viterbi", 5, args.repeats)
        conv = {m: to_convergence(make, X, lengths, m) for m in ("fit", "fit_viterbi")}
        cells = [f"{it}, {s:.2f}, {ll:.1f}" for s, it, ll in conv.values()]
        lines.append(f"| {label} | {bw:.2f} | {vt:.2f} | {bw / vt:.2f}x | {cells[0]} | "
                     f"{cells[1]} |")
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
