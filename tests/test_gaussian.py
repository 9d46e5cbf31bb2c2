"""GaussianHMM (issue 13): log-densities against scipy.stats, inference and EM against
hmmlearn, monotone EM, recovery, degenerate data, missing frames, bad input."""

import itertools
import warnings

import numpy as np
import pytest
from factories import needs_hmmlearn, random_gaussian
from scipy import stats

import hmmfast
from hmmfast import _reference

TYPES = ["diag", "spherical", "full", "tied"]


def full_covars(model):
    return np.asarray(model.covars_)


# ------------------------------------------------------------------ densities


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("d", [1, 39])
@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_log_densities_equal_scipy(covariance_type, d, offset):
    rng = np.random.default_rng(d + TYPES.index(covariance_type))
    model = random_gaussian(rng, covariance_type, n=3, d=d, offset=offset)
    X = model.means_[rng.integers(0, 3, 200)] + rng.normal(size=(200, d)) * 2
    got = model._compute_log_likelihood(X)
    want = np.column_stack([
        stats.multivariate_normal(model.means_[j], full_covars(model)[j]).logpdf(X)
        for j in range(3)])
    np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-10, atol=1e-9)


def test_float32_frames_are_used_without_a_copy():
    rng = np.random.default_rng(1)
    model = random_gaussian(rng, "diag")
    X32 = np.ascontiguousarray(rng.normal(size=(50, 4)), dtype=np.float32)
    frames, missing = model._observations(X32)
    assert frames is X32 and missing is None
    np.testing.assert_allclose(model.score(X32), model.score(X32.astype(np.float64)), rtol=1e-12)


def test_spherical_getter_returns_each_states_covariance():
    model = hmmfast.GaussianHMM(2, covariance_type="spherical")
    model.startprob_, model.transmat_ = [0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]]
    model.means_ = np.zeros((2, 3))
    model.covars_ = [0.5, 2.0]
    np.testing.assert_array_equal(model.covars_, [np.eye(3) * 0.5, np.eye(3) * 2.0])
    model.covariance_type = "diag"
    with pytest.raises(hmmfast.ParameterError, match="assign covars_ again"):
        model.score(np.zeros((2, 3)))


# ------------------------------------------------------------------ against hmmlearn


def hmmlearn_twin(model, implementation="scaling", **kw):
    from hmmlearn import hmm

    twin = hmm.GaussianHMM(model.n_components, covariance_type=model.covariance_type,
                           implementation=implementation, **kw)
    twin.startprob_, twin.transmat_, twin.means_ = (model.startprob_, model.transmat_,
                                                    model.means_)
    twin.covars_ = model._covars
    return twin


@needs_hmmlearn
@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("implementation", ["scaling", "log"])
def test_inference_equals_hmmlearn(covariance_type, implementation):
    rng = np.random.default_rng(2)
    model = random_gaussian(rng, covariance_type, implementation=implementation)
    X, _ = model.sample(600, random_state=3)
    lengths = [200, 400]
    twin = hmmlearn_twin(model, implementation)
    np.testing.assert_allclose(model.score(X, lengths), twin.score(X, lengths), rtol=1e-9)
    ll, post = model.score_samples(X, lengths)
    ll2, post2 = twin.score_samples(X, lengths)
    np.testing.assert_allclose(post, post2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.decode(X, lengths)[0], twin.decode(X, lengths)[0],
                               rtol=1e-9)
    log_em = model._compute_log_likelihood(X)
    np.testing.assert_allclose(
        post, _reference.posteriors(model.startprob_, model.transmat_, log_em, lengths),
        atol=1e-9)


@needs_hmmlearn
@pytest.mark.parametrize("covariance_type", TYPES)
def test_k_iterations_equal_hmmlearn(covariance_type):
    rng = np.random.default_rng(4)
    truth = random_gaussian(rng, covariance_type)
    X, _ = truth.sample(900, random_state=5)
    lengths = [300, 250, 350]
    kw = {"n_iter": 5, "tol": -np.inf, "init_params": ""}
    ours = random_gaussian(np.random.default_rng(6), covariance_type, **kw)
    theirs = hmmlearn_twin(ours, "scaling", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.fit(X, lengths)
        theirs.fit(X, lengths)
    np.testing.assert_allclose(ours.startprob_, theirs.startprob_, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ours.transmat_, theirs.transmat_, rtol=1e-6)
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-6)
    their_covars = theirs._covars_[:, 0] if covariance_type == "spherical" else theirs._covars_
    np.testing.assert_allclose(ours._covars, their_covars, rtol=1e-6)


