"""Exercise every kernel on awkward sizes, for a memory checker (not collected by pytest).

    PYTHONMALLOC=malloc valgrind -q python tests/memcheck_kernels.py

Covers N = 1..20, 33, 257 (every remainder of the vector blocks, 8- and 16-bit
backpointers), T = 1, 2, 5 in three sequences, random structural zeros and -inf
emissions, both SIMD paths, both implementations, the two-thread driver, the scaled
kernels' precision-guard fallbacks and the out-of-range symbol path. Valgrind reported no errors on the version that added it.
"""

import numpy as np

import hmmfast
from hmmfast import _trellis, _viterbi


def run_functional(rng):
    for n in [*range(1, 21), 33, 257]:
        startprob = rng.dirichlet(np.ones(n))
        transmat = rng.dirichlet(np.ones(n), n)
        transmat[np.arange(n), np.arange(n)] += 0.05
        transmat[transmat < 0.02] = 0.0
        transmat /= transmat.sum(axis=1, keepdims=True)
        for big_t in (1, 2, 5):
            log_em = rng.normal(size=(3 * big_t, n))
            log_em[rng.random(log_em.shape) < 0.2] = -np.inf
            lengths = [big_t] * 3
            attempt(hmmfast.viterbi, startprob, transmat, log_em, lengths=lengths)
            for impl in ("scaling", "log"):
                for fn in (hmmfast.forward, hmmfast.forward_backward):
                    attempt(fn, startprob, transmat, log_em, lengths=lengths,
                            implementation=impl)


def attempt(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except hmmfast.ImpossibleSequenceError:
        pass


def run_model(rng):
    model = hmmfast.CategoricalHMM(3)
    model.startprob_ = [0.2, 0.3, 0.5]
    model.transmat_ = np.full((3, 3), 1 / 3)
    model.emissionprob_ = np.full((3, 4), 0.25)
    c = model._prepare()
    rows = rng.integers(0, 4, 40000).astype(np.intp)  # enough cells for a thread team
    offsets = np.array([0, 50, 120, 20000, 40000], dtype=np.intp)
    _trellis.forward(c.chain, c.emission, rows, offsets, True, None, 2)
    _viterbi.viterbi(c.chain, c.emission, rows, offsets, None, 2)
    for bad in ([0, 9], [-1, 0]):
        try:
            model.score(bad)
        except hmmfast.HMMInputError:
            pass


def run_guard_paths():
    """The scaled kernels' precision guard: finish in log space mid-sequence (score) or
    redo the sequence (posteriors), at the first frame and later, in two sequences."""
    transmat = np.array([[0.9, 0.1, 0.0], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]])
    log_em = np.tile([0.0, -3.0, -3.0], (700, 1))
    log_em[0] = [-800.0, 0.0, 0.0]
    for lengths in (None, [1, 699], [350, 350]):
        for fn in (hmmfast.forward, hmmfast.forward_backward):
            attempt(fn, [0.5, 0.5, 0.0], transmat, log_em, lengths=lengths)


def main():
    rng = np.random.default_rng(0)
    for path in (0, 1):
        _trellis._force_simd(path)
        _viterbi._force_simd(path)
        run_functional(rng)
        run_guard_paths()
    run_model(rng)
    print("done")


if __name__ == "__main__":
    main()
