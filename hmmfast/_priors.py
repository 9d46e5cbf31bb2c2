"""Dirichlet priors of the probability parameters: validation, MAP update, log-density.

hmmlearn's convention: a prior (concentration) of 1 adds nothing; the MAP update of
probability rows is max(counts + prior - 1, 0), normalised. Concentrations below 1 are
refused (a deliberate difference: their posterior density is unbounded at the faces of
the simplex, so there is no MAP for EM to climb to; hmmlearn clips the update at 0 and
its objective can fall). Used by the M-steps and
``_log_prior`` of BaseHMM (start and transition probabilities), CategoricalHMM
(emission probabilities) and GMMHMM (mixture weights); a sparse ``transmat_`` has its
own forms in ``_sparse``. The Gaussian families' normal / inverse-gamma / Wishart priors
follow hmmlearn's per-family conventions and stay with their family; they share
:func:`check_real` so both refuse the same things with the same messages.
"""

import numpy as np

from . import _validation as V
from ._errors import ParameterError


def check_prior(name, value, shape):
    """A Dirichlet concentration (scalar or array) broadcast to ``shape``, all >= 1."""
    arr = V.broadcast_real(name, value, shape)
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} must be finite (a Dirichlet concentration >= 1)")
    if np.any(arr < 1):
        low = float(arr[np.unravel_index(int(np.argmin(arr)), arr.shape)])
        raise ParameterError(
            f"{name} must be >= 1 (a Dirichlet concentration; 1 adds nothing), got "
            f"{low!r}: below 1 the posterior density is unbounded where a probability "
            "reaches 0, so EM has no maximum to find (hmmlearn clips such updates at 0 "
            "and its objective can fall)")
    return arr


def check_real(name, value, shape):
    """A real prior parameter (number or array) broadcast to ``shape``, all finite."""
    arr = V.broadcast_real(name, value, shape)
    if not np.all(np.isfinite(arr)):
        raise ParameterError(f"{name} must be finite")
    return arr


def check_precision_weight(name, value, shape):
    """A normal prior's precision scale (``means_weight``) broadcast to ``shape``, >= 0."""
    arr = check_real(name, value, shape)
    if np.any(arr < 0):
        raise ParameterError(f"{name} must be >= 0 (a precision scale)")
    return arr


def prior(model, name, shape):
    """The model's prior ``name`` validated for ``shape``, or None when it is flat (all 1,
    adding nothing). Cached on the model until the attribute or the shape changes, so EM
    iterations do not validate it again."""
    value = getattr(model, name)
    cache = model.__dict__.get("_prior_cache")
    if cache is None:
        cache = {}
        object.__setattr__(model, "_prior_cache", cache)
    hit = cache.get(name)
    if hit is not None and hit[0] is value and hit[1] == shape:
        return hit[2]
    arr = check_prior(name, value, shape)
    checked = None if np.all(arr == 1.0) else arr
    cache[name] = (value, shape, checked)
    return checked


def map_estimate(counts, prior, previous, keep_zeros):
    """Dirichlet MAP of probability rows: max(counts + prior - 1, 0), normalised.

    hmmlearn's convention (a prior of 1 adds nothing; ``prior`` None is flat). With
    ``keep_zeros`` a cell that is 0 in ``previous`` stays 0 (start and transition
    probabilities, as in hmmlearn); a row with nothing to normalise (no expected visits
    and a flat prior) keeps its previous values.
    """
    p = np.maximum(counts + (prior - 1.0), 0.0) if prior is not None else np.array(counts, dtype=float)
    if keep_zeros:
        p[previous == 0.0] = 0.0
    p = p.reshape(-1, np.shape(previous)[-1])
    # summed left to right (numpy's sum is pairwise), as hmmfast._sparse sums the
    # non-zeros of a sparse row: dense and sparse fits give the same bits
    sums = np.cumsum(p, axis=1)[:, -1]
    empty = ~(sums > 0)
    p /= np.where(empty, 1.0, sums)[:, None]
    if np.any(empty):
        p[empty] = np.reshape(previous, p.shape)[empty]
    return p.reshape(np.shape(previous))


def dirichlet_log_density(prob, prior):
    """sum (alpha - 1) log p over the non-zero entries (the Dirichlet log-density up to
    a constant, on the face the zeros fix); 0 for a flat prior (None)."""
    if prior is None:
        return 0.0
    prob = np.asarray(prob)
    nz = prob > 0
    return float(np.sum((np.broadcast_to(prior, prob.shape)[nz] - 1.0) * np.log(prob[nz])))
