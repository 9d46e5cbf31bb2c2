# The request bodies of hmmfast serve, read without building Python objects.
#
# Design note
# -----------
# The service must refuse an over-limit body before it costs memory or time: parsing a
# 16 MiB body of one-step sessions with a Python JSON parser builds 4 million lists
# (~0.5 GB, seconds with the GIL held) before a limit can be checked. Here a body is read
# in two passes over its bytes (the C in hmm_json.h; its note has the details):
#
# 1. ``Scanner.feed(chunk)`` as each chunk arrives (GIL released for the chunk):
#    validates strict JSON (UTF-8, no NaN, depth <= 64), counts the items of the root's
#    list ("sessions"/"inputs") and each item's payload elements ("obs"/"data"), and
#    stops at the first count beyond its limit, so the server can answer 413 having read
#    only that far. It records byte spans, never values: ``members()`` (the root
#    object's members), ``items()`` (one row of ``N_FIELDS`` int64 per item: kind, flags,
#    span, payload span/kind/count/leaves, id span/kind). Memory: max_items + 1 rows.
# 2. ``fill_symbols`` / ``fill_frames`` / ``fill_numbers`` (GIL released; the C in
#    hmm_json_fill.h) convert the payloads of the complete, scanned body into one int64
#    or float64 array, checking each observation and reporting the first bad one as an
#    error record (code, item, position, byte span, count), from which the service
#    writes its 422.
#
# Everything the Python layer still decodes with ``json`` is small: member keys, option
# values, ids (the service bounds their sizes).

from libc.stdint cimport INT64_MAX, int64_t, uint8_t
from libc.string cimport memcpy, memset

import numpy as np

cimport numpy as cnp

cnp.import_array()

cdef extern from "hmm_json.h":
    ctypedef struct hj_scanner:
        int status, detail, root_kind, n_root, n_root_seen, list_kind
        int64_t pos, err_pos, err_item, err_count, root_start, root_end
        int64_t root_rec[16][5]
        int64_t list_start, list_end
        int64_t* items
        int64_t n_items, n_not_arrays, min_count, total_count
        int64_t unknown_item, unknown_start, unknown_end

    void hj_init(hj_scanner* s, const char* list_key, const char* payload_key, int id_key,
                 int strict_items, int array_items, int64_t max_items,
                 int64_t max_payload) noexcept nogil
    void hj_free(hj_scanner* s) noexcept nogil
    int hj_feed(hj_scanner* s, const uint8_t* buf, int64_t n) noexcept nogil
    int hj_finish(hj_scanner* s) noexcept nogil
    const char* hj_detail_text(int detail) noexcept nogil

    enum:
        HJ_NONE, HJ_OBJECT, HJ_ARRAY, HJ_STRING, HJ_NUMBER, HJ_TRUE, HJ_FALSE, HJ_NULL
        HJ_RUNNING, HJ_DONE, HJ_SYNTAX, HJ_LIMIT_ITEMS, HJ_LIMIT_PAYLOAD, HJ_NO_MEMORY
        HJ_KIND, HJ_FLAGS, HJ_START, HJ_END, HJ_P_START, HJ_P_END, HJ_P_KIND, HJ_P_COUNT
        HJ_P_LEAVES, HJ_ID_START, HJ_ID_END, HJ_ID_KIND, HJ_SEG_START, HJ_SEG_END
        HJ_SEG_KIND, HJ_NF
        HJ_HAS_PAYLOAD, HJ_HAS_ID, HJ_UNKNOWN_KEY, HJ_DUP_PAYLOAD, HJ_DUP_ID, HJ_HAS_SEGMENT
        HJ_DUP_SEGMENT

cdef extern from "hmm_json_fill.h":
    ctypedef struct hj_fill:
        int code
        int64_t item, position, start, end, count

    void hj_prepare() noexcept nogil
    int hj_fill_symbols(const uint8_t* b, int64_t n, int64_t n_items, const int64_t* p_start,
                        const int64_t* p_count, int64_t stride, int64_t n_symbols,
                        int64_t* out, hj_fill* r) noexcept nogil
    int hj_fill_frames(const uint8_t* b, int64_t n, int64_t n_items, const int64_t* p_start,
                       const int64_t* p_count, int64_t stride, int64_t d, int bare,
                       double* out, hj_fill* r) noexcept nogil
    int hj_fill_numbers(const uint8_t* b, int64_t start, int64_t end, int64_t count,
                        int integer, void* out, hj_fill* r) noexcept nogil

    enum:
        HJ_F_OK, HJ_F_NOT_INT, HJ_F_INT_RANGE, HJ_F_NOT_NUMBER, HJ_F_RANGE
        HJ_F_FRAME_LEN, HJ_F_NOT_FRAME, HJ_F_IN_FRAME, HJ_F_SYMBOL

