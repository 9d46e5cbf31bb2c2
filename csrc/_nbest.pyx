# n-best Viterbi: the n most probable distinct state paths of one sequence.
#
# Design note
# -----------
# Algorithm: the parallel list Viterbi algorithm (Seshadri & Sundberg 1994, "List Viterbi
# decoding algorithms with applications"). At every step t and state j the kernel keeps
# the m best partial paths ending in j (m = min(n, N^(T-1)), the most any state can
# have), sorted best first, each with its score and a backpointer (predecessor state,
# predecessor rank), packed as ``i * m + rank`` in the smallest unsigned type that holds
# N * m. The m best partial paths into j at step t extend the m best into each
# predecessor i at t - 1 (a path in the global top n has a prefix in the top m of its
# state at every step: if m prefixes were ahead of it, each, followed by its suffix,
# would be a complete path ahead of it). So step t merges, for every j, the sorted lists
# of j's predecessors shifted by log A_ij, keeping the best m (``merge_lists``). Only
# lists whose head is among the m best heads can contribute; a small merge (min(m,
# deg j) <= SMALL_MERGE) keeps those heads in a sorted array with linear insertion, a
# large one heapifies the heads (O(deg j)) and pops m times (O(m log deg j)). The end is
# one more merge over the N final lists.
#
# Cost: O(T (nnz + N m log N)) time (O(T N^2 + T N m log N) for a dense chain, within
# O(T N^2 n log n)) and O(T N m) memory for the backpointers, plus O(N m) for the two
# rolling score buffers; traceback costs O(T) per returned path.
#
# Predecessors are read from the chain's column (CSC) structure: only allowed
# transitions are touched, dense and sparse chains alike (a sparse-only chain has no
# dense matrix), in ascending predecessor order, the order of ``maxplus_step``.
#
# Determinism and ties (the order of the returned list):
# * At each (t, j) the candidates are ordered by (-(score_{t-1} + log A_ij), predecessor
#   state, predecessor rank) -- the score before the emission term is added, exactly as
#   Viterbi takes its maximum (adding log b_t(j), the same for every candidate of j,
#   keeps the order) -- and only finite candidates are kept. The candidates are
#   distinct partial paths, so the returned paths are distinct by construction.
# * At the end the paths are ordered by (-score, final state, rank).
# Unrolled, the returned paths s_0..s_{T-1} are sorted by the key
#     (-S_{T-1}, s_{T-1}, -P_{T-1}, s_{T-2}, -P_{T-2}, s_{T-3}, ..., -P_1, s_0)
# where S_t is the path's score through frame t and P_t = S_{t-1} + log A(s_{t-1}, s_t),
# all in the kernel's floating-point order of additions (tests/test_nbest.py rebuilds
# this key by enumeration). Equal scores in exact arithmetic have equal P_t, and the key
# is then "highest score first, then the smallest path read backwards from the last
# step": the brute-force oracle's order and Viterbi's tie rule. When two prefixes that
# differ by rounding (same terms, summed in another order) reach the same score, the
# better prefix comes first, just as Viterbi's own argmax decides on the prefixes. Rank
# 0 of every state is Viterbi's delta bit for bit (same additions, same predecessor
# order, same first maximiser), so the first path and its score are exactly
# _viterbi.viterbi's.
#
# A step at which no state keeps a finite path (Viterbi: every delta -inf) makes the
# sequence impossible: reported through the shared status machinery, so the error is
# _viterbi's ImpossibleSequenceError naming the same step. Table rows are range-checked
# as they are read (``frame_row``).

from libc.stdlib cimport malloc, free
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int64_t
from libc.math cimport INFINITY

cimport numpy as cnp
from _common cimport (
    Chain, Frames, SeqStatus, intp_t, status, frame_row, get_chain, fill_frames,
    raise_for_status, STATUS_OK, STATUS_BAD_ROW, STATUS_IMPOSSIBLE,
)

cnp.import_array()

ctypedef fused pack_t:   # backpointer (predecessor * m + rank)
    uint8_t
    uint16_t
    uint32_t
    int64_t


# ---------------------------------------------------------------- binary heap
# A max-heap of list ids p, ordered by (val[p] descending, key[p] ascending).

cdef inline bint ahead(const double* val, const intp_t* key, intp_t a, intp_t b) noexcept nogil:
    return val[a] > val[b] or (val[a] == val[b] and key[a] < key[b])


cdef inline void sift_down(intp_t* heap, Py_ssize_t size, Py_ssize_t pos, const double* val,
                           const intp_t* key) noexcept nogil:
    cdef intp_t item = heap[pos]
    cdef Py_ssize_t child
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and ahead(val, key, heap[child + 1], heap[child]):
            child += 1
        if not ahead(val, key, heap[child], item):
            break
        heap[pos] = heap[child]
        pos = child
    heap[pos] = item


