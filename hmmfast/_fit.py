"""Fitting: the EM loop (Baum-Welch), its monitor, restarts and supervised counting.

Shared by every emission family. A family supplies its initialisation (``_init``), how
its observations become E-step frames (``_estep_frames``), its statistics
(``_initialize_sufficient_statistics``, ``_accumulate_fast``) and its M-step
(``_do_mstep``); the E-step kernel (csrc/_estep.pyx), the loop, the monitor, the
threads and the rollback on failure live here. The loop (``run_em``, ``run_restarts``)
takes its E-step as an argument: ``fit`` passes this module's, ``fit_distributed`` one
mapped over a Dask cluster (hmmfast/distributed/_em.py). Dirichlet prior maths is in
_priors.

What the loop maximises (the "objective", recorded in ``monitor_.history``):
    sum_s w_s log P(X_s [, known states of X_s])  +  log prior density of the parameters
where w_s are the sequence weights (1 by default), the known states are the labelled
frames of a semi-supervised fit, and the prior is the Dirichlet (and, for the continuous
families, normal-gamma / Wishart) density of hmmlearn's priors, counted only for the
parameters being fitted (``params``) and their non-zero entries. With the default priors
it is the log-likelihood, as in hmmlearn. EM never decreases it.

Loop. Iteration k runs the E-step on the current parameters theta_k, which gives the
objective of theta_k; if it gained less than ``tol`` over theta_{k-1}, theta_k is kept
and the fit has converged; otherwise the M-step makes theta_{k+1}. After ``n_iter``
M-steps the objective of the final parameters is computed (a forward pass) and
recorded, so ``monitor_.history[-1]`` is always the objective of the parameters fit
returns, and ``converged`` can never hide a decrease.
"""

import sys
import time
import warnings

import numpy as np

from . import _estep, _functional, _io_format, _kernel_inputs, _sparse, _trellis, _versions
from . import _validation as V
from ._errors import ConvergenceWarning, HMMInputError, ImpossibleSequenceError, ParameterError


class ConvergenceMonitor:
    """Records the objective per EM iteration and decides convergence.

    Attributes
    ----------
    history : list of float
        ``history[k]`` is the objective (the log-likelihood with default priors and
        weights) of the parameters after k M-steps; the last entry is that of the
        parameters ``fit`` returned.
    iter : int
        M-steps performed.
    converged : bool
        The last recorded gain was below ``tol`` (unlike hmmlearn, reaching ``n_iter``
        is not convergence).
    """

    def __init__(self, tol, n_iter, verbose):
        self.tol = tol
        self.n_iter = n_iter
        self.verbose = verbose
        self.history = []
        self.iter = 0
        self._started = None

    def __repr__(self):
        return (f"ConvergenceMonitor(tol={self.tol!r}, n_iter={self.n_iter!r}, "
                f"iter={self.iter}, converged={self.converged}, "
                f"history=[{', '.join(f'{h:.6g}' for h in self.history)}])")

    def _reset(self):
        self.history = []
        self.iter = 0
        self._started = time.perf_counter()

    @property
    def gain(self):
        """The last change of the objective (NaN before two records)."""
        return self.history[-1] - self.history[-2] if len(self.history) >= 2 else np.nan

    def report(self, objective):
        """Record the objective of the current parameters (and print it when verbose)."""
        self.history.append(float(objective))
        if self.verbose:
            now = time.perf_counter()
            print(f"hmmfast: iteration {len(self.history) - 1:>4d}  "
                  f"log-likelihood {objective:.8g}  gain {self.gain:+.4g}  "
                  f"{now - (self._started or now):.3f} s", file=sys.stderr, flush=True)

    @property
    def converged(self):
        return len(self.history) >= 2 and self.history[-1] - self.history[-2] < self.tol


# ---------------------------------------------------------------------- training data


