# Checkpointed Viterbi: the dense decoder's exact path in O(sqrt(T) N) memory per sequence.
#
# Design note
# -----------
# The full decoder (csrc/_viterbi.pyx) stores a T x N backpointer table: 64 MB at
# T = 10^6, N = 64 (uint8), 640 MB at T = 10^7. Here a sequence of T frames is cut into
# segments of K frames; segment s owns the backpointers of frames
# start + sK + 1 .. start + (s + 1)K (the last one ends at the last frame).
#
# 1. Forward pass over the whole sequence, keeping delta only at the start of every
#    segment but the last (the checkpoints, N doubles each), and the backpointers of the
#    last segment (it is never redone). It detects an impossible prefix and a bad row at
#    the same step as the full decoder.
# 2. Segments are redone in reverse order: from checkpoint s, recompute delta over the
#    segment's K steps storing their K x N backpointers, then trace back from the state
#    at the segment's end (fixed by the segment after it) to the checkpoint's frame.
#
# Bit-identical to the full table. Every step is the full decoder's arithmetic:
# ``maxplus_step`` (the first maximising predecessor, ties to the lowest index, dense or
# sparse) then ``+ log b``, never renormalised, and a checkpoint is a copy of delta, so a
# redone segment produces exactly the deltas and backpointers of the first pass and of
# the full decoder; the final state is the first argmax; the path and the score are
# therefore the full decoder's, ties included.
#
# Segment length. With b bytes per backpointer (the smallest unsigned type holding N, as
# in _viterbi) the scratch is K N b (one segment's backpointers) + (ceil((T-1)/K) - 1) N 8
# (checkpoints) + 3 vectors, minimised at K = ceil(sqrt(8 (T-1) / b)): about
# 2 N sqrt(8 b T) bytes, O(sqrt(T) N). ``checkpoint_scratch_bytes`` reports it (e.g.
# T = 10^6, N = 64: 0.36 MB against the full decoder's 64 MB).
#
# Cost: 2T - K max-plus steps (the first pass, then every segment but the last redone):
# about twice the full decoder's time, in exchange for its T N b bytes.
#
# Driver: the shared ``run_kernel`` (sequences across threads, one scratch buffer per
# thread, statuses and errors exactly as _viterbi's), with the scratch size passed as
# ``bytes_per_state`` computed from the largest per-sequence requirement.
#
# Segment-fed API (dense log-emissions computed block by block)
# -------------------------------------------------------------
# For the continuous families the (T, N) float64 log-emission matrix is 8x the uint8
# backpointer table, so saving backpointers alone does not bound memory. Two calls let a
# Python driver (hmmfast/_checkpoint_blocks.py) feed one block of log-emission rows at a
# time, computing each block only when it is needed:
#
# * ``maxplus_forward(chain, log_em, delta, first)``: advance delta over the block's
#   frames, no backpointers (the first pass; the driver copies delta at checkpoints).
#   ``first``: the block starts the sequence, delta_0 = log pi + log b_0.
# * ``viterbi_segment(chain, log_em, delta, end_state, states_out)``: the same steps
#   keeping the block's (B, N) backpointers, then the trace back from ``end_state`` (the
#   state after the block, fixed by the segment after it) or, at the sequence end
#   (``end_state = -1``), from the first argmax, down to the frame before the block.
#
# Both run ``advance`` (the arithmetic above, hence the full decoder's) and return the
# block row of the first impossible frame, or -1; the driver raises with global indices.

from libc.math cimport INFINITY, sqrt, ceil
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.stdint cimport uint8_t, uint16_t, int32_t

cimport numpy as cnp
from _passes cimport maxplus_step
from _viterbi_table cimport backptr_bytes, table_bytes_per_frame
cimport _viterbi_table as table
from _common cimport (
    Chain, Frames, SeqStatus, intp_t, status, stride, frame_row, argmax_first, run_kernel,
    get_chain, intp_data, hmm_force_avx2, STATUS_OK, STATUS_BAD_ROW, STATUS_IMPOSSIBLE,
    OUTPUT_STATES,
)

cnp.import_array()

cdef enum:
    CHECKPOINT_VECTORS = 3  # scratch vectors before the checkpoints: delta, next, argmax

ctypedef fused backptr_t:
    uint8_t
    uint16_t
    int32_t


cdef inline Py_ssize_t segment_length(Py_ssize_t big_t, size_t bp_bytes) noexcept nogil:
    """K: frames of backpointers per segment (1 when T = 1)."""
    cdef Py_ssize_t k
    if big_t <= 1:
        return 1
    k = <Py_ssize_t> ceil(sqrt(8.0 * <double> (big_t - 1) / <double> bp_bytes))
    if k < 1:
        k = 1
    if k > big_t - 1:
        k = big_t - 1
    return k


