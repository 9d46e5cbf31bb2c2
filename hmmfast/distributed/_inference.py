"""score_partitions and decode_partitions: the batch kernels mapped over partitions."""

import dask
import dask.bag as db
import numpy as np
import pandas as pd

from .._errors import ParameterError
from . import _arrow
from . import _tasks as T
from ._graph import frame_results
from ._source import ship, source, worker_threads


def _bag_result(func, key, src, *args):
    return db.from_delayed([dask.delayed(func, pure=True)(key, part, p, *args)
                            for p, part in enumerate(src.parts)])


def _check_flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def score_partitions(model, data, *, session_col="session", obs_col="obs", n_threads=None,
                     validate=False):
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
        one partition (checked where it is cheap, see ``validate``). Empty partitions
        give empty results.
    session_col : str
        Column (or index name) holding the session ids (DataFrame only).
    obs_col : str or list of str
        Observation column: integer symbols for a CategoricalHMM, numbers otherwise; a
        list of columns gives the features of a continuous model.
    n_threads : int, optional
        Threads of each partition's kernel call; default the model's ``n_threads``
        when set, else 1 (Dask runs one task per worker thread).
    validate : bool
        Also check that no session id is in two partitions (DataFrame only). Without
        it, a session reappearing within a partition and one split at the boundary of
        two neighbouring partitions are errors, but a session in two partitions that
        are not neighbours is not seen. When the session ids are the index and its
        divisions are known, every partition checks its ids lie in its range, which
        rules that out at no cost, with or without ``validate``. Otherwise
        ``validate=True`` sends every partition's ids to one task (8 bytes per integer
        id: 1.6 MB for 200,000 sessions) and every partition's result waits for its
        check, so results no longer stream.

    Returns
    -------
    dask.bag.Bag of float, or dask.dataframe.Series of float64
        For a Bag, one score per sequence in the input's order. For a DataFrame, a Series
        named "score" indexed by session id (one row per session, in the input's order;
        the input's divisions when they are known). -inf for a session the model cannot
        produce. Nothing is computed until you ``compute()`` (or write) it.

    Raises
    ------
    HMMTypeError, HMMInputError
        At once for a wrong collection type, a missing column or an observation dtype the
        model cannot read; when computed, for a bad partition (split session,
        non-contiguous session, mismatched dtype, symbol out of range, NaN), naming the
        partition, the session id, the step and (continuous data) the column, also as
        the error's attributes ``partition``, ``session``, ``step``, ``column``.
    """
    model._cache or model._prepare()  # fitted and valid, or the error now
    validate = _check_flag("validate", validate)
    threads = worker_threads(model, n_threads)
    src = source(model, data, session_col, obs_col)
    key = ship(model, threads)
    if not src.is_frame:
        return _bag_result(T.score_bag, key, src, threads)
    meta = pd.Series(np.empty(0), index=src.index_meta, name="score")
    return frame_results(T.score_frame, src, meta, (key, src.spec, threads), validate)


def decode_partitions(model, data, *, session_col="session", obs_col="obs", n_threads=None,
                      algorithm=None, errors="raise", beam=None, max_active=None,
                      min_active=None, memory="full", posteriors=False, occupancy=False,
                      validate=False):
    """Most likely state path of every session of a partitioned data set, lazily.

    Each partition runs :meth:`~hmmfast.BaseHMM.decode_batch`; the results equal
    ``model.decode_batch`` on all the sessions exactly.

    Parameters
    ----------
    model, data, session_col, obs_col, n_threads, validate
        As for :func:`score_partitions`.
    algorithm, errors, beam, max_active, min_active, memory
        As for :meth:`~hmmfast.BaseHMM.decode_batch` (checked now). With
        ``errors="raise"`` an impossible session fails the computation, naming its
        partition and id; ``errors="mark"`` gives it -inf and an empty path (and empty
        posteriors and occupancy).
    posteriors : bool
        Also each session's state posteriors, ``predict_proba`` of the session (equal
        to ``model.predict_proba`` on it, exactly): one more forward-backward pass per
        partition, and n_components floats per step in the result.
    occupancy : bool
        Also the share of each session's steps the decoded path spends in each state
        (n_components numbers per session; a counting pass, cheap).

    Returns
    -------
    dask.bag.Bag of tuple, or dask.dataframe.DataFrame
        For a Bag, ``(logprob, states[, posteriors][, occupancy])`` per sequence in the
        input's order (states an intp array of shape (T,), posteriors (T, n_components),
        occupancy (n_components,)). For a DataFrame, indexed by session id (the input's
        divisions when known): "logprob" (float64) and Arrow list columns (one row per
        session, ``pandas.ArrowDtype``): "states" list<int64>, then "posteriors"
        list<list<float64>> (one list of n_components probabilities per step:
        ``np.array(row)`` is the (T, n_components) array) and "occupancy" list<float64>
        when asked for. ``to_parquet`` writes them as they are (no schema needed).

    Raises
    ------
    As for :func:`score_partitions`; ParameterError for bad decoding options.
    """
    options = {"algorithm": algorithm, "errors": errors, "beam": beam,
               "max_active": max_active, "min_active": min_active, "memory": memory}
    model.decode_batch([], **options)  # fitted model and valid options, or the error now
    # a list: Dask could take a tuple of names for a key of its graph
    extras = [name for name, wanted in (("posteriors", posteriors), ("occupancy", occupancy))
              if _check_flag(name, wanted)]
    validate = _check_flag("validate", validate)
    threads = worker_threads(model, n_threads)
    src = source(model, data, session_col, obs_col)
    key = ship(model, threads)
    if not src.is_frame:
        return _bag_result(T.decode_bag, key, src, threads, options, extras)
    meta = _arrow.meta(src.index_meta, extras)
    return frame_results(T.decode_frame, src, meta, (key, src.spec, threads, options, extras),
                         validate)
