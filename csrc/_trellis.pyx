# Forward and forward-backward trellis kernels: log-likelihood and state posteriors.
#
# Design note
# -----------
# Two first-class implementations, selected per call:
#
# * log: alpha/beta in log space. A step needs N exps and N logs, never N^2: shift the
#   previous step by its maximum m, exponentiate (p_i = exp(alpha_i - m)), one
#   vector-matrix product s_j = sum_i p_i A_ij, then alpha_j = m + log s_j + log b_j.
#   When s_j underflows (s_j < LOG_TINY: every contribution lost to the shift, e.g. a
#   state reachable only from a state far below the maximum), that one entry is
#   recomputed by an exact logsumexp over the log-transition column. So the result is
#   the exact logsumexp trellis, and -inf only for a truly impossible prefix.
# * scaling: alpha normalised to sum 1 at every step (Rabiner's c_t), emissions taken from
#   the max-shifted table (each frame's log-emissions minus their maximum, exponentiated,
#   so no frame underflows as a whole). log P = sum_t log c_t + sum_t shift_t, with the
#   c_t multiplied into a running product and logged only when it gets small (one log
#   per ~200 orders of magnitude, not one per step). When only the likelihood is wanted,
#   alpha is not even divided every step: it is renormalised when its sum drops below
#   1e-60, which takes the division off the step-to-step latency chain.
#
# The scaled pass's precision guard (why "scaling" equals "log" to rounding)
# --------------------------------------------------------------------------
# A scaled entry that underflows loses a state's mass for good; if that state explains
# the data later, the likelihood is wrong by hundreds of nats (hmmlearn's "scaling" has
# this flaw). Two regimes, chosen once per model (Chain.mass_floor, set in Python):
#
# * Well mixed (every transition probability >= WELL_MIXED = 1e-100, mass_floor = 0):
#   every state receives at least WELL_MIXED of the total mass at every step, so a
#   state's relative mass is refilled each step and what underflow can lose (< 1e-323
#   per entry) stays below 1e-40 of the answer. The sum of alpha never falls by more
#   than WELL_MIXED in one step (the frame's best state keeps emission factor 1), so
#   the only guard left is the sum check below. No per-state check: the fast path.
# * Otherwise (structural zeros, tiny transitions), mass_floor = F (>= 1e-200, and
#   large enough that F * smallest positive transition is a normal double): any alpha
#   entry that should be non-zero (a positive predicted mass and a finite log-emission)
#   but is below F ends the scaled pass. Above F every product is a normal double, so
#   the entries that pass are exact to rounding and exact zeros are structural.
# * In both, a step whose alpha sum falls below SUM_FLOOR ends the scaled pass.
# When the scaled pass ends at frame t, the vector of frame t - 1 is still exact:
# ``forward`` converts it to logs and finishes the sequence with the log kernel;
# ``forward_backward`` redoes the sequence with the log kernel.
# The backward pass is checked by an identity instead: with Rabiner's scaling,
# sum_i alphahat_t(i) betahat_t(i) = 1 at every t, and whatever beta loses lowers that
# sum by the posterior mass it carried (the deficit only grows going backwards). A row
# whose sum is below 1 - POSTERIOR_DEFICIT (or not finite) redoes the sequence in log
# space, so posteriors are exact to 1e-9 absolute.
#
# Posteriors are written in place: alpha rows go into the (T, N) output and are turned
# into gamma rows during the backward sweep, with beta kept in O(N) scratch. Each step's
# vector-matrix product is hmm_vecmat_step (csrc/hmm_steps.h: column-blocked, SSE2/AVX2),
# on the padded transition matrix going forward and its padded transpose going back.
# Every read of a frame's table row is range-checked (the observations may be the
# caller's array, read without a copy while the GIL is released).

from libc.math cimport exp, log, INFINITY

