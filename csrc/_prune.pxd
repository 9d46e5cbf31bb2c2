# Beam pruning of one step's reached states, shared by the beam decoder (_beam.pyx) and
# the streaming decoder (_stream.pyx) so both prune identically.
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


cdef inline void sort_by_score(intp_t* ids, const double* score, Py_ssize_t n) noexcept nogil:
    """Order ``ids`` best first: score descending, ties to the lower index (heap sort)."""
    cdef Py_ssize_t start, end, root, child, swap_i
    cdef intp_t tmp
    if n < 2:
        return
    # build a min-heap on the order "worse first" so that the heap sort leaves the best
    # first: key(a) < key(b) when a is worse (lower score, or equal score and higher id)
    start = (n - 2) // 2
    while True:
        root = start
        while 2 * root + 1 < n:
            child = 2 * root + 1
            swap_i = root
            if worse(ids[swap_i], ids[child], score):
                swap_i = child
            if child + 1 < n and worse(ids[swap_i], ids[child + 1], score):
                swap_i = child + 1
            if swap_i == root:
                break
            tmp = ids[root]
            ids[root] = ids[swap_i]
            ids[swap_i] = tmp
            root = swap_i
        if start == 0:
            break
        start -= 1
    end = n - 1
    while end > 0:
        tmp = ids[end]
        ids[end] = ids[0]
        ids[0] = tmp
        root = 0
        while 2 * root + 1 < end:
            child = 2 * root + 1
            swap_i = root
            if worse(ids[swap_i], ids[child], score):
                swap_i = child
            if child + 1 < end and worse(ids[swap_i], ids[child + 1], score):
                swap_i = child + 1
            if swap_i == root:
                break
            tmp = ids[root]
            ids[root] = ids[swap_i]
            ids[swap_i] = tmp
            root = swap_i
        end -= 1
    # the max-heap on "better" left the worst first: reverse into best first
    start = 0
    end = n - 1
    while start < end:
        tmp = ids[start]
        ids[start] = ids[end]
        ids[end] = tmp
        start += 1
        end -= 1


cdef inline bint worse(intp_t a, intp_t b, const double* score) noexcept nogil:
    """True when state b ranks before state a (higher score, or equal and lower index):
    the heap keeps the best at its root."""
    if score[b] != score[a]:
        return score[b] > score[a]
    return b < a


cdef inline void sort_ids(intp_t* ids, Py_ssize_t n) noexcept nogil:
    """Ascending indices (heap sort)."""
    cdef Py_ssize_t start, end, root, child, swap_i
    cdef intp_t tmp
    if n < 2:
        return
    start = (n - 2) // 2
    while True:
        root = start
        while 2 * root + 1 < n:
            child = 2 * root + 1
            swap_i = root
            if ids[swap_i] < ids[child]:
                swap_i = child
            if child + 1 < n and ids[swap_i] < ids[child + 1]:
                swap_i = child + 1
            if swap_i == root:
                break
            tmp = ids[root]
            ids[root] = ids[swap_i]
            ids[swap_i] = tmp
            root = swap_i
        if start == 0:
            break
        start -= 1
    end = n - 1
    while end > 0:
        tmp = ids[end]
        ids[end] = ids[0]
        ids[0] = tmp
        root = 0
        while 2 * root + 1 < end:
            child = 2 * root + 1
            swap_i = root
            if ids[swap_i] < ids[child]:
                swap_i = child
            if child + 1 < end and ids[swap_i] < ids[child + 1]:
                swap_i = child + 1
            if swap_i == root:
                break
            tmp = ids[root]
            ids[root] = ids[swap_i]
            ids[swap_i] = tmp
            root = swap_i
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
    if (p.max_active > 0 and k > p.max_active) or (p.min_active > 0 and k < p.min_active
                                                    and finite > k):
        sort_by_score(reached, score, finite)  # best first, ties to the lower index
        if p.max_active > 0 and k > p.max_active:
            k = p.max_active
        if p.min_active > 0 and k < p.min_active:
            k = min(p.min_active, finite)
    if k < finite:
        pruned[0] = True
    sort_ids(reached, k)
    return k
