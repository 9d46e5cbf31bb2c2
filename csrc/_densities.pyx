# Emission log-densities of the continuous and count families (Gaussian with diagonal,
# spherical, full or tied covariances; Gaussian mixtures through their components;
# Poisson counts): the (T, N) matrix the trellis kernels read.
#
# Design note
# -----------
# The arithmetic is in hmm_dens.h (direct differences, never the GEMM expansion of
# |x - mu|^2, so frames far from the origin keep full precision; vectorised across states
# or across frames; AVX2 picked at run time). This module checks what a wrapper must
# never trust (dtypes, contiguity, sizes: the family classes validate values when
# parameters are set and observations before they arrive here), releases the GIL, and
# splits long inputs into blocks of frames, run across a thread team of hmm_team.h when
# the work is worth one (each frame's arithmetic does not depend on the blocks).
#
# X is float64 or float32 (C-contiguous, aligned), used without a copy; the output is
# float64.

from libc.stdlib cimport malloc, calloc, free
from libc.math cimport lgamma, log, exp, INFINITY

import numpy as np

cimport numpy as cnp
from _common cimport f64_data, float_frames, hmm_force_avx2, hmm_team_run, hmm_team_size

cnp.import_array()

cdef extern from "hmm_dens.h" nogil:
    enum:
        HMM_DENS_BLOCK
    enum:
        HMM_DENS_SCALED_MAX_STATES
    void hmm_diag_f64(const double* x, Py_ssize_t T, Py_ssize_t D, Py_ssize_t N,
                      const double* mu, const double* prec, const double* norm, double* out,
                      double* scaled, double* scale)
    void hmm_diag_f32(const float* x, Py_ssize_t T, Py_ssize_t D, Py_ssize_t N,
                      const double* mu, const double* prec, const double* norm, double* out,
                      double* scaled, double* scale)
    void hmm_chol_f64(const double* x, Py_ssize_t T, Py_ssize_t D, Py_ssize_t N,
                      const double* mu, const double* chol, const double* inv_diag,
                      const double* norm, double* z, double* s, double* out)
    void hmm_chol_f32(const float* x, Py_ssize_t T, Py_ssize_t D, Py_ssize_t N,
                      const double* mu, const double* chol, const double* inv_diag,
                      const double* norm, double* z, double* s, double* out)
    void hmm_poisson_f64(const double* x, Py_ssize_t T, Py_ssize_t D, Py_ssize_t N,
                         const double* log_lam, const double* lamsum, const double* lgam,
                         double* out)
    void hmm_poisson_f32(const float* x, Py_ssize_t T, Py_ssize_t D, Py_ssize_t N,
                         const double* log_lam, const double* lamsum, const double* lgam,
                         double* out)

cdef enum:
    THREAD_BLOCK = 2048   # frames per task of a thread team
    LOG_FACTORIALS = 1024  # log(x!) for counts below this come from a table

cdef double log_factorial[LOG_FACTORIALS]
cdef int _k
log_factorial[0] = 0.0
for _k in range(1, LOG_FACTORIALS):
    log_factorial[_k] = log_factorial[_k - 1] + log(<double> _k)


cdef inline double log_gamma1(double x) noexcept nogil:
    """log Gamma(x + 1) = log(x!) for a whole number x >= 0 (a table below 1024)."""
    if x < LOG_FACTORIALS:
        return log_factorial[<int> x]
    return lgamma(x + 1.0)


cdef enum:
    KIND_DIAG = 0
    KIND_CHOL = 1
    KIND_POISSON = 2


cdef struct DensRun:
    # one density call, cut into tasks of THREAD_BLOCK frames
    int kind
    bint single               # X is float32
    const void* x             # (T, D)
    Py_ssize_t T, D, N
    const double* p0          # mu (diag: (D, n_pad); chol: (N, D)) or log_lam (D, N)
    const double* p1          # prec (D, n_pad), chol (N, D, D) or lamsum (N,)
    const double* p2          # norm (n_pad,), inv_diag (N, D) or lgam (T,)
    const double* p3          # norm (N,) (chol)
    double* out               # (T, N)
    double* scaled            # (T, N) exp(row - max(row)), or NULL (diag, N <= 8 only)
    double* scale             # (T,) max(row), with scaled
    double** work             # per worker: D * HMM_DENS_BLOCK + 8 * D doubles (chol)
    bint failed


