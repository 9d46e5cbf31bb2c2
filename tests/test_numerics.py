"""Long sequences, underflow, and the two implementations against each other."""

import numpy as np
import pytest
from hmm_oracles import brute_force, log, random_model

import hmmfast
from hmmfast import _reference


@pytest.mark.parametrize("seed", range(3))
def test_long_sequence_no_underflow_log_equals_scaling(seed, make_model):
    rng = np.random.default_rng(seed)
    startprob, transmat, emissionprob = random_model(rng, 5, 10)
    X = rng.integers(0, 10, size=(100_000, 1))
    scaled = make_model(startprob, transmat, emissionprob, "scaling")
    logged = make_model(startprob, transmat, emissionprob, "log")
    s1, s2 = scaled.score(X), logged.score(X)
    assert np.isfinite(s1) and s1 < -1e5  # far beyond float64's exponent range as a probability
    np.testing.assert_allclose(s1, s2, rtol=1e-9)
    ll1, p1 = scaled.score_samples(X)
    ll2, p2 = logged.score_samples(X)
    np.testing.assert_allclose(ll1, ll2, rtol=1e-9)
    np.testing.assert_allclose(p1, p2, rtol=1e-9, atol=1e-12)
    assert np.all(np.isfinite(p1))
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(scaled.decode(X)[0], logged.decode(X)[0], rtol=1e-12)


def test_long_sequence_matches_reference(make_model):
    rng = np.random.default_rng(11)
    startprob, transmat, emissionprob = random_model(rng, 3, 4)
    X = rng.integers(0, 4, size=(20_000, 1))
    model = make_model(startprob, transmat, emissionprob)
    log_em = _reference.categorical_log_emissions(emissionprob, X)
    np.testing.assert_allclose(model.score(X), _reference.forward(startprob, transmat, log_em)[0],
                               rtol=1e-10)
    ref_score, _ = _reference.viterbi(startprob, transmat, log_em)
    score, path = model.decode(X)
    np.testing.assert_allclose(score, ref_score[0], rtol=1e-12)
    np.testing.assert_allclose(
        _reference.path_log_prob(startprob, transmat, log_em, path)[0], score, rtol=1e-12
    )


def test_path_below_float64_range_is_not_lost(implementation, make_model):
    """The only explaining path has probability ~1e-400: below what a double holds, so the
    scaled pass underflows and the log kernel's shifted sums underflow too; both must fall
    back to exact arithmetic rather than report an impossible sequence."""
    eps = 1e-200
    startprob = [1.0, 0.0, 0.0]
    transmat = [[1 - eps, eps, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    emissionprob = [[1.0, 0.0, 0.0], [eps, 0.0, 1 - eps], [0.0, 1.0, 0.0]]
    X = np.array([0, 0, 1, 1])  # only path: 0, 1, 2, 2 with probability eps**2
    truth = brute_force(startprob, transmat, log(emissionprob).T[X])
    assert np.isfinite(truth["loglik"]) and truth["loglik"] < -900
    model = make_model(startprob, transmat, emissionprob, implementation)
    np.testing.assert_allclose(model.score(X), truth["loglik"], rtol=1e-12)
    _, post = model.score_samples(X)
    np.testing.assert_allclose(post, truth["posteriors"], atol=1e-12)
    np.testing.assert_array_equal(model.decode(X)[1], truth["viterbi_path"])


def test_frame_whose_emissions_all_underflow(implementation):
    """A Gaussian-outlier-like frame: every state's log-density is about -1e5. hmmlearn's
    scaling raises here; shifting each frame by its maximum keeps it exact."""
    rng = np.random.default_rng(5)
    startprob, transmat, _ = random_model(rng, 4, 2)
    log_em = rng.normal(size=(50, 4))
    log_em[20] -= 1e5
    expected = _reference.forward(startprob, transmat, log_em)[0]
    got = hmmfast.forward(startprob, transmat, log_em, implementation=implementation)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    _, post = hmmfast.forward_backward(startprob, transmat, log_em, implementation=implementation)
    np.testing.assert_allclose(post, _reference.posteriors(startprob, transmat, log_em),
                               rtol=1e-9, atol=1e-12)


def test_subnormals_survive_import():
    """No -ffast-math: flush-to-zero would turn the smallest subnormal into 0."""
    import hmmfast._trellis  # noqa: F401

    tiny = np.float64(5e-324)
    assert tiny != 0  # denormals-are-zero would read the subnormal input as 0
    product = np.float64(1e-300) * np.float64(1e-10)  # 1e-310 is subnormal
    assert product > 0 and product < np.finfo(np.float64).tiny  # flush-to-zero gives 0


def test_identities_on_random_models(implementation, make_model):
    """forward == forward-backward likelihood; posteriors sum to 1; the Viterbi score is the
    log-density of the decoded path and bounds the true path's."""
    for seed in range(10):
        rng = np.random.default_rng(200 + seed)
        startprob, transmat, emissionprob = random_model(rng, 6, 8, zeros=seed % 2 == 0)
        model = make_model(startprob, transmat, emissionprob, implementation)
        X, true_states = model.sample(400, random_state=seed)
        log_em = _reference.categorical_log_emissions(emissionprob, X)
        ll, post = model.score_samples(X)
        np.testing.assert_allclose(ll, model.score(X), rtol=1e-12)
        np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-12)
        score, path = model.decode(X)
        np.testing.assert_allclose(
            _reference.path_log_prob(startprob, transmat, log_em, path)[0], score, rtol=1e-12)
        assert score >= _reference.path_log_prob(startprob, transmat, log_em, true_states)[0]
        assert score <= ll
