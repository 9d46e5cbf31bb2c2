"""Model versions: the live one, the last few for rollback, and an A/B candidate.

A :class:`ModelVersion` is a model file loaded, fully validated (``hmmfast.load``
checks checksums and every parameter) and run once on a sampled session before it may
serve. The :class:`Registry` holds an immutable :class:`Snapshot` (versions, split) and
changes it by building a new one and assigning it, one reference: a request reads the
snapshot once when it starts and finishes on the models it found there, however many
swaps happen meanwhile; a swapped-out model stays alive until its last request is done.

A/B split: a session goes to the candidate when :func:`unit_hash` of its id is below the
fraction (sticky: the same id always lands on the same arm for a given fraction, and a
larger fraction only adds ids); a session without an id is drawn at random.

Compatibility. A new live model, or a candidate, must accept every session the live model
accepts: the same kind of observations (integer symbols, real frames or counts) of the
same dimension, and for symbols at least as many (``n_features``). A swap to a model that
does not is refused with 409 unless forced; a split refuses such a candidate (422).

Hooks are called with (old snapshot, new snapshot) under the registry's lock:
``Registry.before`` before a change takes effect (the state file is written; a hook that
raises refuses the change), ``Registry.listeners`` after it (the metrics forget the
versions no longer held).
"""

import hashlib
import logging
import os
import random
import stat
import threading
import time

import numpy as np

from .. import load, read_header
from .._errors import ModelFileError
from ._errors import ServeError
from ._json import quote, show
from ._arms import ArmStats, welch
from ._monitors import VersionMonitors


log = logging.getLogger("hmmfast.serve")


def unit_hash(session_id):
    """The session id's place in [0, 1): the first 8 bytes of SHA-256(id, UTF-8) as a
    big-endian integer over 2**64. Clients can compute their own arm with it."""
    digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 18446744073709551616.0


class ModelVersion:
    """A loaded, validated, warmed-up model file and its monitors.

    Attributes
    ----------
    model : hmmfast model
    fingerprint : str
        The model's fingerprint (hex SHA-256); ``short`` is its first 12 characters,
        used as the ``model`` label of the metrics.
    path, file : str
        The path the file was loaded from, and its base name (what GET /v1/models shows).
    detector : hmmfast.monitor.AnomalyDetector or None
        From ``metadata["anomaly_detector"]``.
    monitors : VersionMonitors
    """

    def __init__(self, model, header, path, detector, monitors):
        self.model = model
        self.fingerprint = model.fingerprint
        self.short = self.fingerprint[:12]
        self.path = path
        self.file = os.path.basename(path)
        self.header = header
        self.detector = detector
        self.monitors = monitors
        self.loaded_at = time.time()
        self.kind = model._observation_kind()  # "symbols", "counts" or "features"
        self.n_features = int(model.n_features)

    @property
    def symbols(self):
        return self.kind == "symbols"

    def takes(self):
        """What a session's observations are, in words."""
        if self.symbols:
            return f"integer symbols < n_features={self.n_features}"
        what = "counts" if self.kind == "counts" else "numbers"
        return f"frames of n_features={self.n_features} {what}"

    def accepts_all_of(self, other):
        """True when every session ``other`` accepts is valid for this model too."""
        if self.kind != other.kind:
            return False
        if self.symbols:
            return self.n_features >= other.n_features
        return self.n_features == other.n_features

    def describe(self):
        """JSON-safe summary for GET /v1/models."""
        return {
            "fingerprint": self.fingerprint,
            "class": self.header["class"],
            "n_components": int(self.model.n_components),
            "n_features": self.n_features,
            "file": self.file,
            "loaded_at": self.loaded_at,
            "hmmfast_version": self.header.get("hmmfast_version"),
            "anomaly_detector": self.detector is not None,
            "drift_baseline": self.monitors.drift.source,
        }


def _warm_up(model, detector):
    """Run every kernel the service calls once, on a short sampled session."""
    X, _ = model.sample(4, random_state=0)
    model.score_batch([X], 1, per_step=True)
    model.decode_batch([X], 1, errors="mark")
    model.decode_batch([X], 1, algorithm="map", errors="mark")
    if detector is not None:
        segmented = getattr(detector, "detectors", None)
        for det in (segmented or {None: detector}).values():
            end = det.end_symbol_
            x = X if end is None else X[X[:, 0] != end]  # the end symbol is the detector's
            det.predict([x if len(x) else np.zeros((1, 1), dtype=X.dtype)])


