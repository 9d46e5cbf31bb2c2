"""CategoricalHMM's inference methods (score, score_samples, decode, predict_proba) and
sampling: against brute-force enumeration of all N**T paths on tiny models, hand-computed
values, hmmlearn (an independent implementation) and empirical frequencies."""

import numpy as np
import pytest
from factories import needs_hmmlearn
from hmm_oracles import brute_force, categorical_log_emissions, log, random_model

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
    x = np.asarray(X).reshape(-1)
    lp = log(startprob)[path[0]] + log(emissionprob)[path[0], x[0]]
    for t in range(1, len(x)):
        lp += log(transmat)[path[t - 1], path[t]] + log(emissionprob)[path[t], x[t]]
    return lp


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


# ------------------------------------------------------------------ against hmmlearn


def pair(rng, n, m, implementation, make_model, zeros=False):
    startprob, transmat, emissionprob = random_model(rng, n, m, zeros=zeros)
    ours = make_model(startprob, transmat, emissionprob, implementation)
    from hmmlearn import hmm

    theirs = hmm.CategoricalHMM(n_components=n, n_features=m, implementation="log")
    theirs.startprob_ = startprob
    theirs.transmat_ = transmat
    theirs.emissionprob_ = emissionprob
    return ours, theirs


@needs_hmmlearn
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n,m", [(2, 3), (5, 10), (10, 50)])
def test_score_posteriors_viterbi_agree(seed, n, m, implementation, make_model):
    rng = np.random.default_rng(seed)
    ours, theirs = pair(rng, n, m, implementation, make_model)
    lengths = rng.integers(1, 120, size=5)
    X = rng.integers(0, m, size=(lengths.sum(), 1))
    np.testing.assert_allclose(ours.score(X, lengths), theirs.score(X, lengths), rtol=1e-9)
    ll, post = ours.score_samples(X, lengths)
    ll_h, post_h = theirs.score_samples(X, lengths)
    np.testing.assert_allclose(ll, ll_h, rtol=1e-9)
    np.testing.assert_allclose(post, post_h, rtol=1e-9, atol=1e-12)
    # compare Viterbi scores, not paths: hmmlearn breaks ties differently
    np.testing.assert_allclose(ours.decode(X, lengths)[0], theirs.decode(X, lengths)[0],
                               rtol=1e-9)


@needs_hmmlearn
@pytest.mark.parametrize("seed", range(4))
def test_structural_zeros_agree(seed, make_model):
    rng = np.random.default_rng(50 + seed)
    ours, theirs = pair(rng, 4, 6, "scaling", make_model, zeros=True)
    X, _ = ours.sample(300, random_state=seed)  # a sequence the model can produce
    np.testing.assert_allclose(ours.score(X), theirs.score(X), rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.decode(X)[0], theirs.decode(X)[0], rtol=1e-9)


@needs_hmmlearn
def test_stationary_distribution_agrees(make_model):
    rng = np.random.default_rng(3)
    ours, theirs = pair(rng, 6, 3, "scaling", make_model)
    np.testing.assert_allclose(ours.get_stationary_distribution(),
                               theirs.get_stationary_distribution(), rtol=1e-9)


# ------------------------------------------------------------------ sampling


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
