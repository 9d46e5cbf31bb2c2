"""Decoded paths as Arrow list columns: one row per session, exact meta.

A partition's paths come out of the kernels as one concatenated array; an Arrow list
column is that array and the sessions' offsets, so building it copies nothing per
session, it pickles as a few buffers (no Python object per session), and Parquet writes
it as it is. The columns, each ``pandas.ArrowDtype``:

states : list<int64>
    The decoded path, one state per step.
posteriors : list<list<float64>>  (``posteriors=True``)
    ``predict_proba`` of the session: one list of ``n_components`` probabilities per step
    (``np.array(row)`` gives the (T, n_components) array).
occupancy : list<float64>  (``occupancy=True``)
    The share of the session's steps the decoded path spends in each state
    (``n_components`` numbers summing to 1).

A session that decode marked impossible (``errors="mark"``) has empty lists in all three.
Arrow list offsets are 32-bit: a partition holds at most 2**31 - 1 steps (and steps times
``n_components`` posteriors), or its decode is an error naming it.
"""

import numpy as np
import pandas as pd
import pyarrow as pa

from .._errors import HMMInputError
from ._places import tag

STATES = pa.list_(pa.int64())
POSTERIORS = pa.list_(pa.list_(pa.float64()))
OCCUPANCY = pa.list_(pa.float64())
EXTRAS = {"posteriors": POSTERIORS, "occupancy": OCCUPANCY}
_MAX_OFFSET = np.iinfo(np.int32).max


def meta(index_meta, extras):
    """The empty DataFrame a decode result's partitions look like."""
    columns = {"logprob": pd.Series(np.empty(0), index=index_meta),
               "states": pd.Series([], dtype=pd.ArrowDtype(STATES), index=index_meta)}
    for name in extras:
        columns[name] = pd.Series([], dtype=pd.ArrowDtype(EXTRAS[name]), index=index_meta)
    return pd.DataFrame(columns, index=index_meta)


class Decoded:
    """One partition's decoding, concatenated.

    Attributes
    ----------
    logprob : ndarray of shape (n_sessions,)
    states : ndarray of shape (n_steps,), int64
        The paths one after the other (a marked session contributes none).
    path_lengths : ndarray of shape (n_sessions,), intp
        Length of each path: the session's, 0 for a session marked impossible.
    kept : ndarray of shape (n_sessions,), bool
        Sessions with a path.
    posteriors : ndarray of shape (n_steps, n_components) or None
    occupancy : ndarray of shape (kept sessions, n_components) or None
    """

    def __init__(self, logprob, states, path_lengths):
        self.logprob = logprob
        self.states = states
        self.path_lengths = path_lengths
        self.kept = path_lengths > 0
        self.posteriors = None
        self.occupancy = None

    @classmethod
    def of(cls, logprob, paths):
        """From ``decode_batch``'s (logprob, paths)."""
        path_lengths = np.fromiter(map(len, paths), np.intp, len(paths))
        states = np.concatenate(paths) if paths else np.empty(0, np.intp)
        return cls(logprob, states.astype(np.int64, copy=False), path_lengths)

    @classmethod
    def empty(cls, n_components, extras):
        out = cls(np.empty(0), np.empty(0, np.int64), np.empty(0, np.intp))
        if "posteriors" in extras:
            out.posteriors = np.empty((0, n_components))
        if "occupancy" in extras:
            out.occupancy = np.empty((0, n_components))
        return out

    def shares(self, n_components):
        """(kept sessions, n_components): each state's share of the path's steps."""
        n_sessions = len(self.logprob)
        session = np.repeat(np.arange(n_sessions), self.path_lengths)
        counts = np.bincount(session * n_components + self.states,
                             minlength=n_sessions * n_components)
        counts = counts.reshape(n_sessions, n_components)[self.kept]
        return counts / self.path_lengths[self.kept, None]

    def items(self):
        """One tuple per session: (logprob, states[, posteriors][, occupancy]) as arrays
        (a Bag's items)."""
        ends = np.cumsum(self.path_lengths)
        starts = ends - self.path_lengths
        k = np.cumsum(self.kept) - 1  # row of each kept session in occupancy
        out = []
        for s, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            item = [float(self.logprob[s]), self.states[a:b]]
            if self.posteriors is not None:
                item.append(self.posteriors[a:b])
            if self.occupancy is not None:
                item.append(self.occupancy[k[s]] if self.kept[s]
                            else np.empty(0))
            out.append(tuple(item))
        return out


def _offsets(counts, index, what):
    """int32 Arrow offsets of lists of ``counts`` values, or the error naming the
    partition."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if offsets[-1] > _MAX_OFFSET:
        raise tag(HMMInputError(
            f"partition {index} has {offsets[-1]} {what}, more than an Arrow list column "
            f"holds per partition ({_MAX_OFFSET}): use smaller partitions"), index)
    return pa.array(offsets.astype(np.int32))


def _column(array):
    return pd.arrays.ArrowExtensionArray(array)


def decoded_frame(decoded, ids, index, n_components):
    """A partition's decode result: DataFrame indexed by ``ids`` (see the module notes)."""
    offsets = _offsets(decoded.path_lengths, index, "steps")
    columns = {"logprob": decoded.logprob,
               "states": _column(pa.ListArray.from_arrays(offsets, decoded.states))}
    if decoded.posteriors is not None:
        n_steps = len(decoded.states)
        inner = _offsets(np.full(n_steps, n_components), index,
                         "posterior probabilities (steps x n_components)")
        steps = pa.ListArray.from_arrays(inner, decoded.posteriors.reshape(-1))
        columns["posteriors"] = _column(pa.ListArray.from_arrays(offsets, steps))
    if decoded.occupancy is not None:
        per_session = _offsets(decoded.kept * n_components, index, "occupancy shares")
        columns["occupancy"] = _column(pa.ListArray.from_arrays(
            per_session, decoded.occupancy.reshape(-1)))
    return pd.DataFrame(columns, index=ids)
