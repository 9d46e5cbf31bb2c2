"""Thin states: a state (or mixture component) that EM almost never visits must not
crash a fit or lose the min_covar floor, for every covariance type (issue 25, item 1).

The defect: hmmlearn's default covars_prior divided by a posterior mass near 0 gave
covariances of 1e14..inf, the eigenvalue floor rebuilt from them lost min_covar, and the
fit raised numpy's LinAlgError. The oracle here is the family's own validation (what a
user's assignment must pass), a Cholesky factor, numpy's eigenvalues and the objective's
monotonicity. (hmmlearn on the same repro: bench/bench_learning.py and the README.)
"""

import warnings

import numpy as np
import pytest
from scipy import linalg

import hmmfast
from hmmfast import _covariance as C

COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")


def three_clusters(seed, outliers=False):
    """The issue's data: 10 sequences walking through three 2-D clusters."""
    rng = np.random.default_rng(seed)
    seqs = [np.concatenate([rng.normal(c, 1.0, size=(int(rng.integers(20, 60)), 2))
                            for c in ([0, 0], [4, 4], [8, 0])]) for _ in range(10)]
    if outliers:
        for s in seqs:
            s[rng.integers(len(s))] += rng.normal(0, 30, 2)
    return np.concatenate(seqs), [len(s) for s in seqs]


def left_right(n):
    tm = 0.9 * np.eye(n) + 0.1 * np.eye(n, k=1)
    tm[-1, -1] = 1.0
    return np.eye(n)[0], tm


def assert_valid_covariances(model):
    """Every stored covariance passes the family's own validation (a fresh model's
    setter), is finite, and keeps min_covar on its eigenvalues (1e-9 relative)."""
    compact = np.asarray(model._covars)
    assert np.all(np.isfinite(compact))
    fresh = type(model)(model.n_components, covariance_type=model.covariance_type,
                        **({"n_mix": model.n_mix} if hasattr(model, "n_mix") else {}))
    fresh.means_ = model.means_
    fresh.covars_ = compact  # raises ParameterError if not valid
    floor = model.min_covar * (1 - 1e-9)
    if model.covariance_type in ("spherical", "diag"):
        assert compact.min() >= floor
        return
    mats = compact.reshape(-1, *compact.shape[-2:])
    for m in mats:
        linalg.cholesky(m, lower=True)
        assert np.linalg.eigvalsh(m).min() >= floor


def assert_monotone(history):
    h = np.asarray(history)
    assert np.all(np.isfinite(h))
    assert np.all(np.diff(h) >= -1e-8 * np.maximum(np.abs(h[1:]), 1.0))


