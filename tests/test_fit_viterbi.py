"""fit_viterbi (segmental k-means) against a brute-force re-implementation: the best path
of every sequence by enumerating all N**T paths, then the closed-form counting estimates;
and the Viterbi score never decreasing, for every family."""

import itertools
import warnings

import numpy as np
import pytest
from scipy import sparse, stats

import hmmfast

N = 2


def log_emissions(model, X):
    """(T, N) log P(x_t | j) from scipy.stats (independent of hmmfast's kernels)."""
    if isinstance(model, hmmfast.CategoricalHMM):
        return np.log(np.asarray(model.emissionprob_)[:, X[:, 0]].T)
    if isinstance(model, hmmfast.GaussianHMM):
        return np.array([[stats.multivariate_normal.logpdf(x, model.means_[j],
                                                           model.covars_[j])
                          for j in range(N)] for x in X])
    if isinstance(model, hmmfast.PoissonHMM):
        return np.array([[stats.poisson.logpmf(x, model.lambdas_[j]).sum() for j in range(N)]
                         for x in X])
    return np.array([[stats.multinomial.logpmf(x, x.sum(), model.emissionprob_[j])
                      for j in range(N)] for x in X])


def best_path(model, X):
    """(log P(X, q*), q*) by enumerating every state path."""
    log_b = log_emissions(model, X)
    log_pi, log_a = np.log(model.startprob_), np.log(model.transmat_)
    best = (-np.inf, None)
    for path in itertools.product(range(N), repeat=len(X)):
        score = log_pi[path[0]] + log_b[0, path[0]] + sum(
            log_a[path[t - 1], path[t]] + log_b[t, path[t]] for t in range(1, len(X)))
        if score > best[0]:
            best = (score, np.array(path))
    return best


def counting_estimates(model, X, lengths, paths):
    """The maximum-likelihood parameters of the labelled frames (rows or states never
    seen keep their values), written from the formulas (variances floored at
    min_covar)."""
    states = np.concatenate(paths)
    firsts = np.array([p[0] for p in paths])
    start = np.bincount(firsts, minlength=N).astype(float)
    trans = np.zeros((N, N))
    for p in paths:
        np.add.at(trans, (p[:-1], p[1:]), 1.0)
    out = {"startprob_": start / start.sum(), "transmat_": np.array(model.transmat_)}
    seen = trans.sum(axis=1) > 0
    out["transmat_"][seen] = trans[seen] / trans[seen].sum(axis=1, keepdims=True)
    if isinstance(model, hmmfast.CategoricalHMM):
        counts = np.zeros_like(model.emissionprob_)
        np.add.at(counts, (states, X[:, 0]), 1.0)
        emis = np.array(model.emissionprob_)
        ok = counts.sum(axis=1) > 0
        emis[ok] = counts[ok] / counts[ok].sum(axis=1, keepdims=True)
        out["emissionprob_"] = emis
    elif isinstance(model, hmmfast.GaussianHMM):
        means, var = np.array(model.means_), np.array(model._covars_)
        for j in range(N):
            frames = X[states == j]
            if len(frames):
                means[j] = frames.mean(axis=0)
                var[j] = np.maximum(((frames - means[j]) ** 2).mean(axis=0), model.min_covar)
        out["means_"], out["_covars_"] = means, var
    elif isinstance(model, hmmfast.PoissonHMM):
        lam = np.array(model.lambdas_)
        for j in range(N):
            if np.any(states == j):
                lam[j] = X[states == j].mean(axis=0)
        out["lambdas_"] = lam
    else:
        emis = np.array(model.emissionprob_)
        for j in range(N):
            total = X[states == j].sum(axis=0)
            if total.sum() > 0:
                emis[j] = total / total.sum()
        out["emissionprob_"] = emis
    return out