cdef object open_run(DensRun* r, int kind, object X, Py_ssize_t D, Py_ssize_t N):
    """Check X (``float_frames``: (T, D), float64 or float32), fill the run's kind, input
    and sizes, and return its (T, N) float64 output (``r.out``), no scaled form yet."""
    float_frames(X, &r.T, &D, &r.x, &r.single)
    r.kind = kind
    r.D = D
    r.N = N
    out = np.empty((r.T, N))
    r.out = <double*> cnp.PyArray_DATA(out)
    r.scaled = NULL
    r.scale = NULL
    return out


cdef void dens_task(void* ctx, Py_ssize_t b, int worker) noexcept nogil:
    """Log-densities of frames b * THREAD_BLOCK .. (b + 1) * THREAD_BLOCK - 1."""
    cdef DensRun* r = <DensRun*> ctx
    cdef Py_ssize_t t0 = b * THREAD_BLOCK, D = r.D, N = r.N
    cdef Py_ssize_t nt = min(r.T, t0 + THREAD_BLOCK) - t0
    cdef double* work = r.work[worker]
    cdef const float* xf = <const float*> r.x + t0 * D
    cdef const double* xd = <const double*> r.x + t0 * D
    if r.kind == KIND_POISSON:
        if r.single:
            hmm_poisson_f32(xf, nt, D, N, r.p0, r.p1, r.p2 + t0, r.out + t0 * N)
        else:
            hmm_poisson_f64(xd, nt, D, N, r.p0, r.p1, r.p2 + t0, r.out + t0 * N)
        return
    cdef double* scaled = r.scaled + t0 * N if r.scaled != NULL else NULL
    cdef double* scale = r.scale + t0 if r.scaled != NULL else NULL
    if r.kind == KIND_DIAG:
        if r.single:
            hmm_diag_f32(xf, nt, D, N, r.p0, r.p1, r.p2, r.out + t0 * N, scaled, scale)
        else:
            hmm_diag_f64(xd, nt, D, N, r.p0, r.p1, r.p2, r.out + t0 * N, scaled, scale)
        return
    if work == NULL:
        work = <double*> malloc((D * HMM_DENS_BLOCK + 8 * D) * sizeof(double))
        r.work[worker] = work
        if work == NULL:
            r.failed = True
            return
    if r.single:
        hmm_chol_f32(xf, nt, D, N, r.p0, r.p1, r.p2, r.p3, work, work + D * HMM_DENS_BLOCK,
                     r.out + t0 * N)
    else:
        hmm_chol_f64(xd, nt, D, N, r.p0, r.p1, r.p2, r.p3, work, work + D * HMM_DENS_BLOCK,
                     r.out + t0 * N)


cdef int run_blocks(DensRun* r, int n_threads, double work_ns) except -1:
    """Run every block of r (a team when hmm_team_size says it is worth one)."""
    cdef Py_ssize_t nb = (r.T + THREAD_BLOCK - 1) // THREAD_BLOCK, w
    cdef int team = hmm_team_size(n_threads, nb, work_ns)
    r.failed = False
    r.work = <double**> calloc(team, sizeof(double*))
    if r.work == NULL:
        raise MemoryError()
    with nogil:
        hmm_team_run(team, nb, dens_task, r)
        for w in range(team):
            free(r.work[w])
    free(r.work)
    if r.failed:
        raise MemoryError()
    return 0


cdef enum:
    # estimated ns per multiply-add of a density kernel (team break-even)
    DENS_PS_PER_TERM = 300