class TrainingData:
    """Validated fit inputs: X in the family's canonical form, sequence boundaries,
    optional weights (one per sequence) and labels (one state per frame, -1 unknown)."""

    def __init__(self, X, offsets, weights=None, labels=None, missing=None):
        self.X = X
        self.offsets = offsets
        self.n_seq = len(offsets) - 1
        self.weights = weights
        self.labels = labels
        self.cache = {"missing": missing}  # per-fit derived arrays a family may keep

    @property
    def lengths(self):
        return np.diff(self.offsets)

    def sequences(self):
        for s in range(self.n_seq):
            yield s, self.offsets[s], self.offsets[s + 1]


def _offsets(lengths, n_samples):
    if lengths is None:
        return np.array([0, n_samples], dtype=np.intp)
    return V.lengths_to_offsets(lengths, n_samples)


def check_sample_weight(sample_weight, n_seq):
    """float64 (n_seq,) weights >= 0, not all zero, or None."""
    if sample_weight is None:
        return None
    w = V.as_float_array("sample_weight", sample_weight, (n_seq,),
                         f"(n_sequences,) = ({n_seq},), one weight per sequence")
    if np.any(w < 0):
        i = int(np.argmax(w < 0))
        raise HMMInputError(f"sample_weight[{i}] = {w[i].item()!r}: weights must be >= 0",
                            sequence=i)
    if not np.any(w > 0):
        raise HMMInputError("sample_weight is zero for every sequence: nothing to fit")
    return w


def check_states(states, n_samples, n_components, *, allow_unknown):
    """intp (n_samples,) state labels in [0, N) (or -1 for unknown when allowed)."""
    arr = V._real_array("states", states, "an array of state indices")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.shape[0] != n_samples:
        raise HMMInputError(
            f"states must have one entry per sample, shape ({n_samples},), "
            f"got {V._shape_str(arr.shape)}"
        )
    if arr.dtype.kind not in "iu":
        raise HMMInputError(f"states must hold integer state indices, got dtype {arr.dtype}")
    low = -1 if allow_unknown else 0
    bad = (arr < low) | (arr >= n_components)
    if np.any(bad):
        i = int(np.argmax(bad))
        what = "-1 (unknown) or " if allow_unknown else ""
        raise HMMInputError(
            f"states[{i}] = {arr[i]}: expected {what}a state index in [0, {n_components})",
            position=i)
    return np.ascontiguousarray(arr, dtype=np.intp)


# ---------------------------------------------------------------------- E-step


def estep(model, data):
    """One E-step on the model's current parameters: (stats, objective)."""
    c = model._cache or model._prepare()
    try:
        if model._uses_fast_estep():
            stats, ll = _fast_estep(model, c, data)
        else:
            stats, ll = _generic_estep(model, c, data)
    except ImpossibleSequenceError as exc:
        known = " and its known states" if data.labels is not None else ""
        raise ImpossibleSequenceError(
            f"sequence {exc.sequence}{known} has probability zero under the current "
            f"parameters (no state path explains step {exc.step}, X[{exc.position}]), so "
            "EM cannot use it: give it weight 0, or start from parameters without the "
            "zeros that forbid it",
            exc.sequence, exc.step, exc.position,
        ) from None
    return stats, ll + model._log_prior()


def transition_counts(model, trans):
    """The E-step's expected transitions in the form of the model's stats: (N, N), or the
    non-zeros of a sparse transmat_ (small sparse chains run the dense kernels)."""
    transmat = getattr(model, "_transmat", None)
    if _sparse.is_sparse(transmat) and trans.ndim == 2:
        return _sparse.values_at(trans, transmat)
    return trans


def _weighted_total(logprob, weights):
    if weights is None:
        return float(np.sum(logprob))
    return float(np.dot(weights, logprob))


def _fast_estep(model, c, data):
    emission, rows = model._estep_frames(c, data)
    want_rows = rows is not None
    logprob, start, trans, row_counts, posteriors = _estep.estep(
        c.chain, emission, rows, data.offsets, data.weights, c.scaling, c.n_threads,
        want_rows, not want_rows or model._estep_wants_posteriors,
    )
    stats = model._initialize_sufficient_statistics()
    stats["nobs"] = data.n_seq
    stats["start"] = stats["start"] + start
    stats["trans"] = stats["trans"] + transition_counts(model, trans)
    model._accumulate_fast(stats, data, row_counts, posteriors)
    return stats, _weighted_total(logprob, data.weights)


