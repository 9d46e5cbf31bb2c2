# The E-step of Baum-Welch: expected sufficient statistics of every sequence, in one call.
#
# Design note
# -----------
# Per sequence s with weight w_s (0: skipped), the E-step produces
#   gamma_t(j) = P(state_t = j | X_s)                  posteriors, (T, N)
#   xi(i, j)   = sum_t P(state_t = i, state_t+1 = j | X_s)   expected transitions, (N, N)
# and the driver accumulates w_s * gamma_0 (start counts), w_s * xi (transition counts)
# and, for table frames (CategoricalHMM), w_s * gamma_t into row rows[t] of a
# (n_rows, N) table (the expected emission counts); with ``want_posteriors`` it also
# returns w_s * gamma for the family's own statistics (Gaussian sums, ...).
# Never a T x N x N array: xi is summed while beta is produced.
#
# Scaled E-step: the scaled forward pass stores alphahat_t and c_t; going backwards,
# v_t = b'_{t+1} * betahat_{t+1} / c_{t+1} gives
#   betahat_t  = A v_t                         (one vector-matrix product)
#   gamma_t    = alphahat_t * betahat_t        (sums to 1: the deficit check of _passes.pxd)
#   xi_t(i, j) = alphahat_t(i) A_ij v_t(j)
# and the v_t rows are kept, so that sum_t xi_t = A * (sum_t alphahat_t v_t^T) is one
# register-blocked rank-T update after the sweep (hmm_outer.h) instead of a memory-bound
# rank-1 update per step. When the scaled forward pass's precision guard or the deficit
# check fires, the sequence is redone by the log E-step.
#
# Log E-step (``log_posteriors`` of _posteriors.pxd, shared with _trellis.pyx's
# forward_backward): log alpha rows, then log beta backwards, with
#   xi_t(i, j) = exp(log alpha_t(i) + log A_ij + log b_{t+1}(j) + log beta_{t+1}(j) - ll)
# summed over the non-zero transitions only (one exp each).
#
# Threads and determinism: the sequences are cut into at most MAX_CHUNKS chunks of about
# equal frame counts, fixed by the data alone; each chunk accumulates into its own
# buffer, sequence after sequence, and the chunks are summed in order afterwards. Threads
# take whole chunks (hmm_team.h, in order from a shared counter), so there are no locks
# on the statistics and the result is bit-for-bit the same for every thread count and
# every run. One sequence, or too little work, never starts a thread team. Statistics
# of a sequence are added only once its E-step succeeded.

from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy, memset
from libc.math cimport INFINITY

import numpy as np

cimport numpy as cnp
from _common cimport (
    Chain, Frames, SeqStatus, intp_t, status, stride, frame_row,
    hmm_force_avx2, hmm_team_run, hmm_team_size, trellis_ns, chunk_bounds,
    get_chain, fill_frames, offsets_data, f64_data, raise_for_status, status_buffer,
    longest_sequence,
    STATUS_OK, STATUS_BAD_ROW, STATUS_NO_MEMORY, STATUS_UNDERFLOW,
)
cdef extern from "hmm_lanes.h" nogil:
    ctypedef struct hmm_lanes_model:
        Py_ssize_t n
        const double* startprob
        const double* transmat
        double mass_floor
        const double* scaled_table
        const double* row_log_scale
        const double* log_table
        const intp_t* rows
        Py_ssize_t n_rows
        double sum_floor
        double small_scale
        double small_product
        double posterior_deficit
    enum:
        HMM_LANE_OK
        HMM_LANE_BAD_ROW
        HMM_LANE_REDO
        HMM_LANES_MAX_STATES
    size_t hmm_lanes_work(Py_ssize_t n, Py_ssize_t t_max)
    void hmm_lanes_estep(const hmm_lanes_model* m, const Py_ssize_t* start,
                         const Py_ssize_t* length, int n_lanes, double* work, double** gamma,
                         double* xi_out, double* loglik, int* code, Py_ssize_t* frame)

cdef extern from "hmm_outer.h" nogil:
    void hmm_outer_sum(const double* a, Py_ssize_t lda, const double* v, Py_ssize_t ldv,
                       Py_ssize_t k, Py_ssize_t n, Py_ssize_t n_pad, double* M)

