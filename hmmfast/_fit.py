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
returns. A sequence of weight 0 takes no part in the objective (its log-likelihood may
be -inf); a non-finite objective is an error that names its cause.

A decrease beyond rounding (``ROUNDING`` relative) is never reported as convergence:
EM stops, the best iterate so far is restored (``history`` ends with its objective,
``iter`` counts its M-steps), ``monitor_.decreased`` records the fall,
``converged`` is False and ``fit`` warns (ConvergenceWarning). With the built-in
families and priors EM is monotone; this catches a custom M-step that is not.

Readers. Every M-step, initialisation and rollback runs under the model's lock, which
the cache build takes too (BaseHMM), so a thread scoring the model while it is fitted
sees one whole iterate: the parameters before an M-step or after it, never a mix.
"""

import sys
import time
import warnings

import numpy as np

from . import _estep, _functional, _io_format, _kernel_inputs, _sparse, _trellis, _versions
from . import _validation as V
from ._errors import ConvergenceWarning, HMMInputError, ImpossibleSequenceError, ParameterError

#: a fall of the objective larger than this x max(|objective|, 1) is a decrease (DESIGN:
#: "never decreases beyond 1e-8 relative rounding"); smaller ones are rounding
ROUNDING = 1e-8


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
        is not convergence); False after a decrease.
    decreased : tuple or None
        (M-steps, objective) of an iterate whose objective fell below the best one's by
        more than rounding; EM stopped there and kept the best iterate. None normally.
    """

    def __init__(self, tol, n_iter, verbose):
        self.tol = tol
        self.n_iter = n_iter
        self.verbose = verbose
        self.history = []
        self.iter = 0
        self.decreased = None
        self._started = None

    def __repr__(self):
        return (f"ConvergenceMonitor(tol={self.tol!r}, n_iter={self.n_iter!r}, "
                f"iter={self.iter}, converged={self.converged}, "
                f"history=[{', '.join(f'{h:.6g}' for h in self.history)}])")

    def _reset(self):
        self.history = []
        self.iter = 0
        self.decreased = None
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
        if getattr(self, "decreased", None) is not None:
            return False
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
    return stats, _with_prior(model, ll)


def transition_counts(model, trans):
    """The E-step's expected transitions in the form of the model's stats: (N, N), or the
    non-zeros of a sparse transmat_ (small sparse chains run the dense kernels)."""
    transmat = getattr(model, "_transmat", None)
    if _sparse.is_sparse(transmat) and trans.ndim == 2:
        return _sparse.values_at(trans, transmat)
    return trans


def _weighted_total(logprob, weights):
    """sum_s w_s logprob_s over the sequences of positive weight (a weight-0 sequence
    may be impossible: it takes no part, instead of 0 x -inf = NaN); a non-finite
    total is an error naming the sequence."""
    if weights is None:
        used = np.arange(len(logprob))
        total = float(np.sum(logprob))
    else:
        used = np.flatnonzero(weights > 0)
        total = float(np.dot(weights[used], logprob[used]))
    if not np.isfinite(total):
        bad = used[~np.isfinite(logprob[used])]
        s = int(bad[0]) if len(bad) else None
        value = float(logprob[s]) if s is not None else total
        if value == -np.inf:
            raise ImpossibleSequenceError(
                f"sequence {s} has probability zero under the current parameters, so EM "
                "cannot use it: give it weight 0, or start from parameters without the "
                "zeros that forbid it", s)
        where = f"sequence {s}'s log-likelihood" if s is not None else "the weighted sum"
        raise ParameterError(
            f"EM's objective is not finite: {where} is {value!r} (an emission density "
            "without bound, e.g. a variance collapsed to 0: raise min_covar)")
    return total


def _with_prior(model, log_likelihood):
    """The objective: the log-likelihood plus the model's log prior density, which
    must be finite (an error naming the priors otherwise)."""
    log_prior = model._log_prior()
    if not np.isfinite(log_prior):
        raise ParameterError(
            f"EM's objective is not finite: the log prior density of the parameters is "
            f"{log_prior!r}; check the model's priors (*_prior, *_weight)")
    return log_likelihood + log_prior


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
    logprobs = np.zeros(data.n_seq)
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
        logprobs[s] = logprob[0]
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
    return stats, _weighted_total(logprobs, data.weights)


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
        logprob = np.zeros(data.n_seq)
        for s, a, b in data.sequences():
            if data.weights is None or data.weights[s] > 0:
                log_em = _sequence_log_emissions(model, data, c.n_components, a, b)
                logprob[s] = _functional.forward(c.params["startprob_"],
                                                 c.params["transmat_"], log_em,
                                                 implementation=model.implementation)
        ll = _weighted_total(logprob, data.weights)
    return _with_prior(model, ll)


