"""CategoricalHMM: discrete emissions over n_features symbols."""

import numpy as np

from . import _compat, _emissions, _fit, _kernel_inputs, _priors, _sampling
from . import _validation as V
from ._base import BaseHMM
from ._errors import HMMInputError, ParameterError


class CategoricalHMM(BaseHMM):
    """Hidden Markov model with categorical (discrete) emissions.

    Drop-in for ``hmmlearn.hmm.CategoricalHMM``: same constructor parameters, fitted
    attributes and methods. Differences on purpose are listed in the README (Viterbi
    ties go to the lowest state, impossible sequences raise when decoded, the default
    ``implementation`` is "scaling", parameters are stored read-only).

    Parameters
    ----------
    n_components : int
        Number of hidden states N.
    startprob_prior, transmat_prior, emissionprob_prior : float or array
        Dirichlet priors, used by fitting.
    n_features : int, optional
        Number of symbols M; taken from ``emissionprob_`` when it is assigned.
    algorithm, random_state, n_iter, tol, verbose, params, init_params, implementation,
    n_init, n_threads
        See :class:`hmmfast.BaseHMM`. Fitting letters: "s" startprob_, "t" transmat_,
        "e" emissionprob_.

    Attributes
    ----------
    startprob_ : ndarray of shape (n_components,)
    transmat_ : ndarray of shape (n_components, n_components)
    emissionprob_ : ndarray of shape (n_components, n_features)
        P(symbol | state); rows sum to 1.

    Notes
    -----
    Observations X are hmmlearn's (n_samples, 1) integer array or a 1-D integer array
    of symbols in [0, n_features); an intp, C-contiguous X is used without a copy.
    """

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0, *,
                 emissionprob_prior=1.0, n_features=None, algorithm="viterbi",
                 random_state=None, n_iter=10, tol=1e-2, verbose=False, params="ste",
                 init_params="ste", implementation="scaling", n_init=1, n_threads=None):
        super().__init__(
            n_components, startprob_prior, transmat_prior, algorithm=algorithm,
            random_state=random_state, n_iter=n_iter, tol=tol, verbose=verbose,
            params=params, init_params=init_params, implementation=implementation,
            n_init=n_init, n_threads=n_threads,
        )
        self.emissionprob_prior = emissionprob_prior
        self.n_features = n_features

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # hmmlearn's custom-emission hook: honour an overridden _compute_log_likelihood
        cls._dense_emissions = cls._compute_log_likelihood is not CategoricalHMM._compute_log_likelihood

    _dense_emissions = False

    @property
    def emissionprob_(self):
        """ndarray of shape (n_components, n_features): P(symbol | state) (read-only)."""
        try:
            return self._emissionprob
        except AttributeError:
            raise AttributeError("emissionprob_ is not set: fit the model or assign it") from None

    @emissionprob_.setter
    def emissionprob_(self, value):
        n = self._n()
        if self.n_features is not None:
            m = V.check_n("n_features", self.n_features)
        else:
            shape = np.shape(value)
            if len(shape) != 2:
                raise ParameterError(
                    f"emissionprob_ must have shape (n_components, n_features) = ({n}, M), "
                    f"got {shape}"
                )
            m = shape[1]
        self._emissionprob = V.stochastic_matrix("emissionprob_", value, n, m, "n_features")
        if self.n_features is None:
            self.n_features = m

    def _param_shapes(self, n):
        shapes = super()._param_shapes(n)
        m = self.n_features
        if m is not None:
            m = V.check_n("n_features", m)
        elif hasattr(self, "_emissionprob"):
            m = self._emissionprob.shape[1]
        shapes["emissionprob_"] = (n, m)
        return shapes

    def _sizes_str(self):
        return f"{super()._sizes_str()}, n_features={self.n_features}"

    def _emission_table(self, scaling):
        # (M, N): row m holds log P(symbol m | state j) for every state j
        log_table = V.read_only_log(self._emissionprob.T)
        return _kernel_inputs.emission(log_table, scaling)

    def _observation_kind(self):
        return "symbols"

    def _symbol_frames(self):
        return not self._dense_emissions

    def _frames(self, c, X, scaled=True):
        if self._dense_emissions:
            return super()._frames(c, X, scaled)
        symbols = _emissions.canonical_symbols(X)
        if symbols is None:
            symbols = V.symbols(X)
        return c.emission, symbols, symbols.shape[0]

    def _check_X(self, X):
        symbols = V.symbols(X)
        m = self.n_features
        bad = (symbols < 0) | (symbols >= m)
        if np.any(bad):
            t = int(np.argmax(bad))
            raise HMMInputError(
                f"observation symbol out of range at X[{t}]: expected 0 <= symbol < "
                f"n_features={m}, got {symbols[t]}", position=t)
        return symbols[:, None]

    def _compute_log_likelihood(self, X):
        """log P(X[t] | state j), ndarray of shape (n_samples, n_components)."""
        c = self._cache or self._prepare()
        return c.emission[0][np.asarray(X).reshape(-1)]

    def _get_n_fit_scalars_per_param(self):
        counts = super()._get_n_fit_scalars_per_param()
        counts["e"] = self.n_components * (self.n_features - 1)
        return counts

    # ---------------------------------------------------------------- fitting

    def _training_X(self, X):
        symbols = V.symbols(X)
        if symbols.min() < 0:
            t = int(np.argmax(symbols < 0))
            raise HMMInputError(f"observation symbol out of range at X[{t}]: symbols must be "
                                f">= 0, got {symbols[t]}", position=t)
        if self.n_features is not None:
            m = V.check_n("n_features", self.n_features)
            if symbols.max() >= m:
                t = int(np.argmax(symbols >= m))
                raise HMMInputError(
                    f"observation symbol out of range at X[{t}]: expected 0 <= symbol < "
                    f"n_features={m}, got {symbols[t]}", position=t)
        return symbols[:, None]

    def _init(self, X, lengths=None):
        """Initialise the parameters named in ``init_params`` or not set yet.

        n_features defaults to the largest symbol + 1. emissionprob_ rows: half the
        symbols' frequencies in X (a labelled state's: in its labelled frames), half a
        Dirichlet(1) draw per state.
        """
        super()._init(X, lengths)
        symbols = np.asarray(X).reshape(-1)
        if self.n_features is None:
            self.n_features = int(symbols.max()) + 1
        m = V.check_n("n_features", self.n_features)
        if self._needs_init("e", "emissionprob_"):
            rng = self._init_random_state()
            n = self.n_components
            freq = np.tile(np.bincount(symbols, minlength=m)[:m] / len(symbols), (n, 1))
            labels = self._init_labels()
            if labels is not None:
                known = labels >= 0
                own = np.zeros((n, m))
                np.add.at(own, (labels[known], symbols[known]), 1.0)
                seen = own.sum(axis=1) > 0
                freq[seen] = own[seen] / own[seen].sum(axis=1, keepdims=True)
            self.emissionprob_ = 0.5 * freq + 0.5 * rng.dirichlet(np.ones(m), size=n)

    def _check_and_set_n_features(self, X):
        """hmmlearn's hook: X holds non-negative integer symbols below ``n_features``
        (set to the largest symbol + 1 when not known yet)."""
        _compat.check_symbols(self, X)

    def _init_letters(self):
        return [*super()._init_letters(), ("e", "emissionprob_")]

    def _initialize_sufficient_statistics(self):
        stats = super()._initialize_sufficient_statistics()
        stats["obs"] = np.zeros((self.n_components, self.n_features))
        return stats

    def _accumulate_sufficient_statistics(self, stats, X, lattice, posteriors, fwdlattice,
                                          bwdlattice):
        super()._accumulate_sufficient_statistics(stats, X, lattice, posteriors, fwdlattice,
                                                  bwdlattice)
        if "e" in self.params:
            np.add.at(stats["obs"].T, np.asarray(X).reshape(-1), posteriors)

    _estep_wants_posteriors = False
    _fast_family = True  # the E-step kernel computes this family's statistics

    def _estep_frames(self, c, data):
        symbols = data.X[:, 0]
        if data.labels is None:
            return c.emission, symbols
        log_em = _fit.mask_labels(c.emission[0][symbols], data.labels)
        return _kernel_inputs.emission(log_em, c.scaling, c.n_threads), None

    def _accumulate_fast(self, stats, data, row_counts, posteriors):
        """Expected symbol counts per state from the E-step kernel's per-row sums (or
        from weighted posteriors when frames were dense)."""
        if "e" not in self.params:
            return
        if row_counts is not None:
            stats["obs"] += row_counts.T
            return
        symbols = data.X[:, 0]
        m = stats["obs"].shape[1]
        for j in range(self.n_components):
            stats["obs"][j] += np.bincount(symbols, weights=posteriors[:, j], minlength=m)

    def _do_mstep(self, stats):
        super()._do_mstep(stats)
        if "e" in self.params:
            prior = _priors.prior(self, "emissionprob_prior", self.emissionprob_.shape)
            self._set_fitted("emissionprob_", _priors.map_estimate(stats["obs"], prior,
                                                                self.emissionprob_, False))

    def _log_prior(self):
        total = super()._log_prior()
        if "e" in self.params:
            total += _priors.dirichlet_log_density(
                self.emissionprob_, _priors.prior(self, "emissionprob_prior",
                                               self.emissionprob_.shape))
        return total

    # ---------------------------------------------------------------- sampling

    def _sample_emissions(self, c, states, rng):
        cdf = np.ascontiguousarray(np.cumsum(c.params["emissionprob_"], axis=1))
        return _sampling.sample_rows(cdf, states, rng.random(len(states)))[:, None]

    def _generate_sample_from_state(self, state, random_state):
        cdf = np.cumsum(self._emissionprob[state])
        return [int(np.searchsorted(cdf, random_state.random() * cdf[-1], side="right"))]
