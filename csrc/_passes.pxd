# The forward-pass building blocks shared by every trellis kernel (header-only).
#
# Design note
# -----------
# Log space: ``log_forward_step`` needs N exps and N logs per step, never N^2: shift the
# previous step by its maximum m, exponentiate, one vector-matrix product, then
# alpha_j = m + log s_j + log b_j. When s_j underflows (every contribution lost to the
# shift), that entry is recomputed by an exact logsumexp over the non-zero transitions
# into j (``exact_column_lse``), so the log trellis is exact and -inf only for an
# impossible prefix. ``exact_row_lse`` does the same for a backward step.
#
# Scaled: ``scaled_forward_pass`` normalises alpha (Rabiner's c_t) with each frame's
# emissions shifted by their maximum, lazily when only the likelihood is wanted.
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
from libc.math cimport exp, log, INFINITY

from _common cimport (
    Chain, Frames, SeqStatus, status, stride, frame_row, max_of, hmm_vecmat_step,
    hmm_maxplus_step, STATUS_OK, STATUS_BAD_ROW, STATUS_IMPOSSIBLE, STATUS_UNDERFLOW,
)

cdef extern from *:
    """
    #define HMM_LOG_TINY 1e-280
    #define HMM_SUM_FLOOR 1e-180
    #define HMM_SMALL_PRODUCT 1e-200
    #define HMM_SMALL_SCALE 1e-100
    #define HMM_LAZY_RENORMALISE 1e-60
    #define HMM_POSTERIOR_DEFICIT 1e-9
    """
    # a shifted log-space sum below this is recomputed exactly
    const double LOG_TINY "HMM_LOG_TINY"
    # a scaled alpha sum below this ends the scaled pass
    const double SUM_FLOOR "HMM_SUM_FLOOR"
    # running products of c_t are logged when they fall below this ...
    const double SMALL_PRODUCT "HMM_SMALL_PRODUCT"
    # ... and a single c_t below this is logged at once
    const double SMALL_SCALE "HMM_SMALL_SCALE"
    # score-only passes renormalise alpha only when its sum falls below this
    const double LAZY_RENORMALISE "HMM_LAZY_RENORMALISE"
    # a posterior row summing to less than 1 - this redoes the sequence in log space
    const double POSTERIOR_DEFICIT "HMM_POSTERIOR_DEFICIT"


# ---------------------------------------------------------------- log space

# ---------------------------------------------------------------- products with A

cdef inline void forward_product(const Chain* ch, const double* p, double* out) noexcept nogil:
    """out_j = sum_i p_i A_ij for every state j (out needs room for n_pad entries): the
    dense SIMD step, or a sum over each state's predecessors for a sparse chain (the
    same terms in the same ascending order, so the same bits)."""
    cdef Py_ssize_t j, k
    cdef double acc
    if not ch.sparse:
        hmm_vecmat_step(p, ch.transmat_pad, ch.n_states, ch.n_pad, out)
        return
    for j in range(ch.n_states):
        acc = 0.0
        for k in range(ch.col_start[j], ch.col_start[j + 1]):
            acc = acc + p[ch.col_from[k]] * ch.col_prob[k]
        out[j] = acc


cdef inline void backward_product(const Chain* ch, const double* v, double* out) noexcept nogil:
    """out_i = sum_j A_ij v_j for every state i (room for n_pad entries); dense or over
    each state's successors, as forward_product."""
    cdef Py_ssize_t i, k
    cdef double acc
    if not ch.sparse:
        hmm_vecmat_step(v, ch.transmat_t_pad, ch.n_states, ch.n_pad, out)
        return
    for i in range(ch.n_states):
        acc = 0.0
        for k in range(ch.row_start[i], ch.row_start[i + 1]):
            acc = acc + v[ch.row_to[k]] * ch.row_prob[k]
        out[i] = acc