def _generic_estep(model, c, data):
    """hmmlearn's extension points, one sequence at a time (custom-emission subclasses)."""
    stats = model._initialize_sufficient_statistics()
    n = c.n_components
    total = 0.0
    for s, a, b in data.sequences():
        w = 1.0 if data.weights is None else float(data.weights[s])
        if w == 0.0:
            continue
        sub_X = data.X[a:b]
        log_em = _sequence_log_emissions(model, data, n, a, b)
        emission = _kernel_inputs.emission(log_em, c.scaling)
        try:
            logprob, start, trans, _, post = _estep.estep(
                c.chain, emission, None, None, None, c.scaling, 1, False, True)
        except ImpossibleSequenceError as exc:
            raise ImpossibleSequenceError(str(exc), s, exc.step, a + exc.step) from None
        ll, log_alpha, log_beta = _estep.log_lattices(c.chain,
                                                      _kernel_inputs.emission(log_em, False))
        lattice, fwd, bwd = _hmmlearn_lattices(c.scaling, log_em, ll, log_alpha, log_beta)
        total += w * float(logprob[0])
        missing = data.cache.get("missing")
        if missing is not None:
            post[missing[a:b]] = 0.0  # no evidence about the emissions
        # the chain's statistics come from the kernel, added here; the hook adds the
        # rest (BaseHMM's counts the sequence in "nobs"), as hmmlearn's adds them all
        if "s" in model.params:
            stats["start"] += w * start
        if "t" in model.params:
            stats["trans"] += w * transition_counts(model, trans)
        model._accumulate_sufficient_statistics(stats, sub_X, lattice, w * post, fwd, bwd)
    return stats, total


def _sequence_log_emissions(model, data, n, a, b):
    """The hook's log-emissions of frames a..b-1, missing frames 0, labels applied."""
    log_em = V.log_emission_matrix(model._compute_log_likelihood(data.X[a:b]), n,
                                   "_compute_log_likelihood(X)")
    missing = data.cache.get("missing")
    if missing is not None and missing[a:b].any():
        log_em = np.array(log_em)
        log_em[missing[a:b]] = 0.0
    if data.labels is not None:
        log_em = mask_labels(log_em, data.labels[a:b])
    return log_em


def _hmmlearn_lattices(scaling, log_em, ll, log_alpha, log_beta):
    """(lattice, fwdlattice, bwdlattice) in hmmlearn's convention for the implementation:
    log space for "log"; frame probabilities and Rabiner-scaled lattices for "scaling"."""
    if not scaling:
        return log_em, log_alpha, log_beta
    with np.errstate(under="ignore", over="ignore"):
        prefix = np.logaddexp.reduce(log_alpha, axis=1)  # log P(x_0..x_t)
        return (np.exp(log_em), np.exp(log_alpha - prefix[:, None]),
                np.exp(log_beta + prefix[:, None] - ll))


def mask_labels(log_em, labels):
    """Log-emissions with every state but the label -inf at labelled frames."""
    out = np.array(log_em, dtype=np.float64)
    known = labels >= 0
    if np.any(known):
        keep = out[known, labels[known]]
        out[known] = -np.inf
        out[known, labels[known]] = keep
    return out


def objective(model, data):
    """The objective of the model's current parameters (a forward pass, no statistics)."""
    c = model._cache or model._prepare()
    if model._uses_fast_estep():
        emission, rows = model._estep_frames(c, data)
        logprob = np.empty(data.n_seq)
        _trellis.forward(c.chain, emission, rows, data.offsets, c.scaling, logprob, c.n_threads)
        ll = _weighted_total(logprob, data.weights)
    else:
        ll = 0.0
        for s, a, b in data.sequences():
            w = 1.0 if data.weights is None else float(data.weights[s])
            if w:
                log_em = _sequence_log_emissions(model, data, c.n_components, a, b)
                ll += w * _functional.forward(c.params["startprob_"], c.params["transmat_"],
                                              log_em, implementation=model.implementation)
    return ll + model._log_prior()