from _passes cimport (
    POSTERIOR_DEFICIT, SMALL_PRODUCT, SMALL_SCALE, SUM_FLOOR, backward_product,
    log_backward_step, log_forward_pass, scaled_forward_pass, normalise_row,
)
from _posteriors cimport log_posteriors, xi_size

cnp.import_array()


cdef SeqStatus estep_scaled(const Chain* ch, const Frames* fr, Py_ssize_t start,
                            Py_ssize_t stop, double* work, double* gamma, double* xi,
                            double* scales, double* alpha, double* vrows,
                            double* logprob_out) noexcept nogil:
    """Scaled E-step of one sequence, falling back to ``log_posteriors`` (_posteriors.pxd:
    the log E-step) when a precision check fires. Arguments as for log_posteriors, plus
    scratch: scales (T,), alpha (T, N), vrows (T, n_pad)."""
    cdef Py_ssize_t n = ch.n_states, n_pad = ch.n_pad, t, i, j, k, r, sn = stride(ch.n_states)
    cdef double* beta = work
    cdef double* nb = work + sn
    cdef double* swap
    cdef double* g
    cdef double* v
    cdef double* unused_last
    cdef const double* b
    cdef const double* arow
    cdef double inv, a, unused_scale
    cdef Py_ssize_t last = stop - start - 1
    cdef SeqStatus st = scaled_forward_pass(ch, fr, start, stop, work, alpha, scales,
                                            logprob_out, &unused_last, &unused_scale)
    if st.code == STATUS_UNDERFLOW:
        return log_posteriors(ch, fr, start, stop, work, gamma, xi, logprob_out)
    if st.code != STATUS_OK:
        return st
    for j in range(n):
        beta[j] = 1.0
        gamma[last * n + j] = alpha[last * n + j]
    for t in range(last - 1, -1, -1):
        r = frame_row(fr, start + t + 1)
        if r < 0:
            return status(STATUS_BAD_ROW, start + t + 1)
        b = fr.scaled_table + r * n
        inv = 1.0 / scales[t + 1]
        v = vrows + t * n_pad
        for j in range(n):
            v[j] = b[j] * beta[j] * inv
        for j in range(n, n_pad):
            v[j] = 0.0
        backward_product(ch, v, nb)  # betahat_t = A v
        swap = beta
        beta = nb
        nb = swap
        g = gamma + t * n
        arow = alpha + t * n
        for j in range(n):
            g[j] = arow[j] * beta[j]
        if not normalise_row(g, n, 1.0 - POSTERIOR_DEFICIT):
            return log_posteriors(ch, fr, start, stop, work, gamma, xi, logprob_out)
    memset(xi, 0, xi_size(ch) * sizeof(double))
    if ch.sparse:  # sum_t alphahat_t(i) v_t(j) over the non-zero transitions only
        for t in range(last):
            for i in range(n):
                a = alpha[t * n + i]
                if a == 0.0:
                    continue
                for k in range(ch.row_start[i], ch.row_start[i + 1]):
                    xi[k] += a * vrows[t * n_pad + ch.row_to[k]]
        for k in range(ch.n_nonzero):
            xi[k] *= ch.row_prob[k]
        return st
    hmm_outer_sum(alpha, n, vrows, n_pad, last, n, n_pad, xi)  # sum_t alphahat_t v_t^T
    for i in range(n):
        for j in range(n):
            xi[i * n_pad + j] *= ch.transmat[i * n + j]
    return st


cdef inline Py_ssize_t trans_size(const Chain* ch) noexcept nogil:
    """Doubles of the accumulated transition counts: (N, N), or nnz for a sparse chain."""
    return ch.n_nonzero if ch.sparse else ch.n_states * ch.n_states


cdef struct Accumulators:
    double* start        # (N,)
    double* trans        # (N, N)
    double* rows         # (n_rows, N) or NULL


cdef inline Accumulators accumulators(double* base, const Chain* ch,
                                      bint want_rows) noexcept nogil:
    """One chunk's accumulators at ``base`` (start, trans, then rows). Assigned whole,
    so that inside a parallel block the struct is a private variable of each thread."""
    cdef Accumulators acc
    acc.start = base
    acc.trans = base + ch.n_states
    acc.rows = base + ch.n_states + trans_size(ch) if want_rows else NULL
    return acc


