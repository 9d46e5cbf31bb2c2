# Posterior-weighted scatter of frames around per-state means (the Gaussian M-step).
#
# Design note
# -----------
#   scatter[j, d] = sum_t w[t, j] * (x[t, d] - mu[j, d])^2
# computed from the differences themselves (hmm_dens.h), never as
# sum w x^2 - 2 mu sum w x + mu^2 sum w, which cancels catastrophically when the data sit
# far from the origin relative to their spread. Long inputs are cut into blocks of
# BLOCK frames fixed by the data alone; threads take whole blocks, each block sums into
# its own buffer, and the buffers are added in block order, so the result is the same
# bit for bit whatever the thread count. Sums are float64 for float32 frames too.

from libc.stdlib cimport calloc, free

import numpy as np

cimport numpy as cnp
from cython.parallel cimport prange
from _common cimport f64_data

cnp.import_array()

cdef extern from "hmm_dens.h" nogil:
    void hmm_scatter_f64(const double* x, Py_ssize_t T, Py_ssize_t D, Py_ssize_t N,
                         const double* w, const double* mu, double* out)
    void hmm_scatter_f32(const float* x, Py_ssize_t T, Py_ssize_t D, Py_ssize_t N,
                         const double* w, const double* mu, double* out)

cdef enum:
    BLOCK = 8192  # frames per block (and per task when threads share the work)


def weighted_scatter(X, weights, means, int n_threads=1):
    """sum_t weights[t, j] * (X[t] - means[j])**2 per state and feature.

    Parameters
    ----------
    X : ndarray of shape (T, D), float64 or float32, C-contiguous
    weights : ndarray of shape (T, N), float64, C-contiguous
    means : ndarray of shape (N, D)
    n_threads : int

    Returns
    -------
    ndarray of shape (N, D), float64
    """
    cdef cnp.ndarray x = <cnp.ndarray?> X
    if (cnp.PyArray_NDIM(x) != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(x)
            or not cnp.PyArray_ISBEHAVED_RO(x)):
        raise TypeError("internal: X must be a C-contiguous aligned (T, D) array")
    cdef int typ = cnp.PyArray_TYPE(x)
    if typ != cnp.NPY_FLOAT and typ != cnp.NPY_DOUBLE:
        raise TypeError("internal: X must be float64 or float32")
    cdef Py_ssize_t T = cnp.PyArray_DIM(x, 0), D = cnp.PyArray_DIM(x, 1)
    cdef Py_ssize_t N = np.shape(means)[0], nb = max(1, (T + BLOCK - 1) // BLOCK), b, k
    mu_t = np.ascontiguousarray(np.asarray(means, dtype=np.float64).T)
    cdef const double* w = f64_data(weights, T * N, "weights")
    cdef const double* m = f64_data(mu_t, D * N, "means")
    cdef const void* data = cnp.PyArray_DATA(x)
    cdef double* acc = <double*> calloc(nb * D * N, sizeof(double))
    if acc == NULL:
        raise MemoryError()
    cdef int team = 1 if nb == 1 else max(1, min(n_threads, nb))
    out = np.zeros((D, N))
    cdef double* o = <double*> cnp.PyArray_DATA(out)
    cdef Py_ssize_t t0, t1
    try:
        with nogil:
            for b in prange(nb, num_threads=team, schedule="dynamic"):
                t0 = b * BLOCK
                t1 = min(T, t0 + BLOCK)
                if typ == cnp.NPY_FLOAT:
                    hmm_scatter_f32(<const float*> data + t0 * D, t1 - t0, D, N, w + t0 * N,
                                    m, acc + b * D * N)
                else:
                    hmm_scatter_f64(<const double*> data + t0 * D, t1 - t0, D, N, w + t0 * N,
                                    m, acc + b * D * N)
            for b in range(nb):
                for k in range(D * N):
                    o[k] += acc[b * D * N + k]
    finally:
        free(acc)
    return out.T.copy()
