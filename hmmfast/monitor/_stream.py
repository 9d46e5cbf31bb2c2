"""SessionStream: score one session as it arrives and flag it as soon as it is anomalous."""

import numpy as np

from .._errors import HMMInputError
from . import _prefix
from ._record import LEVELS

_PER_STEP, _NONE, _MIN_STEP = 0, 1, 2
_MODES = {"per_step": _PER_STEP, "none": _NONE, "min_step": _MIN_STEP}


class SessionStream:
    """Score one session observation by observation, flagging it early.

    Created by :meth:`AnomalyDetector.stream` (over the model's parameters as they are
    then). ``push(obs)`` reads one observation (or a chunk) and returns the level of the
    session so far: None until ``min_steps`` observations have been read, then "normal",
    "suspicious" or "anomalous" from the running score (per the detector's ``normalize``:
    running log-likelihood / steps, the running log-likelihood, or the running minimum
    step; the end step is not known yet) against the detector's cut-offs for that many
    steps read (``stream_cutoffs_``: calibrated on the training sessions' prefixes so
    that the share of normal sessions flagged at any step is the tier's percentile,
    hmmfast.monitor._prefix). A chunk is judged after its last observation
    (``normalize="min_step"`` reads every step of it). The first time it is "anomalous"
    the stream is ``flagged`` (for good) and ``flagged_at`` records ``steps_read``: the
    caller can stop reading the session there. An observation the model cannot produce
    flags at once, even before ``min_steps``.

    ``end()`` closes the session and returns the level :meth:`AnomalyDetector.predict`
    gives the whole session (every kind of evidence, its end step included: the stream
    keeps the session's observations, O(T) memory, for this), setting ``flagged`` if it
    is "anomalous" and was not flagged before. ``reset()`` starts the next session.

    An early flag reads the score alone and a prefix of the session, so full scoring may
    not confirm it (or may flag a session the stream let through); how often is measured
    in the README (hmmfast demo clickstream, bench/bench_monitor.py).

    Not for concurrent use (one thread at a time), like the stream scorer under it.
    """

    __slots__ = ("_cuts", "_ended", "_kept", "_min", "_min_steps", "_mode", "_points",
                 "_scorer", "_symbols", "detector", "final_score", "flagged", "flagged_at",
                 "level")

    def __init__(self, detector):
        self.detector = detector
        self._scorer = detector.model.stream_scorer()
        self._mode = _MODES[detector.normalize]
        self._min_steps = detector.min_steps
        self._symbols = detector.model._observation_kind() == "symbols"
        table = detector.stream_cutoffs_
        if table is None:  # no training prefix reached min_steps: whole-session cut-offs
            self._points = None
            self._cuts = (detector.thresholds_["suspicious"], detector.thresholds_["anomalous"])
        else:
            points = np.asarray(table["steps"], dtype=np.intp)
            steps = np.arange(points[-1] + 1)
            steps[:points[0]] = points[0]
            self._points = points
            self._cuts = tuple(
                (_prefix.cut_at(steps, points, np.asarray(table[tier], float),
                                detector.normalize), float(table[tier][-1]))
                for tier in ("suspicious", "anomalous"))
        self._start()

    def _start(self):
        self._min = np.inf
        self._ended = False
        self._kept = []
        self.flagged = False
        self.flagged_at = None
        self.level = None
        self.final_score = None

    def reset(self):
        """Start a new session (the cut-offs and model snapshot stay)."""
        self._scorer.reset()
        self._start()

    @property
    def steps_read(self):
        """Observations pushed since the session started."""
        return self._scorer.n_seen

    @property
    def score(self):
        """The running score (per ``normalize``), or None before the first observation;
        after ``end()``, the whole session's score (as ``predict`` gives it)."""
        if self.final_score is not None:
            return self.final_score
        n = self._scorer.n_seen
        if n == 0:
            return None
        if self._mode == _PER_STEP:
            return self._scorer.logprob / n
        if self._mode == _NONE:
            return self._scorer.logprob
        return self._min

    def _cut(self, tier, n):
        if self._points is None:
            return self._cuts[tier]
        table, last = self._cuts[tier]
        if n < len(table):
            return table[n]
        if self._mode == _NONE:
            return last * n / self._points[-1]
        return last

    def push(self, obs):
        """Read one observation (or a chunk); the level so far, or None before
        ``min_steps`` observations (unless the session is already impossible)."""
        scorer = self._scorer
        if self._ended:
            raise HMMInputError("this session was ended by end(); call reset() to start the "
                                "next one before pushing")
        if self._mode == _MIN_STEP:
            running = self._push_min(obs)
        else:
            running = scorer.push(obs)
        self._kept.append(obs)
        n = scorer.n_seen
        if n == 0:  # only empty chunks so far
            return None
        if self._mode == _PER_STEP:
            running = running / n
        if n < self._min_steps and running != -np.inf:
            return None
        if running < self._cut(0, n):
            code = 2 if running < self._cut(1, n) else 1
        else:
            code = 0
        level = LEVELS[code]
        self.level = level
        if code == 2 and not self.flagged:
            self.flagged = True
            self.flagged_at = n
        return level

    def _push_min(self, obs):
        """Push for normalize="min_step": every step of a chunk is read, so a chunk goes in
        one observation at a time (an invalid one raises after those before it went in)."""
        scorer = self._scorer
        if isinstance(obs, (int, np.integer)) or (
                not self._symbols and np.ndim(obs) <= 1):
            items = (obs,)
        elif self._symbols:
            items = np.asarray(obs).reshape(-1)
        else:
            items = np.asarray(obs)
        for item in items:
            scorer.push(item)
            step = scorer.last_step
            if step is not None and step < self._min:
                self._min = step
        return self._min

    def _session(self):
        """The observations pushed so far, as one array."""
        if self._symbols:
            parts = [np.asarray(o).reshape(-1) for o in self._kept]
            return np.concatenate(parts)
        parts = [np.asarray(o, dtype=np.float64) for o in self._kept]
        return np.concatenate([p.reshape(1, -1) if p.ndim <= 1 else p for p in parts])

    def end(self):
        """Close the session and return its level as ``predict`` gives it (every kind of
        evidence, the end step included; no ``min_steps``). Call it once per session;
        ``reset()`` then starts the next one."""
        if self._ended:
            return self.level
        if self._scorer.n_seen == 0:
            raise HMMInputError("end() of a session with no observation: push at least one "
                                "(an empty session has no score, as in predict)")
        self._ended = True
        record = self.detector.predict([self._session()])
        self.final_score = float(record.score[0])
        self.level = str(record.level[0])
        if self.level == "anomalous" and not self.flagged:
            self.flagged = True
            self.flagged_at = self.steps_read
        return self.level

    def __repr__(self):
        return (f"SessionStream(steps_read={self.steps_read}, level={self.level!r}, "
                f"flagged={self.flagged})")
