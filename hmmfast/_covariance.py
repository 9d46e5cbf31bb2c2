"""Gaussian components: covariance validation, storage forms, kernel inputs, sampling,
the data's covariance (initialisation) and the M-step's floor.

Shared by GaussianHMM (one component per state) and GMMHMM (n_mix per state), which
hand this module a flat list of components. Covariances are stored in hmmlearn's
compact per-type form:

    spherical (C,)        one variance per component
    diag      (C, D)      a variance per feature
    full      (C, D, D)   a symmetric positive definite matrix
    tied      (D, D)      one matrix shared by every component (GMMHMM: per state)

and validated when assigned: positive variances, symmetric positive definite matrices
(checked by a Cholesky factorisation; an error names the component). The kernels get
either precisions (diagonal forms) or Cholesky factors (full forms), computed once per
parameter set; never an explicit inverse.
"""

import numpy as np
from scipy import linalg

from . import _densities
from . import _validation as V
from ._errors import ParameterError
from ._readonly import freeze

COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")
LOG_2PI = np.log(2.0 * np.pi)


def check_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        raise ParameterError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    return covariance_type


def compact_shape(covariance_type, n, d):
    return {"spherical": (n,), "diag": (n, d), "full": (n, d, d), "tied": (d, d)}[
        check_type(covariance_type)]


def spherical_column(value, n):
    """Spherical variances given as hmmlearn accepts them, (n,), (n, 1), (n, 1, 1) or
    (n, 1, 1, 1) (its issue 385), as (n,); any other value unchanged (for validate)."""
    shape = np.shape(value)
    if len(shape) > 1 and shape[0] == n and all(s == 1 for s in shape[1:]):
        return np.reshape(value, (n,))
    return value


def refuse_stored_form():
    raise ParameterError("_covars_ (hmmlearn's stored form) is read-only here: assign "
                         "covars_, which takes the same compact per-type shape")


def validate(name, value, covariance_type, n, d, what="state"):
    """Read-only float64 covariances of the compact shape for ``covariance_type``.

    ``n`` components (states) of ``d`` features; errors name the offending ``what``.
    """
    shape = compact_shape(covariance_type, n, d)
    names = {"spherical": "(n_components,)", "diag": "(n_components, n_features)",
             "full": "(n_components, n_features, n_features)",
             "tied": "(n_features, n_features)"}[covariance_type]
    arr = V.as_float_array(name, value, shape, f"{names} = {shape} for "
                           f"covariance_type={covariance_type!r}")
    if covariance_type in ("spherical", "diag"):
        bad = arr <= 0
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ParameterError(
                f"{name}{list(idx)} = {float(arr[idx])!r}: variances must be > 0 "
                f"({what} {idx[0]})")
    else:
        mats = arr[None] if covariance_type == "tied" else arr
        for k, m in enumerate(mats):
            where = "the tied covariance" if covariance_type == "tied" else f"{what} {k}"
            scale = max(float(np.max(np.abs(m))), np.finfo(float).tiny)
            if not np.allclose(m, m.T, rtol=0, atol=1e-10 * scale):
                raise ParameterError(f"{name}: the covariance of {where} is not symmetric")
            m[...] = 0.5 * (m + m.T)
            try:
                linalg.cholesky(m, lower=True)
            except linalg.LinAlgError:
                raise ParameterError(
                    f"{name}: the covariance of {where} is not positive definite") from None
    return freeze(arr, name)


def to_full(compact, covariance_type, n, d):
    """(n, d, d) covariance matrices from the compact form."""
    if covariance_type == "spherical":
        return compact[:, None, None] * np.eye(d)
    if covariance_type == "diag":
        return np.einsum("nd,de->nde", compact, np.eye(d))
    if covariance_type == "tied":
        return np.broadcast_to(compact, (n, d, d)).copy()
    return np.array(compact)


def per_component(compact, covariance_type, n, d):
    """The compact form with one entry per component (tied is repeated)."""
    if covariance_type == "tied":
        return np.broadcast_to(compact, (n, d, d))
    return compact


class DensityParams:
    """Kernel inputs for C Gaussian components (what _densities needs, built once)."""

    __slots__ = (
        "cholesky",
        "inv_diagonal",
        "kind",
        "log_norm",
        "means",
        "means_t",
        "precisions_t",
    )

    def __init__(self, means, compact, covariance_type):
        means = np.ascontiguousarray(means, dtype=np.float64)
        c, d = means.shape
        if covariance_type in ("spherical", "diag"):
            var = (np.repeat(compact[:, None], d, axis=1) if covariance_type == "spherical"
                   else np.asarray(compact))
            self.kind = "diag"
            self.means_t = np.ascontiguousarray(means.T)
            self.precisions_t = np.ascontiguousarray(1.0 / var.T)
            self.log_norm = -0.5 * (d * LOG_2PI + np.log(var).sum(axis=1))
        else:
            mats = per_component(compact, covariance_type, c, d)
            chol = np.empty((c, d, d))
            for k in range(c):
                chol[k] = linalg.cholesky(mats[k], lower=True)
            diag = np.diagonal(chol, axis1=1, axis2=2)
            self.kind = "chol"
            self.means = means
            self.cholesky = chol
            self.inv_diagonal = np.ascontiguousarray(1.0 / diag)
            self.log_norm = -0.5 * d * LOG_2PI - np.log(diag).sum(axis=1)

    def log_densities(self, X, n_threads=1):
        """(T, C) log N(x_t | component c) for validated float32/float64 X (T, D)."""
        if self.kind == "diag":
            return _densities.gaussian_diag(X, self.means_t, self.precisions_t, self.log_norm,
                                            n_threads)
        return _densities.gaussian_cholesky(X, self.means, self.cholesky, self.inv_diagonal,
                                            self.log_norm, n_threads)

    def emission_tables(self, X, n_threads=1):
        """(log_table, scaled_table, row_log_scale) of X, the scaling kernels' emission
        tuple; diagonal covariances with C <= 8 make the scaled form inside the density
        kernel (the last two None otherwise: the caller makes them)."""
        if self.kind == "diag":
            return _densities.gaussian_diag(X, self.means_t, self.precisions_t, self.log_norm,
                                            n_threads, True)
        return self.log_densities(X, n_threads), None, None