cdef inline Py_ssize_t n_segments(Py_ssize_t big_t, Py_ssize_t k) noexcept nogil:
    if big_t <= 1:
        return 0
    return (big_t - 1 + k - 1) // k


cdef inline size_t scratch_bytes(Py_ssize_t n_states, Py_ssize_t big_t) noexcept nogil:
    """Scratch of one sequence of T frames: 3 vectors, the checkpoints, one segment."""
    cdef size_t b = backptr_bytes(n_states)
    cdef Py_ssize_t k = segment_length(big_t, b), n_seg = n_segments(big_t, k)
    cdef size_t n_ckpt = <size_t> (n_seg - 1) if n_seg > 1 else 0
    return (CHECKPOINT_VECTORS * stride(n_states) * sizeof(double)
            + n_ckpt * n_states * sizeof(double) + <size_t> k * n_states * b)


cdef inline SeqStatus advance(const Chain* ch, const Frames* fr, Py_ssize_t t_from,
                              Py_ssize_t t_to, double** delta_io, double** nxt_io, double* arg,
                              backptr_t* psi_rows) noexcept nogil:
    """Viterbi steps for frames t_from..t_to-1 from delta of frame t_from - 1.

    The full decoder's arithmetic exactly. psi_rows: (t_to - t_from, N) receiving the
    backpointers, or NULL (first pass: not kept). On return *delta_io is delta of frame
    t_to - 1.
    """
    cdef Py_ssize_t n = ch.n_states, t, j, r
    cdef double* delta = delta_io[0]
    cdef double* nxt = nxt_io[0]
    cdef double* swap
    cdef const double* log_b
    cdef backptr_t* psi
    cdef bint reachable
    cdef SeqStatus st = status(STATUS_OK, 0)
    for t in range(t_from, t_to):
        r = frame_row(fr, t)
        if r < 0:
            st = status(STATUS_BAD_ROW, t)
            break
        log_b = fr.log_table + r * n
        maxplus_step(ch, delta, nxt, arg)
        reachable = False
        if psi_rows != NULL:
            psi = psi_rows + (t - t_from) * n
            for j in range(n):
                psi[j] = <backptr_t> arg[j]
                nxt[j] += log_b[j]
                reachable |= nxt[j] > -INFINITY
        else:
            for j in range(n):
                nxt[j] += log_b[j]
                reachable |= nxt[j] > -INFINITY
        if not reachable:
            st = status(STATUS_IMPOSSIBLE, t)
            break
        swap = delta
        delta = nxt
        nxt = swap
    delta_io[0] = delta
    nxt_io[0] = nxt
    return st


cdef inline bint start_delta(const Chain* ch, const double* log_b,
                             double* delta) noexcept nogil:
    """delta_0 = log pi + log b_0; false when no state is reachable."""
    cdef Py_ssize_t j
    cdef bint reachable = False
    for j in range(ch.n_states):
        delta[j] = ch.log_startprob[j] + log_b[j]
        reachable |= delta[j] > -INFINITY
    return reachable


cdef inline SeqStatus checkpoint_sequence(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                          Py_ssize_t stop, char* scratch, backptr_t* kind,
                                          double* logprob_out,
                                          intp_t* states_out) noexcept nogil:
    """Decode one sequence (see the design note). ``kind`` only selects the type."""
    cdef Py_ssize_t n = ch.n_states, sn = stride(ch.n_states), r, t, s, t0, t1, best_state
    cdef Py_ssize_t big_t = stop - start
    cdef Py_ssize_t k = segment_length(big_t, sizeof(backptr_t))
    cdef Py_ssize_t n_seg = n_segments(big_t, k)
    cdef double* delta = <double*> scratch
    cdef double* nxt = delta + sn
    cdef double* arg = delta + 2 * sn
    cdef double* ckpt = delta + CHECKPOINT_VECTORS * sn          # (n_seg - 1, N)
    cdef backptr_t* psi = <backptr_t*> (ckpt + (n_seg - 1 if n_seg > 1 else 0) * n)  # (K, N)
    cdef SeqStatus st
    logprob_out[0] = -INFINITY
    r = frame_row(fr, start)
    if r < 0:
        return status(STATUS_BAD_ROW, start)
    if not start_delta(ch, fr.log_table + r * n, delta):
        return status(STATUS_IMPOSSIBLE, start)
    # 1. forward: checkpoints at the start of every segment but the last, whose
    #    backpointers are kept
    for s in range(n_seg):
        t0 = start + s * k
        t1 = min(t0 + k, stop - 1)
        if s < n_seg - 1:
            memcpy(ckpt + s * n, delta, n * sizeof(double))
            st = advance(ch, fr, t0 + 1, t1 + 1, &delta, &nxt, arg, <backptr_t*> NULL)
        else:
            st = advance(ch, fr, t0 + 1, t1 + 1, &delta, &nxt, arg, psi)
        if st.code != STATUS_OK:
            return st
    best_state = argmax_first(delta, n)
    logprob_out[0] = delta[best_state]
    states_out[stop - 1] = best_state
    # 2. backward over segments: trace the last one, redo and trace the others
    for s in range(n_seg - 1, -1, -1):
        t0 = start + s * k
        t1 = min(t0 + k, stop - 1)
        if s < n_seg - 1:
            memcpy(delta, ckpt + s * n, n * sizeof(double))
            st = advance(ch, fr, t0 + 1, t1 + 1, &delta, &nxt, arg, psi)
            if st.code != STATUS_OK:  # unreachable: the first pass read the same frames
                return st
        # states_out[t1] is known; psi row (t - t0 - 1) holds frame t's backpointers
        best_state = states_out[t1]
        for t in range(t1, t0, -1):
            best_state = psi[(t - t0 - 1) * n + best_state]
            states_out[t - 1] = best_state
    return status(STATUS_OK, 0)


