"""fit_distributed's checkpoints: the model file written after every iteration, what it
records about the data, and resuming from it.

A checkpoint is a model file (``model.save``) whose metadata entry ``hmmfast.distributed``
holds the fit's progress (``iter``, ``history``, ``done``) and the data it was fitted on:
its session and frame counts and a digest. The digest is a 64-bit sum over sessions of a
hash of each session's observations (each with its step), length, weight and missing
frames: computed by each worker on its partitions once, as they are converted (about ten
NumPy passes, ~9 ns a frame: a third of one 5-state E-step, once per fit, and only with
``checkpoint=``), combined by addition, so it does not depend on how the sessions are
partitioned or ordered, while a changed, added or removed session changes it (but for a
chance of about 2**-64; it guards against mistakes, not against an adversary). Session
ids are not in it.

Resuming on data whose record differs is an error naming both records. Resuming a fit
that finished without converging, with a larger ``n_iter``, continues it to the new
``n_iter`` (as if it had been asked for from the start).
"""

import os
import warnings

import numpy as np

from .._errors import HMMInputError, ParameterError

CHECKPOINT_KEY = "hmmfast.distributed"  # the checkpoint's entry in the file's metadata

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(x):
    """SplitMix64's finaliser, in place on a uint64 array (a bijection that spreads every
    input bit over the output)."""
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


def _words(X):
    """X as (n_frames, n_columns) uint64: symbols as they are, numbers' float64 bits."""
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    if X.dtype.kind == "f":
        return np.ascontiguousarray(X, dtype=np.float64).view(np.uint64)
    return X.astype(np.int64, copy=False).view(np.uint64)


def digest(X, offsets, weights=None, missing=None):
    """The digest of a partition's sessions (see the module notes), an int < 2**64.

    Parameters
    ----------
    X : ndarray of shape (n_frames,) or (n_frames, n_features)
    offsets : ndarray of shape (n_sessions + 1,), intp
    weights : ndarray of shape (n_sessions,) or None
    missing : ndarray of shape (n_frames,), bool, or None
    """
    lengths = np.diff(offsets)
    if not len(lengths):
        return 0
    words = _words(X)
    h = words[:, 0] * _M1  # each frame: its columns, then its step, then a light mix
    for d in range(1, words.shape[1]):
        h ^= words[:, d]
        h *= _M2
    step = np.arange(len(words), dtype=np.uint64)
    step -= np.repeat(offsets[:-1].astype(np.uint64), lengths)
    step *= _GOLDEN
    h ^= step
    if missing is not None:
        h ^= missing.astype(np.uint64) * _M2
    h ^= h >> _S31
    h *= _M2
    sessions = np.add.reduceat(h, offsets[:-1])  # a session's frames (each knows its step)
    sessions ^= lengths.astype(np.uint64) * _M2
    if weights is not None:
        sessions ^= _mix(np.asarray(weights, dtype=np.float64).view(np.uint64).copy())
    return int(_mix(sessions).sum(dtype=np.uint64))


def data_record(summaries):
    """What a checkpoint records about the data: {"n_sessions", "n_frames", "digest"}."""
    total = sum(s.get("digest", 0) for s in summaries) % (1 << 64)
    return {"n_sessions": sum(s["n_sessions"] for s in summaries),
            "n_frames": sum(s["n_frames"] for s in summaries),
            "digest": f"{total:016x}"}


def _describe(record):
    return (f"{record['n_sessions']} sessions, {record['n_frames']} frames (digest "
            f"{record['digest']})")


def save(model, path, monitor, done, data):
    """Write the model and the fit's progress (parameters after ``monitor.iter`` M-steps;
    ``history`` = the objectives of the parameters before them) and ``data`` (its
    :func:`data_record`). The header's fit record is null until the fit is done."""
    object.__setattr__(model, "monitor_", monitor)
    if not done:
        object.__setattr__(model, "_fit_record", None)
    meta = {CHECKPOINT_KEY: {"iter": int(monitor.iter), "history": list(monitor.history),
                             "done": bool(done), "data": data}}
    model.save(os.fspath(path), metadata=meta)


def resume(model, path, monitor, data):
    """Parameters and progress from a checkpoint into ``model`` and ``monitor``; returns
    whether EM has iterations left to run (see the module notes).

    Raises
    ------
    ParameterError
        Not a checkpoint, or one of another model.
    HMMInputError
        The checkpoint was written for other data (its record and ``data`` differ).
    """
    import hmmfast

    shown = repr(os.fspath(path))
    header = hmmfast.read_header(path)
    saved = hmmfast.load(path)
    progress = (header.get("metadata") or {}).get(CHECKPOINT_KEY)
    if progress is None:
        raise ParameterError(f"{shown} is a model file but not a fit_distributed "
                             "checkpoint (no progress in its metadata)")
    if type(saved) is not type(model):
        raise ParameterError(f"checkpoint {shown} holds a {type(saved).__name__}, the model "
                             f"is a {type(model).__name__}")
    recorded = progress.get("data")
    if recorded is None:
        warnings.warn(f"checkpoint {shown} does not record the data it was written for (an "
                      "older hmmfast wrote it): resuming without checking it is this data",
                      UserWarning, stacklevel=4)
    elif recorded != data:
        raise HMMInputError(
            f"checkpoint {shown} was written for other data: it records "
            f"{_describe(recorded)}, the data has {_describe(data)}. Resume on the data it "
            "was written for, or start afresh (resume=False, or another checkpoint path)")
    for name in ("n_components", "n_mix", "covariance_type", "n_features"):
        if not hasattr(saved, name):
            continue
        mine, theirs = getattr(model, name, None), getattr(saved, name)
        if mine is None:
            setattr(model, name, theirs)
        elif mine != theirs:
            raise ParameterError(f"checkpoint {shown} has {name}={theirs!r}, the model "
                                 f"{name}={mine!r}: resume with the same model")
    for name in saved._param_shapes(saved._n()):
        model._set_fitted(name, getattr(saved, "_" + name[:-1]))
    monitor.history = [float(v) for v in progress["history"]]
    monitor.iter = int(progress["iter"])
    if progress["done"] and (monitor.converged or monitor.iter >= monitor.n_iter):
        return False
    if len(monitor.history) > monitor.iter:
        # the objective of the parameters as saved (a finished fit's last record): the
        # next E-step computes it again, as the uninterrupted fit's would have
        monitor.history.pop()
    return True
