"""Partitions in kernel form: the conversion and its checks.

A DataFrame partition (one row per observation: a session-id column and one or more
observation columns, sessions contiguous and in time order) becomes one concatenated
observation array and the offsets of its sessions, found by comparing neighbouring ids
(vectorised: no Python loop per session). A Bag partition (a list of sequences) is
concatenated the way ``score_batch`` concatenates a list. Errors say which partition
(and session) is at fault.

Contiguity is checked within a partition (a session id that reappears after another id
is an error) and across partitions at their boundaries (the last id of partition p equal
to the first id of partition p + 1 is a session split in two), which catches the usual
cause: files or partitions cut by row count. A session whose rows sit in two partitions
that are not neighbours is not detected: that would need every id in one place, while
this check costs two ids per partition.
"""

from typing import NamedTuple

import numpy as np
import pandas as pd

from .. import _fit
from .. import _validation as V
from .._batch import concatenate
from .._errors import HMMInputError, HMMTypeError, ImpossibleSequenceError, reworded


class FrameSpec(NamedTuple):
    """How to read a DataFrame partition."""

    session_col: str
    in_index: bool        # the session ids are the index (named session_col)
    obs_cols: tuple       # one column (symbols, scalars) or several (features)
    weight_col: object    # column of per-session weights, or None
    symbols: bool         # CategoricalHMM: integer symbols, else numbers
    meta_dtypes: dict     # column -> dtype of the collection's meta (for messages)


class Partition:
    """One partition in kernel form.

    Attributes
    ----------
    X : ndarray
        The concatenated observations: (n_frames,) intp symbols, or (n_frames, n_features)
        numbers; after ``for_fit`` the family's canonical training form.
    offsets : ndarray of shape (n_sessions + 1,), intp
        Session s is ``X[offsets[s]:offsets[s + 1]]``.
    ids : pandas.Index or None
        The session ids (DataFrame input), one per session.
    weights : ndarray of shape (n_sessions,) or None
    missing : ndarray of shape (n_frames,), bool, or None
        Missing frames (continuous families with ``missing="marginalize"``).
    """

    __slots__ = ("X", "ids", "missing", "offsets", "weights")

    def __init__(self, X, offsets, ids=None, weights=None, missing=None):
        self.X = X
        self.offsets = offsets
        self.ids = ids
        self.weights = weights
        self.missing = missing

    @property
    def n_sessions(self):
        return len(self.offsets) - 1

    @property
    def lengths(self):
        return np.diff(self.offsets)

    def session_name(self, s):
        return f"session {show(self.ids[s])}" if self.ids is not None else f"sequence {s}"

    def data(self):
        """The partition as the EM internals take it. Arrays that came over the network
        may be unaligned (Dask's frames): realigned once, here, for every later use."""
        for name in ("X", "offsets", "weights", "missing"):
            arr = getattr(self, name)
            if arr is not None and not (arr.flags.aligned and arr.flags.c_contiguous):
                setattr(self, name, np.require(arr, None, ["C", "A"]))
        return _fit.TrainingData(self.X, self.offsets, self.weights, None, self.missing)


# ---------------------------------------------------------------------- messages


def show(session_id):
    """repr of a session id as the user wrote it (4, not np.int64(4))."""
    return repr(session_id.item() if isinstance(session_id, np.generic) else session_id)


def where(index, what=""):
    return f"partition {index}{what}: "


def empty_error(index):
    return HMMInputError(
        f"partition {index} is empty: every partition must hold at least one session "
        "(drop empty partitions first, e.g. bag.repartition(...) or ddf.repartition(...) "
        "on session boundaries)")


def split_error(session_id, left, right, session_col):
    return HMMInputError(
        f"session {show(session_id)} is split across partitions {left} and {right} "
        f"(session_col={session_col!r}): every session must lie within one partition, its "
        "rows in time order. Repartition on session boundaries: write the files by session, "
        f"or shuffle on {session_col!r} and sort each partition by session and time")


def reraise(exc, index, part=None):
    """The library error ``exc`` again, prefixed with the partition (and session); its
    place (``sequence``, ``step``, ``position``) stays the partition's."""
    if isinstance(exc, ImpossibleSequenceError):
        who = part.session_name(exc.sequence) if part is not None else f"sequence {exc.sequence}"
        raise reworded(exc, f"{where(index)}{who}: {exc}") from None
    raise reworded(exc, f"{where(index)}{exc}") from None


# ---------------------------------------------------------------------- DataFrame input


def session_column(df, spec):
    return df.index if spec.in_index else df[spec.session_col]


