# The running forward pass behind hmmfast.StreamScorer: a running log-likelihood and the
# filtered state distribution of a stream, one observation (or one chunk) at a time.
#
# Design note
# -----------
# Inputs: the chain, the log-emission table or Python-computed blocks of log-emissions,
# the ``read`` callable (csrc/_stream_common.pxd; the model side is
# hmmfast/_stream_intake.py). Pushing one symbol to a table stream never touches NumPy;
# chunks of symbols at least NOGIL_MIN long, and every block of log-emissions, run with
# the GIL released.
#
# The kernel keeps log alpha normalised: a_t(j) = log P(state_t = j | o_1..o_t). A step is
# the arithmetic of ``log_forward_step`` (_passes.pxd): p = exp(a_{t-1} - max), one
# vector-matrix product s = pA (``forward_product``: dense SIMD, or O(nnz) for a sparse
# chain), a_t = max + log s + log b_t, and the exact logsumexp rescue
# (``exact_column_lse``) of any entry whose shifted sum underflows, so it is exact for any
# model, structural zeros included, and any stream length. Its logsumexp
# c_t = log P(o_t | o_<t) (``last_step``) is then subtracted; the exponentials that
# logsumexp computes are the next step's p, so a step costs N exps (vectorised by
# hmm_exp.h, within 2 ulp, from VECTOR_EXP_MIN states) and N logs. The running
# log-likelihood is the sum of the c_t, accumulated with Neumaier's compensated
# summation, so it stays exact to rounding for any number of steps.
#
# An observation the model cannot produce (every entry -inf) makes the running value -inf
# for good (``impossible``) until ``reset()``; later pushes are still validated and
# counted. A push of symbols is validated whole before its first step and a step cannot
# fail, so it applies entirely; a push computed block by block saves the state first and
# restores it when computing a later block raises, so a failed push changes nothing.

from libc.stdlib cimport free
from libc.string cimport memcpy
from libc.math cimport INFINITY, exp, log, fabs

from hmmfast._errors import ImpossibleSequenceError

cimport numpy as cnp
from _common cimport Chain, intp_t, stride, max_of
from _passes cimport LOG_TINY, exact_column_lse, forward_product
from _stream_common cimport (
    BLOCK, NOGIL_MIN, Inputs, block_data, checked_malloc, enter, open_inputs, symbol_row,
    symbol_rows,
)

cdef extern from "hmm_exp.h" nogil:
    void hmm_exp_nonpos(const double* values, Py_ssize_t n, double* out)

cnp.import_array()

cdef enum:
    VECTOR_EXP_MIN = 16  # from this many states the vectorised exp beats libm's


cdef class StreamScorerKernel:
    """The compiled forward pass of :class:`hmmfast.StreamScorer` (which constructs it).

    Parameters
    ----------
    chain : PyCapsule
        The model's compiled chain.
    table : ndarray of shape (n_symbols, n_components), float64, or None
        The cached log-emission table of a symbol stream (None: blocks from ``read``).
    read : callable
        Validates a push the kernel does not take itself (csrc/_stream_common.pxd).
    """

    cdef Inputs _in
    cdef object _chain      # references that keep ``_in``'s pointers valid
    cdef object _table
    cdef object _read
    cdef Py_ssize_t _n_seen
    cdef bint _busy
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
        self._in.ch = NULL
        self._busy = False
        self._buf = NULL

    def __init__(self, chain, table, read):
        open_inputs(&self._in, chain, table, self)
        self._chain, self._table, self._read = chain, table, read
        cdef Py_ssize_t sn = stride(self._in.n)
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
        cdef Py_ssize_t j, n = self._in.n
        cdef const Chain* ch = self._in.ch
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
            self._step(self._in.table + rows[k] * self._in.n)
            self._n_seen += 1

    cdef void _run_dense(self, const double* log_em, Py_ssize_t T) noexcept nogil:
        cdef Py_ssize_t k
        for k in range(T):
            self._step(log_em + k * self._in.n)
            self._n_seen += 1

    cdef int _push_blocks(self, Py_ssize_t T, object log_emissions) except -1:
        """Steps over a push of T frames whose log-emissions come a block at a time; a
        block that raises restores the state of before the push."""
        cdef Py_ssize_t a, b, n = self._in.n, sn = stride(self._in.n)
        cdef const double* log_em
        cdef double* saved = <double*> checked_malloc(2 * sn * sizeof(double))
        memcpy(saved, self._cur, n * sizeof(double))
        memcpy(saved + sn, self._p, n * sizeof(double))
        s_sum, s_comp, s_last, s_max = self._sum, self._comp, self._last, self._cur_max
        s_seen, s_imp, s_step = self._n_seen, self._impossible, self._impossible_step
        try:
            for a in range(0, T, BLOCK):
                b = min(T, a + BLOCK)
                if self._impossible:  # still validated (by read); nothing to compute
                    self._n_seen += b - a
                    continue
                block = log_emissions(a, b)
                log_em = block_data(block, b - a, n)
                with nogil:
                    self._run_dense(log_em, b - a)
        except BaseException:
            memcpy(self._cur, saved, n * sizeof(double))
            memcpy(self._p, saved + sn, n * sizeof(double))
            self._sum, self._comp, self._last, self._cur_max = s_sum, s_comp, s_last, s_max
            self._n_seen, self._impossible, self._impossible_step = s_seen, s_imp, s_step
            raise
        finally:
            free(saved)
        return 0

    def push(self, obs):
        """Add one observation or a chunk; return the running log-likelihood.

        Parameters
        ----------
        obs : int, array-like
            One observation or a chunk (see :class:`hmmfast.StreamScorer`).

        Returns
        -------
        float
            log P(o_1, ..., o_t) over everything pushed so far (-inf once impossible;
            0.0 for an empty first chunk).
        """
        cdef Py_ssize_t row, T
        cdef cnp.ndarray arr
        enter(&self._busy, &self._in, self)
        try:
            row = symbol_row(&self._in, obs)
            if row >= 0:
                self._step(self._in.table + row * self._in.n)
                self._n_seen += 1
                return self._value()
            if self._in.table != NULL:
                rows = symbol_rows(&self._in, obs, self._read)
                if rows is None:
                    return self._value()
                arr = <cnp.ndarray> rows
                T = cnp.PyArray_SIZE(arr)
                if T >= NOGIL_MIN:
                    with nogil:
                        self._run_rows(<const intp_t*> cnp.PyArray_DATA(arr), T)
                else:
                    self._run_rows(<const intp_t*> cnp.PyArray_DATA(arr), T)
                return self._value()
            prepared = self._read(obs)
            if prepared is None:
                return self._value()
            T, log_emissions = prepared
            self._push_blocks(T, log_emissions)
            return self._value()
        finally:
            self._busy = False

    def reset(self):
        """Forget everything pushed: back to the state of a new stream (same parameters)."""
        enter(&self._busy, &self._in, self)
        self._clear()
        self._busy = False

    @property
    def n_seen(self):
        """int: the number of observations pushed since creation or the last ``reset()``."""
        return self._n_seen

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
        cdef Py_ssize_t j, n = self._in.n
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
        return (f"{type(self).__name__}(n_seen={self._n_seen}, logprob={self._value()!r}, "
                f"impossible={bool(self._impossible)})")
