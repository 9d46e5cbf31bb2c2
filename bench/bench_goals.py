"""Issue 29's rows: hmmfast (one thread) against hmmlearn in the same run, with the goals.

Usage: python bench/bench_goals.py [--repeats 7] [--rows 1,3] [--wall] [--out bench/results/goals.md]

Every row times hmmfast and hmmlearn interleaved (one repeat of each in turn, so a burst
of load hits both) and reports medians and their ratio. Both run on one thread, so the
clock is the process's CPU time (time.process_time): on a shared machine it does not
count the time other processes held the CPU, which wall time does (measured: the same
hmmlearn call 7 ms to 84 ms wall under a load of 8 on 2 cores). ``--wall`` uses
time.perf_counter instead, for a quiet machine. EM rows start both libraries from
the same parameters (init_params="", tol=-inf) and time one iteration as the median of
(fit with 2k iterations - fit with k) / k, so set-up and final scoring are not counted.
hmmlearn runs with the implementation its row names (the issue's figures: "scaling" for
the categorical rows, its default "log" for Gaussian EM). Busy-machine rows (1 vs the
default threads) are bench/bench_busy.py. BLAS runs on one thread (OPENBLAS_NUM_THREADS=1
and friends, set before NumPy loads): both libraries call it, and the rows are one thread.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from _benchlib import hmmlearn_or_none, write_table  # noqa: E402

import hmmfast  # noqa: E402


def quiet_fit(model, X, lengths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, lengths)


clock = time.process_time  # main() switches to time.perf_counter with --wall


def interleaved(fns, repeats):
    """Median seconds of each fn, timed in turn within every repeat (after one warm-up)."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = clock()
            fn()
            times[k].append(clock() - t0)
    return [float(np.median(t)) for t in times]


def per_iteration(make, X, lengths, iters):
    """A function timing one EM iteration: fit(2k) - fit(k), over k."""
    def run():
        t0 = clock()
        quiet_fit(make(iters), X, lengths)
        t1 = clock()
        quiet_fit(make(2 * iters), X, lengths)
        t2 = clock()
        return ((t2 - t1) - (t1 - t0)) / iters
    return run


def interleaved_iterations(runs, repeats):
    for run in runs:
        run()
    out = [[] for _ in runs]
    for _ in range(repeats):
        for k, run in enumerate(runs):
            out[k].append(run())
    return [float(np.median(t)) for t in out]


# ------------------------------------------------------------------ models and data

def categorical_case(n, m, n_seq, big_t, seed=0):
    rng = np.random.default_rng(seed)
    truth = hmmfast.CategoricalHMM(n)
    truth.startprob_ = rng.dirichlet(np.ones(n))
    truth.transmat_ = rng.dirichlet(np.ones(n), size=n)
    truth.emissionprob_ = rng.dirichlet(np.ones(m), size=n)
    X = np.concatenate([truth.sample(big_t, random_state=seed + k)[0] for k in range(n_seq)])
    start = (rng.dirichlet(np.ones(n) * 5), rng.dirichlet(np.ones(n) * 5, size=n),
             rng.dirichlet(np.ones(m) * 5, size=n))
    return start, X, [big_t] * n_seq


def gaussian_params(n, d, covariance_type, seed):
    rng = np.random.default_rng(seed)
    p = {"startprob_": rng.dirichlet(np.ones(n)),
         "transmat_": rng.dirichlet(np.ones(n) * 3, size=n),
         "means_": rng.normal(size=(n, d)) * 2}
    if covariance_type == "diag":
        p["covars_"] = rng.uniform(0.5, 2.0, (n, d))
    else:
        mats = [a @ a.T / d + np.eye(d) for a in rng.normal(size=(n, d, d))]
        p["covars_"] = np.array(mats)
    return p


def gaussian(lib, n, d, covariance_type, params, **kw):
    model = lib.GaussianHMM(n, covariance_type=covariance_type, **kw)
    for name, value in params.items():
        setattr(model, name, value)
    return model