def load_version(path, settings):
    """Load, validate and warm up the model file at ``path``.

    Raises ModelFileError (a ValueError) for a file that is not a valid model (or not a
    regular file: a FIFO would block the load), whose metadata holds an unusable
    detector or drift baseline; OSError when it cannot be opened.
    """
    path = os.fsdecode(os.fspath(path))
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ModelFileError(f"model file {path!r} is not a regular file (a FIFO, device "
                             "or directory); a model file must be one")
    header = read_header(path)
    model = load(path)
    if model.fingerprint != header["fingerprint"]:
        raise ModelFileError(f"model file {path!r} changed while it was being loaded (its "
                             "header and arrays disagree); try again")
    metadata = header.get("metadata") or {}
    detector = None
    try:
        if "anomaly_detector" in metadata:
            from ..monitor import AnomalyDetector, SegmentedDetector

            saved = metadata["anomaly_detector"]
            segmented = isinstance(saved, dict) and saved.get("format") == \
                "hmmfast.monitor.SegmentedDetector"
            detector = (SegmentedDetector if segmented else AnomalyDetector).from_dict(
                saved, model)
            for det in getattr(detector, "detectors", {None: detector}).values():
                det.n_threads = settings.threads
        monitors = VersionMonitors(model, metadata, settings, detector)
        _warm_up(model, detector)
    except Exception as exc:  # whatever a file's metadata makes them raise: refused
        what = "its metadata (anomaly_detector, drift_baseline) or a trial run"
        raise ModelFileError(f"model file {path!r}: {what} failed: {type(exc).__name__}: "
                             f"{exc}"[:500]) from None
    return ModelVersion(model, header, path, detector, monitors)


class Split:
    """An A/B split: a candidate version serving ``fraction`` of the sessions."""

    __slots__ = ("arms", "candidate", "fraction", "started_at")

    def __init__(self, candidate, fraction):
        self.candidate = candidate
        self.fraction = fraction
        self.started_at = time.time()
        self.arms = {"live": ArmStats(), "candidate": ArmStats()}

    def assign(self, ids, n_sessions, rng=random):
        """Boolean (S,): True where a session goes to the candidate."""
        f = self.fraction
        if ids is None:
            return np.fromiter((rng.random() < f for _ in range(n_sessions)), dtype=bool,
                               count=n_sessions)
        return np.fromiter((unit_hash(i) < f if i is not None else rng.random() < f
                            for i in ids), dtype=bool, count=n_sessions)

    def describe(self):
        return {"candidate": self.candidate.describe(), "fraction": self.fraction,
                "started_at": self.started_at,
                "arms": {name: arm.state() for name, arm in self.arms.items()}}

    def status(self):
        """The split's figures: each arm's sessions and mean per-step log-likelihood, and
        the candidate's minus the live one's with its 95 % Welch interval."""
        return {**self.describe(),
                "difference": welch(self.arms["candidate"], self.arms["live"])}


class Snapshot:
    """The registry's state at one instant: versions (live first) and the split."""

    __slots__ = ("split", "versions")

    def __init__(self, versions, split):
        self.versions = tuple(versions)
        self.split = split

    @property
    def live(self):
        return self.versions[0]