def brute_force_fit(model, X, lengths, n_iter):
    """Segmental k-means by enumeration; returns (history of Viterbi scores, params)."""
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    history = []
    for _ in range(n_iter):
        best = [best_path(model, X[a:b]) for a, b in itertools.pairwise(offsets)]
        history.append(sum(s for s, _ in best))
        for name, value in counting_estimates(model, X, lengths, [p for _, p in best]).items():
            setattr(model, "covars_" if name == "_covars_" else name, value)
    history.append(sum(best_path(model, X[a:b])[0] for a, b in itertools.pairwise(offsets)))
    return history, model


def family(name, seed):
    rng = np.random.default_rng(seed)
    if name == "categorical":
        m = hmmfast.CategoricalHMM(N)
        m.emissionprob_ = rng.dirichlet(np.ones(3), size=N)
        X = rng.integers(0, 3, (9, 1))
    elif name == "gaussian":
        m = hmmfast.GaussianHMM(N, "diag", covars_prior=0.0)  # no prior: the MLE
        m.means_ = rng.normal(size=(N, 2))
        m.covars_ = rng.uniform(0.5, 2.0, (N, 2))
        X = rng.normal(size=(9, 2)) + rng.integers(0, 2, (9, 1)) * 2
    elif name == "poisson":
        m = hmmfast.PoissonHMM(N)
        m.lambdas_ = rng.uniform(1, 6, (N, 2))
        X = rng.poisson(3.0, (9, 2))
    else:
        m = hmmfast.MultinomialHMM(N, n_trials=4)
        m.emissionprob_ = rng.dirichlet(np.ones(3), size=N)
        X = rng.multinomial(4, [0.2, 0.3, 0.5], size=9)
    m.startprob_ = rng.dirichlet(np.ones(N))
    m.transmat_ = rng.dirichlet(np.ones(N), size=N)
    m.set_params(init_params="", tol=-np.inf)
    return m, X