# ------------------------------------------------------------------ rows

def categorical_em(hmm, label, goal, n, m, n_seq, big_t, iters, repeats):
    start, X, lengths = categorical_case(n, m, n_seq, big_t)

    def make(lib, **kw):
        def build(k):
            model = lib.CategoricalHMM(n, n_iter=k, tol=-np.inf, init_params="", **kw)
            model.startprob_, model.transmat_, model.emissionprob_ = start
            return model
        return build

    runs = [per_iteration(make(hmmfast, n_features=m, n_threads=1), X, lengths, iters)]
    if hmm is not None:
        runs.append(per_iteration(make(hmm, n_features=m, implementation="scaling"), X,
                                  lengths, max(1, iters // 2)))
    t = interleaved_iterations(runs, repeats)
    return [(label, "ms / iteration (hmmlearn scaling)", 1e3 * t[0],
             1e3 * t[1] if hmm is not None else None, goal)]


def gaussian_inference(hmm, covariance_type, goal, repeats):
    n, d = 8, 13
    params = gaussian_params(n, d, covariance_type, 0)
    ours = gaussian(hmmfast, n, d, covariance_type, params, n_threads=1)
    X = ours.sample(1000, random_state=1)[0]
    rows = []
    for call, impl in (("score", "scaling"), ("decode", "log")):
        fns = [lambda c=call: getattr(ours, c)(X)]
        if hmm is not None:
            peer_params = dict(params, covars_=ours._covars)
            peer = gaussian(hmm, n, d, covariance_type, peer_params, implementation=impl)
            fns.append(lambda c=call, p=peer: getattr(p, c)(X))
        t = interleaved(fns, repeats * 20)
        rows.append((f"GaussianHMM {covariance_type}, N=8, D=13, T=1,000", f"{call} µs",
                     1e6 * t[0], 1e6 * t[1] if hmm is not None else None, goal))
    return rows


def gaussian_em(hmm, label, goal, n, d, lengths, iters, repeats, seed=3, peer_iters=1):
    truth = gaussian(hmmfast, n, d, "diag", gaussian_params(n, d, "diag", seed))
    X = np.concatenate([truth.sample(int(t), random_state=k)[0]
                        for k, t in enumerate(lengths)])
    start = gaussian_params(n, d, "diag", seed + 1)

    def make(lib, **kw):
        return lambda k: gaussian(lib, n, d, "diag", start, n_iter=k, tol=-np.inf,
                                  init_params="", **kw)

    runs = [per_iteration(make(hmmfast, n_threads=1), X, lengths, iters)]
    if hmm is not None:
        runs.append(per_iteration(make(hmm), X, lengths, peer_iters))
    t = interleaved_iterations(runs, repeats)
    return [(label, "ms / iteration (hmmlearn default, log)", 1e3 * t[0],
             1e3 * t[1] if hmm is not None else None, goal)]


def gmm_em(hmm, goal, repeats):
    n, d, k = 8, 13, 4
    rng = np.random.default_rng(5)
    ours = hmmfast.GMMHMM(n, n_mix=k, covariance_type="diag", n_threads=1)
    ours.startprob_ = rng.dirichlet(np.ones(n))
    ours.transmat_ = rng.dirichlet(np.ones(n) * 3, size=n)
    ours.weights_ = rng.dirichlet(np.ones(k) * 3, size=n)
    ours.means_ = rng.normal(size=(n, k, d)) * 2
    ours.covars_ = rng.uniform(0.5, 2.0, (n, k, d))
    lengths = [500] * 50
    X = np.concatenate([ours.sample(500, random_state=s)[0] for s in range(50)])

    def one_iteration(model, peer=False):
        twin = copy.deepcopy(model)
        twin.n_iter, twin.tol, twin.init_params = 1, -np.inf, ""
        if peer:
            twin.monitor_.n_iter = 1
        return quiet_fit(twin, X, lengths)

    fns = [lambda: one_iteration(ours)]
    if hmm is not None:
        peer = hmm.GMMHMM(n, n_mix=k, covariance_type="diag", implementation="scaling")
        peer.startprob_, peer.transmat_ = ours.startprob_, ours.transmat_
        peer.weights_, peer.means_, peer.covars_ = ours.weights_, ours.means_, ours.covars_
        fns.append(lambda: one_iteration(peer, True))
    t = interleaved(fns, repeats)
    return [("GMMHMM diag, n_mix=4, N=8, D=13, 50 x 500", "one EM iteration ms (hmmlearn "
             "scaling)", 1e3 * t[0], 1e3 * t[1] if hmm is not None else None, 10)]


def dense_viterbi(hmm, repeats):
    start, _, _ = categorical_case(64, 32, 1, 10)
    X = np.random.default_rng(7).integers(0, 32, (1000, 1))
    ours = hmmfast.CategoricalHMM(64, n_features=32)
    ours.startprob_, ours.transmat_, ours.emissionprob_ = start
    fns = [lambda: ours.decode(X)]
    if hmm is not None:
        peer = hmm.CategoricalHMM(64, n_features=32)
        peer.startprob_, peer.transmat_, peer.emissionprob_ = start
        fns.append(lambda: peer.decode(X))
    t = interleaved(fns, repeats * 20)
    return [("Dense Viterbi, categorical N=64, M=32, T=1,000", "decode ms (goal <= 0.6 ms)",
             1e3 * t[0], 1e3 * t[1] if hmm is not None else None, None)]


ROWS = {
    1: lambda hmm, r: categorical_em(hmm, "Categorical EM, 1,000 x 100, N=5, M=10", 20,
                                     5, 10, 1000, 100, 10, r),
    2: lambda hmm, r: categorical_em(hmm, "Categorical EM, 100 x 1,000, N=64, M=32", 15,
                                     64, 32, 100, 1000, 2, max(3, r // 2)),
    3: lambda hmm, r: gaussian_inference(hmm, "diag", 20, r),
    4: lambda hmm, r: gaussian_inference(hmm, "full", 12, r),
    5: lambda hmm, r: gaussian_em(hmm, "GaussianHMM diag EM, 200 x 500, N=8, D=13", 25,
                                  8, 13, [500] * 200, 4, max(3, r // 2)),
    6: lambda hmm, r: gmm_em(hmm, 10, r),
    7: lambda hmm, r: gaussian_em(
        hmm, "Small fits: 5-state diag, 239 x ~21 frames x 13", 20, 5, 13,
        np.random.default_rng(11).integers(15, 28, 239), 10, r, seed=9, peer_iters=2),
    8: lambda hmm, r: dense_viterbi(hmm, r),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rows", default=",".join(map(str, ROWS)))
    parser.add_argument("--wall", action="store_true", help="wall-clock time, not CPU time")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    global clock
    if args.wall:
        clock = time.perf_counter
    hmm = hmmlearn_or_none()
    load = os.getloadavg()[0]
    lines = [
        f"Issue 29 rows, hmmfast on one thread against hmmlearn, interleaved, medians of "
        f"{args.repeats}+ repeats, {'wall' if args.wall else 'CPU'} time "
        f"(load average at start {load:.1f} on {os.cpu_count()} CPUs)",
        "",
        "| workload | measure | hmmfast | hmmlearn | speed-up | goal |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key in map(int, args.rows.split(",")):
        for label, what, ours, theirs, goal in ROWS[key](hmm, args.repeats):
            peer = f"{theirs:.3g}" if theirs is not None else "-"
            ratio = f"{theirs / ours:.1f}x" if theirs is not None else "-"
            lines.append(f"| {label} | {what} | {ours:.3g} | {peer} | {ratio} | "
                         f"{'' if goal is None else f'>= {goal}x'} |")
            print(lines[-1], flush=True)
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
