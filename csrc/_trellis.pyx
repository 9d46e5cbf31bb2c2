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
# The scaled pass's precision guard (why "scaling" equals "log" to rounding) and the
# building blocks both implementations share are in _passes.pxd.
#
# Scoring a dense chain of up to 12 states runs the same scaled pass with the state
# vector in registers (hmm_forward_regs.h: no memory round trip per step, same bits).
#
# Posteriors are written in place: alpha rows go into the (T, N) output and are turned
# into gamma rows during the backward sweep, with beta kept in O(N) scratch (the log sweep
# is _posteriors.pxd's, shared with the log E-step). Each step's
# vector-matrix product is hmm_vecmat_step (csrc/hmm_steps.h: column-blocked, SSE2/AVX2),
# on the padded transition matrix going forward and its padded transpose going back.
# Every read of a frame's table row is range-checked (the observations may be the
# caller's array, read without a copy while the GIL is released).

from libc.math cimport log, INFINITY

cimport numpy as cnp
from _common cimport (
    Chain, Frames, SeqStatus, intp_t, status, stride, frame_row, max_of, run_kernel,
    symbol_array, hmm_force_avx2,
    STATUS_OK, STATUS_BAD_ROW, STATUS_IMPOSSIBLE, STATUS_UNDERFLOW, OUTPUT_NONE,
    OUTPUT_POSTERIORS, OUTPUT_STEPS,
)
from _passes cimport (
    POSTERIOR_DEFICIT, LAZY_RENORMALISE, SMALL_PRODUCT, SMALL_SCALE, SUM_FLOOR,
    backward_product, log_forward_loop, log_forward_pass, log_forward_step, log_sum,
    scaled_forward_pass, normalise_row,
)
from _posteriors cimport log_posteriors

cdef extern from "hmm_forward_regs.h" nogil:
    ctypedef struct hmm_fr_model:
        const double* startprob
        const double* transmat_pad
        double mass_floor
        const double* scaled_table
        const double* row_log_scale
        const double* log_table
        const intp_t* rows
        Py_ssize_t n_rows
        double sum_floor
        double small_scale
        double small_product
        double lazy_renormalise
    enum:
        HMM_FR_MAX_STATES
        HMM_FR_OK
        HMM_FR_BAD_ROW
        HMM_FR_UNDERFLOW
    int hmm_forward_regs(int n, const hmm_fr_model* m, Py_ssize_t start, Py_ssize_t stop,
                         double* logprob, Py_ssize_t* frame, double* last, int* has_last,
                         double* log_scale)

cnp.import_array()


# ---------------------------------------------------------------- per-sequence kernels

cdef SeqStatus forward_log_kernel(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                  Py_ssize_t stop, char* scratch, double* logprob_out,
                                  double* posteriors_out, intp_t* states_out) noexcept nogil:
    # scratch: 4 vectors
    return log_forward_pass(ch, fr, start, stop, <double*> scratch, NULL, logprob_out)


cdef bint use_regs = True  # testing hook: _force_regs


cdef inline SeqStatus scaled_forward_regs(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                          Py_ssize_t stop, double* logprob_out,
                                          double** last_out, double* last,
                                          double* log_scale_out) noexcept nogil:
    """scaled_forward_pass (score only) for a dense chain of N <= 12, the state vector in
    registers (hmm_forward_regs.h): the same results and statuses, bit for bit; ``last``
    (N doubles) receives the vector ``last_out`` then points at."""
    cdef hmm_fr_model m
    cdef Py_ssize_t frame = start
    cdef int has_last = 0
    m.startprob = ch.startprob
    m.transmat_pad = ch.transmat_pad
    m.mass_floor = ch.mass_floor
    m.scaled_table = fr.scaled_table
    m.row_log_scale = fr.row_log_scale
    m.log_table = fr.log_table
    m.rows = fr.rows
    m.n_rows = fr.n_rows
    m.sum_floor = SUM_FLOOR
    m.small_scale = SMALL_SCALE
    m.small_product = SMALL_PRODUCT
    m.lazy_renormalise = LAZY_RENORMALISE
    cdef int code = hmm_forward_regs(<int> ch.n_states, &m, start, stop, logprob_out, &frame,
                                     last, &has_last, log_scale_out)
    last_out[0] = last if has_last else NULL
    if code == HMM_FR_OK:
        return status(STATUS_OK, 0)
    return status(STATUS_BAD_ROW if code == HMM_FR_BAD_ROW else STATUS_UNDERFLOW, frame)


