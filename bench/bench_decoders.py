"""Decoders for large state spaces, hmmfast against hmmlearn and against itself.

Usage: python bench/bench_decoders.py [--repeats 5] [--out bench/results/decoders.md]

1. Dense Viterbi, T=1,000, categorical (M=32), N=64 and N=256: median ms, ns per trellis
   cell (T x N x N) against the machine's max-plus floor (~0.1 ns, PERFORMANCE.md), and
   hmmlearn's decode on the same model (after checking the Viterbi scores agree).
2. A left-to-right model with N=5,000 states (self-loop, next, skip) and peaked
   categorical emissions (M=50), T=10,000 sampled from it: exact Viterbi with the dense
   transition matrix (timed on the first 200 frames and scaled to T, since a dense step
   costs the same at every frame), exact Viterbi with the sparse matrix, and beam-pruned
   Viterbi (beam=10), checking that the three paths are the same.
3. n-best (parallel list Viterbi), N=10, T=1,000: n = 1, 10, 100 against one Viterbi call
   (no peer: hmmlearn has no n-best decoder).
4. Checkpointed against full-table Viterbi, N=64, categorical, T=10^6: time, and the peak
   memory growth of a fresh process (VmHWM) for each, with the same path.
"""

import argparse
import subprocess
import sys
import textwrap

import numpy as np
from _benchlib import hmmlearn_or_none, median_seconds, write_table
from scipy import sparse

import hmmfast


def dense_rows(hmm, repeats):
    rows = []
    for n in (64, 256):
        rng = np.random.default_rng(n)
        model = hmmfast.CategoricalHMM(n)
        model.startprob_ = rng.dirichlet(np.ones(n))
        model.transmat_ = rng.dirichlet(np.ones(n), size=n)
        model.emissionprob_ = rng.dirichlet(np.ones(32), size=n)
        X = rng.integers(0, 32, size=(1000, 1))
        t = median_seconds(lambda m=model: m.decode(X), repeats * 4)
        peer_t = None
        if hmm is not None:
            peer = hmm.CategoricalHMM(n, n_features=32)
            peer.startprob_, peer.transmat_, peer.emissionprob_ = (
                model.startprob_, model.transmat_, model.emissionprob_)
            assert abs(peer.decode(X)[0] - model.decode(X)[0]) <= 1e-9 * abs(model.decode(X)[0])
            peer_t = median_seconds(lambda p=peer: p.decode(X), repeats)
        rows.append((n, t, 1e9 * t / (1000 * n * n), peer_t))
    return rows


def left_to_right_model(n=5000, m=50):
    diag = np.full(n, 0.6)
    nxt = np.full(n - 1, 0.3)
    skip = np.full(n - 2, 0.1)
    A = sparse.diags([diag, nxt, skip], [0, 1, 2], shape=(n, n), format="lil")
    A[n - 2, n - 1] = 0.4  # the last rows have no skip: renormalise them
    A[n - 1, n - 1] = 1.0
    A = sparse.csr_matrix(A)
    B = np.full((n, m), 0.1 / (m - 1))
    B[np.arange(n), np.arange(n) % m] = 0.9
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = np.eye(1, n)[0]
    model.transmat_ = A
    model.emissionprob_ = B
    return model


