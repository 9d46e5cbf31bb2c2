"""Reasons read from the Viterbi path and the per-step scores, and their percentiles.

Per-session reductions over concatenated per-frame arrays and session ``offsets``
(S + 1,) run in one pass per session in the compiled helper ``hmmfast._session_stats``
(csrc/_session_stats.pyx; NumPy's ``ufunc.reduceat`` needed several whole-batch passes and a
third of the detector's time at 100,000 sessions):

* ``switch_rate``: the fraction of a session's T - 1 transitions where the decoded state
  changes (0 for T = 1) — rapid oscillation between intents;
* ``longest_run``: the longest stay in one decoded state, in steps — stuck;
* ``min_step``: the smallest log P(o_t | o_<t) — one bad step in a normal session;
* ``unseen``: how many steps have log P(o_t | o_<t) below a floor — observations the
  model gives (near-)zero probability.

Percentiles against the training sessions use the "mean" definition of
``scipy.stats.percentileofscore``: pct(x) = 100 * (#{v < x} + #{v <= x}) / (2 n), so
ties count half. Training distributions are kept as (sorted distinct values, counts),
exact and compact (switch rates, run lengths and session lengths repeat a lot), which is
what a detector carries into a model file.
"""

import numpy as np

from .. import _session_stats
from .._errors import ParameterError

#: Integer-valued distributions up to this value get a lookup table for percentiles.
TABLE_MAX = 1 << 16


def path_reasons(states, offsets, n_threads=1):
    """Per-session switch counts and longest runs: two ndarrays of shape (S,), intp.

    ``states`` (F,) concatenated paths, ``offsets`` (S + 1,) their boundaries.
    """
    return _session_stats.path_stats(np.ascontiguousarray(states, dtype=np.intp),
                              np.ascontiguousarray(offsets, dtype=np.intp), n_threads)


def step_reasons(steps, step_offsets, own_offsets, floor, n_threads=1):
    """Per-session smallest step (over all of ``steps``) and count of steps below
    ``floor`` (over each session's first own_offsets[s+1] - own_offsets[s] steps):
    ndarrays of shape (S,), float64 and intp."""
    return _session_stats.step_stats(np.ascontiguousarray(steps, dtype=np.float64),
                              np.ascontiguousarray(step_offsets, dtype=np.intp),
                              np.ascontiguousarray(own_offsets, dtype=np.intp),
                              float(floor), n_threads)


def switch_rate(switches, lengths):
    """switches / (T - 1), 0 for one-step sessions: ndarray of shape (S,)."""
    return switches / np.maximum(lengths - 1, 1)


def distribution(values):
    """A training distribution as (sorted distinct values, counts): two 1-D arrays."""
    return np.unique(np.asarray(values), return_counts=True)


def _pct_sorted(values, cum, x):
    """Percentiles by binary search: one search, the right end from equality (values
    are distinct)."""
    left = np.searchsorted(values, x, side="left")
    at = np.minimum(left, len(values) - 1)
    equal = (values[at] == x) & (left < len(values))
    right = left + equal
    return (cum[left] + cum[right]) * (50.0 / cum[-1])


def percentile_of(dist, x):
    """Percentile (0-100, "mean" definition) of each ``x`` in the distribution ``dist``
    = (values, counts); NaN where x is NaN. ndarray of shape x.shape, float64."""
    values, counts = dist
    cum = np.zeros(len(counts) + 1)
    np.cumsum(counts, out=cum[1:])
    x = np.asarray(x)
    if (x.dtype.kind in "iu" and values[0] >= 0 and values[-1] <= TABLE_MAX
            and np.all(values == np.floor(values))):
        # integer data: a table of the percentile of every integer 0 .. max + 1
        top = int(values[-1]) + 1
        table = _pct_sorted(values, cum, np.arange(top + 1, dtype=np.float64))
        return table[np.clip(x, 0, top)]
    x = np.asarray(x, dtype=np.float64)
    pct = _pct_sorted(values, cum, x)
    nan = np.isnan(x)
    if nan.any():
        pct[nan] = np.nan
    return pct


def dist_to_dict(dist):
    """JSON-safe form of a distribution."""
    values, counts = dist
    return {"values": values.tolist(), "counts": counts.tolist()}


def dist_from_dict(name, d):
    """A distribution back from ``dist_to_dict``; checks its shape."""
    try:
        values = np.asarray(d["values"])
        counts = np.asarray(d["counts"], dtype=np.int64)
        if values.dtype.kind not in "iuf":
            raise ValueError(f"values have dtype {values.dtype}")
    except (KeyError, TypeError, ValueError) as exc:
        raise ParameterError(f"training distribution {name!r} must be {{'values': [...], "
                             f"'counts': [...]}}, got {str(d)[:80]} ({exc})") from None
    if (values.ndim != 1 or values.shape != counts.shape or len(values) == 0
            or np.any(counts <= 0) or np.any(np.diff(values) <= 0)):
        raise ParameterError(f"training distribution {name!r} must hold increasing values "
                             "and positive counts of equal, non-zero length")
    return values, counts
