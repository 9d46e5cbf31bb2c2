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
    # the weighted sums of frames are not recovered from the far means (that cancels):
    # they are summed directly
    np.testing.assert_allclose(stats["obs"], post.T @ X, rtol=1e-13)
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


# ------------------------------------------------------------------ the exp fused into the density

@pytest.mark.parametrize("n_states", [1, 3, 4, 5, 8, 9])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_diag_density_scaled_rows_are_scaled_rows_bit_for_bit(n_states, dtype):
    from hmmfast import _densities, _emissions

    rng = np.random.default_rng(n_states)
    T, D = 1003, 13  # a short last group of frames
    X = (rng.normal(size=(T, D)) * 4).astype(dtype)
    X[5] = 1e3  # a frame far from every state: tiny densities, a large shift
    means_t = rng.normal(size=(D, n_states))
    prec = rng.uniform(0.2, 3, (D, n_states))
    norm = rng.normal(size=n_states)
    log_table = _densities.gaussian_diag(X, means_t, prec, norm)
    got = _densities.gaussian_diag(X, means_t, prec, norm, 1, True)
    np.testing.assert_array_equal(got[0], log_table)
    if n_states > 8:
        assert got[1] is None and got[2] is None
        return
    want = _emissions.scaled_rows(log_table)
    np.testing.assert_array_equal(got[1], want[0])
    np.testing.assert_array_equal(got[2], want[1])
    # and the densities themselves, against the definition
    x = X.astype(np.float64)
    direct = norm - 0.5 * (((x[:, :, None] - means_t[None]) ** 2) * prec[None]).sum(axis=1)
    np.testing.assert_allclose(log_table, direct, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("cov_type", ["diag", "spherical", "full"])
def test_gaussian_score_and_posteriors_same_bits_as_unfused_tables(cov_type):
    from hmmfast import _kernel_inputs, _trellis

    rng = np.random.default_rng(7)
    n, d = 6, 4
    model = hmmfast.GaussianHMM(n, covariance_type=cov_type)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), n)
    model.means_ = rng.normal(size=(n, d)) * 3
    model.covars_ = {"diag": np.ones((n, d)), "spherical": np.ones(n),
                     "full": np.stack([np.eye(d)] * n)}[cov_type]
    X, _ = model.sample(700, random_state=3)
    c = model._prepare()
    emission = _kernel_inputs.emission(model._compute_log_likelihood(X), True)
    lengths = [300, 400]
    offsets = np.array([0, 300, 700], dtype=np.intp)
    assert model.score(X, lengths) == _trellis.forward(c.chain, emission, None, offsets, True)
    post = _trellis.forward_backward(c.chain, emission, None, offsets, True)[1]
    np.testing.assert_array_equal(model.predict_proba(X, lengths), post)


