"""AnomalyDetector.to_dict / from_dict: a fitted detector as JSON-safe data, for a model
file's header metadata (under "anomaly_detector").

Version 2 (this release) carries the evidence cut-offs, the stream's cut-offs by steps
read, the end symbol or exit probabilities and the training occupancy; version 1 dicts
(thresholds on the score alone) still load, as score-only detectors.
"""

import numpy as np

from .._errors import ParameterError
from . import _checks, _evidence, _reasons

FORMAT = "hmmfast.monitor.AnomalyDetector"
VERSION = 2
_REASON_DISTS = ("switch_rate", "longest_run", "length")


def fingerprint(model):
    """The model's fingerprint when the library provides one (model files), else None."""
    try:
        value = model.fingerprint
    except Exception:  # an unfitted model, or a library without fingerprints
        return None
    return value if isinstance(value, str) else None


def to_dict(det):
    model = det.model
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": {"class": type(model).__name__, "n_components": int(model.n_components),
                  "fingerprint": fingerprint(model)},
        "suspicious": det.suspicious,
        "anomalous": det.anomalous,
        "normalize": det.normalize,
        "min_steps": det.min_steps,
        "end_symbol": det.end_symbol,
        "end_symbol_": det.end_symbol_,
        "exit_prob": None if det.exit_prob_ is None else det.exit_prob_.tolist(),
        "evidence": list(det.evidence),
        "unseen_log": det.unseen_log,
        "unseen_log_": det.unseen_log_,
        "thresholds": dict(det.thresholds_),
        "cutoffs": _evidence.cutoffs_to_dict(det.cutoffs_),
        "stream_cutoffs": det.stream_cutoffs_,
        "n_train": det.n_train_,
        "training": {name: _reasons.dist_to_dict(det.training_[name])
                     for name in _REASON_DISTS},
        "occupancy": np.asarray(det.training_["occupancy"]).tolist(),
        "switch_rate_all": det.training_["switch_rate_all"],
        "per_step": list(det.training_["per_step"]),
    }


def _check_model(d, model):
    _checks.model(model)
    meta = d.get("model", {})
    if meta.get("class") != type(model).__name__ or \
            meta.get("n_components") != model.n_components:
        raise ParameterError(
            f"this detector was fitted over a {meta.get('class')} with n_components="
            f"{meta.get('n_components')}, got a {type(model).__name__} with "
            f"n_components={model.n_components}")
    found = fingerprint(model)
    if meta.get("fingerprint") and found and meta["fingerprint"] != found:
        raise ParameterError(
            f"this detector was fitted over the model with fingerprint "
            f"{meta['fingerprint'][:12]}..., got a model with fingerprint {found[:12]}...")


def from_dict(cls, d, model):
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ParameterError(f"expected a dict from AnomalyDetector.to_dict() (format "
                             f"{FORMAT!r}), got {str(d)[:80]!r}")
    version = d.get("version")
    if version not in (1, VERSION):
        raise ParameterError(f"AnomalyDetector dict version {version!r} is not supported "
                             f"(expected 1 or {VERSION})")
    _check_model(d, model)
    try:
        det = cls(model, d["suspicious"], d["anomalous"], d["normalize"],
                  min_steps=d["min_steps"], end_symbol=d["end_symbol"],
                  evidence=tuple(d["evidence"]) if version > 1 else ("score",),
                  unseen_log=d["unseen_log"])
        thresholds = {k: float(d["thresholds"][k]) for k in ("suspicious", "anomalous")}
        det.unseen_log_ = float(d["unseen_log_"])
        det.n_train_ = int(d["n_train"])
        training = d["training"]
        if version > 1:
            det.end_symbol_ = None if d["end_symbol_"] is None else int(d["end_symbol_"])
            exit_prob = d["exit_prob"]
            det.exit_prob_ = None if exit_prob is None else np.asarray(exit_prob, float)
            det.cutoffs_ = _evidence.cutoffs_from_dict(d["cutoffs"])
            det.stream_cutoffs_ = d["stream_cutoffs"]
            occupancy = np.asarray(d["occupancy"], dtype=np.float64)
            switch_all = float(d["switch_rate_all"])
            per_step = tuple(float(v) for v in d["per_step"])
        else:
            det.cutoffs_ = {t: {"score": v, "tie": -np.inf}
                            for t, v in thresholds.items()}
            det.stream_cutoffs_ = None
            occupancy, switch_all, per_step = None, 0.5, (0.0, 1.0, 0.0)
    except (KeyError, TypeError, ValueError) as exc:
        raise ParameterError(f"AnomalyDetector dict is missing or has a bad entry: "
                             f"{exc!r}") from None
    if not thresholds["anomalous"] <= thresholds["suspicious"] and version == 1:
        raise ParameterError(f"thresholds must have anomalous <= suspicious, got "
                             f"{thresholds}")
    if det.exit_prob_ is not None and det.exit_prob_.shape != (model.n_components,):
        raise ParameterError(f"exit_prob must hold one probability per state "
                             f"({model.n_components}), got shape {det.exit_prob_.shape}")
    det.thresholds_ = thresholds
    det.training_ = {name: _reasons.dist_from_dict(name, training.get(name, {}))
                     for name in _REASON_DISTS}
    det.training_["occupancy"] = occupancy
    det.training_["switch_rate_all"] = switch_all
    det.training_["per_step"] = per_step
    return det