cimport numpy as cnp
from _common cimport (
    Chain, Frames, SeqStatus, intp_t, status, stride, frame_row, max_of, run_kernel,
    hmm_vecmat_step, hmm_force_avx2,
    STATUS_OK, STATUS_BAD_ROW, STATUS_IMPOSSIBLE, STATUS_UNDERFLOW, OUTPUT_NONE,
    OUTPUT_POSTERIORS,
)

cnp.import_array()

cdef double LOG_TINY = 1e-280
cdef double SUM_FLOOR = 1e-180
cdef double SMALL_PRODUCT = 1e-200
cdef double SMALL_SCALE = 1e-100
cdef double LAZY_RENORMALISE = 1e-60
cdef double POSTERIOR_DEFICIT = 1e-9


# ---------------------------------------------------------------- log-space building blocks

cdef inline double exact_column_lse(const double* prev, const Chain* ch,
                                    Py_ssize_t j) noexcept nogil:
    """log sum_i exp(prev_i + logA_ij) over the predecessors of j, computed exactly."""
    cdef Py_ssize_t k, first = ch.col_start[j], last = ch.col_start[j + 1]
    cdef double v, mx = -INFINITY, s = 0.0
    for k in range(first, last):
        v = prev[ch.col_from[k]] + ch.col_log[k]
        if v > mx:
            mx = v
    if mx == -INFINITY:
        return -INFINITY
    for k in range(first, last):
        s += exp(prev[ch.col_from[k]] + ch.col_log[k] - mx)
    return mx + log(s)


cdef inline double exact_row_lse(const double* v, const Chain* ch,
                                 Py_ssize_t i) noexcept nogil:
    """log sum_j exp(v_j + logA_ij) over the successors of i, computed exactly."""
    cdef Py_ssize_t k, first = ch.row_start[i], last = ch.row_start[i + 1]
    cdef double x, mx = -INFINITY, s = 0.0
    for k in range(first, last):
        x = v[ch.row_to[k]] + ch.row_log[k]
        if x > mx:
            mx = x
    if mx == -INFINITY:
        return -INFINITY
    for k in range(first, last):
        s += exp(v[ch.row_to[k]] + ch.row_log[k] - mx)
    return mx + log(s)


cdef inline void log_forward_step(const Chain* ch, const double* prev, double prev_max,
                                  const double* log_b, double* p, double* acc,
                                  double* out) noexcept nogil:
    """out_j = logsumexp_i(prev_i + logA_ij) + log_b_j   (prev_max = max(prev), finite).

    p, acc : scratch vectors (stride(N) each).
    """
    cdef Py_ssize_t i, j, n = ch.n_states
    cdef double s
    for i in range(n):
        p[i] = exp(prev[i] - prev_max)
    hmm_vecmat_step(p, ch.transmat_pad, n, ch.n_pad, acc)
    for j in range(n):
        s = acc[j]
        if log_b[j] == -INFINITY:
            out[j] = -INFINITY
        elif s > LOG_TINY:
            out[j] = prev_max + log(s) + log_b[j]
        else:
            out[j] = exact_column_lse(prev, ch, j) + log_b[j]


cdef inline double log_sum(const double* x, double mx, Py_ssize_t n) noexcept nogil:
    """log sum_i exp(x_i), given mx = max(x) finite."""
    cdef Py_ssize_t i
    cdef double s = 0.0
    for i in range(n):
        s += exp(x[i] - mx)
    return mx + log(s)


