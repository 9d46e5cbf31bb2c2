# Viterbi decoding (dense transitions) and the joint log-density of a given state path.
#
# Design note
# -----------
# Max-plus recursion in log space: delta_t(j) = max_i(delta_{t-1}(i) + logA_ij) + log b_t(j),
# psi_t(j) = the maximising i, computed by hmm_maxplus_step (csrc/hmm_steps.h:
# column-blocked in vector registers, SSE2/AVX2); a predecessor whose delta is -inf is
# skipped (cheap structural zeros). Ties break to the lowest state index everywhere: a
# strict ">" while i ascends keeps the first maximiser, and the final state is the first
# argmax. Among equally good paths this returns the one that is
# smallest read backwards from the last step.
#
# Backpointers take the smallest unsigned type that holds N (uint8 up to 256 states,
# uint16 up to 65,536, int32 beyond): T*N bytes for most models. Up to 12 states on an
# AVX2 CPU a specialised forward pass runs instead (csrc/hmm_viterbi_regs.h: the state
# vector in registers, 8 or 16 bytes of backpointers per step), with the same scores and
# path bit for bit; ``_force_simd(0)`` selects the general decoder for tests.
#
# Stored deltas. Above 12 states (dense chains), when the longest sequence's T * N doubles
# fit in ``stored_delta_bytes`` (8 MiB: T up to 16,384 at N = 64), the forward pass
# computes only the max of each column
# (hmm_maxonly_step: add and max per cell, half the vector operations of max-plus with
# its argmax, which is what bounds the step on these CPUs) and keeps every delta row;
# the backtrace then finds, for the one state on the path at each step, its first
# maximising predecessor with the same additions in the same order (a strict ">" while
# i ascends, -inf rows skipped). Same scores and path bit for bit as the backpointer
# decoder, which longer sequences keep (8 bytes per state and step against 1).
# A step at which every
# delta is -inf makes the sequence impossible; the kernel stops there and reports that
# step, and the Python layer raises ImpossibleSequenceError naming it.

from libc.math cimport INFINITY
from libc.stdint cimport uint8_t, uint16_t, int32_t

cimport numpy as cnp
from _passes cimport log_transition, maxplus_step
from _viterbi_table cimport (
    AUTO_CHECKPOINT_BYTES, HMM_VR_MAX_STATES, hmm_viterbi_regs_row, table_bytes_per_frame)
from _common cimport (
    Chain, Frames, SeqStatus, intp_t, status, stride, frame_row, hmm_force_avx2,
    argmax_first, longest_sequence, run_kernel, symbol_array,
    get_chain, fill_frames, offsets_data, intp_data, f64_data,
    STATUS_OK, STATUS_BAD_ROW, STATUS_IMPOSSIBLE, OUTPUT_STATES,
)

cdef extern from "hmm_viterbi_regs.h" nogil:
    Py_ssize_t hmm_viterbi_regs_avx2(int n, const double* log_start, const double* log_a_pad,
                                     const double* table, const intp_t* rows,
                                     Py_ssize_t n_rows, Py_ssize_t T, uint8_t* bp,
                                     double* delta_out, int* code)
    int HMM_HAVE_VITERBI_REGS

cdef extern from "hmm_steps.h" nogil:
    int hmm_use_avx2()
    void hmm_maxonly_step(const double* delta, const double* log_a, Py_ssize_t n,
                          Py_ssize_t n_pad, double* best)
    double hmm_maxplus_column(const double* delta, const double* log_a, Py_ssize_t n,
                              Py_ssize_t n_pad, Py_ssize_t j, Py_ssize_t* arg)

cnp.import_array()

cdef enum:
    VITERBI_VECTORS = 3  # scratch vectors before the backpointers: delta, next, argmax

# the stored-delta decoder's largest table per sequence (T * N doubles, per thread);
# ``_set_stored_delta_bytes`` changes it for tests (0: never that decoder)
cdef size_t stored_delta_bytes = 8 * 1024 * 1024

cdef inline bint add_emissions(double* out, const double* scores, const double* log_b,
                               Py_ssize_t n) noexcept nogil:
    """out[j] = scores[j] + log_b[j]; True when some entry is finite (the step is
    reachable). Branch-free: data-dependent ifs mispredict."""
    cdef Py_ssize_t j
    cdef bint reachable = False
    for j in range(n):
        out[j] = scores[j] + log_b[j]
        reachable |= out[j] > -INFINITY
    return reachable


ctypedef fused backptr_t:
    uint8_t
    uint16_t
    int32_t