# ---------------------------------------------------------------------- the loop


def run_em(model, estep, objective, monitor, on_report=None, on_mstep=None):
    """EM from the model's current parameters until convergence or n_iter M-steps.

    The one EM loop: ``fit`` runs it on data in this process, ``fit_distributed`` with an
    E-step mapped over a Dask cluster. It continues from ``monitor.iter`` M-steps (0 for
    a fresh run, more when resuming). Each M-step runs under the model's lock (readers
    see whole iterates); an objective that falls below the best one by more than
    ``ROUNDING`` stops the loop with the best iterate restored (``monitor.decreased``).

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
    best = None  # (objective, M-steps, len(history), parameters) of the best iterate
    while True:
        if monitor.iter < n_iter:
            stats, value = estep(model)
        else:
            stats, value = None, objective(model)
        _check_finite(value)
        monitor.report(value)
        if on_report is not None:
            on_report(monitor)
        if best is not None and best[0] - value > ROUNDING * max(abs(best[0]), 1.0):
            _roll_back(model, monitor, best, value)
            return
        if best is None or value > best[0]:
            best = (value, monitor.iter, len(monitor.history), snapshot(model))
        if stats is None or monitor.converged:
            return
        with model._lock:  # readers see the parameters before this M-step or after it
            model._do_mstep(stats)
        monitor.iter += 1
        if on_mstep is not None:
            on_mstep(monitor)


def _check_finite(value):
    """A non-finite objective from an E-step that did not say why (a custom one)."""
    if not np.isfinite(value):
        raise ParameterError(f"EM's objective is not finite ({value!r}): the E-step's "
                             "log-likelihood or the log prior density has no finite value")


def _roll_back(model, monitor, best, value):
    """After a decrease: the best iterate's parameters, history and M-step count back,
    the fall recorded in ``monitor.decreased`` (so ``converged`` is False)."""
    fell_at = monitor.iter
    restore(model, best[3])
    monitor.history = monitor.history[:best[2]]
    monitor.iter = best[1]
    monitor.decreased = (fell_at, float(value))
    if monitor.verbose:
        print(f"hmmfast: the objective fell to {value:.8g} after {fell_at} M-steps; "
              f"stopped and kept iteration {best[1]} ({best[0]:.8g})", file=sys.stderr,
              flush=True)


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
        monitor = monitor_for(model)
        with model._lock:  # readers see the start whole, as they see every iterate
            if run:
                restore(model, start)
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
    """ConvergenceWarning when EM stopped on a decrease of its objective, or used all
    n_iter M-steps without converging; ``stacklevel`` as for ``warnings.warn`` called
    where this is."""
    decreased = getattr(monitor, "decreased", None)
    if decreased is not None:
        warnings.warn(
            f"hmmfast: EM's objective fell to {decreased[1]:.10g} after {decreased[0]} "
            f"M-steps (below {monitor.history[-1]:.10g}, beyond rounding), so EM did not "
            f"converge: it stopped and kept the best parameters (after {monitor.iter} "
            "M-steps); an M-step that is not a maximisation (a custom _do_mstep?) causes "
            "this", ConvergenceWarning, stacklevel=stacklevel + 1,
        )
        return
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
    """model._init on the observed frames (hmmlearn's hook: missing frames left out).

    Known states (``data.labels``) reach the families' ``_init`` as the model's private
    ``_init_states`` (one per frame given to ``_init``, -1 unknown; absent otherwise),
    so hmmlearn's hook keeps its signature: a labelled state starts from its frames."""
    missing = data.cache.get("missing")
    labels = data.labels
    if labels is not None and missing is not None:
        labels = labels[~missing]
    if labels is not None:
        object.__setattr__(model, "_init_states", labels)
    try:
        if missing is None:
            model._init(data.X, data.lengths)
        else:
            model._init(data.X[~missing], None)
    finally:
        if labels is not None:
            object.__delattr__(model, "_init_states")


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
    monitor.decreased = None
    return monitor
