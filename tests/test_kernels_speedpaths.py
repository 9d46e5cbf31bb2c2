"""The speed paths of issue 29 against independent computations: the one-pass M-step sums
(csrc/_moments.pyx ``weighted_moments``) and the Gaussian / GMM statistics built on them."""

import numpy as np
import pytest

import hmmfast
from hmmfast import _moments


def direct_moments(X, w, ref):
    """Plain NumPy, one state at a time, from the differences."""
    X = np.asarray(X, dtype=np.float64)
    s0 = w.sum(axis=0)
    s1 = np.stack([(w[:, j:j + 1] * (X - ref[j])).sum(axis=0) for j in range(len(ref))])
    s2 = np.stack([(w[:, j:j + 1] * (X - ref[j]) ** 2).sum(axis=0) for j in range(len(ref))])
    return s0, s1, s2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("T", [1, 7, 8192, 20001])  # one block, and several
def test_weighted_moments_match_direct_sums(dtype, T):
    rng = np.random.default_rng(T)
    N, D = 5, 3
    X = (rng.normal(size=(T, D)) * 3 + 1e6).astype(dtype)
    w = rng.random((T, N))
    ref = rng.normal(size=(N, D)) + 1e6
    got = _moments.weighted_moments(X, w, ref)
    want = direct_moments(X, w, ref)
    for g, e in zip(got, want, strict=True):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-11, atol=1e-9 * np.abs(e).max())


def test_second_moment_about_the_means_is_the_scatter_bit_for_bit():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30000, 4))
    w = rng.random((30000, 6))
    means = rng.normal(size=(6, 4))
    np.testing.assert_array_equal(_moments.weighted_moments(X, w, means)[2],
                                  _moments.weighted_scatter(X, w, means))


def test_weighted_moments_same_bits_any_team(monkeypatch):
    monkeypatch.setenv("HMMFAST_TEAM_MIN_NS", "0")
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40000, 3))
    w = rng.random((40000, 4))
    ref = rng.normal(size=(4, 3))
    one = _moments.weighted_moments(X, w, ref, 1)
    for k in (2, 3, -2):
        for a, b in zip(_moments.weighted_moments(X, w, ref, k), one, strict=True):
            np.testing.assert_array_equal(a, b)


class _Data:
    def __init__(self):
        self.cache = {}


def _model(means, cov_type="diag"):
    m = hmmfast.GaussianHMM(2, covariance_type=cov_type)
    m.startprob_ = [0.5, 0.5]
    m.transmat_ = [[0.9, 0.1], [0.2, 0.8]]
    m.means_ = means
    m.covars_ = np.ones((2, 3)) if cov_type == "diag" else np.ones(2)
    return m


def exact_statistics(X, post, means_prior=0.0, means_weight=0.0):
    s0 = post.sum(axis=0)
    obs = post.T @ X
    means = obs / s0[:, None]
    scatter = np.stack([(post[:, j:j + 1] * (X - means[j]) ** 2).sum(axis=0)
                        for j in range(post.shape[1])])
    return s0, obs, means, scatter


@pytest.mark.parametrize("cov_type", ["diag", "spherical"])
@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_gaussian_statistics_moved_scatter(cov_type, offset):
    """The M-step's scatter, moved from the current means to the new ones, equals the
    scatter computed about the new means (also far from the origin)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 3)) + offset
    post = rng.dirichlet([1, 1], 5000)
    s0, obs, means, scatter = exact_statistics(X, post)
    model = _model(means + rng.normal(size=means.shape) * 0.3, cov_type)  # near, not equal
    stats = model._initialize_sufficient_statistics()
    model._accumulate_posteriors(stats, X, post, _Data())
    np.testing.assert_allclose(stats["post"], s0, rtol=1e-13)
    np.testing.assert_allclose(stats["obs"], obs, rtol=1e-13)
    np.testing.assert_allclose(stats["scatter_means"], means, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(stats["scatter"], scatter, rtol=1e-10)


def test_gaussian_statistics_far_means_recompute_the_scatter():
    """Current means far from the new ones (a move that would lose digits): the scatter
    is recomputed from the differences, exactly the direct kernel's."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 3)) * 1e-3
    post = rng.dirichlet([1, 1], 3000)
    model = _model(np.full((2, 3), 50.0))
    stats = model._initialize_sufficient_statistics()
    model._accumulate_posteriors(stats, X, post, _Data())
    direct = _moments.weighted_scatter(X, post, stats["scatter_means"])
    np.testing.assert_array_equal(stats["scatter"], direct)
    np.testing.assert_allclose(stats["scatter"], exact_statistics(X, post)[3], rtol=1e-10)


@pytest.mark.parametrize("cov_type", ["diag", "spherical"])
def test_gmm_statistics_one_pass_match_direct(cov_type):
    rng = np.random.default_rng(5)
    n, k, d, T = 2, 3, 2, 4000
    model = hmmfast.GMMHMM(n, n_mix=k, covariance_type=cov_type)
    model.startprob_ = [0.5, 0.5]
    model.transmat_ = [[0.9, 0.1], [0.2, 0.8]]
    model.weights_ = np.full((n, k), 1 / k)
    model.means_ = rng.normal(size=(n, k, d)) + 1e5
    model.covars_ = np.ones((n, k, d)) if cov_type == "diag" else np.ones((n, k))
    X = rng.normal(size=(T, d)) + 1e5
    post = rng.dirichlet([1, 1], T)
    stats = model._initialize_sufficient_statistics()
    model._accumulate_posteriors(stats, X, post, None)
    # hmmlearn's definitions, in NumPy: responsibilities within each state
    comp = np.stack([[-0.5 * (((X - model.means_[j, i]) ** 2).sum(1))
                      for i in range(k)] for j in range(n)])       # (n, k, T)
    resp = np.exp(comp - comp.max(axis=1, keepdims=True))
    resp /= resp.sum(axis=1, keepdims=True)
    gamma = post.T[:, None, :] * resp                                # (n, k, T)
    np.testing.assert_allclose(stats["post_mix_sum"], gamma.sum(-1), rtol=1e-10)
    np.testing.assert_allclose(stats["m_n"], gamma @ X, rtol=1e-12)
    scatter = np.stack([[(gamma[j, i][:, None] * (X - model.means_[j, i]) ** 2).sum(0)
                         for i in range(k)] for j in range(n)])
    if cov_type == "spherical":
        scatter = scatter.sum(-1)
    np.testing.assert_allclose(stats["c_n"], scatter, rtol=1e-9)
