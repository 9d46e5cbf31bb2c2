"""score_partitions and decode_partitions: the batch kernels mapped over partitions."""

import dask
import dask.bag as db
import dask.dataframe as dd
import numpy as np
import pandas as pd

from . import _tasks as T
from ._source import ship, source, worker_threads


def _frame_result(func, model_key, src, meta, *args):
    """One task per partition reads it (the collection's own tasks, fused), converts it
    and runs the kernels; a tiny task per partition then refuses a session split at the
    boundary with the previous partition (comparing its last id with this one's first)."""
    results = src.collection.map_partitions(func, model_key, src.spec, *args, meta=meta,
                                            align_dataframes=False,
                                            enforce_metadata=False).to_delayed()
    lasts = [dask.delayed(T.last_id, pure=True)(r) for r in results]
    checked = [dask.delayed(T.check_boundary, pure=True)(r, lasts[p - 1] if p else None, p,
                                                         src.spec.session_col)
               for p, r in enumerate(results)]
    # no string conversion: decode's "states" holds arrays (Dask turns object columns
    # into strings when dataframe.convert-string is on, its default)
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_delayed(checked, meta=meta, verify_meta=False)


def score_partitions(model, data, *, session_col="session", obs_col="obs", n_threads=None):
    """Log-likelihood of every session of a partitioned data set, lazily.

    Each partition runs :meth:`~hmmfast.BaseHMM.score_batch` on its sessions (one kernel
    call); the results equal ``model.score_batch`` on all the sessions exactly.

    Parameters
    ----------
    model : hmmfast model
        A fitted model. Its parameters as they are now go into the task graph (later
        changes do not reach the result).
    data : dask.bag.Bag or dask.dataframe.DataFrame
        A Bag whose items are sequences (each as ``score`` takes it: symbols of shape
        (T,) or (T, 1), frames of shape (T, n_features)); or a DataFrame with one row per
        observation: a session-id column (or index) ``session_col`` and the observation
        column(s) ``obs_col``. A session's rows are consecutive, in time order, and in
        one partition (checked: a session split at a partition boundary, or reappearing
        within a partition, is an error; see the module notes). No partition may be empty.
    session_col : str
        Column (or index name) holding the session ids (DataFrame only).
    obs_col : str or list of str
        Observation column: integer symbols for a CategoricalHMM, numbers otherwise; a
        list of columns gives the features of a continuous model.
    n_threads : int, optional
        Threads of each partition's kernel call; default the model's ``n_threads``
        when set, else 1 (Dask runs one task per worker thread).

    Returns
    -------
    dask.bag.Bag of float, or dask.dataframe.Series of float64
        For a Bag, one score per sequence in the input's order. For a DataFrame, a Series
        named "score" indexed by session id (one row per session, in the input's order).
        -inf for a session the model cannot produce. Nothing is computed until you
        ``compute()`` (or write) it.

    Raises
    ------
    HMMTypeError, HMMInputError
        At once for a wrong collection type, a missing column or an observation dtype the
        model cannot read; when computed, for a bad partition (empty, split session,
        non-contiguous session, mismatched dtype, symbol out of range), naming it.
    """
    model._cache or model._prepare()  # fitted and valid, or the error now
    threads = worker_threads(model, n_threads)
    src = source(model, data, session_col, obs_col)
    key = ship(model, threads)
    if not src.is_frame:
        return db.from_delayed([dask.delayed(T.score_bag, pure=True)(key, part, p, threads)
                                for p, part in enumerate(src.parts)])
    meta = pd.Series(np.empty(0), index=src.index_meta, name="score")
    return _frame_result(T.score_frame, key, src, meta, threads)


def decode_partitions(model, data, *, session_col="session", obs_col="obs", n_threads=None,
                      algorithm=None, errors="raise", beam=None, max_active=None,
                      min_active=None, memory="full"):
    """Most likely state path of every session of a partitioned data set, lazily.

    Each partition runs :meth:`~hmmfast.BaseHMM.decode_batch`; the results equal
    ``model.decode_batch`` on all the sessions exactly.

    Parameters
    ----------
    model, data, session_col, obs_col, n_threads
        As for :func:`score_partitions`.
    algorithm, errors, beam, max_active, min_active, memory
        As for :meth:`~hmmfast.BaseHMM.decode_batch` (checked now). With
        ``errors="raise"`` an impossible session fails the computation, naming its
        partition and id; ``errors="mark"`` gives it -inf and an empty path.

    Returns
    -------
    dask.bag.Bag of (float, ndarray), or dask.dataframe.DataFrame
        For a Bag, ``(logprob, states)`` per sequence in the input's order (states an
        intp array of shape (T,)). For a DataFrame, columns "logprob" (float64) and
        "states" (object: one intp array per session) indexed by session id.

    Raises
    ------
    As for :func:`score_partitions`; ParameterError for bad decoding options.
    """
    options = {"algorithm": algorithm, "errors": errors, "beam": beam,
               "max_active": max_active, "min_active": min_active, "memory": memory}
    model.decode_batch([], **options)  # fitted model and valid options, or the error now
    threads = worker_threads(model, n_threads)
    src = source(model, data, session_col, obs_col)
    key = ship(model, threads)
    if not src.is_frame:
        return db.from_delayed([dask.delayed(T.decode_bag, pure=True)(key, part, p, threads,
                                                                       options)
                                for p, part in enumerate(src.parts)])
    meta = pd.DataFrame({"logprob": pd.Series(np.empty(0), index=src.index_meta),
                         "states": pd.Series([], dtype=object, index=src.index_meta)},
                        index=src.index_meta)
    return _frame_result(T.decode_frame, key, src, meta, threads, options)
