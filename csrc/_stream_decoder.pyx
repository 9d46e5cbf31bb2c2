# Exact online Viterbi behind hmmfast.StreamDecoder: the states of a stream's best path,
# emitted as soon as they are final, one observation (or one chunk) at a time.
#
# Design note
# -----------
# Inputs: the chain, the log-emission table or Python-computed blocks of log-emissions,
# the ``read`` callable (csrc/_stream_common.pxd; the model side is
# hmmfast/_stream_intake.py). Pushing one symbol to a table stream never touches NumPy;
# chunks of symbols at least NOGIL_MIN long, and every block of log-emissions, run with
# the GIL released.
#
# The step is exactly the arithmetic of csrc/_viterbi.pyx: delta_0 = log pi + log b_0,
# delta_t(j) = max_i(delta_{t-1}(i) + logA_ij) + log b_t(j) by ``maxplus_step`` of
# _passes.pxd (hmm_maxplus_step on the padded log transition matrix, or its O(nnz) form
# for a sparse chain; ties to the lowest predecessor), never renormalised, the final state
# the first argmax. So its backpointers are bit for bit those of the offline decoder, and
# so is the path, ties included.
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
# Backpointers of the window live in a ring buffer indexed by time modulo its capacity,
# in the smallest unsigned type that holds N, and a push's per-step records in scratch
# buffers; both follow the window (csrc/_stream_buffers.pxd).
#
# Fixed lag (``max_lag=L``): after the convergence trace, while the window holds more
# than L steps, its oldest step is emitted by tracing back from the current best state
# (first argmax of delta). Every state then comes out at most L steps after its
# observation, at the price that a later observation may prefer a different state there.
#
# Beam pruning (``pruning``): after each step the new scores go through ``prune`` of
# _prune.pxd, the beam decoder's own rule, and pruned states become -inf. A dense
# max-plus step from such a delta picks, for every state, the best active predecessor
# with ties to the lowest, which is what the beam decoder's sparse expansion picks; so the
# output equals the offline beam decoder's. Fewer finite states also make the paths
# coalesce sooner (a shorter window).
#
# Failed pushes. A chunk is applied in two passes: the forward pass appends backpointers
# after the window (never overwriting it), records which states are finite at each step
# (and the best state, for max_lag), and on an impossible step (or a block of
# log-emissions that raises) restores delta and drops what it appended; only a complete
# forward pass is followed by the resolution pass (trace + fixed lag per step, the same
# procedure as pushing one observation at a time), which cannot fail. So a push either
# applies entirely or leaves the decoder as it was.

from libc.stdlib cimport free
from libc.string cimport memcpy, memset
from libc.math cimport INFINITY
from libc.stdint cimport uint8_t, int32_t, uint64_t

from hmmfast._errors import ImpossibleSequenceError, PruningError

cimport numpy as cnp
from _common cimport Chain, intp_t, stride, argmax_first
from _passes cimport maxplus_step
from _prune cimport BeamParams, prune
from _stream_common cimport (
    BLOCK, NOGIL_MIN, Inputs, block_data, checked_malloc, enter, open_inputs, symbol_row,
    symbol_rows,
)
from _stream_buffers cimport (
    SMALL_OUT, Ring, Scratch, bp_get, bp_put, out_reserve, ring_close, ring_open,
    ring_reserve, ring_resize, ring_row, ring_shrink, scratch_close, scratch_open, scratch_reserve,
    scratch_trim,
)
from _viterbi_table cimport backptr_bytes

cnp.import_array()

cdef object _empty_intp():
    cdef cnp.npy_intp dims[1]
    dims[0] = 0
    return cnp.PyArray_EMPTY(1, dims, cnp.NPY_INTP, 0)


