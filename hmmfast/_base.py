"""BaseHMM: the parameters, inference methods and estimator protocol every family shares.

An emission family adds only its parameters, how observations become kernel frames
(``_frames``), its parameter count and how it samples. Parameters are validated when
they are assigned and stored read-only; the kernel inputs (logs, scaled tables) are
built once, on the first call after any public attribute changes, and cached in
``_cache``. A call then costs a handful of attribute reads before the kernel runs.

Threads. A call reads ``_cache`` once and computes with what it holds: the parameters
as they were at one instant. Public assignments (which store, bump ``_epoch`` and drop
the cache) and cache builds hold the model's lock, and a build is stored only if no
assignment happened meanwhile, so a cache never outlives an assignment: a call that
starts after an assignment returned sees it. One assignment is atomic; to change
several parameters at once, build a new model and swap the reference. ``fit`` changes
several at once under the lock (its start, each M-step, a rollback), so a call made
while a model is being fitted sees one whole iterate, never a mix of two.

A subclass that only overrides ``_compute_log_likelihood(X)`` (hmmlearn's custom-emission
hook) gets every inference method through the dense (T, N) path.
"""

import inspect
import threading

import numpy as np
from scipy import linalg

from . import (_batch, _compat, _decoders, _fit, _kernel_inputs, _priors, _sampling,
               _sparse, _supervised, _trellis, _viterbi)
from . import _validation as V
from ._errors import NotFittedError, ParameterError
from ._readonly import freeze
from ._threads import resolve_threads, team_request  # noqa: F401 (resolve_threads: re-export)

class _Compiled:
    """What the kernels need, derived from validated parameters (see _kernel_inputs)."""

    __slots__ = ("chain", "density", "emission", "n_components", "n_threads", "params",
                 "scaling", "symbols")


