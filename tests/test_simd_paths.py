"""The vectorised steps (csrc/hmm_steps.h): SSE2 and AVX2 paths give bit-identical results,
equal to the NumPy reference, for every remainder of N modulo the vector blocks."""

import numpy as np
import pytest
from hmm_oracles import random_model

import hmmfast
from hmmfast import _estep, _kernel_inputs, _reference, _trellis, _viterbi


@pytest.fixture
def simd_paths():
    """Yield the available paths; restore the CPU's choice afterwards."""
    paths = [0]
    if _trellis._force_simd(1) == 1:
        paths.append(1)
    yield paths
    _trellis._force_simd(-1)
    _viterbi._force_simd(-1)
    _estep._force_simd(-1)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 20, 33])
def test_paths_agree_and_match_reference(n, simd_paths):
    rng = np.random.default_rng(n)
    startprob, transmat, _ = random_model(rng, n, 2, zeros=n % 2 == 1)
    log_em = rng.normal(scale=2.0, size=(60, n))
    results = []
    for path in simd_paths:
        _trellis._force_simd(path)
        _viterbi._force_simd(path)
        results.append([
            hmmfast.forward(startprob, transmat, log_em),
            hmmfast.forward(startprob, transmat, log_em, implementation="log"),
            hmmfast.forward_backward(startprob, transmat, log_em)[1],
            hmmfast.forward_backward(startprob, transmat, log_em, implementation="log")[1],
            *hmmfast.viterbi(startprob, transmat, log_em),
        ])
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)
    expected = _reference.forward(startprob, transmat, log_em)[0]
    np.testing.assert_allclose(results[0][:2], [expected, expected], rtol=1e-12)
    post = _reference.posteriors(startprob, transmat, log_em)
    np.testing.assert_allclose(results[0][2], post, rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(results[0][3], post, rtol=1e-9, atol=1e-13)
    ref_score, ref_path = _reference.viterbi(startprob, transmat, log_em)
    np.testing.assert_allclose(results[0][4], ref_score[0], rtol=1e-12)
    np.testing.assert_array_equal(results[0][5], ref_path)


def test_viterbi_ties_on_every_path(simd_paths):
    """Exact ties in every column block: each path keeps the lowest predecessor."""
    n = 19
    startprob = np.full(n, 1 / n)
    transmat = np.full((n, n), 1 / n)
    log_em = np.zeros((8, n))
    for path in simd_paths:
        _viterbi._force_simd(path)
        _, states = hmmfast.viterbi(startprob, transmat, log_em)
        np.testing.assert_array_equal(states, np.zeros(8))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9, 13, 17])
def test_estep_paths_bit_identical(n, simd_paths):
    """The E-step's vector code (SIMD lanes for N <= 8, the rank-T outer-product sum)
    gives the same bits on both paths, and its statistics equal the reference
    posteriors' sums."""
    rng = np.random.default_rng(40 + n)
    startprob, transmat, _ = random_model(rng, n, 2)
    log_em = rng.normal(scale=2.0, size=(170, n))
    chain = _kernel_inputs.chain(startprob, transmat)
    emission = _kernel_inputs.emission(log_em, True)
    offsets = np.array([0, 20, 45, 46, 90, 131, 170], dtype=np.intp)
    results = []
    for path in simd_paths:
        _estep._force_simd(path)
        results.append(_estep.estep(chain, emission, None, offsets, None, True, 1, False, True))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            if a is not None:
                np.testing.assert_array_equal(a, b)
    logprob, start, trans, _, post = results[0]
    lengths = np.diff(offsets)
    np.testing.assert_allclose(logprob, _reference.forward(startprob, transmat, log_em, lengths),
                               rtol=1e-12)
    np.testing.assert_allclose(post, _reference.posteriors(startprob, transmat, log_em, lengths),
                               atol=1e-12)
    np.testing.assert_allclose(start, post[offsets[:-1]].sum(axis=0), atol=1e-12)
