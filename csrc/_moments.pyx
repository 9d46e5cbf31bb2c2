# Posterior-weighted scatter of frames around per-state means (the Gaussian M-step).
#
# Design note
# -----------
#   scatter[j, d] = sum_t w[t, j] * (x[t, d] - mu[j, d])^2
# computed from the differences themselves, never as sum w x^2 - 2 mu sum w x + mu^2 sum w
# (which cancels catastrophically when the data sit far from the origin relative to
# their spread). One pass over the frames; the state loop is innermost over contiguous
# (D, N) means, so the compiler vectorises it. Sums are float64 for float32 frames too.

import numpy as np

cimport numpy as cnp
from _common cimport f64_data

cnp.import_array()


ctypedef fused frame_t:
    float
    double


cdef void scatter_loop(const frame_t* x, const double* w, const double* mu_t,
                       Py_ssize_t T, Py_ssize_t D, Py_ssize_t N, double* out) noexcept nogil:
    cdef Py_ssize_t t, d, j
    cdef double xd, diff
    cdef const double* wt
    cdef const double* m
    cdef double* o
    for t in range(T):
        wt = w + t * N
        for d in range(D):
            xd = x[t * D + d]
            m = mu_t + d * N
            o = out + d * N
            for j in range(N):
                diff = xd - m[j]
                o[j] += wt[j] * diff * diff


def weighted_scatter(X, weights, means):
    """sum_t weights[t, j] * (X[t] - means[j])**2 per state and feature.

    Parameters
    ----------
    X : ndarray of shape (T, D), float64 or float32, C-contiguous
    weights : ndarray of shape (T, N), float64, C-contiguous
    means : ndarray of shape (N, D)

    Returns
    -------
    ndarray of shape (N, D), float64
    """
    cdef cnp.ndarray x = <cnp.ndarray?> X
    if (cnp.PyArray_NDIM(x) != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(x)
            or not cnp.PyArray_ISBEHAVED_RO(x)):
        raise TypeError("internal: X must be a C-contiguous aligned (T, D) array")
    cdef Py_ssize_t T = cnp.PyArray_DIM(x, 0), D = cnp.PyArray_DIM(x, 1)
    cdef Py_ssize_t N = np.shape(means)[0]
    mu_t = np.ascontiguousarray(np.asarray(means, dtype=np.float64).T)
    cdef const double* w = f64_data(weights, T * N, "weights")
    cdef const double* m = f64_data(mu_t, D * N, "means")
    out = np.zeros((D, N))
    cdef double* o = <double*> cnp.PyArray_DATA(out)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT:
        with nogil:
            scatter_loop(<const float*> cnp.PyArray_DATA(x), w, m, T, D, N, o)
    elif cnp.PyArray_TYPE(x) == cnp.NPY_DOUBLE:
        with nogil:
            scatter_loop(<const double*> cnp.PyArray_DATA(x), w, m, T, D, N, o)
    else:
        raise TypeError("internal: X must be float64 or float32")
    return out.T.copy()