@pytest.mark.parametrize("name", ["categorical", "gaussian", "poisson", "multinomial"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_brute_force(name, seed):
    model, X = family(name, seed)
    lengths = [4, 5]
    reference, _ = family(name, seed)
    history, reference = brute_force_fit(reference, X, lengths, 3)
    model.n_iter = 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.fit_viterbi(X, lengths)
    np.testing.assert_allclose(model.monitor_.history, history, rtol=1e-10)
    for attr in model._param_shapes(N):
        np.testing.assert_allclose(np.asarray(getattr(model, attr)),
                                   np.asarray(getattr(reference, attr)), atol=1e-10,
                                   err_msg=attr)


def make_left_right(rng, n=4, d=2):
    m = hmmfast.GaussianHMM(n, "diag", init_params="mc", n_iter=30, tol=1e-6)
    start, trans = hmmfast.topology.left_right(n, skip=0, self_loop=0.8)
    m.startprob_, m.transmat_ = start, trans
    truth = hmmfast.GaussianHMM(n, "diag")
    truth.startprob_, truth.transmat_ = start, trans
    truth.means_ = np.arange(n)[:, None] * np.ones(d) * 3
    truth.covars_ = np.ones((n, d))
    X = np.concatenate([truth.sample(20, random_state=rng)[0] for _ in range(100)])
    return m, X, truth


@pytest.mark.parametrize("make", [
    lambda: hmmfast.CategoricalHMM(3, random_state=0),
    lambda: hmmfast.GaussianHMM(3, "full", random_state=0),
    lambda: hmmfast.GaussianHMM(3, "tied", random_state=0),
    lambda: hmmfast.GaussianHMM(3, "spherical", random_state=0),
    lambda: hmmfast.GMMHMM(2, n_mix=2, covariance_type="diag", random_state=0),
    lambda: hmmfast.GMMHMM(2, n_mix=2, covariance_type="full", random_state=0),
    lambda: hmmfast.PoissonHMM(3, random_state=0),
    lambda: hmmfast.MultinomialHMM(3, random_state=0),
])
def test_viterbi_score_never_decreases(make):
    model = make()
    model.set_params(n_iter=40, tol=-np.inf)
    rng = np.random.default_rng(3)
    kind = model._observation_kind()
    if kind == "symbols":
        X = rng.integers(0, 5, (600, 1))
    elif kind == "counts":
        X = rng.poisson(rng.choice([1.0, 6.0], (600, 1)), (600, 3))
    else:
        X = rng.normal(size=(600, 2)) + rng.choice([0.0, 3.0], (600, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.fit_viterbi(X, [200, 300, 100])
    history = np.array(model.monitor_.history)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    # the last entry is the Viterbi score of the parameters returned
    assert history[-1] == pytest.approx(model.decode(X, [200, 300, 100])[0]
                                        + model._log_prior(), rel=1e-12)


def test_left_right_start_keeps_zeros_and_recovers():
    rng = np.random.default_rng(4)
    model, X, truth = make_left_right(rng)
    model.fit_viterbi(X, [20] * 100)
    assert model.monitor_.converged
    zeros = np.asarray(truth.transmat_) == 0
    assert np.all(np.asarray(model.transmat_)[zeros] == 0)
    assert np.all(np.asarray(model.startprob_)[1:] == 0)
    np.testing.assert_allclose(model.means_, truth.means_, atol=0.2)
    record = model._fit_record
    assert record["method"] == "fit_viterbi"
    assert record["log_likelihood"] == pytest.approx(
        model.score(X, [20] * 100) + model._log_prior(), rel=1e-12)
    assert record["viterbi_log_prob"] == model.monitor_.history[-1]


def test_sparse_transmat():
    rng = np.random.default_rng(5)
    model, X, _ = make_left_right(rng)
    dense = hmmfast.GaussianHMM(4, "diag", init_params="mc", n_iter=10, tol=-np.inf,
                                random_state=1)
    dense.startprob_, dense.transmat_ = model.startprob_, model.transmat_
    sp = hmmfast.GaussianHMM(4, "diag", init_params="mc", n_iter=10, tol=-np.inf,
                             random_state=1)
    sp.startprob_, sp.transmat_ = model.startprob_, sparse.csr_matrix(model.transmat_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        dense.fit_viterbi(X, [20] * 100)
        sp.fit_viterbi(X, [20] * 100)
    np.testing.assert_allclose(sp.transmat_.toarray(), dense.transmat_, atol=1e-12)
    np.testing.assert_allclose(sp.monitor_.history, dense.monitor_.history, rtol=1e-12)


def test_failure_leaves_the_model_unchanged():
    model = hmmfast.CategoricalHMM(2, init_params="")
    model.startprob_ = [1.0, 0.0]
    model.transmat_ = [[1.0, 0.0], [0.0, 1.0]]
    model.emissionprob_ = [[1.0, 0.0], [0.0, 1.0]]
    before = model.fingerprint
    with pytest.raises(hmmfast.ImpossibleSequenceError):
        model.fit_viterbi([[0], [1]])
    assert model.fingerprint == before


def test_custom_emission_subclass_is_refused():
    class Custom(hmmfast.BaseHMM):
        def _compute_log_likelihood(self, X):
            return np.zeros((len(X), self.n_components))

    with pytest.raises(hmmfast.HMMTypeError, match="use fit"):
        Custom(2).fit_viterbi(np.zeros((5, 1)))


def test_uniform_segmentation():
    from hmmfast._viterbi_training import is_left_right, uniform_segmentation

    offsets = np.array([0, 6, 9, 11])  # lengths 6, 3, 2 into 3 states
    np.testing.assert_array_equal(uniform_segmentation(offsets, 3),
                                  [0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1])
    start, trans = hmmfast.topology.left_right(4)
    assert is_left_right(trans) and is_left_right(sparse.csr_matrix(trans))
    assert not is_left_right(hmmfast.topology.banded(4, 1)[1])
