"""k-means for the continuous families' starts: greedy k-means++ seeding, Lloyd's
iterations, restarts keeping the lowest inertia; centres may be fixed (labelled states).

GaussianHMM and PoissonHMM take one centre per state, GMMHMM one per state and then one
per mixture component among each state's frames. NumPy only (scikit-learn's algorithm,
written here): seeding by greedy k-means++ (Arthur & Vassilvitskii 2007; each new centre
is the best of 2 + log k candidates drawn with probability proportional to the squared
distance to the centres so far), Lloyd's iterations until no centre moves more than
``TOL`` x the mean feature variance (or ``MAX_ITER``), an emptied cluster re-seeded at the
frame farthest from its centre, and ``RESTARTS`` runs of which the lowest inertia (sum of
squared distances to the nearest centre) wins.

Semi-supervised starts (``fit(X, states=partial)``): a labelled state's centre is fixed
(the mean of its labelled frames) and its labelled frames stay assigned to it; the other
centres are seeded and iterated around the fixed ones (Basu, Banerjee & Mooney 2002,
"constrained k-means", with the labelled centres held).

Distances are computed from frames centred on their mean (|x|^2 - 2 x.c + |c|^2 on
centred data), exact enough to pick the nearest centre also for data far from the origin.
"""

import numpy as np
from scipy import sparse

#: k-means for initialisation runs on at most this many frames (a random subset)
KMEANS_SAMPLE = 20_000
#: restarts per start (best inertia kept); see the README's k-means table
RESTARTS = 10
MAX_ITER = 300
TOL = 1e-4


def _integers(rng, high, size=None):
    draw = rng.integers if hasattr(rng, "integers") else rng.randint
    return draw(0, high, size=size)


def _random(rng, size):
    return rng.random(size) if hasattr(rng, "integers") else rng.random_sample(size)


def squared_distances(X, centres, sq_norms=None):
    """(T, k) squared Euclidean distances of the rows of X to the centres (>= 0)."""
    if sq_norms is None:
        sq_norms = np.einsum("td,td->t", X, X)
    d2 = sq_norms[:, None] - 2.0 * (X @ centres.T) + np.einsum("kd,kd->k", centres, centres)
    return np.maximum(d2, 0.0, out=d2)


def nearest(X, centres):
    """Index of the nearest centre for every row of X, intp (T,) (ties: lowest index)."""
    X = np.asarray(X, dtype=np.float64)
    shift = X.mean(axis=0)
    Xc, cc = X - shift, np.asarray(centres, dtype=np.float64) - shift
    out = np.empty(len(X), dtype=np.intp)
    for a in range(0, len(X), 1 << 16):
        out[a:a + (1 << 16)] = np.argmin(squared_distances(Xc[a:a + (1 << 16)], cc), axis=1)
    return out


def _seed(X, sq_norms, k, fixed, rng):
    """k centres by greedy k-means++; rows where ``fixed`` is not NaN are kept."""
    centres = np.array(fixed, dtype=np.float64)
    free = np.flatnonzero(np.isnan(centres[:, 0]))
    held = np.flatnonzero(~np.isnan(centres[:, 0]))
    n_trials = 2 + int(np.log(k))
    if len(held):
        closest = squared_distances(X, centres[held], sq_norms).min(axis=1)
        todo = free
    else:
        centres[free[0]] = X[_integers(rng, len(X))]
        closest = squared_distances(X, centres[free[:1]], sq_norms)[:, 0]
        todo = free[1:]
    for j in todo:
        total = closest.sum()
        if not total > 0:  # every frame sits on a centre: any frame will do
            centres[j] = X[_integers(rng, len(X))]
            continue
        cdf = np.cumsum(closest)
        picks = np.searchsorted(cdf, _random(rng, n_trials) * cdf[-1], side="right")
        picks = np.minimum(picks, len(X) - 1)
        cand = np.minimum(closest[None, :], squared_distances(X, X[picks], sq_norms).T)
        best = int(np.argmin(cand.sum(axis=1)))
        centres[j] = X[picks[best]]
        closest = cand[best]
    return centres


def cluster_sums(X, assign, k):
    """(k, D) sum of the rows of X (T, D) assigned to each of k clusters: a one-hot
    product, dense while small, sparse beyond (both faster than D bincounts or
    np.add.at)."""
    if len(assign) * k <= 1 << 16:
        return (np.arange(k)[:, None] == assign[None, :]).astype(np.float64) @ X
    onehot = sparse.csr_matrix((np.ones(len(assign)), assign, np.arange(len(assign) + 1)),
                               shape=(len(assign), k))
    return np.asarray(onehot.T @ X)


