"""Partitions in kernel form: the conversion and its checks.

A DataFrame partition (one row per observation: a session-id column and one or more
observation columns, sessions contiguous and in time order) becomes one concatenated
observation array and the offsets of its sessions, found by comparing neighbouring ids
(vectorised: no Python loop per session). A Bag partition (a list of sequences) is
concatenated the way ``score_batch`` concatenates a list. Errors name the partition and
the session (see _places). An empty partition is an empty Partition (no sessions).

Contiguity is checked within a partition (a session id that reappears after another id
is an error). Across partitions: when the session ids are the index and its divisions
are known, each partition checks that its ids are sorted and lie within its division
range (two comparisons), which rules out a session in two partitions; otherwise the
results' graph compares the ids at the boundaries of neighbouring partitions
(_graph.py), and ``validate=True`` compares every id (_graph.py, _em.py).
"""

from typing import NamedTuple

import numpy as np
import pandas as pd

from .. import _fit
from .. import _validation as V
from .._batch import concatenate
from .._errors import HMMInputError, HMMTypeError
from ._places import input_error, reraise, show, tag


class FrameSpec(NamedTuple):
    """How to read a DataFrame partition."""

    session_col: str
    in_index: bool        # the session ids are the index (named session_col)
    obs_cols: tuple       # one column (symbols, scalars) or several (features)
    weight_col: object    # column of per-session weights, or None
    kind: str             # the model's _observation_kind(): symbols, counts, features
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
    columns : tuple of str or None
        The observation columns (DataFrame input): X's columns, for messages.
    kind : str
        The model's ``_observation_kind()``.
    """

    __slots__ = ("X", "columns", "ids", "kind", "missing", "offsets", "weights")

    def __init__(self, X, offsets, ids=None, weights=None, missing=None, columns=None,
                 kind="features"):
        self.X = X
        self.offsets = offsets
        self.ids = ids
        self.weights = weights
        self.missing = missing
        self.columns = columns
        self.kind = kind

    @property
    def n_sessions(self):
        return len(self.offsets) - 1

    @property
    def lengths(self):
        return np.diff(self.offsets)

    def session_name(self, s):
        return f"session {show(self.ids[s])}" if self.ids is not None else f"sequence {s}"

    def column_at(self, row):
        """The observation column of a bad value in ``row`` (None when not known): the
        only column, else the first whose value there is not finite (or, for counts,
        negative or fractional)."""
        if self.columns is None or row is None or self.X is None or not 0 <= row < len(self.X):
            return None
        if len(self.columns) == 1:
            return self.columns[0]
        values = np.asarray(self.X[row], dtype=np.float64).reshape(-1)
        if values.shape != (len(self.columns),):
            return None
        bad = ~np.isfinite(values)
        if not bad.any() and self.kind == "counts":
            bad = (values < 0) | (values != np.floor(values))
        return self.columns[int(np.argmax(bad))] if bad.any() else None

    def data(self):
        """The partition as the EM internals take it. Arrays that came over the network
        may be unaligned (Dask's frames): realigned once, here, for every later use."""
        for name in ("X", "offsets", "weights", "missing"):
            arr = getattr(self, name)
            if arr is not None and not (arr.flags.aligned and arr.flags.c_contiguous):
                setattr(self, name, np.require(arr, None, ["C", "A"]))
        return _fit.TrainingData(self.X, self.offsets, self.weights, None, self.missing)


# ---------------------------------------------------------------------- DataFrame input


def session_column(df, spec):
    return df.index if spec.in_index else df[spec.session_col]


def _run_starts(values, index):
    """(start row of every run of equal ids, whether the runs' ids increase); raise if an
    id has two runs."""
    n = len(values)
    change = np.flatnonzero(values[1:] != values[:-1]) + 1 if n > 1 else np.empty(0, np.intp)
    starts = np.empty(len(change) + 1, dtype=np.intp)
    starts[0] = 0
    starts[1:] = change
    runs = values[starts]
    increasing = True
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
                raise tag(HMMInputError(
                    f"partition {index}: the rows of session {show(sid)} are not contiguous "
                    f"(a run starts at row {rows[0]} of the partition and another at row "
                    f"{rows[1]}, other sessions between): a session's rows must be "
                    "consecutive and in time order; sort each partition by session (and "
                    "time)", position=rows[1]), index, sid)
    return starts, increasing


def _check_bounds(ids, increasing, bounds, index, spec):
    """The partition's ids sorted and within its division range [lo, hi) ([lo, hi] for
    the last partition), as the data's known divisions promise."""
    if not len(ids):
        return
    lo, hi, last = bounds
    what = (f"the data's divisions (the index {spec.session_col!r} sorted, partition "
            f"{index} holding ids in [{lo!r}, {hi!r}{']' if last else ')'})")
    if not increasing:
        raise tag(HMMInputError(
            f"partition {index}: its session ids are not in increasing order, but {what} "
            "say they are: sort each partition by session (and time), or drop the "
            "divisions (ddf.clear_divisions())"), index)
    first, final = ids[0], ids[-1]
    outside = first if first < lo else final if (final > hi if last else final >= hi) else None
    if outside is not None:
        raise tag(HMMInputError(
            f"partition {index}: session {show(outside)} lies outside {what}: a session in "
            "two partitions, or divisions that do not describe the data; repartition on "
            "session boundaries (write the files by session), or drop the divisions "
            "(ddf.clear_divisions())"), index, outside)


def _obs_array(df, index, spec, part):
    """The observation column(s) as one array (symbols (T,) intp, numbers (T, D))."""
    cols = spec.obs_cols
    symbols = spec.kind == "symbols"
    for c in cols:
        dtype = df[c].dtype
        ok = (pd.api.types.is_integer_dtype(dtype) if symbols else
              pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype))
        if not ok:
            expected = "integer symbols" if symbols else "numbers"
            raise tag(HMMTypeError(
                f"partition {index}: column {c!r} (obs_col) has dtype {dtype}, expected "
                f"{expected} (the data's meta says {spec.meta_dtypes.get(c)}); make the "
                "partitions' dtypes agree, e.g. ddf.astype({...})"), index, column=c)
        # NaN in a float column reaches the model (a missing frame with
        # missing="marginalize", else its error); NA in an integer column cannot
        if not pd.api.types.is_float_dtype(dtype) and df[c].hasnans:
            row = int(np.argmax(df[c].isna().to_numpy()))
            raise input_error(f"a missing value (NA, obs_col) at row {row} of the partition; "
                              "every observation must be present", index, part, row, c)
    if symbols:
        return V.symbols(df[cols[0]].to_numpy())
    if len(cols) == 1:
        arr = df[cols[0]].to_numpy()
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
        return arr.reshape(-1, 1)
    return np.ascontiguousarray(df[list(cols)].to_numpy(dtype=np.float64))


