# Sampling a Markov chain and categorical draws from cumulative tables.
#
# Design note
# -----------
# The Python layer draws all uniforms up front from the user's random generator, so the
# stream is reproducible and this kernel is a pure function. A draw from a row with
# cumulative sums cdf picks the first k with cdf[k] > u * cdf[-1]: scaling u by the row's
# total means rounding in the cumulative sum can never select past the end, and a
# zero-probability entry (cdf[k] == cdf[k - 1]) is never selected.

cimport numpy as cnp
from _common cimport intp_t, f64_data

cnp.import_array()


cdef inline intp_t draw(const double* cdf, Py_ssize_t n, double u) noexcept nogil:
    cdef double target = u * cdf[n - 1]
    cdef Py_ssize_t k
    for k in range(n):
        if cdf[k] > target:
            return k
    return n - 1  # unreachable for u < 1


def sample_path(start_cdf, trans_cdf, uniforms, Py_ssize_t first_state=-1):
    """State path of length len(uniforms).

    Parameters
    ----------
    start_cdf : ndarray of shape (N,), cumulative start probabilities
    trans_cdf : ndarray of shape (N, N), cumulative transition rows
    uniforms : ndarray of shape (T,), values in [0, 1)
    first_state : int
        When >= 0, the first state of the path (hmmlearn's ``currstate``); otherwise the
        first state is drawn from start_cdf.

    Returns
    -------
    ndarray of shape (T,), intp
    """
    cdef Py_ssize_t n = len(start_cdf), t_len = len(uniforms), t
    cdef const double* s_cdf = f64_data(start_cdf, n, "start_cdf")
    cdef const double* a_cdf = f64_data(trans_cdf, n * n, "trans_cdf")
    cdef const double* u = f64_data(uniforms, t_len, "uniforms")
    if first_state >= n:
        raise ValueError("internal: first_state out of range")
    cdef cnp.npy_intp dims[1]
    dims[0] = t_len
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INTP, 0)
    cdef intp_t* states = <intp_t*> cnp.PyArray_DATA(out)
    cdef intp_t prev
    if t_len == 0:
        return out
    with nogil:
        prev = first_state if first_state >= 0 else draw(s_cdf, n, u[0])
        states[0] = prev
        for t in range(1, t_len):
            prev = draw(a_cdf + prev * n, n, u[t])
            states[t] = prev
    return out


def sample_rows(cdf_table, rows, uniforms):
    """One draw per entry: out[t] ~ row rows[t] of a cumulative table (K, M).

    ``rows`` (intp, values in [0, K)) and ``uniforms`` have the same length.
    """
    cdef cnp.ndarray table = <cnp.ndarray?> cdf_table
    cdef Py_ssize_t k_rows = cnp.PyArray_DIM(table, 0), m = cnp.PyArray_DIM(table, 1)
    cdef Py_ssize_t t_len = len(uniforms), t
    cdef const double* cdf = f64_data(table, k_rows * m, "cdf_table")
    cdef const double* u = f64_data(uniforms, t_len, "uniforms")
    cdef cnp.ndarray r = <cnp.ndarray?> rows
    if cnp.PyArray_TYPE(r) != cnp.NPY_INTP or cnp.PyArray_SIZE(r) != t_len:
        raise TypeError("internal: rows must be intp with one entry per uniform")
    r = cnp.PyArray_GETCONTIGUOUS(r)
    cdef const intp_t* idx = <const intp_t*> cnp.PyArray_DATA(r)
    for t in range(t_len):
        if <size_t> idx[t] >= <size_t> k_rows:
            raise ValueError("internal: row index out of range")
    cdef cnp.npy_intp dims[1]
    dims[0] = t_len
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INTP, 0)
    cdef intp_t* draws = <intp_t*> cnp.PyArray_DATA(out)
    with nogil:
        for t in range(t_len):
            draws[t] = draw(cdf + idx[t] * m, m, u[t])
    return out
