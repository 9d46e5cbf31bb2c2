# State posteriors in log space: the forward-backward sweep of one sequence (header-only).
#
# Design note
# -----------
# One routine serves ``forward_backward(..., scaling=False)`` of _trellis.pyx (posteriors
# only) and the log E-step of _estep.pyx (posteriors and expected transitions), and the
# scaled kernels of both when their precision checks send a sequence back to log space.
# The log forward pass (_passes.pxd) writes log alpha_t into the posterior rows; going
# backwards, each row becomes
#   gamma_t(j) = exp(log alpha_t(j) + log beta_t(j) - ll)        (renormalised to sum 1)
# with log beta from ``log_backward_step``, and, when ``xi`` is wanted, the expected
# transitions are summed over the non-zero transitions only, one exp each, while row t
# still holds log alpha_t:
#   xi(i, j) += exp(log alpha_t(i) - ll + log A_ij + log b_{t+1}(j) + log beta_{t+1}(j)).
# Never a T x N x N array. Both callers get the same operations in the same order, so
# the posteriors are bit for bit the same with or without ``xi``.

from libc.string cimport memset
from libc.math cimport exp, INFINITY

from _common cimport (
    Chain, Frames, SeqStatus, status, stride, frame_row, STATUS_OK, STATUS_BAD_ROW,
)
from _passes cimport log_backward_step, log_forward_pass, normalise_row


cdef inline Py_ssize_t xi_size(const Chain* ch) noexcept nogil:
    """Doubles of one expected-transition table: (N, n_pad), or nnz for a sparse chain."""
    return ch.n_nonzero if ch.sparse else ch.n_states * ch.n_pad


cdef inline SeqStatus log_posteriors(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                     Py_ssize_t stop, double* work, double* gamma,
                                     double* xi, double* logprob_out) noexcept nogil:
    """Log-space forward-backward of one sequence (frames start..stop-1).

    work : 4 vectors (stride(N) apart).
    gamma : (T, N) receiving the posteriors (holds log alpha on the way).
    xi : (N, n_pad) receiving sum_t xi_t (pad columns 0); for a sparse chain (nnz,), in
        the order of its non-zero transitions (CSR); or NULL (posteriors only).
    """
    cdef Py_ssize_t n = ch.n_states, n_pad = ch.n_pad, t, i, j, k, r, sn = stride(ch.n_states)
    cdef double* beta = work
    cdef double* nb = work + sn
    cdef double* v = work + 2 * sn
    cdef double* q = work + 3 * sn
    cdef double* swap
    cdef double* g
    cdef double ll, a
    cdef Py_ssize_t last = stop - start - 1
    cdef SeqStatus st = log_forward_pass(ch, fr, start, stop, work, gamma, logprob_out)
    if st.code != STATUS_OK:
        return st
    ll = logprob_out[0]
    if xi != NULL:
        memset(xi, 0, xi_size(ch) * sizeof(double))
    for j in range(n):
        beta[j] = 0.0
    g = gamma + last * n
    for j in range(n):
        g[j] = exp(g[j] - ll)
    normalise_row(g, n, 0.0)
    for t in range(last - 1, -1, -1):
        # beta_t(i) = logsumexp_j(logA_ij + log b_{t+1}(j) + beta_{t+1}(j))
        r = frame_row(fr, start + t + 1)
        if r < 0:
            return status(STATUS_BAD_ROW, start + t + 1)
        log_backward_step(ch, fr.log_table + r * n, beta, v, q, nb)  # v = log b + log beta
        g = gamma + t * n  # still log alpha_t
        if xi != NULL:
            for i in range(n):
                a = g[i] - ll
                if a == -INFINITY:
                    continue
                for k in range(ch.row_start[i], ch.row_start[i + 1]):
                    j = ch.row_to[k]
                    xi[k if ch.sparse else i * n_pad + j] += exp(a + ch.row_log[k] + v[j])
        swap = beta
        beta = nb
        nb = swap
        for j in range(n):
            g[j] = exp(g[j] + beta[j] - ll)
        if not normalise_row(g, n, 0.0):  # only if X changed under us: a wrong frame
            return status(STATUS_BAD_ROW, start + t + 1)
    return st
