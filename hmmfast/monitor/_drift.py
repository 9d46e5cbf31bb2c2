"""LikelihoodDriftMonitor: is production still scoring like the baseline?"""

import datetime
import numbers

import numpy as np

from .._errors import HMMInputError, HMMTypeError, ParameterError
from . import _checks

#: Sizes above this are rounded down to a grid of 16 per doubling (<= 4.4% apart) before
#: the window-mean distribution is drawn, so a time window whose count varies reuses a few
#: cached thresholds; a smaller size gives a wider distribution, i.e. a lower threshold:
#: the rounding only ever makes the monitor quieter.
EXACT_SIZES = 64


def _grid(k):
    if k <= EXACT_SIZES:
        return k
    step = 2.0 ** (np.floor(16 * np.log2(k)) / 16)
    return max(EXACT_SIZES, int(np.floor(step + 1e-9)))


def _seconds(name, value):
    """A time span or timestamps as float seconds (numbers are taken as seconds)."""
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    arr = np.asarray(value)
    if arr.dtype.kind == "m":
        return arr.astype("timedelta64[ns]").astype(np.float64) / 1e9
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[ns]").astype(np.int64).astype(np.float64) / 1e9
    if arr.dtype == object and arr.size and isinstance(arr.flat[0], datetime.datetime):
        return np.array([v.timestamp() for v in arr.flat], dtype=np.float64).reshape(arr.shape)
    if arr.dtype.kind not in "iuf":
        raise HMMTypeError(f"{name} must be numbers (seconds), datetimes or timedeltas, got "
                           f"dtype {arr.dtype}")
    return arr.astype(np.float64)