def _session_weights(df, part, index, spec):
    c = spec.weight_col
    if not pd.api.types.is_numeric_dtype(df[c].dtype) or pd.api.types.is_bool_dtype(df[c].dtype):
        raise tag(HMMTypeError(f"partition {index}: column {c!r} (sample_weight) has dtype "
                               f"{df[c].dtype}, expected numbers"), index, column=c)
    rows = df[c].to_numpy(dtype=np.float64, na_value=np.nan)
    starts = part.offsets[:-1]
    w = rows[starts]
    bad = ~(np.isfinite(rows) & (rows >= 0))
    if bad.any():
        r = int(np.argmax(bad))
        raise input_error(f"sample_weight is {rows[r]} at row {r} of the partition: weights "
                          "must be finite numbers >= 0", index, part, r, c)
    differ = np.repeat(w, part.lengths) != rows
    if differ.any():
        r = int(np.argmax(differ))
        raise input_error(f"sample_weight changes within the session (at row {r} of the "
                          "partition): one weight per session", index, part, r, c)
    return w


def frame_partition(df, index, spec, bounds=None):
    """A DataFrame partition in kernel form (:class:`Partition`, ids set).

    ``bounds``: (lo, hi, is_last) of the partition's division range when the session ids
    are the index and its divisions are known (checked), else None.
    """
    col = session_column(df, spec)
    n = len(df)
    if col.hasnans:
        row = int(np.argmax(col.isna()))
        raise tag(HMMInputError(f"partition {index}: the session ids ({spec.session_col!r}, "
                                f"session_col) have missing values, first at row {row} of "
                                "the partition", position=row), index)
    values = col.to_numpy()
    starts, increasing = _run_starts(values, index) if n else (np.empty(0, np.intp), True)
    offsets = np.empty(len(starts) + 1, dtype=np.intp)
    offsets[:-1] = starts
    offsets[-1] = n
    ids = pd.Index(col.array.take(starts), name=spec.session_col)
    if bounds is not None:
        _check_bounds(ids, increasing, bounds, index, spec)
    part = Partition(None, offsets, ids, columns=spec.obs_cols, kind=spec.kind)
    if not n:
        part.X = np.empty(0, np.intp) if spec.kind == "symbols" else np.empty((0, 1))
        return part
    part.X = _obs_array(df, index, spec, part)
    if spec.weight_col is not None:
        part.weights = _session_weights(df, part, index, spec)
    return part


# ---------------------------------------------------------------------- Bag input


def bag_partition(model, seqs, index, weights=None):
    """A Bag partition (a list of sequences) in kernel form; empty for no sequences."""
    seqs = seqs if isinstance(seqs, list) else list(seqs)
    kind = model._observation_kind()
    w = None
    if weights is not None:
        w = np.asarray(list(weights), dtype=np.float64)
        if w.shape != (len(seqs),):
            raise tag(HMMInputError(
                f"partition {index}: sample_weight has {w.size} weights for {len(seqs)} "
                "sequences: the weights Bag must have the data's partitions, one weight "
                "per sequence"), index)
        bad = ~(np.isfinite(w) & (w >= 0))
        if bad.any():
            s = int(np.argmax(bad))
            raise tag(HMMInputError(f"partition {index}, sequence {s}: sample_weight "
                                    f"{w[s].item()!r}: weights must be finite numbers >= 0",
                                    sequence=s), index)
    if not seqs:
        return Partition(np.empty(0, np.intp), np.zeros(1, np.intp), None, w, kind=kind)
    try:
        X, offsets = concatenate(seqs, kind == "symbols")
    except (HMMInputError, HMMTypeError) as exc:
        reraise(exc, index)
    return Partition(X, offsets, None, w, kind=kind)