def check_fraction(value):
    """The A/B fraction: a number in [0, 1], or a 422."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0 <= value <= 1:
        raise ServeError(422, "bad_request", f"fraction must be a number in [0, 1] (the "
                         f"share of sessions for the candidate; 0 ends the split), got "
                         f"{show(value)}")
    return float(value)


def _incompatible(new, old, what, force_hint):
    hint = ' (or post "force": true to swap anyway)' if force_hint else ""
    return (f"{what} takes {new.takes()} ({new.header['class']}) but the live model takes "
            f"{old.takes()} ({old.header['class']}): sessions the live model accepts would "
            f"be refused{hint}")


class Registry:
    """The model versions a service holds; every change is one reference assignment.

    Parameters
    ----------
    first : ModelVersion
        The live model at start-up.
    keep : int
        Versions held, the live one included (default 3): after a swap the oldest
        beyond it is dropped.
    """

    def __init__(self, first, keep=3):
        self.keep = keep
        self._snapshot = Snapshot((first,), None)
        self._lock = threading.Lock()  # one change at a time
        self.closing = False
        self.before = []
        self.listeners = []

    @property
    def snapshot(self):
        """The current :class:`Snapshot` (read it once per request)."""
        return self._snapshot

    def _set(self, versions, split):
        old, new = self._snapshot, Snapshot(versions, split)
        for hook in self.before:  # may refuse the change (the state file)
            hook(old, new)
        self._snapshot = new
        for listener in self.listeners:
            listener(old, new)

    def held(self):
        """Fingerprints of every version held (live, for rollback, candidate)."""
        snap = self._snapshot
        held = {v.fingerprint for v in snap.versions}
        if snap.split is not None:
            held.add(snap.split.candidate.fingerprint)
        return held

    def swap(self, version, force=False):
        """Make ``version`` live; the previous live one is kept for rollback.

        Refused (409) when ``version`` does not accept every session the live model
        accepts, unless ``force``. A split keeps running against the new live model (its
        arm statistics restart), unless the new live model is the candidate (promoted:
        the split ends) or the candidate does not accept what the new live model does
        (the split ends).
        """
        with self._lock:
            snap = self._snapshot
            previous = snap.live
            if version.fingerprint == previous.fingerprint:
                return {"live": previous.fingerprint, "previous": None, "unchanged": True,
                        "split": self._split_state(snap.split)}
            if not force and not version.accepts_all_of(previous):
                raise ServeError(409, "incompatible_model",
                                 _incompatible(version, previous, "the new model", True),
                                 live=previous.fingerprint, refused=version.fingerprint)
            older = [v for v in snap.versions if v.fingerprint != version.fingerprint]
            versions = [version, *older][:self.keep]
            self._set(versions, self._carry_split(snap.split, version))
            split = self._snapshot.split
            return {"live": version.fingerprint, "previous": previous.fingerprint,
                    "unchanged": False, "forced": bool(force), "split": self._split_state(split)}

    @staticmethod
    def _carry_split(split, live):
        """The split that runs against the new live model ``live`` (or None)."""
        if split is None or split.candidate.fingerprint == live.fingerprint or \
                not split.candidate.accepts_all_of(live):
            return None
        return Split(split.candidate, split.fraction)

    def restore(self, versions, candidate=None, fraction=0.0):
        """Serve ``versions`` (live first) and, when given, split ``fraction`` of the
        sessions to ``candidate`` (dropped with a warning when it does not accept the
        live model's sessions or is the live model). Returns what was restored."""
        with self._lock:
            live = versions[0]
            split = None
            if candidate is not None:
                if candidate.fingerprint == live.fingerprint or \
                        not candidate.accepts_all_of(live):
                    log.warning("hmmfast serve: the saved A/B split ends: its candidate %s "
                                "is the live model or does not accept its sessions",
                                candidate.short)
                else:
                    split = Split(candidate, fraction)
            self._set(list(versions)[:self.keep], split)
            return self.describe()

    def rollback(self, fingerprint=None):
        """Make an earlier version live again: the one before the live one, or the held
        version whose fingerprint is (or starts with, >= 8 characters) ``fingerprint``.
        The versions after it are dropped."""
        with self._lock:
            snap = self._snapshot
            if fingerprint is None:
                if len(snap.versions) < 2:
                    raise ServeError(409, "no_earlier_version", "there is no earlier version "
                                     "to roll back to: the live model is the only one held")
                i = 1
            else:
                if not isinstance(fingerprint, str) or len(fingerprint) < 8:
                    raise ServeError(422, "bad_request", "fingerprint must be a string of at "
                                     f"least 8 hex characters, got {show(fingerprint)}")
                hits = [i for i, v in enumerate(snap.versions)
                        if v.fingerprint.startswith(fingerprint.lower())]
                if not hits:
                    held = [v.fingerprint[:12] for v in snap.versions]
                    raise ServeError(404, "unknown_version", f"no held version has "
                                     f"fingerprint {quote(fingerprint)}; held: {held}")
                if len(hits) > 1:
                    raise ServeError(422, "ambiguous_fingerprint", f"{quote(fingerprint)} "
                                     "starts several held fingerprints; give more characters")
                i = hits[0]
                if i == 0:
                    raise ServeError(409, "already_live", f"version {fingerprint[:12]} is "
                                     "already live")
            previous = snap.live
            versions = snap.versions[i:]
            split = self._carry_split(snap.split, versions[0])
            self._set(versions, split)
            return {"live": versions[0].fingerprint, "previous": previous.fingerprint,
                    "dropped": [v.fingerprint for v in snap.versions[:i]],
                    "split": self._split_state(split)}

    def start_split(self, candidate, fraction):
        """Serve ``fraction`` of the sessions with ``candidate`` (replacing any split)."""
        fraction = check_fraction(fraction)
        with self._lock:
            snap = self._snapshot
            if fraction == 0:
                return self._end(snap)
            if candidate is None:
                if snap.split is None:
                    raise ServeError(422, "bad_request", 'no split is running: give "path" '
                                     "(the candidate model file) with the fraction")
                split = Split(snap.split.candidate, fraction)
            else:
                live = snap.live
                if candidate.fingerprint == live.fingerprint:
                    raise ServeError(422, "candidate_is_live", "the candidate is the live "
                                     f"model (fingerprint {live.fingerprint[:12]}); give "
                                     "another model file")
                if not candidate.accepts_all_of(live):
                    raise ServeError(422, "incompatible_candidate",
                                     _incompatible(candidate, live, "the candidate", False))
                split = Split(candidate, fraction)
            self._set(snap.versions, split)
            return {"live": snap.live.fingerprint, "split": self._split_state(split)}

    def end_split(self):
        with self._lock:
            return self._end(self._snapshot)

    def _end(self, snap):
        ended = snap.split
        self._set(snap.versions, None)
        return {"live": snap.live.fingerprint, "split": None,
                "ended": self._split_state(ended)}

    @staticmethod
    def _split_state(split):
        return None if split is None else split.describe()

    def describe(self):
        """JSON-safe: live fingerprint, versions held (live first), the split."""
        snap = self._snapshot
        return {
            "live": snap.live.fingerprint,
            "versions": [{**v.describe(), "live": i == 0}
                         for i, v in enumerate(snap.versions)],
            "keep": self.keep,
            "split": self._split_state(snap.split),
        }