# ---------------------------------------------------------------------- the loop


def run_em(model, estep, objective, monitor, on_report=None, on_mstep=None):
    """EM from the model's current parameters until convergence or n_iter M-steps.

    The one EM loop: ``fit`` runs it on data in this process, ``fit_distributed`` with an
    E-step mapped over a Dask cluster. It continues from ``monitor.iter`` M-steps (0 for
    a fresh run, more when resuming).

    Parameters
    ----------
    model : BaseHMM
        Updated in place by its ``_do_mstep``.
    estep : callable
        ``estep(model)`` -> (statistics for ``model._do_mstep``, objective of the
        current parameters).
    objective : callable
        ``objective(model)`` -> objective of the current parameters (the final iterate,
        whose statistics are not needed).
    monitor : ConvergenceMonitor
        Records every objective (and prints it when verbose); decides convergence.
    on_report, on_mstep : callable, optional
        ``on_report(monitor)`` after every recorded objective; ``on_mstep(monitor)``
        after every M-step (checkpoints).
    """
    n_iter = V.check_n("n_iter", model.n_iter, minimum=0)
    while monitor.iter < n_iter:
        stats, value = estep(model)
        monitor.report(value)
        if on_report is not None:
            on_report(monitor)
        if monitor.converged:
            return
        model._do_mstep(stats)
        monitor.iter += 1
        if on_mstep is not None:
            on_mstep(monitor)
    monitor.report(objective(model))
    if on_report is not None:
        on_report(monitor)


def run_restarts(model, init_data, estep, objective, on_report=None, on_mstep=None,
                 after_init=None):
    """Initialisation and EM, ``n_init`` times when restarts can differ (``can_restart``),
    keeping the run with the best final objective (parameters and ``monitor_``).

    ``init_data`` (TrainingData, or None to initialise nothing) goes to the model's
    ``_init``, then to ``after_init(model, init_data)`` when given (Viterbi training's
    segmentation); ``estep``, ``objective``, ``on_report`` and ``on_mstep`` go to
    :func:`run_em`. Random initialisation draws from ``model.random_state``.
    """
    n_init = V.check_n("n_init", model.n_init)
    _versions.begin_fit(model)  # model._rng, and the seed and lineage to record
    start = snapshot(model)
    runs = n_init if can_restart(model) else 1
    best = None
    for run in range(runs):
        if run:
            restore(model, start)
        monitor = monitor_for(model)
        if init_data is not None:
            _init(model, init_data)
            if after_init is not None:
                after_init(model, init_data)
        model._check()
        monitor._reset()
        run_em(model, estep, objective, monitor, on_report, on_mstep)
        object.__setattr__(model, "monitor_", monitor)
        if best is None or monitor.history[-1] > best[0]:
            best = (monitor.history[-1], snapshot(model))
    if runs > 1:
        restore(model, best[1])
    object.__delattr__(model, "_rng")


def check_settings(model):
    """Validate the fit controls n_init, n_iter and tol; returns n_init."""
    n_init = V.check_n("n_init", model.n_init)
    V.check_n("n_iter", model.n_iter, minimum=0)
    if (not isinstance(model.tol, (int, float, np.floating, np.integer))
            or isinstance(model.tol, bool) or np.isnan(model.tol)):
        raise ParameterError(f"tol must be a number (-inf: never stop early), got {model.tol!r}")
    return n_init


def warn_unconverged(monitor, stacklevel):
    """ConvergenceWarning when the fit used all n_iter M-steps without converging;
    ``stacklevel`` as for ``warnings.warn`` called where this is."""
    if monitor.iter == monitor.n_iter and monitor.n_iter > 0 and not monitor.converged:
        warnings.warn(
            f"hmmfast: EM did not converge within n_iter={monitor.n_iter} iterations "
            f"(last gain {monitor.gain:.4g} >= tol={monitor.tol}); raise n_iter or tol",
            ConvergenceWarning, stacklevel=stacklevel + 1,
        )


