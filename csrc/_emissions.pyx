# Emission tables: the forms the trellis kernels read, and the fast observation check.
#
# Design note
# -----------
# A log-emission table (K, N) (one row per symbol, or one row per frame for a dense
# (T, N) matrix) is turned once into the scaled form used by the scaling kernels: each
# row minus its maximum, exponentiated (by the vectorised exp of hmm_exp.h), and that
# maximum kept as the row's log scale.
# A row that is all -inf (a symbol no state emits) becomes zeros with scale -inf; the
# scaling kernels then fall back to the log kernel, which reports the impossibility.
#
# ``canonical_symbols`` is the hot path's observation check: an intp, C-contiguous,
# aligned, native-byte-order array of shape (T,) or (T, 1) with T >= 1 is returned as is
# (no copy, no view), anything else
# returns None and the Python layer converts or explains. Symbol ranges are checked by
# the kernels while they read them.

from libc.math cimport INFINITY
from libc.string cimport memcpy

import numpy as np

cimport numpy as cnp
from _common cimport intp_t, max_of, f64_data, symbol_array, hmm_team_run, hmm_team_size

cdef extern from "hmm_exp.h" nogil:
    void hmm_exp_nonpos(const double* values, Py_ssize_t n, double* out)

cnp.import_array()


cdef enum:
    ROW_BLOCK = 4096  # rows per task of a thread team
    ROW_NS = 2        # estimated ns per entry (max, shift, exp): team break-even


cdef struct RowsRun:
    const double* src
    Py_ssize_t n_rows, n
    double* dst
    double* sc


cdef void rows_task(void* ctx, Py_ssize_t b, int worker) noexcept nogil:
    cdef RowsRun* r = <RowsRun*> ctx
    cdef Py_ssize_t r0 = b * ROW_BLOCK, r1 = min(r.n_rows, r0 + ROW_BLOCK)
    shift_and_exp(r.src + r0 * r.n, r1 - r0, r.n, r.dst + r0 * r.n, r.sc + r0)


cdef void shift_and_exp(const double* src, Py_ssize_t n_rows, Py_ssize_t n, double* dst,
                        double* sc) noexcept nogil:
    cdef Py_ssize_t k, j
    cdef double m
    for k in range(n_rows):
        m = max_of(src + k * n, n)
        sc[k] = m
        if m == -INFINITY:
            for j in range(n):
                dst[k * n + j] = -INFINITY  # exp gives 0: a symbol no state emits
        else:
            for j in range(n):
                dst[k * n + j] = src[k * n + j] - m
    hmm_exp_nonpos(dst, n_rows * n, dst)  # vectorised (hmm_exp.h)


def scaled_rows(log_table, int n_threads=1):
    """Max-shifted exponentiated rows of a log table.

    Parameters
    ----------
    log_table : ndarray of shape (K, N), float64, C-contiguous
    n_threads : int
        Threads over blocks of rows (long tables only).

    Returns
    -------
    scaled_table : ndarray of shape (K, N)
        exp(log_table[k] - max(log_table[k])); zeros for an all -inf row.
    row_log_scale : ndarray of shape (K,)
        max(log_table[k]).
    """
    cdef cnp.ndarray table = <cnp.ndarray?> log_table
    if cnp.PyArray_NDIM(table) != 2:
        raise TypeError("internal: log_table must be 2-D")
    cdef Py_ssize_t n_rows = cnp.PyArray_DIM(table, 0), n = cnp.PyArray_DIM(table, 1)
    cdef const double* src = f64_data(table, n_rows * n, "log_table")
    cdef cnp.ndarray scaled = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(table), cnp.NPY_DOUBLE, 0)
    cdef cnp.ndarray scale = cnp.PyArray_EMPTY(1, cnp.PyArray_DIMS(table), cnp.NPY_DOUBLE, 0)
    cdef RowsRun r
    r.src = src
    r.n_rows = n_rows
    r.n = n
    r.dst = <double*> cnp.PyArray_DATA(scaled)
    r.sc = <double*> cnp.PyArray_DATA(scale)
    cdef Py_ssize_t nb = (n_rows + ROW_BLOCK - 1) // ROW_BLOCK
    cdef int team = hmm_team_size(n_threads, nb, <double> ROW_NS * n_rows * n)
    with nogil:
        if team <= 1:
            shift_and_exp(src, n_rows, n, r.dst, r.sc)
        else:
            hmm_team_run(team, nb, rows_task, &r)
    return scaled, scale


def canonical_symbols(X):
    """X itself when it is already a kernel-ready symbol array, else None."""
    return X if symbol_array(X) else None


def gather_symbols(sequences, convert):
    """Concatenate many symbol sequences: (rows (T,) intp, offsets (n_seq + 1,) intp).

    A sequence that is already kernel-ready (see canonical_symbols) is copied with one
    memcpy; any other goes through ``convert(sequence, index)``, the Python layer's
    validation, which returns a kernel-ready array or raises the library error naming
    the sequence. The copy happens once, after every sequence has been checked.
    """
    cdef Py_ssize_t n_seq = len(sequences), s, total = 0, n
    cdef list ready = [None] * n_seq
    offsets = np.empty(n_seq + 1, dtype=np.intp)
    cdef intp_t* off = <intp_t*> cnp.PyArray_DATA(offsets)
    off[0] = 0
    for s in range(n_seq):
        item = sequences[s]
        arr = canonical_symbols(item)
        if arr is None:
            arr = convert(item, s)
        n = cnp.PyArray_SIZE(<cnp.ndarray> arr)
        ready[s] = arr
        total += n
        off[s + 1] = total
    rows = np.empty(total, dtype=np.intp)
    cdef char* dst = <char*> cnp.PyArray_DATA(rows)
    for s in range(n_seq):
        n = off[s + 1] - off[s]
        memcpy(dst + off[s] * sizeof(intp_t), cnp.PyArray_DATA(<cnp.ndarray> ready[s]),
               n * sizeof(intp_t))
    return rows, offsets


def split_by_offsets(cnp.ndarray values, offsets):
    """[values[offsets[s]:offsets[s + 1]] for each s] as views, built in C (thousands of
    result arrays per call: numpy.split costs ~1 us a piece)."""
    cdef const intp_t* off = <const intp_t*> cnp.PyArray_DATA(<cnp.ndarray?> offsets)
    cdef Py_ssize_t n_seq = cnp.PyArray_SIZE(<cnp.ndarray> offsets) - 1, s
    if (cnp.PyArray_NDIM(values) != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(values)
            or cnp.PyArray_TYPE(<cnp.ndarray> offsets) != cnp.NPY_INTP
            or (n_seq >= 0 and off[n_seq] > cnp.PyArray_DIM(values, 0))):
        raise TypeError("internal: values must be a 1-D C-contiguous array within offsets")
    cdef list out = [None] * max(n_seq, 0)
    cdef cnp.npy_intp dims[1]
    cdef char* base = <char*> cnp.PyArray_DATA(values)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(values)
    cdef int typenum = cnp.PyArray_TYPE(values)
    cdef cnp.ndarray view
    for s in range(n_seq):
        dims[0] = off[s + 1] - off[s]
        view = cnp.PyArray_New(cnp.ndarray, 1, dims, typenum, NULL, base + off[s] * item, 0,
                               cnp.NPY_ARRAY_CARRAY, None)
        cnp.Py_INCREF(values)
        cnp.PyArray_SetBaseObject(view, values)
        out[s] = view
    return out