def _lloyd(X, sq_norms, centres, free, known, tol):
    """Lloyd's iterations from ``centres`` moving only the ``free`` ones (frames with a
    ``known`` label >= 0 stay with it): (centres, assignment, inertia)."""
    k = len(centres)
    centres = centres.copy()
    fixed_rows = known >= 0 if known is not None else None
    previous = None
    for _ in range(MAX_ITER):
        d2 = squared_distances(X, centres, sq_norms)
        assign = np.argmin(d2, axis=1)
        if fixed_rows is not None:
            assign[fixed_rows] = known[fixed_rows]
        if previous is not None and np.array_equal(assign, previous):
            break  # a fixed point: the centres below would not move
        previous = assign
        counts = np.bincount(assign, minlength=k)
        sums = cluster_sums(X, assign, k)
        new = centres.copy()
        moving = free & (counts > 0)
        new[moving] = sums[moving] / counts[moving, None]
        empty = np.flatnonzero(free & (counts == 0))
        if len(empty):  # re-seed at the frames farthest from their centres
            far = np.argsort(-d2[np.arange(len(X)), assign], kind="stable")[:len(empty)]
            new[empty[:len(far)]] = X[far]
        shift = float(np.sum((new - centres) ** 2))
        centres = new
        if shift <= tol:
            break
    d2 = squared_distances(X, centres, sq_norms)
    assign = np.argmin(d2, axis=1)
    if fixed_rows is not None:
        assign[fixed_rows] = known[fixed_rows]
    return centres, assign, float(d2[np.arange(len(X)), assign].sum())


def kmeans(X, k, rng, *, fixed=None, known=None, n_init=RESTARTS):
    """k-means++ with restarts: the run with the lowest inertia.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    k : int
        Number of centres (n_samples >= 1; duplicates are allowed when n_samples < k).
    rng : numpy Generator or RandomState
    fixed : ndarray of shape (k, n_features), optional
        Centres that stay where they are (rows of NaN: free centres to learn).
    known : intp ndarray of shape (n_samples,), optional
        A centre index per frame that the frame stays assigned to (-1: nearest).
    n_init : int
        Restarts (a run with nothing free to choose is run once).

    Returns
    -------
    centres : ndarray of shape (k, n_features)
    inertia : float
        Sum of squared distances of the frames to their assigned centres.
    """
    X = np.asarray(X, dtype=np.float64)
    shift = X.mean(axis=0)
    Xc = X - shift
    start = np.full((k, X.shape[1]), np.nan) if fixed is None else np.array(fixed, float) - shift
    free = np.isnan(start[:, 0])
    if not free.any():
        d2 = squared_distances(Xc, start)
        assign = np.argmin(d2, axis=1)
        if known is not None:
            assign[known >= 0] = known[known >= 0]
        return start + shift, float(d2[np.arange(len(X)), assign].sum())
    sq_norms = np.einsum("td,td->t", Xc, Xc)
    tol = TOL * float(np.mean(np.var(Xc, axis=0)))
    best = None
    for _ in range(n_init):
        seeded = _seed(Xc, sq_norms, k, start, rng)
        centres, _, inertia = _lloyd(Xc, sq_norms, seeded, free, known, tol)
        if best is None or inertia < best[1]:
            best = (centres, inertia)
    out = best[0] + shift
    if fixed is not None:
        out[~free] = np.asarray(fixed)[~free]  # exactly as given
    return out, best[1]


def kmeans_centres(X, k, rng, *, fixed=None, known=None):
    """k centres of the rows of X (see :func:`kmeans`), on a random subset of
    KMEANS_SAMPLE rows for long inputs; fewer rows than k: rows drawn at random."""
    X = np.asarray(X, dtype=np.float64)
    if len(X) < k and fixed is None:
        return X[_integers(rng, len(X), size=k)]
    if len(X) > KMEANS_SAMPLE:
        rows = np.sort(rng.choice(len(X), KMEANS_SAMPLE, replace=False))
        X = X[rows]
        known = None if known is None else known[rows]
    # the centres depend on the set of rows, not their order (a fit does not change when
    # its sequences are permuted): rows sorted by a fixed projection (ties: equal rows)
    direction = np.random.default_rng(0).standard_normal(X.shape[1])
    order = np.argsort(X @ direction, kind="stable")
    X = X[order]
    known = None if known is None else known[order]
    return kmeans(X, k, rng, fixed=fixed, known=known)[0]


def state_centres(X, n, rng, labels=None):
    """One start centre per state: the mean of a state's labelled frames, k-means for
    the states without labels (around the labelled ones, whose frames stay theirs).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n : int
        Number of states.
    labels : intp ndarray of shape (n_samples,), optional
        A state per frame, -1 where unknown.

    Returns
    -------
    ndarray of shape (n, n_features)
    """
    X = np.asarray(X, dtype=np.float64)
    if labels is None or not np.any(labels >= 0):
        return kmeans_centres(X, n, rng)
    means, counts = label_means(X, labels, n)
    if np.all(counts > 0):
        return means
    means[counts == 0] = np.nan  # free: k-means around the labelled centres
    return kmeans_centres(X, n, rng, fixed=means, known=labels)


def label_means(X, labels, n):
    """(means (n, D), counts (n,)): the mean of the frames labelled j (labels -1 are
    skipped), 0 for a label without frames."""
    known = labels >= 0
    counts = np.bincount(labels[known], minlength=n)
    return cluster_sums(X[known], labels[known], n) / np.maximum(counts, 1)[:, None], counts