def _run_starts(values, index, spec):
    """Start row of every run of equal ids; raise if an id has two runs."""
    n = len(values)
    change = np.flatnonzero(values[1:] != values[:-1]) + 1 if n > 1 else np.empty(0, np.intp)
    starts = np.empty(len(change) + 1, dtype=np.intp)
    starts[0] = 0
    starts[1:] = change
    runs = values[starts]
    if len(runs) > 1:
        try:
            increasing = bool(np.all(runs[1:] > runs[:-1]))
        except TypeError:  # ids of mixed types: no order, use the hash check
            increasing = False
        if not increasing:
            dup = pd.Index(runs).duplicated()
            if dup.any():
                sid = runs[int(np.argmax(dup))]
                rows = starts[np.flatnonzero(pd.Index(runs) == sid)[:2]]
                raise HMMInputError(
                    f"{where(index)}the rows of session {show(sid)} are not contiguous (a run "
                    f"starts at row {rows[0]} of the partition and another at row {rows[1]}, "
                    "other sessions between): a session's rows must be consecutive and in "
                    "time order; sort each partition by session (and time)")
    return starts


def _obs_array(df, index, spec):
    """The observation column(s) as one array (symbols (T,) intp, numbers (T, D))."""
    cols = spec.obs_cols
    for c in cols:
        dtype = df[c].dtype
        ok = (pd.api.types.is_integer_dtype(dtype) if spec.symbols else
              pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))
        if not ok:
            expected = "integer symbols" if spec.symbols else "numbers"
            raise HMMTypeError(
                f"{where(index)}column {c!r} (obs_col) has dtype {dtype}, expected "
                f"{expected} (the data's meta says {spec.meta_dtypes.get(c)}); make the "
                "partitions' dtypes agree, e.g. ddf.astype({...})")
        # NaN in a float column reaches the model (a missing frame with
        # missing="marginalize", else its error); NA in an integer column cannot
        if not pd.api.types.is_float_dtype(dtype) and df[c].hasnans:
            row = int(np.argmax(df[c].isna().to_numpy()))
            raise HMMInputError(
                f"{where(index)}column {c!r} (obs_col) has missing values (NA) at row "
                f"{row}; every observation must be present", position=row)
    if spec.symbols:
        return V.symbols(df[cols[0]].to_numpy())
    if len(cols) == 1:
        arr = df[cols[0]].to_numpy()
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
        return arr.reshape(-1, 1)
    return np.ascontiguousarray(df[list(cols)].to_numpy(dtype=np.float64))


def _session_weights(df, starts, ids, index, spec):
    c = spec.weight_col
    if not pd.api.types.is_numeric_dtype(df[c].dtype) or pd.api.types.is_bool_dtype(df[c].dtype):
        raise HMMTypeError(f"{where(index)}column {c!r} (sample_weight) has dtype "
                           f"{df[c].dtype}, expected numbers")
    rows = df[c].to_numpy(dtype=np.float64, na_value=np.nan)
    w = rows[starts]
    bad = ~np.isfinite(rows)
    if bad.any():
        r = int(np.argmax(bad))
        raise HMMInputError(f"{where(index)}column {c!r} (sample_weight) is {rows[r]} at "
                            f"row {r}: weights must be finite numbers >= 0", position=r)
    lengths = np.diff(np.append(starts, len(rows)))
    differ = np.repeat(w, lengths) != rows
    if differ.any():
        s = int(np.searchsorted(starts, np.argmax(differ), side="right")) - 1
        raise HMMInputError(f"{where(index)}column {c!r} (sample_weight) changes within "
                            f"session {show(ids[s])}: one weight per session")
    return w


def frame_partition(df, index, spec):
    """A DataFrame partition in kernel form (:class:`Partition`, ids set)."""
    n = len(df)
    if n == 0:
        raise empty_error(index)
    col = session_column(df, spec)
    if col.hasnans:
        raise HMMInputError(f"{where(index)}the session ids ({spec.session_col!r}, "
                            "session_col) have missing values")
    values = col.to_numpy()
    starts = _run_starts(values, index, spec)
    offsets = np.empty(len(starts) + 1, dtype=np.intp)
    offsets[:-1] = starts
    offsets[-1] = n
    ids = pd.Index(col.array.take(starts), name=spec.session_col)
    X = _obs_array(df, index, spec)
    weights = None
    if spec.weight_col is not None:
        weights = _session_weights(df, starts, ids, index, spec)
    return Partition(X, offsets, ids, weights)


# ---------------------------------------------------------------------- Bag input


def bag_partition(model, seqs, index, weights=None):
    """A Bag partition (a list of sequences) in kernel form."""
    seqs = seqs if isinstance(seqs, list) else list(seqs)
    if not seqs:
        raise empty_error(index)
    try:
        X, offsets = concatenate(seqs, model._observation_kind() == "symbols")
    except (HMMInputError, HMMTypeError) as exc:
        reraise(exc, index)
    w = None
    if weights is not None:
        w = np.asarray(list(weights), dtype=np.float64)
        if w.shape != (len(seqs),):
            raise HMMInputError(
                f"{where(index)}sample_weight has {w.size} weights for {len(seqs)} "
                "sequences: the weights Bag must have the data's partitions, one weight "
                "per sequence")
        bad = ~(np.isfinite(w) & (w >= 0))
        if bad.any():
            s = int(np.argmax(bad))
            raise HMMInputError(f"{where(index)}sample_weight[{s}] = {w[s].item()!r}: weights must "
                                "be finite numbers >= 0", sequence=s)
    return Partition(X, offsets, None, w)
