"""PoissonHMM: emissions that are vectors of independent Poisson counts.

State j emits frame x (n_features non-negative integers) with probability
prod_d Poisson(x_d | lambdas_[j, d]). A zero rate is legal: that state emits only zeros
in that feature (0 log 0 = 0), and a non-zero count there makes the state impossible.
"""

import numpy as np

from . import _densities
from . import _validation as V
from ._continuous import ContinuousHMM
from ._errors import ParameterError
from ._kmeans import state_centres
from ._readonly import freeze

MIN_INIT_RATE = 1e-3  # floor on initial rates, so every state can emit every count
INIT_JITTER = 0.05  # initial rates are k-means centres times U(1 - j, 1 + j)


class PoissonDensity:
    """Kernel inputs for Poisson rates (what ``_densities.poisson`` needs, built once).

    Parameters
    ----------
    lambdas : ndarray of shape (n_components, n_features)
        Validated rates (finite, >= 0).
    """

    __slots__ = ("lambda_sums", "log_lambdas_t")

    def __init__(self, lambdas):
        with np.errstate(divide="ignore"):
            self.log_lambdas_t = np.ascontiguousarray(np.log(lambdas).T)  # (D, N), -inf at 0
        self.lambda_sums = np.ascontiguousarray(lambdas.sum(axis=1))  # (N,)

    def log_densities(self, X, n_threads=1):
        """(T, N) log P(x_t | state j) for validated float32/float64 counts X (T, D)."""
        return _densities.poisson(X, self.log_lambdas_t, self.lambda_sums, n_threads)


