"""What the service watches for each model version: likelihood drift and state occupancy
(the arms of an A/B split: ``_arms``); and the inference logs (sampled paths,
input/output).

The monitors are hmmfast.monitor's (LikelihoodDriftMonitor, OccupancyMonitor); this
module feeds them from the requests, thread-safely (requests run on the event loop and
in worker threads), and reads them for /metrics.

Occupancy. /v1/decode and /v1/anomaly paths fill the window; with an anomaly detector in
the model file, its training paths' occupancy and switch rate are the baseline the
verdicts (collapse, dead states, oscillation) are judged against.

Drift. /v1/score sessions, and the /v1/anomaly sessions not judged anomalous (all of
them with ``drift_keep_anomalous``): the log-likelihood per step of their own
observations.

Drift baseline. Scores are per-step log-likelihoods, log P(session) / T. The baseline
is the model file's ``metadata["drift_baseline"]`` when it has one: a list of per-step
scores of normal sessions (e.g. held-out data scored with ``score_batch(...) /
lengths``), or ``{"scores": [...], "window": int, "quantile": float}``. Without one,
the service draws it from the model itself: once the first ``window`` production
sessions are in, it samples sessions of their lengths from the model (fixed seed, in a
background thread) and scores them, so the alarm asks "does production still look like
sessions the model generates?".
"""

import logging
import threading
import time

import numpy as np

from ..monitor import LikelihoodDriftMonitor, OccupancyMonitor, PathLog
from ..monitor._pathlog import JsonLinesLog

log = logging.getLogger("hmmfast.serve")

#: Sessions drawn from the model for a sampled drift baseline, and their frame budget.
BASELINE_SESSIONS = 1_000
BASELINE_FRAMES = 1_000_000
#: Decoded paths fed to the occupancy monitor per request (evenly spaced), so a large
#: batch costs the monitor a bounded time.
OCCUPANCY_PER_REQUEST = 256


def baseline_from_metadata(value):
    """(scores, window or None, quantile or None) from ``metadata["drift_baseline"]``."""
    if isinstance(value, dict):
        unknown = set(value) - {"scores", "window", "quantile"}
        if unknown or "scores" not in value:
            raise ValueError('metadata["drift_baseline"] must be a list of per-step scores '
                             'or {"scores": [...], "window": int, "quantile": float}, got '
                             f"keys {sorted(value)}")
        return value["scores"], value.get("window"), value.get("quantile")
    if isinstance(value, list):
        return value, None, None
    raise ValueError('metadata["drift_baseline"] must be a list of per-step scores or '
                     f'{{"scores": [...], ...}}, got {type(value).__name__}')