cdef inline SeqStatus viterbi_sequence(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                       Py_ssize_t stop, double* work, backptr_t* backptr,
                                       double* logprob_out, intp_t* states_out) noexcept nogil:
    """Decode one sequence. work: 3 vectors (stride(N) apart); backptr: (T, N)."""
    cdef Py_ssize_t n = ch.n_states, t, j, r, best_state, sn = stride(ch.n_states)
    cdef double* delta = work
    cdef double* nxt = work + sn
    # the maximising predecessor, as a double (see hmm_steps.h)
    cdef double* arg = work + 2 * sn
    cdef double* swap
    cdef const double* log_b
    cdef backptr_t* psi
    cdef bint reachable  # some state at this step has a finite score
    logprob_out[0] = -INFINITY
    r = frame_row(fr, start)
    if r < 0:
        return status(STATUS_BAD_ROW, start)
    if not add_emissions(delta, ch.log_startprob, fr.log_table + r * n, n):
        return status(STATUS_IMPOSSIBLE, start)
    for t in range(start + 1, stop):
        r = frame_row(fr, t)
        if r < 0:
            return status(STATUS_BAD_ROW, t)
        log_b = fr.log_table + r * n
        maxplus_step(ch, delta, nxt, arg)
        psi = backptr + (t - start) * n
        reachable = False
        for j in range(n):
            psi[j] = <backptr_t> arg[j]
            nxt[j] += log_b[j]
            reachable |= nxt[j] > -INFINITY
        if not reachable:
            return status(STATUS_IMPOSSIBLE, t)
        swap = delta
        delta = nxt
        nxt = swap
    best_state = argmax_first(delta, n)
    logprob_out[0] = delta[best_state]
    states_out[stop - 1] = best_state
    for t in range(stop - 1, start, -1):
        best_state = backptr[(t - start) * n + best_state]
        states_out[t - 1] = best_state
    return status(STATUS_OK, 0)


cdef SeqStatus viterbi_u8(const Chain* ch, const Frames* fr, Py_ssize_t start, Py_ssize_t stop,
                          char* scratch, double* logprob_out, double* posteriors_out,
                          intp_t* states_out) noexcept nogil:
    cdef char* table = scratch + VITERBI_VECTORS * stride(ch.n_states) * sizeof(double)
    return viterbi_sequence(ch, fr, start, stop, <double*> scratch, <uint8_t*> table,
                            logprob_out, states_out)


cdef SeqStatus viterbi_u16(const Chain* ch, const Frames* fr, Py_ssize_t start, Py_ssize_t stop,
                           char* scratch, double* logprob_out, double* posteriors_out,
                           intp_t* states_out) noexcept nogil:
    cdef char* table = scratch + VITERBI_VECTORS * stride(ch.n_states) * sizeof(double)
    return viterbi_sequence(ch, fr, start, stop, <double*> scratch, <uint16_t*> table,
                            logprob_out, states_out)


cdef SeqStatus viterbi_i32(const Chain* ch, const Frames* fr, Py_ssize_t start, Py_ssize_t stop,
                           char* scratch, double* logprob_out, double* posteriors_out,
                           intp_t* states_out) noexcept nogil:
    cdef char* table = scratch + VITERBI_VECTORS * stride(ch.n_states) * sizeof(double)
    return viterbi_sequence(ch, fr, start, stop, <double*> scratch, <int32_t*> table,
                            logprob_out, states_out)


cdef SeqStatus viterbi_stored(const Chain* ch, const Frames* fr, Py_ssize_t start,
                              Py_ssize_t stop, char* scratch, double* logprob_out,
                              double* posteriors_out, intp_t* states_out) noexcept nogil:
    """Decode one sequence of a dense chain keeping every delta row (see the design note).
    scratch: one vector (the step's column maxima, n_pad entries), then (T, N) doubles."""
    cdef Py_ssize_t n = ch.n_states, t, r, best_state
    cdef double* best = <double*> scratch
    cdef double* table = <double*> (scratch + stride(n) * sizeof(double))
    cdef double* cur
    logprob_out[0] = -INFINITY
    r = frame_row(fr, start)
    if r < 0:
        return status(STATUS_BAD_ROW, start)
    if not add_emissions(table, ch.log_startprob, fr.log_table + r * n, n):
        return status(STATUS_IMPOSSIBLE, start)
    for t in range(start + 1, stop):
        r = frame_row(fr, t)
        if r < 0:
            return status(STATUS_BAD_ROW, t)
        cur = table + (t - start) * n
        hmm_maxonly_step(cur - n, ch.log_transmat_pad, n, ch.n_pad, best)
        if not add_emissions(cur, best, fr.log_table + r * n, n):
            return status(STATUS_IMPOSSIBLE, t)
    cur = table + (stop - 1 - start) * n
    best_state = argmax_first(cur, n)
    logprob_out[0] = cur[best_state]
    states_out[stop - 1] = best_state
    for t in range(stop - 1, start, -1):
        # the first maximising predecessor of best_state, as hmm_maxplus_step finds it
        hmm_maxplus_column(table + (t - 1 - start) * n, ch.log_transmat_pad, n, ch.n_pad,
                           best_state, &best_state)
        states_out[t - 1] = best_state
    return status(STATUS_OK, 0)


