"""Threads that never lose: n_threads=None against n_threads=1 on a busy machine.

Usage: python bench/bench_busy.py [--repeats 7] [--load 1.0] [--out bench/results/busy.md]

Beside the measurement run ``load`` x (CPUs this process may use) CPU-bound processes
(a service's neighbours, Dask workers, CI), started before and stopped after. Each
workload runs with n_threads=1 and with the default (None) in turn, interleaved, and the
table gives medians and "None vs 1" = time(1) / time(None): the issue's goal is >= 0.9 on
every row (the default never the slow choice). ``--load 0`` measures the quiet machine,
where the default should use the idle cores (> 1 for the large rows).
"""

import argparse
import multiprocessing
import os
import time
import warnings

import numpy as np
from _benchlib import write_table

import hmmfast

try:
    from hmmfast._threads import cpu_budget
except ImportError:  # an hmmfast from before issue 29, for a before/after table
    def cpu_budget():
        return len(os.sched_getaffinity(0))


def spin(stop):
    while not stop.is_set():
        for _ in range(100_000):
            pass


def quiet_fit(model, X, lengths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, lengths)


def categorical(n, m, seed=0):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(n, n_features=m)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n)
    model.emissionprob_ = rng.dirichlet(np.ones(m), size=n)
    return model


def gaussian(n, d, seed=0):
    rng = np.random.default_rng(seed)
    model = hmmfast.GaussianHMM(n, covariance_type="diag")
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n) * 3, size=n)
    model.means_ = rng.normal(size=(n, d)) * 2
    model.covars_ = rng.uniform(0.5, 2.0, (n, d))
    return model


def em(truth, lengths, n_iter):
    X = np.concatenate([truth.sample(int(t), random_state=k)[0] for k, t in enumerate(lengths)])

    def run(threads):
        model = type(truth)(truth.n_components, n_iter=n_iter, tol=-np.inf,
                            init_params="", n_threads=threads)
        for name in ("startprob_", "transmat_", "emissionprob_", "means_", "covars_"):
            if hasattr(truth, name) and name != "covars_":
                setattr(model, name, getattr(truth, name))
        if isinstance(truth, hmmfast.GaussianHMM):
            model.covars_ = truth._covars
        return quiet_fit(model, X, lengths)
    return run


def workloads():
    rng = np.random.default_rng(1)
    cat5 = categorical(5, 10)
    batch = [rng.integers(0, 10, (100, 1)) for _ in range(10_000)]

    def batch_call(method):
        def run(threads):
            cat5.n_threads = threads
            cat5._cache = None
            return getattr(cat5, method)(batch)
        return run

    yield "score_batch, 10,000 x 100, N=5", batch_call("score_batch")
    yield "decode_batch, 10,000 x 100, N=5", batch_call("decode_batch")
    yield "Categorical EM, 1,000 x 100, N=5 (5 iterations)", em(cat5, [100] * 1000, 5)
    yield "Categorical EM, 100 x 1,000, N=64 (2 iterations)", em(categorical(64, 32),
                                                                  [1000] * 100, 2)
    yield ("Small fit: 5-state diag, 239 x ~21 x 13 (10 iterations)",
           em(gaussian(5, 13, 2), np.random.default_rng(11).integers(15, 28, 239), 10))
    yield ("GaussianHMM diag EM, 200 x 500, N=8, D=13 (3 iterations)",
           em(gaussian(8, 13, 3), [500] * 200, 3))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--load", type=float, default=1.0,
                        help="competing CPU-bound processes per CPU (0: none)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cpus = cpu_budget()
    n_load = round(args.load * cpus)
    stop = multiprocessing.Event()
    procs = [multiprocessing.Process(target=spin, args=(stop,), daemon=True)
             for _ in range(n_load)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    lines = [
        f"hmmfast {hmmfast.__version__} from {os.path.dirname(hmmfast.__file__)}: "
        f"n_threads=None against n_threads=1, {n_load} CPU-bound processes beside the "
        f"measurement on {cpus} CPUs (medians of {args.repeats}, interleaved; "
        f"load average at start {os.getloadavg()[0]:.1f})",
        "",
        "| workload | 1 thread | default (None) | None vs 1 (>= 0.9 wanted) |",
        "|---|---:|---:|---:|",
    ]
    try:
        for label, run in workloads():
            run(1)
            run(None)
            times = {1: [], None: []}
            for _ in range(args.repeats):
                for threads in (1, None):
                    t0 = time.perf_counter()
                    run(threads)
                    times[threads].append(time.perf_counter() - t0)
            one, auto = (float(np.median(times[k])) for k in (1, None))
            lines.append(f"| {label} | {1e3 * one:.1f} ms | {1e3 * auto:.1f} ms | "
                         f"{one / auto:.2f}x |")
            print(lines[-1], flush=True)
    finally:
        stop.set()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
