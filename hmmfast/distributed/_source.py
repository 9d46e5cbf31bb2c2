"""The user's Dask collection as a list of partitions (lazy), checked against its meta."""

import copy
import itertools
import uuid

import dask
import dask.bag as db
import dask.dataframe as dd
import pandas as pd

from .. import _base
from .._errors import HMMInputError, HMMTypeError
from . import _partitions as P
from . import _places


class Source:
    """Partitions of a Bag (``spec`` None) or a DataFrame (``spec`` a FrameSpec).

    Attributes
    ----------
    collection : dask.bag.Bag or dask.dataframe.DataFrame
        The data (a DataFrame reduced to the columns used: read_parquet reads only those).
    parts : list of dask.delayed.Delayed
        One per partition, in order.
    weights : list of Delayed or None
        The partitions of a Bag of sample weights.
    spec : FrameSpec or None
    index_meta : pandas.Index or None
        An empty index of the session ids' dtype (the results' index).
    divisions : tuple or None
        The DataFrame's known divisions when the session ids are its index and the
        divisions are strictly increasing (each partition then checks it holds only ids
        of its range, and results keep them); else None.
    """

    def __init__(self, collection, spec=None, weights=None, index_meta=None,
                 divisions=None):
        self.collection = collection  # the Bag, or the DataFrame's columns we read
        self.spec = spec
        self.weights = weights
        self.index_meta = index_meta
        self.divisions = divisions

    @property
    def parts(self):
        return self.collection.to_delayed()

    @property
    def is_frame(self):
        return self.spec is not None


def _columns(obs_col):
    if isinstance(obs_col, str):
        return (obs_col,)
    try:
        cols = tuple(obs_col)
    except TypeError:
        raise HMMTypeError(f"obs_col must be a column name or a list of names, got "
                           f"{obs_col!r}") from None
    if not cols or not all(isinstance(c, str) for c in cols):
        raise HMMTypeError(f"obs_col must be a column name or a non-empty list of names, "
                           f"got {obs_col!r}")
    return cols


def _check_meta_dtype(model, name, dtype, symbols):
    if symbols:
        if not pd.api.types.is_integer_dtype(dtype):
            raise HMMTypeError(
                f"column {name!r} (obs_col) must hold integer symbols for a "
                f"{type(model).__name__}, got dtype {dtype}")
    elif not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        raise HMMTypeError(f"column {name!r} (obs_col) must hold numbers for a "
                           f"{type(model).__name__}, got dtype {dtype}")


def _usable_divisions(data):
    """``data``'s divisions if known and strictly increasing (the last two may be equal),
    as Python values; else None."""
    if not data.known_divisions:
        return None
    divisions = tuple(_places.plain(d) for d in data.divisions)
    try:
        ordered = (all(a < b for a, b in itertools.pairwise(divisions[:-1]))
                   and divisions[-2] <= divisions[-1])
    except TypeError:
        return None
    return divisions if ordered else None


def source(model, data, session_col="session", obs_col="obs", sample_weight=None):
    """Check ``data`` against the model and return its partitions (nothing computed).

    Raises
    ------
    HMMTypeError
        ``data`` is not a Dask Bag or DataFrame; an observation column of the wrong dtype.
    HMMInputError
        A missing column; a weights Bag whose partitions do not match the data's.
    """
    if not isinstance(model, _base.BaseHMM):
        raise HMMTypeError(f"model must be an hmmfast model, got {type(model).__name__}")
    if isinstance(data, db.Bag):
        weights = None
        if sample_weight is not None:
            if not isinstance(sample_weight, db.Bag):
                raise HMMTypeError(
                    "with a Bag of sequences, sample_weight must be a Bag of numbers with "
                    f"the same partitions (one weight per sequence), got "
                    f"{type(sample_weight).__name__}")
            if sample_weight.npartitions != data.npartitions:
                raise HMMInputError(
                    f"sample_weight has {sample_weight.npartitions} partitions but the data "
                    f"has {data.npartitions}: they must be partitioned alike")
            weights = sample_weight.to_delayed()
        return Source(data, weights=weights)
    if not isinstance(data, dd.DataFrame):
        hint = (" (wrap it: dask.dataframe.from_pandas(df, npartitions=...) with sessions "
                "kept whole, or dask.bag.from_sequence(sequences))"
                if isinstance(data, (pd.DataFrame, list, tuple)) else "")
        raise HMMTypeError(
            "data must be a Dask Bag of sequences or a Dask DataFrame with one row per "
            f"observation, got {type(data).__module__}.{type(data).__name__}{hint}")
    meta = data._meta
    columns = list(meta.columns)
    if session_col in columns:
        in_index = False
        index_meta = pd.Index(meta[session_col], name=session_col)
    elif meta.index.name == session_col:
        in_index = True
        index_meta = meta.index[:0]
    else:
        raise HMMInputError(
            f"data has no column {session_col!r} (session_col) and its index is not named "
            f"so; its columns are {columns}")
    cols = _columns(obs_col)
    kind = model._observation_kind()
    symbols = kind == "symbols"
    for c in cols:
        if c not in columns:
            raise HMMInputError(f"data has no column {c!r} (obs_col); its columns are "
                                f"{columns}")
        _check_meta_dtype(model, c, meta[c].dtype, symbols)
    if symbols and len(cols) != 1:
        raise HMMInputError(f"a {type(model).__name__} reads one column of symbols, got "
                            f"obs_col={list(cols)}")
    weight_col = None
    if sample_weight is not None:
        if not isinstance(sample_weight, str):
            raise HMMTypeError(
                "with a DataFrame, sample_weight must name a column (one weight per "
                f"session, repeated on its rows), got {type(sample_weight).__name__}")
        if sample_weight not in columns:
            raise HMMInputError(f"data has no column {sample_weight!r} (sample_weight); its "
                                f"columns are {columns}")
        weight_col = sample_weight
    keep = ([] if in_index else [session_col]) + list(cols)
    if weight_col is not None and weight_col not in keep:
        keep.append(weight_col)
    spec = P.FrameSpec(session_col, in_index, cols, weight_col, kind,
                       {c: meta[c].dtype for c in keep})
    # selecting the columns first lets read_parquet read only those
    return Source(data[keep], spec=spec, index_meta=index_meta,
                  divisions=_usable_divisions(data) if in_index else None)


def ship(model, n_threads=None):
    """The model as one key of the task graph: a copy (later changes to ``model`` do not
    reach tasks already built), with the kernels' thread count set. Parameters travel
    inside the graph, so a worker that dies cannot lose them; Dask reruns what it lost."""
    shipped = copy.copy(model)  # __getstate__/__setstate__: validated, no lock or cache
    for name in ("_rng", "_prior_cache"):
        shipped.__dict__.pop(name, None)
    shipped.n_threads = n_threads
    return dask_value(shipped, "hmmfast-model")


def dask_value(value, name):
    """``value`` as one key of the task graph (a worker fetches it once, whatever uses
    it): ``name`` and a random suffix."""
    return dask.delayed(value, name=f"{name}-{uuid.uuid4().hex}", traverse=False)


def worker_threads(model, n_threads):
    """Threads per partition task: the argument, else the model's n_threads, else 1
    (Dask already runs one task per worker thread)."""
    if n_threads is None:
        n_threads = model.n_threads if model.n_threads is not None else 1
    return _base.resolve_threads(n_threads)