cdef SeqStatus checkpoint_u8(const Chain* ch, const Frames* fr, Py_ssize_t start,
                             Py_ssize_t stop, char* scratch, double* logprob_out,
                             double* posteriors_out, intp_t* states_out) noexcept nogil:
    return checkpoint_sequence(ch, fr, start, stop, scratch, <uint8_t*> NULL, logprob_out,
                               states_out)


cdef SeqStatus checkpoint_u16(const Chain* ch, const Frames* fr, Py_ssize_t start,
                              Py_ssize_t stop, char* scratch, double* logprob_out,
                              double* posteriors_out, intp_t* states_out) noexcept nogil:
    return checkpoint_sequence(ch, fr, start, stop, scratch, <uint16_t*> NULL, logprob_out,
                               states_out)


cdef SeqStatus checkpoint_i32(const Chain* ch, const Frames* fr, Py_ssize_t start,
                              Py_ssize_t stop, char* scratch, double* logprob_out,
                              double* posteriors_out, intp_t* states_out) noexcept nogil:
    return checkpoint_sequence(ch, fr, start, stop, scratch, <int32_t*> NULL, logprob_out,
                               states_out)


def checkpoint_scratch_bytes(Py_ssize_t n_states, Py_ssize_t T):
    """Working memory, in bytes, of checkpointed Viterbi on one sequence of T frames.

    K N b (one segment's backpointers, b = 1, 2 or 4 bytes as N needs) + (ceil((T-1)/K)
    - 1) N 8 (checkpoints) + three O(N) vectors, with K = ceil(sqrt(8 (T-1) / b)):
    O(sqrt(T) N). The full decoder needs T N b bytes of backpointers.
    """
    if n_states < 1 or T < 1:
        raise ValueError("internal: n_states and T must be >= 1")
    return scratch_bytes(n_states, T)


#: Above this many bytes of backpointers (the full decoder's T_max x N table, per thread)
#: the public decoders switch to this module by themselves: same path, O(sqrt(T) N)
#: memory, about twice the time. 256 MiB: T = 4.2 million frames at N = 64. Defined in
#: csrc/_viterbi_table.pxd, which the decode fast entry reads too.
AUTO_CHECKPOINT_BYTES = table.AUTO_CHECKPOINT_BYTES


def full_table_bytes(Py_ssize_t n_states, Py_ssize_t T):
    """Bytes of the full decoder's backpointer table for T frames: T N b, b = 1, 2 or 4
    (the smallest unsigned type that holds N), as _viterbi allocates it per thread (up to
    N = 12, the register-resident decoder's rows: 8 bytes per frame up to 8 states, 16
    above)."""
    if n_states < 1 or T < 0:
        raise ValueError("internal: n_states >= 1 and T >= 0")
    return T * table_bytes_per_frame(n_states)


def checkpoint_segment_length(Py_ssize_t n_states, Py_ssize_t T):
    """K, the frames per segment for a sequence of T frames over N states (for tests)."""
    if n_states < 1 or T < 1:
        raise ValueError("internal: n_states and T must be >= 1")
    return segment_length(T, backptr_bytes(n_states))


