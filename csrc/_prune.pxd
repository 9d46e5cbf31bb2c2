# Beam pruning of one step's reached states, shared by the beam decoder (_beam.pyx) and
# the streaming decoder (_stream_decoder.pyx) so both prune identically.
#
# Design note
# -----------
# ``prune`` keeps, of the states reached at a step, those scoring within ``beam`` (natural
# log) of the step's best; then at most ``max_active`` (the best, ties to the lower index)
# and at least ``min_active`` (the best of the rest are added back, finite scores only).
# The kept states are returned sorted by index, so a decoder that expands them in order
# with a strict ">" breaks ties to the lowest predecessor, as the dense decoder does.
# Sorting is heap sort (O(k log k), no allocation, no recursion).

from libc.math cimport INFINITY

ctypedef Py_ssize_t intp_t


cdef struct BeamParams:
    double beam           # inf: no score pruning
    Py_ssize_t max_active  # 0: no limit
    Py_ssize_t min_active  # 0: none


cdef inline bint goes_before(intp_t a, intp_t b, const double* score) noexcept nogil:
    """The sort order: with ``score``, a higher score first, ties to the lower index;
    with ``score == NULL``, ascending index."""
    if score != NULL and score[a] != score[b]:
        return score[a] > score[b]
    return a < b


cdef inline void sift_down(intp_t* ids, Py_ssize_t root, Py_ssize_t end,
                           const double* score) noexcept nogil:
    """Restore the heap below ``root`` in ids[:end] (the root of a heap goes last)."""
    cdef Py_ssize_t child, swap_i
    cdef intp_t tmp
    while 2 * root + 1 < end:
        child = 2 * root + 1
        swap_i = root
        if goes_before(ids[swap_i], ids[child], score):
            swap_i = child
        if child + 1 < end and goes_before(ids[swap_i], ids[child + 1], score):
            swap_i = child + 1
        if swap_i == root:
            return
        tmp = ids[root]
        ids[root] = ids[swap_i]
        ids[swap_i] = tmp
        root = swap_i


cdef inline void sort_ids(intp_t* ids, Py_ssize_t n, const double* score=NULL) noexcept nogil:
    """Heap sort of ``ids`` in the order of ``goes_before``: best first by ``score``
    (ties to the lower index), or ascending index without it. O(n log n), in place."""
    cdef Py_ssize_t start, end
    cdef intp_t tmp
    if n < 2:
        return
    start = (n - 2) // 2
    while start >= 0:
        sift_down(ids, start, n, score)
        start -= 1
    end = n - 1
    while end > 0:
        tmp = ids[end]
        ids[end] = ids[0]
        ids[0] = tmp
        sift_down(ids, 0, end, score)
        end -= 1


cdef inline Py_ssize_t prune(const BeamParams* p, intp_t* reached, Py_ssize_t n_reached,
                             const double* score, bint* pruned) noexcept nogil:
    """Reorder ``reached`` so that its first k entries are the states that stay active
    (sorted by index); return k (0 when no state has a finite score)."""
    cdef Py_ssize_t i, k = 0, finite = 0
    cdef double best = -INFINITY, threshold
    cdef intp_t tmp
    for i in range(n_reached):  # drop -inf states (impossible emissions) to the back
        if score[reached[i]] > -INFINITY:
            tmp = reached[finite]
            reached[finite] = reached[i]
            reached[i] = tmp
            finite += 1
            if score[reached[finite - 1]] > best:
                best = score[reached[finite - 1]]
    if finite == 0:
        return 0
    threshold = best - p.beam
    for i in range(finite):  # within the beam to the front
        if score[reached[i]] >= threshold:
            tmp = reached[k]
            reached[k] = reached[i]
            reached[i] = tmp
            k += 1
    if ((p.max_active > 0 and k > p.max_active)
            or (p.min_active > 0 and k < p.min_active and finite > k)):
        sort_ids(reached, finite, score)  # best first, ties to the lower index
        if p.max_active > 0 and k > p.max_active:
            k = p.max_active
        if p.min_active > 0 and k < p.min_active:
            k = min(p.min_active, finite)
    if k < finite:
        pruned[0] = True
    sort_ids(reached, k)
    return k
