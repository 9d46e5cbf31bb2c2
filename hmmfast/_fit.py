"""Fitting: the EM loop (Baum-Welch), its monitor, restarts and supervised counting.

Shared by every emission family. A family supplies its initialisation (``_init``), how
its observations become E-step frames (``_estep_frames``), its statistics
(``_initialize_sufficient_statistics``, ``_accumulate_fast``) and its M-step
(``_do_mstep``); the E-step kernel (csrc/_estep.pyx), the loop, the monitor, the
threads and the rollback on failure live here.

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
        raise HMMInputError(f"sample_weight[{i}] = {w[i].item()!r}: weights must be >= 0")
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
            f"states[{i}] = {arr[i]}: expected {what}a state index in [0, {n_components})"
        )
    return np.ascontiguousarray(arr, dtype=np.intp)


# ---------------------------------------------------------------------- priors, M-step


def check_prior(name, value, shape):
    """A Dirichlet concentration (scalar or array) broadcast to ``shape``, all > 0."""
    arr = V.broadcast_real(name, value, shape)
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise ParameterError(f"{name} must be finite and > 0 (a Dirichlet concentration)")
    return arr


def prior(model, name, shape):
    """The model's prior ``name`` validated for ``shape``, or None when it is flat (all 1,
    adding nothing). Cached on the model until the attribute or the shape changes, so EM
    iterations do not validate it again."""
    value = getattr(model, name)
    cache = model.__dict__.get("_prior_cache")
    if cache is None:
        cache = {}
        object.__setattr__(model, "_prior_cache", cache)
    hit = cache.get(name)
    if hit is not None and hit[0] is value and hit[1] == shape:
        return hit[2]
    arr = check_prior(name, value, shape)
    checked = None if np.all(arr == 1.0) else arr
    cache[name] = (value, shape, checked)
    return checked


def map_estimate(counts, prior, previous, keep_zeros):
    """Dirichlet MAP of probability rows: max(counts + prior - 1, 0), normalised.

    hmmlearn's convention (a prior of 1 adds nothing; ``prior`` None is flat). With
    ``keep_zeros`` a cell that is 0 in ``previous`` stays 0 (start and transition
    probabilities, as in hmmlearn); a row with nothing to normalise (no expected visits
    and a flat prior) keeps its previous values.
    """
    p = np.maximum(counts + (prior - 1.0), 0.0) if prior is not None else np.array(counts, dtype=float)
    if keep_zeros:
        p[previous == 0.0] = 0.0
    p = p.reshape(-1, np.shape(previous)[-1])
    # summed left to right (numpy's sum is pairwise), as hmmfast._sparse sums the
    # non-zeros of a sparse row: dense and sparse fits give the same bits
    sums = np.cumsum(p, axis=1)[:, -1]
    empty = ~(sums > 0)
    p /= np.where(empty, 1.0, sums)[:, None]
    if np.any(empty):
        p[empty] = np.reshape(previous, p.shape)[empty]
    return p.reshape(np.shape(previous))


def dirichlet_log_density(prob, prior):
    """sum (alpha - 1) log p over the non-zero entries (the Dirichlet log-density up to
    a constant, on the face the zeros fix); 0 for a flat prior (None)."""
    if prior is None:
        return 0.0
    prob = np.asarray(prob)
    nz = prob > 0
    return float(np.sum((np.broadcast_to(prior, prob.shape)[nz] - 1.0) * np.log(prob[nz])))


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
        object.__setattr__(model, "_estep_chain_stats",
                           (w * start, w * transition_counts(model, trans)))
        try:
            model._accumulate_sufficient_statistics(stats, sub_X, lattice, w * post, fwd, bwd)
        finally:
            object.__delattr__(model, "_estep_chain_stats")
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


def run_em(model, data, monitor):
    """EM from the model's current parameters until convergence or n_iter M-steps."""
    n_iter = V.check_n("n_iter", model.n_iter, minimum=0)
    monitor._reset()
    for _ in range(n_iter):
        stats, value = estep(model, data)
        monitor.report(value)
        if monitor.converged:
            return
        model._do_mstep(stats)
        monitor.iter += 1
    monitor.report(objective(model, data))


def _snapshot(model):
    return dict(model.__dict__)


def _restore(model, state):
    with model._lock:
        for name in list(model.__dict__):
            if name not in state and name not in model._UNPICKLED:
                object.__delattr__(model, name)
        for name, value in state.items():
            if name not in model._UNPICKLED:
                object.__setattr__(model, name, value)
        object.__setattr__(model, "_epoch", model._epoch + 1)
        object.__setattr__(model, "_cache", None)


def _can_restart(model):
    """Whether restarts can differ: some parameter is (re)initialised at random."""
    return any(model._needs_init(code, name) for code, name in model._init_letters())