cdef Py_ssize_t longest_in_call(tuple emission, object rows, object offsets,
                                Py_ssize_t n) except -1:
    """Frames in the longest sequence of a call (the arguments as ``viterbi`` takes them)."""
    cdef Frames f
    cdef intp_t single[2]
    cdef Py_ssize_t n_seq
    cdef Py_ssize_t n_frames = fill_frames(&f, emission, rows, n, False)
    return longest_sequence(offsets_data(offsets, n_frames, single, &n_seq), n_seq)


cdef SeqStatus viterbi_small(const Chain* ch, const Frames* fr, Py_ssize_t start,
                             Py_ssize_t stop, char* scratch, double* logprob_out,
                             double* posteriors_out, intp_t* states_out) noexcept nogil:
    """Decode one sequence of a dense chain with N <= 12 on an AVX2 CPU
    (hmm_viterbi_regs.h). scratch: the last delta (4 ceil(N / 4) doubles), then
    (T, row) uint8 backpointers, row = hmm_viterbi_regs_row(N)."""
    cdef Py_ssize_t n = ch.n_states, t, best_state, done
    cdef double* delta = <double*> scratch
    cdef uint8_t* bp = <uint8_t*> (scratch + VITERBI_VECTORS * stride(n) * sizeof(double))
    cdef int code = STATUS_OK
    cdef const intp_t* rows = fr.rows + start if fr.rows != NULL else NULL
    cdef const double* table = fr.log_table if fr.rows != NULL else fr.log_table + start * n
    cdef Py_ssize_t n_rows = fr.n_rows if fr.rows != NULL else fr.n_rows - start
    logprob_out[0] = -INFINITY
    cdef Py_ssize_t row = hmm_viterbi_regs_row(n)
    done = hmm_viterbi_regs_avx2(<int> n, ch.log_startprob, ch.log_transmat_pad, table, rows,
                                 n_rows, stop - start, bp, delta, &code)
    if code != STATUS_OK:  # the header's codes are _common.pxd's
        return status(code, start + done)
    best_state = argmax_first(delta, n)
    logprob_out[0] = delta[best_state]
    states_out[stop - 1] = best_state
    for t in range(stop - 1, start, -1):
        best_state = bp[(t - start) * row + best_state]
        states_out[t - 1] = best_state
    return status(STATUS_OK, 0)


