# Beam-pruned Viterbi: only active states are expanded, as in large-vocabulary speech
# decoders (Kaldi's lattice-faster-decoder conventions).
#
# Design note
# -----------
# At each step the active states (sorted by index) are expanded along their non-zero
# transitions (the chain's CSR rows, for dense and sparse chains alike); a state reached
# for the first time at this step is recorded once (a per-state stamp, no O(N) clearing),
# its best predecessor kept with a strict ">" while the active states are visited in
# ascending order, so ties go to the lowest index exactly as in the dense decoder. Only
# reached states get an emission (a table or matrix lookup). Pruning then keeps:
#   beam        states scoring within ``beam`` (natural log) of the step's best;
#   max_active  at most that many, the best (ties to the lower index);
#   min_active  at least that many: the best of the remaining reached states are added.
# With beam=inf and no max_active every reached state with a finite score stays active,
# which is exactly the dense Viterbi recursion: the same scores, the same path.
#
# Backpointers are stored for the active states only (their indices and predecessors,
# step by step, in a buffer grown by doubling), so memory is the sum of the active set
# sizes, not T x N. The returned score is the joint log-density of the returned path
# (its arithmetic is the dense decoder's); a narrow beam can return a worse path than
# exact Viterbi, never a wrong score for the path it returns. When no state survives at
# some step, the sequence is impossible if nothing had been pruned so far; otherwise the
# pruning removed every path (STATUS_PRUNED: widen the beam or raise min_active).

from libc.stdlib cimport realloc, free
from libc.math cimport INFINITY

cimport numpy as cnp
from _common cimport (
    Chain, Frames, SeqStatus, intp_t, status, frame_row, run_kernel,
    STATUS_OK, STATUS_BAD_ROW, STATUS_IMPOSSIBLE, STATUS_NO_MEMORY, STATUS_PRUNED,
    OUTPUT_STATES,
)

from _prune cimport BeamParams, prune

cnp.import_array()


cdef struct Store:
    intp_t* states        # active states of every step, concatenated
    intp_t* backptr       # their best predecessors
    Py_ssize_t used
    Py_ssize_t size


cdef inline bint store_reserve(Store* st, Py_ssize_t more) noexcept nogil:
    cdef Py_ssize_t want = st.used + more, size = st.size if st.size > 0 else 1024
    cdef intp_t* a
    cdef intp_t* b
    if want <= st.size:
        return True
    while size < want:
        size *= 2
    a = <intp_t*> realloc(st.states, size * sizeof(intp_t))
    if a == NULL:
        return False
    st.states = a
    b = <intp_t*> realloc(st.backptr, size * sizeof(intp_t))
    if b == NULL:
        return False
    st.backptr = b
    st.size = size
    return True


