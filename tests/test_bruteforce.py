"""Every kernel against brute-force enumeration of all N**T paths on tiny models."""

import numpy as np
import pytest
from hmm_oracles import brute_force, categorical_log_emissions, random_model

import hmmfast

SEEDS = range(40)


def tiny_case(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    m = int(rng.integers(2, 5))
    big_t = int(rng.integers(1, 8))
    zeros = seed % 2 == 1
    startprob, transmat, emissionprob = random_model(rng, n, m, zeros=zeros)
    symbols = rng.integers(0, m, size=(big_t, 1))
    return startprob, transmat, emissionprob, symbols


@pytest.mark.parametrize("seed", SEEDS)
def test_model_methods_match_enumeration(seed, implementation, make_model):
    startprob, transmat, emissionprob, X = tiny_case(seed)
    model = make_model(startprob, transmat, emissionprob, implementation)
    truth = brute_force(startprob, transmat, categorical_log_emissions(emissionprob, X))

    score = model.score(X)
    if truth["first_impossible_step"] is not None:
        assert score == -np.inf
        with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
            model.decode(X)
        assert info.value.step == truth["first_impossible_step"]
        with pytest.raises(hmmfast.ImpossibleSequenceError):
            model.predict_proba(X)
        return
    np.testing.assert_allclose(score, truth["loglik"], rtol=1e-12, atol=1e-12)

    logprob, posteriors = model.score_samples(X)
    np.testing.assert_allclose(logprob, truth["loglik"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(posteriors, truth["posteriors"], rtol=1e-10, atol=1e-12)

    vit_logp, path = model.decode(X, algorithm="viterbi")
    np.testing.assert_allclose(vit_logp, truth["viterbi_logp"], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(path, truth["viterbi_path"])
    assert path.dtype == np.intp

    map_logp, map_path = model.decode(X, algorithm="map")
    np.testing.assert_array_equal(map_path, np.argmax(truth["posteriors"], axis=1))
    expected = brute_force_path_logp(startprob, transmat, emissionprob, X, map_path)
    np.testing.assert_allclose(map_logp, expected, rtol=1e-12, atol=1e-12)
    assert map_logp <= vit_logp + 1e-12


def brute_force_path_logp(startprob, transmat, emissionprob, X, path):
    from hmm_oracles import log
    x = np.asarray(X).reshape(-1)
    lp = log(startprob)[path[0]] + log(emissionprob)[path[0], x[0]]
    for t in range(1, len(x)):
        lp += log(transmat)[path[t - 1], path[t]] + log(emissionprob)[path[t], x[t]]
    return lp


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


def test_umbrella_example_by_hand(umbrella, implementation, make_model):
    """P(O) = 0.0142625 and the Viterbi path [0, 1, 1] with probability 0.0068040,
    both computed by hand from the 8 paths (independent of any implementation)."""
    startprob, transmat, emissionprob, X = umbrella
    model = make_model(startprob, transmat, emissionprob, implementation)
    assert model.score(X) == pytest.approx(np.log(0.0142625), rel=1e-12)
    assert model.score(X) == pytest.approx(-4.250122, abs=1e-6)
    logprob, path = model.decode(X)
    np.testing.assert_array_equal(path, [0, 1, 1])
    # 0.6*0.9 * 0.3*0.1 * 0.6*0.7 = 0.006804
    assert logprob == pytest.approx(np.log(0.6 * 0.9 * 0.3 * 0.1 * 0.6 * 0.7), rel=1e-12)
    assert logprob == pytest.approx(-4.990245, abs=1e-6)


def test_ties_break_to_lowest_state(make_model):
    """Identical states make every path tie exactly: the all-zeros path must win."""
    n = 3
    model = make_model(np.full(n, 1 / n), np.full((n, n), 1 / n), np.full((n, 2), 0.5))
    X = np.array([0, 1, 1, 0, 1])
    logprob, path = model.decode(X)
    np.testing.assert_array_equal(path, np.zeros(5, dtype=np.intp))
    assert logprob == pytest.approx(5 * np.log(1 / 3) + 5 * np.log(0.5), rel=1e-12)
    np.testing.assert_array_equal(model.decode(X, algorithm="map")[1], np.zeros(5))


def test_partial_ties_pick_lowest_predecessor(make_model):
    """States 1 and 2 are twins: each step's tie between them resolves to state 1."""
    startprob = np.array([0.2, 0.4, 0.4])
    transmat = np.array([[0.2, 0.4, 0.4], [0.1, 0.45, 0.45], [0.1, 0.45, 0.45]])
    emissionprob = np.array([[0.9, 0.1], [0.2, 0.8], [0.2, 0.8]])
    model = make_model(startprob, transmat, emissionprob)
    X = np.array([1, 1, 0, 1])
    truth = brute_force(startprob, transmat, categorical_log_emissions(emissionprob, X))
    _, path = model.decode(X)
    assert 2 not in path
    np.testing.assert_array_equal(path, truth["viterbi_path"])