class PoissonHMM(ContinuousHMM):
    """Hidden Markov model with Poisson emissions (hmmlearn's ``PoissonHMM``).

    Parameters
    ----------
    n_components : int
    startprob_prior, transmat_prior : float or array
        Dirichlet priors (hmmlearn's convention: 1.0 adds nothing).
    lambdas_prior, lambdas_weight : float or array
        Gamma prior on the rates, hmmlearn's alpha (shape) and beta (rate weight): a
        number, an array of shape (n_components,) (one per state, the shape hmmlearn
        documents; its code applies a 1-D array along the features) or (n_components,
        n_features). 0 (the default) is no prior. See Notes.
    algorithm, random_state, n_iter, tol, verbose, implementation, n_init, n_threads
        See :class:`hmmfast.BaseHMM`.
    params, init_params : str
        Letters "s" startprob_, "t" transmat_, "l" lambdas_.
    missing : {"raise", "marginalize"}
        "marginalize": a row of X that is entirely NaN is a missing frame (no evidence).

    Attributes
    ----------
    lambdas_ : ndarray of shape (n_components, n_features)
        The Poisson rate of every state and feature (>= 0; read-only).
    n_features : int

    Notes
    -----
    Observations X, of shape (n_samples, n_features), are counts: non-negative whole
    numbers, given as integers or as floats (float32 is used without a copy). A negative
    or fractional value raises ``HMMInputError`` naming its row.

    Initialisation ("l" in ``init_params``): the k-means centres of X (greedy
    k-means++ seeding, 10 restarts, seeded from ``random_state``: :mod:`hmmfast._kmeans`),
    i.e. the mean counts of k clusters of frames (with known states, a labelled state's
    centre is the mean of its labelled frames), floored at 1e-3 and multiplied by
    U(0.95, 1.05) per entry so that states never start identical; every initial rate is
    positive.

    M-step: the posterior mode under a Gamma prior with density prop. to
    lambda**alpha * exp(-beta * lambda) (alpha = ``lambdas_prior``, beta =
    ``lambdas_weight``): lambdas_[j] = (alpha + sum_t gamma_tj x_t) / (beta + sum_t
    gamma_tj). EM's objective (``monitor_.history``) adds that prior's log-density,
    sum alpha log lambda - beta lambda, to the log-likelihood, and never decreases. A
    state with no posterior weight keeps its rates. With the default priors (0) this is
    hmmlearn's maximum-likelihood update. Deliberate difference: with priors set,
    hmmlearn divides by the total posterior weight of *all* states, (alpha + n ybar_j) /
    (beta + n); that is no MAP for several states, and its objective can fall.
    """

    _X_what = "non-negative integer counts"

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0,
                 lambdas_prior=0.0, lambdas_weight=0.0, algorithm="viterbi",
                 random_state=None, n_iter=10, tol=1e-2, verbose=False, params="stl",
                 init_params="stl", implementation="scaling", *, missing="raise",
                 n_init=1, n_threads=None):
        super().__init__(
            n_components, startprob_prior, transmat_prior, algorithm=algorithm,
            random_state=random_state, n_iter=n_iter, tol=tol, verbose=verbose,
            params=params, init_params=init_params, implementation=implementation,
            n_init=n_init, n_threads=n_threads)
        self.lambdas_prior = lambdas_prior
        self.lambdas_weight = lambdas_weight
        self.missing = missing

    # ---------------------------------------------------------------- parameters

    @property
    def lambdas_(self):
        """ndarray of shape (n_components, n_features): the Poisson rates (read-only)."""
        try:
            return self._lambdas
        except AttributeError:
            raise AttributeError("lambdas_ is not set: fit the model or assign it") from None

    @lambdas_.setter
    def lambdas_(self, value):
        n = self._n()
        shape = np.shape(value)
        expected = f"(n_components, n_features) = ({n}, D)"
        if len(shape) != 2:
            raise ParameterError(f"lambdas_ must have shape {expected}, "
                                 f"got {V._shape_str(shape)}")
        arr = V.as_float_array("lambdas_", value, (n, shape[1]), expected)
        if np.any(arr < 0):
            idx = tuple(int(i) for i in np.argwhere(arr < 0)[0])
            raise ParameterError(f"lambdas_{list(idx)} = {float(arr[idx])!r}: Poisson rates "
                                 f"must be >= 0 (state {idx[0]})")
        self._lambdas = freeze(arr, "lambdas_")
        self.n_features = shape[1]

    def _param_shapes(self, n):
        shapes = super()._param_shapes(n)
        shapes["lambdas_"] = (n, getattr(self, "n_features", None))
        return shapes

    def _sizes_str(self):
        return f"{super()._sizes_str()}, n_features={getattr(self, 'n_features', None)}"

    def _compile_density(self):
        return PoissonDensity(self._lambdas)

    def _observation_kind(self):
        return "counts"

    def _emission_moments(self):
        """Each state's emission mean and standard deviation: lambda and sqrt(lambda)."""
        lam = np.asarray(self.lambdas_)
        return lam, np.sqrt(lam)

    def _check_values(self, frames):
        """Refuse what a Poisson cannot emit: negative or fractional counts."""
        self._check_counts(frames)

    def _get_n_fit_scalars_per_param(self):
        counts = super()._get_n_fit_scalars_per_param()
        counts["l"] = self.n_components * self.n_features
        return counts

    def _sample_emissions(self, c, states, rng):
        """(n, n_features) integer counts, one Poisson draw per state of the path."""
        return rng.poisson(c.params["lambdas_"][states])

    # ---------------------------------------------------------------- fitting

    _fast_family = True  # statistics from the E-step kernel's posteriors

    def _init(self, X, lengths=None):
        """Initialise the parameters named in ``init_params`` or not set yet; lambdas_
        from the k-means++ centres of X (see the class Notes)."""
        super()._init(X, lengths)
        if self._needs_init("l", "lambdas_"):
            rng = self._init_random_state()
            X = np.asarray(X)
            centres = np.maximum(state_centres(X, self.n_components, rng,
                                               self._init_labels()), MIN_INIT_RATE)
            self.lambdas_ = centres * rng.uniform(1 - INIT_JITTER, 1 + INIT_JITTER,
                                                  size=centres.shape)

    def _init_letters(self):
        return [*super()._init_letters(), ("l", "lambdas_")]

    def _initialize_sufficient_statistics(self):
        stats = super()._initialize_sufficient_statistics()
        stats["post"] = np.zeros(self.n_components)
        stats["obs"] = np.zeros((self.n_components, self.n_features))
        return stats

    def _accumulate_posteriors(self, stats, X, posteriors, data):
        """Posterior sums (n_components,) and posterior-weighted count sums
        (n_components, n_features)."""
        if "l" in self.params:
            stats["post"] += posteriors.sum(axis=0)
            stats["obs"] += posteriors.T @ X

    def _priors(self):
        """(alpha, beta): lambdas_prior and lambdas_weight as (n_components, n_features)."""
        n, d = self.n_components, self.n_features
        out = []
        for name in ("lambdas_prior", "lambdas_weight"):
            arr = np.asarray(V._real_array(name, getattr(self, name)), dtype=np.float64)
            if arr.shape == (n,):
                arr = arr[:, None]  # one value per state (hmmlearn's documented shape)
            try:
                arr = np.broadcast_to(arr, (n, d))
            except ValueError:
                raise ParameterError(
                    f"{name} must be a number or an array of shape (n_components,) = ({n},) "
                    f"or (n_components, n_features) = ({n}, {d}), got "
                    f"{V._shape_str(arr.shape)}") from None
            if not np.all(np.isfinite(arr) & (arr >= 0)):
                raise ParameterError(f"{name} must be finite and >= 0")
            out.append(arr)
        return out

    def _do_mstep(self, stats):
        super()._do_mstep(stats)
        if "l" not in self.params:
            return
        alpha, beta = self._priors()
        post = stats["post"]
        lambdas = np.array(self._lambdas)
        seen = post > 0  # a state never visited keeps its rates
        # the posterior mode under the Gamma prior lambda**alpha exp(-beta lambda), with
        # each state's own expected visits (hmmlearn uses all states' total here, which is
        # no MAP when priors are set and lets EM's objective fall; equal without priors)
        lambdas[seen] = (alpha[seen] + stats["obs"][seen]) / (beta[seen] + post[seen, None])
        self._set_fitted("lambdas_", lambdas)

    def _log_prior(self):
        """Log-density, up to a constant, of the Gamma priors on the fitted rates:
        sum over positive rates of alpha log lambda - beta lambda (0 by default)."""
        total = super()._log_prior()
        if "l" not in self.params:
            return total
        alpha, beta = self._priors()
        lam = self._lambdas
        pos = lam > 0
        return total + float(np.sum(alpha[pos] * np.log(lam[pos]) - beta[pos] * lam[pos]))