# ------------------------------------------------------------------ EM behaviour


@pytest.mark.parametrize("covariance_type", TYPES)
def test_objective_never_decreases(covariance_type):
    for seed in range(4):
        rng = np.random.default_rng(20 + seed)
        truth = random_gaussian(rng, covariance_type, n=3, d=3)
        X, states = truth.sample(400, random_state=seed)
        lengths = [100, 150, 150]
        kw = {}
        if seed % 2:
            kw = {"means_prior": 0.5, "means_weight": 2.0, "covars_prior": 0.3,
                  "covars_weight": 5.0}
        model = hmmfast.GaussianHMM(3, covariance_type=covariance_type, n_iter=25,
                                    tol=-np.inf, random_state=seed, **kw)
        weights = rng.uniform(0.2, 2.0, 3) if seed >= 2 else None
        labels = np.where(rng.random(len(X)) < 0.1, states, -1) if seed == 3 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            model.fit(X, lengths, sample_weight=weights, states=labels)
        history = np.array(model.monitor_.history)
        assert np.all(np.diff(history) >= -1e-8 * np.abs(history[1:])), np.diff(history).min()


def test_recovers_a_known_three_state_model():
    rng = np.random.default_rng(7)
    truth = hmmfast.GaussianHMM(3, covariance_type="diag")
    truth.startprob_ = [0.6, 0.3, 0.1]
    truth.transmat_ = [[0.9, 0.05, 0.05], [0.1, 0.85, 0.05], [0.05, 0.15, 0.8]]
    truth.means_ = [[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]]
    truth.covars_ = [[1.0, 0.5], [0.8, 1.2], [1.5, 0.7]]
    X = np.concatenate([truth.sample(200, random_state=k)[0] for k in range(30)])
    model = hmmfast.GaussianHMM(3, covariance_type="diag", n_iter=200, tol=1e-4,
                                n_init=3, random_state=0)
    model.fit(X, [200] * 30)
    perm = min(itertools.permutations(range(3)),
               key=lambda p: np.abs(model.means_[list(p)] - truth.means_).sum())
    perm = list(perm)
    np.testing.assert_allclose(model.means_[perm], truth.means_, atol=0.2)
    np.testing.assert_allclose(model.transmat_[np.ix_(perm, perm)], truth.transmat_, atol=0.05)
    np.testing.assert_allclose(model._covars[perm], truth._covars, rtol=0.2)
    del rng


