"""Batch inference across cores and a shared model in a thread pool, against hmmlearn.

Usage: python bench/bench_batch.py [--repeats 7] [--out bench/results/batch.md]

1. 10,000 sequences x T=100, N=5, M=10 (the service case): score_batch and decode_batch on
   1 and 2 threads, end to end (gathering the sequences, building one result array per
   sequence) and the kernel alone; hmmlearn's score/decode called per sequence (its only
   way to get per-sequence results), after checking the results agree.
2. A ThreadPoolExecutor calling decode on single sequences of T=10,000 (N=5): calls per
   second with 1 and with 2 workers (the kernels release the GIL).
"""

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from _benchlib import hmmlearn_or_none, median_seconds, write_table

import hmmfast
from hmmfast import _trellis, _viterbi

N, M = 5, 10


def model_and_peer(hmm, seed=0):
    rng = np.random.default_rng(seed)
    ours = hmmfast.CategoricalHMM(N)
    ours.startprob_ = rng.dirichlet(np.ones(N))
    ours.transmat_ = rng.dirichlet(np.ones(N), size=N)
    ours.emissionprob_ = rng.dirichlet(np.ones(M), size=N)
    peer = None
    if hmm is not None:
        peer = hmm.CategoricalHMM(N, n_features=M, implementation="scaling")
        peer.startprob_, peer.transmat_, peer.emissionprob_ = (
            ours.startprob_, ours.transmat_, ours.emissionprob_)
    return ours, peer


def batch_rows(hmm, repeats):
    ours, peer = model_and_peer(hmm)
    rng = np.random.default_rng(1)
    seqs = [rng.integers(0, M, size=(100, 1)) for _ in range(10_000)]
    rows = []
    c = ours._prepare()
    X = np.concatenate(seqs)[:, 0].astype(np.intp)
    offsets = np.arange(0, len(X) + 1, 100, dtype=np.intp)
    out = np.empty(len(seqs))
    kernels = {
        "score_batch": lambda t: _trellis.forward(c.chain, c.emission, X, offsets, True, out, t),
        "decode_batch": lambda t: _viterbi.viterbi(c.chain, c.emission, X, offsets, out, t),
    }
    peer_t = {}
    if peer is not None:
        some = seqs[:500]
        np.testing.assert_allclose(ours.score_batch(some), [peer.score(x) for x in some],
                                   rtol=1e-9)
        np.testing.assert_allclose(ours.decode_batch(some)[0],
                                   [peer.decode(x)[0] for x in some], rtol=1e-9)
        for call in ("score", "decode"):
            t0 = time.perf_counter()
            for x in seqs:
                getattr(peer, call)(x)
            peer_t[f"{call}_batch"] = time.perf_counter() - t0
    for call in ("score_batch", "decode_batch"):
        t1 = median_seconds(lambda c=call: getattr(ours, c)(seqs, 1), repeats)
        t2 = median_seconds(lambda c=call: getattr(ours, c)(seqs, 2), repeats)
        k1 = median_seconds(lambda c=call: kernels[c](1), repeats)
        k2 = median_seconds(lambda c=call: kernels[c](2), repeats)
        rows.append((call, t1, t2, k1, k2, peer_t.get(call)))
    return rows


def pool_rows(repeats):
    ours, _ = model_and_peer(None, seed=2)
    rng = np.random.default_rng(3)
    seqs = [rng.integers(0, M, size=(10_000, 1)) for _ in range(64)]
    ours.decode(seqs[0])
    rates = {}
    for workers in (1, 2):
        def run(workers=workers):
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(ours.decode, seqs))
        rates[workers] = len(seqs) / median_seconds(run, repeats)
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    hmm = hmmlearn_or_none()
    rows = batch_rows(hmm, args.repeats)
    rates = pool_rows(args.repeats)
    lines = [
        "10,000 sequences x T=100, N=5, M=10 (median ms; kernel = the compiled call alone)",
        "",
        "| call | 1 thread | 2 threads | 2-thread speed-up | kernel 1 thread | kernel 2 threads "
        "| kernel speed-up | hmmlearn per sequence | speed-up vs hmmlearn (2 threads) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for call, t1, t2, k1, k2, peer in rows:
        peer_cols = f"{1e3 * peer:.0f} | {peer / t2:.0f}x" if peer else "- | -"
        lines.append(f"| {call} | {1e3 * t1:.2f} | {1e3 * t2:.2f} | {t1 / t2:.2f}x | "
                     f"{1e3 * k1:.2f} | {1e3 * k2:.2f} | {k1 / k2:.2f}x | {peer_cols} |")
    lines += [
        "",
        "ThreadPoolExecutor calling decode on single sequences of T=10,000 (N=5):",
        "",
        "| workers | decodes per second | speed-up |",
        "|---:|---:|---:|",
        f"| 1 | {rates[1]:.0f} | 1.00x |",
        f"| 2 | {rates[2]:.0f} | {rates[2] / rates[1]:.2f}x |",
    ]
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
