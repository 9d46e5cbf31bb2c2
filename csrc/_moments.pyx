# Posterior-weighted scatter of frames around per-state means (the Gaussian M-step).
#
# Design note
# -----------
#   scatter[j, d] = sum_t w[t, j] * (x[t, d] - mu[j, d])^2
# computed from the differences themselves (hmm_dens.h), never as
# sum w x^2 - 2 mu sum w x + mu^2 sum w, which cancels catastrophically when the data sit
# far from the origin relative to their spread.
#
# ``weighted_moments`` reads X and the posteriors once for all three M-step sums (posterior
# mass, first and second moments about reference means: the model's current means, near
# the data), instead of a reduction, a GEMM and this scatter, three passes. The M-step's
# new means differ from the reference by delta, and the scatter about them is
#   s2 - 2 delta s1 + delta^2 s0     (exact algebra; the terms stay small when the
# reference is near the new means); the caller (_gaussian.py) recomputes the scatter
# directly when those terms are large against the result (digits would be lost).
#
# Long inputs are cut into blocks of BLOCK frames fixed by the data alone; threads
# (hmm_team.h) take whole blocks, each block sums into its own buffer, and the buffers
# are added in block order, so the result is the same bit for bit whatever the thread
# count. Sums are float64 for float32 frames too.

from libc.stdlib cimport calloc, free

import numpy as np

cimport numpy as cnp
from _common cimport f64_data, float_frames, hmm_team_run, hmm_team_size

cnp.import_array()

cdef extern from "hmm_dens.h" nogil:
    void hmm_moments_f64(const double* x, Py_ssize_t T, Py_ssize_t D, Py_ssize_t N,
                         const double* w, const double* ref, double* s0, double* s1,
                         double* s2)
    void hmm_moments_f32(const float* x, Py_ssize_t T, Py_ssize_t D, Py_ssize_t N,
                         const double* w, const double* ref, double* s0, double* s1,
                         double* s2)
    void hmm_scatter_f64(const double* x, Py_ssize_t T, Py_ssize_t D, Py_ssize_t N,
                         const double* w, const double* mu, double* out)
    void hmm_scatter_f32(const float* x, Py_ssize_t T, Py_ssize_t D, Py_ssize_t N,
                         const double* w, const double* mu, double* out)

cdef enum:
    BLOCK = 8192  # frames per block (and per task of a thread team)
    SCATTER_PS_PER_TERM = 500  # estimated ps per (frame, state, feature): team break-even
    MOMENTS_PS_PER_TERM = 800


cdef struct ScatterRun:
    bint moments              # the three sums (hmm_moments) rather than the scatter
    bint single
    const void* x
    Py_ssize_t T, D, N
    const double* w
    const double* mu
    double* acc               # per block: (D, N) scatter, or (N + 2 D N) moments


cdef void scatter_task(void* ctx, Py_ssize_t b, int worker) noexcept nogil:
    cdef ScatterRun* r = <ScatterRun*> ctx
    cdef Py_ssize_t t0 = b * BLOCK, t1 = min(r.T, t0 + BLOCK), D = r.D, N = r.N
    cdef double* acc = r.acc + b * (N + 2 * D * N)
    if r.moments and r.single:
        hmm_moments_f32(<const float*> r.x + t0 * D, t1 - t0, D, N, r.w + t0 * N, r.mu,
                        acc, acc + N, acc + N + D * N)
    elif r.moments:
        hmm_moments_f64(<const double*> r.x + t0 * D, t1 - t0, D, N, r.w + t0 * N, r.mu,
                        acc, acc + N, acc + N + D * N)
    elif r.single:
        hmm_scatter_f32(<const float*> r.x + t0 * D, t1 - t0, D, N, r.w + t0 * N, r.mu,
                        r.acc + b * D * N)
    else:
        hmm_scatter_f64(<const double*> r.x + t0 * D, t1 - t0, D, N, r.w + t0 * N, r.mu,
                        r.acc + b * D * N)


cdef tuple run_sums(bint moments, object X, object weights, object means, str means_name,
                    double ps_per_term, int n_threads):
    """The sums of one call: check X (``float_frames``) and the weights, run every block
    of BLOCK frames into its own accumulator (a team of hmm_team.h when worth one), and
    add the accumulators in block order. ``means``: (N, D) reference means. Returns
    (sums, N, D): sums of shape (N + 2 D N,) (moments: s0, s1 and s2 feature-major) or
    (D N,) (the scatter, feature-major)."""
    cdef Py_ssize_t T, D = -1
    cdef ScatterRun r
    float_frames(X, &T, &D, &r.x, &r.single)
    cdef Py_ssize_t N = np.shape(means)[0], nb = max(1, (T + BLOCK - 1) // BLOCK), b, k
    cdef Py_ssize_t size = N + 2 * D * N if moments else D * N
    means_t = np.ascontiguousarray(np.asarray(means, dtype=np.float64).T)
    r.moments = moments
    r.T = T
    r.D = D
    r.N = N
    r.w = f64_data(weights, T * N, "weights")
    r.mu = f64_data(means_t, D * N, means_name)
    cdef int team = hmm_team_size(n_threads, nb, 1e-3 * ps_per_term * T * D * N)
    out = np.zeros(size)
    cdef double* o = <double*> cnp.PyArray_DATA(out)
    r.acc = <double*> calloc(nb * size, sizeof(double))
    if r.acc == NULL:
        raise MemoryError()
    try:
        with nogil:
            hmm_team_run(team, nb, scatter_task, &r)
            for b in range(nb):  # block order: the same sums for every team
                for k in range(size):
                    o[k] += r.acc[b * size + k]
    finally:
        free(r.acc)
    return out, N, D


def weighted_moments(X, weights, ref_means, int n_threads=1):
    """The Gaussian M-step's sums in one pass, around reference means.

    Parameters
    ----------
    X : ndarray of shape (T, D), float64 or float32, C-contiguous
    weights : ndarray of shape (T, N), float64, C-contiguous
    ref_means : ndarray of shape (N, D)
        Any means near the data (the model's current ones): differences are taken from
        them, so frames far from the origin keep their precision.
    n_threads : int

    Returns
    -------
    s0 : ndarray of shape (N,)
        sum_t weights[t, j]
    s1 : ndarray of shape (N, D)
        sum_t weights[t, j] * (X[t] - ref_means[j])
    s2 : ndarray of shape (N, D)
        sum_t weights[t, j] * (X[t] - ref_means[j])**2 (with ref_means = means, this is
        ``weighted_scatter`` bit for bit)
    """
    out, N, D = run_sums(True, X, weights, ref_means, "ref_means", MOMENTS_PS_PER_TERM,
                         n_threads)
    return (out[:N].copy(), out[N:N + D * N].reshape(D, N).T.copy(),
            out[N + D * N:].reshape(D, N).T.copy())


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
    out, N, D = run_sums(False, X, weights, means, "means", SCATTER_PS_PER_TERM, n_threads)
    return out.reshape(D, N).T.copy()