cdef inline void add_statistics(const Chain* ch, const Frames* fr, Py_ssize_t s,
                                Py_ssize_t start, Py_ssize_t stop, double w, double* gamma,
                                const double* xi, Py_ssize_t xi_stride, bint scale_gamma,
                                Accumulators acc, SeqStatus* status_out) noexcept nogil:
    """Add the weighted statistics of a sequence whose E-step succeeded to ``acc``
    (and scale its posteriors by w when they are the caller's output)."""
    cdef Py_ssize_t n = ch.n_states, t, i, j, r
    cdef double* g
    for j in range(n):
        acc.start[j] += w * gamma[j]
    if ch.sparse:
        for i in range(ch.n_nonzero):
            acc.trans[i] += w * xi[i]
    else:
        for i in range(n):
            for j in range(n):
                acc.trans[i * n + j] += w * xi[i * xi_stride + j]
    if acc.rows != NULL and fr.rows != NULL:
        for t in range(stop - start):
            r = frame_row(fr, start + t)
            if r < 0:  # X changed under us since the forward pass read it
                status_out[s] = status(STATUS_BAD_ROW, start + t)
                return
            g = gamma + t * n
            for j in range(n):
                acc.rows[r * n + j] += w * g[j]
    if scale_gamma and w != 1.0:
        for j in range((stop - start) * n):
            gamma[j] *= w


cdef inline void estep_one(const Chain* ch, const Frames* fr, const intp_t* offsets,
                           Py_ssize_t s, Py_ssize_t t_max, bint scaling, const double* weights,
                           double* scratch, double* gamma_out, Accumulators acc,
                           double* logprob_out, SeqStatus* status_out) noexcept nogil:
    """E-step of sequence s, its statistics added to ``acc`` if it succeeds.

    scratch (see estep_scratch): 4 vectors | xi (N, n_pad) | scales (T_max) |
    alpha (T_max, N) | v rows (T_max, n_pad) | gamma (T_max, N), when gamma_out is NULL.
    """
    cdef Py_ssize_t n = ch.n_states, n_pad = ch.n_pad
    cdef Py_ssize_t start = offsets[s], stop = offsets[s + 1]
    cdef double w = weights[s] if weights != NULL else 1.0
    cdef double* xi = scratch + 4 * stride(n)
    cdef double* scales = xi + xi_size(ch)
    cdef double* alpha = scales + t_max
    cdef double* vrows = alpha + t_max * n
    cdef double* gamma = gamma_out + start * n if gamma_out != NULL else vrows + t_max * n_pad
    cdef SeqStatus st
    if w == 0.0:
        logprob_out[s] = 0.0
        status_out[s] = status(STATUS_OK, 0)
        if gamma_out != NULL:
            memset(gamma, 0, (stop - start) * n * sizeof(double))
        return
    if scaling:
        st = estep_scaled(ch, fr, start, stop, scratch, gamma, xi, scales, alpha, vrows,
                          logprob_out + s)
    else:
        st = log_posteriors(ch, fr, start, stop, scratch, gamma, xi, logprob_out + s)
    status_out[s] = st
    if st.code == STATUS_OK:
        add_statistics(ch, fr, s, start, stop, w, gamma, xi, n_pad, gamma_out != NULL, acc,
                       status_out)


