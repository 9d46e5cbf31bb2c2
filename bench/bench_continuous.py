"""Continuous and count emissions, hmmfast against hmmlearn in the same run.

Usage: python bench/bench_continuous.py [--repeats 20] [--fit-repeats 1] [--out bench/results/continuous.md]

Cases (DECISIONS.md): GaussianHMM diag and full, N=8, D=13 (MFCC-like), T=1,000: score and
decode; Baum-Welch, 20 iterations on 200 sequences x 500 frames, diag; PoissonHMM and
GMMHMM (n_mix=4), N=8, D=13, 50 sequences x 500 frames: score and one EM iteration.
Every pair is first checked to agree (log-likelihood, Viterbi score, parameters after the
iterations). hmmlearn runs with implementation="scaling" for score and fit (its faster
one); decode is Viterbi in both. Times are medians.
"""

import argparse
import warnings

import numpy as np
from _benchlib import bar_chart, hmmlearn_or_none, median_seconds, write_table

import hmmfast

N, D = 8, 13


def gaussian(covariance_type, seed=0):
    rng = np.random.default_rng(seed)
    model = hmmfast.GaussianHMM(N, covariance_type=covariance_type)
    model.startprob_ = rng.dirichlet(np.ones(N))
    model.transmat_ = rng.dirichlet(np.ones(N) * 3, size=N)
    model.means_ = rng.normal(size=(N, D)) * 2
    if covariance_type == "diag":
        model.covars_ = rng.uniform(0.5, 2.0, (N, D))
    else:
        mats = []
        for _ in range(N):
            a = rng.normal(size=(D, D))
            mats.append(a @ a.T / D + np.eye(D))
        model.covars_ = np.array(mats)
    return model


def gaussian_twin(hmm, model, **kw):
    twin = hmm.GaussianHMM(N, covariance_type=model.covariance_type, **kw)
    twin.startprob_, twin.transmat_ = model.startprob_, model.transmat_
    twin.means_, twin.covars_ = model.means_, model._covars
    return twin


def close(a, b, what):
    if not np.allclose(a, b, rtol=1e-7):
        raise AssertionError(f"{what}: hmmfast {a} != hmmlearn {b}")


def inference_rows(hmm, repeats):
    rows = []
    for covariance_type in ("diag", "full"):
        ours = gaussian(covariance_type)
        X = ours.sample(1000, random_state=1)[0]
        peer_score = peer_decode = None
        if hmm is not None:
            peer_score = gaussian_twin(hmm, ours, implementation="scaling")
            peer_decode = gaussian_twin(hmm, ours, implementation="log")
            close(ours.score(X), peer_score.score(X), "score")
            close(ours.decode(X)[0], peer_decode.decode(X)[0], "decode")
        for call, peer in (("score", peer_score), ("decode", peer_decode)):
            t_ours = median_seconds(lambda c=call: getattr(ours, c)(X), repeats)
            t_peer = (median_seconds(lambda c=call, p=peer: getattr(p, c)(X), repeats)
                      if peer is not None else None)
            rows.append((f"GaussianHMM {covariance_type}, N=8, D=13, T=1,000", call,
                         1e6 * t_ours, None if t_peer is None else 1e6 * t_peer, "µs"))
    return rows


def fit_rows(hmm, repeats):
    truth = gaussian("diag", seed=3)
    X = np.concatenate([truth.sample(500, random_state=k)[0] for k in range(200)])
    lengths = [500] * 200
    start = gaussian("diag", seed=4)

    def ours(threads):
        model = hmmfast.GaussianHMM(N, n_iter=20, tol=-np.inf, init_params="",
                                    n_threads=threads)
        model.startprob_, model.transmat_ = start.startprob_, start.transmat_
        model.means_, model.covars_ = start.means_, start._covars
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(X, lengths)

    def theirs(implementation="scaling"):
        model = gaussian_twin(hmm, start, n_iter=20, tol=-np.inf, init_params="",
                              implementation=implementation)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(X, lengths)

    rows = []
    t1 = median_seconds(lambda: ours(1), repeats, warmup=0)
    t2 = median_seconds(lambda: ours(2), repeats, warmup=0)
    t_scaling = t_log = None
    if hmm is not None:
        fitted, peer = ours(1), theirs()
        close(fitted.means_, peer.means_, "means after 20 iterations")
        close(fitted._covars, peer._covars_, "covars after 20 iterations")
        t_scaling = median_seconds(theirs, 1, warmup=0)
        t_log = median_seconds(lambda: theirs("log"), 1, warmup=0)
    label = "GaussianHMM diag fit, 20 iterations, 200 x 500"
    for threads, t in ((1, t1), (2, t2)):
        rows.append((label, f"fit, {threads} thread{'s' * (threads > 1)} (vs scaling)", t,
                     t_scaling, "s"))
        rows.append((label, f"fit, {threads} thread{'s' * (threads > 1)} (vs log, "
                     "hmmlearn's default)", t, t_log, "s"))
    return rows