def viterbi(object chain, tuple emission, rows, offsets, logprob_out=None, int n_threads=1,
            bint raise_impossible=True):
    """Most likely state path of every sequence.

    Parameters are those of :func:`hmmfast._trellis.forward` (only the log table is read).
    With ``raise_impossible`` false an impossible sequence gets logprob -inf (in
    ``logprob_out``) and an unspecified path instead of an error.

    Returns
    -------
    logprob : float
        Sum over sequences of log P(X_s, path_s).
    states : ndarray of shape (T,), intp

    Raises
    ------
    hmmfast.ImpossibleSequenceError
        When a sequence has probability zero; names the first impossible step.
    """
    cdef const Chain* c = get_chain(chain)
    cdef Py_ssize_t n = c.n_states
    if (HMM_HAVE_VITERBI_REGS and n <= HMM_VR_MAX_STATES and not c.sparse
            and c.n_pad == 4 * ((n + 3) // 4) and hmm_use_avx2()):
        return run_kernel(viterbi_small, VITERBI_VECTORS * sizeof(double),
                          hmm_viterbi_regs_row(n), 0, False,
                          OUTPUT_STATES, raise_impossible, chain, emission, rows, offsets,
                          logprob_out, n_threads)
    if (not c.sparse and n > HMM_VR_MAX_STATES
            and longest_in_call(emission, rows, offsets, n) * n * sizeof(double)
            <= stored_delta_bytes):
        return run_kernel(viterbi_stored, sizeof(double), 0,
                          sizeof(double), False, OUTPUT_STATES, raise_impossible, chain,
                          emission, rows, offsets, logprob_out, n_threads)
    if n <= 256:
        return run_kernel(viterbi_u8, VITERBI_VECTORS * sizeof(double), 0, sizeof(uint8_t), False,
                          OUTPUT_STATES, raise_impossible, chain, emission, rows, offsets,
                          logprob_out, n_threads)
    if n <= 65536:
        return run_kernel(viterbi_u16, VITERBI_VECTORS * sizeof(double), 0, sizeof(uint16_t),
                          False, OUTPUT_STATES, raise_impossible, chain, emission, rows,
                          offsets, logprob_out, n_threads)
    return run_kernel(viterbi_i32, VITERBI_VECTORS * sizeof(double), 0, sizeof(int32_t), False,
                      OUTPUT_STATES, raise_impossible, chain, emission, rows, offsets,
                      logprob_out, n_threads)


cdef inline bint below_auto_checkpoint(object chain, object X) except -1:
    cdef Py_ssize_t n = get_chain(chain).n_states
    return (cnp.PyArray_SIZE(<cnp.ndarray> X) * table_bytes_per_frame(n)
            <= AUTO_CHECKPOINT_BYTES)


def model_decode(self, X, lengths=None, algorithm=None, *, beam=None, max_active=None,
                 min_active=None, memory="full"):
    """BaseHMM.decode (its docstring is set there). The common call, exact Viterbi of one
    kernel-ready symbol sequence of a table-driven model, goes straight to the kernel;
    every other call goes to ``self._decode``, which validates and dispatches."""
    c = self._cache
    if (c is not None and lengths is None and beam is None and max_active is None
            and min_active is None and c.symbols is not None and memory == "full"
            and (algorithm == "viterbi" or (algorithm is None
                                            and self.algorithm == "viterbi"))):
        if symbol_array(X) and below_auto_checkpoint(c.chain, X):
            return viterbi(c.chain, c.symbols, X, None, None, c.n_threads)
    return self._decode(X, lengths, algorithm, beam=beam, max_active=max_active,
                        min_active=min_active, memory=memory)


def path_log_prob(object chain, tuple emission, rows, offsets, states, logprob_out=None):
    """Joint log-density log P(X_s, states_s) of given state paths, summed over sequences.

    ``states`` : ndarray of shape (T,), intp, values in [0, N) (checked here).
    A path through a zero-probability start, transition or emission scores -inf.
    Table rows are range-checked as they are read (X may be the caller's array).
    """
    cdef const Chain* c = get_chain(chain)
    cdef Frames f
    cdef intp_t single[2]
    cdef Py_ssize_t n_seq, s, t, r, n, bad_frame = -1
    cdef double lp, total = 0.0
    n = c.n_states
    cdef Py_ssize_t n_frames = fill_frames(&f, emission, rows, n, False)
    cdef const intp_t* off = offsets_data(offsets, n_frames, single, &n_seq)
    cdef const intp_t* path = intp_data(states, "states")
    cdef double* per_seq = NULL
    if cnp.PyArray_SIZE(<cnp.ndarray> states) != n_frames:
        raise ValueError("internal: states must have one entry per frame")
    for t in range(n_frames):
        if <size_t> path[t] >= <size_t> n:
            raise ValueError(f"internal: states[{t}] = {path[t]} is not a state index")
    if logprob_out is not None:
        per_seq = <double*> f64_data(logprob_out, n_seq, "logprob_out")
    with nogil:
        for s in range(n_seq):
            lp = c.log_startprob[path[off[s]]]
            for t in range(off[s], off[s + 1]):
                r = frame_row(&f, t)
                if r < 0:
                    bad_frame = t
                    break
                if t > off[s]:
                    lp = lp + log_transition(c, path[t - 1], path[t])
                lp = lp + f.log_table[r * n + path[t]]
            if bad_frame >= 0:
                break
            if per_seq != NULL:
                per_seq[s] = lp
            total += lp
    if bad_frame >= 0:
        from hmmfast._errors import raise_kernel_status
        s = 0
        while off[s + 1] <= bad_frame:
            s += 1
        raise_kernel_status(STATUS_BAD_ROW, s, bad_frame, off[s], f.rows[bad_frame], f.n_rows)
    return total


def _force_simd(int flag):
    """Testing hook: choose this module's vector path (1: AVX2 if the CPU has it,
    0: SSE2, -1: probe the CPU again). Returns 1 when AVX2 is now in use."""
    return hmm_force_avx2(flag)


def _set_stored_delta_bytes(size_t nbytes):
    """Testing hook: the stored-delta decoder's largest table (bytes; 0 turns it off).
    Returns the previous value."""
    global stored_delta_bytes
    cdef size_t old = stored_delta_bytes
    stored_delta_bytes = nbytes
    return old