cdef SeqStatus beam_sequence(const Chain* ch, const Frames* fr, Py_ssize_t start,
                             Py_ssize_t stop, char* scratch, double* logprob_out,
                             double* unused, intp_t* states_out) noexcept nogil:
    """Decode one sequence. scratch: per-state arrays (see beam_scratch)."""
    cdef Py_ssize_t n = ch.n_states, t, i, j, k, a, r, n_active = 0, n_reached, kept
    cdef Py_ssize_t lo, hi, mid, best_k
    cdef double* score = <double*> scratch            # (N,) this step's scores
    cdef double* active_score = score + n             # (N,) previous step's, by position
    cdef intp_t* stamp = <intp_t*> (active_score + n)  # (N,) step that last reached j
    cdef intp_t* from_state = stamp + n               # (N,) best predecessor
    cdef intp_t* reached = from_state + n             # (N,)
    cdef intp_t* active = reached + n                 # (N,) sorted
    cdef intp_t* step_start = active + n              # (T + 1,) offsets into the store
    cdef const double* log_b
    cdef double v, best
    cdef bint pruned = False
    cdef Store st
    cdef BeamParams p = (<const BeamParams*> fr.extra)[0]
    st.states = NULL
    st.backptr = NULL
    st.used = 0
    st.size = 0
    logprob_out[0] = -INFINITY
    for j in range(n):
        stamp[j] = -1
    r = frame_row(fr, start)
    if r < 0:
        return status(STATUS_BAD_ROW, start)
    log_b = fr.log_table + r * n
    n_reached = 0
    for j in range(n):
        if ch.log_startprob[j] > -INFINITY:
            score[j] = ch.log_startprob[j] + log_b[j]
            from_state[j] = 0
            reached[n_reached] = j
            n_reached += 1
    kept = prune(&p, reached, n_reached, score, &pruned)
    if kept == 0:
        return status(STATUS_IMPOSSIBLE, start)
    if not store_reserve(&st, kept):
        return status(STATUS_NO_MEMORY, start)
    step_start[0] = 0
    for a in range(kept):
        active[a] = reached[a]
        active_score[a] = score[reached[a]]
        st.states[a] = reached[a]
        st.backptr[a] = 0
    st.used = kept
    step_start[1] = kept
    n_active = kept
    for t in range(start + 1, stop):
        r = frame_row(fr, t)
        if r < 0:
            free(st.states)
            free(st.backptr)
            return status(STATUS_BAD_ROW, t)
        log_b = fr.log_table + r * n
        n_reached = 0
        for a in range(n_active):  # ascending states: strict ">" keeps the lowest
            i = active[a]
            for k in range(ch.row_start[i], ch.row_start[i + 1]):
                j = ch.row_to[k]
                v = active_score[a] + ch.row_log[k]
                if stamp[j] != t:
                    stamp[j] = t
                    score[j] = v
                    from_state[j] = i
                    reached[n_reached] = j
                    n_reached += 1
                elif v > score[j]:
                    score[j] = v
                    from_state[j] = i
        for a in range(n_reached):
            j = reached[a]
            score[j] = score[j] + log_b[j]
        kept = prune(&p, reached, n_reached, score, &pruned)
        if kept == 0:
            free(st.states)
            free(st.backptr)
            return status(STATUS_PRUNED if pruned else STATUS_IMPOSSIBLE, t)
        if not store_reserve(&st, kept):
            free(st.states)
            free(st.backptr)
            return status(STATUS_NO_MEMORY, t)
        for a in range(kept):
            j = reached[a]
            active[a] = j
            active_score[a] = score[j]
            st.states[st.used + a] = j
            st.backptr[st.used + a] = from_state[j]
        st.used += kept
        step_start[t - start + 1] = st.used
        n_active = kept
    best_k = 0
    best = active_score[0]
    for a in range(1, n_active):  # the first maximum: the lowest state index
        if active_score[a] > best:
            best = active_score[a]
            best_k = a
    logprob_out[0] = best
    j = active[best_k]
    for t in range(stop - 1, start - 1, -1):
        states_out[t] = j
        if t == start:
            break
        lo = step_start[t - start]
        hi = step_start[t - start + 1]
        while lo < hi:  # this step's states are sorted: find j
            mid = (lo + hi) // 2
            if st.states[mid] < j:
                lo = mid + 1
            else:
                hi = mid
        j = st.backptr[lo]
    free(st.states)
    free(st.backptr)
    return status(STATUS_OK, 0)


def beam_viterbi(object chain, tuple emission, rows, offsets, double beam,
                 Py_ssize_t max_active=0, Py_ssize_t min_active=0, logprob_out=None,
                 int n_threads=1, bint raise_impossible=True):
    """Beam-pruned Viterbi of every sequence; arguments as for hmmfast._viterbi.viterbi.

    Parameters
    ----------
    beam : float
        Keep states within ``beam`` (natural log) of the step's best; inf: no beam.
    max_active : int
        Keep at most this many states per step (0: no limit).
    min_active : int
        Keep at least this many (when reachable; 0: none).

    Returns
    -------
    logprob : float
        Sum over sequences of log P(X_s, path_s) for the returned paths.
    states : ndarray of shape (T,), intp

    Raises
    ------
    hmmfast.ImpossibleSequenceError
        A sequence no path explains; hmmfast.PruningError (a subclass) when the pruning
        removed every path.
    """
    cdef BeamParams params
    if not beam >= 0.0 or max_active < 0 or min_active < 0:
        raise ValueError("internal: beam >= 0, max_active >= 0, min_active >= 0")
    params.beam = beam
    params.max_active = max_active
    params.min_active = min_active
    # scratch: 2 double and 4 intp vectors of N (stride(N) apart: room to spare), then
    # (T + 1) intp step offsets
    return run_kernel(beam_sequence, 2 * sizeof(double) + 4 * sizeof(intp_t),
                      sizeof(intp_t), 0, False, OUTPUT_STATES, raise_impossible, chain,
                      emission, rows, offsets, logprob_out, n_threads, &params)