def fit(model, X, lengths=None, sample_weight=None, states=None):
    """Baum-Welch with restarts; see BaseHMM.fit. The model is unchanged if this raises."""
    before = _snapshot(model)
    try:
        return _fit(model, X, lengths, sample_weight, states)
    except BaseException:
        _restore(model, before)
        raise


def _fit(model, X, lengths, sample_weight, states):
    n_init = V.check_n("n_init", model.n_init)
    V.check_n("n_iter", model.n_iter, minimum=0)
    if (not isinstance(model.tol, (int, float, np.floating, np.integer))
            or isinstance(model.tol, bool) or np.isnan(model.tol)):
        raise ParameterError(f"tol must be a number (-inf: never stop early), got {model.tol!r}")
    X_canon, missing = _training_X(model, X)
    offsets = _offsets(lengths, len(X_canon))
    weights = check_sample_weight(sample_weight, len(offsets) - 1)
    labels = None
    if states is not None:
        labels = check_states(states, len(X_canon), V.check_n("n_components",
                              model.n_components), allow_unknown=True)
        if not np.any(labels >= 0):
            labels = None  # nothing known: an ordinary fit
    data = TrainingData(X_canon, offsets, weights, labels, missing)
    _versions.begin_fit(model)  # model._rng, and the seed and lineage to record
    start = _snapshot(model)
    runs = n_init if _can_restart(model) else 1
    best = None
    for run in range(runs):
        if run:
            _restore(model, start)
        monitor = _monitor_for(model)
        _init(model, data)
        model._check()
        run_em(model, data, monitor)
        object.__setattr__(model, "monitor_", monitor)
        if best is None or monitor.history[-1] > best[0]:
            best = (monitor.history[-1], _snapshot(model))
    if runs > 1:
        _restore(model, best[1])
    object.__delattr__(model, "_rng")
    model._record_fit(data, _io_format.training_data_sha256(X_canon, missing, offsets,
                                                            weights, labels))
    monitor = model.monitor_
    if monitor.iter == monitor.n_iter and monitor.n_iter > 0 and not monitor.converged:
        warnings.warn(
            f"hmmfast: EM did not converge within n_iter={monitor.n_iter} iterations "
            f"(last gain {monitor.gain:.4g} >= tol={monitor.tol}); raise n_iter or tol",
            ConvergenceWarning, stacklevel=4,
        )
    return model


def _init(model, data):
    """model._init on the observed frames (hmmlearn's hook: missing frames left out)."""
    missing = data.cache.get("missing")
    if missing is None:
        model._init(data.X, data.lengths)
    else:
        model._init(data.X[~missing], None)


def _training_X(model, X):
    """(X in the family's canonical form, mask of missing frames or None)."""
    out = model._training_X(X)
    return out if isinstance(out, tuple) else (out, None)


def _monitor_for(model):
    monitor = getattr(model, "monitor_", None)
    if isinstance(monitor, ConvergenceMonitor):
        monitor = type(monitor).__new__(type(monitor))
        monitor.__dict__.update(model.monitor_.__dict__)
    else:
        monitor = ConvergenceMonitor(model.tol, model.n_iter, model.verbose)
    monitor.tol, monitor.n_iter, monitor.verbose = model.tol, model.n_iter, model.verbose
    return monitor


def fit_supervised(model, X, states, lengths=None):
    """Counting maximum-likelihood (with the priors as pseudocounts); see BaseHMM."""
    before = _snapshot(model)
    try:
        X_canon, missing = _training_X(model, X)
        offsets = _offsets(lengths, len(X_canon))
        n = V.check_n("n_components", model.n_components)
        labels = check_states(states, len(X_canon), n, allow_unknown=False)
        data = TrainingData(X_canon, offsets, None, labels, missing)
        _versions.begin_fit(model)
        _init(model, data)
        object.__delattr__(model, "_rng")
        model._check()
        stats = model._initialize_sufficient_statistics()
        stats["nobs"] = data.n_seq
        stats["start"] = stats["start"] + np.bincount(labels[offsets[:-1]], minlength=n)
        transmat = getattr(model, "_transmat", None)
        if _sparse.is_sparse(transmat):
            stats["trans"] = stats["trans"] + _sparse.transition_counts(transmat, labels,
                                                                        offsets)
        else:
            inner = np.ones(len(labels), dtype=bool)
            inner[offsets[1:] - 1] = False  # no transition out of a sequence's last frame
            pairs = labels[:-1][inner[:-1]] * n + labels[1:][inner[:-1]]
            stats["trans"] = stats["trans"] + np.bincount(pairs, minlength=n * n).reshape(n, n)
        onehot = np.zeros((len(labels), n))
        onehot[np.arange(len(labels)), labels] = 1.0
        if missing is not None:
            onehot[missing] = 0.0
        model._accumulate_fast(stats, data, None, onehot)
        model._do_mstep(stats)
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
        _restore(model, before)
        raise
