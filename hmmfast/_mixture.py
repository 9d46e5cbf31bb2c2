"""Gaussian-mixture emission densities: the compact covariance forms of GMMHMM, their
validation, and the per-state mixture reduction over a flat list of components.

State j's log-density is logsumexp_k (log w_jk + log N(x | mu_jk, Sigma_jk)); the N * K
component densities come from one kernel call on a flat list of components
(_covariance.DensityParams, csrc/_densities.pyx) and are reduced per state, in blocks of
BLOCK frames so the (frames, states, components) intermediates stay bounded.
"""

import numpy as np

from . import _covariance as C
from . import _densities
from . import _validation as V
from ._errors import ParameterError
from ._readonly import freeze

BLOCK = 1 << 16  # frames per block of (frames, states, components) intermediates


def compact_shape(covariance_type, n, k, d):
    """Shape of GMMHMM's compact ``covars_`` (hmmlearn's)."""
    return {"spherical": (n, k), "diag": (n, k, d), "full": (n, k, d, d),
            "tied": (n, d, d)}[C.check_type(covariance_type)]


def validate_covars(value, covariance_type, n, k, d):
    """Read-only float64 ``covars_`` of the compact shape; positive variances or
    symmetric positive definite matrices (an error names the state and component)."""
    shape = compact_shape(covariance_type, n, k, d)
    names = {"spherical": "(n_components, n_mix)", "diag": "(n_components, n_mix, n_features)",
             "full": "(n_components, n_mix, n_features, n_features)",
             "tied": "(n_components, n_features, n_features)"}[covariance_type]
    arr = V.as_float_array("covars_", value, shape, f"{names} = {shape} for "
                           f"covariance_type={covariance_type!r}")
    if covariance_type in ("spherical", "diag"):
        if np.any(arr <= 0):
            idx = tuple(int(i) for i in np.argwhere(arr <= 0)[0])
            raise ParameterError(f"covars_{list(idx)} = {float(arr[idx])!r}: variances must "
                                 f"be > 0 (state {idx[0]}, component {idx[1]})")
    else:
        mats = arr.reshape(-1, d, d)  # a view: symmetrised in place below

        def where(i):
            if covariance_type == "tied":
                return f"state {i}"
            return f"state {i // k}, component {i % k}"

        scale = np.maximum(np.abs(mats).max(axis=(1, 2)), np.finfo(float).tiny)
        asym = np.abs(mats - mats.transpose(0, 2, 1)).max(axis=(1, 2)) > 1e-10 * scale
        if np.any(asym):
            raise ParameterError(
                f"covars_: the covariance of {where(int(np.argmax(asym)))} is not symmetric")
        mats[...] = 0.5 * (mats + mats.transpose(0, 2, 1))
        try:
            np.linalg.cholesky(mats)
        except np.linalg.LinAlgError:
            for i, m in enumerate(mats):
                try:
                    np.linalg.cholesky(m)
                except np.linalg.LinAlgError:
                    raise ParameterError(f"covars_: the covariance of {where(i)} is not "
                                         "positive definite") from None
    return freeze(arr, "covars_")


def flat_components(means, compact, covariance_type):
    """(means (N*K, D), compact covariances per component, their covariance type): the
    mixture as a flat list of Gaussians ("tied" repeats each state's matrix K times)."""
    n, k, d = means.shape
    flat_means = means.reshape(n * k, d)
    if covariance_type == "tied":
        return flat_means, np.repeat(compact, k, axis=0), "full"
    return flat_means, compact.reshape(n * k, *compact.shape[2:]), covariance_type


def mixture_moments(weights, means, covars, covariance_type):
    """(means (N, D), standard deviations (N, D)) of each state's mixture, per feature:
    the mean sum_k w_k mu_k and the variance sum_k w_k (sigma_k^2 + mu_k^2) - mean^2
    (sigma_k^2 the diagonal of component k's covariance; ``covars`` in the compact form)."""
    k, d = means.shape[1:]
    if covariance_type == "spherical":
        var = np.repeat(covars[:, :, None], d, axis=2)
    elif covariance_type == "diag":
        var = covars
    elif covariance_type == "full":
        var = np.diagonal(covars, axis1=2, axis2=3)
    else:  # tied: one (D, D) matrix per state, shared by its components
        var = np.repeat(np.diagonal(covars, axis1=1, axis2=2)[:, None, :], k, axis=1)
    mean = np.einsum("nk,nkd->nd", weights, means)
    second = np.einsum("nk,nkd->nd", weights, var + means ** 2)
    return mean, np.sqrt(np.maximum(second - mean ** 2, 0.0))


def mixture_reduce(comp, want_resp=False):
    """(state log-likelihoods (T, N), responsibilities (T, N, K) or None) from the
    weighted component log-densities ``comp`` (T, N, K): a logsumexp over K and the
    normalised exponentials (0 where a state cannot emit the frame; never NaN), in one
    pass (csrc/_densities.pyx)."""
    t, n, k = comp.shape
    ll, resp = _densities.mixture_reduce(np.ascontiguousarray(comp.reshape(t, n * k)), k,
                                         want_resp)
    return ll, None if resp is None else resp.reshape(t, n, k)


class MixtureDensity:
    """Compiled mixture emissions: the flat component kernel inputs and log weights."""

    __slots__ = ("components", "log_weights", "shape")

    def __init__(self, weights, means, compact, covariance_type):
        n, k, _ = means.shape
        self.shape = (n, k)
        self.components = C.DensityParams(*flat_components(means, compact, covariance_type))
        with np.errstate(divide="ignore"):
            self.log_weights = np.log(weights).reshape(n * k)  # log 0 = -inf

    def component_log_densities(self, X, n_threads=1):
        """(T, N, K) log w_jk + log N(x_t | component jk) for validated frames X."""
        out = self.components.log_densities(X, n_threads)
        out += self.log_weights
        return out.reshape(len(out), *self.shape)

    def log_densities(self, X, n_threads=1):
        """(T, N) log-likelihood of every frame in every state."""
        if self.shape[1] == 1:
            return self.component_log_densities(X, n_threads)[:, :, 0].copy()
        out = np.empty((len(X), self.shape[0]))
        for a in range(0, len(X), BLOCK):
            comp = self.component_log_densities(X[a:a + BLOCK], n_threads)
            out[a:a + BLOCK] = mixture_reduce(comp)[0]
        return out

    def log_densities_and_responsibilities(self, X, n_threads=1):
        """((T, N) log-likelihoods, (T, N, K) responsibilities) in one pass."""
        return mixture_reduce(self.component_log_densities(X, n_threads), True)
