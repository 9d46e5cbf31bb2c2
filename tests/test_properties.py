"""Property-based checks (hypothesis): both implementations equal the NumPy reference."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import hmmfast
from hmmfast import _reference


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
    for impl in ("scaling", "log"):
        got = hmmfast.forward(startprob, transmat, log_em, implementation=impl)
        if np.isinf(expected):
            assert got == expected
            continue
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
        _, post = hmmfast.forward_backward(startprob, transmat, log_em, implementation=impl)
        np.testing.assert_allclose(post, _reference.posteriors(startprob, transmat, log_em),
                                   rtol=1e-8, atol=1e-10)
    if np.isfinite(expected):
        score, path = hmmfast.viterbi(startprob, transmat, log_em)
        ref_score, _ = _reference.viterbi(startprob, transmat, log_em)
        np.testing.assert_allclose(score, ref_score[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            _reference.path_log_prob(startprob, transmat, log_em, path)[0], score,
            rtol=1e-12, atol=1e-12)