cdef inline void estep_group(const Chain* ch, const Frames* fr, const intp_t* offsets,
                             const Py_ssize_t* seqs, int n_lanes, Py_ssize_t t_max,
                             const double* weights, double* scratch, double* lane_work,
                             double* gamma_out, Accumulators acc, double* logprob_out,
                             SeqStatus* status_out) noexcept nogil:
    """E-step of up to four sequences in SIMD lanes (hmm_lanes.h); a lane that trips a
    precision check is redone by estep_one.

    lane_work : hmm_lanes_work(N, T_max) doubles, then 4 x (N, N) (xi), then, when
        gamma_out is NULL, 4 x (T_max, N) (posteriors).
    """
    cdef Py_ssize_t n = ch.n_states, lane, s
    cdef hmm_lanes_model m
    cdef Py_ssize_t start[4]
    cdef Py_ssize_t length[4]
    cdef Py_ssize_t frame[4]
    cdef double* gamma[4]
    cdef double loglik[4]
    cdef int code[4]
    cdef double* xi = lane_work + hmm_lanes_work(n, t_max)
    m.n = n
    m.startprob = ch.startprob
    m.transmat = ch.transmat
    m.mass_floor = ch.mass_floor
    m.scaled_table = fr.scaled_table
    m.row_log_scale = fr.row_log_scale
    m.log_table = fr.log_table
    m.rows = fr.rows
    m.n_rows = fr.n_rows
    m.sum_floor = SUM_FLOOR
    m.small_scale = SMALL_SCALE
    m.small_product = SMALL_PRODUCT
    m.posterior_deficit = POSTERIOR_DEFICIT
    for lane in range(n_lanes):
        s = seqs[lane]
        start[lane] = offsets[s]
        length[lane] = offsets[s + 1] - offsets[s]
        if gamma_out != NULL:
            gamma[lane] = gamma_out + offsets[s] * n
        else:
            gamma[lane] = xi + 4 * n * n + lane * t_max * n
    hmm_lanes_estep(&m, start, length, n_lanes, lane_work, gamma, xi, loglik, code, frame)
    for lane in range(n_lanes):
        s = seqs[lane]
        if code[lane] == HMM_LANE_OK:
            logprob_out[s] = loglik[lane]
            status_out[s] = status(STATUS_OK, 0)
            add_statistics(ch, fr, s, start[lane], start[lane] + length[lane],
                           weights[s] if weights != NULL else 1.0, gamma[lane], xi + lane * n * n,
                           n, gamma_out != NULL, acc, status_out)
        elif code[lane] == HMM_LANE_BAD_ROW:
            logprob_out[s] = -INFINITY
            status_out[s] = status(STATUS_BAD_ROW, frame[lane])
        else:
            estep_one(ch, fr, offsets, s, t_max, True, weights, scratch, gamma_out, acc,
                      logprob_out, status_out)


cdef inline void estep_chunk(const Chain* ch, const Frames* fr, const intp_t* offsets,
                             Py_ssize_t first, Py_ssize_t last, Py_ssize_t t_max, bint scaling,
                             bint lanes, const double* weights, double* scratch,
                             double* lane_work, double* gamma_out, Accumulators acc,
                             double* logprob_out, SeqStatus* status_out) noexcept nogil:
    """E-step of sequences first..last-1, four at a time in SIMD lanes when ``lanes``."""
    cdef Py_ssize_t s = first
    cdef Py_ssize_t seqs[4]
    cdef int k
    if not lanes:
        for s in range(first, last):
            estep_one(ch, fr, offsets, s, t_max, scaling, weights, scratch, gamma_out, acc,
                      logprob_out, status_out)
        return
    while s < last:
        k = 0
        while s < last and k < 4:
            if weights != NULL and weights[s] == 0.0:  # skipped: estep_one handles it
                estep_one(ch, fr, offsets, s, t_max, scaling, weights, scratch, gamma_out,
                          acc, logprob_out, status_out)
            else:
                seqs[k] = s
                k += 1
            s += 1
        if k == 1:
            estep_one(ch, fr, offsets, seqs[0], t_max, scaling, weights, scratch, gamma_out,
                      acc, logprob_out, status_out)
        elif k > 1:
            estep_group(ch, fr, offsets, seqs, k, t_max, weights, scratch, lane_work,
                        gamma_out, acc, logprob_out, status_out)


cdef enum:
    MAX_CHUNKS = 64          # chunk accumulators (fewer when they would exceed ...)
    MAX_CHUNK_DOUBLES = 4194304  # ... 32 MB in all)


cdef inline size_t estep_scratch(const Chain* ch, Py_ssize_t t_max,
                                 bint own_gamma) noexcept nogil:
    """Doubles of scratch one thread needs (layout in estep_one)."""
    cdef Py_ssize_t n = ch.n_states
    return (4 * stride(n) + xi_size(ch) + t_max + t_max * n + t_max * ch.n_pad
            + (t_max * n if own_gamma else 0))


cdef struct EstepRun:
    # one estep call, shared by the threads of hmm_team_run (one task per chunk)
    const Chain* chain
    const Frames* frames
    const intp_t* offsets
    const intp_t* bounds
    Py_ssize_t t_max
    bint scaling
    bint lanes
    bint want_rows
    const double* weights
    double** scratch            # per worker, allocated by the worker on its first task
    size_t scratch_doubles
    size_t lane_offset
    double* posteriors
    double* acc_all
    Py_ssize_t acc_size
    double* logprob
    SeqStatus* status


