"""Inference logs as JSON lines with size-based rotation: sampled Viterbi paths
(:class:`PathLog`) and the input/output log of ``hmmfast serve --log-io``.

One JSON object per line, appended; when a write would take the file past ``max_bytes``
the file is rotated first (``path`` -> ``path.1`` -> ... -> ``path.<backups>``, the oldest
dropped), as ``logging.handlers.RotatingFileHandler`` does, so the disk a log takes is
bounded by (backups + 1) * max_bytes. Thread-safe (one lock per log).
"""

import hashlib
import json
import os
import threading
import time

import numpy as np

from . import _checks

#: Default size of one file (64 MiB) and the rotated files kept (3): at most 256 MiB.
MAX_BYTES = 64 * 1024 * 1024
BACKUPS = 3


class JsonLinesLog:
    """Append JSON objects, one per line, to ``path`` with size-based rotation.

    Parameters
    ----------
    path : str or os.PathLike
    max_bytes : int
        Rotate before a write would make the file larger than this (default 64 MiB).
    backups : int
        Rotated files kept (default 3; 0: the file is truncated instead).
    """

    def __init__(self, path, max_bytes=MAX_BYTES, backups=BACKUPS):
        self.path = os.fspath(path)
        self.max_bytes = _checks.integer("max_bytes", max_bytes, 1)
        self.backups = _checks.integer("backups", backups, 0)
        self._lock = threading.Lock()
        with open(self.path, "a", encoding="utf-8"):  # fail now if it cannot be written
            pass

    def _rotate(self):
        if self.backups == 0:
            open(self.path, "w").close()
            return
        for k in range(self.backups - 1, 0, -1):
            older = f"{self.path}.{k}"
            if os.path.exists(older):
                os.replace(older, f"{self.path}.{k + 1}")
        os.replace(self.path, f"{self.path}.1")

    def write(self, objects):
        """Append ``objects`` (an iterable of JSON-safe dicts); returns how many."""
        lines = [json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n"
                 for obj in objects]
        if not lines:
            return 0
        data = "".join(lines).encode("utf-8")
        with self._lock:
            try:
                size = os.path.getsize(self.path)
            except OSError:
                size = 0
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            with open(self.path, "ab") as f:
                f.write(data)
        return len(lines)


class PathLog:
    """A sample of sessions' Viterbi paths with their score, level and reason, as JSON lines.

    Parameters
    ----------
    path : str or os.PathLike
    rate : float
        Share of sessions logged (default 0.01), a fraction in (0, 1].
    seed : int
        Which sessions: with ids, a session is logged when a hash of (seed, id) falls
        below ``rate`` (the same id is always logged, or never, in every process);
        without, draws from a generator seeded with ``seed``.
    max_bytes, backups : int
        Size-based rotation (:class:`JsonLinesLog`; defaults 64 MiB and 3).

    Examples
    --------
    >>> log = PathLog("paths.jsonl", rate=0.01)                              # doctest: +SKIP
    >>> record, paths = detector.predict(sessions, return_paths=True)      # doctest: +SKIP
    >>> log.log(record, paths, ids=session_ids)                            # doctest: +SKIP

    Each line: {"time": unix seconds, "id": the session's id (or its running number in
    this log), "score", "level", "reason", "length", "path": [states]}.
    """

    def __init__(self, path, rate=0.01, seed=0, max_bytes=MAX_BYTES, backups=BACKUPS):
        self.rate = _checks.fraction("rate", rate, high_open=False)
        self.seed = _checks.integer("seed", seed, 0)
        self._out = JsonLinesLog(path, max_bytes, backups)
        self._rng = np.random.default_rng(self.seed)
        self._lock = threading.Lock()
        self._count = 0

    @property
    def path(self):
        return self._out.path

    def sampled(self, n, ids=None):
        """bool ndarray (n,): which of ``n`` sessions are logged."""
        if ids is not None:
            return np.array([_unit_hash(self.seed, i) < self.rate for i in ids], dtype=bool)
        with self._lock:
            return self._rng.random(n) < self.rate

    def log(self, record, paths, ids=None):
        """Write the sampled sessions of one batch: ``record`` from
        :meth:`AnomalyDetector.predict`, ``paths`` its Viterbi paths (``return_paths=True``),
        ``ids`` optional session ids (JSON-safe). Returns how many were written."""
        n = len(paths)
        if ids is not None and len(ids) != n:
            raise _checks.HMMInputError(f"ids must hold one id per session: expected {n}, "
                                        f"got {len(ids)}")
        chosen = np.flatnonzero(self.sampled(n, ids))
        with self._lock:
            first = self._count
            self._count += n
        now = time.time()
        score = record["score"]
        entries = [{"time": now,
                    "id": ids[s] if ids is not None else first + int(s),
                    "score": float(score[s]) if np.isfinite(score[s]) else None,
                    "level": str(record["level"][s]),
                    "reason": str(record["reason"][s]) if "reason" in record else "",
                    "length": int(record["length"][s]),
                    "path": np.asarray(paths[s]).tolist()} for s in chosen]
        return self._out.write(entries)

    def __repr__(self):
        return f"PathLog({self.path!r}, rate={self.rate}, seed={self.seed})"


def _unit_hash(seed, value):
    digest = hashlib.sha256(f"{seed}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64
