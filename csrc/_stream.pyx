# Streaming inference: a running log-likelihood (StreamScorer) and exact online Viterbi
# (StreamDecoder), one observation (or one chunk) at a time.
#
# Design note
# -----------
# Snapshot. A stream takes the model's compiled parameters (``model._cache``: the chain
# capsule and, for CategoricalHMM, the log-emission table; for the continuous families the
# compiled density) once, when it is created, and holds references to them: assigning new
# parameters to the model afterwards builds a new cache and never affects an existing
# stream. (A subclass with its own ``_compute_log_likelihood`` hook computes emissions
# through that hook, which reads whatever the subclass reads.) Observations are validated
# by the model's own code (``V.symbols``/``_check_X``/``_observations``), so a bad
# observation raises what ``model.score(obs)`` raises, and a whole chunk is validated
# before any of it is applied: a failed push changes nothing.
#
# Hot path. Pushing one symbol to a CategoricalHMM stream never touches NumPy: a Python
# or NumPy integer is converted and range-checked in C and the step reads the cached
# table row. Chunks of symbols are checked in C too; feature vectors go through the
# family's density in blocks of BLOCK frames (bounded memory for any chunk length).
# Long chunks run with the GIL released.
#
# StreamScorer keeps log alpha normalised: a_t(j) = log P(state_t = j | o_1..o_t). A step
# is the arithmetic of ``log_forward_step`` (_passes.pxd): p = exp(a_{t-1} - max), one
# vector-matrix product s = pA (``forward_product``), a_t = max + log s + log b_t, and the
# exact logsumexp rescue (``exact_column_lse``) of any entry whose shifted sum underflows, so
# it is exact for any model, structural zeros included, and any stream length. Its logsumexp
# c_t = log P(o_t | o_<t) (``last_step``) is then subtracted; the exponentials that
# logsumexp computes are the next step's p, so a step costs N exps (vectorised by
# hmm_exp.h, within 2 ulp, from 16 states) and N logs. The running log-likelihood is the
# sum of the c_t, accumulated with Neumaier's compensated summation, so it stays exact to
# rounding for any number of steps. An observation the model cannot produce (every entry
# -inf) makes the running value -inf for good (``impossible``) until ``reset()``.
#
# StreamDecoder runs exactly the arithmetic of csrc/_viterbi.pyx: delta_0 = log pi + log b_0,
# delta_t(j) = max_i(delta_{t-1}(i) + logA_ij) + log b_t(j) by ``maxplus_step`` of
# _passes.pxd (hmm_maxplus_step on the padded log transition matrix, or its O(nnz) form
# for a sparse chain; ties to the lowest predecessor), never renormalised, the final state
# the first argmax. So its backpointers are bit for bit those of the offline decoder, and
# so is the path, ties included. (Products with A go through ``forward_product`` in the
# scorer likewise, so sparse transition matrices work in both.)
#
# Convergence (what can be emitted). Let A_t(tau) be the set of states at time tau that
# lie on some surviving partial path at time t (the ancestors of every state with finite
# delta_t). A_{t+1}(tau) is a subset of A_t(tau) (a finite state's backpointer is a finite
# state), so once A_t(tau) is a single state s, every future best path, offline Viterbi's
# included, goes through s at tau: tau and everything before it is final. The window is
# the unresolved times w0..t; for each it remembers |A(tau)| from the last trace. After a
# step, the trace walks back from the finite states of t through the backpointers, one
# time at a time (a generation-stamped mark array dedupes the set, O(|set|) per time),
# and stops as soon as the set at some tau has the remembered size: sets only shrink, so
# equal size means equal set, and every earlier set is then unchanged too. A set of size
# one resolves everything up to tau (the states follow from it by backpointers). Each
# continued level lowers some remembered size, so the trace costs O(N) per step typically
# and O(N^2) amortised at worst.
#
# Backpointers of the window live in a ring buffer indexed by time modulo its capacity (a
# power of two), in the smallest unsigned type that holds N (uint8 up to 256 states,
# uint16 up to 65,536, int32 beyond), as in the offline decoder. It doubles when full and
# halves when the window falls below a quarter of it, so memory follows the window.
#
# Fixed lag (``max_lag=L``): after the convergence trace, while the window holds more
# than L steps, its oldest step is emitted by tracing back from the current best state
# (first argmax of delta). Every state then comes out at most L steps after its
# observation, at the price that a later observation may prefer a different state there.
#
# Beam pruning (``beam``/``max_active``/``min_active``): after each step the new scores go
# through ``prune`` of _prune.pxd, the beam decoder's own rule, and pruned states become
# -inf. A dense max-plus step from such a delta picks, for every state, the best active
# predecessor with ties to the lowest, which is what the beam decoder's sparse expansion
# picks; so the output equals the offline beam decoder's. Fewer finite states also make
# the paths coalesce sooner (a shorter window).
#
# Failed pushes. A chunk is applied in two passes: the forward pass appends backpointers
# after the window (never overwriting it), records which states are finite at each step
# (and the best state, for max_lag), and on an impossible step restores delta and drops
# what it appended; only a complete forward pass is followed by the resolution pass
# (trace + fixed lag per step, the same procedure as pushing one observation at a time),
# which cannot fail. So a push either applies entirely or leaves the decoder as it was.
#
# Threads. A stream is a state machine: use it from one thread at a time (a concurrent
# call raises RuntimeError instead of corrupting it). Different streams over one model are
# independent.

from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from libc.math cimport INFINITY, exp, log, fabs
from libc.stdint cimport uint8_t, uint16_t, int32_t, uint64_t
from cpython.long cimport PyLong_CheckExact

import numpy as np

from hmmfast import _validation as V
from hmmfast._emissions import canonical_symbols
from hmmfast._errors import (HMMTypeError, ImpossibleSequenceError, PruningError,
                             raise_kernel_status)

