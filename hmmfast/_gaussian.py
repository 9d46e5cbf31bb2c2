"""GaussianHMM: Gaussian emissions with spherical, diagonal, full or tied covariances."""

import numpy as np

from . import _covariance as C
from . import _moments, _priors
from . import _validation as V
from ._continuous import ContinuousHMM
from ._errors import ParameterError
from ._kmeans import label_means, state_centres
from ._readonly import freeze

# the scatter about the M-step's means is moved from the one about the current means
# unless the move is this many times the result (~4 of 16 digits lost): then it is
# recomputed from the differences
MOVED_SCATTER_LOSS = 1e4
# ... and the weighted frames are s1 + s0 ref unless its terms exceed the result this many
# times (then they are summed directly)
MOVED_SUM_LOSS = 16.0


def distribute(cov, covariance_type, n):
    """The compact covariances of n states that all start from one (D, D) matrix."""
    if covariance_type == "spherical":
        return np.full(n, np.mean(np.diag(cov)))
    if covariance_type == "diag":
        return np.tile(np.diag(cov), (n, 1))
    if covariance_type == "full":
        return np.tile(cov, (n, 1, 1))
    return cov


def weighted_frames(X, posteriors, ref, s0, s1):
    """sum_t posteriors[t, j] X[t] (N, D) from the moments about ``ref``: s1 + s0 ref,
    exact to a few ulps of the result when ``ref`` is near the data's weighted means (the
    current means in EM); when it is far (a first M-step from arbitrary means), that sum
    cancels, and the frames are summed directly (one GEMM)."""
    moved = s0[:, None] * ref
    frames = s1 + moved
    if np.any(np.abs(s1) + np.abs(moved) > MOVED_SUM_LOSS * np.abs(frames)):
        frames = posteriors.T @ X
    return frames


def start_covariances(X, labels, covariance_type, n, min_covar):
    """Initial compact covariances: the data's covariance plus ``min_covar`` for every
    state, except a labelled state with more labelled frames than features, which
    starts from the covariance of those frames (plus ``min_covar``); "tied": the pooled
    within-state covariance of the labelled frames when there are more than features.

    ``labels``: intp (n_samples,) known states, -1 unknown, or None.
    """
    compact = np.array(distribute(C.data_covariance(X, min_covar), covariance_type, n))
    if labels is None:
        return compact
    d = X.shape[1]
    known = labels >= 0
    if covariance_type == "tied":
        if known.sum() <= d:
            return compact
        centred = X[known] - label_means(X, labels, n)[0][labels[known]]
        return centred.T @ centred / known.sum() + min_covar * np.eye(d)
    for j in range(n):
        frames = X[labels == j]
        if len(frames) > d:
            compact[j] = distribute(C.data_covariance(frames, min_covar), covariance_type, 1)[0]
    return compact


