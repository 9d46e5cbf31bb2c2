"""PoissonHMM against independent oracles: scipy.stats.poisson, hmmlearn's PoissonHMM,
hmmfast._reference, the functional forward, and hand-computed estimates."""

import itertools
import pickle
import warnings

import numpy as np
import pytest
from factories import needs_hmmlearn
from scipy import stats

import hmmfast
from hmmfast import _reference
from hmmfast._poisson import PoissonHMM

pytestmark = pytest.mark.filterwarnings("ignore::hmmfast.ConvergenceWarning")


def random_params(rng, n, d, zeros=False):
    """(startprob, transmat, lambdas); with ``zeros``, some rates are exactly 0."""
    startprob = rng.dirichlet(np.ones(n))
    transmat = rng.dirichlet(np.ones(n), size=n)
    lambdas = rng.uniform(0.2, 12.0, size=(n, d))
    if zeros:
        lambdas[rng.random((n, d)) < 0.2] = 0.0
    return startprob, transmat, lambdas


def ours(params, **kw):
    startprob, transmat, lambdas = params
    model = PoissonHMM(len(startprob), **kw)
    model.startprob_ = startprob
    model.transmat_ = transmat
    model.lambdas_ = lambdas
    return model


def theirs(params, **kw):
    from hmmlearn import hmm

    startprob, transmat, lambdas = params
    model = hmm.PoissonHMM(len(startprob), **kw)
    model.startprob_ = startprob
    model.transmat_ = transmat
    model.lambdas_ = lambdas
    return model


def scipy_log_emissions(lambdas, X):
    """(T, N) sum_d log Poisson(x_d | lambda_jd), by scipy."""
    X = np.asarray(X, dtype=np.float64)
    return np.stack([stats.poisson.logpmf(X, lam).sum(axis=1) for lam in lambdas], axis=1)


@pytest.fixture(params=["fast", "generic"])
def estep_path(request, monkeypatch):
    """Run EM through the one-kernel E-step (PoissonHMM's own) and through hmmlearn's
    per-sequence hooks (_accumulate_sufficient_statistics), which a subclass gets."""
    if request.param == "generic":
        monkeypatch.setattr(PoissonHMM, "_uses_fast_estep", lambda self: False)
    return request.param


def test_fits_through_the_fast_estep():
    assert PoissonHMM(2)._uses_fast_estep()


# ------------------------------------------------------------------ log-densities


@pytest.mark.parametrize("d", [1, 39])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_log_densities_match_scipy(d, dtype):
    rng = np.random.default_rng(d)
    params = random_params(rng, 4, d, zeros=True)
    params[2][1] = 0.0  # a state with every rate zero: emits only all-zero frames
    lambdas = params[2]
    X = rng.poisson(rng.uniform(0.0, 15.0, size=(300, d)))
    X[rng.random(X.shape) < 0.3] = 0  # plenty of zero counts
    X[:5] = 0
    model = ours(params)
    got = model._compute_log_likelihood(X.astype(dtype))
    want = scipy_log_emissions(lambdas, X)
    assert np.isneginf(want).any() and np.isfinite(want).any()
    np.testing.assert_allclose(got, want, rtol=1e-10)
    np.testing.assert_array_equal(got[:5, 1], 0.0)  # zero rates, zero counts: log 1


def test_log_densities_long_input_threads():
    rng = np.random.default_rng(7)
    params = random_params(rng, 3, 5, zeros=True)
    X = rng.poisson(4.0, size=(7000, 5))
    want = scipy_log_emissions(params[2], X)
    for n_threads in (1, 3):
        got = ours(params, n_threads=n_threads)._compute_log_likelihood(X)
        np.testing.assert_allclose(got, want, rtol=1e-10)


# ------------------------------------------------------------------ inference vs hmmlearn