class DriftTracker:
    """The live likelihood-drift monitor of one model version.

    Scores are buffered and handed to the monitor in blocks of ``FLUSH_SESSIONS`` (and
    whenever its state is read, e.g. by /metrics), so a single-session request pays a
    list append, not a window update.

    Parameters
    ----------
    model : hmmfast model
    baseline : value of metadata["drift_baseline"] or None
        None: sample the baseline from the model (see the module docstring).
    window : int
    quantile : float
    """

    FLUSH_SESSIONS = 64

    def __init__(self, model, baseline, window, quantile):
        self._model = model
        self._lock = threading.Lock()
        self._buffer = []  # (per-step scores, lengths) not yet given to the monitor
        self._n_buffer = 0
        self._pending = []  # (per-step scores, lengths) until a sampled baseline exists
        self._n_pending = 0
        self._building = False
        self.window, self.quantile = window, quantile
        self.monitor = None
        if baseline is None:
            self.source = "sampled"
        else:
            scores, w, q = baseline_from_metadata(baseline)
            self.window = window if w is None else w
            self.quantile = quantile if q is None else q
            self.monitor = LikelihoodDriftMonitor(scores, self.window, self.quantile)
            self.source = "metadata"

    def update(self, per_step, lengths):
        """Add sessions' per-step scores, log P(session) / T, (S,), of ``lengths`` (S,)."""
        with self._lock:
            self._buffer.append((per_step, lengths))
            self._n_buffer += len(per_step)
            if self._n_buffer < self.FLUSH_SESSIONS:
                return
            start = self._flush()
        if start:
            threading.Thread(target=self._build, name="hmmfast-drift-baseline",
                             daemon=True).start()

    def _flush(self):
        """Hand the buffer to the monitor (under the lock); True when a sampled baseline
        should now be built."""
        if not self._buffer:
            return False
        scores = np.concatenate([b[0] for b in self._buffer])
        if self.monitor is not None:
            self.monitor.update(scores)
            start = False
        elif self.source == "sampled":
            lengths = np.concatenate([b[1] for b in self._buffer])
            self._pending.append((scores, lengths))
            self._n_pending += len(scores)
            start = self._n_pending >= self.window and not self._building
            self._building = self._building or start
        else:
            start = False
        self._buffer, self._n_buffer = [], 0
        return start

    def _build(self):
        try:
            with self._lock:
                lengths = np.concatenate([p[1] for p in self._pending])
            rng = np.random.default_rng(0)
            drawn = rng.choice(lengths, size=BASELINE_SESSIONS)
            drawn = np.minimum(drawn, max(1, BASELINE_FRAMES // BASELINE_SESSIONS))
            sessions = [self._model.sample(int(n), random_state=rng)[0] for n in drawn]
            base = self._model.score_batch(sessions, 1) / drawn
            monitor = LikelihoodDriftMonitor(base[np.isfinite(base)], self.window,
                                             self.quantile)
            with self._lock:
                pending = np.concatenate([p[0] for p in self._pending])
                monitor.update(pending[-self.window:])
                self.monitor = monitor
                self._pending = []
        except Exception:  # a monitor must never take the service down
            log.exception("hmmfast serve: could not sample a drift baseline; drift alarms "
                          "are off for this model")
            with self._lock:
                self._pending = []
                self.source = "failed"

    def _read(self):
        """(monitor state or None, the recent scores while there is no monitor)."""
        with self._lock:
            start = self._flush()
            if self.monitor is not None:
                state, recent = self.monitor.state(), None
            else:
                state = None
                recent = (np.concatenate([p[0] for p in self._pending])[-self.window:]
                          if self._pending else np.empty(0))
        if start:
            threading.Thread(target=self._build, name="hmmfast-drift-baseline",
                             daemon=True).start()
        return state, recent

    @property
    def mean(self):
        """Mean per-step score of the window (NaN before any session)."""
        state, recent = self._read()
        if state is not None:
            return float("nan") if state["mean"] is None else state["mean"]
        recent = recent[np.isfinite(recent)]
        return float(recent.mean()) if recent.size else float("nan")

    @property
    def alarm(self):
        state, _ = self._read()
        return bool(state is not None and state["alarm"])

    def state(self):
        """JSON-safe: source of the baseline, window, and the monitor's state."""
        state, _ = self._read()
        return {"baseline": self.source, "window": self.window, "quantile": self.quantile,
                "monitor": state}


class OccupancyTracker:
    """The occupancy monitor of one model version, fed with decoded paths (buffered and
    handed over in blocks, as for drift; at most ``OCCUPANCY_PER_REQUEST`` per request)."""

    FLUSH_SESSIONS = 64

    def __init__(self, model, collapse_fraction, window, detector=None):
        self._lock = threading.Lock()
        self._buffer = []
        self.monitor = OccupancyMonitor(model, collapse_fraction, window)
        baseline = _training_occupancy(detector)
        if baseline is not None:
            self.monitor.baseline_occupancy_ = baseline[0]
            self.monitor.baseline_switch_rate_ = baseline[1]

    def update(self, paths):
        if len(paths) > OCCUPANCY_PER_REQUEST:
            step = len(paths) / OCCUPANCY_PER_REQUEST
            paths = [paths[int(i * step)] for i in range(OCCUPANCY_PER_REQUEST)]
        with self._lock:
            self._buffer.extend(paths)
            if len(self._buffer) >= self.FLUSH_SESSIONS:
                self._flush()

    def _flush(self):
        if self._buffer:
            self.monitor.update(self._buffer)
            self._buffer = []

    @property
    def collapsed(self):
        with self._lock:
            self._flush()
            return self.monitor.collapsed

    @property
    def occupancy(self):
        with self._lock:
            self._flush()
            return self.monitor.occupancy

    def state(self):
        with self._lock:
            self._flush()
            return self.monitor.state()


def _training_occupancy(detector):
    """(occupancy, switch rate) of a detector's training paths, or None (no detector, an
    old detector dict without them). A segmented detector: its first segment's."""
    if detector is None:
        return None
    if hasattr(detector, "detectors"):
        detector = next(iter(detector.detectors.values()))
    training = getattr(detector, "training_", {})
    occupancy = training.get("occupancy")
    if occupancy is None:
        return None
    return np.asarray(occupancy, dtype=np.float64), float(training["switch_rate_all"])


class VersionMonitors:
    """Drift and occupancy for one model version."""

    def __init__(self, model, metadata, settings, detector=None):
        self.drift = DriftTracker(model, metadata.get("drift_baseline"), settings.drift_window,
                                  settings.drift_quantile)
        self.occupancy = OccupancyTracker(model, settings.collapse_fraction,
                                          settings.occupancy_window, detector)

    def state(self):
        return {"drift": self.drift.state(), "occupancy": self.occupancy.state()}


class ServiceLogs:
    """The inference logs of ``--log-paths`` and ``--log-io`` (None when off)."""

    def __init__(self, settings):
        self.paths = (PathLog(settings.log_paths_file, rate=settings.log_paths)
                      if settings.log_paths > 0 else None)
        self.io = JsonLinesLog(settings.log_io) if settings.log_io else None

    def record_io(self, endpoint, body, reply):
        """One answered data request: its body (bytes, or the service's scanned ``Body``)
        and reply (JSON texts), a time stamp."""
        if self.io is None:
            return
        data = getattr(body, "data", body)
        try:
            self.io.write([{"time": time.time(), "endpoint": endpoint,
                            "request": bytes(data).decode("utf-8", "replace"),
                            "reply": reply.decode("utf-8", "replace")}])
        except OSError:  # a full disk must not fail the request
            log.exception("hmmfast serve: could not write the input/output log")

    def record_paths(self, record, paths, ids):
        if self.paths is None:
            return
        try:
            self.paths.log(record, paths, ids)
        except OSError:
            log.exception("hmmfast serve: could not write the path log")