cimport numpy as cnp
from _common cimport (
    Chain, intp_t, stride, argmax_first, max_of, get_chain, f64_data,
)
from _passes cimport LOG_TINY, exact_column_lse, forward_product, maxplus_step
from _prune cimport BeamParams, prune
from _viterbi_table cimport backptr_bytes

cdef extern from "hmm_exp.h" nogil:
    void hmm_exp_nonpos(const double* values, Py_ssize_t n, double* out)

cnp.import_array()

cdef enum:
    SRC_TABLE = 0      # symbols indexing the cached log-emission table (CategoricalHMM)
    SRC_DENSITY = 1    # feature vectors through the family's compiled density
    SRC_HOOK = 2       # the generic _compute_log_likelihood hook
    BLOCK = 4096       # frames per block of log-emissions (continuous and hook paths)
    NOGIL_MIN = 64     # chunks at least this long run with the GIL released
    MIN_SLOTS = 64     # smallest ring capacity (a power of two) ...
    MIN_RING_BYTES = 1 << 20  # ... unless that takes more than this (huge N)
    SMALL_OUT = 4096   # output buffers larger than this are freed after a push
    VECTOR_EXP_MIN = 16  # from this many states the vectorised exp beats libm's

_np_integer = np.integer


cdef object _empty_intp():
    cdef cnp.npy_intp dims[1]
    dims[0] = 0
    return cnp.PyArray_EMPTY(1, dims, cnp.NPY_INTP, 0)


cdef object _bad_symbol(Py_ssize_t index, long long value, Py_ssize_t n_rows):
    """Raise what model.score(chunk) raises for an out-of-range symbol at chunk[index]."""
    raise_kernel_status(1, 0, index, 0, value, n_rows)


cdef inline Py_ssize_t first_bad_row(const intp_t* rows, Py_ssize_t T,
                                     Py_ssize_t n_rows) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(T):
        if <size_t> rows[k] >= <size_t> n_rows:
            return k
    return -1


cdef inline void* checked_malloc(size_t size) except NULL:
    cdef void* p = malloc(size if size > 0 else 1)
    if p == NULL:
        raise MemoryError(f"could not allocate {size} bytes for a stream")
    return p


cdef void* regrow(void* old, size_t size) except NULL:
    """A new scratch buffer of ``size`` bytes replacing ``old`` (freed only on success;
    contents are not kept)."""
    cdef void* p = checked_malloc(size)
    free(old)
    return p


cdef class _Stream:
    """What both stream objects share: the model snapshot and observation handling."""

    cdef object _model
    cdef object _compiled
    cdef object _table_ref
    cdef const Chain* _ch
    cdef const double* _table
    cdef Py_ssize_t _n_rows
    cdef Py_ssize_t _n
    cdef Py_ssize_t _n_seen
    cdef int _source
    cdef bint _symbols      # observations are symbols (CategoricalHMM) rather than vectors
    cdef bint _busy

    def __cinit__(self, *args, **kwargs):
        self._busy = False

    cdef int _attach(self, model) except -1:
        from hmmfast._base import BaseHMM
        from hmmfast._categorical import CategoricalHMM
        from hmmfast._continuous import ContinuousHMM
        if not isinstance(model, BaseHMM):
            raise HMMTypeError(
                f"model must be an hmmfast model (a BaseHMM), got {type(model).__name__}")
        c = model._cache or model._prepare()
        self._model = model
        self._compiled = c
        self._ch = get_chain(c.chain)
        self._n = self._ch.n_states
        self._symbols = isinstance(model, CategoricalHMM)
        if self._symbols and not model._dense_emissions:
            self._source = SRC_TABLE
            table = c.emission[0]
            self._n_rows = cnp.PyArray_DIM(<cnp.ndarray?> table, 0)
            self._table = f64_data(table, self._n_rows * self._n, "log_table")
            self._table_ref = table
        elif isinstance(model, ContinuousHMM):
            self._source = SRC_DENSITY
        else:
            self._source = SRC_HOOK
        return 0

    cdef int _enter(self) except -1:
        if self._ch == NULL:
            raise RuntimeError(f"{type(self).__name__} was not initialised with a model")
        if self._busy:
            raise RuntimeError(
                f"this {type(self).__name__} is in use by another thread; a stream is a "
                "state machine for one thread at a time")
        self._busy = True
        return 0

    cdef object _prepare(self, obs):
        """Validate a whole push. Returns None for an empty chunk, else (T, data): for the
        table path an intp array of in-range symbols; otherwise what ``_log_em`` takes."""
        model = self._model
        if self._symbols:
            arr = canonical_symbols(obs)
            if arr is None:
                if isinstance(obs, np.ndarray):
                    arr = obs
                else:
                    try:
                        arr = np.asarray(obs)
                    except (TypeError, ValueError, OverflowError):
                        V.symbols(obs)  # raises the library's error for it
                        raise
                if arr.ndim == 0:
                    arr = arr.reshape(1)
                if arr.size == 0:
                    return None
                if self._source == SRC_TABLE:
                    arr = V.symbols(arr)
            if self._source != SRC_TABLE:
                checked = model._check_X(arr)
                return checked.shape[0], checked
            arr = arr.reshape(-1)
            bad = first_bad_row(<const intp_t*> cnp.PyArray_DATA(<cnp.ndarray> arr),
                                cnp.PyArray_SIZE(<cnp.ndarray> arr), self._n_rows)
            if bad >= 0:
                _bad_symbol(bad, int(arr[bad]), self._n_rows)
            return cnp.PyArray_SIZE(<cnp.ndarray> arr), arr
        arr = V._real_array("X", obs)
        if arr.ndim <= 1:
            arr = arr.reshape(1, -1)  # one frame of n_features values (a scalar: one value)
        elif arr.ndim == 2 and arr.shape[0] == 0:
            return None
        if self._source == SRC_DENSITY:
            frames, missing = model._observations(arr)
            return frames.shape[0], (frames, missing)
        checked = model._check_X(arr)
        return checked.shape[0], checked

    cdef object _log_em(self, data, Py_ssize_t a, Py_ssize_t b):
        """Log-emissions of frames a..b-1 of a prepared chunk: (b - a, N) float64, C order."""
        if self._source == SRC_DENSITY:
            frames, missing = data
            out = self._model._log_emissions(
                self._compiled, frames[a:b], None if missing is None else missing[a:b], 1)
            return np.ascontiguousarray(out, dtype=np.float64)
        return V.log_emission_matrix(self._model._compute_log_likelihood(data[a:b]), self._n,
                                     "_compute_log_likelihood(X)")

    cdef bint _one_symbol(self, obs, Py_ssize_t* row) except -1:
        """True (and the table row) when obs is one integer symbol for the table path; a
        symbol out of range raises here. False: take the general path."""
        cdef long long v
        if self._source != SRC_TABLE:
            return False
        if not PyLong_CheckExact(obs) and not isinstance(obs, _np_integer):
            return False
        try:
            v = obs
        except OverflowError:
            return False  # the general path explains
        if v < 0 or v >= self._n_rows:
            _bad_symbol(0, v, self._n_rows)
        row[0] = <Py_ssize_t> v
        return True

    @property
    def n_seen(self):
        """Number of observations pushed since creation, the last ``reset()`` (or, for a
        decoder, the last ``flush()``)."""
        return self._n_seen

    @property
    def model(self):
        """The model this stream was created from (its parameters as they were then are
        what the stream uses)."""
        return self._model


