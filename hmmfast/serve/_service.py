"""The work behind the data endpoints, without HTTP: body bytes in, reply bytes out.

Each function reads one registry snapshot (the caller passes it), parses the body
(``_wire``), splits the sessions between the A/B arms, calls the library once per arm,
feeds the monitors and builds the reply. It runs on the event loop for small requests
and in a worker thread for large ones (``_app``); everything it touches is either
immutable (the snapshot) or locked (the monitors, the metrics).
"""

import itertools
import time

import numpy as np

from . import _wire as W
from ._errors import ServeError, from_library
from ._monitors import ServiceLogs

_REASONS = ("switch_rate", "switch_rate_pct", "longest_run", "longest_run_pct", "length",
            "length_pct", "min_step", "unseen", "reason", "end_step")


class Result:
    """A reply: JSON bytes, sessions served, seconds spent in the library."""

    __slots__ = ("body", "lib_seconds", "n_sessions")

    def __init__(self, body, n_sessions, lib_seconds):
        self.body = body
        self.n_sessions = n_sessions
        self.lib_seconds = lib_seconds


class _Part:
    """The sessions of one arm: version, arm name, sub-batch (``batch.index`` maps them
    to the request's sessions; None for the whole request)."""

    __slots__ = ("arm", "batch", "version")

    def __init__(self, version, arm, batch):
        self.version, self.arm, self.batch = version, arm, batch


def _parts(snap, batch, candidate_ok=True):
    """The arms' parts and the per-session fingerprints (None without a split)."""
    split = snap.split
    if split is None or not candidate_ok:
        return [_Part(snap.live, "live", batch)], None
    chosen = split.assign(batch.ids, len(batch))
    live, cand = snap.live, split.candidate
    models = np.where(chosen, cand.fingerprint, live.fingerprint).tolist()
    if not chosen.any():
        parts = [_Part(live, "live", batch)]
    elif chosen.all():
        parts = [_Part(cand, "candidate", batch)]
    else:
        parts = [_Part(live, "live", batch.take(~chosen)),
                 _Part(cand, "candidate", batch.take(chosen))]
    for part in parts:
        split.arms[part.arm].add_sessions(len(part.batch))
    return parts, models


def _merge(parts, values, n):
    """One list of n entries from each part's list (in its sessions' order)."""
    if len(parts) == 1:
        return values[0]
    out = [None] * n
    for part, vals in zip(parts, values, strict=True):
        for i, v in zip(part.batch.index.tolist(), vals, strict=True):
            out[i] = v
    return out


