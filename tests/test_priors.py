"""Priors and the objective EM reports (issue 25, items 3, 4 and 5).

- Dirichlet concentrations below 1 are refused (their MAP is unbounded; hmmlearn clips
  the update and its objective can fall).
- GaussianHMM validates its normal / inverse-gamma / Wishart priors as GMMHMM does,
  with the same messages.
- A sequence of weight 0 takes no part in the objective (no NaN from 0 x -inf); a
  non-finite objective is an error that names its cause.
- EM never reports convergence on a decrease: it warns, stops, keeps the best iterate
  and says converged=False.
"""

import warnings

import numpy as np
import pytest

import hmmfast


def symbols(seed, n=200):
    """Symbols with skewed frequencies (so uniform emissions fit them badly)."""
    return np.random.default_rng(seed).choice(4, p=[0.6, 0.2, 0.15, 0.05], size=(n, 1))


# ------------------------------------------------------------------ Dirichlet below 1


@pytest.mark.parametrize("make, name", [
    (lambda v: hmmfast.CategoricalHMM(3, startprob_prior=v), "startprob_prior"),
    (lambda v: hmmfast.CategoricalHMM(3, transmat_prior=v), "transmat_prior"),
    (lambda v: hmmfast.CategoricalHMM(3, emissionprob_prior=v), "emissionprob_prior"),
    (lambda v: hmmfast.GMMHMM(2, n_mix=2, weights_prior=v), "weights_prior"),
    (lambda v: hmmfast.PoissonHMM(2, transmat_prior=v), "transmat_prior"),
])
@pytest.mark.parametrize("value", [0.5, np.full(3, 0.99), 0.0])
def test_dirichlet_priors_below_one_are_refused(make, name, value):
    model = make(value if np.ndim(value) == 0 else value[:1])
    rng = np.random.default_rng(0)
    X = (symbols(0) if isinstance(model, hmmfast.CategoricalHMM)
         else rng.poisson(3.0, size=(200, 2)).astype(float))
    with pytest.raises(hmmfast.ParameterError, match=rf"{name} must be >= 1"):
        model.fit(X)
    assert not hasattr(model, "startprob_")  # nothing was kept from the failed fit