cdef class StreamScorer(_Stream):
    """Running log-likelihood and filtered state distribution of an observation stream.

    Created by ``model.stream_scorer()``. Memory is O(N) for any stream length.

    Parameters
    ----------
    model : hmmfast model
        Any fitted hmmfast model. Its compiled parameters are captured now: assigning new
        parameters to the model later does not affect this stream (create a new one). A
        subclass that supplies its own ``_compute_log_likelihood`` (hmmlearn's
        custom-emission hook) is called through that hook, which reads what it reads.

    Notes
    -----
    Observations: for a CategoricalHMM an integer (Python or NumPy) is one observation and
    a 1-D integer array or list (or hmmlearn's (n, 1) array) a chunk; for the feature-vector
    families a 1-D array of ``n_features`` numbers is one frame and a 2-D array a chunk of
    frames (missing frames, with ``missing="marginalize"``, as in ``score``). An empty
    chunk is a no-op. Invalid observations raise what ``model.score``
    raises on them (positions in messages are indices into the pushed chunk) and leave
    the stream unchanged: a chunk is validated in full before any of it is applied.

    The arithmetic is the exact log-space forward recursion (see csrc/_stream.pyx): after
    any sequence of pushes, the running value equals ``model.score`` of the concatenated
    observations to rounding (1e-9 relative is tested on streams of 100,000 steps).

    An observation the model cannot produce after the ones before it makes the running
    log-likelihood -inf and sets ``impossible``; later pushes are still validated and
    counted, and return -inf; ``reset()`` starts over.

    Not for concurrent use: one thread at a time per stream.

    Examples
    --------
    >>> import hmmfast
    >>> model = hmmfast.CategoricalHMM(2)
    >>> model.startprob_ = [0.6, 0.4]
    >>> model.transmat_ = [[0.7, 0.3], [0.4, 0.6]]
    >>> model.emissionprob_ = [[0.9, 0.1], [0.2, 0.8]]
    >>> scorer = model.stream_scorer()
    >>> round(scorer.push(0), 4)           # log P(o_1)
    -0.478
    >>> round(scorer.push([1, 1]), 4)      # a chunk: log P(o_1..o_3) = model.score([0, 1, 1])
    -2.3019
    >>> scorer.posterior.round(4)          # P(state_3 | o_1..o_3)
    array([0.0958, 0.9042])
    """

    cdef double* _buf
    cdef double* _cur       # normalised log alpha of the last step
    cdef double* _nxt
    cdef double* _p
    cdef double* _acc
    cdef double _cur_max
    cdef double _sum        # running log-likelihood (Neumaier: _sum + _comp)
    cdef double _comp
    cdef double _last
    cdef bint _impossible
    cdef Py_ssize_t _impossible_step

    def __cinit__(self, *args, **kwargs):
        self._buf = NULL

    def __init__(self, model):
        if self._ch != NULL:
            raise RuntimeError("StreamScorer is already initialised")
        self._attach(model)
        cdef Py_ssize_t sn = stride(self._n)
        self._buf = <double*> checked_malloc(4 * sn * sizeof(double))
        self._cur = self._buf
        self._nxt = self._buf + sn
        self._p = self._buf + 2 * sn
        self._acc = self._buf + 3 * sn
        self._clear()

    def __dealloc__(self):
        free(self._buf)

    cdef void _clear(self) noexcept:
        self._n_seen = 0
        self._sum = 0.0
        self._comp = 0.0
        self._last = 0.0
        self._cur_max = 0.0
        self._impossible = False
        self._impossible_step = -1

    cdef inline double _value(self) noexcept nogil:
        if self._impossible:
            return -INFINITY
        return self._sum + self._comp

    cdef void _step(self, const double* log_b) noexcept nogil:
        """Advance by one observation (log-emissions log_b); _n_seen is its index.

        ``log_forward_step`` of _passes.pxd, except that p = exp(a_{t-1} - max a_{t-1})
        is kept from the previous step's normalisation (which computes exactly these
        exponentials) instead of being recomputed: N exps and N logs per step.
        """
        cdef Py_ssize_t j, n = self._n
        cdef const Chain* ch = self._ch
        cdef double m, c, s, total = 0.0
        cdef double* out = self._nxt
        cdef double* p = self._p
        if self._impossible:
            return
        if self._n_seen == 0:
            for j in range(n):
                out[j] = ch.log_startprob[j] + log_b[j]
        else:
            forward_product(ch, p, self._acc)  # dense SIMD, or O(nnz) for a sparse chain
            for j in range(n):
                s = self._acc[j]
                if log_b[j] == -INFINITY:
                    out[j] = -INFINITY
                elif s > LOG_TINY:
                    out[j] = self._cur_max + log(s) + log_b[j]
                else:  # every contribution lost to the shift: recompute exactly
                    out[j] = exact_column_lse(self._cur, ch, j) + log_b[j]
        m = max_of(out, n)
        if m == -INFINITY:
            self._impossible = True
            self._impossible_step = self._n_seen
            self._last = -INFINITY
            return
        if n >= VECTOR_EXP_MIN:
            for j in range(n):
                p[j] = out[j] - m
            hmm_exp_nonpos(p, n, p)  # vectorised, within 2 ulp (hmm_exp.h)
        else:
            for j in range(n):
                p[j] = exp(out[j] - m)
        for j in range(n):
            total += p[j]
        c = m + log(total)  # log P(o_t | o_<t)
        for j in range(n):
            out[j] = out[j] - c
        self._nxt = self._cur
        self._cur = out
        self._cur_max = m - c
        self._last = c
        s = self._sum + c  # Neumaier's compensated sum
        if fabs(self._sum) >= fabs(c):
            self._comp += (self._sum - s) + c
        else:
            self._comp += (c - s) + self._sum
        self._sum = s

    cdef void _run_rows(self, const intp_t* rows, Py_ssize_t T) noexcept nogil:
        cdef Py_ssize_t k
        for k in range(T):
            self._step(self._table + rows[k] * self._n)
            self._n_seen += 1

    cdef void _run_dense(self, const double* log_em, Py_ssize_t T) noexcept nogil:
        cdef Py_ssize_t k
        for k in range(T):
            self._step(log_em + k * self._n)
            self._n_seen += 1

    def push(self, obs):
        """Add one observation or a chunk; return the running log-likelihood.

        Parameters
        ----------
        obs : int, array-like
            One observation or a chunk (see the class Notes).

        Returns
        -------
        float
            log P(o_1, ..., o_t) over everything pushed so far (-inf once impossible;
            0.0 for an empty first chunk).
        """
        cdef Py_ssize_t row, T, a, b
        cdef double* saved = NULL
        cdef Py_ssize_t sn = stride(self._n)
        cdef double s_sum, s_comp, s_last, s_max
        cdef Py_ssize_t s_seen, s_step
        cdef bint s_imp
        cdef cnp.ndarray arr
        self._enter()
        try:
            if self._one_symbol(obs, &row):
                self._step(self._table + row * self._n)
                self._n_seen += 1
                return self._value()
            prepared = self._prepare(obs)
            if prepared is None:
                return self._value()
            T, data = prepared
            if self._source == SRC_TABLE:
                arr = <cnp.ndarray> data
                if T >= NOGIL_MIN:
                    with nogil:
                        self._run_rows(<const intp_t*> cnp.PyArray_DATA(arr), T)
                else:
                    self._run_rows(<const intp_t*> cnp.PyArray_DATA(arr), T)
                return self._value()
            # emissions computed block by block: keep the state to restore if one fails
            saved = <double*> checked_malloc(2 * sn * sizeof(double))
            memcpy(saved, self._cur, self._n * sizeof(double))
            memcpy(saved + sn, self._p, self._n * sizeof(double))
            s_sum, s_comp, s_last, s_max = self._sum, self._comp, self._last, self._cur_max
            s_seen, s_imp, s_step = self._n_seen, self._impossible, self._impossible_step
            try:
                for a in range(0, T, BLOCK):
                    b = min(T, a + BLOCK)
                    if self._impossible:  # still validated (above); nothing to compute
                        self._n_seen += b - a
                        continue
                    arr = self._log_em(data, a, b)
                    with nogil:
                        self._run_dense(<const double*> cnp.PyArray_DATA(arr), b - a)
            except BaseException:
                memcpy(self._cur, saved, self._n * sizeof(double))
                memcpy(self._p, saved + sn, self._n * sizeof(double))
                self._sum, self._comp, self._last, self._cur_max = s_sum, s_comp, s_last, s_max
                self._n_seen, self._impossible, self._impossible_step = s_seen, s_imp, s_step
                raise
            return self._value()
        finally:
            free(saved)
            self._busy = False

    def reset(self):
        """Forget everything pushed: back to the state of a new stream (same parameters)."""
        self._enter()
        self._clear()
        self._busy = False

    @property
    def logprob(self):
        """float: the running log-likelihood log P(o_1..o_t), as last returned by ``push``
        (0.0 before any push, -inf once ``impossible``)."""
        return self._value()

    @property
    def last_step(self):
        """float or None: log P(o_t | o_1..o_{t-1}) of the last observation pushed (the
        per-step conditionals sum to ``logprob``). -inf for the observation that made the
        stream impossible, and from then on. None before any push."""
        if self._n_seen == 0:
            return None
        if self._impossible:
            return -INFINITY
        return self._last

    @property
    def impossible(self):
        """bool: True once an observation the model cannot produce was pushed (the
        running log-likelihood is then -inf until ``reset()``)."""
        return bool(self._impossible)

    @property
    def posterior(self):
        """ndarray of shape (n_components,) or None: the filtered state distribution
        P(state_t | o_1..o_t) after the last observation (a new array each time). None
        before any push.

        Raises
        ------
        hmmfast.ImpossibleSequenceError
            When the stream is ``impossible`` (the distribution is undefined).
        """
        cdef cnp.npy_intp dims[1]
        cdef Py_ssize_t j, n = self._n
        cdef double total = 0.0
        cdef double* out
        if self._n_seen == 0:
            return None
        if self._impossible:
            k = self._impossible_step
            raise ImpossibleSequenceError(
                f"the stream has probability zero under the model: no state path explains "
                f"observation {k} (counting from 0) given the ones before it, so it has no "
                "posterior; reset() starts a new stream", 0, k, k)
        dims[0] = n
        result = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        out = <double*> cnp.PyArray_DATA(<cnp.ndarray> result)
        for j in range(n):
            out[j] = exp(self._cur[j])
            total += out[j]
        for j in range(n):
            out[j] /= total
        return result

    def __repr__(self):
        return (f"StreamScorer(n_seen={self._n_seen}, logprob={self._value()!r}, "
                f"impossible={bool(self._impossible)})")


