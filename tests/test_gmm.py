"""GMMHMM (Gaussian-mixture emissions): densities against scipy, inference and k EM
iterations against hmmlearn, a monotone objective, degenerate data, missing frames,
sampling and bad inputs."""

import copy
import warnings

import numpy as np
import pytest
from factories import needs_hmmlearn
from scipy import stats
from scipy.special import logsumexp

import hmmfast
from hmmfast._gmm import GMMHMM

TYPES = ["spherical", "diag", "full", "tied"]
PARAMS = ("startprob_", "transmat_", "weights_", "means_", "covars_")


# ------------------------------------------------------------------ independent oracles


def random_spd(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.5 * np.eye(d))


def random_params(rng, n, k, d, covariance_type, spread=3.0):
    """(startprob, transmat, weights, means, compact covars) of a random GMMHMM."""
    startprob = rng.dirichlet(np.ones(n))
    transmat = rng.dirichlet(np.ones(n) * 2, size=n) * 0.5 + 0.5 * np.eye(n)
    weights = rng.dirichlet(np.ones(k) * 3, size=n)
    means = rng.normal(scale=spread, size=(n, k, d))
    if covariance_type == "spherical":
        covars = rng.uniform(0.5, 2.0, size=(n, k))
    elif covariance_type == "diag":
        covars = rng.uniform(0.5, 2.0, size=(n, k, d))
    elif covariance_type == "full":
        covars = np.array([[random_spd(rng, d) for _ in range(k)] for _ in range(n)])
    else:
        covars = np.array([random_spd(rng, d) for _ in range(n)])
    return startprob, transmat, weights, means, covars


def full_matrix(covars, covariance_type, j, i, d):
    """State j, component i's covariance matrix from hmmlearn's compact form."""
    if covariance_type == "spherical":
        return covars[j, i] * np.eye(d)
    if covariance_type == "diag":
        return np.diag(covars[j, i])
    if covariance_type == "full":
        return covars[j, i]
    return covars[j]


def scipy_log_likelihood(X, weights, means, covars, covariance_type):
    """(T, N) log sum_k w_jk N(x | mu_jk, Sigma_jk) with scipy.stats."""
    n, k, d = means.shape
    out = np.empty((len(X), n))
    for j in range(n):
        comp = np.empty((len(X), k))
        for i in range(k):
            comp[:, i] = stats.multivariate_normal(
                means[j, i], full_matrix(covars, covariance_type, j, i, d)).logpdf(X)
        with np.errstate(divide="ignore"):
            out[:, j] = logsumexp(comp + np.log(weights[j]), axis=1)
    return out


def our_gmm(values, covariance_type, implementation="scaling", **kw):
    """An hmmfast GMMHMM holding ``values`` (startprob, transmat, weights, means, covars)."""
    n, k = np.shape(values[2])
    model = GMMHMM(n, k, covariance_type=covariance_type, implementation=implementation,
                   init_params="", **kw)
    for name, value in zip(PARAMS, values, strict=True):
        setattr(model, name, value)
    return model


def models(values, covariance_type, implementation="scaling", **kw):
    """(hmmfast GMMHMM, hmmlearn GMMHMM) holding the same parameters."""
    from hmmlearn import hmm

    n, k = np.shape(values[2])
    theirs = hmm.GMMHMM(n, k, covariance_type=covariance_type, implementation=implementation,
                        init_params="", random_state=0, **kw)
    for name, value in zip(PARAMS, values, strict=True):
        setattr(theirs, name, np.array(value))
    return our_gmm(values, covariance_type, implementation, **kw), theirs


def sample_data(params, covariance_type, lengths, seed):
    model = our_gmm(params, covariance_type)
    return np.concatenate([model.sample(t, random_state=seed + i)[0]
                           for i, t in enumerate(lengths)])


def assert_rel(actual, expected, rtol):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0)


def check_monotone(model):
    """monitor_.history (the EM objective) never decreases beyond 1e-8 relative."""
    history = np.array(model.monitor_.history)
    assert np.all(np.isfinite(history))
    assert np.all(np.diff(history) >= -1e-8 * np.abs(history[1:])), history