class GaussianHMM(ContinuousHMM):
    """Hidden Markov model with Gaussian emissions (hmmlearn's ``GaussianHMM``).

    Parameters
    ----------
    n_components : int
    covariance_type : {"diag", "spherical", "full", "tied"}
        One variance per state ("spherical"), per state and feature ("diag"), a full
        matrix per state ("full") or one full matrix for all states ("tied").
    min_covar : float
        Floor on the variances (and on the eigenvalues of full/tied matrices) after every
        M-step; keeps degenerate data (a constant feature, fewer frames than features, a
        state that collapses on a few frames) finite.
    startprob_prior, transmat_prior : float or array
        Dirichlet priors (hmmlearn's convention: 1.0 adds nothing).
    means_prior, means_weight : float or array
        Normal prior on the means: mean and weight (0: none).
    covars_prior, covars_weight : float or array
        Inverse-gamma ("spherical", "diag") or inverse-Wishart ("full", "tied") prior on
        the covariances, with hmmlearn's M-step (defaults: hmmlearn's, 1e-2 and 1).
    algorithm, random_state, n_iter, tol, verbose, implementation, n_init, n_threads
        See :class:`hmmfast.BaseHMM`.
    params, init_params : str
        Letters "s" startprob_, "t" transmat_, "m" means_, "c" covars_.
    missing : {"raise", "marginalize"}
        "marginalize": a row of X that is entirely NaN is a missing frame (no evidence).

    Attributes
    ----------
    means_ : ndarray of shape (n_components, n_features)
    covars_ : ndarray of shape (n_components, n_features, n_features)
        Every state's full covariance matrix (assign the compact per-type form:
        (n_components,), (n_components, n_features), (n_components, n_features,
        n_features) or (n_features, n_features)). Unlike hmmlearn, the "spherical"
        getter returns each state's own covariance.
    n_features : int

    Notes
    -----
    Initialisation: means by k-means (greedy k-means++ seeding, Lloyd's iterations,
    the best of 10 restarts, seeded from ``random_state``, on at most 20,000 randomly
    chosen frames: :mod:`hmmfast._kmeans`), covariances from the data's covariance plus
    ``min_covar``. With known states (``fit(X, states=...)``) a labelled state starts
    from its labelled frames: their mean, and their covariance plus ``min_covar`` when
    there are more of them than features ("tied": the pooled within-state covariance);
    k-means places only the states without labels.

    The M-step is hmmlearn's, computed with centred sums (exact for data far from the
    origin); EM's objective adds the priors' log-density to the log-likelihood. A thin
    state (posterior mass below 1e-3 of the mean mass per state) keeps its previous
    covariance: its update would divide ``covars_prior`` by almost nothing. Results
    are floored at ``min_covar`` (variances; eigenvalues of full/tied matrices).
    The priors are validated as GMMHMM's are (finite, broadcastable to hmmlearn's
    shapes, ``means_weight`` >= 0) and ``covars_prior`` >= 0 for "spherical"/"diag".
    """

    def __init__(self, n_components=1, covariance_type="diag", min_covar=1e-3,
                 startprob_prior=1.0, transmat_prior=1.0, means_prior=0, means_weight=0,
                 covars_prior=1e-2, covars_weight=1, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-2, verbose=False, params="stmc", init_params="stmc",
                 implementation="scaling", *, missing="raise", n_init=1, n_threads=None):
        super().__init__(
            n_components, startprob_prior, transmat_prior, algorithm=algorithm,
            random_state=random_state, n_iter=n_iter, tol=tol, verbose=verbose,
            params=params, init_params=init_params, implementation=implementation,
            n_init=n_init, n_threads=n_threads)
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.missing = missing

    # ---------------------------------------------------------------- parameters

    @property
    def means_(self):
        """ndarray of shape (n_components, n_features): the state means (read-only)."""
        try:
            return self._means
        except AttributeError:
            raise AttributeError("means_ is not set: fit the model or assign it") from None

    @means_.setter
    def means_(self, value):
        n = self._n()
        shape = np.shape(value)
        if len(shape) != 2:
            raise ParameterError(
                f"means_ must have shape (n_components, n_features) = ({n}, D), "
                f"got {V._shape_str(shape)}")
        arr = V.as_float_array("means_", value, (n, shape[1]),
                               f"(n_components, n_features) = ({n}, D)")
        self._means = freeze(arr, "means_")
        self.n_features = shape[1]

    @property
    def covars_(self):
        """ndarray of shape (n_components, n_features, n_features): each state's covariance."""
        try:
            compact = self._covars
        except AttributeError:
            raise AttributeError("covars_ is not set: fit the model or assign it") from None
        n, d = self._n(), self._covar_features(compact)
        if compact.shape != C.compact_shape(self.covariance_type, n, d):
            raise ParameterError(
                f"covars_ holds shape {compact.shape}, which does not fit "
                f"covariance_type={self.covariance_type!r} with n_components={n}: assign "
                "covars_ again")
        return freeze(C.to_full(compact, self.covariance_type, n, d), "covars_")

    @covars_.setter
    def covars_(self, value):
        n = self._n()
        covariance_type = C.check_type(self.covariance_type)
        if covariance_type == "spherical":
            value = C.spherical_column(value, n)
        d = getattr(self, "n_features", None)
        if d is None:
            shape = np.shape(value)
            d = {"spherical": None, "diag": shape[-1] if shape else None,
                 "full": shape[-1] if shape else None,
                 "tied": shape[-1] if shape else None}[covariance_type]
            if d is None:
                raise ParameterError("assign means_ before spherical covars_ (n_features "
                                     "is not known yet)")
        self._covars = C.validate("covars_", value, covariance_type, n, d)

    @property
    def _covars_(self):
        """hmmlearn's stored form of the covariances (the compact per-type shape that
        ``covars_`` takes), read-only: assign ``covars_`` to change them."""
        try:
            return self._covars
        except AttributeError:
            raise AttributeError("covars_ is not set: fit the model or assign it") from None

    @_covars_.setter
    def _covars_(self, value):
        C.refuse_stored_form()

    def _covar_features(self, compact):
        d = getattr(self, "n_features", None)
        if d is not None:
            return d
        return compact.shape[-1] if compact.ndim > 1 else 1

    def _param_shapes(self, n):
        shapes = super()._param_shapes(n)
        d = getattr(self, "n_features", None)
        shapes["means_"] = (n, d)
        shapes["covars_"] = (n, d, d)
        return shapes

    def _sizes_str(self):
        return f"{super()._sizes_str()}, n_features={getattr(self, 'n_features', None)}"

    def _compile_density(self):
        return C.DensityParams(self._means, self._covars, self.covariance_type)

    def _get_n_fit_scalars_per_param(self):
        counts = super()._get_n_fit_scalars_per_param()
        n, d = self.n_components, self.n_features
        counts["m"] = n * d
        counts["c"] = {"spherical": n, "diag": n * d, "full": n * d * (d + 1) // 2,
                       "tied": d * (d + 1) // 2}[self.covariance_type]
        return counts

    def _sample_emissions(self, c, states, rng):
        return C.sample(rng, c.params["means_"], self._covars, self.covariance_type, states)

    def _emission_moments(self):
        """Each state's emission mean and standard deviation per feature: ``means_`` and
        the square roots of the covariance diagonals."""
        return np.asarray(self.means_), np.sqrt(np.diagonal(self.covars_, axis1=1, axis2=2))

    # ---------------------------------------------------------------- fitting

    _fast_family = True  # statistics from the E-step kernel's posteriors

    def _init(self, X, lengths=None):
        """Initialise the parameters named in ``init_params`` or not set yet: means by
        k-means++ on X, covariances from X's covariance plus min_covar; with known
        states (``fit(states=...)``), a labelled state starts from its labelled frames
        (see :func:`hmmfast._kmeans.state_centres` and :func:`start_covariances`)."""
        super()._init(X, lengths)
        X = np.asarray(X, dtype=np.float64)
        C.check_type(self.covariance_type)
        rng = self._init_random_state()
        labels = self._init_labels()
        if self._needs_init("m", "means_"):
            self.means_ = state_centres(X, self.n_components, rng, labels)
        if self._needs_init("c", "covars_"):
            self.covars_ = start_covariances(X, labels, self.covariance_type,
                                             self.n_components, self.min_covar)

    def _init_letters(self):
        return [*super()._init_letters(), ("m", "means_"), ("c", "covars_")]

    def _initialize_sufficient_statistics(self):
        stats = super()._initialize_sufficient_statistics()
        n, d = self.n_components, self.n_features
        stats["post"] = np.zeros(n)
        stats["obs"] = np.zeros((n, d))
        stats["obs**2"] = np.zeros((n, d))
        if self.covariance_type in ("tied", "full"):
            stats["obs*obs.T"] = np.zeros((n, d, d))
        return stats

    def _accumulate_posteriors(self, stats, X, posteriors, data):
        """Posterior sums; with the whole training set (``data`` given) also the exact
        centred scatter around the means the M-step will produce."""
        if data is not None and self.covariance_type in ("spherical", "diag"):
            self._accumulate_moments(stats, X, posteriors)
            return
        stats["post"] += posteriors.sum(axis=0)
        stats["obs"] += posteriors.T @ X
        if "c" not in self.params:
            return
        if data is None:  # one sequence at a time (hmmlearn's hook): raw moments
            if self.covariance_type in ("spherical", "diag"):
                stats["obs**2"] += posteriors.T @ np.square(X, dtype=np.float64)
            else:
                stats["obs*obs.T"] += np.einsum("tj,tk,tl->jkl", posteriors, X, X)
            return
        means = self._mstep_means(stats)
        scatter = np.empty((self.n_components,) + means.shape[1:] * 2)
        for j in range(self.n_components):
            centred = X - means[j]
            scatter[j] = (centred * posteriors[:, j:j + 1]).T @ centred
        stats["scatter"] = scatter
        stats["scatter_means"] = means

    def _accumulate_moments(self, stats, X, posteriors):
        """Diagonal and spherical covariances: the three sums in one pass over X and the
        posteriors (csrc/_moments.pyx), the scatter moved from the current means to the
        M-step's; recomputed directly when that move would cost more than ~4 digits."""
        threads = self._cache.n_threads if self._cache else 1
        posteriors = np.ascontiguousarray(posteriors)
        ref = np.asarray(self.means_, dtype=np.float64)
        s0, s1, s2 = _moments.weighted_moments(X, posteriors, ref, threads)
        stats["post"] += s0
        stats["obs"] += weighted_frames(X, posteriors, ref, s0, s1)
        if "c" not in self.params:
            return
        means = self._mstep_means(stats)
        delta = means - ref
        shift = delta * (delta * s0[:, None] - 2.0 * s1)
        scatter = s2 + shift
        if np.any(np.abs(shift) > MOVED_SCATTER_LOSS * scatter):
            scatter = _moments.weighted_scatter(X, posteriors, means, threads)
        stats["scatter"] = scatter
        stats["scatter_means"] = means

    def _priors(self):
        """hmmlearn's priors validated and broadcast (as GMMHMM's, same messages): dict
        with means_prior (N, D), means_weight (N, 1) (>= 0), covars_prior ((N, D) for
        "spherical"/"diag", >= 0; the symmetric part of (N, D, D) "full", (D, D) "tied")
        and covars_weight ((N, D); (N,) "full"; () "tied")."""
        n, d = self._n(), self.n_features
        ct = C.check_type(self.covariance_type)
        cp_shape, cw_shape = {"spherical": ((n, d), (n, d)), "diag": ((n, d), (n, d)),
                              "full": ((n, d, d), (n,)), "tied": ((d, d), ())}[ct]
        covars_prior = _priors.check_real("covars_prior", self.covars_prior, cp_shape)
        if ct in ("spherical", "diag"):
            if np.any(covars_prior < 0):
                raise ParameterError("covars_prior must be >= 0 (an inverse-gamma scale: "
                                     "below 0 the posterior density is unbounded as a "
                                     "variance reaches 0)")
        else:
            covars_prior = 0.5 * (covars_prior + np.swapaxes(covars_prior, -1, -2))
        means_weight = _priors.check_precision_weight("means_weight", self.means_weight, (n,))
        return {"means_prior": _priors.check_real("means_prior", self.means_prior, (n, d)),
                "means_weight": means_weight[:, None], "covars_prior": covars_prior,
                "covars_weight": _priors.check_real("covars_weight", self.covars_weight,
                                                    cw_shape)}

    def _mstep_means(self, stats):
        """The means the M-step makes from ``stats`` (the current ones without "m")."""
        if "m" not in self.params:
            return np.asarray(self.means_)
        pr = self._priors()
        means_prior, w = pr["means_prior"], pr["means_weight"]
        denom = w + stats["post"][:, None]
        means = np.array(self.means_)
        ok = denom[:, 0] > 0  # a state never visited (and no prior) keeps its mean
        means[ok] = (w[ok] * means_prior[ok] + stats["obs"][ok]) / denom[ok]
        return means

    def _do_mstep(self, stats):
        super()._do_mstep(stats)
        means = self._mstep_means(stats)
        if "m" in self.params:
            self._set_means(means)
        if "c" in self.params:
            self._set_fitted("covars_", self._mstep_covars(stats, means))

    def _set_means(self, means):
        arr = np.ascontiguousarray(means, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ParameterError("internal: the M-step produced non-finite means")
        self._set_fitted("means_", arr)

    def _mstep_covars(self, stats, means):
        """hmmlearn's covariance update (Huang, Acero & Hon, pp. 443-445), floored."""
        d = self.n_features
        post = stats["post"]
        pr = self._priors()
        w, covars_prior, covars_weight = pr["means_weight"], pr["covars_prior"], pr["covars_weight"]
        meandiff = means - pr["means_prior"]
        previous = self._covars
        if "scatter" in stats and np.array_equal(stats["scatter_means"], means):
            scatter = stats["scatter"]
        elif self.covariance_type in ("spherical", "diag"):
            scatter = (stats["obs**2"] - 2 * means * stats["obs"]
                       + means ** 2 * post[:, None])
        else:
            outer = np.einsum("jk,jl->jkl", stats["obs"], means)
            scatter = (stats["obs*obs.T"] - outer - outer.transpose(0, 2, 1)
                       + np.einsum("jk,jl->jkl", means, means) * post[:, None, None])
        if self.covariance_type in ("spherical", "diag"):
            c_n = w * meandiff ** 2 + scatter
            c_d = np.maximum(covars_weight - 1, 0) + post[:, None]
            cov = (covars_prior + c_n) / np.maximum(c_d, 1e-5)
            if self.covariance_type == "spherical":
                cov = cov.mean(axis=1)
            thin = C.thin(post)  # (almost) never visited: keep the previous covariance
            cov[thin] = previous[thin]
        else:
            c_n = (w[:, :, None] * np.einsum("jk,jl->jkl", meandiff, meandiff) + scatter)
            weight = np.maximum(covars_weight - d, 0)
            if self.covariance_type == "tied":
                cov = (covars_prior + c_n.sum(axis=0)) / (weight + post.sum())
            else:
                thin = C.thin(post)
                cov = (covars_prior + c_n) / np.where(thin, 1.0, weight + post)[:, None, None]
                cov[thin] = previous[thin]
        return C.floor_covariances(cov, self.covariance_type, self.min_covar)

    def _log_prior(self):
        """Log-density of the priors hmmlearn's M-step maximises with the likelihood:
        normal-inverse-gamma (diagonal forms) or normal-inverse-Wishart (full forms), up to
        a constant; 0 for the parts that are flat."""
        total = super()._log_prior()
        if "m" not in self.params and "c" not in self.params:
            return total
        pr = self._priors()
        means_prior, w, cp, cw = (pr["means_prior"], pr["means_weight"], pr["covars_prior"],
                                  pr["covars_weight"])
        md2 = w * (self.means_ - means_prior) ** 2
        d = self.n_features
        if self.covariance_type in ("spherical", "diag"):
            var = np.broadcast_to(
                self._covars[:, None] if self.covariance_type == "spherical" else self._covars,
                md2.shape)
            a = np.maximum(cw - 1, 0) / 2
            return total + float(np.sum(-a * np.log(var) - (cp + md2) / (2 * var)))
        covs = self.covars_
        b = np.maximum(cw - d, 0)  # () "tied", (N,) "full"
        psi = cp
        md = (self.means_ - means_prior) * np.sqrt(w)
        if self.covariance_type == "tied":
            _, logdet = np.linalg.slogdet(covs[0])
            scatter = psi + md.T @ md
            return total + float(-0.5 * b * logdet
                                 - 0.5 * np.trace(np.linalg.solve(covs[0], scatter)))
        for j in range(self.n_components):
            _, logdet = np.linalg.slogdet(covs[j])
            scatter = psi[j] + np.outer(md[j], md[j])
            total += float(-0.5 * b[j] * logdet
                           - 0.5 * np.trace(np.linalg.solve(covs[j], scatter)))
        return total
