"""MultinomialHMM: emissions that are vectors of counts over n_features categories.

State j emits frame x (n_features non-negative whole numbers summing to n = sum_m x_m)
with the multinomial probability

    P(x | j) = n! / prod_m x_m!  *  prod_m p_jm ** x_m,    p_j = emissionprob_[j],

so the log-emissions of all frames and states are one matrix product plus a per-frame
constant: X @ log(emissionprob_).T + log n! - sum_m log x_m!. A zero probability is
legal (0 log 0 = 0): a state with p_jm = 0 cannot emit a frame with x_m > 0.

hmmlearn's semantics (``hmmlearn.hmm.MultinomialHMM``, 0.3): every frame is scored
with its own total n (the multinomial with n trials); ``n_trials`` is the number of
trials per frame that fitting checks the data against (or sets from it) and sampling
draws with. A CategoricalHMM is the special case n_trials = 1 with one-hot frames.
"""

import numpy as np
from scipy import special

from . import _compat, _fit, _kernel_inputs, _priors
from . import _validation as V
from ._continuous import ContinuousHMM
from ._errors import HMMInputError, ParameterError
from ._kmeans import kmeans_centres


class MultinomialDensity:
    """Kernel inputs for multinomial emissions (built once per parameter set).

    Parameters
    ----------
    emissionprob : ndarray of shape (n_components, n_features)
        Validated probability rows.
    """

    __slots__ = ("log_p_t", "zeros_t")

    def __init__(self, emissionprob):
        zeros = emissionprob == 0.0
        with np.errstate(divide="ignore"):
            self.log_p_t = np.ascontiguousarray(np.where(zeros, 0.0, np.log(emissionprob)).T)
        # (M, N) 1.0 where state j cannot emit category m; None when every p > 0
        self.zeros_t = np.ascontiguousarray(zeros.T, dtype=np.float64) if zeros.any() else None

    def log_densities(self, X, n_threads=1, log_coef=None):
        """(T, N) log P(x_t | state j) for validated counts X (T, M), float32/float64.

        ``log_coef``: the frames' log n! - sum log x! when already computed (fitting
        reuses it across iterations)."""
        X = np.asarray(X, dtype=np.float64)
        out = X @ self.log_p_t
        out += (log_multinomial_coef(X) if log_coef is None else log_coef)[:, None]
        if self.zeros_t is not None:
            out[(X > 0) @ self.zeros_t > 0] = -np.inf
        return out


def log_multinomial_coef(X):
    """(T,) log n_t! - sum_m log x_tm! of count frames X (T, M)."""
    X = np.asarray(X, dtype=np.float64)
    return special.gammaln(X.sum(axis=1) + 1.0) - special.gammaln(X + 1.0).sum(axis=1)


def check_n_trials(value):
    """``n_trials`` as None, a non-negative int or a 1-D int64 array (one per frame)."""
    if value is None:
        return None
    arr = V._real_array("n_trials", value, "a non-negative integer, an array of them or None")
    if arr.ndim > 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0) \
            or np.any(np.floor(arr) != arr):
        raise ParameterError(f"n_trials must be a non-negative integer (trials per frame), "
                             f"an array of them (one per frame) or None, got {value!r:.60}")
    return int(arr) if arr.ndim == 0 else arr.astype(np.int64)