@needs_hmmlearn
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("implementation", ["log", "scaling"])
def test_inference_matches_hmmlearn_and_reference(seed, implementation):
    rng = np.random.default_rng(100 + seed)
    n, d = [(2, 1), (3, 4), (5, 13), (4, 39)][seed]
    params = random_params(rng, n, d, zeros=seed % 2 == 1)
    model = ours(params, implementation=implementation)
    peer = theirs(params, implementation=implementation)
    X, _ = model.sample(400, random_state=seed)  # a sequence the model can produce
    lengths = [150, 1, 249]
    np.testing.assert_allclose(model.score(X, lengths), peer.score(X, lengths), rtol=1e-9)
    ll, post = model.score_samples(X, lengths)
    ll_h, post_h = peer.score_samples(X, lengths)
    np.testing.assert_allclose(ll, ll_h, rtol=1e-9)
    np.testing.assert_allclose(post, post_h, rtol=1e-9, atol=1e-12)
    ref = _reference.posteriors(params[0], params[1], scipy_log_emissions(params[2], X),
                                lengths)
    np.testing.assert_allclose(post, ref, rtol=1e-9, atol=1e-12)
    # Viterbi scores, not paths: hmmlearn breaks ties the other way
    np.testing.assert_allclose(model.decode(X, lengths)[0], peer.decode(X, lengths)[0],
                               rtol=1e-9)
    assert model.bic(X, lengths) == pytest.approx(peer.bic(X, lengths), rel=1e-9)
    assert model.aic(X, lengths) == pytest.approx(peer.aic(X, lengths), rel=1e-9)


def test_float32_and_integer_observations_score_alike():
    rng = np.random.default_rng(3)
    model = ours(random_params(rng, 3, 6))
    X, _ = model.sample(200, random_state=1)
    want = model.score(X.astype(np.float64))
    assert model.score(X.astype(np.float32)) == pytest.approx(want, rel=1e-12)
    assert model.score(X.astype(np.uint16)) == pytest.approx(want, rel=1e-12)
    assert model.score(X.tolist()) == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------------ EM vs hmmlearn


def em_pair(params, X, lengths, n_iter=5, implementation="log", **kw):
    models = []
    for make in (ours, theirs):
        model = make(params, init_params="", n_iter=n_iter, tol=-np.inf,
                     implementation=implementation, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, lengths)
        models.append(model)
    return models


PRIORS = [
    {},
    {"lambdas_prior": 2.5, "lambdas_weight": 0.7},
    {"lambdas_prior": "array", "lambdas_weight": "array"},
]


@needs_hmmlearn
@pytest.mark.parametrize("prior", range(len(PRIORS)))
@pytest.mark.parametrize("lengths", [None, [300], [120, 7, 173], [50] * 6])
def test_em_matches_hmmlearn(prior, lengths, estep_path):
    """Without a rate prior EM equals hmmlearn's; with one, hmmlearn's update divides by
    all states' posterior weight (no MAP), ours by the state's own: checked against the
    formula on hmmlearn's posteriors, one iteration at a time."""
    rng = np.random.default_rng(11 + prior)
    n, d = 3, 4
    truth = random_params(rng, n, d)
    X, _ = ours(truth).sample(300, random_state=prior)
    start = (rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n), size=n),
             rng.uniform(0.5, 10.0, size=(n, d)))
    kw = dict(PRIORS[prior])
    if kw.get("lambdas_prior") == "array":
        kw = {"lambdas_prior": rng.uniform(0.0, 5.0, size=(n, d)),
              "lambdas_weight": rng.uniform(0.0, 3.0, size=(n, d))}
    for implementation in ("log", "scaling"):
        if not kw:
            mine, peer = em_pair(start, X, lengths, implementation=implementation)
            for name in ("startprob_", "transmat_", "lambdas_"):
                np.testing.assert_allclose(getattr(mine, name), getattr(peer, name),
                                           rtol=1e-6, atol=1e-12, err_msg=name)
            continue
        mine, peer = em_pair(start, X, lengths, n_iter=1, implementation=implementation, **kw)
        post = theirs(start, implementation=implementation).predict_proba(X, lengths)
        alpha = np.broadcast_to(kw["lambdas_prior"], (n, d))
        beta = np.broadcast_to(kw["lambdas_weight"], (n, d))
        want = (alpha + post.T @ X) / (beta + post.sum(axis=0)[:, None])
        np.testing.assert_allclose(mine.lambdas_, want, rtol=1e-9)
        np.testing.assert_allclose(mine.transmat_, peer.transmat_, rtol=1e-6)


