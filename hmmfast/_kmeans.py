"""k-means++ centres of training frames: the continuous families' initial means/rates.

GaussianHMM and PoissonHMM take one centre per state, GMMHMM one per state and then one
per mixture component among each state's frames.
"""

import inspect
import warnings

import numpy as np
from scipy.cluster import vq

_KMEANS_RNG = "rng" if "rng" in inspect.signature(vq.kmeans2).parameters else "seed"


#: k-means for initialisation runs on at most this many frames (a random subset)
KMEANS_SAMPLE = 20_000


def kmeans_centres(X, k, rng):
    """k centres of the rows of X by k-means++ (scipy.cluster.vq.kmeans2), seeded by rng,
    on a random subset of KMEANS_SAMPLE rows for long inputs; a centre left empty is
    replaced by a random row."""
    X = np.asarray(X, dtype=np.float64)
    draw = rng.integers if hasattr(rng, "integers") else rng.randint
    if len(X) < k:
        return X[draw(0, len(X), size=k)]
    seed = int(draw(2**31 - 1))
    if len(X) > KMEANS_SAMPLE:
        X = X[np.random.default_rng(seed).choice(len(X), KMEANS_SAMPLE, replace=False)]
    # the centres depend on the set of rows, not their order (a fit does not change when
    # its sequences are permuted): rows sorted by a fixed projection (ties: equal rows)
    direction = np.random.default_rng(0).standard_normal(X.shape[1])
    X = X[np.argsort(X @ direction, kind="stable")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "One of the clusters is empty": handled below
        centres, labels = vq.kmeans2(X, k, minit="++", **{_KMEANS_RNG: seed})
    empty = np.bincount(labels, minlength=k) == 0
    if np.any(empty):
        centres[empty] = X[np.random.default_rng(seed).integers(0, len(X), size=empty.sum())]
    return centres