hj_prepare()  # the "C" numeric locale, created once with the GIL

# value kinds (J_NONE: absent)
J_NONE, J_OBJECT, J_ARRAY, J_STRING, J_NUMBER, J_TRUE, J_FALSE, J_NULL = (
    HJ_NONE, HJ_OBJECT, HJ_ARRAY, HJ_STRING, HJ_NUMBER, HJ_TRUE, HJ_FALSE, HJ_NULL)
# scan status
RUNNING, DONE, SYNTAX, LIMIT_ITEMS, LIMIT_PAYLOAD, NO_MEMORY = (
    HJ_RUNNING, HJ_DONE, HJ_SYNTAX, HJ_LIMIT_ITEMS, HJ_LIMIT_PAYLOAD, HJ_NO_MEMORY)
# columns of items()
(KIND, FLAGS, START, END, P_START, P_END, P_KIND, P_COUNT, P_LEAVES, ID_START, ID_END,
 ID_KIND, SEG_START, SEG_END, SEG_KIND, N_FIELDS) = (
    HJ_KIND, HJ_FLAGS, HJ_START, HJ_END, HJ_P_START, HJ_P_END, HJ_P_KIND, HJ_P_COUNT,
    HJ_P_LEAVES, HJ_ID_START, HJ_ID_END, HJ_ID_KIND, HJ_SEG_START, HJ_SEG_END, HJ_SEG_KIND,
    HJ_NF)
# item flags
HAS_PAYLOAD, HAS_ID, UNKNOWN_KEY, DUP_PAYLOAD, DUP_ID, HAS_SEGMENT, DUP_SEGMENT = (
    HJ_HAS_PAYLOAD, HJ_HAS_ID, HJ_UNKNOWN_KEY, HJ_DUP_PAYLOAD, HJ_DUP_ID, HJ_HAS_SEGMENT,
    HJ_DUP_SEGMENT)
# fill errors
F_OK, F_NOT_INT, F_INT_RANGE, F_NOT_NUMBER, F_RANGE = (
    HJ_F_OK, HJ_F_NOT_INT, HJ_F_INT_RANGE, HJ_F_NOT_NUMBER, HJ_F_RANGE)
F_FRAME_LEN, F_NOT_FRAME, F_IN_FRAME, F_SYMBOL = (
    HJ_F_FRAME_LEN, HJ_F_NOT_FRAME, HJ_F_IN_FRAME, HJ_F_SYMBOL)

#: Chunks up to this size are scanned with the GIL held (releasing it costs more).
cdef int64_t NOGIL_BYTES = 4096