def sample(rng, means, compact, covariance_type, components):
    """One draw per entry of ``components`` (component indices), (T, D)."""
    c, d = means.shape
    z = rng.standard_normal((len(components), d))
    if covariance_type == "spherical":
        return means[components] + z * np.sqrt(compact[components])[:, None]
    if covariance_type == "diag":
        return means[components] + z * np.sqrt(compact[components])
    mats = per_component(compact, covariance_type, c, d)
    chol = np.stack([linalg.cholesky(m, lower=True) for m in mats])
    return means[components] + np.einsum("tde,te->td", chol[components], z)


def check_min_covar(min_covar):
    """``min_covar`` as a float: a finite number > 0 (the floor that keeps every
    covariance positive definite), or a ParameterError."""
    if (isinstance(min_covar, bool) or not isinstance(min_covar, (int, float, np.integer,
                                                                    np.floating))
            or not np.isfinite(min_covar) or min_covar <= 0):
        raise ParameterError(f"min_covar must be a finite number > 0 (the floor on "
                             f"variances and eigenvalues), got {min_covar!r}")
    return float(min_covar)


def data_covariance(X, min_covar):
    """Covariance of the rows of X (population form) plus min_covar on the diagonal."""
    min_covar = check_min_covar(min_covar)
    X = np.asarray(X, dtype=np.float64)
    centred = X - X.mean(axis=0)
    cov = centred.T @ centred / max(len(X), 1)
    return cov + min_covar * np.eye(X.shape[1])


#: the eigenvalue floor holds to this relative tolerance (a matrix whose smallest
#: eigenvalue is within it of ``min_covar`` is left as it is, so a kept covariance is
#: not rebuilt by rounding every iteration)
FLOOR_RTOL = 1e-9
#: a state (GMMHMM: a component) whose posterior mass is below this share of the mean
#: mass per state keeps its previous covariance in the M-step
THIN = 1e-3


def thin(mass):
    """Boolean mask of the thin entries of ``mass`` (posterior mass per state or per
    component): below THIN x their mean. Their covariance update would divide a prior
    or a scatter by almost nothing (hmmlearn's default ``covars_prior`` over a mass of
    1e-16 gives variances of 1e14), so the M-step keeps their previous covariance (a
    partial M-step: EM's objective still never decreases)."""
    mass = np.asarray(mass, dtype=np.float64)
    return mass < THIN * (mass.sum() / max(mass.size, 1))


def floor_covariances(cov, covariance_type, min_covar):
    """Enforce ``min_covar`` on an M-step result: variances below it are raised to it;
    matrices are symmetrised and their eigenvalues below it raised to it (the
    constrained optimum of the M-step's objective, so EM stays monotone).

    A matrix whose smallest eigenvalue is below min_covar (1 - FLOOR_RTOL) is rebuilt as
    V diag(max(w, min_covar)) V^T and checked again: rounding can leave its smallest
    eigenvalue a little under the floor (by eps x its largest eigenvalue), and then its
    diagonal is raised by the shortfall, so the smallest eigenvalue is min_covar to
    rounding (within 1e-9 relative while the largest eigenvalue is below ~1e6 x
    min_covar; the thin-state rule keeps M-step matrices far from that). Every matrix returned has a Cholesky factor (an internal ParameterError
    otherwise). Leaves well-conditioned covariances as they are, so fits match hmmlearn
    wherever hmmlearn's are valid."""
    if covariance_type in ("spherical", "diag"):
        return np.maximum(cov, min_covar)
    mats = np.array(cov[None] if covariance_type == "tied" else cov, dtype=np.float64)
    if not np.all(np.isfinite(mats)):
        raise ParameterError("internal: the M-step produced non-finite covariances")
    mats = 0.5 * (mats + np.swapaxes(mats, -1, -2))
    w, v = np.linalg.eigh(mats)
    low = w[:, 0] < min_covar * (1.0 - FLOOR_RTOL)
    if np.any(low):
        rebuilt = (v[low] * np.maximum(w[low], min_covar)[:, None, :]) @ np.swapaxes(v[low], -1, -2)
        rebuilt = 0.5 * (rebuilt + np.swapaxes(rebuilt, -1, -2))
        short = min_covar - np.linalg.eigvalsh(rebuilt)[:, 0]
        d = mats.shape[-1]
        rebuilt[:, np.arange(d), np.arange(d)] += np.maximum(short, 0.0)[:, None]
        mats[low] = rebuilt
    try:
        np.linalg.cholesky(mats)
    except np.linalg.LinAlgError:
        raise ParameterError("internal: an M-step covariance has no Cholesky factor after "
                             f"the min_covar={min_covar!r} floor") from None
    return mats[0] if covariance_type == "tied" else mats