def large_rows(repeats):
    model = left_to_right_model()
    X, _ = model.sample(10_000, random_state=0)
    dense = hmmfast.CategoricalHMM(model.n_components)
    dense.startprob_, dense.emissionprob_ = model.startprob_, model.emissionprob_
    dense.transmat_ = model.transmat_.toarray()
    head = X[:200]
    np.testing.assert_array_equal(dense.decode(head)[1], model.decode(head)[1])
    t_dense = median_seconds(lambda: dense.decode(head), max(1, repeats // 2)) * len(X) / 200
    t_sparse = median_seconds(lambda: model.decode(X), repeats)
    t_beam = median_seconds(lambda: model.decode(X, beam=10.0), repeats)
    exact = model.decode(X)
    pruned = model.decode(X, beam=10.0)
    same = bool(np.array_equal(exact[1], pruned[1]) and exact[0] == pruned[0])
    return t_dense, t_sparse, t_beam, same


def nbest_rows(repeats):
    rng = np.random.default_rng(10)
    model = hmmfast.CategoricalHMM(10)
    model.startprob_ = rng.dirichlet(np.ones(10))
    model.transmat_ = rng.dirichlet(np.ones(10), size=10)
    model.emissionprob_ = rng.dirichlet(np.ones(20), size=10)
    X = model.sample(1000, random_state=1)[0]
    base = median_seconds(lambda: model.decode(X), repeats * 20)
    rows = [("Viterbi (decode)", base)]
    for n in (1, 10, 100):
        assert model.nbest(X, n)[0][0] == model.decode(X)[0]
        rows.append((f"nbest(X, {n})", median_seconds(lambda n=n: model.nbest(X, n), repeats)))
    return rows


CHECKPOINT_SCRIPT = textwrap.dedent("""
    import hashlib, sys, time
    import numpy as np
    import hmmfast

    def hwm_kib():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))

    n, T, memory = 64, int(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(0)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n) * 0.2, size=n)
    model.emissionprob_ = rng.dirichlet(np.ones(32), size=n)
    X = rng.integers(0, 32, size=T).astype(np.intp)
    model.decode(X[:1000], lengths=[1000], memory=memory)  # warm up
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = hwm_kib()
    t0 = time.perf_counter()
    logprob, states = model.decode(X, lengths=[T], memory=memory)
    elapsed = time.perf_counter() - t0
    growth = hwm_kib() - before
    print(elapsed, growth, repr(logprob), hashlib.sha256(states.tobytes()).hexdigest())
""")


def checkpoint_rows(T=10 ** 6):
    out = {}
    for memory in ("full", "checkpoint"):
        result = subprocess.run([sys.executable, "-c", CHECKPOINT_SCRIPT, str(T), memory],
                                capture_output=True, text=True, check=True)
        elapsed, growth, logprob, digest = result.stdout.split()
        out[memory] = (float(elapsed), int(growth) / 1024, logprob, digest)
    same = out["full"][2:] == out["checkpoint"][2:]
    return out, same


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    hmm = hmmlearn_or_none()
    lines = [
        "Dense Viterbi, categorical M=32, T=1,000 (median)",
        "",
        "| N | hmmfast ms | ns per cell (floor ~0.1) | hmmlearn ms | speed-up |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, t, ns, peer in dense_rows(hmm, args.repeats):
        peer_cols = f"{1e3 * peer:.2f} | {peer / t:.1f}x" if peer else "- | -"
        lines.append(f"| {n} | {1e3 * t:.3f} | {ns:.3f} | {peer_cols} |")
    t_dense, t_sparse, t_beam, same = large_rows(args.repeats)
    lines += [
        "",
        "Left-to-right, N=5,000 (self-loop, next, skip), peaked emissions (M=50), T=10,000",
        "",
        "| decoder | seconds | speed-up |",
        "|---|---:|---:|",
        f"| exact, dense transition matrix (from 200 frames) | {t_dense:.2f} | 1x |",
        f"| exact, sparse transition matrix | {t_sparse:.4f} | {t_dense / t_sparse:.0f}x |",
        f"| beam=10, sparse | {t_beam:.4f} | {t_dense / t_beam:.0f}x "
        f"({t_sparse / t_beam:.0f}x over exact sparse) |",
        "",
        f"Beam path identical to the exact path: {'yes' if same else 'NO'}.",
        "",
        "n-best (parallel list Viterbi), categorical N=10, M=20, T=1,000 (median)",
        "",
        "| call | ms | x one Viterbi |",
        "|---|---:|---:|",
    ]
    rows = nbest_rows(args.repeats)
    for name, t in rows:
        lines.append(f"| {name} | {1e3 * t:.3f} | {t / rows[0][1]:.1f} |")
    T = 10 ** 6
    ckpt, same = checkpoint_rows(T)
    path_bytes = 8 * T / 2 ** 20
    lines += [
        "",
        f"Checkpointed Viterbi, categorical N=64, T={T:,} (one run each, fresh process; "
        f"memory = peak RSS growth during the call, including the {path_bytes:.1f} MiB "
        "returned path)",
        "",
        "| memory= | seconds | peak growth MiB |",
        "|---|---:|---:|",
    ]
    for memory in ("full", "checkpoint"):
        elapsed, growth, _, _ = ckpt[memory]
        lines.append(f"| {memory} | {elapsed:.2f} | {growth:.1f} |")
    lines += ["", f"Same score and path: {'yes' if same else 'NO'}."]
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