cdef class StreamDecoderKernel:
    """The compiled online Viterbi decoder of :class:`hmmfast.StreamDecoder` (which
    constructs it).

    Parameters
    ----------
    chain, table, read
        As for :class:`hmmfast._stream_scorer.StreamScorerKernel`.
    max_lag : int
        -1: exact decoding; L >= 0: fixed-lag decoding.
    pruning : (beam, max_active, min_active) or None
        Validated beam-pruning settings (``hmmfast._validation.pruning``), None: exact.
    """

    cdef Inputs _in
    cdef object _chain      # references that keep ``_in``'s pointers valid
    cdef object _table
    cdef object _read
    cdef Py_ssize_t _n_seen
    cdef bint _busy
    cdef double* _vec
    cdef double* _delta
    cdef double* _next
    cdef double* _arg
    cdef double* _saved
    cdef intp_t* _set_a
    cdef intp_t* _set_b
    cdef uint64_t* _mark
    cdef uint64_t _stamp
    cdef Ring _ring          # backpointers of the window times _w0 .. _n_seen - 1
    cdef int _width
    cdef Py_ssize_t _w0
    cdef Py_ssize_t _max_lag  # -1: exact
    cdef Scratch _sc         # a push's finite-state masks, best states and output
    # beam pruning (``_prune_on`` False: exact); ``_pruned``: some state was pruned
    cdef BeamParams _params
    cdef bint _prune_on
    cdef bint _pruned

    def __cinit__(self, *args, **kwargs):
        self._in.ch = NULL
        self._busy = False
        self._vec = NULL
        self._set_a = NULL
        self._set_b = NULL
        self._mark = NULL
        self._ring.slots = NULL
        self._ring.sizes = NULL
        self._sc.fin = NULL
        self._sc.best = NULL
        self._sc.out = NULL

    def __init__(self, chain, table, read, Py_ssize_t max_lag=-1, pruning=None):
        open_inputs(&self._in, chain, table, self)
        self._chain, self._table, self._read = chain, table, read
        self._max_lag = max_lag if max_lag >= 0 else -1
        self._prune_on = pruning is not None
        self._pruned = False
        if pruning is not None:
            self._params.beam, self._params.max_active, self._params.min_active = pruning
        cdef Py_ssize_t n = self._in.n, sn = stride(self._in.n)
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
        ring_open(&self._ring, n, self._width)
        scratch_open(&self._sc, n)
        self._n_seen = 0
        self._w0 = 0

    def __dealloc__(self):
        free(self._vec)
        free(self._set_a)
        free(self._set_b)
        free(self._mark)
        ring_close(&self._ring)
        scratch_close(&self._sc)

    # ------------------------------------------------------------ forward pass

    cdef bint _forward(self, const double* log_b, Py_ssize_t t, uint8_t* fin,
                       intp_t* best) noexcept nogil:
        """One max-plus step to time t (the arithmetic of csrc/_viterbi.pyx), writing the
        backpointers of t into its ring slot, which states are finite into ``fin`` and,
        with max_lag, the best state. False (delta untouched) when no state is finite."""
        cdef Py_ssize_t n = self._in.n, j
        cdef bint reachable = False
        cdef double* swap
        cdef const Chain* ch = self._in.ch
        if t == 0:
            for j in range(n):
                self._next[j] = ch.log_startprob[j] + log_b[j]
                fin[j] = self._next[j] > -INFINITY
                reachable |= fin[j]
        else:
            maxplus_step(ch, self._delta, self._next, self._arg)
            bp_put(ring_row(&self._ring, t), self._width, self._arg, n)
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
        cdef Py_ssize_t n = self._in.n, j, k
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

    cdef void _emit_back(self, Py_ssize_t tau, Py_ssize_t s) noexcept nogil:
        """Emit the window's times w0..tau, following backpointers from state s at tau."""
        cdef Py_ssize_t count = tau - self._w0 + 1, u
        cdef intp_t* out = self._sc.out + self._sc.out_len
        out[count - 1] = s
        for u in range(tau, self._w0, -1):
            s = bp_get(ring_row(&self._ring, u), self._width, s)
            out[u - 1 - self._w0] = s
        self._sc.out_len += count
        self._w0 = tau + 1

    cdef void _trace(self, Py_ssize_t t, const uint8_t* fin) noexcept nogil:
        """The convergence trace after the step to time t (see the design note)."""
        cdef Py_ssize_t n = self._in.n, j, k = 0, k2, tau, i
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
        self._ring.sizes[t & self._ring.mask] = <int32_t> k
        tau = t - 1
        while tau >= self._w0:
            row = ring_row(&self._ring, tau + 1)
            self._stamp += 1
            stamp = self._stamp
            k2 = 0
            for j in range(k):
                i = bp_get(row, width, cur[j])
                if self._mark[i] != stamp:
                    self._mark[i] = stamp
                    nxt[k2] = i
                    k2 += 1
            if k2 == self._ring.sizes[tau & self._ring.mask]:
                return  # unchanged here, so unchanged before
            self._ring.sizes[tau & self._ring.mask] = <int32_t> k2
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
                s = bp_get(ring_row(&self._ring, u), self._width, s)
            self._sc.out[self._sc.out_len] = s
            self._sc.out_len += 1
            self._w0 += 1

    cdef void _resolve_chunk(self, Py_ssize_t t0, Py_ssize_t T) noexcept nogil:
        cdef Py_ssize_t k
        for k in range(T):
            self._resolve(t0 + k, self._sc.fin + k * self._in.n,
                          self._sc.best[k] if self._max_lag >= 0 else 0)

    cdef Py_ssize_t _forward_rows(self, const intp_t* rows, Py_ssize_t t0, Py_ssize_t k0,
                                  Py_ssize_t T) noexcept nogil:
        """Forward over table rows for chunk steps k0..k0+T-1 (time t0 + k); returns the
        first impossible chunk step or -1."""
        cdef Py_ssize_t k
        cdef bint lag = self._max_lag >= 0
        for k in range(k0, k0 + T):
            if not self._forward(self._in.table + rows[k - k0] * self._in.n, t0 + k,
                                 self._sc.fin + k * self._in.n,
                                 self._sc.best + k if lag else NULL):
                return k
        return -1

    cdef Py_ssize_t _forward_dense(self, const double* log_em, Py_ssize_t t0, Py_ssize_t k0,
                                   Py_ssize_t T) noexcept nogil:
        cdef Py_ssize_t k
        cdef bint lag = self._max_lag >= 0
        for k in range(k0, k0 + T):
            if not self._forward(log_em + (k - k0) * self._in.n, t0 + k,
                                 self._sc.fin + k * self._in.n,
                                 self._sc.best + k if lag else NULL):
                return k
        return -1

    cdef object _take_output(self):
        cdef cnp.npy_intp dims[1]
        dims[0] = self._sc.out_len
        result = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INTP, 0)
        if self._sc.out_len:
            memcpy(cnp.PyArray_DATA(<cnp.ndarray> result), self._sc.out,
                   self._sc.out_len * sizeof(intp_t))
        self._sc.out_len = 0
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
            One observation or a chunk (as for :meth:`hmmfast.StreamScorer.push`).

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
        cdef const double* log_em
        enter(&self._busy, &self._in, self)
        try:
            t0 = self._n_seen
            row = symbol_row(&self._in, obs)
            if row >= 0:
                if self._n_seen - self._w0 + 1 > self._ring.cap:
                    ring_reserve(&self._ring, self._n_seen - self._w0 + 1, self._w0, self._n_seen)
                if self._n_seen - self._w0 + 1 > self._sc.out_cap:
                    out_reserve(&self._sc, self._n_seen - self._w0 + 1)
                if not self._forward(self._in.table + row * self._in.n, t0, self._sc.fin,
                                     self._sc.best if self._max_lag >= 0 else NULL):
                    raise self._impossible_error(t0, 0)
                self._n_seen += 1
                self._resolve(t0, self._sc.fin, self._sc.best[0] if self._max_lag >= 0 else 0)
                if self._ring.cap > self._ring.min_cap:
                    ring_shrink(&self._ring, self._w0, self._n_seen)
                result = self._take_output()
                if self._sc.out_cap > SMALL_OUT:
                    scratch_trim(&self._sc, self._in.n)
                return result
            if self._in.table != NULL:
                rows = symbol_rows(&self._in, obs, self._read)
                if rows is None:
                    return _empty_intp()
                arr = <cnp.ndarray> rows
                T = cnp.PyArray_SIZE(arr)
            else:
                prepared = self._read(obs)
                if prepared is None:
                    return _empty_intp()
                T, log_emissions = prepared
            ring_reserve(&self._ring, self._n_seen - self._w0 + T, self._w0, self._n_seen)
            scratch_reserve(&self._sc, T, self._in.n, self._max_lag >= 0, self._n_seen - self._w0)
            memcpy(self._saved, self._delta, self._in.n * sizeof(double))
            was_pruned = self._pruned
            try:
                if self._in.table != NULL:
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
                        block = log_emissions(a, b)
                        log_em = block_data(block, b - a, self._in.n)
                        with nogil:
                            bad = self._forward_dense(log_em, t0, a, b - a)
                        if bad >= 0:
                            break
            except BaseException:
                memcpy(self._delta, self._saved, self._in.n * sizeof(double))
                self._pruned = was_pruned
                raise
            if bad >= 0:
                memcpy(self._delta, self._saved, self._in.n * sizeof(double))
                error = self._impossible_error(t0 + bad, bad)
                self._pruned = was_pruned
                raise error
            self._n_seen = t0 + T
            if T >= NOGIL_MIN:
                with nogil:
                    self._resolve_chunk(t0, T)
            else:
                self._resolve_chunk(t0, T)
            ring_shrink(&self._ring, self._w0, self._n_seen)
            result = self._take_output()
            scratch_trim(&self._sc, self._in.n)
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
        enter(&self._busy, &self._in, self)
        try:
            if self._n_seen > self._w0:
                out_reserve(&self._sc, self._n_seen - self._w0)
                self._emit_back(self._n_seen - 1, argmax_first(self._delta, self._in.n))
            result = self._take_output()
            self._clear()
            return result
        finally:
            self._busy = False

    cdef int _clear(self) except -1:
        self._n_seen = 0
        self._w0 = 0
        self._pruned = False
        self._sc.out_len = 0
        if self._ring.cap > self._ring.min_cap:
            try:
                ring_resize(&self._ring, self._ring.min_cap, self._w0, self._n_seen)
            except MemoryError:
                pass  # keep the larger ring
        scratch_trim(&self._sc, self._in.n)
        return 0

    def reset(self):
        """Discard everything pushed and not yet returned: start a new stream."""
        enter(&self._busy, &self._in, self)
        try:
            self._clear()
        finally:
            self._busy = False

    @property
    def n_seen(self):
        """int: the number of observations pushed since creation, the last ``reset()``
        or the last ``flush()``."""
        return self._n_seen

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
        return (f"{type(self).__name__}(max_lag={self.max_lag}, n_seen={self._n_seen}, "
                f"window={self._n_seen - self._w0})")