class MultinomialHMM(ContinuousHMM):
    """Hidden Markov model with multinomial emissions (hmmlearn's ``MultinomialHMM``).

    Parameters
    ----------
    n_components : int
        Number of states N.
    n_trials : int, array of int or None
        Trials per frame (each frame's counts sum to it). None: set by fitting from the
        data's row totals (an int when they are all equal, else one per frame, as
        hmmlearn does). Fitting checks the data against it; ``sample`` draws with it
        and needs a single value. Scoring uses each frame's own total, as hmmlearn.
    startprob_prior, transmat_prior : float or array
        Dirichlet priors (hmmlearn's convention: 1.0 adds nothing).
    algorithm, random_state, n_iter, tol, verbose, implementation, n_init, n_threads
        See :class:`hmmfast.BaseHMM`.
    params, init_params : str
        Letters "s" startprob_, "t" transmat_, "e" emissionprob_.
    emissionprob_prior : float or array
        Dirichlet prior on each state's category probabilities (1.0 adds nothing;
        hmmfast addition, as CategoricalHMM's).
    missing : {"raise", "marginalize"}
        "marginalize": a row of X that is entirely NaN is a missing frame (no evidence).

    Attributes
    ----------
    emissionprob_ : ndarray of shape (n_components, n_features)
        Category probabilities of every state; rows sum to 1 (read-only).
    n_features : int
        Number of categories M.

    Notes
    -----
    Observations X, of shape (n_samples, n_features), are counts: non-negative whole
    numbers (integers, or floats such as float32 used without a copy). A negative or
    fractional value raises ``HMMInputError`` naming its row.

    Initialisation ("e" in ``init_params``): half the k-means++ centres of the frames'
    proportions x / n (so states start with different category mixes), half the
    categories' overall frequency. The M-step is hmmlearn's: expected counts per state
    and category, normalised (with ``emissionprob_prior`` - 1 added first).
    """

    _X_what = "non-negative integer counts"

    def __init__(self, n_components=1, n_trials=None, startprob_prior=1.0, transmat_prior=1.0,
                 algorithm="viterbi", random_state=None, n_iter=10, tol=1e-2, verbose=False,
                 params="ste", init_params="ste", implementation="scaling", *,
                 emissionprob_prior=1.0, missing="raise", n_init=1, n_threads=None):
        super().__init__(
            n_components, startprob_prior, transmat_prior, algorithm=algorithm,
            random_state=random_state, n_iter=n_iter, tol=tol, verbose=verbose,
            params=params, init_params=init_params, implementation=implementation,
            n_init=n_init, n_threads=n_threads)
        self.n_trials = n_trials
        self.emissionprob_prior = emissionprob_prior
        self.missing = missing

    # ---------------------------------------------------------------- parameters

    @property
    def emissionprob_(self):
        """ndarray of shape (n_components, n_features): P(category | state) (read-only)."""
        try:
            return self._emissionprob
        except AttributeError:
            raise AttributeError("emissionprob_ is not set: fit the model or assign it") from None

    @emissionprob_.setter
    def emissionprob_(self, value):
        n = self._n()
        shape = np.shape(value)
        if len(shape) != 2:
            raise ParameterError(f"emissionprob_ must have shape (n_components, n_features) "
                                 f"= ({n}, M), got {V._shape_str(shape)}")
        self._emissionprob = V.stochastic_matrix("emissionprob_", value, n, shape[1],
                                                 "n_features")
        self.n_features = shape[1]

    def _param_shapes(self, n):
        shapes = super()._param_shapes(n)
        shapes["emissionprob_"] = (n, getattr(self, "n_features", None))
        return shapes

    def _sizes_str(self):
        return f"{super()._sizes_str()}, n_features={getattr(self, 'n_features', None)}"

    def _compile_density(self):
        return MultinomialDensity(self._emissionprob)

    def _observation_kind(self):
        return "counts"

    def _check_values(self, frames):
        """Refuse what a multinomial cannot emit: negative or fractional counts."""
        self._check_counts(frames)

    def _single_n_trials(self):
        """The one number of trials ``sample`` draws with, or ParameterError."""
        n_trials = check_n_trials(self.n_trials)
        values = None if n_trials is None else np.unique(n_trials)
        if values is None or values.size != 1:
            raise ParameterError(
                "For sampling, a single n_trials must be given (got "
                f"{'None' if values is None else f'{values.size} different values'}); "
                "set model.n_trials to an int")
        return int(values[0])

    def _emission_moments(self):
        """Each state's mean count and standard deviation per category, n p and
        sqrt(n p (1 - p)); None unless n_trials is a single number."""
        try:
            n = self._single_n_trials()
        except ParameterError:
            return None
        p = np.asarray(self.emissionprob_)
        return n * p, np.sqrt(n * p * (1.0 - p))

    def _get_n_fit_scalars_per_param(self):
        counts = super()._get_n_fit_scalars_per_param()
        counts["e"] = self.n_components * (self.n_features - 1)
        return counts

    def _sample_emissions(self, c, states, rng):
        """(n, n_features) integer counts: one multinomial draw of n_trials per frame."""
        n = self._single_n_trials()
        p = c.params["emissionprob_"]
        out = np.empty((len(states), p.shape[1]), dtype=np.int64)
        for j in np.unique(states):
            rows = states == j
            out[rows] = rng.multinomial(n, np.asarray(p[j]), size=int(rows.sum()))
        return out

    # ---------------------------------------------------------------- fitting

    _fast_family = True  # statistics from the E-step kernel's posteriors

    def _check_and_set_n_features(self, X):
        """hmmlearn's hook (it also sets n_trials): X of shape (n_samples, n_features)
        holds non-negative whole counts whose row totals equal ``n_trials``, which is
        set from them when None."""
        arr = V._real_array("X", X)
        _compat.check_n_features(self, arr)
        if arr.dtype.kind not in "iuf" or not np.all(np.isfinite(arr)) or np.any(arr < 0) \
                or np.any(np.floor(arr) != arr):
            raise HMMInputError("Symbol counts should be nonnegative integers")
        totals = arr.sum(axis=1).astype(np.int64)
        n_trials = check_n_trials(self.n_trials)
        if n_trials is None:
            same = totals.size and np.all(totals == totals[0])
            self.n_trials = np.int64(totals[0]) if same else totals
            return
        if np.ndim(n_trials) == 1 and n_trials.shape != totals.shape:
            raise HMMInputError(f"n_trials holds {n_trials.shape[0]} values (one per frame) "
                                f"but X has {totals.shape[0]} frames")
        bad = totals != n_trials
        if np.any(bad):
            t = int(np.argmax(bad))
            want = n_trials if np.ndim(n_trials) == 0 else n_trials[t]
            raise HMMInputError(f"Total count for each sample should add up to the number "
                                f"of trials: X[{t}] sums to {totals[t]}, n_trials is {want}",
                                position=t)

    def _init(self, X, lengths=None):
        """Initialise the parameters named in ``init_params`` or not set yet (see the
        class Notes); checks X against ``n_trials`` (or sets it) first."""
        super()._init(X, lengths)
        if self._needs_init("e", "emissionprob_"):
            X = np.asarray(X, dtype=np.float64)
            totals = X.sum(axis=1)
            seen = totals > 0
            m = X.shape[1]
            freq = X.sum(axis=0)
            freq = freq / freq.sum() if freq.sum() > 0 else np.full(m, 1.0 / m)
            if np.any(seen):
                shares = X[seen] / totals[seen, None]
                centres = kmeans_centres(shares, self.n_components, self._init_random_state())
                centres = np.maximum(centres, 0.0)
                centres /= np.where(centres.sum(axis=1) > 0, centres.sum(axis=1), 1.0)[:, None]
            else:
                centres = np.tile(freq, (self.n_components, 1))
            self.emissionprob_ = 0.5 * centres + 0.5 * freq

    def _init_letters(self):
        return [*super()._init_letters(), ("e", "emissionprob_")]

    def _estep_frames(self, c, data):
        """The E-step's frames, the frames' multinomial coefficients computed once per
        fit (data.cache) rather than once per iteration."""
        coef = data.cache.get("log_multinomial_coef")
        if coef is None:
            coef = data.cache["log_multinomial_coef"] = log_multinomial_coef(data.X)
        log_em = c.density.log_densities(data.X, c.n_threads, coef)
        missing = data.cache.get("missing")
        if missing is not None:
            log_em[missing] = 0.0
        if data.labels is not None:
            log_em = _fit.mask_labels(log_em, data.labels)
        return _kernel_inputs.emission(log_em, c.scaling, c.n_threads), None

    def _initialize_sufficient_statistics(self):
        stats = super()._initialize_sufficient_statistics()
        stats["obs"] = np.zeros((self.n_components, self.n_features))
        return stats

    def _accumulate_posteriors(self, stats, X, posteriors, data):
        """Expected counts per state and category: posteriors.T @ X."""
        if "e" in self.params:
            stats["obs"] += posteriors.T @ np.asarray(X, dtype=np.float64)

    def _do_mstep(self, stats):
        super()._do_mstep(stats)
        if "e" in self.params:
            prior = _priors.prior(self, "emissionprob_prior", self.emissionprob_.shape)
            self._set_fitted("emissionprob_", _priors.map_estimate(
                stats["obs"], prior, self.emissionprob_, False))

    def _log_prior(self):
        total = super()._log_prior()
        if "e" in self.params:
            total += _priors.dirichlet_log_density(
                self.emissionprob_, _priors.prior(self, "emissionprob_prior",
                                                  self.emissionprob_.shape))
        return total