# ------------------------------------------------------------------ densities


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("d", [1, 13])
def test_log_likelihood_matches_scipy(covariance_type, d):
    rng = np.random.default_rng(d)
    params = random_params(rng, 3, 4, d, covariance_type)
    weights = params[2].copy()
    weights[1] = [0.0, 0.5, 0.0, 0.5]  # zero weights: log 0 = -inf, no NaN
    params = (*params[:2], weights, *params[3:])
    model = our_gmm(params, covariance_type)
    X = rng.normal(scale=3.0, size=(300, d)) + 5.0
    expected = scipy_log_likelihood(X, weights, params[3], params[4], covariance_type)
    got = model._compute_log_likelihood(X)
    assert got.shape == (300, 3)
    assert_rel(got, expected, 1e-10)
    assert_rel(model._compute_log_likelihood(X.astype(np.float32)),
               scipy_log_likelihood(X.astype(np.float32).astype(float), weights, params[3],
                                    params[4], covariance_type), 1e-10)


def test_single_component_is_gaussian():
    rng = np.random.default_rng(1)
    params = random_params(rng, 2, 1, 3, "full")
    model = our_gmm(params, "full")
    X = rng.normal(size=(50, 3))
    expected = np.stack([stats.multivariate_normal(params[3][j, 0], params[4][j, 0]).logpdf(X)
                         for j in range(2)], axis=1)
    assert_rel(model._compute_log_likelihood(X), expected, 1e-10)


# ------------------------------------------------------------------ inference vs hmmlearn


@needs_hmmlearn
@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_inference_matches_hmmlearn(covariance_type, implementation):
    rng = np.random.default_rng(7)
    params = random_params(rng, 3, 2, 4, covariance_type)
    lengths = [40, 1, 25]
    X = sample_data(params, covariance_type, lengths, seed=3)
    ours, theirs = models(params, covariance_type, implementation)
    assert_rel(ours.score(X, lengths), theirs.score(X, lengths), 1e-9)
    ll, post = ours.score_samples(X, lengths)
    ll_h, post_h = theirs.score_samples(X, lengths)
    assert_rel(ll, ll_h, 1e-9)
    np.testing.assert_allclose(post, post_h, rtol=1e-9, atol=1e-12)
    logp, states = ours.decode(X, lengths, algorithm="viterbi")
    logp_h, states_h = theirs.decode(X, lengths, algorithm="viterbi")
    assert_rel(logp, logp_h, 1e-9)
    np.testing.assert_array_equal(states, states_h)


@needs_hmmlearn
def test_parameter_counts_match_hmmlearn():
    rng = np.random.default_rng(0)
    for covariance_type in TYPES:
        ours, theirs = models(random_params(rng, 3, 4, 5, covariance_type), covariance_type)
        theirs.n_features = 5
        mine, ref = ours._get_n_fit_scalars_per_param(), theirs._get_n_fit_scalars_per_param()
        assert {k: v for k, v in mine.items() if k != "w"} == {
            k: v for k, v in ref.items() if k != "w"}
        assert mine["w"] == 3 * (4 - 1)  # every state's free weights (hmmlearn: one state's)


# ------------------------------------------------------------------ EM vs hmmlearn


PRIORS = {
    "spherical": dict(weights_prior=2.0, means_prior=0.5, means_weight=0.7, covars_prior=1.0,
                      covars_weight=0.5),
    "diag": dict(weights_prior=1.5, means_prior=-0.3, means_weight=1.2, covars_prior=0.5,
                 covars_weight=0.8),
    "full": dict(weights_prior=3.0, means_prior=0.2, means_weight=0.4,
                 covars_prior=0.3 * np.eye(2), covars_weight=4.0),
    "tied": dict(weights_prior=2.5, means_prior=0.1, means_weight=0.9,
                 covars_prior=0.5 * np.eye(2), covars_weight=3.0),
}


