"""SessionStream: score one session as it arrives and flag it as soon as it is anomalous."""

import numpy as np

from .._errors import HMMInputError
from ._record import LEVELS

#: The stream compares its running score with thresholds lowered by this much (relative,
#: at least this much absolute): its log-space sum and the batch's scaled forward agree to
#: ~1e-13 relative, so the guard keeps rounding from ever making an early flag disagree
#: with ``predict`` where the promise below holds.
GUARD = 1e-9

_PER_STEP, _NONE, _MIN_STEP = 0, 1, 2
_MODES = {"per_step": _PER_STEP, "none": _NONE, "min_step": _MIN_STEP}


def _guarded(threshold):
    return threshold - GUARD * max(1.0, abs(threshold))


class SessionStream:
    """Score one session observation by observation, flagging it early.

    Created by :meth:`AnomalyDetector.stream` (over the model's parameters as they are
    then). ``push(obs)`` reads one observation (or a chunk) and returns the level of the
    session so far: None until ``min_steps`` observations have been read, then "normal",
    "suspicious" or "anomalous" from the running score (per the detector's ``normalize``:
    running log-likelihood / steps, the running log-likelihood, or the running minimum
    step) against the detector's thresholds. The first time it is "anomalous" the stream
    is ``flagged`` (for good) and ``flagged_at`` records ``steps_read``: the caller can
    stop reading the session there. An observation the model cannot produce flags at once,
    even before ``min_steps`` (no later observation can bring it back). ``end()`` closes
    the session (pushing the end symbol when the detector has one) and returns the level
    ``predict`` gives the whole session (setting ``flagged`` if it is "anomalous" and was
    not flagged before). ``reset()`` starts the next session.

    What an early flag promises
    ---------------------------
    * ``normalize="none"`` on a discrete model (CategoricalHMM, PoissonHMM,
      MultinomialHMM): every
      log P(o_t | o_<t) <= 0, so the running log-likelihood only falls; a session flagged
      after t observations has a full score at most its running score, so ``predict``
      calls it "anomalous" too. Exact: the stream compares against thresholds lowered by a
      1e-9 relative guard (``GUARD``), far above the rounding difference of the two
      computations.
    * ``normalize="min_step"``, any model: the running minimum only falls; the same holds.
    * ``normalize="per_step"`` (and "none" on densities): the running mean can recover
      after a bad start, so an early flag is a heuristic; its disagreement with full
      scoring is measured in the clickstream demo and tests.

    Not for concurrent use (one thread at a time), like the stream scorer under it.
    """

    __slots__ = ("_anom", "_end_symbol", "_ended", "_exact", "_min", "_min_steps", "_mode",
                 "_scorer", "_susp", "_symbols", "detector", "flagged", "flagged_at", "level")

    def __init__(self, detector):
        self.detector = detector
        self._scorer = detector.model.stream_scorer()
        self._mode = _MODES[detector.normalize]
        self._min_steps = detector.min_steps
        self._end_symbol = detector.end_symbol
        thresholds = detector.thresholds_
        self._susp = _guarded(thresholds["suspicious"])
        self._anom = _guarded(thresholds["anomalous"])
        self._exact = (thresholds["suspicious"], thresholds["anomalous"])
        self._symbols = detector.model._observation_kind() == "symbols"
        self._start()

    def _start(self):
        self._min = np.inf
        self._ended = False
        self.flagged = False
        self.flagged_at = None
        self.level = None

    def reset(self):
        """Start a new session (the thresholds and model snapshot stay)."""
        self._scorer.reset()
        self._start()

    @property
    def steps_read(self):
        """Observations pushed since the session started (the end symbol not counted)."""
        return self._scorer.n_seen - (self._ended and self._end_symbol is not None)

    @property
    def score(self):
        """The running score (per ``normalize``), or None before the first observation."""
        n = self._scorer.n_seen
        if n == 0:
            return None
        if self._mode == _PER_STEP:
            return self._scorer.logprob / n
        if self._mode == _NONE:
            return self._scorer.logprob
        return self._min

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
        n = scorer.n_seen
        if n == 0:  # only empty chunks so far
            return None
        if self._mode == _PER_STEP:
            running = running / n
        if running < self._susp:
            code = 2 if running < self._anom else 1
        else:
            code = 0
        if n < self._min_steps and running != -np.inf:
            return None
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

    def end(self):
        """Close the session: push the end symbol (when the detector has one) and return
        the level of the whole session, as ``predict`` would give it (no ``min_steps``).
        Call it once per session; ``reset()`` then starts the next one."""
        if self._ended:
            return self.level
        if self._scorer.n_seen == 0:
            raise HMMInputError("end() of a session with no observation: push at least one "
                                "(an empty session has no score, as in predict)")
        self._ended = True
        if self._end_symbol is not None:
            if self._mode == _MIN_STEP:
                self._push_min(self._end_symbol)
            else:
                self._scorer.push(self._end_symbol)
        score = self._scorer.logprob
        n = self._scorer.n_seen
        if self._mode == _PER_STEP:
            score = score / n
        elif self._mode == _MIN_STEP:
            score = self._min
        susp, anom = self._exact
        code = (2 if score < anom else 1) if score < susp else 0
        self.level = LEVELS[code]
        if code == 2 and not self.flagged:
            self.flagged = True
            self.flagged_at = self.steps_read
        return self.level

    def __repr__(self):
        return (f"SessionStream(steps_read={self.steps_read}, level={self.level!r}, "
                f"flagged={self.flagged})")