class LikelihoodDriftMonitor:
    """Alarm when the mean score of a sliding window falls below what the baseline allows.

    The alarm threshold for a window of k scores is the ``quantile`` (default 1%) of the
    distribution of means of k scores drawn (with replacement, fixed seed) from the
    baseline: a mean of k scores varies far less than one score, so a single-score
    percentile would almost never fire. Scores are in the units of the detector's score
    (e.g. per-step log-likelihoods of normal sessions as the baseline).

    Parameters
    ----------
    baseline_scores : array-like of shape (n,)
        Scores of sessions known to be normal (e.g. a held-out day); at least 2 finite.
        -inf entries are dropped; NaN and +inf are errors.
    window : int or time span
        An int: the last ``window`` sessions. A ``datetime.timedelta`` or
        ``numpy.timedelta64``: the sessions of the last span of time (``update`` then
        needs ``timestamps``; numbers are seconds).
    quantile : float
        A fraction in (0, 1); 0.01 is the usual paging rule.
    min_count : int, optional
        No alarm before the window holds this many scores. Default: ``window`` for a
        count window (a full window), 30 for a time window.
    n_draws : int
        Window means drawn per window size (default 10,000).
    seed : int
        Seed of the draws (the threshold for a size is the same in every run).

    Notes
    -----
    The false-alarm rate is ``quantile`` per evaluation only as far as the baseline's
    own mean is right: it is off by about sd / sqrt(n) for n baseline scores, which moves
    the threshold by sqrt(window / n) window-mean standard deviations; keep the baseline
    large next to the window (bench/results/monitor.md: 10,000 baseline scores, window
    200, quantile 0.01 measured ~1.2% of updates in alarm on in-distribution streams).
    With a time window, the window ends at the latest timestamp seen.

    An impossible session (score -inf) enters the window as the lowest finite baseline
    score: one cannot turn the mean into -inf, many still pull it down; ``state()``
    counts them. ``update`` evaluates the alarm once, after adding all of its scores.
    """

    def __init__(self, baseline_scores, window=1000, quantile=0.01, *, min_count=None,
                 n_draws=10_000, seed=0):
        base = _checks.finite_scores("baseline_scores", baseline_scores)
        base = base[np.isfinite(base)]
        if base.size < 2:
            raise HMMInputError(f"baseline_scores must hold at least 2 finite scores, got "
                                f"{base.size}")
        self._baseline = np.sort(base)
        self.quantile = _checks.fraction("quantile", quantile)
        if isinstance(window, (datetime.timedelta, np.timedelta64)):
            span = float(_seconds("window", window))
            if not span > 0:
                raise ParameterError(f"window must be a positive time span, got {window!r}")
            self._span = span
            default_min = 30
        elif isinstance(window, numbers.Integral) and not isinstance(window, bool):
            if window <= 0:
                raise ParameterError(f"window must be a number of sessions >= 1 or a time "
                                     f"span (datetime.timedelta), got {window!r}")
            self._span = None
            default_min = int(window)
        else:
            raise HMMTypeError(f"window must be an int (sessions) or a time span "
                               f"(datetime.timedelta / numpy.timedelta64), got {window!r}")
        self.window = window
        self.min_count = default_min if min_count is None else _checks.integer(
            "min_count", min_count, 1)
        if self._span is None and self.min_count > window:
            raise ParameterError(f"min_count must be <= window={window}, got {self.min_count}")
        self.n_draws = _checks.integer("n_draws", n_draws, 100)
        self.seed = _checks.integer("seed", seed, 0)
        self._thresholds = {}
        self.reset()

    def reset(self):
        """Forget the production scores (the baseline and cached thresholds stay)."""
        self._scores = np.empty(0)
        self._times = np.empty(0)
        self._n_seen = 0
        self._n_impossible = 0
        self._alarm = False
        self._since = None

    # ---------------------------------------------------------------- thresholds

    def threshold(self, k):
        """The alarm threshold for a window mean of ``k`` scores (cached per size)."""
        k = _checks.integer("k", k, 1)
        size = k if (self._span is None and k == self.window) else _grid(k)
        value = self._thresholds.get(size)
        if value is None:
            value = self._draw_quantile(size)
            self._thresholds[size] = value
        return value

    def _draw_quantile(self, k):
        rng = np.random.default_rng([self.seed, k])
        base = self._baseline
        means = np.empty(self.n_draws)
        chunk = max(1, 4_000_000 // k)  # draws per block: bounded memory
        for a in range(0, self.n_draws, chunk):
            b = min(a + chunk, self.n_draws)
            idx = rng.integers(0, len(base), size=(b - a, k))
            means[a:b] = base[idx].mean(axis=1)
        return float(np.quantile(means, self.quantile))

    # ---------------------------------------------------------------- updates

    def update(self, scores, timestamps=None):
        """Add production scores; return the alarm (True: the window mean is too low).

        Parameters
        ----------
        scores : array-like of shape (n,) or a float
            Session scores, oldest first. NaN and +inf are errors.
        timestamps : array-like of shape (n,), optional
            Required with a time window: non-decreasing (also across calls), numbers in
            seconds or datetimes.

        Returns
        -------
        bool
            The ``alarm`` after adding them.
        """
        new = _checks.finite_scores("scores", scores)
        impossible = new == -np.inf
        if impossible.any():
            new = np.where(impossible, self._baseline[0], new)
        if self._span is None:
            if timestamps is not None:
                raise ParameterError("timestamps apply to a time window (window=timedelta); "
                                     "this monitor's window is a number of sessions")
            self._scores = np.concatenate([self._scores, new])[-self.window:]
        else:
            if timestamps is None:
                raise ParameterError("timestamps are required: this monitor's window is a "
                                     "time span")
            t = np.atleast_1d(_seconds("timestamps", timestamps)).astype(np.float64).ravel()
            if t.shape != new.shape:
                raise HMMInputError(f"timestamps must hold one time per score: expected "
                                    f"{new.size}, got {t.size}")
            if not np.all(np.isfinite(t)):
                raise HMMInputError("timestamps must be finite")
            last = self._times[-1] if self._times.size else -np.inf
            if np.any(np.diff(t) < 0) or (t.size and t[0] < last):
                raise HMMInputError("timestamps must be non-decreasing (oldest first, also "
                                    "across updates)")
            if t.size:  # the window ends at the latest timestamp seen
                times = np.concatenate([self._times, t])
                keep = np.searchsorted(times, times[-1] - self._span, side="right")
                self._times = times[keep:]
                self._scores = np.concatenate([self._scores, new])[keep:]
        self._n_seen += new.size
        self._n_impossible += int(impossible.sum())
        k = self._scores.size
        alarm = bool(k >= self.min_count and self._scores.mean() < self.threshold(k))
        if alarm and not self._alarm:
            self._since = (self._n_seen - 1 if self._span is None else float(self._times[-1]))
        elif not alarm:
            self._since = None
        self._alarm = alarm
        return alarm

    @property
    def alarm(self):
        """True while the last update left the window mean below its threshold."""
        return self._alarm

    @property
    def count(self):
        """Scores in the window."""
        return self._scores.size

    def state(self):
        """A JSON-safe dict for dashboards: mean, threshold, quantiles (1%, 50%, 99% of the
        window), count, alarm, since (index of the score, or timestamp in seconds, at which
        the current alarm started; None), n_seen, n_impossible."""
        k = self._scores.size
        quantiles = (np.quantile(self._scores, [0.01, 0.5, 0.99]).tolist() if k
                     else [None, None, None])
        return {
            "mean": float(self._scores.mean()) if k else None,
            "threshold": self.threshold(k) if k else None,
            "quantiles": dict(zip(("0.01", "0.5", "0.99"), quantiles, strict=True)),
            "count": int(k),
            "alarm": self._alarm,
            "since": self._since,
            "n_seen": self._n_seen,
            "n_impossible": self._n_impossible,
        }

    def __repr__(self):
        return (f"LikelihoodDriftMonitor(window={self.window!r}, quantile={self.quantile}, "
                f"count={self.count}, alarm={self._alarm})")