cdef SeqStatus log_forward_loop(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                Py_ssize_t t_from, Py_ssize_t stop, double* work, double* cur,
                                double m, double* alpha_rows,
                                double* logprob_out) noexcept nogil:
    """Log forward over frames t_from..stop-1, from log alpha of frame t_from - 1.

    work : scratch of 4 vectors (stride(N) apart). Without alpha_rows, ``cur`` must be
        work + sn or work + 2 sn (the two rolling buffers).
    cur : log alpha of frame t_from - 1 (a row of alpha_rows when that is given), with
        maximum m (finite).
    alpha_rows : (T, N) of the sequence receiving log alpha_t, or NULL.
    """
    cdef Py_ssize_t n = ch.n_states, t, r, sn = stride(ch.n_states)
    cdef double* p = work
    cdef double* acc = work + 3 * sn
    cdef double* nxt
    for t in range(t_from, stop):
        r = frame_row(fr, t)
        if r < 0:
            return status(STATUS_BAD_ROW, t)
        if alpha_rows != NULL:
            nxt = alpha_rows + (t - start) * n
        else:
            nxt = work + 2 * sn if cur == work + sn else work + sn
        log_forward_step(ch, cur, m, fr.log_table + r * n, p, acc, nxt)
        m = max_of(nxt, n)
        if m == -INFINITY:
            return status(STATUS_IMPOSSIBLE, t)
        cur = nxt
    logprob_out[0] = log_sum(cur, m, n)
    return status(STATUS_OK, 0)


cdef SeqStatus log_forward_pass(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                Py_ssize_t stop, double* work, double* alpha_rows,
                                double* logprob_out) noexcept nogil:
    """Log forward over one sequence.

    work : scratch of 4 vectors (stride(N) apart).
    alpha_rows : (T, N) receiving log alpha_t, or NULL to keep only the current step.
    """
    cdef Py_ssize_t n = ch.n_states, j, r
    cdef double* cur = alpha_rows if alpha_rows != NULL else work + stride(ch.n_states)
    cdef const double* log_b
    cdef double m
    logprob_out[0] = -INFINITY
    r = frame_row(fr, start)
    if r < 0:
        return status(STATUS_BAD_ROW, start)
    log_b = fr.log_table + r * n
    for j in range(n):
        cur[j] = ch.log_startprob[j] + log_b[j]
    m = max_of(cur, n)
    if m == -INFINITY:
        return status(STATUS_IMPOSSIBLE, start)
    return log_forward_loop(ch, fr, start, start + 1, stop, work, cur, m, alpha_rows,
                            logprob_out)


# ---------------------------------------------------------------- scaled building blocks

cdef inline bint mass_lost(const double* predicted, const double* alpha, const double* log_b,
                           Py_ssize_t n, double floor) noexcept nogil:
    """True when an entry that is non-zero in exact arithmetic (positive predicted mass,
    finite log-emission) came out below ``floor``: the scaled pass cannot go on."""
    cdef Py_ssize_t j
    cdef bint lost = False
    for j in range(n):  # branch-free: one flag for the whole vector
        lost |= (alpha[j] < floor) & (predicted[j] > 0.0) & (log_b[j] > -INFINITY)
    return lost


