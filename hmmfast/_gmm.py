"""GMMHMM: Gaussian-mixture emissions (hmmlearn's ``GMMHMM``).

State j emits from a mixture of ``n_mix`` Gaussian components k with weights
``weights_[j, k]``, means ``means_[j, k]`` and covariances ``covars_`` in hmmlearn's
compact per-type form (one matrix per state shared by its components for "tied").

The emission log-likelihood of state j is logsumexp_k (log w_jk + log N(x | mu_jk,
Sigma_jk)); the N * K component densities are computed in one kernel call on a flat list
of components (_covariance.DensityParams) and reduced per state here.

Fitting follows hmmlearn's statistics and M-step exactly (so k iterations match it),
including its quirk of centring the covariance statistics at the means of the E-step;
what differs is written in :class:`GMMHMM`'s Notes.
"""

import numpy as np

from . import _covariance as C
from . import _fit, _kernel_inputs, _moments, _priors
from . import _validation as V
from ._continuous import ContinuousHMM
from ._errors import ParameterError
from ._gaussian import weighted_frames
from ._kmeans import kmeans_centres, nearest, state_centres
from ._readonly import freeze
from ._mixture import (BLOCK, MixtureDensity, compact_shape, flat_components, mixture_moments,
                       mixture_reduce, validate_covars)


