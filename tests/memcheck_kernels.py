"""Exercise every kernel on awkward sizes, for a memory checker (not collected by pytest).

    PYTHONMALLOC=malloc valgrind -q python tests/memcheck_kernels.py

Covers N = 1..20, 33, 257 (every remainder of the vector blocks, 8- and 16-bit
backpointers), T = 1, 2, 5 in three sequences, random structural zeros and -inf
emissions, both SIMD paths, both implementations, the two-thread driver, the scaled
kernels' precision-guard fallbacks and the out-of-range symbol path; then the decoders
(beam, n-best, checkpointed, the N <= 12 register kernel, sparse-only chains), the E-step
(fit), the streams (exact, beam-pruned, fixed-lag, fed symbols or blocks of
log-emissions), the continuous densities, the text reader and writer, and the monitor's
per-session reductions (hmmfast._session_stats). On the version that extended it valgrind
reported nothing in a hmmfast frame (only the interpreter's and the dynamic loader's own
reports, which a Python built without valgrind support always shows).
"""

import warnings

import numpy as np
from scipy import sparse

import hmmfast
from hmmfast import _textio, _trellis, _viterbi


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
    """Run fn; the library's errors for bad or impossible input are expected here."""
    try:
        fn(*args, **kwargs)
    except (hmmfast.ImpossibleSequenceError, hmmfast.HMMInputError, _textio.TextFormatError):
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


def run_decoders(rng):
    for n in (1, 3, 5, 8, 9, 70):  # 70: a sparse-only chain
        startprob = rng.dirichlet(np.ones(n))
        transmat = rng.dirichlet(np.ones(n) * 0.3, n)
        if n == 70:
            transmat[transmat < 0.01] = 0.0
            transmat /= transmat.sum(axis=1, keepdims=True)
            transmat = sparse.csr_array(transmat)
        for big_t in (1, 2, 7):
            log_em = rng.normal(size=(2 * big_t, n))
            log_em[rng.random(log_em.shape) < 0.2] = -np.inf
            for kw in ({"beam": 1.0}, {"max_active": 2, "min_active": 1},
                       {"memory": "checkpoint"}):
                attempt(hmmfast.viterbi, startprob, transmat, log_em, lengths=[big_t] * 2,
                        **kw)
            for k in (1, 3, 50):
                attempt(hmmfast.nbest, startprob, transmat, log_em[:big_t], k)


def run_models_and_streams(rng):
    model = hmmfast.CategoricalHMM(4, n_iter=3, random_state=0)
    X = rng.integers(0, 5, size=(300, 1))
    model.fit(X, [1, 2, 97, 200])
    for kw in ({}, {"beam": 0.5}, {"max_active": 1}):
        decoder = model.stream_decoder(**kw)
        for chunk in (X[:1], X[1:40], X[40:41], X[41:]):
            attempt(decoder.push, chunk)
        decoder.flush()
    scorer = model.stream_scorer()
    scorer.push(X[:50])
    scorer.push(3)
    for bad in (7, [0, 9], np.array([1, -1])):  # out of range: refused by the intake
        attempt(scorer.push, bad)
        attempt(model.stream_decoder().push, bad)
    for cov in ("diag", "full", "spherical", "tied"):
        g = hmmfast.GaussianHMM(3, covariance_type=cov, n_iter=2, random_state=0)
        F = rng.normal(size=(120, 3)).astype(np.float32)
        g.fit(F, [20, 100])
        g.decode(F, memory="checkpoint")
    # streams fed log-emissions in blocks (continuous): frames, chunks, fixed lag
    for stream in (g.stream_scorer(), g.stream_decoder(), g.stream_decoder(max_lag=2)):
        for piece in (F[0], F[1:40], F[40:41], F[41:]):
            stream.push(piece)
    hmmfast.GMMHMM(2, n_mix=2, n_iter=2, random_state=0).fit(rng.normal(size=(80, 2)))
    hmmfast.PoissonHMM(2, n_iter=2, random_state=0).fit(rng.poisson(3.0, size=(80, 2)))
    data = b"1 2 3\n0,4\n\n5 x\n7"
    for final in (True, False):
        attempt(_textio.parse_symbols, data, final=final, n_symbols=6)
        attempt(_textio.parse_numbers, b"1.5 -2 3e4\n0.1", final=final)
    _textio.format_results(np.array([-1.5, -np.inf, 3.25e-300]),
                           [np.arange(3), np.arange(0), np.arange(5)], json=True)
    from hmmfast import monitor

    detector = monitor.AnomalyDetector(model).fit([X[:30, 0], X[30:90, 0], X[90:, 0]])
    detector.predict([X[:1, 0], X[:5, 0], X[5:200, 0]])


def main():
    warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)  # 2-3 EM iterations on purpose
    rng = np.random.default_rng(0)
    for path in (0, 1):
        _trellis._force_simd(path)
        _viterbi._force_simd(path)
        run_functional(rng)
        run_guard_paths()
        run_decoders(rng)
    run_model(rng)
    run_models_and_streams(rng)
    print("done")


if __name__ == "__main__":
    main()