cdef SeqStatus scaled_forward_pass(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                   Py_ssize_t stop, double* work, double* alpha_rows,
                                   double* scales, double* logprob_out,
                                   double** last_out, double* log_scale_out) noexcept nogil:
    """Scaled forward over one sequence.

    work : scratch of 3 vectors (stride(N) apart).
    alpha_rows : (T, N) receiving normalised alpha_t, or NULL (rolling buffer).
    scales : (T,) receiving c_t, or NULL. With NULL (scoring only) alpha is renormalised
        only when its sum falls below LAZY_RENORMALISE; the sum then carries the
        product of the skipped c_t.
    Returns STATUS_UNDERFLOW at frame t when the precision guard (see the design note)
    ends the pass there. Then ``last_out`` points at the exact vector of frame t - 1 and
    ``log_scale_out`` holds the log of its scale: log alpha_{t-1} = log(last) + scale.
    """
    cdef Py_ssize_t n = ch.n_states, t, j, r, sn = stride(ch.n_states)
    cdef double* cur = alpha_rows if alpha_rows != NULL else work
    cdef double* acc = work + 2 * sn
    cdef double* nxt
    cdef const double* b
    cdef const double* log_b
    cdef double c = 0.0, inv, shift, prod, log_c_sum = 0.0, pending = 1.0
    cdef double floor = ch.mass_floor
    logprob_out[0] = -INFINITY
    last_out[0] = NULL
    r = frame_row(fr, start)
    if r < 0:
        return status(STATUS_BAD_ROW, start)
    b = fr.scaled_table + r * n
    for j in range(n):
        cur[j] = ch.startprob[j] * b[j]
        c += cur[j]
    if not c > SUM_FLOOR or (floor > 0.0 and mass_lost(ch.startprob, cur,
                                                       fr.log_table + r * n, n, floor)):
        return status(STATUS_UNDERFLOW, start)
    shift = fr.row_log_scale[r]
    inv = 1.0 / c
    for j in range(n):
        cur[j] *= inv
    if scales != NULL:
        scales[0] = c
    prod = c
    for t in range(start + 1, stop):
        r = frame_row(fr, t)
        if r < 0:
            return status(STATUS_BAD_ROW, t)
        b = fr.scaled_table + r * n
        if alpha_rows != NULL:
            nxt = alpha_rows + (t - start) * n
        else:
            nxt = work + sn if cur == work else work
        hmm_vecmat_step(cur, ch.transmat_pad, n, ch.n_pad, acc)
        c = 0.0
        for j in range(n):
            nxt[j] = acc[j] * b[j]
            c += nxt[j]
        if not c > SUM_FLOOR or (floor > 0.0 and mass_lost(acc, nxt, fr.log_table + r * n,
                                                           n, floor)):
            last_out[0] = cur
            log_scale_out[0] = log_c_sum + log(prod) + shift
            return status(STATUS_UNDERFLOW, t)
        shift += fr.row_log_scale[r]
        if scales == NULL and c > LAZY_RENORMALISE:
            # score only: no one needs alpha_t normalised, so let it shrink and keep the
            # division (and its latency) off the step-to-step dependency chain
            pending = c
            cur = nxt
            continue
        if c < SMALL_SCALE:
            log_c_sum += log(c)
        else:
            prod *= c
            if prod < SMALL_PRODUCT:
                log_c_sum += log(prod)
                prod = 1.0
        inv = 1.0 / c
        for j in range(n):
            nxt[j] *= inv
        if scales != NULL:
            scales[t - start] = c
        pending = 1.0
        cur = nxt
    logprob_out[0] = log_c_sum + log(prod) + log(pending) + shift
    return status(STATUS_OK, 0)


# ---------------------------------------------------------------- per-sequence kernels

cdef SeqStatus forward_log_kernel(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                  Py_ssize_t stop, char* scratch, double* logprob_out,
                                  double* posteriors_out, intp_t* states_out) noexcept nogil:
    # scratch: 4 vectors
    return log_forward_pass(ch, fr, start, stop, <double*> scratch, NULL, logprob_out)


cdef SeqStatus forward_scaling_kernel(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                      Py_ssize_t stop, char* scratch, double* logprob_out,
                                      double* posteriors_out, intp_t* states_out) noexcept nogil:
    # scratch: 4 vectors (3 for the scaled pass, 4 for finishing in log space)
    cdef double* work = <double*> scratch
    cdef double* last
    cdef double* log_cur = work + 2 * stride(ch.n_states)  # a rolling buffer of the log loop
    cdef double log_scale
    cdef Py_ssize_t j, n = ch.n_states
    cdef SeqStatus st = scaled_forward_pass(ch, fr, start, stop, work, NULL, NULL,
                                            logprob_out, &last, &log_scale)
    if st.code != STATUS_UNDERFLOW:
        return st
    if last == NULL:  # the first frame: start over in log space
        return log_forward_pass(ch, fr, start, stop, work, NULL, logprob_out)
    # alpha of frame st.frame - 1 is exact: continue from it in log space
    for j in range(n):
        log_cur[j] = log(last[j]) + log_scale if last[j] > 0.0 else -INFINITY
    return log_forward_loop(ch, fr, start, st.frame, stop, work, log_cur, max_of(log_cur, n),
                            NULL, logprob_out)


