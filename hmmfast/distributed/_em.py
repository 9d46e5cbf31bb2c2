"""fit_distributed: Baum-Welch with the E-step mapped over partitions.

The restarts, the EM loop and its monitor are ``hmmfast._fit``'s (``run_restarts``,
``run_em``), given this module's E-step; what differs from ``fit`` is here: the data
never comes to the client (each worker converts its partitions once and keeps them for
every iteration), the E-step runs per partition and its additive statistics are summed
in a tree, the initialisation sees a sample (the first ``init_sessions`` sessions), a
checkpoint file can record every iteration and resume the fit (_checkpoint.py), and every
wait for the cluster can be bounded (``timeout``).
"""

import itertools
import os
import time
import uuid
from types import SimpleNamespace

import dask
import numpy as np

from .. import _fit
from .. import _validation as V
from .._errors import HMMInputError, ParameterError
from . import _checkpoint as C
from . import _places
from . import _tasks as T
from ._source import ship, source, worker_threads


class _Cluster:
    """persist / compute on the given client, the default one, or in this process; every
    wait bounded by ``timeout`` seconds (with a client)."""

    def __init__(self, client, timeout):
        if client is None:
            try:
                from distributed import get_client

                client = get_client()
            except ValueError:  # no client: Dask's local scheduler
                client = None
        if timeout is not None:
            if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                    or not timeout > 0):
                raise ParameterError(f"timeout must be a number of seconds > 0 or None, "
                                     f"got {timeout!r}")
            if client is None:
                raise ParameterError("timeout= needs a distributed Client (Dask's local "
                                     "scheduler runs in this process: nothing to wait for)")
        self.client = client
        self.timeout = timeout

    def persist(self, items):
        if self.client is not None:
            return self.client.persist(items)
        return list(dask.persist(*items))

    def compute(self, item, what):
        """The value of ``item``; ``what`` names the step in a timeout's message."""
        if self.client is None:
            return dask.compute(item)[0]
        from distributed import wait

        futures = self.client.compute(item)  # a future, or a list of them for a list
        try:
            wait(futures, timeout=self.timeout)
        except TimeoutError:
            self.client.cancel(futures)
            raise TimeoutError(
                f"fit_distributed: the cluster did not finish {what} within "
                f"timeout={self.timeout} s; the model keeps the parameters it had (a "
                "checkpoint keeps its last completed iteration). Check the workers "
                "(client.dashboard_link), then fit again (resume=True continues from a "
                "checkpoint)") from None
        return self.client.gather(futures)


def _tree(leaves, combine, split_every, name):
    """Reduce ``leaves`` (in order) with ``combine`` over groups of ``split_every``."""
    level = 0
    while len(leaves) > 1:
        leaves = [dask.delayed(combine, pure=True)(leaves[i:i + split_every],
                                                   dask_key_name=f"{name}-{level}-{i}")
                  for i in range(0, len(leaves), split_every)]
        level += 1
    return leaves[0]


class _Job:
    """The partitions kept on the cluster for one fit (the non-empty ones) and the
    iterations over them."""

    def __init__(self, cluster, parts, summaries, threads, split_every):
        kept = [p for p, s in enumerate(summaries) if s["n_sessions"]]
        self.cluster = cluster
        self.parts = [parts[p] for p in kept]
        self.indices = kept  # each kept partition's number in the data
        self.summaries = [summaries[p] for p in kept]
        self.threads = threads
        self.split_every = split_every
        self.n_sessions = sum(s["n_sessions"] for s in summaries)
        self.n_frames = sum(s["n_frames"] for s in summaries)
        self.rounds = 0

    def _map_reduce(self, model, func, combine, what):
        token = uuid.uuid4().hex[:12]
        key = ship(model, self.threads)
        leaves = [dask.delayed(func, pure=True)(key, part, p,
                                                dask_key_name=f"hmmfast-{what}-{token}-{p}")
                  for p, part in zip(self.indices, self.parts, strict=True)]
        self.rounds += 1
        return self.cluster.compute(
            _tree(leaves, combine, self.split_every, f"hmmfast-{what}-sum-{token}"),
            f"the {what} of round {self.rounds} (one EM iteration)")

    def estep(self, model):
        """(summed statistics ready for the M-step, objective incl. the log prior)."""
        stats, value = self._map_reduce(model, T.partition_estep, T.combine, "E-step")
        return T.finish(model, stats), value + model._log_prior()

    def objective(self, model):
        return (self._map_reduce(model, T.partition_loglik, T.add_values, "log-likelihood")
                + model._log_prior())

    def sample(self, n_sessions):
        """The first ``n_sessions`` sessions (all with None) as TrainingData."""
        wanted = []
        left = self.n_sessions if n_sessions is None else n_sessions
        for p, s in enumerate(self.summaries):
            if left <= 0:
                break
            take = min(left, s["n_sessions"])
            wanted.append(dask.delayed(T.head, pure=True)(self.parts[p], take))
            left -= take
        heads = self.cluster.compute(wanted, "gathering the initialisation sample")
        X = np.concatenate([h.X for h in heads])
        lengths = np.concatenate([h.lengths for h in heads])
        missing = None
        if any(h.missing is not None for h in heads):
            missing = np.concatenate([np.zeros(len(h.X), bool) if h.missing is None
                                      else h.missing for h in heads])
        offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
        np.cumsum(lengths, out=offsets[1:])
        return _fit.TrainingData(X, offsets, None, None, missing)


