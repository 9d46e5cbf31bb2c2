"""Early-flag cut-offs by steps read, calibrated on the training sessions' prefixes.

A running score after t observations is not a whole session's score: a mean of 10
steps varies far more than a mean of 100, and a running log-likelihood falls with t. So
the stream compares it with a cut-off for t:

* checkpoints t_0 = min_steps, then every ~25 % more steps (GRID_RATIO), while at least
  MIN_REACH training sessions are that long;
* at each checkpoint, the p-th quantile (lower order statistic) of the training
  sessions' running scores after t_k steps; between checkpoints, linear interpolation;
  beyond the last one, the last cut-off held (``per_step``, ``min_step``) or scaled with
  t (``none``: the same per-step level), both conservative;
* one tail share p per tier, tuned (bisection) so that the share of training sessions
  that fall below the cut-off at *any* step from min_steps to their end is the tier's
  percentile (the largest p whose share does not exceed it).
"""

import numpy as np

GRID_RATIO = 1.25
MIN_REACH = 50
_ITERATIONS = 40


def running(steps, offsets, normalize):
    """Per-frame running score of each session (F,) and the frame's step count t (F,)
    (1-based), from own per-step log conditionals ``steps`` and ``offsets`` (S + 1,)."""
    lengths = np.diff(offsets)
    t = np.arange(len(steps)) - np.repeat(offsets[:-1], lengths) + 1
    if normalize == "min_step":
        out = np.empty(len(steps))
        for s in range(len(lengths)):
            a, b = offsets[s], offsets[s + 1]
            np.minimum.accumulate(steps[a:b], out=out[a:b])
        return out, t
    total = np.cumsum(steps)
    before = np.concatenate([[0.0], total[offsets[1:-1] - 1]])
    out = total - np.repeat(before, lengths)
    if normalize == "per_step":
        out /= t
    return out, t


def grid(lengths, min_steps):
    """Checkpoints (K,) int: min_steps, then ~GRID_RATIO apart, each reached by at least
    MIN_REACH sessions (empty when too few sessions reach min_steps)."""
    points = []
    t = min_steps
    lengths = np.asarray(lengths)
    while np.count_nonzero(lengths >= t) >= min(MIN_REACH, len(lengths)):
        points.append(t)
        t = max(t + 1, int(np.ceil(t * GRID_RATIO)))
    return np.array(points, dtype=np.intp)


def cut_at(steps_read, points, cuts, normalize):
    """The cut-off after ``steps_read`` observations (an int or an array >= points[0])."""
    t = np.asarray(steps_read, dtype=np.float64)
    last, c_last = points[-1], cuts[-1]
    inside = np.interp(np.minimum(t, last), points, cuts)
    if normalize == "none":
        return np.where(t > last, c_last * t / last, inside)
    return inside


def _flagged_share(values_at, lengths, run, t, session_of, points, p, normalize, min_steps):
    cuts = np.array([v[min(int(p * len(v)), len(v) - 1)] for v in values_at])
    use = t >= min_steps
    below = run[use] < cut_at(t[use], points, cuts, normalize)
    flagged = np.zeros(len(lengths), dtype=bool)
    flagged[session_of[use][below]] = True
    return flagged.mean(), cuts


def calibrate(steps, offsets, normalize, min_steps, percentiles):
    """{"steps": checkpoints, tier: cut-offs} (lists), or None when no training session
    reaches ``min_steps`` steps.

    Parameters
    ----------
    steps : ndarray of shape (F,)
        The training sessions' own per-step log conditionals (no end step).
    offsets : ndarray of shape (S + 1,)
    normalize : {"per_step", "none", "min_step"}
    min_steps : int
    percentiles : {"suspicious": float, "anomalous": float}, in percent
    """
    lengths = np.diff(offsets)
    points = grid(lengths, min_steps)
    if points.size == 0:
        return None
    run, t = running(steps, offsets, normalize)
    session_of = np.repeat(np.arange(len(lengths)), lengths)
    values_at = [np.sort(run[offsets[:-1][lengths >= p] + p - 1]) for p in points]
    out = {"steps": points.tolist()}
    for tier in ("suspicious", "anomalous"):
        target = percentiles[tier] / 100.0
        lo, hi = 0.0, target
        cuts = None
        for _ in range(_ITERATIONS):
            mid = 0.5 * (lo + hi)
            share, c = _flagged_share(values_at, lengths, run, t, session_of, points, mid,
                                      normalize, min_steps)
            if share <= target:
                lo, cuts = mid, c
            else:
                hi = mid
        if cuts is None:  # even p -> 0 flags too many: cut at the minima
            cuts = np.array([v[0] for v in values_at])
        out[tier] = cuts.tolist()
    return out