cdef SeqStatus forward_scaling_kernel(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                      Py_ssize_t stop, char* scratch, double* logprob_out,
                                      double* posteriors_out, intp_t* states_out) noexcept nogil:
    # scratch: 4 vectors (3 for the scaled pass, 4 for finishing in log space)
    cdef double* work = <double*> scratch
    cdef double* last
    cdef double* log_cur = work + 2 * stride(ch.n_states)  # a rolling buffer of the log loop
    cdef double log_scale
    cdef Py_ssize_t j, n = ch.n_states
    cdef SeqStatus st
    if use_regs and not ch.sparse and n <= HMM_FR_MAX_STATES:
        st = scaled_forward_regs(ch, fr, start, stop, logprob_out, &last, work, &log_scale)
    else:
        st = scaled_forward_pass(ch, fr, start, stop, work, NULL, NULL, logprob_out, &last,
                                 &log_scale)
    if st.code != STATUS_UNDERFLOW:
        return st
    if last == NULL:  # the first frame: start over in log space
        return log_forward_pass(ch, fr, start, stop, work, NULL, logprob_out)
    # alpha of frame st.frame - 1 is exact: continue from it in log space
    for j in range(n):
        log_cur[j] = log(last[j]) + log_scale if last[j] > 0.0 else -INFINITY
    return log_forward_loop(ch, fr, start, st.frame, stop, work, log_cur, max_of(log_cur, n),
                            NULL, logprob_out)


cdef inline void fill_impossible(double* steps, Py_ssize_t first, Py_ssize_t stop) noexcept nogil:
    """An impossible observation and everything after it: log P(o_t | o_<t) = -inf."""
    cdef Py_ssize_t t
    for t in range(first, stop):
        steps[t] = -INFINITY


cdef SeqStatus steps_log_kernel(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                Py_ssize_t stop, char* scratch, double* logprob_out,
                                double* steps_out, intp_t* states_out) noexcept nogil:
    """log P(o_t | o_<t) for every step, in log space: lse(alpha_t) - lse(alpha_{t-1}).
    scratch: 4 vectors."""
    cdef Py_ssize_t n = ch.n_states, t, j, r, sn = stride(ch.n_states)
    cdef double* work = <double*> scratch
    cdef double* cur = work + sn
    cdef double* nxt = work + 2 * sn
    cdef double* swap
    cdef double m, total, prev_total = 0.0
    logprob_out[0] = -INFINITY
    for t in range(start, stop):
        r = frame_row(fr, t)
        if r < 0:
            return status(STATUS_BAD_ROW, t)
        if t == start:
            for j in range(n):
                nxt[j] = ch.log_startprob[j] + fr.log_table[r * n + j]
        else:
            log_forward_step(ch, cur, m, fr.log_table + r * n, work, work + 3 * sn, nxt)
        m = max_of(nxt, n)
        if m == -INFINITY:
            fill_impossible(steps_out, t, stop)
            return status(STATUS_IMPOSSIBLE, t)
        total = log_sum(nxt, m, n)
        steps_out[t] = total - prev_total
        prev_total = total
        swap = cur
        cur = nxt
        nxt = swap
    logprob_out[0] = prev_total
    return status(STATUS_OK, 0)