def _check_summaries(summaries, src):
    """Not all empty; sessions split at boundaries between non-empty partitions; weights
    not all zero; one number of features."""
    kept = [(p, s) for p, s in enumerate(summaries) if s["n_sessions"]]
    if not kept:
        raise HMMInputError(f"every partition of the data ({len(summaries)}) is empty: "
                            "nothing to fit")
    if src.is_frame:
        for (left, a), (right, b) in itertools.pairwise(kept):
            if bool(a["last"] == b["first"]):
                raise _places.split_error(b["first"], left, right, src.spec.session_col)
    if (src.is_frame and src.spec.weight_col is not None) or src.weights is not None:
        if not any(s["weight_total"] > 0 for _, s in kept):
            raise HMMInputError("sample_weight is zero for every session: nothing to fit")
    features = {s["n_features"] for _, s in kept}
    if len(features) > 1:
        raise HMMInputError(f"the partitions' sequences have different numbers of features "
                            f"{sorted(features)}")


def _check_settings(model, checkpoint, resume, split_every, init_sessions):
    n_init = _fit.check_settings(model)
    V.check_n("split_every", split_every, minimum=2)
    if init_sessions is not None:
        V.check_n("init_sessions", init_sessions)
    if resume and checkpoint is None:
        raise ParameterError("resume=True needs checkpoint=path (the file to resume from)")
    if checkpoint is not None:
        if n_init > 1 and _fit.can_restart(model):
            raise ParameterError(
                f"checkpoint= supports one EM run; the model has n_init={n_init} restarts "
                "(set n_init=1, or fit without checkpoint=)")
        if not hasattr(model, "save"):
            raise ParameterError("checkpoint= needs model files (model.save / hmmfast.load), "
                                 "which this hmmfast does not have")


