"""sample() draws from the model; the stationary distribution is stationary."""

import numpy as np
import pytest
from hmm_oracles import random_model


def test_sample_shapes_and_reproducibility(make_model):
    model = make_model(*random_model(np.random.default_rng(0), 3, 4), random_state=5)
    X, states = model.sample(50)
    assert X.shape == (50, 1) and states.shape == (50,) and states.dtype == np.intp
    X2, _ = model.sample(50)
    np.testing.assert_array_equal(X, X2)  # the model's seed
    X3, _ = model.sample(50, random_state=np.random.default_rng(1))
    X4, _ = model.sample(50, random_state=np.random.default_rng(1))
    np.testing.assert_array_equal(X3, X4)
    _, s = model.sample(10, random_state=0, currstate=2)
    assert s[0] == 2


def test_sample_frequencies_match_model(make_model):
    """Empirical start, transition and emission frequencies converge to the parameters
    (tolerances are ~6 standard errors at these sample sizes)."""
    startprob = np.array([0.2, 0.8, 0.0])
    transmat = np.array([[0.5, 0.5, 0.0], [0.1, 0.6, 0.3], [0.0, 0.2, 0.8]])
    emissionprob = np.array([[0.7, 0.3, 0.0], [0.1, 0.1, 0.8], [0.0, 0.5, 0.5]])
    model = make_model(startprob, transmat, emissionprob)
    rng = np.random.default_rng(42)
    firsts = np.array([model.sample(1, random_state=rng)[1][0] for _ in range(4000)])
    np.testing.assert_allclose(np.bincount(firsts, minlength=3) / 4000, startprob, atol=0.04)
    X, s = model.sample(200_000, random_state=rng)
    counts = np.zeros((3, 3))
    np.add.at(counts, (s[:-1], s[1:]), 1)
    np.testing.assert_allclose(counts / counts.sum(axis=1, keepdims=True), transmat, atol=0.01)
    assert counts[0, 2] == 0 and counts[2, 0] == 0  # structural zeros never taken
    emitted = np.zeros((3, 3))
    np.add.at(emitted, (s, X[:, 0]), 1)
    np.testing.assert_allclose(emitted / emitted.sum(axis=1, keepdims=True), emissionprob,
                               atol=0.01)
    assert emitted[0, 2] == 0 and emitted[2, 0] == 0


def test_sample_errors(make_model):
    model = make_model([1.0], [[1.0]], [[1.0]])
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1"):
        model.sample(0)
    with pytest.raises(ValueError, match="currstate must be a state index"):
        model.sample(3, currstate=4)
    with pytest.raises(TypeError, match="random_state must be"):
        model.sample(3, random_state="seed")


def test_stationary_distribution(make_model):
    rng = np.random.default_rng(8)
    startprob, transmat, emissionprob = random_model(rng, 5, 2)
    pi = make_model(startprob, transmat, emissionprob).get_stationary_distribution()
    np.testing.assert_allclose(pi @ transmat, pi, atol=1e-12)
    np.testing.assert_allclose(pi.sum(), 1.0)
    power = np.linalg.matrix_power(transmat, 500)[0]  # independent: power iteration
    np.testing.assert_allclose(pi, power, atol=1e-10)