@pytest.mark.parametrize("seed", [5, 13])
def test_issue_repro_fits_without_error(seed):
    """The issue's repro (seeds 5 and 13 raised LinAlgError before)."""
    X, lengths = three_clusters(seed)
    model = hmmfast.GaussianHMM(5, covariance_type="full", init_params="mc",
                                random_state=seed, n_iter=50)
    model.startprob_, model.transmat_ = left_right(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.fit(X, lengths)
    assert_valid_covariances(model)
    assert_monotone(model.monitor_.history)
    assert np.isclose(model.score(X, lengths),
                      model.monitor_.history[-1] - model._log_prior(), rtol=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_thin_left_to_right_fuzz(covariance_type):
    """Fuzz: left-to-right models with more states than clusters (some states get
    almost no mass), tiny min_covar and outliers; every fit ends valid and monotone."""
    rng = np.random.default_rng(25)
    for trial in range(6):
        seed = int(rng.integers(1 << 30))
        X, lengths = three_clusters(seed, outliers=trial % 2 == 1)
        n = int(rng.integers(4, 8))
        min_covar = [1e-3, 1e-9][trial % 2]
        model = hmmfast.GaussianHMM(n, covariance_type=covariance_type, init_params="mc",
                                    min_covar=min_covar, random_state=seed, n_iter=40)
        model.startprob_, model.transmat_ = left_right(n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            model.fit(X, lengths)
        assert_valid_covariances(model)
        assert_monotone(model.monitor_.history)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_thin_mixture_components_fuzz(covariance_type):
    """GMMHMM: components that lose their frames keep a valid covariance."""
    rng = np.random.default_rng(52)
    for trial in range(3):
        seed = int(rng.integers(1 << 30))
        X, lengths = three_clusters(seed, outliers=trial == 1)
        model = hmmfast.GMMHMM(4, n_mix=3, covariance_type=covariance_type,
                               init_params="mcw", min_covar=[1e-3, 1e-9, 1e-6][trial],
                               random_state=seed, n_iter=30)
        model.startprob_, model.transmat_ = left_right(4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            model.fit(X, lengths)
        assert_valid_covariances(model)
        assert_monotone(model.monitor_.history)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_thin_state_keeps_its_covariance(covariance_type):
    """A state whose posterior mass is below 1e-3 of the mean mass per state keeps its
    previous covariance (the others are updated)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 2))
    model = hmmfast.GaussianHMM(3, covariance_type=covariance_type, init_params="",
                                params="c", n_iter=1)
    model.startprob_ = [0.5, 0.5 - 1e-6, 1e-6]
    model.transmat_ = np.tile([0.5, 0.5 - 1e-6, 1e-6], (3, 1))
    model.means_ = [[0.0, 0.0], [0.5, 0.5], [5.0, 5.0]]  # state 2: a tiny mass
    start = {"spherical": [1.0, 2.0, 3.0], "diag": [[1.0, 1.5], [2.0, 2.5], [3.0, 3.5]],
             "full": np.array([np.eye(2), 2 * np.eye(2), [[3.0, 0.5], [0.5, 3.0]]]),
             "tied": np.eye(2)}[covariance_type]
    model.covars_ = start
    _, post = model.score_samples(X)
    mass = post.sum(axis=0)
    assert 0 < mass[2] < 1e-3 * mass.mean()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.fit(X)
    after = np.asarray(model._covars)
    if covariance_type == "tied":  # one matrix: the thin state's share is ~0 anyway
        assert not np.allclose(after, start)
        return
    np.testing.assert_array_equal(after[2], np.asarray(start)[2])
    assert not np.allclose(after[:2], np.asarray(start)[:2])


def test_floor_reaches_min_covar_and_factors():
    """floor_covariances: symmetric results whose smallest eigenvalue is min_covar to
    1e-9 relative (for matrices up to 1e6 x min_covar) and that factor by Cholesky,
    also from indefinite, nearly singular and badly conditioned input."""
    rng = np.random.default_rng(0)
    min_covar = 1e-3
    mats = []
    for top in (1.0, 1e2, 1e3):
        for _ in range(30):
            d = int(rng.integers(2, 9))
            q = np.linalg.qr(rng.normal(size=(d, d)))[0]
            w = rng.uniform(-2 * min_covar, top, size=d)
            w[0] = rng.choice([0.0, -1e-6, min_covar * 0.5, -top * 1e-3])
            mats.append(((q * w) @ q.T, d))
    for m, _ in mats:
        out = C.floor_covariances(m[None], "full", min_covar)[0]
        assert np.array_equal(out, out.T)
        linalg.cholesky(out, lower=True)
        w_in = np.linalg.eigvalsh(0.5 * (m + m.T))
        w_out = np.linalg.eigvalsh(out)
        assert w_out.min() >= min_covar * (1 - 1e-9)
        # eigenvalues above the floor are kept (to rounding of the largest)
        np.testing.assert_allclose(w_out, np.maximum(w_in, min_covar),
                                   atol=1e-12 * max(1.0, w_in.max()), rtol=1e-9)


def test_floor_of_a_wildly_scaled_matrix_still_factors():
    """The issue's 1e14 matrices: whatever rounding does at that scale, the result is
    positive definite (Cholesky) and symmetric."""
    rng = np.random.default_rng(1)
    q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    m = (q * [1e14, 1e-5, -1.0]) @ q.T
    out = C.floor_covariances(m[None], "full", 1e-3)[0]
    assert np.array_equal(out, out.T)
    linalg.cholesky(out, lower=True)


@pytest.mark.parametrize("min_covar", [0.0, -1.0, np.nan, np.inf, "1e-3", True])
def test_min_covar_must_be_a_positive_number(min_covar):
    """The floor keeps covariances positive definite only when it is > 0 (before: 0
    gave numpy's LinAlgError for "full", a string a UFuncTypeError)."""
    X = np.concatenate([np.random.default_rng(0).normal(size=(50, 2)),
                        np.tile([[9.0, 9.0]], (3, 1))])
    for model in (hmmfast.GaussianHMM(3, covariance_type="full", min_covar=min_covar),
                  hmmfast.GaussianHMM(3, min_covar=min_covar),
                  hmmfast.GMMHMM(2, n_mix=2, covariance_type="full", min_covar=min_covar)):
        with pytest.raises(hmmfast.ParameterError, match="min_covar must be a finite number"):
            model.fit(X)
    fine = hmmfast.GaussianHMM(2, min_covar=np.float64(1e-3), n_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        fine.fit(X)