def viterbi_checkpoint(object chain, tuple emission, rows, offsets, logprob_out=None,
                       int n_threads=1, bint raise_impossible=True):
    """Most likely state path of every sequence in O(sqrt(T) N) memory per sequence.

    Same arguments, results and errors as :func:`hmmfast._viterbi.viterbi`, and the same
    path bit for bit (ties included); it trades the T x N backpointer table for about
    twice the time (see the module's design note). Sequences run across ``n_threads``
    threads as in _viterbi, each thread holding one scratch buffer of
    ``checkpoint_scratch_bytes(N, T_max)`` bytes.

    Parameters
    ----------
    chain : PyCapsule
        From :func:`hmmfast._chain.compile_chain` (dense or sparse).
    emission : tuple
        ``(log_table, scaled_table, row_log_scale)``; only ``log_table`` is read.
    rows : ndarray of shape (T,), intp, or None
        Table row of every frame (range-checked as read), or None for a dense (T, N)
        ``log_table``.
    offsets : ndarray of shape (n_seq + 1,), intp, or None
        Sequence boundaries (None: one sequence).
    logprob_out : ndarray of shape (n_seq,), float64, optional
        Receives each sequence's log P(X_s, path_s).
    n_threads : int
    raise_impossible : bool
        As in _viterbi: false gives an impossible sequence logprob -inf and an
        unspecified path instead of an error.

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
    cdef Py_ssize_t n = get_chain(chain).n_states
    cdef Py_ssize_t n_frames, s, n_off, length
    cdef const intp_t* off
    cdef size_t need = 0, b
    if offsets is None:
        n_frames = (<cnp.ndarray?> rows).shape[0] if rows is not None else \
            (<cnp.ndarray?> emission[0]).shape[0]
        need = scratch_bytes(n, max(n_frames, 1))
    else:
        # the largest need over sequences (scratch_bytes is not monotone in T); invalid
        # offsets are rejected by run_kernel before any scratch is allocated
        off = intp_data(offsets, "offsets")
        n_off = cnp.PyArray_SIZE(<cnp.ndarray> offsets)
        for s in range(n_off - 1):
            length = off[s + 1] - off[s]
            if length >= 1:
                b = scratch_bytes(n, length)
                if b > need:
                    need = b
    cdef size_t per_state = (need + stride(n) - 1) // stride(n)
    if n <= 256:
        return run_kernel(checkpoint_u8, per_state, 0, 0, False, OUTPUT_STATES,
                          raise_impossible, chain, emission, rows, offsets, logprob_out,
                          n_threads)
    if n <= 65536:
        return run_kernel(checkpoint_u16, per_state, 0, 0, False, OUTPUT_STATES,
                          raise_impossible, chain, emission, rows, offsets, logprob_out,
                          n_threads)
    return run_kernel(checkpoint_i32, per_state, 0, 0, False, OUTPUT_STATES,
                      raise_impossible, chain, emission, rows, offsets, logprob_out,
                      n_threads)


# ---------------------------------------------------------------- segment-fed API

cdef Py_ssize_t run_block(const Chain* ch, const double* log_em, Py_ssize_t n_rows,
                          double* delta_io, bint first, double* work, backptr_t* psi,
                          Py_ssize_t end_state, intp_t* states_out) noexcept nogil:
    """Viterbi steps over a block of log-emission rows (see the segment-fed API).

    delta_io: (N,) IN delta of the frame before the block (ignored when ``first``), OUT
    delta of its last frame. work: 3 vectors stride(N) apart. psi: (n_rows, N)
    backpointers, or NULL for no trace back; with psi, states_out (n_rows + 1,) receives
    the states from the frame before the block to its last. Returns -1, or the block row
    of the first impossible frame.
    """
    cdef Py_ssize_t n = ch.n_states, sn = stride(ch.n_states), t, state, t_from = 0
    cdef double* delta = work
    cdef double* nxt = work + sn
    cdef Frames fr
    cdef SeqStatus st
    fr.extra = NULL
    fr.log_table = log_em
    fr.scaled_table = NULL
    fr.row_log_scale = NULL
    fr.rows = NULL
    fr.n_rows = n_rows
    if first:
        if not start_delta(ch, log_em, delta):
            return 0
        t_from = 1
    else:
        memcpy(delta, delta_io, n * sizeof(double))
    st = advance(ch, &fr, t_from, n_rows, &delta, &nxt, work + 2 * sn, psi)
    memcpy(delta_io, delta, n * sizeof(double))
    if st.code != STATUS_OK:
        return st.frame
    if psi != NULL:
        state = end_state if end_state >= 0 else argmax_first(delta, n)
        states_out[n_rows] = state
        for t in range(n_rows - 1, -1, -1):
            state = psi[t * n + state]
            states_out[t] = state
    return -1


cdef inline Py_ssize_t check_block(const Chain* ch, const double[:, ::1] log_em,
                                   double[::1] delta) except -1:
    if log_em.shape[1] != ch.n_states or delta.shape[0] != ch.n_states:
        raise ValueError(f"internal: log_em must be (B, {ch.n_states}) and delta "
                         f"({ch.n_states},), got {tuple(log_em.shape)[:2]} and "
                         f"({delta.shape[0]},)")
    return log_em.shape[0]


def maxplus_forward(object chain, const double[:, ::1] log_em, double[::1] delta,
                    bint first=False):
    """Advance Viterbi's delta over a block of frames, keeping no backpointers.

    The full decoder's steps (ties, -inf and all): delta_t = max-plus(delta_{t-1}, log A)
    + log b_t.

    Parameters
    ----------
    chain : PyCapsule
        From :func:`hmmfast._chain.compile_chain` (dense or sparse).
    log_em : ndarray of shape (B, N), float64, C-contiguous
        Log-emissions of the block's frames (B >= 1 when ``first``).
    delta : ndarray of shape (N,), float64
        IN: delta of the frame before the block (ignored when ``first``); OUT: delta of
        the block's last frame.
    first : bool
        The block starts a sequence: delta_0 = log pi + log b_0, then the other rows.

    Returns
    -------
    int
        -1, or the block row of the first frame no state path reaches (delta is then
        unspecified).
    """
    cdef const Chain* ch = get_chain(chain)
    cdef Py_ssize_t b = check_block(ch, log_em, delta), bad
    if b == 0:
        if first:
            raise ValueError("internal: a first block needs a frame")
        return -1
    cdef double* work = <double*> malloc(CHECKPOINT_VECTORS * stride(ch.n_states)
                                         * sizeof(double))
    if work == NULL:
        raise MemoryError()
    with nogil:
        bad = run_block(ch, &log_em[0, 0], b, &delta[0], first, work, <uint8_t*> NULL, -1,
                        NULL)
    free(work)
    return bad


def viterbi_segment(object chain, const double[:, ::1] log_em, double[::1] delta,
                    Py_ssize_t end_state, intp_t[::1] states_out):
    """Redo a segment's Viterbi steps from its checkpoint and trace its states back.

    Parameters
    ----------
    chain : PyCapsule
    log_em : ndarray of shape (B, N), float64, C-contiguous
        Log-emissions of the segment's frames t0 + 1 .. t0 + B (B >= 0).
    delta : ndarray of shape (N,), float64
        IN: delta of frame t0 (the checkpoint); OUT: delta of frame t0 + B.
    end_state : int
        The state at frame t0 + B (fixed by the segment after it), or -1 at the end of a
        sequence: the first argmax of delta there (ties to the lowest index).
    states_out : ndarray of shape (B + 1,), intp
        OUT: the states of frames t0 .. t0 + B.

    Returns
    -------
    int
        -1, or the block row of the first frame no state path reaches.
    """
    cdef const Chain* ch = get_chain(chain)
    cdef Py_ssize_t n = ch.n_states, b = check_block(ch, log_em, delta), bad
    if states_out.shape[0] != b + 1:
        raise ValueError(f"internal: states_out must have {b + 1} entries")
    if end_state < -1 or end_state >= n:
        raise ValueError(f"internal: end_state must be -1 or a state, got {end_state}")
    cdef size_t bp = backptr_bytes(n)
    cdef double* work = <double*> malloc(CHECKPOINT_VECTORS * stride(n) * sizeof(double)
                                         + b * n * bp + 1)
    if work == NULL:
        raise MemoryError()
    cdef char* psi = <char*> (work + CHECKPOINT_VECTORS * stride(n))
    cdef const double* rows = &log_em[0, 0] if b > 0 else NULL
    with nogil:
        if bp == 1:
            bad = run_block(ch, rows, b, &delta[0], False, work, <uint8_t*> psi, end_state,
                            &states_out[0])
        elif bp == 2:
            bad = run_block(ch, rows, b, &delta[0], False, work, <uint16_t*> psi,
                            end_state, &states_out[0])
        else:
            bad = run_block(ch, rows, b, &delta[0], False, work, <int32_t*> psi, end_state,
                            &states_out[0])
    free(work)
    return bad


def _force_simd(int flag):
    """Testing hook: choose this module's vector path (1: AVX2 if the CPU has it,
    0: SSE2, -1: probe the CPU again). Returns 1 when AVX2 is now in use."""
    return hmm_force_avx2(flag)