cdef class Scanner:
    """Pass 1 over a body: validate, count, record spans (see the module's note).

    Parameters
    ----------
    list_key : str
        The root member whose array is the list of items ("sessions", "inputs").
    payload_key : str
        The member of an item object that is its payload ("obs", "data").
    id_key : bool
        Record an item object's "id" and "segment" members.
    strict_items : bool
        Flag item objects with other members than the payload (and "id", "segment").
    array_items : bool
        An item that is an array is its own payload (a session given as a bare list).
    max_items, max_payload : int
        Limits: more items, or more elements in one payload, stop the scan
        (``LIMIT_ITEMS``, ``LIMIT_PAYLOAD``).
    """

    cdef hj_scanner s

    def __cinit__(self, *args, **kwargs):
        memset(&self.s, 0, sizeof(hj_scanner))

    def __init__(self, str list_key="sessions", str payload_key="obs", *, bint id_key=True,
                 bint strict_items=True, bint array_items=True, int64_t max_items=10_000,
                 int64_t max_payload=100_000):
        if max_items < 1 or max_payload < 1:
            raise ValueError("max_items and max_payload must be >= 1")
        cdef bytes lk = list_key.encode("ascii"), pk = payload_key.encode("ascii")
        hj_free(&self.s)
        hj_init(&self.s, lk, pk, id_key, strict_items, array_items, max_items, max_payload)

    def __dealloc__(self):
        hj_free(&self.s)

    def feed(self, const uint8_t[::1] chunk):
        """Scan the next bytes of the body; returns the status (``RUNNING`` while more
        may come, or the stop status)."""
        cdef int64_t n = chunk.shape[0]
        cdef int status
        if n == 0:
            return self.s.status
        if n <= NOGIL_BYTES:
            return hj_feed(&self.s, &chunk[0], n)
        with nogil:
            status = hj_feed(&self.s, &chunk[0], n)
        return status

    def finish(self):
        """The body is complete: returns ``DONE`` or the stop status."""
        return hj_finish(&self.s)

    @property
    def status(self):
        return self.s.status

    @property
    def consumed(self):
        """Bytes scanned (where a stop happened)."""
        return self.s.pos

    @property
    def error(self):
        """(status, offset, detail text, item, count) of a stop; item and count for the
        limits (the item whose payload is too long; the count that broke the limit)."""
        return (self.s.status, self.s.err_pos, hj_detail_text(self.s.detail).decode(),
                self.s.err_item, self.s.err_count)

    @property
    def root_kind(self):
        return self.s.root_kind

    @property
    def n_members(self):
        """Members of the root object (all of them; ``members()`` has the first 16)."""
        return self.s.n_root_seen

    def members(self):
        """The root object's first 16 members: list of (key start, key end, value start,
        value end, value kind), byte offsets into the body (ends exclusive)."""
        return [tuple(self.s.root_rec[i][j] for j in range(5)) for i in range(self.s.n_root)]

    @property
    def list_kind(self):
        """Kind of the list member's value (``J_NONE`` when the root has none)."""
        return self.s.list_kind

    @property
    def list_span(self):
        return (self.s.list_start, self.s.list_end)

    def items(self):
        """ndarray of shape (n_items, N_FIELDS), int64: one row per item (a copy)."""
        cdef cnp.ndarray out = np.empty((self.s.n_items, HJ_NF), dtype=np.int64)
        if self.s.n_items:
            memcpy(cnp.PyArray_DATA(out), self.s.items,
                   self.s.n_items * HJ_NF * sizeof(int64_t))
        return out

    @property
    def n_items(self):
        return self.s.n_items

    @property
    def n_not_arrays(self):
        """Items that are not arrays (0: every session is a plain list)."""
        return self.s.n_not_arrays

    @property
    def min_count(self):
        """The fewest elements in an item's payload array (None without one)."""
        return None if self.s.min_count == INT64_MAX else self.s.min_count

    @property
    def total_count(self):
        """Elements in all payload arrays."""
        return self.s.total_count

    def payload_counts(self):
        """ndarray of shape (n_items,), int64: each item's payload elements."""
        cdef cnp.ndarray out = np.empty(self.s.n_items, dtype=np.int64)
        cdef int64_t* o = <int64_t*> cnp.PyArray_DATA(out)
        cdef int64_t i
        for i in range(self.s.n_items):
            o[i] = self.s.items[i * HJ_NF + HJ_P_COUNT]
        return out

    def fill_symbols(self, const uint8_t[::1] body, int64_t n_symbols=0):
        """:func:`fill_symbols` over this scan's payloads (every item's payload must be an
        array), range-checking symbols when ``n_symbols`` > 0 (``F_SYMBOL``, the symbol
        in the error's count)."""
        cdef cnp.ndarray values = np.empty(self.s.total_count, dtype=np.int64)
        cdef hj_fill r
        cdef int64_t n = body.shape[0]
        cdef const uint8_t* b = &body[0] if n else <const uint8_t*> b""
        cdef const int64_t* rows = self.s.items
        if self.s.n_items:
            with nogil:
                hj_fill_symbols(b, n, self.s.n_items, rows + HJ_P_START, rows + HJ_P_COUNT,
                                HJ_NF, n_symbols, <int64_t*> cnp.PyArray_DATA(values), &r)
        else:
            r.code = HJ_F_OK
        return values, (None if r.code == HJ_F_OK else _error(&r))

    def fill_frames(self, const uint8_t[::1] body, int64_t n_features, bint bare,
                    int64_t total):
        """:func:`fill_frames` over this scan's payloads; ``total``: their leaves."""
        cdef cnp.ndarray values = np.empty(total, dtype=np.float64)
        cdef hj_fill r
        cdef int64_t n = body.shape[0]
        cdef const uint8_t* b = &body[0] if n else <const uint8_t*> b""
        cdef const int64_t* rows = self.s.items
        if self.s.n_items:
            with nogil:
                hj_fill_frames(b, n, self.s.n_items, rows + HJ_P_START, rows + HJ_P_COUNT,
                               HJ_NF, n_features, bare, <double*> cnp.PyArray_DATA(values),
                               &r)
        else:
            r.code = HJ_F_OK
        return values, (None if r.code == HJ_F_OK else _error(&r))

    @property
    def unknown_key(self):
        """(item, key start, key end) of the first item member that is not the payload or
        the id (``strict_items``), or None."""
        if self.s.unknown_item < 0:
            return None
        return (self.s.unknown_item, self.s.unknown_start, self.s.unknown_end)


