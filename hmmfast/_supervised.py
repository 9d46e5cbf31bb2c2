"""Supervised fitting: every state known (``BaseHMM.fit_supervised``).

The counting maximum-likelihood estimate: the chain's and the emissions' statistics
from one-hot posteriors, then one M-step (so the priors enter as pseudocounts, count +
prior - 1, as in ``fit``). A family whose emissions have hidden parts of their own
(GMMHMM's mixture components, ``_supervised_needs_em``) runs EM with every state known
instead: ``fit(X, lengths, states=states)`` from the same start.
"""

import numpy as np

from . import _io_format, _sparse, _versions
from . import _validation as V
from ._fit import (ConvergenceMonitor, TrainingData, _init, _offsets, check_settings,
                   check_states, estep, objective, restore, run_restarts, snapshot,
                   training_X, warn_unconverged)


def fit_supervised(model, X, states, lengths=None):
    """Counting maximum-likelihood (with the priors as pseudocounts), or EM with every
    state known for a family with ``_supervised_needs_em()``; see the module and
    BaseHMM.fit_supervised. The model is unchanged if this raises."""
    before = snapshot(model)
    try:
        X_canon, missing = training_X(model, X)
        offsets = _offsets(lengths, len(X_canon))
        n = V.check_n("n_components", model.n_components)
        labels = check_states(states, len(X_canon), n, allow_unknown=False)
        data = TrainingData(X_canon, offsets, None, labels, missing)
        sha = _io_format.training_data_sha256(X_canon, missing, offsets, labels=labels)
        if model._supervised_needs_em():
            check_settings(model)
            run_restarts(model, data, lambda m: estep(m, data), lambda m: objective(m, data))
            model._record_fit(data, sha, "fit_supervised")
            warn_unconverged(model.monitor_, 3)
            return model
        _versions.begin_fit(model)  # model._rng, and the seed to record
        with model._lock:
            _init(model, data)
            model._check()
        object.__delattr__(model, "_rng")
        stats = counted_statistics(model, data, labels)
        with model._lock:
            model._do_mstep(stats)
        model._check()
        monitor = ConvergenceMonitor(model.tol, model.n_iter, model.verbose)
        monitor._reset()
        monitor.report(objective(model, TrainingData(X_canon, offsets, None, None, missing)))
        object.__setattr__(model, "monitor_", monitor)
        model._record_fit(data, sha, "fit_supervised")
        return model
    except BaseException:
        restore(model, before)
        raise


def counted_statistics(model, data, labels):
    """The M-step's statistics of frames whose states are known: start, transition and
    emission counts of the state path ``labels`` (intp (n_samples,), every entry a
    state) over ``data``'s sequences; missing frames count for the chain only. Used by
    ``fit_supervised`` and by Viterbi training (hmmfast._viterbi_training)."""
    n = model.n_components
    offsets, missing = data.offsets, data.cache.get("missing")
    stats = model._initialize_sufficient_statistics()
    stats["nobs"] = data.n_seq
    stats["start"] = stats["start"] + np.bincount(labels[offsets[:-1]], minlength=n)
    transmat = getattr(model, "_transmat", None)
    if _sparse.is_sparse(transmat):
        stats["trans"] = stats["trans"] + _sparse.transition_counts(transmat, labels, offsets)
    else:
        pairs = labels[:-1] * n + labels[1:]
        # every consecutive pair, less those from a sequence's last frame to the next's first
        counts = (np.bincount(pairs, minlength=n * n)
                  - np.bincount(pairs[offsets[1:-1] - 1], minlength=n * n))
        stats["trans"] = stats["trans"] + counts.reshape(n, n)
    if model._symbol_frames() and missing is None:  # counts per (symbol, state) directly
        m = model._emissionprob.shape[1]
        pairs = data.X[:, 0] * n + labels
        model._accumulate_fast(stats, data, np.bincount(pairs, minlength=m * n).reshape(m, n)
                               .astype(np.float64), None)
        return stats
    onehot = np.zeros((len(labels), n))
    onehot[np.arange(len(labels)), labels] = 1.0
    if missing is not None:
        onehot[missing] = 0.0
    model._accumulate_fast(stats, data, None, onehot)
    return stats