cdef void estep_task(void* ctx, Py_ssize_t chunk, int worker) noexcept nogil:
    """E-step of one chunk of sequences into the chunk's own accumulators."""
    cdef EstepRun* run = <EstepRun*> ctx
    cdef Py_ssize_t s
    cdef double* scratch = run.scratch[worker]
    if scratch == NULL:
        scratch = <double*> malloc(run.scratch_doubles * sizeof(double))
        run.scratch[worker] = scratch
    if scratch == NULL:
        for s in range(run.bounds[chunk], run.bounds[chunk + 1]):
            run.status[s] = status(STATUS_NO_MEMORY, run.offsets[s])
        return
    estep_chunk(run.chain, run.frames, run.offsets, run.bounds[chunk], run.bounds[chunk + 1],
                run.t_max, run.scaling, run.lanes, run.weights, scratch,
                scratch + run.lane_offset, run.posteriors,
                accumulators(run.acc_all + chunk * run.acc_size, run.chain, run.want_rows),
                run.logprob, run.status)


cdef enum:
    ESTEP_PASSES = 3    # an E-step costs about three trellis passes (team break-even)


def estep(object chain, tuple emission, rows, offsets, weights, bint scaling,
          int n_threads=1, bint want_rows=True, bint want_posteriors=False):
    """Expected sufficient statistics of every sequence.

    Parameters
    ----------
    chain : capsule from hmmfast._chain.compile_chain
    emission : tuple (log_table, scaled_table, row_log_scale)
        As for hmmfast._trellis.forward (the scaled forms may be None when ``scaling``
        is false).
    rows : ndarray of shape (T,), intp, or None
        Table row of each frame (None: frame t uses row t).
    offsets : ndarray of shape (n_seq + 1,), intp, or None for one sequence.
    weights : ndarray of shape (n_seq,), float64 >= 0, or None (all 1).
    scaling : bool
        Scaled E-step (with exact fallbacks) or log-space E-step.
    n_threads : int
        Threads over sequences.
    want_rows : bool
        Accumulate weighted posteriors per table row (``rows`` must be given).
    want_posteriors : bool
        Return the weighted posteriors w_s * gamma, (T, N).

    Returns
    -------
    logprob : ndarray of shape (n_seq,)
        log P(X_s) per sequence (0 for a zero-weight sequence, which is skipped).
    start : ndarray of shape (N,)
    trans : ndarray of shape (N, N), or (nnz,) for a sparse chain (its CSR order)
    row_counts : ndarray of shape (n_rows, N), or None
    posteriors : ndarray of shape (T, N), or None

    Raises
    ------
    hmmfast.ImpossibleSequenceError
        A sequence (of positive weight) has probability zero.
    hmmfast.HMMInputError
        A table row index out of range.
    """
    cdef const Chain* c = get_chain(chain)
    cdef Frames f
    cdef intp_t single_offsets[2]
    cdef SeqStatus single_status
    cdef Py_ssize_t n = c.n_states, n_seq, s, t_max = 0, k, n_team
    cdef Py_ssize_t n_frames = fill_frames(&f, emission, rows, n, scaling)
    cdef const intp_t* off = offsets_data(offsets, n_frames, single_offsets, &n_seq)
    cdef const double* w = NULL
    if weights is not None:
        w = f64_data(weights, n_seq, "weights")
    if want_rows and f.rows == NULL:
        raise ValueError("internal: want_rows needs table rows")
    t_max = longest_sequence(off, n_seq)
    cdef Py_ssize_t n_rows_acc = f.n_rows if want_rows else 0
    cdef Py_ssize_t acc_size = n + trans_size(c) + n_rows_acc * n
    cdef Py_ssize_t n_chunks = max(1, min(n_seq, MAX_CHUNKS, MAX_CHUNK_DOUBLES // acc_size))
    cdef intp_t* bounds = <intp_t*> malloc((n_chunks + 1) * sizeof(intp_t))
    if bounds == NULL:
        raise MemoryError()
    n_chunks = chunk_bounds(off, n_seq, n_chunks, bounds)
    n_team = hmm_team_size(n_threads, n_chunks, ESTEP_PASSES * trellis_ns(n_frames, n))
    cdef size_t scratch_doubles = estep_scratch(c, t_max, not want_posteriors)
    cdef bint lanes = scaling and n <= HMM_LANES_MAX_STATES and n_seq > 1 and not c.sparse
    if lanes:
        scratch_doubles += (hmm_lanes_work(n, t_max) + 4 * n * n
                            + (0 if want_posteriors else 4 * t_max * n))
    logprob = np.empty(n_seq)
    posteriors = np.empty((n_frames, n)) if want_posteriors else None
    cdef EstepRun run
    run.chain = c
    run.frames = &f
    run.offsets = off
    run.bounds = bounds
    run.t_max = t_max
    run.scaling = scaling
    run.lanes = lanes
    run.want_rows = want_rows
    run.weights = w
    run.scratch_doubles = scratch_doubles
    run.lane_offset = estep_scratch(c, t_max, not want_posteriors)
    run.posteriors = <double*> cnp.PyArray_DATA(posteriors) if want_posteriors else NULL
    run.acc_size = acc_size
    run.logprob = <double*> cnp.PyArray_DATA(logprob)
    run.acc_all = <double*> calloc(n_chunks * acc_size, sizeof(double))
    run.scratch = <double**> calloc(n_team, sizeof(double*))
    if run.acc_all == NULL or run.scratch == NULL:
        free(run.acc_all)
        free(run.scratch)
        free(bounds)
        raise MemoryError()
    cdef SeqStatus* st = NULL
    cdef double* acc_all = run.acc_all
    single_status.code = STATUS_OK
    try:
        st = status_buffer(n_seq, &single_status)
        run.status = st
        with nogil:
            hmm_team_run(n_team, n_chunks, estep_task, &run)
            for s in range(n_team):
                free(run.scratch[s])
            for s in range(1, n_chunks):  # chunk order: the same sums for every team
                for k in range(acc_size):
                    acc_all[k] += acc_all[s * acc_size + k]
        for s in range(n_seq):
            if st[s].code == STATUS_NO_MEMORY:
                raise MemoryError(f"could not allocate {scratch_doubles * 8} bytes of scratch")
        raise_for_status(st, n_seq, &f, off, True)
        start = np.array(<double[:n]> acc_all)
        trans = np.array(<double[:trans_size(c)]> (acc_all + n))
        if not c.sparse:
            trans = trans.reshape(n, n)
        row_counts = None
        if want_rows:
            row_counts = np.array(<double[:n_rows_acc * n]> (acc_all + n + trans_size(c))
                                  ).reshape(n_rows_acc, n)
    finally:
        if st != &single_status:
            free(st)
        free(acc_all)
        free(run.scratch)
        free(bounds)
    return logprob, start, trans, row_counts, posteriors


def log_lattices(object chain, tuple emission):
    """log alpha and log beta of one sequence (the generic fitting path's lattices).

    Returns
    -------
    logprob : float
    log_alpha, log_beta : ndarray of shape (T, N)
    """
    cdef const Chain* c = get_chain(chain)
    cdef Frames f
    cdef Py_ssize_t n = c.n_states, t, r, sn = stride(c.n_states)
    cdef Py_ssize_t n_frames = fill_frames(&f, emission, None, n, False)
    if n_frames < 1:
        raise ValueError("internal: no frames")
    log_alpha = np.empty((n_frames, n))
    log_beta = np.empty((n_frames, n))
    cdef double* la = <double*> cnp.PyArray_DATA(log_alpha)
    cdef double* lb = <double*> cnp.PyArray_DATA(log_beta)
    cdef double* work = <double*> malloc(4 * sn * sizeof(double))
    cdef double ll = -INFINITY
    cdef SeqStatus st
    cdef intp_t single[2]
    single[0] = 0
    single[1] = n_frames
    if work == NULL:
        raise MemoryError()
    try:
        with nogil:
            st = log_forward_pass(c, &f, 0, n_frames, work, la, &ll)
            if st.code == STATUS_OK:
                for r in range(n):
                    lb[(n_frames - 1) * n + r] = 0.0
                for t in range(n_frames - 2, -1, -1):
                    # the step writes n_pad outputs: into scratch, then the row's n
                    log_backward_step(c, f.log_table + (t + 1) * n, lb + (t + 1) * n,
                                      work + 2 * sn, work + 3 * sn, work + sn)
                    memcpy(lb + t * n, work + sn, n * sizeof(double))
        raise_for_status(&st, 1, &f, single, True)
    finally:
        free(work)
    return ll, log_alpha, log_beta


def _force_simd(int flag):
    """Testing hook: choose this module's vector path (1: AVX2 if the CPU has it,
    0: SSE2, -1: probe the CPU again). Returns 1 when AVX2 is now in use."""
    return hmm_force_avx2(flag)
