# The online Viterbi decoder's memory (csrc/_stream_decoder.pyx), header-only: the ring of
# the window's backpointers and the scratch of one push, both sized to follow the window.
#
# Design note
# -----------
# Ring. Backpointers of the window (the unresolved times w0 .. n_seen - 1) live in a ring
# buffer indexed by time modulo its capacity (a power of two, so a slot is ``t & mask``),
# in the smallest unsigned type that holds N (``backptr_bytes`` of _viterbi_table.pxd:
# uint8 up to 256 states, uint16 up to 65,536, int32 beyond), as in the offline decoder.
# Beside each slot the trace keeps |A(tau)|, the remembered size of the set of states on
# surviving paths at tau (0: not traced yet). The ring doubles when a push needs more
# slots than it has and halves when the window falls below a quarter of it (never below
# ``min_cap``: MIN_SLOTS, fewer for a huge N), so memory follows the window; shrinking
# is optional (a failed allocation keeps the larger ring).
#
# Scratch. A chunk of T observations records, per step, which states are finite (T x N
# bytes) and, with a fixed lag, the best state (T); the states it resolves go to an
# output buffer of room for the whole window plus T. Buffers grown for a long chunk are
# given back after the push (``scratch_trim``), so a stream's steady memory is O(window).

from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.stdint cimport uint8_t, uint16_t, int32_t

from _common cimport intp_t
from _stream_common cimport checked_malloc

cdef enum:
    MIN_SLOTS = 64     # smallest ring capacity (a power of two) ...
    MIN_RING_BYTES = 1 << 20  # ... unless that takes more than this (huge N)
    SMALL_OUT = 4096   # output buffers larger than this are freed after a push


cdef inline void* regrow(void* old, size_t size) except NULL:
    """A new scratch buffer of ``size`` bytes replacing ``old`` (freed only on success;
    contents are not kept)."""
    cdef void* p = checked_malloc(size)
    free(old)
    return p


# ---------------------------------------------------------------- backpointer ring

cdef struct Ring:
    char* slots         # (cap, n * width) backpointers of time t at slot t & mask
    int32_t* sizes      # (cap,) remembered |A(tau)| per slot (0: not traced yet)
    Py_ssize_t cap      # a power of two
    Py_ssize_t min_cap
    Py_ssize_t mask     # cap - 1
    Py_ssize_t n        # states per slot
    int width           # bytes per backpointer


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


cdef inline char* ring_row(const Ring* ring, Py_ssize_t t) noexcept nogil:
    """The backpointers of time t (its slot)."""
    return ring.slots + (t & ring.mask) * ring.n * ring.width


cdef inline int ring_resize(Ring* ring, Py_ssize_t cap, Py_ssize_t w0,
                            Py_ssize_t n_seen) except -1:
    """Move the window's slots (times w0 .. n_seen - 1) into a ring of ``cap`` slots (a
    power of two); on MemoryError the ring is unchanged."""
    cdef Py_ssize_t row = ring.n * ring.width, t
    cdef char* slots = <char*> checked_malloc(cap * row)
    cdef int32_t* sizes
    try:
        sizes = <int32_t*> checked_malloc(cap * sizeof(int32_t))
    except MemoryError:
        free(slots)
        raise
    for t in range(w0, n_seen):
        memcpy(slots + (t & (cap - 1)) * row, ring.slots + (t & ring.mask) * row, row)
        sizes[t & (cap - 1)] = ring.sizes[t & ring.mask]
    free(ring.slots)
    free(ring.sizes)
    ring.slots = slots
    ring.sizes = sizes
    ring.cap = cap
    ring.mask = cap - 1
    return 0


cdef inline int ring_open(Ring* ring, Py_ssize_t n, int width) except -1:
    """An empty ring of ``min_cap`` slots for N = n states (``ring`` zeroed before)."""
    ring.n = n
    ring.width = width
    ring.cap = 0
    ring.min_cap = MIN_SLOTS
    while ring.min_cap > 2 and ring.min_cap * n * width > MIN_RING_BYTES:
        ring.min_cap //= 2
    return ring_resize(ring, ring.min_cap, 0, 0)