class Service:
    """The data endpoints over a model registry.

    Parameters
    ----------
    settings : Settings
    metrics : Metrics
    """

    def __init__(self, settings, metrics):
        self.settings = settings
        self.metrics = metrics
        self.threads = settings.threads
        self.logs = ServiceLogs(settings)

    def _call(self, fn, batch, clock, args=None, **options):
        """``fn(sessions, ...)`` on a batch (or on ``args``); library errors become 422s
        naming sessions."""
        args, kwargs = batch.call_args() if args is None else (args, {})
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs, **options)
        except (ValueError, TypeError) as exc:
            raise from_library(exc, batch.offsets, batch.index) from None
        finally:
            clock[0] += time.perf_counter() - start

    def _empty(self, snap, **fields):
        reply = {"model": snap.live.fingerprint, **fields, "impossible": []}
        if snap.split is not None:
            reply["models"] = []
        return Result(W.dumps(reply), 0, 0.0)

    # ---------------------------------------------------------------- /v1/score

    def score(self, snap, body):
        """``{"sessions": [...], "per_step": false}`` -> ``{"model", "scores",
        "impossible", ["per_step"], ["models"]}``."""
        obj = W.request_object(body, {"per_step"})
        per_step = W.flag(obj, "per_step")
        batch = W.sessions(obj, snap.live.model, self.settings)
        if batch is None:
            return self._empty(snap, scores=[], **({"per_step": []} if per_step else {}))
        parts, models = _parts(snap, batch)
        clock = [0.0]
        scores, steps = [], []
        for part in parts:
            out = self._call(part.version.model.score_batch, part.batch, clock,
                             n_threads=self.threads, per_step=per_step)
            s, st = out if per_step else (out, None)
            lengths = part.batch.lengths
            part.version.monitors.drift.update(s / lengths, lengths)
            if models is not None:
                snap.split.arms[part.arm].add_scores(s, lengths)
            scores.append(s)
            steps.append(st)
        n = len(batch)
        all_scores = scores[0] if len(parts) == 1 else np.empty(n)
        if len(parts) > 1:
            for part, s in zip(parts, scores, strict=True):
                all_scores[part.batch.index] = s
        reply = {"model": snap.live.fingerprint, "scores": W.floats(all_scores),
                 "impossible": np.flatnonzero(all_scores == -np.inf).tolist()}
        if per_step:
            reply["per_step"] = _merge(parts, [W.float_lists(st) for st in steps], n)
        if models is not None:
            reply["models"] = models
        self.metrics.count_impossible("score", len(reply["impossible"]))
        return self._result("score", body, reply, n, clock[0])

    def _result(self, endpoint, body, reply, n, seconds):
        out = Result(W.dumps(reply), n, seconds)
        self.logs.record_io(endpoint, body, out.body)
        return out

    # ---------------------------------------------------------------- /v2/.../infer

    def infer(self, snap, batch, states=False):
        """The Open Inference Protocol's work on the live model (no A/B split): (scores
        (S,), states (F,) int64 with -1 for impossible sessions or None, library
        seconds). Feeds the live model's drift (and occupancy) monitors."""
        live = snap.live
        clock = [0.0]
        scores = self._call(live.model.score_batch, batch, clock, n_threads=self.threads)
        live.monitors.drift.update(scores / batch.lengths, batch.lengths)
        flat = None
        if states:
            _, paths = self._call(live.model.decode_batch, batch, clock,
                                  n_threads=self.threads, errors="mark")
            live.monitors.occupancy.update(paths)
            if all(len(p) for p in paths):
                flat = np.concatenate(paths).astype(np.int64, copy=False)
            else:  # impossible sessions decode to []: -1 keeps the frames aligned
                flat = np.full(int(batch.lengths.sum()), -1, dtype=np.int64)
                for s, path in enumerate(paths):
                    if len(path):
                        flat[batch.offsets[s]:batch.offsets[s + 1]] = path
        return scores, flat, clock[0]

    # ---------------------------------------------------------------- /v1/decode

    def decode(self, snap, body):
        """``{"sessions": [...], "algorithm": "viterbi" | "map"}`` -> ``{"model",
        "logprobs", "states", "impossible", ["models"]}``."""
        obj = W.request_object(body, {"algorithm"})
        algorithm = W.choice(obj, "algorithm", ("viterbi", "map"), None)
        batch = W.sessions(obj, snap.live.model, self.settings)
        if batch is None:
            return self._empty(snap, logprobs=[], states=[])
        parts, models = _parts(snap, batch)
        clock = [0.0]
        logprobs, states, impossible = [], [], []
        for part in parts:
            lp, paths = self._call(part.version.model.decode_batch, part.batch, clock,
                                   n_threads=self.threads, algorithm=algorithm,
                                   errors="mark")
            part.version.monitors.occupancy.update(paths)
            logprobs.append(W.floats(lp))
            states.append([p.tolist() for p in paths])
            dead = np.flatnonzero(lp == -np.inf)
            dead = [int(i) for i in dead if len(paths[i]) == 0]  # impossible, not a -inf MAP
            index = part.batch.index
            impossible.extend(dead if index is None else index[dead].tolist())
        n = len(batch)
        reply = {"model": snap.live.fingerprint, "logprobs": _merge(parts, logprobs, n),
                 "states": _merge(parts, states, n), "impossible": sorted(impossible)}
        if models is not None:
            reply["models"] = models
        self.metrics.count_impossible("decode", len(impossible))
        return self._result("decode", body, reply, n, clock[0])

    # ---------------------------------------------------------------- /v1/anomaly

    def anomaly(self, snap, body):
        """``{"sessions": [...]}`` -> ``{"model", "levels", "scores", "reasons",
        "impossible", ["models"]}`` from the detector saved with the model."""
        obj = W.request_object(body, set())
        live = snap.live
        if live.detector is None:
            raise ServeError(404, "no_detector", f"the live model ({live.file}, "
                             f"{live.short}) carries no anomaly detector; save one with it: "
                             'model.save(path, metadata={"anomaly_detector": '
                             "detector.to_dict()})")
        batch = W.sessions(obj, live.model, self.settings)
        if batch is None:
            return self._empty(snap, levels=[], scores=[],
                               reasons={name: [] for name in _REASONS})
        # both arms need a detector; otherwise the live one judges every session
        candidate_ok = snap.split is not None and snap.split.candidate.detector is not None
        parts, models = _parts(snap, batch, candidate_ok)
        if snap.split is not None and not candidate_ok:
            models = [live.fingerprint] * len(batch)
        clock = [0.0]
        records = []
        for part in parts:
            record, paths = self._judge(part, clock)
            names, counts = np.unique(record.level, return_counts=True)
            levels = dict(zip(names.tolist(), counts.tolist(), strict=True))
            self.metrics.count_levels(levels)
            self.metrics.count_impossible("anomaly", int(np.sum(record.score == -np.inf)))
            lengths = part.batch.lengths
            keep = (np.ones(len(lengths), dtype=bool) if self.settings.drift_keep_anomalous
                    else record.level_code < 2)
            if keep.any():  # flagged traffic stays out of the drift window by default
                part.version.monitors.drift.update(record.loglik[keep] / lengths[keep],
                                                   lengths[keep])
            part.version.monitors.occupancy.update(paths)
            self.logs.record_paths(record, paths, part.batch.ids)
            if models is not None and candidate_ok:
                snap.split.arms[part.arm].add_scores(record.loglik, lengths)
                snap.split.arms[part.arm].add_levels(record.level)
            records.append(record.to_json())
        n = len(batch)
        scores = _merge(parts, [r["score"] for r in records], n)
        reply = {"model": live.fingerprint,
                 "levels": _merge(parts, [r["level"] for r in records], n),
                 "scores": scores,
                 "reasons": {name: _merge(parts, [r[name] for r in records], n)
                             for name in _REASONS},
                 "impossible": [i for i, s in enumerate(scores) if s is None]}
        if models is not None:
            reply["models"] = models
        return self._result("anomaly", body, reply, n, clock[0])

    def _judge(self, part, clock):
        """(record, Viterbi paths) of one arm's sessions by its version's detector; a
        segmented detector routes each session by its ``"segment"``."""
        detector, batch = part.version.detector, part.batch
        if not hasattr(detector, "detectors"):
            return self._call(detector.predict, batch, clock, return_paths=True)
        o = batch.offsets.tolist()
        sessions = [batch.values[a:b] for a, b in itertools.pairwise(o)]
        segments = batch.segments if batch.segments is not None else [None] * len(sessions)
        return self._call(detector.predict, batch, clock, (sessions, segments),
                          return_paths=True)