def test_dirichlet_priors_of_one_and_above_are_accepted():
    for value in (1.0, 1.5, np.array([1.0, 2.0, 3.0])):
        model = hmmfast.CategoricalHMM(3, transmat_prior=value, emissionprob_prior=value[
            None, :1] if np.ndim(value) else value, n_iter=3, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            model.fit(symbols(1))


def test_fuzzed_priors_of_one_and_above_never_decrease():
    """The issue's fuzz (priors drawn freely: 71 of 400 fits fell) with priors >= 1:
    the objective never falls, and any warning is about n_iter only."""
    rng = np.random.default_rng(22)
    for trial in range(40):
        n, m = int(rng.integers(2, 5)), int(rng.integers(2, 6))
        model = hmmfast.CategoricalHMM(
            n, n_features=m, startprob_prior=rng.uniform(1, 3, n),
            transmat_prior=rng.uniform(1, 3, (n, n)), emissionprob_prior=rng.uniform(1, 3),
            n_iter=20, tol=-np.inf, random_state=trial)
        X = rng.integers(0, m, size=(120, 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            model.fit(X, [40, 80])
        h = np.array(model.monitor_.history)
        assert np.all(np.diff(h) >= -1e-8 * np.abs(h[1:]))
        assert model.monitor_.decreased is None


# ------------------------------------------------------------------ Gaussian priors


BAD_PRIORS = [
    (dict(means_weight=-1.0), "means_weight must be >= 0 (a precision scale)"),
    (dict(means_weight=np.nan), "means_weight must be finite"),
    (dict(means_prior=np.inf), "means_prior must be finite"),
    (dict(means_prior=np.zeros(7)), "means_prior must be a number or an array broadcastable"),
    (dict(covars_prior=np.nan), "covars_prior must be finite"),
    (dict(covars_prior=np.zeros(7)), "covars_prior must be a number or an array broadcastable"),
    (dict(covars_weight=np.inf), "covars_weight must be finite"),
]


@pytest.mark.parametrize("covariance_type", ["diag", "full", "spherical", "tied"])
@pytest.mark.parametrize("kw, message", BAD_PRIORS)
def test_gaussian_priors_are_validated_as_gmm_priors(covariance_type, kw, message):
    """The same bad prior gets the same ParameterError message from both families
    (before: GaussianHMM gave all-NaN histories, a misleading ImpossibleSequenceError or
    numpy's broadcasting errors)."""
    X = np.random.default_rng(0).normal(size=(120, 2))
    for model in (hmmfast.GaussianHMM(2, covariance_type=covariance_type, **kw),
                  hmmfast.GMMHMM(2, n_mix=1, covariance_type=covariance_type, **kw)):
        with pytest.raises(hmmfast.ParameterError) as info:
            model.fit(X)
        assert str(info.value).startswith(message)
        assert not hasattr(model, "means_")


def test_gaussian_negative_covars_prior_is_refused():
    X = np.random.default_rng(0).normal(size=(60, 2))
    with pytest.raises(hmmfast.ParameterError, match="covars_prior must be >= 0"):
        hmmfast.GaussianHMM(2, covars_prior=-1.0).fit(X)


def test_gaussian_priors_of_hmmlearns_shapes_are_accepted():
    """hmmlearn's documented shapes: means_prior (N, D), means_weight (N,), covars_prior
    and covars_weight per type."""
    X = np.random.default_rng(1).normal(size=(150, 2))
    shapes = {"diag": ((3, 2), (3, 2)), "spherical": ((3, 2), (3, 2)),
              "full": ((3, 2, 2), (3,)), "tied": ((2, 2), ())}
    for ct, (cp, cw) in shapes.items():
        prior = np.ones(cp) if ct in ("diag", "spherical") else np.broadcast_to(np.eye(2), cp)
        model = hmmfast.GaussianHMM(3, covariance_type=ct, means_prior=np.zeros((3, 2)),
                                    means_weight=np.full(3, 0.5), covars_prior=0.1 * prior,
                                    covars_weight=np.full(cw, 4.0), n_iter=5,
                                    random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            model.fit(X)
        h = np.array(model.monitor_.history)
        assert np.all(np.isfinite(h)) and np.all(np.diff(h) >= -1e-8 * np.abs(h[1:]))


# ------------------------------------------------------------------ weight 0


def test_weight_zero_sequence_is_left_out_of_the_objective():
    """The issue's repro: sequence 1 (weight 0) becomes impossible; the history stays
    finite and equals that of a fit on sequence 0 alone from the same start."""
    X = [[0], [1], [0], [1], [1], [0], [2], [2]]
    kw = dict(n_iter=5, tol=-np.inf, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        weighted = hmmfast.CategoricalHMM(2, **kw).fit(X, [6, 2], sample_weight=[1, 0])
        start = hmmfast.CategoricalHMM(2, n_iter=0, random_state=0)  # the same start
        start.fit(X, [6, 2], sample_weight=[1, 0])
        alone = hmmfast.CategoricalHMM(2, init_params="", **kw)
        alone.startprob_, alone.transmat_ = start.startprob_, start.transmat_
        alone.emissionprob_ = start.emissionprob_
        alone.fit(X[:6])
    assert np.all(np.isfinite(weighted.monitor_.history))
    np.testing.assert_allclose(weighted.monitor_.history, alone.monitor_.history, rtol=1e-12)
    assert np.isneginf(weighted.score(X[6:]))  # the left-out sequence is impossible now


def test_non_finite_objective_names_the_prior():
    class BadPrior(hmmfast.CategoricalHMM):
        def _log_prior(self):
            return np.nan

    with pytest.raises(hmmfast.ParameterError, match="log prior density"):
        BadPrior(2, random_state=0).fit(symbols(2))


# ------------------------------------------------------------------ decreases


class FallsAtStep3(hmmfast.CategoricalHMM):
    """A custom M-step that is not a maximisation at its third call."""

    def _do_mstep(self, stats):
        super()._do_mstep(stats)
        calls = self.__dict__.get("_calls", 0) + 1
        object.__setattr__(self, "_calls", calls)
        if calls == 3:
            self.emissionprob_ = np.full_like(self.emissionprob_, 1 / self.n_features)


def test_a_decrease_is_never_convergence():
    """Before: the fall (gain < tol) was reported as convergence and the worse
    parameters returned. Now: a ConvergenceWarning, EM stops, the best iterate is kept
    (its objective ends the history) and converged is False."""
    X = symbols(3, 300)
    model = FallsAtStep3(3, n_iter=20, tol=1e-2, random_state=0)
    with pytest.warns(hmmfast.ConvergenceWarning, match="fell"):
        model.fit(X)
    monitor = model.monitor_
    assert not monitor.converged
    assert monitor.decreased is not None and monitor.decreased[0] == 3
    assert monitor.iter == 2 and len(monitor.history) == 3
    assert np.isclose(model.score(X), monitor.history[-1], rtol=1e-12)
    # the parameters are those after 2 M-steps of the same fit
    reference = hmmfast.CategoricalHMM(3, n_iter=2, tol=-np.inf, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        reference.fit(X)
    np.testing.assert_array_equal(model.emissionprob_, reference.emissionprob_)
    np.testing.assert_array_equal(model.transmat_, reference.transmat_)