cdef inline bint normalise_row(double* g, Py_ssize_t n, double minimum) noexcept nogil:
    """Scale g to sum 1; false unless its sum is finite and above ``minimum``."""
    cdef Py_ssize_t j
    cdef double s = 0.0
    for j in range(n):
        s += g[j]
    if not (s > minimum and s < INFINITY):
        return False
    s = 1.0 / s
    for j in range(n):
        g[j] *= s
    return True


cdef SeqStatus forward_backward_log_kernel(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                           Py_ssize_t stop, char* scratch, double* logprob_out,
                                           double* posteriors_out,
                                           intp_t* states_out) noexcept nogil:
    # scratch: 4 vectors. Posterior rows first hold log alpha_t.
    cdef Py_ssize_t n = ch.n_states, t, i, j, r, sn = stride(ch.n_states)
    cdef double* work = <double*> scratch
    cdef double* beta = work
    cdef double* nb = work + sn
    cdef double* v = work + 2 * sn
    cdef double* q = work + 3 * sn
    cdef double* swap
    cdef double* g
    cdef double* post = posteriors_out + start * n
    cdef const double* log_b
    cdef double m, s, ll
    cdef Py_ssize_t last = stop - start - 1
    cdef SeqStatus st = log_forward_pass(ch, fr, start, stop, work, post, logprob_out)
    if st.code != STATUS_OK:
        return st
    ll = logprob_out[0]
    for j in range(n):
        beta[j] = 0.0
    g = post + last * n
    for j in range(n):
        g[j] = exp(g[j] - ll)
    normalise_row(g, n, 0.0)
    for t in range(last - 1, -1, -1):
        # beta_t(i) = logsumexp_j(logA_ij + log b_{t+1}(j) + beta_{t+1}(j))
        r = frame_row(fr, start + t + 1)
        if r < 0:
            return status(STATUS_BAD_ROW, start + t + 1)
        log_b = fr.log_table + r * n
        for j in range(n):
            v[j] = log_b[j] + beta[j]
        m = max_of(v, n)
        if m == -INFINITY:  # unreachable for a possible sequence; never let NaN through
            m = 0.0
        for j in range(n):
            q[j] = exp(v[j] - m)
        hmm_vecmat_step(q, ch.transmat_t_pad, n, ch.n_pad, nb)  # nb_i = sum_j A_ij q_j
        for i in range(n):
            s = nb[i]
            if s > LOG_TINY:
                nb[i] = m + log(s)
            else:
                nb[i] = exact_row_lse(v, ch, i)
        swap = beta
        beta = nb
        nb = swap
        g = post + t * n
        for j in range(n):
            g[j] = exp(g[j] + beta[j] - ll)
        if not normalise_row(g, n, 0.0):  # only if X changed under us: a wrong frame
            return status(STATUS_BAD_ROW, start + t + 1)
    return st