cdef SeqStatus steps_scaling_kernel(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                    Py_ssize_t stop, char* scratch, double* logprob_out,
                                    double* steps_out, intp_t* states_out) noexcept nogil:
    """log P(o_t | o_<t) = log c_t + shift_t from the scaled pass (normalised every step);
    the log kernel when the precision guard fires. scratch: 4 vectors."""
    cdef Py_ssize_t t, r
    cdef double* unused_last
    cdef double unused_scale
    cdef SeqStatus st = scaled_forward_pass(ch, fr, start, stop, <double*> scratch, NULL,
                                            steps_out + start, logprob_out, &unused_last,
                                            &unused_scale)
    if st.code == STATUS_UNDERFLOW:
        return steps_log_kernel(ch, fr, start, stop, scratch, logprob_out, steps_out,
                                states_out)
    if st.code != STATUS_OK:
        return st
    for t in range(start, stop):
        r = frame_row(fr, t)
        if r < 0:
            return status(STATUS_BAD_ROW, t)
        steps_out[t] = log(steps_out[t]) + fr.row_log_scale[r]
    return st


cdef SeqStatus forward_backward_log_kernel(const Chain* ch, const Frames* fr, Py_ssize_t start,
                                           Py_ssize_t stop, char* scratch, double* logprob_out,
                                           double* posteriors_out,
                                           intp_t* states_out) noexcept nogil:
    # scratch: 4 vectors (the log E-step of _estep.pyx without its expected transitions)
    return log_posteriors(ch, fr, start, stop, <double*> scratch,
                          posteriors_out + start * ch.n_states, NULL, logprob_out)


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
        backward_product(ch, v, nb)  # nb_i = sum_j A_ij v_j
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


def model_score(self, X, lengths=None):
    """BaseHMM.score (its docstring is set there). The common call, one kernel-ready
    symbol sequence of a table-driven model, goes straight to the kernel; every other
    call goes to ``self._score``."""
    c = self._cache
    if c is not None and lengths is None and c.symbols is not None and symbol_array(X):
        return forward(c.chain, c.symbols, X, None, c.scaling, None, c.n_threads)
    return self._score(X, lengths)


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
                     logprob_out=None, int n_threads=1, bint raise_impossible=True):
    """Log-likelihood and state posteriors; arguments as for :func:`forward`.

    With ``raise_impossible`` false an impossible sequence gets logprob -inf (in
    ``logprob_out``) and unspecified posterior rows instead of an error.

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
                          sizeof(double), 0, True, OUTPUT_POSTERIORS, raise_impossible, chain,
                          emission, rows, offsets, logprob_out, n_threads)
    return run_kernel(forward_backward_log_kernel, 4 * sizeof(double), 0, 0, False,
                      OUTPUT_POSTERIORS, raise_impossible, chain, emission, rows, offsets,
                      logprob_out, n_threads)


def forward_steps(object chain, tuple emission, rows, offsets, bint scaling,
                  logprob_out=None, int n_threads=1):
    """Per-step log conditionals log P(o_t | o_<t); arguments as for :func:`forward`.

    Returns
    -------
    logprob : float
        Sum of the sequences' log-likelihoods (-inf if one is impossible).
    steps : ndarray of shape (T,)
        Each sequence's steps sum to its log-likelihood; an impossible observation and
        the rest of its sequence are -inf.
    """
    if scaling:
        return run_kernel(steps_scaling_kernel, 4 * sizeof(double), 0, 0, True,
                          OUTPUT_STEPS, False, chain, emission, rows, offsets, logprob_out,
                          n_threads)
    return run_kernel(steps_log_kernel, 4 * sizeof(double), 0, 0, False, OUTPUT_STEPS, False,
                      chain, emission, rows, offsets, logprob_out, n_threads)


def _force_regs(bint flag):
    """Testing hook: score small dense chains with the register-resident pass (True, the
    default) or with the general scaled pass (False)."""
    global use_regs
    use_regs = flag


def _force_simd(int flag):
    """Testing hook: choose this module's vector path (1: AVX2 if the CPU has it,
    0: SSE2, -1: probe the CPU again). Returns 1 when AVX2 is now in use."""
    return hmm_force_avx2(flag)