cdef tuple _error(hj_fill* r):
    return (r.code, r.item, r.position, r.start, r.end, r.count)


def fill_symbols(const uint8_t[::1] body, const int64_t[::1] p_start,
                 const int64_t[::1] p_count, int64_t total, int64_t n_symbols=0):
    """Integer observations of each payload array, concatenated.

    Parameters
    ----------
    body : bytes-like
        The whole body, accepted by a :class:`Scanner` (bytes or bytearray: a
        NUL-terminated buffer).
    p_start, p_count : ndarray of shape (n_items,), int64
        Each payload array's start offset ('[') and element count (from ``items()``).
    total : int
        ``p_count.sum()``.
    n_symbols : int
        When > 0, a symbol outside [0, n_symbols) stops the fill (``F_SYMBOL``).

    Returns
    -------
    values : ndarray of shape (total,), int64
    error : None or tuple (code, item, position, start, end, count)
        The first observation that is not an integer within int64 (``F_NOT_NUMBER``,
        ``F_NOT_INT``, ``F_INT_RANGE``); ``values`` is then incomplete.
    """
    cdef cnp.ndarray values = np.empty(total, dtype=np.int64)
    cdef hj_fill r
    cdef int64_t n = body.shape[0], n_items = p_start.shape[0]
    cdef const uint8_t* b = &body[0] if n else <const uint8_t*> b""
    if p_count.shape[0] != n_items:
        raise ValueError("p_start and p_count must have the same length")
    with nogil:
        hj_fill_symbols(b, n, n_items, &p_start[0] if n_items else NULL,
                        &p_count[0] if n_items else NULL, 1, n_symbols,
                        <int64_t*> cnp.PyArray_DATA(values), &r)
    return values, (None if r.code == HJ_F_OK else _error(&r))


def fill_frames(const uint8_t[::1] body, const int64_t[::1] p_start,
                const int64_t[::1] p_count, int64_t n_features, bint bare, int64_t total):
    """Frames of ``n_features`` numbers (or bare numbers when ``bare``), row after row.

    ``total`` is the payloads' leaves (numbers at any depth), the most values that can be
    written. Returns (values float64 (total,), error); a valid body fills exactly
    ``p_count.sum() * n_features`` values. Errors: ``F_NOT_FRAME`` (neither a list nor,
    when ``bare``, a number), ``F_FRAME_LEN`` (a list of ``count`` values),
    ``F_IN_FRAME`` (a non-number inside a frame), ``F_RANGE`` (beyond float64).
    """
    cdef cnp.ndarray values = np.empty(total, dtype=np.float64)
    cdef hj_fill r
    cdef int64_t n = body.shape[0], n_items = p_start.shape[0]
    cdef const uint8_t* b = &body[0] if n else <const uint8_t*> b""
    if p_count.shape[0] != n_items:
        raise ValueError("p_start and p_count must have the same length")
    with nogil:
        hj_fill_frames(b, n, n_items, &p_start[0] if n_items else NULL,
                       &p_count[0] if n_items else NULL, 1, n_features, bare,
                       <double*> cnp.PyArray_DATA(values), &r)
    return values, (None if r.code == HJ_F_OK else _error(&r))


def fill_numbers(const uint8_t[::1] body, int64_t start, int64_t end, int64_t count, bint integer):
    """The ``count`` scalars of the value at [start, end) (nested lists flattened in
    row-major order) as int64 (``integer``) or float64. Returns (values, error); the
    error's ``position`` is the index of the bad scalar."""
    cdef cnp.ndarray values = np.empty(count, dtype=np.int64 if integer else np.float64)
    cdef hj_fill r
    cdef int64_t n = body.shape[0]
    cdef const uint8_t* b = &body[0] if n else <const uint8_t*> b""
    if not 0 <= start <= end <= n:
        raise ValueError("the span must lie inside the body")
    with nogil:
        hj_fill_numbers(b, start, end, count, integer, cnp.PyArray_DATA(values), &r)
    return values, (None if r.code == HJ_F_OK else _error(&r))
