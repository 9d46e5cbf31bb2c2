"""The functional API (hmmfast.forward, forward_backward, viterbi) on (T, N) log-emissions:
against brute-force enumeration on tiny models and, property-based (hypothesis), the
pure-NumPy reference on random ones; lengths and sparse transition matrices."""

import numpy as np
import pytest
from hmm_oracles import brute_force, random_model
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

import hmmfast
from hmmfast import _reference

SEEDS = range(40)


@pytest.mark.parametrize("seed", SEEDS)
def test_functional_api_matches_enumeration(seed, implementation):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(1, 4))
    big_t = int(rng.integers(1, 7))
    startprob, transmat, _ = random_model(rng, n, 2, zeros=seed % 2 == 1)
    log_em = rng.normal(scale=3.0, size=(big_t, n))
    if seed % 3 == 0:
        log_em[rng.random((big_t, n)) < 0.3] = -np.inf
    truth = brute_force(startprob, transmat, log_em)
    score = hmmfast.forward(startprob, transmat, log_em, implementation=implementation)
    if truth["first_impossible_step"] is not None:
        assert score == -np.inf
        with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
            hmmfast.viterbi(startprob, transmat, log_em)
        assert info.value.step == truth["first_impossible_step"]
        return
    np.testing.assert_allclose(score, truth["loglik"], rtol=1e-12, atol=1e-12)
    ll, post = hmmfast.forward_backward(startprob, transmat, log_em,
                                        implementation=implementation)
    np.testing.assert_allclose(ll, truth["loglik"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(post, truth["posteriors"], rtol=1e-10, atol=1e-12)
    vit, path = hmmfast.viterbi(startprob, transmat, log_em)
    np.testing.assert_allclose(vit, truth["viterbi_logp"], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(path, truth["viterbi_path"])


def test_functional_api_accepts_lengths_and_sparse():
    rng = np.random.default_rng(3)
    startprob, transmat, _ = random_model(rng, 3, 2, zeros=True)
    log_em = rng.normal(size=(30, 3))
    lengths = [10, 5, 15]
    expected = _reference.forward(startprob, transmat, log_em, lengths).sum()
    np.testing.assert_allclose(hmmfast.forward(startprob, transmat, log_em, lengths=lengths),
                               expected, rtol=1e-12)
    csr = sparse.csr_matrix(transmat)
    np.testing.assert_allclose(hmmfast.forward(startprob, csr, log_em, lengths=lengths),
                               expected, rtol=1e-12)
    scores, paths = _reference.viterbi(startprob, transmat, log_em, lengths)
    score, path = hmmfast.viterbi(startprob, csr, log_em, lengths=lengths)
    np.testing.assert_array_equal(path, paths)
    np.testing.assert_allclose(score, scores.sum(), rtol=1e-12)


@st.composite
def models(draw):
    n = draw(st.integers(1, 5))
    big_t = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    startprob = rng.dirichlet(np.ones(n))
    transmat = rng.dirichlet(np.ones(n) * draw(st.sampled_from([0.1, 1.0, 10.0])), size=n)
    transmat[transmat < 1e-3] = 0.0  # concentration 0.1 gives structural zeros
    transmat[np.arange(n), transmat.argmax(axis=1)] += 1.0 - transmat.sum(axis=1)
    scale = draw(st.sampled_from([0.1, 3.0, 300.0]))
    log_em = rng.normal(scale=scale, size=(big_t, n))
    return startprob, transmat, log_em


@settings(max_examples=150, deadline=None, derandomize=True)
@given(models())
def test_kernels_equal_reference(case):
    startprob, transmat, log_em = case
    expected = _reference.forward(startprob, transmat, log_em)[0]
    expected_post = None if np.isinf(expected) else _reference.posteriors(startprob, transmat,
                                                                         log_em)
    for impl in ("scaling", "log"):
        got = hmmfast.forward(startprob, transmat, log_em, implementation=impl)
        if np.isinf(expected):
            assert got == expected
            continue
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
        _, post = hmmfast.forward_backward(startprob, transmat, log_em, implementation=impl)
        np.testing.assert_allclose(post, expected_post, rtol=1e-8, atol=1e-10)
    if np.isfinite(expected):
        score, path = hmmfast.viterbi(startprob, transmat, log_em)
        ref_score, _ = _reference.viterbi(startprob, transmat, log_em)
        np.testing.assert_allclose(score, ref_score[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            _reference.path_log_prob(startprob, transmat, log_em, path)[0], score,
            rtol=1e-12, atol=1e-12)