def fit_distributed(model, data, client=None, *, session_col="session", obs_col="obs",
                    sample_weight=None, n_threads=None, init_sessions=10_000,
                    checkpoint=None, resume=False, split_every=8, callback=None,
                    validate=False, timeout=None):
    """Baum-Welch on a Dask cluster; computes and returns the fitted ``model``.

    Each iteration ships the parameters inside the task graph, runs the E-step on every
    partition (the batch kernels, the worker's partitions kept in memory between
    iterations), sums the sufficient statistics in a tree (only they travel, O(N² + N·M)
    floats per partition, never posteriors) and runs the M-step here. The result equals
    ``model.fit`` on the concatenated sessions (to rounding, 1e-10) for the same start.

    Parameters
    ----------
    model : hmmfast model
        CategoricalHMM, GaussianHMM, GMMHMM, PoissonHMM or MultinomialHMM (and
        subclasses); its own options apply: n_iter, tol, priors, params, init_params,
        n_init, random_state, verbose (progress per iteration on stderr).
    data : dask.bag.Bag or dask.dataframe.DataFrame
        As for :func:`score_partitions`; each session is one training sequence. Empty
        partitions are left out (all empty is an error).
    client : distributed.Client, optional
        Default: the current client (``distributed.get_client()``), else Dask's local
        scheduler in this process.
    session_col, obs_col, n_threads, validate
        As for :func:`score_partitions` (``validate=True`` brings every session id to
        one task on the cluster, once, before the first iteration).
    sample_weight : str or dask.bag.Bag, optional
        Weight per session: for a DataFrame the name of a column holding the session's
        weight on each of its rows; for a Bag a Bag of numbers partitioned as ``data``.
    init_sessions : int or None
        Parameters to initialise (``init_params``, or not set) are initialised with the
        family's ``_init`` on the first ``init_sessions`` sessions (partition order),
        gathered here; None takes all of them, which gives ``fit``'s start for the same
        ``random_state``. With ``init_params=""`` and the parameters set nothing is
        gathered. A CategoricalHMM without ``n_features`` takes the largest symbol in
        the whole data + 1.
    checkpoint : path, optional
        Write the model file (``model.save``, with the fit's progress and the data's
        session count, frame count and digest in its metadata) after every iteration
        and at the end. Needs ``n_init == 1``.
    resume : bool
        With ``checkpoint``: if the file exists, continue from it (its parameters,
        iteration count and objective history) instead of initialising; the result
        equals the uninterrupted fit. A checkpoint of a fit that ended at its ``n_iter``
        without converging continues up to the model's (larger) ``n_iter``. If the file
        does not exist, start afresh.
    split_every : int
        Fan-in of the reduction tree (>= 2).
    callback : callable, optional
        ``callback(monitor)`` after every recorded objective (``monitor.history``,
        ``monitor.iter``), on the client.
    timeout : float, optional
        Seconds to wait for the cluster at each step: each EM iteration's E-step (and
        the final objective), the initialisation sample, and the first step, which also
        reads and converts every partition (so allow for it). None: no limit. Needs a
        distributed Client.

    Returns
    -------
    model
        The same object, fitted; ``model.monitor_`` as after ``fit``.

    Raises
    ------
    HMMTypeError, HMMInputError, ParameterError
        Bad collection, columns, dtypes or settings; a bad partition (split or
        non-contiguous session, symbol out of range, ...) naming the partition, the
        session and the step (attributes ``partition``, ``session``, ``step``,
        ``column``); a checkpoint written for other data (``resume=True``).
    ImpossibleSequenceError
        A session the current parameters give probability zero (partition and id named).
    TimeoutError
        A step did not finish within ``timeout`` seconds.

    Notes
    -----
    If the fit raises (or is interrupted), the model keeps the parameters it had; the
    checkpoint file, if any, keeps the last completed iteration. A worker that dies is
    replaced by Dask, which recomputes what it held (reading its partitions again); the
    statistics are summed in a fixed order, so the result is the same. Not converging
    within ``n_iter`` warns with ``hmmfast.ConvergenceWarning``.
    """
    _check_settings(model, checkpoint, resume, split_every, init_sessions)
    threads = worker_threads(model, n_threads)
    src = source(model, data, session_col, obs_col, sample_weight)
    symbols = model._observation_kind() == "symbols"
    cluster = _Cluster(client, timeout)
    before = _fit.snapshot(model)
    parts = job = None
    try:
        # convert every partition once, on the workers, and keep it there
        weights = src.weights or [None] * len(src.parts)
        key = ship(model)
        parts = cluster.persist([
            dask.delayed(T.training_partition, pure=True)(key, part, p, src.spec, w,
                                                          T.bounds(src.divisions, p))
            for p, (part, w) in enumerate(zip(src.parts, weights, strict=True))])
        with_digest = checkpoint is not None
        summaries = cluster.compute(
            [dask.delayed(T.summary, pure=True)(part, symbols, with_digest) for part in parts],
            "reading and converting the partitions")
        _check_summaries(summaries, src)
        if validate and src.is_frame and src.divisions is None:
            cluster.compute(dask.delayed(T.unique_sessions, pure=True)(
                [dask.delayed(T.partition_ids, pure=True)(part) for part in parts],
                session_col), "validate=True's check of the session ids")
        if symbols and model.n_features is None:
            model.n_features = max(s["max_symbol"] for s in summaries if s["n_sessions"]) + 1
        job = _Job(cluster, parts, summaries, threads, split_every)
        _fit_job(model, job, init_sessions, checkpoint, resume, callback,
                 C.data_record(summaries) if with_digest else None)
    except BaseException:
        _fit.restore(model, before)
        raise
    finally:
        parts = job = None  # releases the partitions kept on the cluster
    _fit.warn_unconverged(model.monitor_, 2)
    return model


def _fit_job(model, job, init_sessions, checkpoint, resume, callback, record):
    """Initialisation, restarts and EM (``hmmfast._fit.run_restarts`` / ``run_em`` with
    the job's E-step), or the rest of a checkpointed fit."""
    on_mstep = None
    if checkpoint is not None:
        def on_mstep(monitor):
            C.save(model, checkpoint, monitor, False, record)
    if resume and os.path.exists(checkpoint):
        monitor = _fit.monitor_for(model)
        more = C.resume(model, checkpoint, monitor, record)
        model._check()
        monitor._started = time.perf_counter()
        if more:
            _fit.run_em(model, job.estep, job.objective, monitor, callback, on_mstep)
        object.__setattr__(model, "monitor_", monitor)
    else:
        sample = job.sample(init_sessions) if _fit.can_restart(model) else None
        _fit.run_restarts(model, sample, job.estep, job.objective, callback, on_mstep)
    model._record_fit(SimpleNamespace(offsets=np.array([0, job.n_frames]),
                                      n_seq=job.n_sessions), method="fit_distributed")
    if checkpoint is not None:
        C.save(model, checkpoint, model.monitor_, True, record)