cdef inline double log_transition(const Chain* ch, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    """log A_ij (-inf for a zero), from the dense matrix or by bisection in row i."""
    cdef Py_ssize_t lo, hi, mid
    if not ch.sparse:
        return ch.log_transmat[i * ch.n_states + j]
    lo = ch.row_start[i]
    hi = ch.row_start[i + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if ch.row_to[mid] < j:
            lo = mid + 1
        else:
            hi = mid
    if lo < ch.row_start[i + 1] and ch.row_to[lo] == j:
        return ch.row_log[lo]
    return -INFINITY


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
    forward_product(ch, p, acc)
    for j in range(n):
        s = acc[j]
        if log_b[j] == -INFINITY:
            out[j] = -INFINITY
        elif s > LOG_TINY:
            out[j] = prev_max + log(s) + log_b[j]
        else:
            out[j] = exact_column_lse(prev, ch, j) + log_b[j]


cdef inline void log_backward_step(const Chain* ch, const double* log_b, const double* beta,
                                   double* v, double* q, double* out) noexcept nogil:
    """out_i = logsumexp_j(logA_ij + log_b_j + beta_j): one backward step in log space.

    log_b, beta : the next frame's log-emissions and log beta.
    v, q : scratch vectors (stride(N) each); v holds log_b + beta on return.
    """
    cdef Py_ssize_t i, j, n = ch.n_states
    cdef double m, s
    for j in range(n):
        v[j] = log_b[j] + beta[j]
    m = max_of(v, n)
    if m == -INFINITY:  # unreachable for a possible sequence; never let NaN through
        m = 0.0
    for j in range(n):
        q[j] = exp(v[j] - m)
    backward_product(ch, q, out)  # out_i = sum_j A_ij q_j
    for i in range(n):
        s = out[i]
        if s > LOG_TINY:
            out[i] = m + log(s)
        else:
            out[i] = exact_row_lse(v, ch, i)


cdef inline double log_sum(const double* x, double mx, Py_ssize_t n) noexcept nogil:
    """log sum_i exp(x_i), given mx = max(x) finite."""
    cdef Py_ssize_t i
    cdef double s = 0.0
    for i in range(n):
        s += exp(x[i] - mx)
    return mx + log(s)


cdef inline SeqStatus log_forward_loop(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                       Py_ssize_t t_from, Py_ssize_t stop, double* work,
                                       double* cur, double m, double* alpha_rows,
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


cdef inline SeqStatus log_forward_pass(const Chain* ch, const Frames* fr, Py_ssize_t start,
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


# ---------------------------------------------------------------- scaled

cdef inline bint mass_lost(const double* predicted, const double* alpha, const double* log_b,
                           Py_ssize_t n, double floor) noexcept nogil:
    """True when an entry that is non-zero in exact arithmetic (positive predicted mass,
    finite log-emission) came out below ``floor``: the scaled pass cannot go on."""
    cdef Py_ssize_t j
    cdef bint lost = False
    for j in range(n):  # branch-free: one flag for the whole vector
        lost |= (alpha[j] < floor) & (predicted[j] > 0.0) & (log_b[j] > -INFINITY)
    return lost


cdef inline SeqStatus scaled_forward_pass(const Chain* ch, const Frames* fr,
                                          Py_ssize_t start, Py_ssize_t stop, double* work,
                                          double* alpha_rows, double* scales,
                                          double* logprob_out, double** last_out,
                                          double* log_scale_out) noexcept nogil:
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
        forward_product(ch, cur, acc)
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


# ---------------------------------------------------------------- Viterbi

cdef inline void maxplus_step(const Chain* ch, const double* delta, double* best,
                              double* arg) noexcept nogil:
    """best_j = max_i(delta_i + log A_ij) and arg_j = the first maximising i (as a double),
    for every state j; -inf (arg 0) for a state no finite delta reaches. Every Viterbi-type
    kernel takes its steps here, so dense and sparse chains give the same paths.
    best and arg need room for n_pad entries."""
    cdef Py_ssize_t i, j, k
    cdef double b, a, v
    if not ch.sparse:
        hmm_maxplus_step(delta, ch.log_transmat_pad, ch.n_states, ch.n_pad, best, arg)
        return
    for j in range(ch.n_states):
        b = -INFINITY
        a = 0.0
        for k in range(ch.col_start[j], ch.col_start[j + 1]):
            i = ch.col_from[k]
            if delta[i] == -INFINITY:
                continue
            v = delta[i] + ch.col_log[k]
            if v > b:
                b = v
                a = <double> i
        best[j] = b
        arg[j] = a


# ---------------------------------------------------------------- posteriors

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