def gaussian_diag(X, means_t, precisions_t, log_norm, int n_threads=1, bint scaled=False):
    """Diagonal-covariance Gaussian log-densities.

    Parameters
    ----------
    X : ndarray of shape (T, D), float64 or float32, C-contiguous
    means_t, precisions_t : ndarray of shape (D, N), float64
        Means and 1 / variances, feature-major.
    log_norm : ndarray of shape (N,), float64
        -0.5 * (D log(2 pi) + sum_d log var[j, d]).
    n_threads : int
        Threads over blocks of frames (long inputs only).
    scaled : bool
        Also return the scaled form the scaling kernels read, made while each row is
        still in registers (the exp fused into the density kernel; N <= 8 only).

    Returns
    -------
    ndarray of shape (T, N), float64
        Without ``scaled``.
    (log_table, scaled_table, row_log_scale) : (T, N), (T, N), (T,)
        With ``scaled``: exactly ``(log_table, *_emissions.scaled_rows(log_table))``; the
        last two are None when N > 8 (the caller makes them).
    """
    cdef Py_ssize_t D = cnp.PyArray_DIM(<cnp.ndarray?> means_t, 0)
    cdef Py_ssize_t N = cnp.PyArray_DIM(<cnp.ndarray?> means_t, 1)
    cdef DensRun r
    out = open_run(&r, KIND_DIAG, X, D, N)
    cdef Py_ssize_t T = r.T
    cdef const double* mu = f64_data(means_t, D * N, "means_t")
    cdef const double* prec = f64_data(precisions_t, D * N, "precisions_t")
    cdef const double* norm = f64_data(log_norm, N, "log_norm")
    cdef Py_ssize_t n_pad = (N + 3) // 4 * 4, d, j
    cdef double* padded = <double*> calloc((2 * D + 1) * n_pad, sizeof(double))
    if padded == NULL:
        raise MemoryError()
    for d in range(D):  # (D, n_pad) rows, pad states 0 (their sums are never stored)
        for j in range(N):
            padded[d * n_pad + j] = mu[d * N + j]
            padded[(D + d) * n_pad + j] = prec[d * N + j]
    for j in range(N):
        padded[2 * D * n_pad + j] = norm[j]
    r.p0 = padded
    r.p1 = padded + D * n_pad
    r.p2 = padded + 2 * D * n_pad
    fused = scaled and N <= HMM_DENS_SCALED_MAX_STATES
    if fused:
        scaled_table = np.empty((T, N))
        row_log_scale = np.empty(T)
        r.scaled = <double*> cnp.PyArray_DATA(scaled_table)
        r.scale = <double*> cnp.PyArray_DATA(row_log_scale)
    try:
        run_blocks(&r, n_threads, 1e-3 * DENS_PS_PER_TERM * T * N * D)
    finally:
        free(padded)
    if fused:
        return out, scaled_table, row_log_scale
    return (out, None, None) if scaled else out


def gaussian_cholesky(X, means, cholesky, inv_diagonal, log_norm, int n_threads=1):
    """Full-covariance Gaussian log-densities through lower Cholesky factors.

    Parameters
    ----------
    X : ndarray of shape (T, D), float64 or float32, C-contiguous
    means : ndarray of shape (N, D), float64
    cholesky : ndarray of shape (N, D, D), float64
        Lower-triangular L_j with L_j L_j^T = covariance of state j.
    inv_diagonal : ndarray of shape (N, D), float64
        1 / diag(L_j).
    log_norm : ndarray of shape (N,), float64
        -0.5 * D log(2 pi) - sum_d log L_j[d, d].
    n_threads : int

    Returns
    -------
    ndarray of shape (T, N), float64
    """
    cdef Py_ssize_t N = cnp.PyArray_DIM(<cnp.ndarray?> means, 0)
    cdef Py_ssize_t D = cnp.PyArray_DIM(<cnp.ndarray?> means, 1)
    cdef DensRun r
    out = open_run(&r, KIND_CHOL, X, D, N)
    r.p0 = f64_data(means, N * D, "means")
    r.p1 = f64_data(cholesky, N * D * D, "cholesky")
    r.p2 = f64_data(inv_diagonal, N * D, "inv_diagonal")
    r.p3 = f64_data(log_norm, N, "log_norm")
    run_blocks(&r, n_threads, 1e-3 * DENS_PS_PER_TERM * r.T * N * D * (D + 3) / 2)
    return out