class GMMHMM(ContinuousHMM):
    """Hidden Markov model with Gaussian-mixture emissions (hmmlearn's ``GMMHMM``).

    Parameters
    ----------
    n_components : int
        Number of states N.
    n_mix : int
        Number of mixture components K per state.
    min_covar : float
        Floor on the variances (and on the eigenvalues of full/tied matrices) after every
        M-step; keeps degenerate data finite.
    startprob_prior, transmat_prior : float or array
        Dirichlet priors (hmmlearn's convention: 1.0 adds nothing).
    weights_prior : float or array broadcastable to (n_components, n_mix)
        Dirichlet prior on each state's mixture weights (>= 1; 1.0 adds nothing).
    means_prior, means_weight : float or array
        Normal prior on the means: mean (broadcast to (n_components, n_mix, n_features))
        and precision scale (>= 0, broadcast to (n_components, n_mix); 0: none).
    covars_prior, covars_weight : float, array or None
        hmmlearn's covariance prior: for "spherical"/"diag" the inverse-gamma shape alpha
        (``covars_prior``) and scale beta (``covars_weight``); for "full"/"tied" the
        inverse-Wishart scale matrix Psi (``covars_prior``) and degrees of freedom nu
        (``covars_weight``). None takes hmmlearn's defaults, which make the M-step the
        maximum-likelihood one except for "spherical" (see Notes).
    algorithm, random_state, n_iter, tol, verbose, implementation, n_init, n_threads
        See :class:`hmmfast.BaseHMM`.
    covariance_type : {"diag", "spherical", "full", "tied"}
        Per component: one variance, a variance per feature, a full matrix; "tied": one
        full matrix per state shared by its components (as in hmmlearn's GMMHMM).
    params, init_params : str
        Letters "s" startprob_, "t" transmat_, "m" means_, "c" covars_, "w" weights_.
    missing : {"raise", "marginalize"}
        "marginalize": a row of X that is entirely NaN is a missing frame (no evidence).

    Attributes
    ----------
    weights_ : ndarray of shape (n_components, n_mix)
        Mixture weights; each row sums to 1 (zeros allowed).
    means_ : ndarray of shape (n_components, n_mix, n_features)
    covars_ : ndarray
        Compact, as hmmlearn stores it: (n_components, n_mix) "spherical",
        (n_components, n_mix, n_features) "diag", (n_components, n_mix, n_features,
        n_features) "full", (n_components, n_features, n_features) "tied".
    n_features : int

    Notes
    -----
    Initialisation (not hmmlearn's, which calls scikit-learn): k-means on X for the
    states (greedy k-means++ seeding, 10 restarts, seeded from ``random_state``:
    :mod:`hmmfast._kmeans`), then k-means on each state's frames for its components; a
    state with fewer distinct frames than ``n_mix`` draws its component means from
    N(state centre, data covariance). With known states (``fit(X, states=...)``) a
    labelled state's centre is the mean of its labelled frames, which stay its own;
    k-means places only the states without labels. Weights uniform; covariances from
    the data covariance plus ``min_covar``.

    The M-step is hmmlearn's, covariance statistics centred at the E-step's means, with
    three safeguards: a component with zero expected occupancy keeps its previous mean,
    and a thin one (posterior mass below 1e-3 of the mean mass per component; "tied": a
    thin state) or one with a non-positive denominator keeps its previous covariance;
    weights are max(counts + alpha - 1, 0), normalised (``weights_prior`` >= 1);
    results are floored at ``min_covar``. The full/tied ``covars_prior`` enters by its
    symmetric part. ``fit_supervised`` is EM with every state known (the components
    stay hidden): ``fit(X, lengths, states=states)`` from the same start.

    EM's objective (``monitor_.history``) is the log-likelihood plus the log-density of
    the prior whose maximiser hmmlearn's M-step computes (up to a constant):
    Dirichlet(weights_prior) on the weights; per component, with d = mu - means_prior
    and lambda = means_weight,
    "diag"       sum_f -(alpha + 3/2) log v_f - (beta + lambda d_f^2 / 2) / v_f,
    "spherical"  -(D/2 + alpha + 1) log v - (beta + lambda |d|^2 / 2) / v,
    "full"       -(nu + D + 2)/2 log|S| - tr(S^-1 (Psi + lambda d d^T)) / 2,
    and per state for "tied" -(K + nu + D + 1)/2 log|S| - tr(S^-1 (Psi + sum_k lambda_k
    d_k d_k^T)) / 2. hmmlearn's defaults make it 0, except "spherical" whose default
    alpha = -(n_mix + 2)/2 leaves -(D - K)/2 log v per component: hmmlearn's spherical
    update divides by D (N_jk + 1) - K, not D N_jk, and EM maximises that penalised
    likelihood (the log-likelihood alone may then decrease).
    """

    def __init__(self, n_components=1, n_mix=1, min_covar=1e-3, startprob_prior=1.0,
                 transmat_prior=1.0, weights_prior=1.0, means_prior=0.0, means_weight=0.0,
                 covars_prior=None, covars_weight=None, algorithm="viterbi",
                 covariance_type="diag", random_state=None, n_iter=10, tol=1e-2,
                 verbose=False, params="stmcw", init_params="stmcw",
                 implementation="scaling", *, missing="raise", n_init=1, n_threads=None):
        super().__init__(
            n_components, startprob_prior, transmat_prior, algorithm=algorithm,
            random_state=random_state, n_iter=n_iter, tol=tol, verbose=verbose,
            params=params, init_params=init_params, implementation=implementation,
            n_init=n_init, n_threads=n_threads)
        self.n_mix = n_mix
        self.min_covar = min_covar
        self.weights_prior = weights_prior
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.covariance_type = covariance_type
        self.missing = missing

    # ---------------------------------------------------------------- parameters

    def _k(self):
        return V.check_n("n_mix", self.n_mix)

    @property
    def weights_(self):
        """ndarray of shape (n_components, n_mix): mixture weights (read-only)."""
        try:
            return self._weights
        except AttributeError:
            raise AttributeError("weights_ is not set: fit the model or assign it") from None

    @weights_.setter
    def weights_(self, value):
        self._weights = V.stochastic_matrix("weights_", value, self._n(), self._k(),
                                            cols_name="n_mix")

    @property
    def means_(self):
        """ndarray of shape (n_components, n_mix, n_features): component means (read-only)."""
        try:
            return self._means
        except AttributeError:
            raise AttributeError("means_ is not set: fit the model or assign it") from None

    @means_.setter
    def means_(self, value):
        n, k = self._n(), self._k()
        shape = np.shape(value)
        expected = f"(n_components, n_mix, n_features) = ({n}, {k}, D)"
        if len(shape) != 3:
            raise ParameterError(f"means_ must have shape {expected}, got {V._shape_str(shape)}")
        arr = V.as_float_array("means_", value, (n, k, shape[2]), expected)
        self._means = freeze(arr, "means_")
        self.n_features = shape[2]

    @property
    def covars_(self):
        """ndarray: compact covariances (shape per ``covariance_type``, see the class)."""
        try:
            return self._covars
        except AttributeError:
            raise AttributeError("covars_ is not set: fit the model or assign it") from None

    @covars_.setter
    def covars_(self, value):
        covariance_type = C.check_type(self.covariance_type)
        d = getattr(self, "n_features", None)
        if d is None:
            if covariance_type == "spherical":
                raise ParameterError("assign means_ before spherical covars_ (n_features "
                                     "is not known yet)")
            shape = np.shape(value)
            d = shape[-1] if shape else 0
        self._covars = validate_covars(value, covariance_type, self._n(), self._k(), d)

    @property
    def _covars_(self):
        """hmmlearn's stored form, the same compact array as ``covars_`` (read-only)."""
        return self.covars_

    @_covars_.setter
    def _covars_(self, value):
        C.refuse_stored_form()

    def _param_shapes(self, n):
        shapes = super()._param_shapes(n)
        k, d = self._k(), getattr(self, "n_features", None)
        shapes["weights_"] = (n, k)
        shapes["means_"] = (n, k, d)
        shapes["covars_"] = compact_shape(self.covariance_type, n, k, d)
        return shapes

    def _sizes_str(self):
        return (f"{super()._sizes_str()}, n_mix={self.n_mix}, "
                f"n_features={getattr(self, 'n_features', None)}")

    def _compile_density(self):
        return MixtureDensity(self._weights, self._means, self._covars, self.covariance_type)

    def _get_n_fit_scalars_per_param(self):
        counts = super()._get_n_fit_scalars_per_param()
        n, k, d = self.n_components, self.n_mix, self.n_features
        counts["m"] = n * k * d
        counts["c"] = {"spherical": n * k, "diag": n * k * d, "full": n * k * d * (d + 1) // 2,
                       "tied": n * d * (d + 1) // 2}[self.covariance_type]
        counts["w"] = n * (k - 1)  # hmmlearn counts k - 1 (one state's worth)
        return counts

    def _sample_emissions(self, c, states, rng):
        """Per frame: a component drawn by the state's weights, then its Gaussian."""
        k = c.density.shape[1]
        cdf = np.cumsum(c.params["weights_"], axis=1)[states]
        u = rng.random(len(states))
        comp = np.minimum((cdf <= u[:, None]).sum(axis=1), k - 1)
        flat = flat_components(c.params["means_"], c.params["covars_"], self.covariance_type)
        return C.sample(rng, *flat[:2], flat[2], states * k + comp)

    def _emission_moments(self):
        """Each state's emission mean and standard deviation per feature (of the mixture)."""
        return mixture_moments(np.asarray(self.weights_), np.asarray(self.means_),
                               np.asarray(self.covars_), self.covariance_type)

    # ---------------------------------------------------------------- priors

    def _priors(self):
        """hmmlearn's priors, validated and broadcast (hmmlearn's ``_init_covar_priors``
        defaults and ``_fix_priors_shape``; the constructor parameters are not touched):
        dict with weights (Dirichlet alpha (N, K) or None when flat), means_prior
        (N, K, D), means_weight (N, K), covars_prior and covars_weight."""
        n, k, d = self._n(), self._k(), self.n_features
        ct = C.check_type(self.covariance_type)

        default_prior = {"full": 0.0, "tied": 0.0, "diag": -1.5,
                         "spherical": -(k + 2.0) / 2.0}[ct]
        default_weight = {"full": -(1.0 + d + 1.0), "tied": -(k + d + 1.0), "diag": 0.0,
                          "spherical": 0.0}[ct]
        cp = default_prior if self.covars_prior is None else self.covars_prior
        cw = default_weight if self.covars_weight is None else self.covars_weight
        cp_shape, cw_shape = {"full": ((n, k, d, d), (n, k)), "tied": ((n, d, d), (n,)),
                              "diag": ((n, k, d), (n, k, d)),
                              "spherical": ((n, k), (n, k))}[ct]
        means_weight = _priors.check_precision_weight("means_weight", self.means_weight, (n, k))
        covars_prior = _priors.check_real("covars_prior", cp, cp_shape)
        if ct in ("full", "tied"):
            covars_prior = 0.5 * (covars_prior + np.swapaxes(covars_prior, -1, -2))
        return {"weights": _priors.prior(self, "weights_prior", (n, k)),
                "means_prior": _priors.check_real("means_prior", self.means_prior, (n, k, d)),
                "means_weight": means_weight, "covars_prior": covars_prior,
                "covars_weight": _priors.check_real("covars_weight", cw, cw_shape)}

    def _log_prior(self):
        """Log-density (up to a constant) of the prior whose maximiser hmmlearn's M-step
        computes, for the parameters in ``params``; 0 where flat (see the class Notes)."""
        total = super()._log_prior()
        fit_m, fit_c = "m" in self.params, "c" in self.params
        if not ("w" in self.params or fit_m or fit_c):
            return total
        pr = self._priors()
        if "w" in self.params:
            total += _priors.dirichlet_log_density(self._weights, pr["weights"])
        if not (fit_m or fit_c):
            return total
        ct, d, k = self.covariance_type, self.n_features, self.n_mix
        lam = pr["means_weight"]
        diff = self._means - pr["means_prior"]
        alpha, beta = pr["covars_prior"], pr["covars_weight"]
        cov = self._covars
        c = 1.0 if fit_c else 0.0  # the covariance prior's own terms count when fitted
        if ct == "diag":
            num = c * beta + lam[:, :, None] * diff ** 2 / 2
            return total + float(np.sum(-c * (alpha + 1.5) * np.log(cov) - num / cov))
        if ct == "spherical":
            num = c * beta + lam * np.einsum("nkd,nkd->nk", diff, diff) / 2
            return total + float(np.sum(-c * (d / 2 + alpha + 1) * np.log(cov) - num / cov))
        # full and tied: alpha is the scale matrix Psi, beta the degrees of freedom nu
        scatter = lam[:, :, None, None] * np.einsum("nki,nkj->nkij", diff, diff)
        if ct == "tied":
            scatter, coef = scatter.sum(axis=1), k + beta + d + 1
        else:
            coef = beta + d + 2
        scatter = scatter + c * alpha
        logdet = np.linalg.slogdet(cov)[1]
        trace = np.trace(np.linalg.solve(cov, scatter), axis1=-2, axis2=-1)
        return total + float(np.sum(-0.5 * c * coef * logdet - 0.5 * trace))

    # ---------------------------------------------------------------- fitting

    def _init(self, X, lengths=None):
        """Initialise the parameters named in ``init_params`` or not set yet (see Notes)."""
        super()._init(X, lengths)
        X = np.asarray(X, dtype=np.float64)
        C.check_type(self.covariance_type)
        n, k = self._n(), self._k()
        rng = self._init_random_state()
        cov = C.data_covariance(X, self.min_covar)
        if self._needs_init("m", "means_"):
            self.means_ = self._init_means(X, n, k, cov, rng, self._init_labels())
        if self._needs_init("w", "weights_"):
            self.weights_ = np.full((n, k), 1.0 / k)
        if self._needs_init("c", "covars_"):
            self.covars_ = {"spherical": lambda: np.full((n, k), np.mean(np.diag(cov))),
                            "diag": lambda: np.tile(np.diag(cov), (n, k, 1)),
                            "full": lambda: np.tile(cov, (n, k, 1, 1)),
                            "tied": lambda: np.tile(cov, (n, 1, 1))}[self.covariance_type]()

    @staticmethod
    def _init_means(X, n, k, cov, rng, known=None):
        """(n, k, D) means: k-means over X for the states (a labelled state's centre is
        the mean of its labelled frames, and those frames are its own), then within each
        state's frames."""
        centres = state_centres(X, n, rng, known)
        labels = nearest(X, centres)
        if known is not None:
            labels[known >= 0] = known[known >= 0]
        chol = np.linalg.cholesky(cov)
        means = np.empty((n, k, X.shape[1]))
        for j in range(n):
            frames = X[labels == j]
            if len(frames) >= k and len(np.unique(frames, axis=0)) >= k:
                means[j] = kmeans_centres(frames, k, rng)
            else:  # too few points to split: spread around the state's centre
                means[j] = centres[j] + rng.standard_normal((k, X.shape[1])) @ chol.T
        return means

    def _init_letters(self):
        return [*super()._init_letters(), ("w", "weights_"), ("m", "means_"), ("c", "covars_")]

    # the E-step kernel's posteriors feed _accumulate_posteriors (the responsibilities
    # come from _estep_frames' density pass); without this flag the hook it defines below
    # sent every fit through the per-sequence generic E-step (issue 29: 6x -> see README)
    _fast_family = True

    def _supervised_needs_em(self):
        """The components are hidden also when the states are known: fit_supervised is
        EM within each state's mixture (hmmlearn's M-step also centres the covariance
        statistics at the E-step's means, so even one component needs a second pass)."""
        return True

    def _initialize_sufficient_statistics(self):
        stats = super()._initialize_sufficient_statistics()
        n, k, d = self.n_components, self.n_mix, self.n_features
        stats["post_mix_sum"] = np.zeros((n, k))
        stats["post_sum"] = np.zeros(n)
        if "m" in self.params:
            stats["m_n"] = np.zeros((n, k, d))  # hmmlearn's without lambda * mu0
        if "c" in self.params:
            stats["c_n"] = np.zeros_like(self._covars)
        return stats

    def _accumulate_posteriors(self, stats, X, posteriors, data):
        """hmmlearn's statistics from frames X (T, D) and state posteriors (T, N): the
        component responsibilities within each state, their sums, the weighted sums of
        frames and the scatter around the current means (hmmlearn's ``c_n``), computed
        in blocks of frames so the (T, N, K) intermediates stay bounded."""
        c = self._cache or self._prepare()
        posteriors = np.asarray(posteriors, dtype=np.float64)
        stats["post_sum"] += posteriors.sum(axis=0)
        resp = None if data is None else data.cache.pop("responsibilities", None)
        if resp is not None:  # computed with these parameters by _estep_frames
            self._accumulate_block(stats, c, X, posteriors, resp)
            return
        for a in range(0, len(X), BLOCK):
            self._accumulate_block(stats, c, X[a:a + BLOCK], posteriors[a:a + BLOCK])

    def _estep_frames(self, c, data):
        """The E-step's frames; the component responsibilities computed on the way are
        kept for the statistics (same parameters, one density pass per iteration)."""
        log_em, resp = c.density.log_densities_and_responsibilities(data.X, c.n_threads)
        data.cache["responsibilities"] = resp
        missing = data.cache.get("missing")
        if missing is not None:
            log_em[missing] = 0.0
        if data.labels is not None:
            log_em = _fit.mask_labels(log_em, data.labels)
        return _kernel_inputs.emission(log_em, c.scaling, c.n_threads), None

    def _accumulate_block(self, stats, c, X, posteriors, resp=None):
        n, k = c.density.shape
        if resp is None:
            resp = mixture_reduce(c.density.component_log_densities(X, c.n_threads), True)[1]
        gamma = (posteriors[:, :, None] * resp).reshape(len(X), n * k)
        means = self._means.reshape(n * k, -1)
        ct = self.covariance_type
        if ct in ("spherical", "diag"):
            # one pass for the three sums (csrc/_moments.pyx); about the current means,
            # the second moment is hmmlearn's c_n (the scatter) exactly
            X = np.ascontiguousarray(X)
            s0, s1, s2 = _moments.weighted_moments(X, gamma, means, c.n_threads)
            stats["post_mix_sum"] += s0.reshape(n, k)
            if "m" in self.params:
                stats["m_n"] += weighted_frames(X, gamma, means, s0, s1).reshape(n, k, -1)
            if "c" in self.params:
                scatter = s2.reshape(n, k, -1)
                stats["c_n"] += scatter.sum(axis=2) if ct == "spherical" else scatter
            return
        stats["post_mix_sum"] += gamma.sum(axis=0).reshape(n, k)
        if "m" in self.params:
            stats["m_n"] += (gamma.T @ X).reshape(n, k, -1)
        if "c" not in self.params:
            return
        d = means.shape[1]
        scatter = np.zeros((n * k, d, d))
        for i in np.flatnonzero(gamma.any(axis=0)):
            centred = X - means[i]
            scatter[i] = (centred * gamma[:, i:i + 1]).T @ centred
        scatter = scatter.reshape(n, k, d, d)
        stats["c_n"] += scatter.sum(axis=1) if ct == "tied" else scatter

    def _do_mstep(self, stats):
        """hmmlearn's M-step (weights, means, covariances) with the safeguards of Notes."""
        super()._do_mstep(stats)
        pr = self._priors()
        occupancy = stats["post_mix_sum"]
        if "w" in self.params:
            self._set_fitted("weights_", _priors.map_estimate(occupancy, pr["weights"],
                                                           self._weights, False))
        means = self._means
        if "m" in self.params:
            lam = pr["means_weight"]
            denom = occupancy + lam
            ok = (occupancy > 0) & (denom > 0)
            means = np.array(means)
            means[ok] = ((lam[:, :, None] * pr["means_prior"] + stats["m_n"])[ok]
                         / denom[ok][:, None])
            if not np.all(np.isfinite(means)):
                raise ParameterError("internal: the M-step produced non-finite means")
            self._set_fitted("means_", means)
        if "c" in self.params:
            self._set_fitted("covars_", self._mstep_covars(stats, means, pr))

    def _mstep_covars(self, stats, means, pr):
        """hmmlearn's covariance update c_n / c_d, floored at min_covar; a thin
        component ("tied": a thin state, see ``_covariance.thin``) or one with c_d <= 0
        keeps its previous covariance."""
        ct, d, k = self.covariance_type, self.n_features, self.n_mix
        occupancy = stats["post_mix_sum"]
        lam = pr["means_weight"]
        diff = means - pr["means_prior"]
        alpha, beta = pr["covars_prior"], pr["covars_weight"]
        thin = C.thin(occupancy)
        if ct == "diag":
            c_n = lam[:, :, None] * diff ** 2 + 2 * beta + stats["c_n"]
            c_d = occupancy[:, :, None] + 1 + 2 * (alpha + 1)
            keep = thin[:, :, None] | (c_d <= 0)
        elif ct == "spherical":
            c_n = lam * np.einsum("nkd,nkd->nk", diff, diff) + 2 * beta + stats["c_n"]
            c_d = d * (occupancy + 1) + 2 * (alpha + 1)
            keep = thin | (c_d <= 0)
        else:
            outer = lam[:, :, None, None] * np.einsum("nki,nkj->nkij", diff, diff)
            if ct == "full":
                c_n = alpha + outer + stats["c_n"]
                c_d = occupancy + 1 + beta + d + 1
                keep = thin | (c_d <= 0)
            else:
                c_n = alpha + outer.sum(axis=1) + stats["c_n"]
                c_d = stats["post_sum"] + k + beta + d + 1
                keep = C.thin(stats["post_sum"]) | (c_d <= 0)
            c_d, keep = c_d[..., None, None], np.broadcast_to(keep[..., None, None], c_n.shape)
        cov = np.where(keep, self._covars, c_n / np.where(keep, 1.0, c_d))
        if ct in ("spherical", "diag"):
            cov = np.maximum(cov, C.check_min_covar(self.min_covar))
            if not np.all(np.isfinite(cov)):
                raise ParameterError("internal: the M-step produced non-finite covariances")
            return cov
        return C.floor_covariances(cov.reshape(-1, d, d), "full",
                                   self.min_covar).reshape(cov.shape)