cdef inline int ring_reserve(Ring* ring, Py_ssize_t need, Py_ssize_t w0,
                             Py_ssize_t n_seen) except -1:
    """Room for ``need`` slots (the window and what a push appends after it)."""
    cdef Py_ssize_t cap = ring.cap
    if need <= cap:
        return 0
    while cap < need:
        cap *= 2
    return ring_resize(ring, cap, w0, n_seen)


cdef inline void ring_shrink(Ring* ring, Py_ssize_t w0, Py_ssize_t n_seen) noexcept:
    """Halve the ring while the window fills less than a quarter of it (optional: a
    failed allocation keeps the larger ring)."""
    cdef Py_ssize_t window = n_seen - w0, cap = ring.cap
    if cap <= ring.min_cap or 4 * window >= cap:
        return
    while cap > ring.min_cap and 4 * window < cap:
        cap //= 2
    try:
        ring_resize(ring, cap, w0, n_seen)
    except MemoryError:
        pass


cdef inline void ring_close(Ring* ring) noexcept:
    free(ring.slots)
    free(ring.sizes)
    ring.slots = NULL
    ring.sizes = NULL


# ---------------------------------------------------------------- per-push scratch

cdef struct Scratch:
    uint8_t* fin        # (T, N) which states are finite at each step of a chunk
    Py_ssize_t fin_cap
    intp_t* best        # (T,) the best state of each step (fixed lag only)
    Py_ssize_t best_cap
    intp_t* out         # the states resolved by the push
    Py_ssize_t out_len
    Py_ssize_t out_cap


cdef inline int scratch_open(Scratch* sc, Py_ssize_t n) except -1:
    """Room for one step of N = n states (``sc`` zeroed before)."""
    sc.fin_cap = n
    sc.fin = <uint8_t*> checked_malloc(n)
    sc.best_cap = 1
    sc.best = <intp_t*> checked_malloc(sizeof(intp_t))
    sc.out_cap = 64
    sc.out = <intp_t*> checked_malloc(64 * sizeof(intp_t))
    sc.out_len = 0
    return 0


cdef inline int out_reserve(Scratch* sc, Py_ssize_t count) except -1:
    """Room for ``count`` output states (only between pushes: contents are dropped)."""
    if count > sc.out_cap:
        sc.out = <intp_t*> regrow(sc.out, count * sizeof(intp_t))
        sc.out_cap = count
    return 0


cdef inline int scratch_reserve(Scratch* sc, Py_ssize_t T, Py_ssize_t n, bint lag,
                                Py_ssize_t window) except -1:
    """Per-step masks (and, with ``lag``, best states) for a chunk of T steps, and output
    room for every state that could come out of it (the window and the chunk)."""
    if T * n > sc.fin_cap:
        sc.fin = <uint8_t*> regrow(sc.fin, T * n)
        sc.fin_cap = T * n
    if lag and T > sc.best_cap:
        sc.best = <intp_t*> regrow(sc.best, T * sizeof(intp_t))
        sc.best_cap = T
    return out_reserve(sc, window + T)


cdef inline void scratch_trim(Scratch* sc, Py_ssize_t n) noexcept:
    """Give back the memory of a long chunk (optional: kept if allocation fails)."""
    cdef void* p
    if sc.fin_cap > SMALL_OUT * n:
        p = malloc(n)
        if p != NULL:
            free(sc.fin)
            sc.fin = <uint8_t*> p
            sc.fin_cap = n
    if sc.best_cap > SMALL_OUT:
        p = malloc(sizeof(intp_t))
        if p != NULL:
            free(sc.best)
            sc.best = <intp_t*> p
            sc.best_cap = 1
    if sc.out_cap > SMALL_OUT:
        p = malloc(64 * sizeof(intp_t))
        if p != NULL:
            free(sc.out)
            sc.out = <intp_t*> p
            sc.out_cap = 64


cdef inline void scratch_close(Scratch* sc) noexcept:
    free(sc.fin)
    free(sc.best)
    free(sc.out)
    sc.fin = NULL
    sc.best = NULL
    sc.out = NULL