def poisson(X, log_lambdas_t, lambda_sums, int n_threads=1):
    """Poisson log-probabilities of count vectors (features independent).

    Parameters
    ----------
    X : ndarray of shape (T, D), float64 or float32, C-contiguous, non-negative integers
    log_lambdas_t : ndarray of shape (D, N), float64
        log of the rates, feature-major (-inf for a zero rate).
    lambda_sums : ndarray of shape (N,), float64
        sum_d lambda[j, d].

    Returns
    -------
    ndarray of shape (T, N), float64
        sum_d (x_d log lambda_jd - lambda_jd - log x_d!), with 0 log 0 = 0.
    """
    cdef Py_ssize_t D = cnp.PyArray_DIM(<cnp.ndarray?> log_lambdas_t, 0)
    cdef Py_ssize_t N = cnp.PyArray_DIM(<cnp.ndarray?> log_lambdas_t, 1)
    cdef Py_ssize_t t, d
    cdef DensRun r
    out = open_run(&r, KIND_POISSON, X, D, N)
    cdef Py_ssize_t T = r.T
    cdef const void* x = r.x
    cdef bint single = r.single
    r.p0 = f64_data(log_lambdas_t, D * N, "log_lambdas_t")
    r.p1 = f64_data(lambda_sums, N, "lambda_sums")
    lgam = np.empty(T)
    cdef double* lg = <double*> cnp.PyArray_DATA(lgam)
    cdef double acc
    with nogil:
        for t in range(T):
            acc = 0.0
            for d in range(D):
                acc = acc + log_gamma1((<const float*> x)[t * D + d] if single
                                       else (<const double*> x)[t * D + d])
            lg[t] = acc
    r.p2 = lg
    run_blocks(&r, n_threads, 1e-3 * DENS_PS_PER_TERM * T * N * D)
    return out


def mixture_reduce(comp, Py_ssize_t k, bint want_resp=False):
    """Per-state logsumexp of weighted component log-densities (Gaussian mixtures).

    Parameters
    ----------
    comp : ndarray of shape (T, N * k), float64, C-contiguous
        log w_jk + log N(x_t | component jk), state-major.
    k : int
        Components per state.
    want_resp : bool
        Also return the responsibilities P(component | state, x_t).

    Returns
    -------
    log_lik : ndarray of shape (T, N)
    resp : ndarray of shape (T, N * k), or None
        0 where a state cannot emit the frame (all its components -inf); never NaN.
    """
    cdef cnp.ndarray c = <cnp.ndarray?> comp
    if (cnp.PyArray_NDIM(c) != 2 or cnp.PyArray_TYPE(c) != cnp.NPY_DOUBLE
            or not cnp.PyArray_IS_C_CONTIGUOUS(c) or cnp.PyArray_DIM(c, 1) % k != 0):
        raise TypeError("internal: comp must be a C-contiguous float64 (T, N * k) array")
    cdef Py_ssize_t T = cnp.PyArray_DIM(c, 0), NK = cnp.PyArray_DIM(c, 1), N = NK // k
    cdef Py_ssize_t t, j, i
    cdef const double* src = <const double*> cnp.PyArray_DATA(c)
    out = np.empty((T, N))
    resp = np.empty((T, NK)) if want_resp else None
    cdef double* o = <double*> cnp.PyArray_DATA(out)
    cdef double* r = <double*> cnp.PyArray_DATA(resp) if want_resp else NULL
    cdef const double* row
    cdef double top, total, e
    with nogil:
        for t in range(T):
            for j in range(N):
                row = src + t * NK + j * k
                top = row[0]
                for i in range(1, k):
                    if row[i] > top:
                        top = row[i]
                if top == -INFINITY:
                    o[t * N + j] = -INFINITY
                    if r != NULL:
                        for i in range(k):
                            r[t * NK + j * k + i] = 0.0
                    continue
                total = 0.0
                for i in range(k):
                    e = exp(row[i] - top)
                    total = total + e
                    if r != NULL:
                        r[t * NK + j * k + i] = e
                o[t * N + j] = top + log(total)
                if r != NULL:
                    for i in range(k):
                        r[t * NK + j * k + i] = r[t * NK + j * k + i] / total
    return out, resp


def _force_simd(int flag):
    """Testing hook: choose this module's vector path (1: AVX2 if the CPU has it,
    0: SSE2, -1: probe the CPU again). Returns 1 when AVX2 is now in use."""
    return hmm_force_avx2(flag)