@needs_hmmlearn
def test_em_with_dirichlet_priors_matches_hmmlearn():
    rng = np.random.default_rng(21)
    truth = random_params(rng, 3, 2)
    X, _ = ours(truth).sample(250, random_state=2)
    start = random_params(rng, 3, 2)
    mine, peer = em_pair(start, X, [100, 150], startprob_prior=2.0, transmat_prior=1.5)
    for name in ("startprob_", "transmat_", "lambdas_"):
        np.testing.assert_allclose(getattr(mine, name), getattr(peer, name), rtol=1e-6,
                                   err_msg=name)


def test_single_state_update_is_the_gamma_posterior_mode():
    """n_components=1: lambda = (alpha + sum x) / (beta + T), the mode of the posterior
    under the prior density lambda**alpha exp(-beta lambda); the objective is the
    log-likelihood plus alpha log lambda - beta lambda."""
    rng = np.random.default_rng(4)
    X = rng.poisson([3.0, 0.5, 9.0], size=(80, 3))
    alpha, beta = np.array([1.0, 2.0, 0.5]), 4.0
    model = PoissonHMM(1, lambdas_prior=alpha, lambdas_weight=beta, n_iter=3)
    model.fit(X)
    lam = (alpha + X.sum(axis=0)) / (beta + len(X))
    np.testing.assert_allclose(model.lambdas_[0], lam, rtol=1e-12)
    want = stats.poisson.logpmf(X, lam).sum() + np.sum(alpha * np.log(lam) - beta * lam)
    assert model.monitor_.history[-1] == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------------ EM never decreases


def assert_non_decreasing(history):
    h = np.asarray(history)
    drops = h[:-1] - h[1:]
    assert np.all(drops <= 1e-8 * np.abs(h[:-1])), h


@pytest.mark.parametrize("seed", range(12))
def test_em_never_decreases(seed, estep_path):
    rng = np.random.default_rng(300 + seed)
    n, d = 2 + seed % 3, 1 + seed % 4
    truth = random_params(rng, n, d, zeros=seed % 2 == 0)
    lengths = rng.integers(20, 120, size=3)
    X, z = ours(truth).sample(int(lengths.sum()), random_state=seed)
    kw = {}
    if seed % 3 == 1:
        kw["sample_weight"] = rng.uniform(0.0, 3.0, size=len(lengths))
    if seed % 3 == 2:
        known = np.where(rng.random(len(z)) < 0.3, z, -1)
        kw["states"] = known
    model = PoissonHMM(n, random_state=seed, n_iter=25, tol=-np.inf,
                       implementation=["log", "scaling"][seed % 2],
                       n_threads=2 if seed % 4 == 3 else 1)
    model.fit(X, lengths, **kw)
    assert len(model.monitor_.history) == 26
    assert_non_decreasing(model.monitor_.history)
    assert np.all(model.lambdas_ >= 0)


def test_em_with_rate_priors_never_decreases():
    """The reason the M-step is the exact MAP (hmmlearn's objective can fall here)."""
    for seed in range(8):
        rng = np.random.default_rng(600 + seed)
        truth = random_params(rng, 3, 2)
        X, _ = ours(truth).sample(300, random_state=seed)
        model = PoissonHMM(3, lambdas_prior=rng.uniform(0, 5), lambdas_weight=rng.uniform(0, 3),
                           random_state=seed, n_iter=30, tol=-np.inf, n_threads=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, [100, 200])
        assert_non_decreasing(model.monitor_.history)


def test_em_with_priors_single_state_never_decreases():
    rng = np.random.default_rng(5)
    X = rng.poisson(2.0, size=(60, 3))
    model = PoissonHMM(1, lambdas_prior=3.0, lambdas_weight=2.0, init_params="",
                       n_iter=6, tol=-np.inf)
    model.startprob_, model.transmat_, model.lambdas_ = [1.0], [[1.0]], [[40.0, 0.1, 7.0]]
    model.fit(X)
    assert_non_decreasing(model.monitor_.history)


# ------------------------------------------------------------------ recovery


