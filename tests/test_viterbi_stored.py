"""The stored-delta Viterbi decoder (csrc/_viterbi.pyx, dense chains above 12 states):
the same scores and paths, bit for bit, as the backpointer decoder it replaces when the
delta rows fit, on both vector paths; the NumPy reference as the independent oracle."""

import numpy as np
import pytest
from hmm_oracles import random_model

import hmmfast
from hmmfast import _reference, _viterbi


@pytest.fixture
def decoders():
    """Yield a function running a call with the stored decoder on or off, on each vector
    path; restore the defaults afterwards."""
    default = _viterbi._set_stored_delta_bytes(0)
    simd = [0] + ([1] if _viterbi._force_simd(1) == 1 else [])

    def run(call):
        out = []
        for path in simd:
            _viterbi._force_simd(path)
            for limit in (0, default):
                _viterbi._set_stored_delta_bytes(limit)
                try:
                    out.append(("ok", call()))
                except hmmfast.ImpossibleSequenceError as exc:
                    out.append(("impossible", (exc.sequence, exc.step)))
        return out

    yield run
    _viterbi._set_stored_delta_bytes(default)
    _viterbi._force_simd(-1)


def assert_same(results):
    kind, first = results[0]
    for other_kind, other in results[1:]:
        assert other_kind == kind
        if kind == "impossible":
            assert other == first
        else:
            for a, b in zip(first, other, strict=True):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [13, 16, 17, 31, 64, 130, 257])
@pytest.mark.parametrize("zeros", [False, True])
def test_same_bits_as_backpointers_and_the_reference(n, zeros, decoders):
    rng = np.random.default_rng(n + 1000 * zeros)
    startprob, transmat, _ = random_model(rng, n, 2, zeros=zeros)
    log_em = rng.normal(scale=2.0, size=(50, n))
    results = decoders(lambda: hmmfast.viterbi(startprob, transmat, log_em))
    assert_same(results)
    ref_score, ref_path = _reference.viterbi(startprob, transmat, log_em)
    np.testing.assert_allclose(results[0][1][0], ref_score[0], rtol=1e-12)
    np.testing.assert_array_equal(results[0][1][1], ref_path)


def test_ties_keep_the_lowest_predecessor(decoders):
    """Every score ties: the path is all zeros on every decoder (the first maximiser)."""
    n = 21
    startprob = np.full(n, 1 / n)
    transmat = np.full((n, n), 1 / n)
    log_em = np.zeros((9, n))
    results = decoders(lambda: hmmfast.viterbi(startprob, transmat, log_em))
    assert_same(results)
    np.testing.assert_array_equal(results[0][1][1], np.zeros(9))


def test_rounded_ties_between_predecessors(decoders):
    """Scores equal after rounding in some columns only (values on a coarse grid)."""
    n = 24
    rng = np.random.default_rng(5)
    startprob = np.full(n, 1 / n)
    transmat = rng.integers(1, 4, (n, n)).astype(float)
    transmat /= transmat.sum(axis=1, keepdims=True)
    log_em = rng.integers(-3, 1, (40, n)).astype(float)
    assert_same(decoders(lambda: hmmfast.viterbi(startprob, transmat, log_em)))


def test_impossible_step_named_alike(decoders):
    """A step no state can take: the same error, naming the same step, on every decoder."""
    n = 16
    rng = np.random.default_rng(3)
    startprob, transmat, emissionprob = random_model(rng, n, 4)
    emissionprob[:, 3] = 0.0
    emissionprob /= emissionprob.sum(axis=1, keepdims=True)
    model = hmmfast.CategoricalHMM(n, n_features=4)
    model.startprob_, model.transmat_, model.emissionprob_ = startprob, transmat, emissionprob
    X = rng.integers(0, 3, (30, 1))
    X[17] = 3
    results = decoders(lambda: model.decode(X))
    assert results[0] == ("impossible", (0, 17))
    assert_same(results)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_batches_of_many_lengths(n_threads, decoders):
    n = 40
    rng = np.random.default_rng(11)
    startprob, transmat, emissionprob = random_model(rng, n, 7, zeros=True)
    model = hmmfast.CategoricalHMM(n, n_features=7, n_threads=n_threads)
    model.startprob_, model.transmat_, model.emissionprob_ = startprob, transmat, emissionprob
    sessions = [rng.integers(0, 7, (int(t), 1)) for t in rng.integers(1, 90, 60)]
    results = decoders(lambda: model.decode_batch(sessions))
    kinds = {k for k, _ in results}
    assert kinds == {"ok"}
    logprobs, paths = results[0][1]
    for _, (other_logprobs, other_paths) in results[1:]:
        np.testing.assert_array_equal(logprobs, other_logprobs)
        for a, b in zip(paths, other_paths, strict=True):
            np.testing.assert_array_equal(a, b)
    with np.errstate(divide="ignore"):
        for lp, path, X in zip(logprobs, paths, sessions, strict=True):
            log_em = np.log(emissionprob[:, X[:, 0]].T)
            ref_lp, ref_path = _reference.viterbi(startprob, transmat, log_em)
            np.testing.assert_allclose(lp, ref_lp[0], rtol=1e-12)
            np.testing.assert_array_equal(path, ref_path)
            # the Viterbi score is the log-density of the decoded path
            np.testing.assert_allclose(
                lp, _reference.path_log_prob(startprob, transmat, log_em, path)[0], rtol=1e-12)


def test_sequences_beyond_the_limit_keep_backpointers():
    """A limit below the longest sequence's T * N doubles sends the call to the
    backpointer decoder; the results do not depend on which one ran."""
    n = 20
    rng = np.random.default_rng(8)
    startprob, transmat, _ = random_model(rng, n, 2)
    log_em = rng.normal(size=(500, n))
    default = _viterbi._set_stored_delta_bytes(500 * n * 8 - 1)
    try:
        below = hmmfast.viterbi(startprob, transmat, log_em)
        _viterbi._set_stored_delta_bytes(500 * n * 8)
        at = hmmfast.viterbi(startprob, transmat, log_em)
    finally:
        _viterbi._set_stored_delta_bytes(default)
    assert below[0] == at[0]
    np.testing.assert_array_equal(below[1], at[1])