def snapshot(model):
    """The model's state, for :func:`restore` (fit leaves a model unchanged if it fails)."""
    return dict(model.__dict__)


def restore(model, state):
    with model._lock:
        for name in list(model.__dict__):
            if name not in state and name not in model._UNPICKLED:
                object.__delattr__(model, name)
        for name, value in state.items():
            if name not in model._UNPICKLED:
                object.__setattr__(model, name, value)
        object.__setattr__(model, "_epoch", model._epoch + 1)
        object.__setattr__(model, "_cache", None)


def can_restart(model):
    """Whether restarts can differ: some parameter is (re)initialised at random."""
    return any(model._will_init(code, name) for code, name in model._init_letters())


def fit(model, X, lengths=None, sample_weight=None, states=None):
    """Baum-Welch with restarts; see BaseHMM.fit. The model is unchanged if this raises."""
    before = snapshot(model)
    try:
        return _fit(model, X, lengths, sample_weight, states)
    except BaseException:
        restore(model, before)
        raise


def _fit(model, X, lengths, sample_weight, states):
    check_settings(model)
    X_canon, missing = training_X(model, X)
    offsets = _offsets(lengths, len(X_canon))
    weights = check_sample_weight(sample_weight, len(offsets) - 1)
    labels = None
    if states is not None:
        labels = check_states(states, len(X_canon), V.check_n("n_components",
                              model.n_components), allow_unknown=True)
        if not np.any(labels >= 0):
            labels = None  # nothing known: an ordinary fit
    data = TrainingData(X_canon, offsets, weights, labels, missing)
    run_restarts(model, data, lambda m: estep(m, data), lambda m: objective(m, data))
    model._record_fit(data, _io_format.training_data_sha256(X_canon, missing, offsets,
                                                            weights, labels))
    warn_unconverged(model.monitor_, 4)
    return model


def _init(model, data):
    """model._init on the observed frames (hmmlearn's hook: missing frames left out)."""
    missing = data.cache.get("missing")
    if missing is None:
        model._init(data.X, data.lengths)
    else:
        model._init(data.X[~missing], None)


def training_X(model, X):
    """(X in the family's canonical form, mask of missing frames or None)."""
    out = model._training_X(X)
    return out if isinstance(out, tuple) else (out, None)


def monitor_for(model):
    """A fresh monitor for a run: the model's ``monitor_`` class (a copy of it, so a
    subclass or its settings carry over) with the model's tol, n_iter and verbose."""
    monitor = getattr(model, "monitor_", None)
    if isinstance(monitor, ConvergenceMonitor):
        monitor = type(monitor).__new__(type(monitor))
        monitor.__dict__.update(model.monitor_.__dict__)
    else:
        monitor = ConvergenceMonitor(model.tol, model.n_iter, model.verbose)
    monitor.tol, monitor.n_iter, monitor.verbose = model.tol, model.n_iter, model.verbose
    return monitor


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


def fit_supervised(model, X, states, lengths=None):
    """Counting maximum-likelihood (with the priors as pseudocounts); see BaseHMM."""
    before = snapshot(model)
    try:
        X_canon, missing = training_X(model, X)
        offsets = _offsets(lengths, len(X_canon))
        n = V.check_n("n_components", model.n_components)
        labels = check_states(states, len(X_canon), n, allow_unknown=False)
        data = TrainingData(X_canon, offsets, None, labels, missing)
        _versions.begin_fit(model)
        _init(model, data)
        object.__delattr__(model, "_rng")
        model._check()
        model._do_mstep(counted_statistics(model, data, labels))
        model._check()
        monitor = ConvergenceMonitor(model.tol, model.n_iter, model.verbose)
        monitor._reset()
        monitor.report(objective(model, TrainingData(X_canon, offsets, None, None, missing)))
        object.__setattr__(model, "monitor_", monitor)
        model._record_fit(data, _io_format.training_data_sha256(X_canon, missing, offsets,
                                                                labels=labels),
                          "fit_supervised")
        return model
    except BaseException:
        restore(model, before)
        raise