def counts_and_mixture_rows(hmm, repeats):
    """PoissonHMM and GMMHMM (n_mix=4), N=8, D=13, 50 x 500: score and one EM iteration."""
    rng = np.random.default_rng(5)
    rows = []
    lengths = [500] * 50
    poisson = hmmfast.PoissonHMM(N)
    poisson.startprob_ = rng.dirichlet(np.ones(N))
    poisson.transmat_ = rng.dirichlet(np.ones(N) * 3, size=N)
    poisson.lambdas_ = rng.uniform(0.5, 8.0, (N, D))
    gmm = hmmfast.GMMHMM(N, n_mix=4, covariance_type="diag")
    gmm.startprob_, gmm.transmat_ = poisson.startprob_, poisson.transmat_
    gmm.weights_ = rng.dirichlet(np.ones(4) * 3, size=N)
    gmm.means_ = rng.normal(size=(N, 4, D)) * 2
    gmm.covars_ = rng.uniform(0.5, 2.0, (N, 4, D))
    for name, ours in (("PoissonHMM", poisson), ("GMMHMM diag, n_mix=4", gmm)):
        X = np.concatenate([ours.sample(500, random_state=k)[0] for k in range(50)])
        peer = None
        if hmm is not None:
            if name == "PoissonHMM":
                peer = hmm.PoissonHMM(N, implementation="scaling")
                peer.lambdas_ = ours.lambdas_
            else:
                peer = hmm.GMMHMM(N, n_mix=4, covariance_type="diag", implementation="scaling")
                peer.weights_, peer.means_, peer.covars_ = ours.weights_, ours.means_, ours.covars_
            peer.startprob_, peer.transmat_ = ours.startprob_, ours.transmat_
            close(ours.score(X, lengths), peer.score(X, lengths), f"{name} score")
        label = f"{name}, N=8, D=13, 50 x 500"
        t_ours = median_seconds(lambda m=ours: m.score(X, lengths), repeats)
        t_peer = (median_seconds(lambda p=peer: p.score(X, lengths), max(3, repeats // 4))
                  if peer is not None else None)
        rows.append((label, "score", 1e3 * t_ours, None if t_peer is None else 1e3 * t_peer,
                     "ms"))

        def one_iteration(model, make_peer=False):
            import copy

            twin = copy.deepcopy(model)
            twin.n_iter, twin.tol, twin.init_params = 1, -np.inf, ""
            if make_peer:
                twin.monitor_.n_iter = 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                twin.fit(X, lengths)
            return twin

        t_ours = median_seconds(lambda m=ours: one_iteration(m), max(3, repeats // 4))
        t_peer = (median_seconds(lambda p=peer: one_iteration(p, True), 3)
                  if peer is not None else None)
        rows.append((label, "one EM iteration", 1e3 * t_ours,
                     None if t_peer is None else 1e3 * t_peer, "ms"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--fit-repeats", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    hmm = hmmlearn_or_none()
    rows = (inference_rows(hmm, args.repeats) + counts_and_mixture_rows(hmm, args.repeats)
            + fit_rows(hmm, args.fit_repeats))
    lines = [
        "Continuous emissions, hmmfast against hmmlearn (median times)",
        "",
        "| case | call | hmmfast | hmmlearn | speed-up |",
        "|---|---|---:|---:|---:|",
    ]
    for case, call, ours, theirs, unit in rows:
        fmt = (lambda v: f"{v:.3f} {unit}") if unit == "s" else (lambda v: f"{v:.1f} {unit}")
        peer = fmt(theirs) if theirs is not None else "-"
        ratio = f"{theirs / ours:.1f}x" if theirs is not None else "-"
        lines.append(f"| {case} | {call} | {fmt(ours)} | {peer} | {ratio} |")

    def chart(path):
        shown = [r for r in rows if r[3] is not None]
        bar_chart(path, [f"{r[1]}\n{r[0].split(',')[0]}" for r in shown],
                  {"speed-up over hmmlearn": [r[3] / r[2] for r in shown]},
                  "hmmlearn time / hmmfast time", log=False)

    write_table(lines, args.out, chart)


if __name__ == "__main__":
    main()
