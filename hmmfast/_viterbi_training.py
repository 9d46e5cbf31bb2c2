"""Viterbi training (segmental k-means, HTK's HInit): EM with hard state assignments.

Each iteration decodes every sequence with exact Viterbi under the current parameters
theta_k, which gives the Viterbi score V_k = sum_s max_q log P(X_s, q | theta_k) and
the paths q_k, then re-estimates the parameters from the counts along those paths (the
M-step of ``fit`` with one-hot posteriors, ``_supervised.counted_statistics``). The M-step
maximises log P(X, q_k | theta) (plus the log prior, as ``fit``'s), so

    V_{k+1} = max_q log P(X, q | theta_{k+1}) >= log P(X, q_k | theta_{k+1})
            >= log P(X, q_k | theta_k) = V_k :

the Viterbi score never decreases (GMMHMM: its mixture components stay soft within a
state, and the M-step is one EM step on them, which still does not decrease it). An
iteration costs one Viterbi pass and O(T) counting instead of forward, backward and
posterior statistics, and the fit converges in few iterations because the paths stop
changing; it maximises the best path's probability, not the likelihood, so its
parameters are biased towards sharper states (the usual start for left-to-right
models, then ``fit`` refines).

Start. As ``fit``'s (``init_params``), except for a left-to-right model (every
transition to the same or a later state, e.g. ``hmmfast.topology.left_right``): the
emission parameters being initialised are estimated from a uniform segmentation of each
sequence, state j on its j-th n-th (HTK's HInit), since k-means centres have no order
and would put the states' emissions in the wrong places along the chain.

The loop, restarts, rollback on failure, monitor and convergence warning are ``fit``'s
(``_fit.run_restarts`` / ``run_em``), given this module's E-step.
"""

import copy

import numpy as np
from scipy import sparse

from . import _decoders, _fit, _io_format, _supervised
from ._errors import HMMTypeError


def viterbi_estep(model, data):
    """(statistics of the Viterbi paths, Viterbi score + log prior) under the model's
    current parameters."""
    return _decode(model, data, want_stats=True)


def viterbi_objective(model, data):
    """The Viterbi score (+ log prior) of the model's current parameters."""
    return _decode(model, data, want_stats=False)[1]


def _decode(model, data, want_stats):
    c = model._cache or model._prepare()
    # the family's E-step frames in log form only (Viterbi reads no scaled table)
    log_space = copy.copy(c)
    log_space.scaling = False
    emission, rows = model._estep_frames(log_space, data)
    n = int(data.offsets[-1])
    total, states, _ = _decoders.run(_decoders.EXACT_VITERBI, c.chain, emission, rows,
                                     data.offsets, n, n_threads=c.n_threads)
    stats = _supervised.counted_statistics(model, data, states) if want_stats else None
    return stats, float(total) + model._log_prior()


def is_left_right(transmat):
    """True when every transition goes to the same or a later state (upper triangular)."""
    if sparse.issparse(transmat):
        coo = transmat.tocoo()
        return bool(np.all(coo.col >= coo.row))
    return not np.any(np.tril(np.asarray(transmat), -1))


def uniform_segmentation(offsets, n_states):
    """(T,) intp states cutting every sequence into n_states equal segments, in order
    (state j gets frames [j T_s / n, (j + 1) T_s / n) of a sequence of T_s frames)."""
    lengths = np.diff(offsets)
    t = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    return (t * n_states // np.repeat(lengths, lengths)).astype(np.intp)


def segment(model, data):
    """HTK's HInit start for a left-to-right model: the emission parameters being
    initialised (letters in ``init_params`` other than "s" and "t") re-estimated from a
    uniform segmentation of every sequence, states in order. A no-op for any other
    transition structure, or when no emission parameter is initialised."""
    letters = "".join(c for c in model.params if c in model.init_params and c not in "st")
    if not letters or not is_left_right(model._transmat):
        return
    states = uniform_segmentation(data.offsets, model.n_components)
    stats = _supervised.counted_statistics(model, data, states)
    params = model.params
    try:
        object.__setattr__(model, "params", letters)  # this M-step: emissions only
        model._do_mstep(stats)
    finally:
        object.__setattr__(model, "params", params)


def fit_viterbi(model, X, lengths=None):
    """Viterbi training with ``fit``'s controls; see BaseHMM.fit_viterbi."""
    if not hasattr(model, "_accumulate_fast"):
        raise HMMTypeError(f"fit_viterbi needs a built-in family's counting statistics; "
                           f"{type(model).__name__} has none (use fit)")
    before = _fit.snapshot(model)
    try:
        _fit.check_settings(model)
        X_canon, missing = _fit.training_X(model, X)
        offsets = _fit._offsets(lengths, len(X_canon))
        data = _fit.TrainingData(X_canon, offsets, None, None, missing)
        _fit.run_restarts(model, data, lambda m: viterbi_estep(m, data),
                          lambda m: viterbi_objective(m, data), after_init=segment)
        model._record_fit(data, _io_format.training_data_sha256(X_canon, missing, offsets),
                          "fit_viterbi")
        # the record's log-likelihood is the likelihood (one forward pass); the monitor
        # holds the Viterbi scores the fit maximised
        record = dict(model._fit_record)
        record["viterbi_log_prob"] = record["log_likelihood"]
        record["log_likelihood"] = float(_fit.objective(model, data))
        object.__setattr__(model, "_fit_record", record)
    except BaseException:
        _fit.restore(model, before)
        raise
    _fit.warn_unconverged(model.monitor_, 3)
    return model