cdef SeqStatus forward_backward_scaling_kernel(const Chain* ch, const Frames* fr,
                                               Py_ssize_t start, Py_ssize_t stop, char* scratch,
                                               double* logprob_out, double* posteriors_out,
                                               intp_t* states_out) noexcept nogil:
    # scratch: 4 vectors (3 here, 4 for the log fallback), then T doubles (c_t).
    cdef Py_ssize_t n = ch.n_states, t, i, j, r, big_t = stop - start, sn = stride(ch.n_states)
    cdef double* beta = <double*> scratch
    cdef double* nb = beta + sn
    cdef double* v = nb + sn
    cdef double* scales = beta + 4 * sn
    cdef double* swap
    cdef double* g
    cdef double* post = posteriors_out + start * n
    cdef double* unused_last
    cdef const double* b
    cdef double inv, unused_scale
    cdef SeqStatus st = scaled_forward_pass(ch, fr, start, stop, beta, post, scales,
                                            logprob_out, &unused_last, &unused_scale)
    if st.code == STATUS_BAD_ROW:
        return st
    if st.code == STATUS_UNDERFLOW:
        return forward_backward_log_kernel(ch, fr, start, stop, scratch, logprob_out,
                                           posteriors_out, states_out)
    for j in range(n):
        beta[j] = 1.0
    for t in range(big_t - 2, -1, -1):
        # beta_t(i) = sum_j A_ij b'_{t+1}(j) beta_{t+1}(j) / c_{t+1}
        r = frame_row(fr, start + t + 1)
        if r < 0:
            return status(STATUS_BAD_ROW, start + t + 1)
        b = fr.scaled_table + r * n
        for j in range(n):
            v[j] = b[j] * beta[j]
        hmm_vecmat_step(v, ch.transmat_t_pad, n, ch.n_pad, nb)  # nb_i = sum_j A_ij v_j
        inv = 1.0 / scales[t + 1]
        for i in range(n):
            nb[i] *= inv
        swap = beta
        beta = nb
        nb = swap
        g = post + t * n
        for j in range(n):
            g[j] *= beta[j]
        # sum_j alphahat_t(j) betahat_t(j) is 1 in exact arithmetic; a deficit is
        # posterior mass that beta lost to underflow (see the design note)
        if not normalise_row(g, n, 1.0 - POSTERIOR_DEFICIT):
            return forward_backward_log_kernel(ch, fr, start, stop, scratch, logprob_out,
                                               posteriors_out, states_out)
    return st


# ---------------------------------------------------------------- Python entry points

def forward(object chain, tuple emission, rows, offsets, bint scaling,
            logprob_out=None, int n_threads=1):
    """Total log-likelihood of every sequence.

    Parameters
    ----------
    chain : tuple
        The model's chain, as built by ``hmmfast._kernel_inputs.chain``.
    emission : tuple (log_table, scaled_table, row_log_scale)
        float64 arrays of shapes (K, N), (K, N), (K,); the last two may be None
        when ``scaling`` is false.
    rows : ndarray of shape (T,), intp, or None
        Table row used by each frame; None means frame t uses row t (K == T).
    offsets : ndarray of shape (n_seq + 1,), intp, or None for one sequence.
    scaling : bool
        Scaled forward when true, log-space forward otherwise.
    logprob_out : ndarray of shape (n_seq,), float64, optional
        Receives each sequence's log-likelihood (-inf for an impossible one).
    n_threads : int
        Threads over sequences (1: the calling thread only).

    Returns
    -------
    float
        Sum of the sequences' log-likelihoods.
    """
    if scaling:
        return run_kernel(forward_scaling_kernel, 4 * sizeof(double), 0, 0, True,
                          OUTPUT_NONE, False, chain, emission, rows, offsets, logprob_out,
                          n_threads)
    return run_kernel(forward_log_kernel, 4 * sizeof(double), 0, 0, False,
                      OUTPUT_NONE, False, chain, emission, rows, offsets, logprob_out, n_threads)


def forward_backward(object chain, tuple emission, rows, offsets, bint scaling,
                     logprob_out=None, int n_threads=1):
    """Log-likelihood and state posteriors; arguments as for :func:`forward`.

    Returns
    -------
    logprob : float
    posteriors : ndarray of shape (T, N)
        P(state_t = j | its sequence); each row sums to 1.

    Raises
    ------
    hmmfast.ImpossibleSequenceError
        When a sequence has probability zero (its posteriors are undefined).
    """
    if scaling:
        return run_kernel(forward_backward_scaling_kernel, 4 * sizeof(double),
                          sizeof(double), 0, True, OUTPUT_POSTERIORS, True, chain, emission,
                          rows, offsets, logprob_out, n_threads)
    return run_kernel(forward_backward_log_kernel, 4 * sizeof(double), 0, 0, False,
                      OUTPUT_POSTERIORS, True, chain, emission, rows, offsets, logprob_out,
                      n_threads)


def _force_simd(int flag):
    """Testing hook: choose this module's vector path (1: AVX2 if the CPU has it,
    0: SSE2, -1: probe the CPU again). Returns 1 when AVX2 is now in use."""
    return hmm_force_avx2(flag)