def test_density_and_moment_kernels_same_bits_on_every_vector_path():
    """The AVX2 builds and the x86-64 baseline builds of the density and moment kernels
    (one body each, no FMA) give the same bits."""
    from hmmfast import _densities

    rng = np.random.default_rng(8)
    T, D, N = 517, 6, 7
    X = rng.normal(size=(T, D)) * 3 + 100
    means_t = rng.normal(size=(D, N)) + 100
    prec = rng.uniform(0.2, 3, (D, N))
    norm = rng.normal(size=N)
    L = np.tril(rng.normal(size=(N, D, D)) * 0.1) + 2 * np.eye(D)
    w = rng.random((T, N))

    def run():
        return (*_densities.gaussian_diag(X, means_t, prec, norm, 1, True),
                _densities.gaussian_cholesky(X, np.ascontiguousarray(means_t.T), L,
                                             1 / np.einsum("jdd->jd", L), norm),
                *_moments.weighted_moments(X, w, means_t.T))
    fast = run()
    try:
        assert _densities._force_simd(0) == 0
        base = run()
    finally:
        _densities._force_simd(-1)
    for a, b in zip(fast, base, strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ grouped lanes

@pytest.mark.parametrize("n", [2, 5, 8])
def test_grouped_estep_same_bits_as_single_sequence_calls(n):
    """DECISIONS 26: the four-sequence lanes keep each sequence's arithmetic: its
    posteriors equal those of the one-sequence call bit for bit. (Its log-likelihood is
    summed as a mantissa and an exponent in the lanes, as a product and logs in the scalar
    kernel: equal to the last bits, not bitwise, since before issue 29.)"""
    from hmmfast import _estep, _kernel_inputs

    rng = np.random.default_rng(60 + n)
    startprob = rng.dirichlet(np.ones(n))
    transmat = rng.dirichlet(np.ones(n), n)
    log_em = rng.normal(scale=2.0, size=(400, n))
    chain = _kernel_inputs.chain(startprob, transmat)
    offsets = np.array([0, 1, 60, 61, 150, 151, 290, 400], dtype=np.intp)
    emission = _kernel_inputs.emission(log_em, True)
    logprob, _, _, _, post = _estep.estep(chain, emission, None, offsets, None, True, 1,
                                          False, True)
    for s in range(len(offsets) - 1):
        a, b = offsets[s], offsets[s + 1]
        one = _estep.estep(chain, _kernel_inputs.emission(log_em[a:b], True), None, None,
                           None, True, 1, False, True)
        np.testing.assert_allclose(one[0][0], logprob[s], rtol=1e-14)
        np.testing.assert_array_equal(one[4], post[a:b])


# ------------------------------------------------------------------ register-resident forward

def _score_both_ways(chain, emission, rows, offsets):
    from hmmfast import _trellis

    out = []
    for regs in (True, False):
        _trellis._force_regs(regs)
        try:
            lp = np.empty(len(offsets) - 1)
            out.append((_trellis.forward(chain, emission, rows, offsets, True, lp), lp))
        finally:
            _trellis._force_regs(True)
    return out


@pytest.mark.parametrize("n", list(range(1, 13)))
def test_register_forward_same_bits_as_general_pass(n):
    """Scores of dense chains with N <= 12 (the register-resident pass) equal the general
    scaled pass's bit for bit: long sequences (lazy renormalisation, the small-product
    logs), thin transitions (the mass floor), outlier frames (the log fallbacks), table
    rows and dense frames, on both vector paths."""
    from hmmfast import _kernel_inputs, _trellis

    rng = np.random.default_rng(100 + n)
    startprob = rng.dirichlet(np.ones(n))
    for transmat in (rng.dirichlet(np.ones(n), n),
                     rng.dirichlet(np.ones(n) * 0.05, n)):   # thin: mass floor > 0
        chain = _kernel_inputs.chain(startprob, transmat)
        log_em = rng.normal(scale=3.0, size=(6000, n))
        log_em[100, :] -= 800.0          # a frame every state explains terribly
        log_em[200, 1:] = -np.inf        # only state 0 can emit it
        offsets = np.array([0, 1, 2, 50, 3000, 6000], dtype=np.intp)
        dense = _kernel_inputs.emission(log_em, True)
        table = _kernel_inputs.emission(rng.normal(scale=2.0, size=(7, n)), True)
        rows = rng.integers(0, 7, 6000).astype(np.intp)
        for emission, r in ((dense, None), (table, rows)):
            for path in (1, 0):
                _trellis._force_simd(path)
                try:
                    (a, lp_a), (b, lp_b) = _score_both_ways(chain, emission, r, offsets)
                finally:
                    _trellis._force_simd(-1)
                assert a == b or (np.isnan(a) and np.isnan(b))
                np.testing.assert_array_equal(lp_a, lp_b)


def test_register_forward_reports_bad_rows_and_impossible_sequences():
    from hmmfast import _kernel_inputs, _trellis

    model = hmmfast.CategoricalHMM(3)
    model.startprob_ = [1.0, 0.0, 0.0]
    model.transmat_ = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    model.emissionprob_ = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]
    assert model.score([[0], [1], [0]]) == pytest.approx(np.log(0.5))
    assert model.score([[0], [0]]) == -np.inf                      # impossible
    c = model._prepare()
    with pytest.raises(hmmfast.HMMInputError):
        _trellis.forward(c.chain, c.emission, np.array([0, 5], dtype=np.intp), None, True)
    assert _kernel_inputs is not None