def test_known_model_is_recovered():
    startprob = np.array([0.5, 0.3, 0.2])
    transmat = np.array([[0.95, 0.03, 0.02], [0.02, 0.95, 0.03], [0.03, 0.02, 0.95]])
    lambdas = np.array([[3.0, 20.0], [12.0, 4.0], [30.0, 30.0]])
    truth = ours((startprob, transmat, lambdas))
    X, _ = truth.sample(9000, random_state=0)
    model = PoissonHMM(3, random_state=1, n_iter=100, tol=1e-4, n_init=2)
    model.fit(X, [3000] * 3)
    perm = min(itertools.permutations(range(3)),
               key=lambda p: np.abs(model.lambdas_[list(p)] - lambdas).sum())
    np.testing.assert_allclose(model.lambdas_[list(perm)], lambdas, rtol=0.05)
    np.testing.assert_allclose(model.transmat_[np.ix_(perm, perm)], transmat, atol=0.05)


def test_init_is_reproducible_and_positive():
    rng = np.random.default_rng(8)
    X = np.concatenate([rng.poisson([1.0, 0.0, 9.0], size=(100, 3)),
                        rng.poisson([15.0, 0.0, 2.0], size=(100, 3))])
    fits = [PoissonHMM(2, random_state=s, n_iter=0).fit(X).lambdas_ for s in (3, 3, 4)]
    np.testing.assert_array_equal(fits[0], fits[1])
    assert not np.array_equal(fits[0], fits[2])
    for lam in fits:
        assert np.all(lam > 0)
        # the two clusters' mean counts, within the 5 % jitter (and the floor for zeros)
        order = np.argsort(lam[:, 0])
        means = np.array([X[:100].mean(axis=0), X[100:].mean(axis=0)])
        np.testing.assert_allclose(lam[order], np.maximum(means, 1e-3), rtol=0.051)


# ------------------------------------------------------------------ supervised


def test_fit_supervised_is_the_per_state_mean():
    rng = np.random.default_rng(9)
    truth = random_params(rng, 3, 4)
    X, z = ours(truth).sample(500, random_state=3)
    model = PoissonHMM(3, random_state=0).fit_supervised(X, z, lengths=[200, 300])
    for j in range(3):
        np.testing.assert_allclose(model.lambdas_[j], X[z == j].mean(axis=0), rtol=1e-12)
    starts = np.bincount(z[[0, 200]], minlength=3)
    np.testing.assert_allclose(model.startprob_, starts / 2)


def test_fit_supervised_with_prior_is_the_gamma_posterior_mode():
    rng = np.random.default_rng(10)
    X = rng.poisson(5.0, size=(90, 2))
    z = np.repeat([0, 1, 0], 30)
    alpha, beta = np.array([2.0, 0.5]), 3.0  # alpha: one value per state
    model = PoissonHMM(2, lambdas_prior=alpha, lambdas_weight=beta, random_state=0)
    model.fit_supervised(X, z)
    for j in range(2):
        frames = X[z == j]
        np.testing.assert_allclose(model.lambdas_[j],
                                   (alpha[j] + frames.sum(axis=0)) / (beta + len(frames)),
                                   rtol=1e-12)


# ------------------------------------------------------------------ sampling


def test_sample_draws_counts_at_the_state_rates():
    lambdas = np.array([[0.0, 2.0], [50.0, 7.0]])
    model = ours(([0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]], lambdas))
    X, z = model.sample(4000, random_state=0)
    assert X.shape == (4000, 2) and z.shape == (4000,)
    assert np.issubdtype(X.dtype, np.integer) and np.all(X >= 0)
    assert np.all(X[z == 0, 0] == 0)  # a zero rate emits only zeros
    for j in range(2):
        np.testing.assert_allclose(X[z == j].mean(axis=0), lambdas[j], rtol=0.05, atol=0.01)
    X2, z2 = model.sample(4000, random_state=0)
    np.testing.assert_array_equal(X, X2)


# ------------------------------------------------------------------ missing frames