def fit_both(start, covariance_type, X, lengths, n_iter, **kw):
    ours, theirs = models(start, covariance_type, n_iter=n_iter, tol=-np.inf, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.fit(X, lengths)
        theirs.fit(X, lengths)
    return ours, theirs


@needs_hmmlearn
@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("priors", [False, True], ids=["default-priors", "priors"])
def test_em_iterations_match_hmmlearn(covariance_type, priors):
    rng = np.random.default_rng(11)
    truth = random_params(rng, 2, 2, 2, covariance_type)
    lengths = [120, 60, 90]
    X = sample_data(truth, covariance_type, lengths, seed=5)
    start = random_params(np.random.default_rng(12), 2, 2, 2, covariance_type, spread=2.0)
    kw = PRIORS[covariance_type] if priors else {}
    ours, theirs = fit_both(start, covariance_type, X, lengths, 4, **kw)
    assert ours.monitor_.iter == 4
    for name in ("weights_", "means_", "covars_", "transmat_", "startprob_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6,
                                   atol=1e-9, err_msg=name)
    assert ours.covars_.shape == theirs.covars_.shape
    history = np.array(ours.monitor_.history)
    assert np.all(np.diff(history) >= -1e-8 * np.abs(history[1:]))
    if not priors:  # the user's constructor parameters are left as given
        assert ours.covars_prior is None and ours.covars_weight is None
        assert ours.means_weight == 0.0


@needs_hmmlearn
@pytest.mark.parametrize("covariance_type", TYPES)
def test_subset_of_params_matches_hmmlearn(covariance_type):
    # n_mix != n_features: hmmlearn's default spherical prior is not flat here
    rng = np.random.default_rng(21)
    truth = random_params(rng, 2, 2, 3, covariance_type)
    X = sample_data(truth, covariance_type, [200], seed=2)
    start = random_params(np.random.default_rng(22), 2, 2, 3, covariance_type, spread=2.0)
    for params in ("stc", "stw", "cw"):
        ours, theirs = fit_both(start, covariance_type, X, None, 3, params=params)
        for name in PARAMS:
            np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6,
                                       atol=1e-9, err_msg=f"{params} {name}")


@needs_hmmlearn
def test_spherical_update_with_no_proper_maximiser_keeps_the_variance():
    """hmmlearn's default spherical update divides by n_features * (N + 1) - n_mix,
    negative for a component with little occupancy (hmmlearn then stores a negative
    variance); such a component keeps its variance, the rest match hmmlearn."""
    rng = np.random.default_rng(21)
    truth = random_params(rng, 2, 3, 2, "spherical")
    X = sample_data(truth, "spherical", [200], seed=2)
    start = random_params(np.random.default_rng(22), 2, 3, 2, "spherical", spread=2.0)
    ours, theirs = fit_both(start, "spherical", X, None, 1, params="stc")
    bad = theirs.covars_ <= 0
    assert bad.sum() == 1
    assert ours.covars_[bad] == start[4][bad]
    np.testing.assert_allclose(ours.covars_[~bad], theirs.covars_[~bad], rtol=1e-10)
    check_monotone(ours)