# ---------------------------------------------------------------- online Viterbi

cdef inline Py_ssize_t bp_get(const char* row, int width, Py_ssize_t j) noexcept nogil:
    if width == 1:
        return (<const uint8_t*> row)[j]
    if width == 2:
        return (<const uint16_t*> row)[j]
    return (<const int32_t*> row)[j]


cdef inline void bp_put(char* row, int width, const double* arg, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    if width == 1:
        for j in range(n):
            (<uint8_t*> row)[j] = <uint8_t> arg[j]
    elif width == 2:
        for j in range(n):
            (<uint16_t*> row)[j] = <uint16_t> arg[j]
    else:
        for j in range(n):
            (<int32_t*> row)[j] = <int32_t> arg[j]


cdef class StreamDecoder(_Stream):
    """Exact online Viterbi decoding of an observation stream.

    Created by ``model.stream_decoder(max_lag=None)``. ``push`` returns the states that
    have become final, ``flush`` the rest at the end of the stream; the concatenation of
    everything returned equals ``model.decode(X)[1]`` of the concatenated observations
    exactly, ties included (without ``max_lag``).

    Parameters
    ----------
    model : hmmfast model
        Any fitted hmmfast model; its compiled parameters are captured now (later
        assignments to the model do not affect this decoder).
    max_lag : int >= 0 or None
        None (default): exact decoding. A state is emitted once every surviving partial
        path agrees on it (the paths have coalesced); memory is bounded by the unresolved
        ``window``, which stays short for a model whose paths coalesce (most mixing
        models) but grows without bound for one whose paths never merge (e.g. an identity
        transition matrix with several possible states).
        An int L: fixed-lag decoding. Whenever more than L steps are unresolved, the
        oldest is emitted from the best path ending at the current step (ties to the lowest
        state), so every state comes out at most L steps after its observation and the
        window never exceeds L. Such a state may differ from offline Viterbi (a later
        observation could have preferred another path through it), and consecutive forced
        states need not be joined by an allowed transition. Where the paths coalesce
        within L steps the output is exact.
    beam, max_active, min_active : optional
        Beam pruning, as for ``model.decode``: after each step only the states within
        ``beam`` (natural log) of the step's best survive, at most ``max_active`` and at
        least ``min_active`` of them (the rules of csrc/_prune.pxd). Every state is still
        scored (a dense step), pruned ones are set to -inf, so the output equals
        ``model.decode(X, beam=..., max_active=..., min_active=...)`` on the concatenated
        observations, and pruning also shortens the window: fewer surviving paths
        coalesce sooner. When pruning has removed every path that could explain an
        observation, the push raises :class:`hmmfast.PruningError` (widen the beam).

    Notes
    -----
    Observations are given as for :class:`StreamScorer`; invalid ones raise what
    ``model.decode`` raises and leave the decoder unchanged. An observation that no
    surviving path can explain raises :class:`hmmfast.ImpossibleSequenceError` (its
    ``step`` is the observation's index in the stream, its ``position`` the index in the
    pushed chunk) and leaves the decoder as it was before the push; the stream can go on
    with other observations.

    Not for concurrent use: one thread at a time per decoder.

    Examples
    --------
    With ``model`` as in :class:`StreamScorer`:

    >>> decoder = model.stream_decoder()
    >>> [decoder.push(x).tolist() for x in (0, 1, 1, 0)]
    [[], [0], [1], [1]]
    >>> decoder.window, decoder.flush().tolist()
    (1, [0])
    >>> model.decode([0, 1, 1, 0])[1].tolist()
    [0, 1, 1, 0]
    """

    cdef double* _vec
    cdef double* _delta
    cdef double* _next
    cdef double* _arg
    cdef double* _saved
    cdef intp_t* _set_a
    cdef intp_t* _set_b
    cdef uint64_t* _mark
    cdef uint64_t _stamp
    # ring of backpointers of the window times _w0 .. _n_seen - 1 (slot = time & _mask)
    cdef char* _ring
    cdef int32_t* _sizes     # remembered |A(tau)| per slot (0: not traced yet)
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _min_cap
    cdef Py_ssize_t _mask
    cdef int _width
    cdef Py_ssize_t _w0
    cdef Py_ssize_t _max_lag  # -1: exact
    # per-push scratch: finite-state masks and best states of a chunk's steps, output
    cdef uint8_t* _fin
    cdef Py_ssize_t _fin_cap
    cdef intp_t* _best
    cdef Py_ssize_t _best_cap
    cdef intp_t* _out
    cdef Py_ssize_t _out_len
    cdef Py_ssize_t _out_cap
    # beam pruning (``_prune_on`` False: exact); ``_pruned``: some state was pruned
    cdef BeamParams _params
    cdef bint _prune_on
    cdef bint _pruned

    def __cinit__(self, *args, **kwargs):
        self._vec = NULL
        self._set_a = NULL
        self._set_b = NULL
        self._mark = NULL
        self._ring = NULL
        self._sizes = NULL
        self._fin = NULL
        self._best = NULL
        self._out = NULL

    def __init__(self, model, max_lag=None, *, beam=None, max_active=None, min_active=None):
        if self._ch != NULL:
            raise RuntimeError("StreamDecoder is already initialised")
        self._max_lag = -1 if max_lag is None else V.check_n("max_lag", max_lag, minimum=0)
        pruning = V.pruning(beam, max_active, min_active)
        self._prune_on = pruning is not None
        self._pruned = False
        if pruning is not None:
            self._params.beam, self._params.max_active, self._params.min_active = pruning
        self._attach(model)
        cdef Py_ssize_t n = self._n, sn = stride(self._n)
        self._width = <int> backptr_bytes(n)
        self._vec = <double*> checked_malloc(4 * sn * sizeof(double))
        self._delta = self._vec
        self._next = self._vec + sn
        self._arg = self._vec + 2 * sn
        self._saved = self._vec + 3 * sn
        self._set_a = <intp_t*> checked_malloc(n * sizeof(intp_t))
        self._set_b = <intp_t*> checked_malloc(n * sizeof(intp_t))
        self._mark = <uint64_t*> checked_malloc(n * sizeof(uint64_t))
        memset(self._mark, 0, n * sizeof(uint64_t))
        self._stamp = 0
        self._cap = 0
        self._min_cap = MIN_SLOTS
        while self._min_cap > 2 and self._min_cap * n * self._width > MIN_RING_BYTES:
            self._min_cap //= 2
        self._resize_ring(self._min_cap)
        self._fin_cap = n
        self._fin = <uint8_t*> checked_malloc(n)
        self._best_cap = 1
        self._best = <intp_t*> checked_malloc(sizeof(intp_t))
        self._out_cap = 64
        self._out = <intp_t*> checked_malloc(64 * sizeof(intp_t))
        self._out_len = 0
        self._n_seen = 0
        self._w0 = 0

    def __dealloc__(self):
        free(self._vec)
        free(self._set_a)
        free(self._set_b)
        free(self._mark)
        free(self._ring)
        free(self._sizes)
        free(self._fin)
        free(self._best)
        free(self._out)

    # ------------------------------------------------------------ buffers

    cdef int _resize_ring(self, Py_ssize_t cap) except -1:
        """Move the window's slots into a ring of ``cap`` slots (a power of two)."""
        cdef Py_ssize_t row = self._n * self._width, t
        cdef char* ring = <char*> checked_malloc(cap * row)
        cdef int32_t* sizes
        try:
            sizes = <int32_t*> checked_malloc(cap * sizeof(int32_t))
        except MemoryError:
            free(ring)
            raise
        for t in range(self._w0, self._n_seen):
            memcpy(ring + (t & (cap - 1)) * row, self._ring + (t & self._mask) * row, row)
            sizes[t & (cap - 1)] = self._sizes[t & self._mask]
        free(self._ring)
        free(self._sizes)
        self._ring = ring
        self._sizes = sizes
        self._cap = cap
        self._mask = cap - 1
        return 0

    cdef int _reserve(self, Py_ssize_t extra) except -1:
        """Room in the ring for ``extra`` steps after the window."""
        cdef Py_ssize_t need = self._n_seen - self._w0 + extra, cap = self._cap
        if need <= cap:
            return 0
        while cap < need:
            cap *= 2
        return self._resize_ring(cap)

    cdef void _shrink(self) noexcept:
        """Halve the ring while the window fills less than a quarter of it (optional: a
        failed allocation keeps the larger ring)."""
        cdef Py_ssize_t window = self._n_seen - self._w0, cap = self._cap
        if cap <= self._min_cap or 4 * window >= cap:
            return
        while cap > self._min_cap and 4 * window < cap:
            cap //= 2
        try:
            self._resize_ring(cap)
        except MemoryError:
            pass

    cdef int _scratch(self, Py_ssize_t T) except -1:
        """Per-step masks (and best states) for a chunk of T steps, and output room for
        every state that could come out of it."""
        if T * self._n > self._fin_cap:
            self._fin = <uint8_t*> regrow(self._fin, T * self._n)
            self._fin_cap = T * self._n
        if self._max_lag >= 0 and T > self._best_cap:
            self._best = <intp_t*> regrow(self._best, T * sizeof(intp_t))
            self._best_cap = T
        return self._reserve_out(self._n_seen - self._w0 + T)

    cdef int _reserve_out(self, Py_ssize_t count) except -1:
        """Room for ``count`` output states (only between pushes: contents are dropped)."""
        if count > self._out_cap:
            self._out = <intp_t*> regrow(self._out, count * sizeof(intp_t))
            self._out_cap = count
        return 0

    cdef void _trim_scratch(self) noexcept:
        """Give back the memory of a long chunk (optional: kept if allocation fails)."""
        cdef void* p
        if self._fin_cap > SMALL_OUT * self._n:
            p = malloc(self._n)
            if p != NULL:
                free(self._fin)
                self._fin = <uint8_t*> p
                self._fin_cap = self._n
        if self._best_cap > SMALL_OUT:
            p = malloc(sizeof(intp_t))
            if p != NULL:
                free(self._best)
                self._best = <intp_t*> p
                self._best_cap = 1
        if self._out_cap > SMALL_OUT:
            p = malloc(64 * sizeof(intp_t))
            if p != NULL:
                free(self._out)
                self._out = <intp_t*> p
                self._out_cap = 64

    # ------------------------------------------------------------ forward pass

    cdef bint _forward(self, const double* log_b, Py_ssize_t t, uint8_t* fin,
                       intp_t* best) noexcept nogil:
        """One max-plus step to time t (the arithmetic of csrc/_viterbi.pyx), writing the
        backpointers of t into its ring slot, which states are finite into ``fin`` and,
        with max_lag, the best state. False (delta untouched) when no state is finite."""
        cdef Py_ssize_t n = self._n, j
        cdef bint reachable = False
        cdef double* swap
        cdef const Chain* ch = self._ch
        if t == 0:
            for j in range(n):
                self._next[j] = ch.log_startprob[j] + log_b[j]
                fin[j] = self._next[j] > -INFINITY
                reachable |= fin[j]
        else:
            maxplus_step(ch, self._delta, self._next, self._arg)
            bp_put(self._ring + (t & self._mask) * n * self._width, self._width, self._arg, n)
            for j in range(n):
                self._next[j] += log_b[j]
                fin[j] = self._next[j] > -INFINITY
                reachable |= fin[j]
        if reachable and self._prune_on:
            self._prune_step(fin)
        if not reachable:
            return False
        swap = self._delta
        self._delta = self._next
        self._next = swap
        if best != NULL:
            best[0] = argmax_first(self._delta, n)
        return True

    cdef void _prune_step(self, uint8_t* fin) noexcept nogil:
        """Beam-prune the new scores (``_next``): pruned states become -inf. Uses
        ``_set_a`` as scratch (the trace only needs it in the resolution pass)."""
        cdef Py_ssize_t n = self._n, j, k
        cdef intp_t* reached = self._set_a
        cdef bint pruned = False
        for j in range(n):
            reached[j] = j
        k = prune(&self._params, reached, n, self._next, &pruned)
        if not pruned:
            return
        self._pruned = True
        for j in range(n):
            fin[j] = 0
        for j in range(k):
            fin[reached[j]] = 1
        for j in range(n):
            if not fin[j]:
                self._next[j] = -INFINITY

    # ------------------------------------------------------------ resolution pass

    cdef inline const char* _row(self, Py_ssize_t t) noexcept nogil:
        return self._ring + (t & self._mask) * self._n * self._width

    cdef void _emit_back(self, Py_ssize_t tau, Py_ssize_t s) noexcept nogil:
        """Emit the window's times w0..tau, following backpointers from state s at tau."""
        cdef Py_ssize_t count = tau - self._w0 + 1, u
        cdef intp_t* out = self._out + self._out_len
        out[count - 1] = s
        for u in range(tau, self._w0, -1):
            s = bp_get(self._row(u), self._width, s)
            out[u - 1 - self._w0] = s
        self._out_len += count
        self._w0 = tau + 1

    cdef void _trace(self, Py_ssize_t t, const uint8_t* fin) noexcept nogil:
        """The convergence trace after the step to time t (see the design note)."""
        cdef Py_ssize_t n = self._n, j, k = 0, k2, tau, i
        cdef intp_t* cur = self._set_a
        cdef intp_t* nxt = self._set_b
        cdef intp_t* swap
        cdef const char* row
        cdef int width = self._width
        cdef uint64_t stamp
        for j in range(n):
            if fin[j]:
                cur[k] = j
                k += 1
        if k == 1:
            self._emit_back(t, cur[0])
            return
        self._sizes[t & self._mask] = <int32_t> k
        tau = t - 1
        while tau >= self._w0:
            row = self._row(tau + 1)
            self._stamp += 1
            stamp = self._stamp
            k2 = 0
            for j in range(k):
                i = bp_get(row, width, cur[j])
                if self._mark[i] != stamp:
                    self._mark[i] = stamp
                    nxt[k2] = i
                    k2 += 1
            if k2 == self._sizes[tau & self._mask]:
                return  # unchanged here, so unchanged before
            self._sizes[tau & self._mask] = <int32_t> k2
            if k2 == 1:
                self._emit_back(tau, nxt[0])
                return
            swap = cur
            cur = nxt
            nxt = swap
            k = k2
            tau -= 1

    cdef void _resolve(self, Py_ssize_t t, const uint8_t* fin, Py_ssize_t best) noexcept nogil:
        """Everything that becomes final after the step to time t."""
        cdef Py_ssize_t s, u
        self._trace(t, fin)
        if self._max_lag < 0:
            return
        while t - self._w0 + 1 > self._max_lag:
            s = best
            for u in range(t, self._w0, -1):
                s = bp_get(self._row(u), self._width, s)
            self._out[self._out_len] = s
            self._out_len += 1
            self._w0 += 1

    cdef void _resolve_chunk(self, Py_ssize_t t0, Py_ssize_t T) noexcept nogil:
        cdef Py_ssize_t k
        for k in range(T):
            self._resolve(t0 + k, self._fin + k * self._n,
                          self._best[k] if self._max_lag >= 0 else 0)

    cdef Py_ssize_t _forward_rows(self, const intp_t* rows, Py_ssize_t t0, Py_ssize_t k0,
                                  Py_ssize_t T) noexcept nogil:
        """Forward over table rows for chunk steps k0..k0+T-1 (time t0 + k); returns the
        first impossible chunk step or -1."""
        cdef Py_ssize_t k
        cdef bint lag = self._max_lag >= 0
        for k in range(k0, k0 + T):
            if not self._forward(self._table + rows[k - k0] * self._n, t0 + k,
                                 self._fin + k * self._n, self._best + k if lag else NULL):
                return k
        return -1

    cdef Py_ssize_t _forward_dense(self, const double* log_em, Py_ssize_t t0, Py_ssize_t k0,
                                   Py_ssize_t T) noexcept nogil:
        cdef Py_ssize_t k
        cdef bint lag = self._max_lag >= 0
        for k in range(k0, k0 + T):
            if not self._forward(log_em + (k - k0) * self._n, t0 + k,
                                 self._fin + k * self._n, self._best + k if lag else NULL):
                return k
        return -1

    cdef object _take_output(self):
        cdef cnp.npy_intp dims[1]
        dims[0] = self._out_len
        result = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INTP, 0)
        if self._out_len:
            memcpy(cnp.PyArray_DATA(<cnp.ndarray> result), self._out,
                   self._out_len * sizeof(intp_t))
        self._out_len = 0
        return result

    cdef object _impossible_error(self, Py_ssize_t step, Py_ssize_t k):
        if self._pruned:
            return PruningError(
                f"beam pruning removed every path that explains observation {step} of the "
                f"stream (index {k} of this push): the stream may well be possible, widen "
                "beam or raise min_active; the push was not applied", 0, step, k)
        return ImpossibleSequenceError(
            f"the stream has probability zero under the model: no state path explains "
            f"observation {step} of the stream (index {k} of this push) given the ones "
            "before it, so it cannot be decoded; the push was not applied", 0, step, k)

    # ------------------------------------------------------------ public

    def push(self, obs):
        """Add one observation or a chunk; return the states that became final.

        Parameters
        ----------
        obs : int, array-like
            One observation or a chunk (as for :meth:`StreamScorer.push`).

        Returns
        -------
        ndarray of intp
            The states, in time order, of the steps resolved by this push (possibly none):
            they continue the states returned before.

        Raises
        ------
        hmmfast.ImpossibleSequenceError
            When an observation has probability zero given the ones before it; nothing of
            the push is applied.
        """
        cdef Py_ssize_t row, T, a, b, bad = -1, t0
        cdef cnp.ndarray arr
        self._enter()
        try:
            t0 = self._n_seen
            if self._one_symbol(obs, &row):
                if self._n_seen - self._w0 + 1 > self._cap:
                    self._reserve(1)
                if self._n_seen - self._w0 + 1 > self._out_cap:
                    self._reserve_out(self._n_seen - self._w0 + 1)
                if not self._forward(self._table + row * self._n, t0, self._fin,
                                     self._best if self._max_lag >= 0 else NULL):
                    raise self._impossible_error(t0, 0)
                self._n_seen += 1
                self._resolve(t0, self._fin, self._best[0] if self._max_lag >= 0 else 0)
                if self._cap > self._min_cap:
                    self._shrink()
                result = self._take_output()
                if self._out_cap > SMALL_OUT:
                    self._trim_scratch()
                return result
            prepared = self._prepare(obs)
            if prepared is None:
                return _empty_intp()
            T, data = prepared
            self._reserve(T)
            self._scratch(T)
            memcpy(self._saved, self._delta, self._n * sizeof(double))
            was_pruned = self._pruned
            try:
                if self._source == SRC_TABLE:
                    arr = <cnp.ndarray> data
                    if T >= NOGIL_MIN:
                        with nogil:
                            bad = self._forward_rows(<const intp_t*> cnp.PyArray_DATA(arr),
                                                     t0, 0, T)
                    else:
                        bad = self._forward_rows(<const intp_t*> cnp.PyArray_DATA(arr),
                                                 t0, 0, T)
                else:
                    for a in range(0, T, BLOCK):
                        b = min(T, a + BLOCK)
                        arr = self._log_em(data, a, b)
                        with nogil:
                            bad = self._forward_dense(<const double*> cnp.PyArray_DATA(arr),
                                                      t0, a, b - a)
                        if bad >= 0:
                            break
            except BaseException:
                memcpy(self._delta, self._saved, self._n * sizeof(double))
                self._pruned = was_pruned
                raise
            if bad >= 0:
                memcpy(self._delta, self._saved, self._n * sizeof(double))
                error = self._impossible_error(t0 + bad, bad)
                self._pruned = was_pruned
                raise error
            self._n_seen = t0 + T
            if T >= NOGIL_MIN:
                with nogil:
                    self._resolve_chunk(t0, T)
            else:
                self._resolve_chunk(t0, T)
            self._shrink()
            result = self._take_output()
            self._trim_scratch()
            return result
        finally:
            self._busy = False

    def flush(self):
        """End the stream: return the remaining states of the best path and reset.

        Returns
        -------
        ndarray of intp
            The states of the unresolved steps, following the best path at the last step
            (the first argmax of the Viterbi scores, as offline). Empty when nothing is
            pending. The decoder then starts a new stream (``n_seen`` is 0).
        """
        self._enter()
        try:
            if self._n_seen > self._w0:
                self._reserve_out(self._n_seen - self._w0)
                self._emit_back(self._n_seen - 1, argmax_first(self._delta, self._n))
            result = self._take_output()
            self._clear()
            return result
        finally:
            self._busy = False

    cdef int _clear(self) except -1:
        self._n_seen = 0
        self._w0 = 0
        self._pruned = False
        self._out_len = 0
        if self._cap > self._min_cap:
            try:
                self._resize_ring(self._min_cap)
            except MemoryError:
                pass  # keep the larger ring
        self._trim_scratch()
        return 0

    def reset(self):
        """Discard everything pushed and not yet returned: start a new stream."""
        self._enter()
        try:
            self._clear()
        finally:
            self._busy = False

    @property
    def window(self):
        """int: the number of pushed steps whose state is not final yet (the decoder's
        memory is proportional to it). At most ``max_lag`` with fixed-lag decoding."""
        return self._n_seen - self._w0

    @property
    def max_lag(self):
        """int or None: the fixed lag, or None for exact decoding."""
        return None if self._max_lag < 0 else self._max_lag

    def __repr__(self):
        return (f"StreamDecoder(max_lag={self.max_lag}, n_seen={self._n_seen}, "
                f"window={self._n_seen - self._w0})")