cdef inline void heapify(intp_t* heap, Py_ssize_t size, const double* val,
                         const intp_t* key) noexcept nogil:
    cdef Py_ssize_t pos
    for pos in range(size // 2 - 1, -1, -1):
        sift_down(heap, size, pos, val, key)


# ---------------------------------------------------------------- kernel

cdef enum:
    # a merge whose min(m, number of lists) is at most this keeps the m best heads in a
    # sorted array (linear insertion); larger merges use the binary heap. Measured: the
    # array is ~3x faster for m = 1 (then it is Viterbi's linear argmax) and ~25% for few
    # lists; the heap is ~20% faster from m, lists >= 10 on (fewer mispredicted branches)
    SMALL_MERGE = 8


cdef struct Work:
    Py_ssize_t m              # list length per state
    # cur: (N, m) scores at t - 1, best first; cur[i * m] = -inf when state i has no
    # finite path
    double* cur
    double* nxt               # (N, m) scores at t
    intp_t* cnt_cur           # (N,) finite entries per state at t - 1
    intp_t* cnt_nxt           # (N,)
    intp_t* heap              # (N,) list ids: the heap, or the sorted array
    double* val               # (N,) value of each list's head
    intp_t* rank              # (N,) rank of each list's head
    intp_t* ident             # (N,) 0..N-1 (tie keys of the final merge)


cdef inline Py_ssize_t merge_lists(const double* cur, const intp_t* cnt, Py_ssize_t m,
                                   const intp_t* keys, const double* shift, Py_ssize_t deg,
                                   double lb, intp_t* buf, double* val, intp_t* rank,
                                   double* out_scores, pack_t* out_bp) noexcept nogil:
    """The m best of deg sorted lists, best first; returns how many (finite) were kept.

    List p is cur[i m : i m + cnt[i]] + shift[p] with i = keys[p]; candidates are ordered
    by (-value, i, rank), then lb is added to each kept value. out_bp receives i m + rank.
    """
    cdef Py_ssize_t p, i, pos, size = 0, out = 0, rk
    cdef double v, s
    if (m if m < deg else deg) <= SMALL_MERGE:
        # buf[0..size) in increasing priority: buf[size - 1] is the best head. Only the m
        # best heads can contribute (a list's head beats the rest of it).
        for p in range(deg):
            v = cur[keys[p] * m] + shift[p]
            if not v > -INFINITY:
                continue
            val[p] = v
            rank[p] = 0
            if size < m:
                pos = size
                size += 1
                while pos > 0 and ahead(val, keys, buf[pos - 1], p):
                    buf[pos] = buf[pos - 1]
                    pos -= 1
                buf[pos] = p
            elif ahead(val, keys, p, buf[0]):
                pos = 0
                while pos + 1 < size and ahead(val, keys, p, buf[pos + 1]):
                    buf[pos] = buf[pos + 1]
                    pos += 1
                buf[pos] = p
        while out < m and size > 0:
            p = buf[size - 1]
            s = val[p] + lb
            if s == -INFINITY:  # the best remaining candidate is impossible: all are
                break
            i = keys[p]
            rk = rank[p]
            out_scores[out] = s
            out_bp[out] = <pack_t> (i * m + rk)
            out += 1
            rk += 1
            if rk < cnt[i]:
                rank[p] = rk
                val[p] = cur[i * m + rk] + shift[p]
                pos = size - 1
                while pos > 0 and ahead(val, keys, buf[pos - 1], p):
                    buf[pos] = buf[pos - 1]
                    pos -= 1
                buf[pos] = p
            else:
                size -= 1
        return out
    # many lists: a binary heap over every non-empty list's head
    for p in range(deg):
        v = cur[keys[p] * m] + shift[p]
        if v > -INFINITY:
            val[p] = v
            rank[p] = 0
            buf[size] = p
            size += 1
    heapify(buf, size, val, keys)
    while out < m and size > 0:
        p = buf[0]
        s = val[p] + lb
        if s == -INFINITY:
            break
        i = keys[p]
        rk = rank[p]
        out_scores[out] = s
        out_bp[out] = <pack_t> (i * m + rk)
        out += 1
        rk += 1
        if rk < cnt[i]:
            rank[p] = rk
            val[p] = cur[i * m + rk] + shift[p]
        else:
            size -= 1
            buf[0] = buf[size]
        if size > 0:
            sift_down(buf, size, 0, val, keys)
    return out


cdef SeqStatus nbest_forward(const Chain* ch, const Frames* fr, Py_ssize_t big_t, Work* w,
                             pack_t* bp) noexcept nogil:
    """Fill the lists and backpointers; on return w.cur / w.cnt_cur hold step T - 1.

    bp : (T - 1, N, m); row t - 1 holds the backpointers of step t.
    """
    cdef Py_ssize_t n = ch.n_states, m = w.m, t, j, r, c0, out
    cdef const double* log_b
    cdef const intp_t* col_start = ch.col_start
    cdef double s
    cdef double* cur = w.cur
    cdef double* nxt = w.nxt
    cdef intp_t* cnt_cur = w.cnt_cur
    cdef intp_t* cnt_nxt = w.cnt_nxt
    cdef double* dswap
    cdef intp_t* iswap
    cdef bint reachable
    r = frame_row(fr, 0)
    if r < 0:
        return status(STATUS_BAD_ROW, 0)
    log_b = fr.log_table + r * n
    reachable = False
    for j in range(n):
        s = ch.log_startprob[j] + log_b[j]
        cur[j * m] = s
        cnt_cur[j] = 1 if s > -INFINITY else 0
        reachable |= s > -INFINITY
    if reachable:
        for t in range(1, big_t):
            r = frame_row(fr, t)
            if r < 0:
                return status(STATUS_BAD_ROW, t)
            log_b = fr.log_table + r * n
            reachable = False
            for j in range(n):
                out = 0
                if log_b[j] > -INFINITY:
                    c0 = col_start[j]
                    out = merge_lists(cur, cnt_cur, m, ch.col_from + c0, ch.col_log + c0,
                                      col_start[j + 1] - c0, log_b[j], w.heap, w.val,
                                      w.rank, nxt + j * m, bp + ((t - 1) * n + j) * m)
                if out == 0:
                    nxt[j * m] = -INFINITY
                cnt_nxt[j] = out
                reachable |= out > 0
            if not reachable:
                return status(STATUS_IMPOSSIBLE, t)
            dswap = cur
            cur = nxt
            nxt = dswap
            iswap = cnt_cur
            cnt_cur = cnt_nxt
            cnt_nxt = iswap
        w.cur = cur
        w.nxt = nxt
        w.cnt_cur = cnt_cur
        w.cnt_nxt = cnt_nxt
        return status(STATUS_OK, 0)
    return status(STATUS_IMPOSSIBLE, 0)


cdef void nbest_collect(const Chain* ch, Py_ssize_t big_t, Work* w, const pack_t* bp,
                        Py_ssize_t k, double* scores_out, intp_t* paths_out) noexcept nogil:
    """Merge the final lists (order: -score, final state, rank) and trace back k paths."""
    cdef Py_ssize_t n = ch.n_states, m = w.m, j, size = 0, q, t, r
    cdef intp_t packed
    cdef intp_t* path
    for j in range(n):
        if w.cnt_cur[j] > 0:
            w.val[j] = w.cur[j * m]
            w.rank[j] = 0
            w.heap[size] = j
            size += 1
    heapify(w.heap, size, w.val, w.ident)
    for q in range(k):  # k <= the number of finite entries: the heap never runs dry
        j = w.heap[0]
        r = w.rank[j]
        scores_out[q] = w.val[j]
        path = paths_out + q * big_t
        if w.rank[j] + 1 < w.cnt_cur[j]:
            w.rank[j] += 1
            w.val[j] = w.cur[j * m + w.rank[j]]
        else:
            size -= 1
            w.heap[0] = w.heap[size]
        if size > 0:
            sift_down(w.heap, size, 0, w.val, w.ident)
        path[big_t - 1] = j
        for t in range(big_t - 1, 0, -1):
            packed = <intp_t> bp[((t - 1) * n + j) * m + r]
            j = packed // m
            r = packed % m
            path[t - 1] = j


cdef object nbest_run(const Chain* ch, Frames* fr, Py_ssize_t big_t, Py_ssize_t n_best,
                      Work* w, pack_t* bp):
    cdef SeqStatus st
    cdef intp_t offsets[2]
    cdef Py_ssize_t j, total = 0, k
    cdef cnp.ndarray scores, paths
    cdef cnp.npy_intp dims[2]
    with nogil:
        st = nbest_forward(ch, fr, big_t, w, bp)
    offsets[0] = 0
    offsets[1] = big_t
    raise_for_status(&st, 1, fr, offsets, True)
    for j in range(ch.n_states):
        total += w.cnt_cur[j]
    k = min(n_best, total)
    dims[0] = k
    dims[1] = big_t
    scores = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
    paths = cnp.PyArray_EMPTY(2, dims, cnp.NPY_INTP, 0)
    with nogil:
        nbest_collect(ch, big_t, w, bp, k, <double*> cnp.PyArray_DATA(scores),
                      <intp_t*> cnp.PyArray_DATA(paths))
    return scores, paths


def nbest(object chain, tuple emission, rows, Py_ssize_t n):
    """The n most probable distinct state paths of one sequence (parallel list Viterbi).

    Keeps the m = min(n, N**(T-1)) best partial paths per state and step, each with its
    backpointer (predecessor state, predecessor rank), and merges each state's
    predecessor lists (see the module's design note).

    Cost: O(T (nnz + N m log N)) time -- O(T N^2 + T N n log N) for a dense chain, within
    O(T N^2 n log n) -- and O(T N m) memory (backpointers in the smallest unsigned type
    holding N m), plus O(T) per returned path for the traceback. The GIL is released.

    Parameters
    ----------
    chain : PyCapsule
        From :func:`hmmfast._chain.compile_chain` (dense or sparse).
    emission : tuple
        ``(log_table, scaled_table, row_log_scale)``; only ``log_table`` (K, N) is read.
    rows : ndarray of shape (T,), intp, or None
        Table row of each frame (range-checked as read); None: ``log_table`` is the dense
        (T, N) log-emission matrix of the sequence.
    n : int
        Number of paths wanted, >= 1 (the public layer validates it).

    Returns
    -------
    scores : ndarray of shape (k,), float64
        log P(X, path), non-increasing; k = min(n, number of paths of non-zero
        probability).
    paths : ndarray of shape (k, T), intp
        Distinct paths, best first. Ties: among equal scores, the path that is smallest
        read backwards from the last step comes first. (Precisely: candidates at each step
        are ordered by (-score, predecessor state, predecessor rank), the final lists by
        (-score, final state, rank); the design note spells out the resulting key.)
        ``paths[0]`` and ``scores[0]`` are exactly :func:`hmmfast._viterbi.viterbi`'s.

    Raises
    ------
    hmmfast.ImpossibleSequenceError
        When the sequence has probability zero; names the first impossible step.
    hmmfast.HMMInputError
        When a table row index is out of range.
    ValueError
        For internal misuse (n < 1, no frames).
    MemoryError
        When the O(T N m) backpointer table cannot be allocated.
    """
    cdef const Chain* ch = get_chain(chain)
    cdef Py_ssize_t n_states = ch.n_states
    cdef Frames f
    if n < 1:
        raise ValueError(f"internal: n must be >= 1, got {n}")
    cdef Py_ssize_t big_t = fill_frames(&f, emission, rows, n_states, False)
    if big_t < 1:
        raise ValueError("internal: no frames")
    # m = min(n, N**(T-1)): no state has more partial paths than that
    cdef Py_ssize_t m = 1, t, _step
    for _step in range(big_t - 1):
        if m >= n or n_states == 1:
            break
        if m > n // n_states:
            m = n
            break
        m *= n_states
    m = min(m, n)
    if m > (<Py_ssize_t> 1 << 40) // n_states:
        raise MemoryError(f"n-best with n={n} over {n_states} states needs too much memory")
    cdef Py_ssize_t slots = n_states * m
    cdef int width = 8
    if slots <= 256:
        width = 1
    elif slots <= 65536:
        width = 2
    elif slots <= 4294967296:
        width = 4
    cdef object frames_obj = big_t - 1  # Python ints from here: no overflow
    table_bytes = max(frames_obj * slots * width, 1)
    vec_bytes = (2 * slots + n_states) * sizeof(double) + 5 * n_states * sizeof(intp_t)
    if table_bytes + vec_bytes > (1 << 62):
        raise MemoryError(f"n-best with n={n} needs {table_bytes} bytes of backpointers")
    cdef Work w
    cdef void* bp = malloc(<size_t> table_bytes)
    cdef char* vec = <char*> malloc(<size_t> vec_bytes)
    try:
        if bp == NULL or vec == NULL:
            raise MemoryError(f"could not allocate {table_bytes + vec_bytes} bytes for "
                              f"n-best decoding (T={big_t}, N={n_states}, n={n})")
        w.m = m
        w.cur = <double*> vec
        w.nxt = w.cur + slots
        w.val = w.nxt + slots
        w.cnt_cur = <intp_t*> (w.val + n_states)
        w.cnt_nxt = w.cnt_cur + n_states
        w.heap = w.cnt_nxt + n_states
        w.rank = w.heap + n_states
        w.ident = w.rank + n_states
        for t in range(n_states):
            w.ident[t] = t
        if width == 1:
            return nbest_run(ch, &f, big_t, n, &w, <uint8_t*> bp)
        if width == 2:
            return nbest_run(ch, &f, big_t, n, &w, <uint16_t*> bp)
        if width == 4:
            return nbest_run(ch, &f, big_t, n, &w, <uint32_t*> bp)
        return nbest_run(ch, &f, big_t, n, &w, <int64_t*> bp)
    finally:
        free(bp)
        free(vec)