# ------------------------------------------------------------------ the objective


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_objective_never_decreases(covariance_type, seed):
    rng = np.random.default_rng(100 + seed)
    truth = random_params(rng, 3, 2, 2, covariance_type)
    lengths = [80, 50, 70]
    X = sample_data(truth, covariance_type, lengths, seed=seed)
    labels = np.full(len(X), -1)
    labels[rng.choice(len(X), 20, replace=False)] = rng.integers(0, 3, 20)
    weights = [1.0, 0.5, 2.5]
    kw = PRIORS[covariance_type] if seed == 2 else {}
    model = GMMHMM(3, 2, covariance_type=covariance_type, random_state=seed, n_iter=12,
                   tol=-np.inf, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.fit(X, lengths, sample_weight=weights, states=labels)
    check_monotone(model)
    assert model.monitor_.iter == 12


def test_spherical_default_prior_is_in_the_objective():
    """hmmlearn's default spherical prior is not flat when n_mix != n_features: the
    objective is the log-likelihood plus its log-density, and that never decreases."""
    rng = np.random.default_rng(5)
    truth = random_params(rng, 2, 3, 1, "spherical")
    X = sample_data(truth, "spherical", [300], seed=1)
    model = GMMHMM(2, 3, covariance_type="spherical", random_state=0, n_iter=15, tol=-np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.fit(X)
    check_monotone(model)
    penalty = -(1 - 3) / 2 * np.sum(np.log(model.covars_))
    assert_rel(model.monitor_.history[-1], model.score(X) + penalty, 1e-10)


def test_initialisation_is_reproducible_and_spreads_components():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(c, 0.3, size=(100, 2)) for c in (-6, -2, 2, 6)])
    fits = []
    for _ in range(2):
        model = GMMHMM(2, 2, random_state=42, n_iter=0)
        model.fit(X)
        fits.append(model)
    for name in PARAMS:
        np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name))
    centres = np.sort(fits[0].means_[:, :, 0].ravel())
    np.testing.assert_allclose(centres, [-6, -2, 2, 6], atol=0.5)
    np.testing.assert_allclose(fits[0].weights_, 0.5)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_blocks_and_hmmlearn_hooks_give_the_same_fit(covariance_type, monkeypatch):
    """The fast E-step equals hmmlearn's per-sequence hooks (a subclass overriding
    _compute_log_likelihood trains through them), and blocking frames changes nothing."""
    from hmmfast import _gmm

    class Hooked(GMMHMM):
        def _compute_log_likelihood(self, X):
            return super()._compute_log_likelihood(X)

    rng = np.random.default_rng(6)
    truth = random_params(rng, 2, 3, 2, covariance_type)
    lengths = [50, 30]
    X = sample_data(truth, covariance_type, lengths, seed=1)
    start = random_params(np.random.default_rng(7), 2, 3, 2, covariance_type)
    fits = []
    for cls, block in ((GMMHMM, _gmm.BLOCK), (GMMHMM, 7), (Hooked, _gmm.BLOCK)):
        monkeypatch.setattr(_gmm, "BLOCK", block)
        model = cls(2, 3, covariance_type=covariance_type, init_params="", n_iter=3,
                    tol=-np.inf)
        for name, value in zip(PARAMS, start, strict=True):
            setattr(model, name, value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            model.fit(X, lengths)
        fits.append(model)
    for other in fits[1:]:
        for name in PARAMS:
            np.testing.assert_allclose(getattr(other, name), getattr(fits[0], name),
                                       rtol=1e-10, atol=1e-13, err_msg=name)
        assert_rel(other.monitor_.history, fits[0].monitor_.history, 1e-12)


# ------------------------------------------------------------------ degenerate data


def assert_finite_model(model, X):
    for name in PARAMS:
        assert np.all(np.isfinite(getattr(model, name))), name
    cov = model.covars_
    if model.covariance_type in ("spherical", "diag"):
        assert cov.min() >= model.min_covar
    else:
        eig = np.linalg.eigvalsh(cov.reshape(-1, *cov.shape[-2:]))
        assert eig.min() >= model.min_covar * (1 - 1e-9)
    assert np.isfinite(model.score(X))
    check_monotone(model)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_degenerate_data_stays_finite(covariance_type):
    rng = np.random.default_rng(8)
    constant = np.column_stack([rng.normal(size=60), np.full(60, 3.0), rng.normal(size=60)])
    few = rng.normal(size=(5, 8))  # fewer frames than features
    collapse = np.concatenate([np.full((40, 2), 1.5), rng.normal(5, 1, size=(3, 2))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        for X in (constant, few, collapse):
            model = GMMHMM(2, 2, covariance_type=covariance_type, random_state=0, n_iter=8)
            model.fit(X)
            assert_finite_model(model, X)


def test_unvisited_state_keeps_its_parameters():
    rng = np.random.default_rng(4)
    params = list(random_params(rng, 2, 2, 2, "full"))
    params[0] = np.array([1.0, 0.0])
    params[1] = np.array([[1.0, 0.0], [0.5, 0.5]])  # state 1 is never reached
    X = sample_data(params, "full", [100], seed=0)
    model = our_gmm(params, "full", n_iter=3, tol=-np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.fit(X)
    np.testing.assert_array_equal(model.means_[1], params[3][1])
    np.testing.assert_array_equal(model.covars_[1], params[4][1])
    np.testing.assert_array_equal(model.weights_[1], params[2][1])


# ------------------------------------------------------------------ missing frames


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_missing_frames_are_marginalised(covariance_type):
    rng = np.random.default_rng(9)
    params = random_params(rng, 3, 2, 3, covariance_type)
    X = sample_data(params, covariance_type, [60], seed=4)
    gaps = [0, 7, 8, 30, 59]
    X[gaps] = np.nan
    model = our_gmm(params, covariance_type).set_params(missing="marginalize")
    log_em = scipy_log_likelihood(np.nan_to_num(X), *params[2:], covariance_type)
    log_em[gaps] = 0.0
    expected = hmmfast.forward(params[0], params[1], log_em)
    assert_rel(model.score(X), expected, 1e-10)
    _, post = model.score_samples(X)
    _, post_ref = hmmfast.forward_backward(params[0], params[1], log_em)
    np.testing.assert_allclose(post, post_ref, rtol=1e-9, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.set_params(n_iter=5, tol=-np.inf).fit(X)
    check_monotone(model)
    with pytest.raises(ValueError, match="NaN"):
        our_gmm(params, covariance_type).score(X)


# ------------------------------------------------------------------ sampling, copies


def test_sampling_draws_components_by_weight():
    means = np.array([[[-10.0], [0.0], [10.0]]])
    model = GMMHMM(1, 3, covariance_type="spherical", init_params="")
    model.startprob_, model.transmat_ = [1.0], [[1.0]]
    model.weights_ = [[0.2, 0.0, 0.8]]
    model.means_ = means
    model.covars_ = [[0.01, 0.01, 0.01]]
    X, states = model.sample(4000, random_state=0)
    assert X.shape == (4000, 1) and np.all(states == 0)
    low = np.mean(X[:, 0] < 0)
    assert abs(low - 0.2) < 0.03
    assert not np.any(np.abs(X[:, 0]) < 5)  # the zero-weight component never fires
    clone = copy.deepcopy(model)
    assert clone.score(X[:50]) == model.score(X[:50])


@pytest.mark.parametrize("covariance_type", TYPES)
def test_sampling_matches_the_covariances(covariance_type):
    rng = np.random.default_rng(2)
    params = random_params(rng, 1, 2, 2, covariance_type, spread=20.0)
    model = our_gmm(params, covariance_type)
    X, _ = model.sample(6000, random_state=1)
    near = np.argmin(((X[:, None, :] - params[3][0][None]) ** 2).sum(-1), axis=1)
    for i in range(2):
        expected = full_matrix(params[4], covariance_type, 0, i, 2)
        np.testing.assert_allclose(np.cov(X[near == i].T), expected, atol=0.25)


# ------------------------------------------------------------------ bad inputs


def test_bad_inputs():
    rng = np.random.default_rng(0)
    params = random_params(rng, 2, 2, 3, "full")
    model = our_gmm(params, "full")
    with pytest.raises(ValueError, match="features"):
        model.score(rng.normal(size=(10, 4)))
    bad = np.array(params[4])
    bad[1, 0] = -np.eye(3)
    with pytest.raises(hmmfast.ParameterError, match="state 1, component 0.*positive definite"):
        model.covars_ = bad
    bad = np.array(params[4])
    bad[0, 1, 0, 2] += 1.0
    with pytest.raises(hmmfast.ParameterError, match="state 0, component 1.*not symmetric"):
        model.covars_ = bad
    with pytest.raises(hmmfast.ParameterError, match="shape"):
        model.covars_ = params[4][0]
    with pytest.raises(hmmfast.ParameterError, match="row 1 of weights_ sums to"):
        model.weights_ = [[0.5, 0.5], [0.5, 0.6]]
    with pytest.raises(hmmfast.ParameterError, match="n_mix"):
        model.weights_ = [[1.0], [1.0]]
    with pytest.raises(hmmfast.ParameterError, match="means_ must have shape"):
        model.means_ = np.zeros((2, 3, 3))

    tied = our_gmm(random_params(rng, 2, 2, 2, "tied"), "tied")
    with pytest.raises(hmmfast.ParameterError, match="state 1 is not positive definite"):
        tied.covars_ = [np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]
    diag = our_gmm(random_params(rng, 2, 3, 2, "diag"), "diag")
    variances = np.ones((2, 3, 2))
    variances[1, 2, 0] = -1.0
    with pytest.raises(hmmfast.ParameterError, match=r"state 1, component 2"):
        diag.covars_ = variances
    spherical = GMMHMM(2, 2, covariance_type="spherical")
    with pytest.raises(hmmfast.ParameterError, match="means_ before"):
        spherical.covars_ = np.ones((2, 2))
    with pytest.raises(hmmfast.ParameterError, match="covars_prior"):
        GMMHMM(2, 2, covariance_type="diag", covars_prior=np.ones(5), n_iter=1).fit(
            rng.normal(size=(30, 2)))
    with pytest.raises(hmmfast.ParameterError, match="means_weight"):
        GMMHMM(2, 2, means_weight=-1.0, n_iter=1).fit(rng.normal(size=(30, 2)))