@pytest.mark.parametrize("covariance_type", TYPES)
def test_degenerate_data_end_finite(covariance_type):
    rng = np.random.default_rng(8)
    constant = np.column_stack([rng.normal(size=60), np.full(60, 3.0)])
    few = rng.normal(size=(3, 5))  # fewer frames than features
    collapsed = np.concatenate([rng.normal(size=(40, 2)), np.tile([[9.0, 9.0]], (2, 1))])
    for X in (constant, few, collapsed):
        model = hmmfast.GaussianHMM(3, covariance_type=covariance_type, n_iter=30,
                                    random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            model.fit(X)
        for value in (model.means_, model.covars_, model.transmat_, model.startprob_):
            assert np.all(np.isfinite(value))
        assert np.all(np.linalg.eigvalsh(model.covars_) >= model.min_covar * (1 - 1e-9))
        assert np.isfinite(model.score(X))


def test_fit_supervised_uses_per_state_moments():
    rng = np.random.default_rng(9)
    states = rng.integers(0, 2, 500)
    X = np.where(states[:, None] == 0, rng.normal(0, 1, (500, 2)), rng.normal(4, 2, (500, 2)))
    model = hmmfast.GaussianHMM(2, covariance_type="diag", covars_prior=0.0)
    model.fit_supervised(X, states)
    for j in range(2):
        np.testing.assert_allclose(model.means_[j], X[states == j].mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(model._covars[j], X[states == j].var(axis=0), rtol=1e-10)


# ------------------------------------------------------------------ missing frames


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_missing_frames_have_no_evidence(covariance_type):
    rng = np.random.default_rng(10)
    model = random_gaussian(rng, covariance_type, missing="marginalize")
    X, _ = model.sample(60, random_state=1)
    X[[0, 7, 8, 30, 59]] = np.nan
    log_em = model._compute_log_likelihood(np.where(np.isnan(X), 0.0, X))
    log_em[np.isnan(X).all(axis=1)] = 0.0
    np.testing.assert_allclose(model.score(X), hmmfast.forward(model.startprob_,
                                                                model.transmat_, log_em),
                               rtol=1e-12)
    _, post = model.score_samples(X)
    np.testing.assert_allclose(
        post, _reference.posteriors(model.startprob_, model.transmat_, log_em), atol=1e-10)
    np.testing.assert_allclose(model.decode(X)[0],
                               hmmfast.viterbi(model.startprob_, model.transmat_, log_em)[0],
                               rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        fitted = hmmfast.GaussianHMM(3, covariance_type=covariance_type, n_iter=5,
                                     missing="marginalize", random_state=0).fit(X)
    assert np.all(np.isfinite(fitted.means_))
    strict = random_gaussian(np.random.default_rng(10), covariance_type)
    with pytest.raises(hmmfast.HMMInputError, match=r"X\[0\] contains NaN.*marginalize"):
        strict.score(X)


def test_missing_frames_match_brute_force():
    from hmm_oracles import brute_force

    rng = np.random.default_rng(11)
    model = random_gaussian(rng, "diag", n=2, d=2, missing="marginalize")
    X, _ = model.sample(5, random_state=2)
    X[2] = np.nan
    log_em = model._compute_log_likelihood(np.nan_to_num(X))
    log_em[2] = 0.0
    truth = brute_force(model.startprob_, model.transmat_, log_em)
    np.testing.assert_allclose(model.score(X), truth["loglik"], rtol=1e-12)
    np.testing.assert_array_equal(model.decode(X)[1], truth["viterbi_path"])


# ------------------------------------------------------------------ bad input


def test_bad_inputs_raise_clear_errors():
    rng = np.random.default_rng(12)
    model = random_gaussian(rng, "full")
    with pytest.raises(hmmfast.HMMInputError, match=r"X\[1\] contains NaN"):
        model.score([[0.0] * 4, [np.nan] * 4])
    with pytest.raises(hmmfast.HMMInputError, match=r"X\[0\] contains infinity"):
        model.score([[np.inf, 0, 0, 0]])
    with pytest.raises(hmmfast.HMMInputError, match="3 features per sample but the model has n_features=4"):
        model.score(np.zeros((5, 3)))
    bad = np.array(model._covars)
    bad[1] = -np.eye(4)
    with pytest.raises(hmmfast.ParameterError, match="covariance of state 1 is not positive definite"):
        model.covars_ = bad
    bad[1] = np.eye(4)
    bad[1, 0, 1] = 0.5
    with pytest.raises(hmmfast.ParameterError, match="state 1 is not symmetric"):
        model.covars_ = bad
    diag = random_gaussian(rng, "diag")
    with pytest.raises(hmmfast.ParameterError, match=r"covars_\[2, 1\] = -1.0: variances must be > 0"):
        diag.covars_ = [[1.0] * 4, [1.0] * 4, [1.0, -1.0, 1.0, 1.0]]
    partly = random_gaussian(rng, "diag", missing="marginalize")
    with pytest.raises(hmmfast.HMMInputError, match=r"X\[1\] is partly NaN"):
        partly.score([[0.0] * 4, [np.nan, 0.0, 0.0, 0.0]])
    with pytest.raises(hmmfast.ParameterError, match="covariance_type must be one of"):
        hmmfast.GaussianHMM(2, covariance_type="banana").fit(np.zeros((5, 2)))


def test_sampling_follows_the_model():
    rng = np.random.default_rng(13)
    model = random_gaussian(rng, "full", n=2, d=2)
    X, states = model.sample(20000, random_state=3)
    for j in range(2):
        frames = X[states == j]
        np.testing.assert_allclose(frames.mean(axis=0), model.means_[j], atol=0.1)
        np.testing.assert_allclose(np.cov(frames.T), model.covars_[j], atol=0.15)