def test_missing_frames_marginalize(estep_path):
    rng = np.random.default_rng(12)
    params = random_params(rng, 3, 4)
    model = ours(params, missing="marginalize")
    X, _ = model.sample(60, random_state=2)
    X = X.astype(float)
    gone = [0, 7, 8, 59]
    X[gone] = np.nan
    log_em = scipy_log_emissions(params[2], np.nan_to_num(X))
    log_em[gone] = 0.0
    want = hmmfast.forward(params[0], params[1], log_em)
    assert model.score(X) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(model.predict_proba(X),
                               _reference.posteriors(params[0], params[1], log_em),
                               rtol=1e-9, atol=1e-12)
    fitted = PoissonHMM(3, random_state=0, missing="marginalize", n_iter=15, tol=-np.inf)
    fitted.fit(X)
    assert_non_decreasing(fitted.monitor_.history)
    assert np.all(np.isfinite(fitted.lambdas_))
    with pytest.raises(hmmfast.HMMInputError, match=r"X\[0\] contains NaN"):
        ours(params).score(X)


def test_partly_missing_frame_is_an_error():
    model = ours(([1.0], [[1.0]], [[1.0, 2.0]]), missing="marginalize")
    with pytest.raises(hmmfast.HMMInputError, match=r"X\[1\] is partly NaN"):
        model.score([[1, 2], [np.nan, 3]])


def test_bad_count_after_missing_frame_names_its_row():
    model = ours(([1.0], [[1.0]], [[1.0]]), missing="marginalize")
    with pytest.raises(hmmfast.HMMInputError, match=r"X\[2, 0\]"):
        model.score([[1.0], [np.nan], [-1.0]])


# ------------------------------------------------------------------ bad inputs


def one_state():
    return ours(([1.0], [[1.0]], [[1.0, 2.0]]))


@pytest.mark.parametrize("X, pattern", [
    ([[1, 2], [3, -1]], r"X\[1, 1\] = -1\.0.*non-negative integer counts"),
    ([[1, 2], [0.5, 1]], r"X\[1, 0\] = 0\.5.*non-negative integer counts"),
    (np.array([[1, 2], [2, 2.25]], dtype=np.float32), r"X\[1, 1\] = 2\.25"),
    ([[1, 2, 3]], r"3 features per sample but the model has n_features=2"),
    ([[1, np.inf]], r"infinity"),
])
def test_bad_observations(X, pattern):
    with pytest.raises(hmmfast.HMMInputError, match=pattern):
        one_state().score(X)


def test_bad_training_counts_are_refused_and_model_kept():
    model = one_state()
    before = model.lambdas_
    with pytest.raises(hmmfast.HMMInputError, match="non-negative integer counts"):
        model.fit([[1, 2], [3, -2]])
    assert model.lambdas_ is before


@pytest.mark.parametrize("value, pattern", [
    ([[1.0, -0.5]], r"lambdas_\[0, 1\] = -0\.5: Poisson rates must be >= 0"),
    ([[1.0, np.nan]], r"lambdas_ must be finite"),
    ([[1.0, np.inf]], r"lambdas_ must be finite"),
    ([1.0, 2.0], r"lambdas_ must have shape \(n_components, n_features\)"),
    ([[1.0], [2.0]], r"lambdas_ must have shape"),
])
def test_bad_lambdas(value, pattern):
    model = PoissonHMM(1)
    with pytest.raises(hmmfast.ParameterError, match=pattern):
        model.lambdas_ = value


@pytest.mark.parametrize("name, value", [("lambdas_prior", -1.0), ("lambdas_weight", np.nan),
                                         ("lambdas_prior", [1.0, 2.0, 3.0])])
def test_bad_lambda_priors(name, value):
    X = np.random.default_rng(0).poisson(3.0, size=(40, 2))
    model = PoissonHMM(2, random_state=0, **{name: value})
    with pytest.raises(hmmfast.ParameterError, match=name):
        model.fit(X)


def test_lambdas_are_read_only_and_survive_pickle():
    model = ours(random_params(np.random.default_rng(1), 2, 3, zeros=True))
    with pytest.raises(ValueError):
        model.lambdas_[0, 0] = 5.0
    X, _ = model.sample(50, random_state=0)
    clone = pickle.loads(pickle.dumps(model))
    assert clone.score(X) == model.score(X)
    assert not clone.lambdas_.flags.writeable


def test_unset_lambdas_is_a_clear_error():
    model = PoissonHMM(2)
    model.startprob_ = [0.5, 0.5]
    model.transmat_ = [[0.5, 0.5], [0.5, 0.5]]
    with pytest.raises(hmmfast.NotFittedError, match="lambdas_"):
        model.score([[1]])