class BaseHMM:
    """Base class of the hmmfast models (hmmlearn's ``BaseHMM`` API).

    Parameters
    ----------
    n_components : int
        Number of hidden states N.
    startprob_prior, transmat_prior : float or array
        Dirichlet priors, used by fitting.
    algorithm : {"viterbi", "map"}
        Decoder used by ``decode`` and ``predict`` when none is given.
    random_state : None, int, RandomState or Generator
        Source of randomness for ``sample``.
    n_iter, tol, verbose, params, init_params
        Fitting controls, as in hmmlearn.
    implementation : {"scaling", "log"}
        Forward-backward arithmetic. Both are exact to rounding and agree to 1e-9
        relative; "scaling" is faster, "log" is the reference for pathological inputs.
        "scaling" falls back to "log" on its own for any sequence where a scaled step
        underflows, so neither returns a spurious -inf.
    n_init : int
        EM restarts from different random initialisations; the fit with the best final
        objective is kept (hmmfast addition).
    n_threads : int or None
        Threads for fit and for multi-sequence score/decode/score_samples (hmmfast
        addition). None means as many as help: up to the CPUs this process may use
        (affinity and cgroup quota), a team only when a call's work is above the
        break-even (~1 ms), and only on CPUs no other thread is running on, so None is
        never the slow choice on a busy machine. An explicit count is honoured, capped
        at those CPUs; 1 is the calling thread only.

    Attributes
    ----------
    monitor_ : ConvergenceMonitor
        The last fit's objective per iteration (``history``), ``iter`` and ``converged``.
    """

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls)
        object.__setattr__(self, "_lock", threading.RLock())
        object.__setattr__(self, "_epoch", 0)
        object.__setattr__(self, "_cache", None)
        return self

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0, *,
                 algorithm="viterbi", random_state=None, n_iter=10, tol=1e-2,
                 verbose=False, params="st", init_params="st", implementation="scaling",
                 n_init=1, n_threads=None):
        self.n_components = n_components
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.implementation = implementation
        self.n_init = n_init
        self.n_threads = n_threads
        self.monitor_ = _fit.ConvergenceMonitor(tol, n_iter, verbose)

    # ---------------------------------------------------------------- cache invalidation

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        # any public change (hyper-parameter or parameter) rebuilds the kernel inputs
        with self._lock:
            object.__setattr__(self, name, value)
            object.__setattr__(self, "_epoch", self._epoch + 1)
            object.__setattr__(self, "_cache", None)

    def _set_fitted(self, name, value):
        """Store an M-step result for parameter ``name`` (e.g. "transmat_") without the
        public setter's validation: the M-steps build finite, normalised arrays."""
        if _sparse.is_sparse(value):
            arr = value  # built read-only by hmmfast._sparse
        else:
            arr = freeze(np.ascontiguousarray(value, dtype=np.float64), name)
        with self._lock:
            object.__setattr__(self, "_" + name[:-1], arr)
            object.__setattr__(self, "_epoch", self._epoch + 1)
            object.__setattr__(self, "_cache", None)

    def __delattr__(self, name):
        with self._lock:
            object.__delattr__(self, name)
            object.__setattr__(self, "_epoch", self._epoch + 1)
            object.__setattr__(self, "_cache", None)

    _UNPICKLED = ("_lock", "_epoch", "_cache")

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in self._UNPICKLED}

    def __setstate__(self, state):
        """Restore a pickled or copied model, validating its parameters again (which also
        makes them read-only: pickling loses the flag)."""
        params = {}
        for name, value in state.items():
            if self._is_parameter_slot(name):
                params[name] = value
            else:
                object.__setattr__(self, name, value)
        for name, value in params.items():
            setattr(self, name[1:] + "_", value)

    def _is_parameter_slot(self, name):
        """True for the private attribute behind a fitted parameter (``_startprob`` holds
        what ``startprob_`` was assigned)."""
        return (name.startswith("_") and not name.startswith("__")
                and isinstance(getattr(type(self), name[1:] + "_", None), property))

    # ---------------------------------------------------------------- parameters

    @property
    def startprob_(self):
        """ndarray of shape (n_components,): initial state probabilities (read-only)."""
        try:
            return self._startprob
        except AttributeError:
            raise AttributeError("startprob_ is not set: fit the model or assign it") from None

    @startprob_.setter
    def startprob_(self, value):
        self._startprob = V.probability_vector("startprob_", value, self._n())

    @property
    def transmat_(self):
        """ndarray of shape (n_components, n_components): P(next state | state)."""
        try:
            return self._transmat
        except AttributeError:
            raise AttributeError("transmat_ is not set: fit the model or assign it") from None

    @transmat_.setter
    def transmat_(self, value):
        n = self._n()
        if _sparse.is_sparse(value):  # kept sparse (CSR): see hmmfast._sparse
            self._transmat = _sparse.stochastic_matrix("transmat_", value, n)
        else:
            self._transmat = V.stochastic_matrix("transmat_", value, n, n)

    def _n(self):
        return V.check_n("n_components", self.n_components)

    def _param_shapes(self, n):
        """Every fitted parameter's name and required shape; families add theirs."""
        return {"startprob_": (n,), "transmat_": (n, n)}

    def _sizes_str(self):
        return f"n_components={self.n_components}"

    def _check_fitted(self, names):
        missing = [name for name in names if not hasattr(self, name)]
        if missing:
            raise NotFittedError(
                f"This {type(self).__name__} has no {', '.join(missing)}: fit it or assign "
                f"{', '.join(names)} before using it"
            )

    def _prepare(self):
        """Validate the model as a whole and build the kernel inputs (cached).

        Runs under the model's lock, so it reads one consistent parameter set; the result
        is cached only if no assignment happened since the build began (it always is,
        as assignments take the same lock; the check keeps that true if that changes).
        """
        with self._lock:
            epoch = self._epoch
            c = self._compile()
            if self._epoch == epoch:
                object.__setattr__(self, "_cache", c)
        return c

    def _compile(self):
        n = self._n()
        scaling = V.uses_scaling(self.implementation)
        shapes = self._param_shapes(n)
        self._check_fitted(tuple(shapes))
        for name, expected in shapes.items():
            shape = getattr(self, name).shape
            if shape != expected:
                raise ParameterError(
                    f"{name} has shape {shape} but the model's sizes ({self._sizes_str()}) "
                    f"need {expected}; assign {name} again"
                )
        c = _Compiled()
        c.n_components = n
        c.scaling = scaling
        c.n_threads = team_request(self.n_threads)  # the kernels' form (see _threads)
        c.params = {name: getattr(self, name) for name in shapes}  # read-only arrays
        c.chain = _kernel_inputs.chain(self._startprob, self._transmat)
        c.emission = self._emission_table(c.scaling)
        # the emission tuple when frames are rows of it picked by symbols (fast paths)
        c.symbols = c.emission if self._symbol_frames() else None
        c.density = self._compile_density()
        return c

    def _compile_density(self):
        """Family hook: compiled emission parameters for the family's density kernel."""
        return None

    # ---------------------------------------------------------------- emission hooks

    def _emission_table(self, scaling):
        """Family hook: the emission tuple for table-driven frames, or None (dense path)."""
        return None

    def _frames(self, c, X, scaled=True):
        """Family hook: (emission, rows, n_samples) for the kernels.

        The default evaluates ``_compute_log_likelihood`` on validated features and hands
        the kernels the dense (T, N) matrix. ``scaled=False``: only the log form is read
        (Viterbi), so dense frames need not compute the scaled one.
        """
        X = self._check_X(X)
        log_em = V.log_emission_matrix(
            self._compute_log_likelihood(X), c.n_components, "_compute_log_likelihood(X)"
        )
        return _kernel_inputs.emission(log_em, c.scaling and scaled), None, log_em.shape[0]

    def _emission_blocks(self, c, X, n_threads=1):
        """Family hook: validate X once and compute its log-emissions a block at a time.

        The one way the layers above (the streams, block-fed decoders) turn observations
        into log-emissions without the whole (T, N) matrix. The default validates with
        ``_check_X`` and evaluates ``_compute_log_likelihood`` on each block, so hmmlearn's
        custom-emission hook works; the continuous families run their compiled density.

        Parameters
        ----------
        c : the model's compiled inputs (``model._cache``), read by the families' densities
        X : array-like of shape (n_samples, n_features)
            Observations as ``score`` takes them.
        n_threads : int
            Threads for a family's density kernel.

        Returns
        -------
        n_samples : int
        log_emissions : callable
            ``log_emissions(a, b)``: ndarray of shape (b - a, n_components), float64,
            C-contiguous, the log-emissions of frames a..b-1 (0 <= a < b <= n_samples).
        """
        X = self._check_X(X)

        def log_emissions(a, b):
            return V.log_emission_matrix(self._compute_log_likelihood(X[a:b]), c.n_components,
                                         "_compute_log_likelihood(X)")

        return X.shape[0], log_emissions

    def _observation_kind(self):
        """What one observation is, the one answer for every layer that must know.

        "features" (the default: GaussianHMM, GMMHMM, a subclass with its own
        ``_compute_log_likelihood``): a vector of ``n_features`` real numbers, X of shape
        (n_samples, n_features). "symbols" (CategoricalHMM): one integer in
        [0, n_features), X a 1-D array (or hmmlearn's (n_samples, 1) column). "counts"
        (PoissonHMM, MultinomialHMM): a vector of ``n_features`` non-negative whole
        numbers (a MultinomialHMM's constraint on their total is its own to check, when
        fitting, so it needs no kind of its own). The layers
        above the families (streams, monitor, service, Dask, CLI) ask this instead of
        testing the class. (Whether symbols index the cached emission table, the compiled
        fast path, is a different question: ``_symbol_frames``.)
        """
        return "features"

    def _emission_moments(self):
        """Family hook: (means, standard deviations), each ndarray of shape (n_components,
        n_features), of every state's emission distribution per feature, or None for a
        family without emission means (CategoricalHMM, a custom subclass). Read by the
        monitor's emission-drift check."""
        return None

    #: Family hook: the ``_frames`` function whose frames are log-emissions of validated
    #: feature vectors that may be computed a block of frames at a time
    #: (``_observations`` + ``_log_emissions``), so exact Viterbi can take them segment
    #: by segment (``_decoders.viterbi_dense``); None when frames come whole. Compared by
    #: identity with the class's ``_frames``: a subclass overriding ``_frames`` (and one
    #: using hmmlearn's ``_compute_log_likelihood`` hook) keeps the whole-matrix path.
    _blocked_frames: object = None

    def _check_X(self, X):
        return V.features(X)

    def _compute_log_likelihood(self, X):
        """Per-frame log-density of each state: ndarray of shape (n_samples, n_components)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement _compute_log_likelihood(X)"
        )

    # ---------------------------------------------------------------- inference

    def _score(self, X, lengths=None):
        """Log-likelihood log P(X) under the model, summed over sequences.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Observations; several sequences are concatenated.
        lengths : array-like of int, optional
            Length of each sequence (positive, summing to n_samples).

        Returns
        -------
        float
            -inf when a sequence is impossible under the model.
        """
        c = self._cache or self._prepare()
        emission, rows, n = self._frames(c, X)
        offsets = None if lengths is None else V.lengths_to_offsets(lengths, n)
        return _trellis.forward(c.chain, emission, rows, offsets, c.scaling, None, c.n_threads)

    # the common call (one ready symbol array) runs in compiled code
    score = _trellis.model_score
    score.__doc__, score.__name__, score.__qualname__ = _score.__doc__, "score", "BaseHMM.score"

    def score_samples(self, X, lengths=None):
        """Log-likelihood and state posteriors.

        Returns
        -------
        logprob : float
        posteriors : ndarray of shape (n_samples, n_components)
            P(state at step t | its sequence); each row sums to 1.

        Raises
        ------
        ImpossibleSequenceError
            When a sequence has probability zero (its posteriors are undefined).
        """
        c = self._cache or self._prepare()
        emission, rows, n = self._frames(c, X)
        offsets = None if lengths is None else V.lengths_to_offsets(lengths, n)
        return _trellis.forward_backward(c.chain, emission, rows, offsets, c.scaling, None,
                                         c.n_threads)

    def predict_proba(self, X, lengths=None):
        """State posteriors, ndarray of shape (n_samples, n_components)."""
        return self.score_samples(X, lengths)[1]

    def _decode(self, X, lengths=None, algorithm=None, *, beam=None, max_active=None,
                min_active=None, memory="full"):
        """Most likely state sequence.

        Parameters
        ----------
        X, lengths
            As for :meth:`score`.
        algorithm : {"viterbi", "map"}, optional
            "viterbi": the single most likely path (ties go to the lowest state index).
            "map": each step's most probable state under the posteriors (ties to the
            lowest index). Defaults to the model's ``algorithm``.
        beam : float, optional
            Beam-pruned Viterbi: keep only states scoring within ``beam`` (natural log)
            of each step's best; None or inf: exact.
        max_active, min_active : int, optional
            Keep at most / at least that many states per step (Kaldi's conventions:
            min_active widens the beam). See the README's "Decoders" section.
        memory : {"full", "checkpoint"}
            Viterbi backpointer storage. "checkpoint": O(sqrt(T) N) memory by storing
            delta every K steps and recomputing each segment, the same path at ~2x the
            time; a continuous family then computes its log-emissions one segment at a
            time too. "full" (default) keeps the T x N table, and switches to
            checkpointing by itself when that table (with the log-emission matrix a
            continuous family would compute) would exceed 256 MiB
            (``hmmfast._checkpoint.AUTO_CHECKPOINT_BYTES``).

        Returns
        -------
        logprob : float
            log P(X, states), the joint log-probability of the observations and the
            returned path, summed over sequences, for both algorithms (also under
            pruning, which may return a worse path, never a wrong score for it). For
            "map" it can be -inf: the step-wise most probable states may use a
            zero-probability transition. (hmmlearn returns a sum of posterior maxima.)
        states : ndarray of shape (n_samples,), intp

        Raises
        ------
        ImpossibleSequenceError
            When a sequence has probability zero; it names the first impossible step.
            PruningError (a subclass) when pruning removed every path.
        """
        choice = _decoders.choose(self.algorithm if algorithm is None else algorithm, beam,
                                  max_active, min_active, memory)
        return _decoders.decode_model(self, self._cache or self._prepare(), X, lengths, choice)

    # the common call (exact Viterbi of a ready symbol array) runs in compiled code
    decode = _viterbi.model_decode
    decode.__doc__, decode.__name__, decode.__qualname__ = (
        _decode.__doc__, "decode", "BaseHMM.decode")

    def nbest(self, X, n):
        """The n most probable distinct state paths of one sequence, best first.

        Parallel list Viterbi (Seshadri & Sundberg 1994): the n best partial paths per
        state and step. Time O(T (N^2 + N n log N)) (non-zero transitions for a sparse
        ``transmat_``), memory O(T N n).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One sequence.
        n : int >= 1

        Returns
        -------
        list of (float, ndarray of shape (n_samples,), intp)
            (log P(X, states), states), best first; fewer than n when fewer paths have
            non-zero probability. Among equal log-probabilities the path smallest read
            backwards from the last step comes first, so entry 0 equals ``decode(X)``
            exactly (see the README's "Decoders" for ties that differ by rounding).

        Raises
        ------
        ImpossibleSequenceError
            When the sequence has probability zero.
        """
        c = self._cache or self._prepare()
        emission, rows, _ = self._frames(c, X, False)
        return _decoders.nbest(c.chain, emission, rows, n)

    def score_batch(self, sequences, n_threads=None, *, lengths=None, per_step=False):
        """Log-likelihood of every sequence, in one kernel call across threads.

        Parameters
        ----------
        sequences : list (or tuple) of array-like
            One array per sequence (each as ``score`` takes it). The concatenated form goes
            by keyword: ``score_batch(X, lengths=lengths)``.
        n_threads : int, optional
            Threads for this call (default: the model's ``n_threads``; None there means
            every core). One sequence never starts a thread team.
        lengths : array-like of int, optional
            With X given as ``sequences``: the length of each sequence.
        per_step : bool
            Also return each sequence's per-step log conditionals log P(o_t | o_<t), which
            sum to its log-likelihood.

        Returns
        -------
        scores : ndarray of shape (n_sequences,)
            -inf for a sequence the model cannot produce (no error).
        per_step : list of ndarray, only with ``per_step=True``
            One (T_s,) array per sequence; an impossible observation and the rest of its
            sequence are -inf.
        """
        return _batch.score_batch(self, sequences, n_threads, lengths, per_step)

    def decode_batch(self, sequences, n_threads=None, *, lengths=None, algorithm=None,
                     errors="raise", beam=None, max_active=None, min_active=None,
                     memory="full"):
        """Most likely state path of every sequence, in one kernel call across threads.

        Parameters
        ----------
        sequences, n_threads, lengths
            As for :meth:`score_batch`.
        algorithm : {"viterbi", "map"}, optional
            As for :meth:`decode` (default: the model's ``algorithm``).
        errors : {"raise", "mark"}
            "raise": a sequence the model cannot produce raises ImpossibleSequenceError
            naming it (and its first impossible step). "mark": it gets log-probability
            -inf and an empty path while the others are decoded.
        beam, max_active, min_active, memory
            As for :meth:`decode`.

        Returns
        -------
        logprobs : ndarray of shape (n_sequences,)
            log P(X_s, path_s).
        paths : list of ndarray of intp
        """
        return _batch.decode_batch(self, sequences, n_threads, lengths, algorithm, errors,
                                   beam=beam, max_active=max_active, min_active=min_active,
                                   memory=memory)

    def _symbol_frames(self):
        """True when frames are rows of the cached emission table picked by symbols (a
        CategoricalHMM without its own ``_compute_log_likelihood``): the compiled fast
        paths' question (``_compile`` sets ``c.symbols``). What an observation is, is
        ``_observation_kind()``."""
        return False

    def predict(self, X, lengths=None):
        """Decoded states, ndarray of shape (n_samples,), with the model's ``algorithm``."""
        return self.decode(X, lengths)[1]

    # ---------------------------------------------------------------- streams

    def stream_scorer(self):
        """A :class:`hmmfast.StreamScorer` over this model's current parameters: push
        observations one at a time (or in chunks) and read the running log-likelihood and
        the filtered state distribution, in O(N) memory for any stream length."""
        from ._stream_intake import StreamScorer

        return StreamScorer(self)

    def stream_decoder(self, max_lag=None, *, beam=None, max_active=None, min_active=None):
        """A :class:`hmmfast.StreamDecoder`: exact online Viterbi over this model's current
        parameters. ``push(obs)`` returns the states that became final, ``flush()`` the
        rest; with ``max_lag`` a state is emitted at most that many steps after its
        observation (fixed-lag decoding); ``beam``/``max_active``/``min_active`` prune
        as in :meth:`decode` (the output then equals the offline beam decoder's)."""
        from ._stream_intake import StreamDecoder

        return StreamDecoder(self, max_lag, beam=beam, max_active=max_active,
                             min_active=min_active)

    # ---------------------------------------------------------------- sampling

    def sample(self, n_samples=1, random_state=None, currstate=None):
        """Draw a sequence from the model.

        Parameters
        ----------
        n_samples : int
        random_state : None, int, RandomState or Generator
            Defaults to the model's ``random_state``.
        currstate : int, optional
            State of the first sample (drawn from ``startprob_`` when None).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        states : ndarray of shape (n_samples,), intp
        """
        c = self._cache or self._prepare()
        n_samples = V.check_n("n_samples", n_samples)
        rng = V.check_random_state(self.random_state if random_state is None else random_state)
        first = -1
        if currstate is not None:
            first = V.check_n("currstate", currstate, minimum=0)
            if first >= c.n_components:
                raise ParameterError(
                    f"currstate must be a state index in [0, {c.n_components}), got {currstate}"
                )
        transmat = c.params["transmat_"]
        if _sparse.is_sparse(transmat):
            states = _sparse.sample_path(c.params["startprob_"], transmat,
                                         rng.random(n_samples), first)
            return self._sample_emissions(c, states, rng), states
        start_cdf = np.cumsum(c.params["startprob_"])
        trans_cdf = np.ascontiguousarray(np.cumsum(transmat, axis=1))
        states = _sampling.sample_path(start_cdf, trans_cdf, rng.random(n_samples), first)
        return self._sample_emissions(c, states, rng), states

    def _sample_emissions(self, c, states, rng):
        """Family hook: observations for a state path (default: hmmlearn's per-state hook)."""
        return np.array([self._generate_sample_from_state(s, random_state=rng) for s in states])

    def _generate_sample_from_state(self, state, random_state):
        raise NotImplementedError(
            f"{type(self).__name__} must implement _generate_sample_from_state to sample"
        )

    # ---------------------------------------------------------------- model summaries

    def get_stationary_distribution(self):
        """Stationary distribution pi with pi @ transmat_ = pi, ndarray of shape (n_components,).

        The eigenvector of transmat_.T for the eigenvalue closest to 1, normalised to sum
        to 1. For a reducible or periodic chain the stationary distribution is not unique
        and this returns one of them.
        """
        c = self._cache or self._prepare()
        if _sparse.is_sparse(c.params["transmat_"]):
            return _sparse.stationary_distribution(c.params["transmat_"])
        eigvals, eigvecs = linalg.eig(c.params["transmat_"].T)
        vec = np.real(eigvecs[:, np.argmin(np.abs(eigvals - 1.0))])
        return vec / vec.sum()

    def _get_n_fit_scalars_per_param(self):
        """Free scalars per ``params`` letter (hmmlearn's name; used by aic and bic)."""
        n = self.n_components
        transmat = getattr(self, "_transmat", None)
        free = transmat.nnz - n if _sparse.is_sparse(transmat) else n * (n - 1)
        return {"s": n - 1, "t": free}

    def _n_parameters(self):
        return sum(v for k, v in self._get_n_fit_scalars_per_param().items() if k in self.params)

    def aic(self, X, lengths=None):
        """Akaike information criterion: -2 log P(X) + 2 k (k = free parameters in ``params``)."""
        return -2.0 * self.score(X, lengths) + 2.0 * self._n_parameters()

    def bic(self, X, lengths=None):
        """Bayesian information criterion: -2 log P(X) + k log(n_samples)."""
        n_samples = self._frames(self._cache or self._prepare(), X)[2]
        return -2.0 * self.score(X, lengths) + self._n_parameters() * np.log(n_samples)

    # ---------------------------------------------------------------- fitting

    def fit(self, X, lengths=None, *, sample_weight=None, states=None):
        """Estimate the parameters by Baum-Welch (EM), hmmlearn's semantics.

        Parameters named in ``init_params`` (or not yet set) are initialised first;
        those named in ``params`` are updated. ``n_init`` restarts keep the best fit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training sequences, concatenated.
        lengths : array-like of int, optional
            Length of each sequence.
        sample_weight : array-like of shape (n_sequences,), optional
            Non-negative weight per sequence scaling its statistics (2 equals the
            sequence given twice; 0 leaves it out).
        states : array-like of shape (n_samples,), optional
            Known states, -1 where unknown: labelled frames are clamped to their state
            (semi-supervised EM). All -1 is an ordinary fit.

        Returns
        -------
        self

        Notes
        -----
        EM maximises sum_s w_s log P(X_s [, known states]) plus the log prior density
        (``monitor_.history``); it never decreases. If ``fit`` raises (bad input, an
        impossible sequence, KeyboardInterrupt between iterations) the model keeps the
        parameters it had. Not converging within ``n_iter`` warns with
        ``hmmfast.ConvergenceWarning``.
        """
        return _fit.fit(self, X, lengths, sample_weight, states)

    def fit_viterbi(self, X, lengths=None):
        """Estimate the parameters by Viterbi training (segmental k-means; hmmfast addition).

        EM with hard assignments: each iteration decodes every sequence (exact Viterbi)
        and re-estimates the parameters from the counts along the decoded paths, with
        the M-step, priors, ``params``, ``init_params``, ``n_iter``, ``tol`` and
        ``n_init`` of :meth:`fit`. ``monitor_.history`` records the objective it
        maximises, the Viterbi score sum_s max_q log P(X_s, q) (plus the log prior), which
        never decreases; the saved fit record's ``log_likelihood`` is the likelihood.
        Faster per iteration than Baum-Welch, and the usual start for left-to-right
        models, whose emissions it initialises from a uniform segmentation of each
        sequence (HTK's HInit) when ``init_params`` leaves out "s" and "t"; its
        estimates favour sharper states (refine with :meth:`fit`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        lengths : array-like of int, optional

        Returns
        -------
        self
        """
        from . import _viterbi_training

        return _viterbi_training.fit_viterbi(self, X, lengths)

    def fit_supervised(self, X, states, lengths=None):
        """Estimate the parameters from labelled states by counting (hmmfast addition).

        The maximum-likelihood estimate with the priors as pseudocounts (count +
        prior - 1, the convention of ``fit``'s M-step); parameters not in ``params`` are
        kept, and a state never seen keeps its initial (or previous) parameters. GMMHMM,
        whose mixture components are hidden even when the states are known, runs EM
        within each state's mixture to convergence: exactly ``fit(X, lengths,
        states=states)`` from the same start (``monitor_`` as that fit's).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        states : array-like of shape (n_samples,)
            The state of every frame, in [0, n_components).
        lengths : array-like of int, optional

        Returns
        -------
        self
        """
        return _supervised.fit_supervised(self, X, states, lengths)

    def _supervised_needs_em(self):
        """Family hook: True when known states do not make the emission statistics
        complete (GMMHMM's components), so ``fit_supervised`` runs EM instead of one
        counting M-step."""
        return False

    # hmmlearn's extension points (a subclass written for hmmlearn's custom-emission
    # recipe overrides these and trains through the generic, per-sequence E-step)

    def _init(self, X, lengths=None):
        """Initialise the parameters named in ``init_params`` or not set yet.

        startprob_ and transmat_ rows: half uniform, half a Dirichlet(1) draw (every
        entry positive, different for every restart).
        """
        self._check_and_set_n_features(X)
        rng = self._init_random_state()
        n = V.check_n("n_components", self.n_components)
        if self._needs_init("s", "startprob_"):
            self.startprob_ = 0.5 / n + 0.5 * rng.dirichlet(np.ones(n))
        if self._needs_init("t", "transmat_"):
            current = getattr(self, "_transmat", None)
            if _sparse.is_sparse(current) and current.shape == (n, n):
                self.transmat_ = _sparse.random_values(current, rng)  # keep the pattern
            else:
                self.transmat_ = 0.5 / n + 0.5 * rng.dirichlet(np.ones(n), size=n)
        _compat.log_if_degenerate(self, X)

    def _check_and_set_n_features(self, X):
        """hmmlearn's hook: check X of shape (n_samples, n_features) against
        ``n_features``, or set ``n_features`` from X when it is not known yet."""
        _compat.check_n_features(self, X)

    def _init_letters(self):
        """(letter, attribute) of every parameter ``_init`` may initialise."""
        return [("s", "startprob_"), ("t", "transmat_")]

    def _init_random_state(self):
        rng = getattr(self, "_rng", None)
        return rng if rng is not None else V.check_random_state(self.random_state)

    def _init_labels(self):
        """The known states of the frames ``_init`` was given (intp, -1 unknown), or None:
        set by ``fit(X, states=...)`` and ``fit_supervised`` for the families' starts (a
        labelled state starts from its labelled frames)."""
        return self.__dict__.get("_init_states")

    def _needs_init(self, code, name):
        """hmmlearn's hook: whether ``_init`` sets parameter ``name`` (letter ``code``);
        logs hmmlearn's record when ``init_params`` overwrites a parameter already set."""
        if code in self.init_params and hasattr(self, name):
            _compat.log_overwrite(name, code)
        return self._will_init(code, name)

    def _will_init(self, code, name):
        """``_needs_init`` without the log record."""
        return code in self.init_params or not hasattr(self, name)

    def _check(self):
        """Validate the model as a whole (shapes against sizes); raise if it is not."""
        self._prepare()

    def _initialize_sufficient_statistics(self):
        n = self.n_components
        transmat = getattr(self, "_transmat", None)
        trans = np.zeros(transmat.nnz if _sparse.is_sparse(transmat) else (n, n))
        return {"nobs": 0, "start": np.zeros(n), "trans": trans}

    def _accumulate_sufficient_statistics(self, stats, X, lattice, posteriors, fwdlattice,
                                          bwdlattice):
        """Add one sequence's statistics (hmmlearn's hook; ``posteriors`` are weighted).

        Here: count the sequence. Its expected start and transition counts (for "s" and
        "t" in ``params``, as in hmmlearn) come from the E-step kernel, and the generic
        E-step (``_fit``) adds them before calling this hook, so a subclass written for
        hmmlearn that calls ``super()`` gets them counted once, as there. (A subclass that
        does not call ``super()`` and counts them itself would count them twice.)
        """
        stats["nobs"] += 1

    def _do_mstep(self, stats):
        """MAP update of startprob_ and transmat_ (Dirichlet priors, hmmlearn's convention:
        max(counts + prior - 1, 0), structural zeros kept, empty rows keep their values)."""
        n = self.n_components
        if "s" in self.params:
            prior = _priors.prior(self, "startprob_prior", (n,))
            self._set_fitted("startprob_",
                             _priors.map_estimate(stats["start"], prior, self.startprob_, True))
        if "t" in self.params:
            prior = _priors.prior(self, "transmat_prior", (n, n))
            if _sparse.is_sparse(self._transmat):
                fitted = _sparse.map_estimate(stats["trans"], prior, self._transmat)
            else:
                fitted = _priors.map_estimate(stats["trans"], prior, self.transmat_, True)
            self._set_fitted("transmat_", fitted)

    def _log_prior(self):
        """log prior density of the fitted parameters (0 with the default priors)."""
        n = self.n_components
        total = 0.0
        if "s" in self.params:
            total += _priors.dirichlet_log_density(
                self.startprob_, _priors.prior(self, "startprob_prior", (n,)))
        if "t" in self.params:
            prior = _priors.prior(self, "transmat_prior", (n, n))
            if _sparse.is_sparse(self._transmat):
                total += _sparse.dirichlet_log_density(self._transmat, prior)
            else:
                total += _priors.dirichlet_log_density(self.transmat_, prior)
        return total

    # hmmfast's fast path: a family implements these and the E-step runs in one kernel call

    _estep_wants_posteriors = True

    _FAST_PATH_HOOKS = ("_compute_log_likelihood", "_initialize_sufficient_statistics",
                        "_accumulate_sufficient_statistics")

    def _uses_fast_estep(self):
        """True for a built-in family (a class with ``_fast_family = True`` in its body)
        unless a subclass below it overrides one of the hooks the fast path replaces."""
        for klass in type(self).__mro__:
            if klass.__dict__.get("_fast_family"):
                return True
            if any(name in klass.__dict__ for name in self._FAST_PATH_HOOKS):
                return False
        return False

    def _training_X(self, X):
        """X validated once for fitting, in the form the hooks take."""
        return self._check_X(X)

    def _estep_frames(self, c, data):
        """(emission, rows) for the E-step kernel: the default evaluates the dense
        log-emissions (labelled frames masked)."""
        log_em = V.log_emission_matrix(self._compute_log_likelihood(data.X), c.n_components,
                                       "_compute_log_likelihood(X)")
        if data.labels is not None:
            log_em = _fit.mask_labels(log_em, data.labels)
        return _kernel_inputs.emission(log_em, c.scaling, c.n_threads), None

    def _record_fit(self, data, training_data_sha256=None, method="fit"):
        """Remember what the last fit saw and made (saved in model files' headers): the
        final objective and M-steps, the data's sizes and hash (``_io_format.
        training_data_sha256``), ``method`` ("fit" or "fit_supervised"), the resulting
        fingerprint, the seed and a warm start's earlier data hashes (hmmfast._versions)."""
        from . import _versions

        object.__setattr__(self, "_fit_record",
                           _versions.fit_record(self, data, training_data_sha256, method))

    # ---- model files (hmmfast/_io.py) -------------------------------------------

    def save(self, path, metadata=None):
        """Write the model to one ``.npz`` file, atomically (hmmfast addition).

        The file holds every parameter array and a JSON header: format version, class,
        structure, constructor parameters, library version, a SHA-256 of every array,
        the ``fingerprint``, the last fit's record (log-likelihood, iterations,
        ``training_data_sha256``) and ``metadata``. Read it back with
        :func:`hmmfast.load`, its header alone with :func:`hmmfast.read_header`; the
        format is described in ``hmmfast/_io.py``.

        Parameters
        ----------
        path : str or os.PathLike
            Written exactly as given (no ``.npz`` is appended). A temporary file in the
            same directory is written, fsynced and renamed onto it, so a crash leaves
            the previous file intact.
        metadata : dict, optional
            JSON-safe values (dict with str keys, list, str, int, finite float, bool,
            None), returned as ``read_header(path)["metadata"]``.

        Raises
        ------
        HMMTypeError
            For a class other than the built-in ones (hmmfast.load lists them)
            (a subclass may compute what a file cannot record: pickle it instead), or
            metadata that is not JSON-safe.
        NotFittedError, ParameterError
            For a model without valid parameters, or settings ``hmmfast.load`` would
            refuse. Nothing is written when any of these is raised.
        """
        from . import _io

        _io.save(self, path, metadata)

    @property
    def fingerprint(self):
        """str: hex SHA-256 of the class, structure and parameters (hmmfast addition).

        Structure: n_components, n_features, covariance_type and n_mix where they apply,
        and whether transmat_ is dense or sparse. Parameters: every fitted array, bit for
        bit. Not included: priors, fit controls (n_iter, tol, params, init_params,
        n_init, min_covar) and run-time settings (n_threads, verbose, random_state,
        algorithm, implementation, missing). Stable across save/load, processes and
        platforms; see ``hmmfast/_io.py``. Raises NotFittedError before the parameters
        are set, HMMTypeError for a class other than the built-in ones.
        """
        from . import _io

        return _io.fingerprint(self)

    # ---------------------------------------------------------------- estimator protocol

    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(
            p.name for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )

    def get_params(self, deep=True):
        """Constructor parameters as a dict (scikit-learn's estimator protocol)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor parameters; returns self."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ParameterError(
                    f"invalid parameter {name!r} for {type(self).__name__}; valid: {valid}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        shown = []
        for name in self._get_param_names():
            value = getattr(self, name)
            default = defaults.get(name, inspect.Parameter.empty)
            try:
                same = bool(value is default or value == default)
            except (TypeError, ValueError):
                same = False
            if not same:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"
