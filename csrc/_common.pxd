# Shared types and inline helpers for every hmmfast kernel module.
#
# Design note
# -----------
# Kernels see a model as two plain structs:
#
# * ``Chain``: the Markov chain, start and transition probabilities together with their
#   logs (zeros map to -inf), copies of both transition matrices (and of the transpose,
#   for backward sweeps) with rows padded to n_pad (a multiple of 4) columns for the
#   vectorised steps of hmm_steps.h, the non-zero transitions by row and by column, and
#   ``mass_floor``, the precision guard of the scaled kernels (see _trellis.pyx). Built
#   once per parameter set by _chain.pyx and handed to kernels as a PyCapsule.
# * ``Frames``: where each time step's emission scores come from. Row ``rows[t]`` of a
#   table (CategoricalHMM: one row per symbol) or, with ``rows == NULL``, row ``t`` of a
#   dense (T, N) matrix (the functional API and the generic emission hook). ``log_table``
#   holds log-probabilities; ``scaled_table`` holds the same rows exponentiated after
#   subtracting each row's maximum, whose value is kept in ``row_log_scale``. The scaling
#   kernels use the scaled form, the log kernels the log form.
#
# Many sequences are one concatenated frame array plus ``offsets`` (n_seq + 1). Each
# per-sequence kernel has the signature ``seq_kernel_t`` and reports a ``SeqStatus``;
# ``run_sequences`` runs them in runs of about equal frame counts, on the calling thread
# or on a team of hmm_team.h (``team_size`` decides: never for a call too small or a
# machine too busy to gain), each thread with its own scratch buffer. Errors leave a
# kernel only as status codes; the Python wrapper raises after the nogil block.
#
# Validation contract: ``rows`` values are range-checked by ``frame_row`` as they are
# read (the only place kernels touch user-controlled indices); everything else is
# validated by the Python layer before a kernel runs.

from libc.stdlib cimport malloc, calloc, free
from libc.math cimport INFINITY
from cpython.pycapsule cimport PyCapsule_GetPointer

ctypedef Py_ssize_t intp_t

cdef extern from "hmm_steps.h" nogil:
    void hmm_maxplus_step(const double* delta, const double* log_a, Py_ssize_t n,
                          Py_ssize_t n_pad, double* best, double* arg)
    void hmm_vecmat_step(const double* p, const double* a, Py_ssize_t n, Py_ssize_t n_pad,
                         double* out)
    int hmm_force_avx2(int flag)

cdef extern from "hmm_team.h" nogil:
    ctypedef void (*hmm_task_fn)(void* ctx, Py_ssize_t task, int worker) noexcept nogil
    void hmm_team_run(int n_workers, Py_ssize_t n_tasks, hmm_task_fn fn, void* ctx)
    int hmm_team_size(int request, Py_ssize_t n_tasks, double work_ns)
    int hmm_running_others()
    int hmm_online_cpus()

cdef enum:
    STATUS_OK = 0
    STATUS_BAD_ROW = 1        # rows[frame] outside [0, n_rows)
    STATUS_IMPOSSIBLE = 2     # no state path explains frames start..frame
    STATUS_NO_MEMORY = 3      # scratch allocation failed
    # STATUS_UNDERFLOW: a scaled pass could lose precision here (never leaves _trellis: the
    # sequence is finished in log space)
    STATUS_UNDERFLOW = 4
    STATUS_PRUNED = 5         # beam pruning removed every path at this frame

cdef struct SeqStatus:
    int code
    Py_ssize_t frame          # global frame index the code refers to

cdef struct Chain:
    Py_ssize_t n_states
    Py_ssize_t n_pad              # N rounded up to a multiple of 4
    # sparse: only the non-zero forms below exist, the dense and padded matrices are NULL
    # (see _chain.pyx)
    bint sparse
    const double* startprob       # (N,)
    const double* log_startprob   # (N,)
    const double* transmat        # (N, N), row i = P(next | i)
    const double* log_transmat    # (N, N)
    const double* transmat_pad    # (N, n_pad), pad columns 0
    const double* log_transmat_pad  # (N, n_pad), pad columns -inf
    const double* transmat_t_pad  # (N, n_pad): transmat.T, pad columns 0 (backward sweeps)
    Py_ssize_t n_nonzero          # non-zero transitions
    const intp_t* row_start       # (N + 1,) CSR: successors of i are row_to[row_start[i]:...]
    const intp_t* row_to          # (nnz,)
    const double* row_prob        # (nnz,) A_ij
    const double* row_log         # (nnz,) log A_ij
    const intp_t* col_start       # (N + 1,) CSC: predecessors of j are col_from[col_start[j]:...]
    const intp_t* col_from        # (nnz,)
    const double* col_prob        # (nnz,)
    const double* col_log         # (nnz,)
    # mass_floor: 0 when every transition is >= WELL_MIXED (no per-state guard); else
    # scaled alpha entries below it end the scaled pass
    double mass_floor

cdef extern from *:
    """
    #define HMMFAST_CHAIN_CAPSULE "hmmfast.Chain"
    """
    const char* CHAIN_CAPSULE "HMMFAST_CHAIN_CAPSULE"

cdef struct Frames:
    const void* extra             # a kernel's own per-call parameters (beam widths), or NULL
    const double* log_table       # (n_rows, N)
    const double* scaled_table    # (n_rows, N) or NULL when only log kernels run
    const double* row_log_scale   # (n_rows,)  or NULL when only log kernels run
    const intp_t* rows            # (T,) or NULL (frame t uses row t)
    Py_ssize_t n_rows

ctypedef SeqStatus (*seq_kernel_t)(
    const Chain* chain, const Frames* frames, Py_ssize_t start, Py_ssize_t stop,
    char* scratch, double* logprob_out, double* posteriors_out, intp_t* states_out,
) noexcept nogil


cdef inline SeqStatus status(int code, Py_ssize_t frame) noexcept nogil:
    cdef SeqStatus s
    s.code = code
    s.frame = frame
    return s


cdef inline Py_ssize_t frame_row(const Frames* frames, Py_ssize_t t) noexcept nogil:
    """Table row used at frame t, or -1 when the stored index is out of range."""
    cdef Py_ssize_t r = frames.rows[t] if frames.rows != NULL else t
    if <size_t> r >= <size_t> frames.n_rows:
        return -1
    return r


cdef inline Py_ssize_t stride(Py_ssize_t n) noexcept nogil:
    """Doubles between consecutive scratch vectors of length n.

    Rounded up to a whole cache line plus one spare line, so a vector being written never
    shares a line with one being read: adjacent rolling buffers measured 2x slower at
    N = 5 (the CPU's store-to-load disambiguation serialises them). Also leaves room for
    the n_pad outputs the vectorised steps write.
    """
    return ((n + 7) & ~7) + 8


cdef inline Py_ssize_t longest_sequence(const intp_t* off, Py_ssize_t n_seq) noexcept nogil:
    """Frames in the longest of n_seq sequences with boundaries ``off`` (n_seq + 1)."""
    cdef Py_ssize_t s, t_max = 0
    for s in range(n_seq):
        if off[s + 1] - off[s] > t_max:
            t_max = off[s + 1] - off[s]
    return t_max


cdef inline Py_ssize_t argmax_first(const double* x, Py_ssize_t n) noexcept nogil:
    """Index of the largest entry; ties go to the lowest index."""
    cdef Py_ssize_t i, best = 0
    for i in range(1, n):
        if x[i] > x[best]:
            best = i
    return best


cdef inline double max_of(const double* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef double m = -INFINITY
    for i in range(n):
        if x[i] > m:
            m = x[i]
    return m


cdef struct SeqRun:
    # one kernel call over many sequences, shared by the threads of run_sequences
    seq_kernel_t kernel
    size_t scratch_bytes
    const Chain* chain
    const Frames* frames
    const intp_t* offsets
    const intp_t* bounds       # task k runs sequences bounds[k] .. bounds[k + 1] - 1
    char** scratch             # per worker, allocated by the worker on its first task
    double* logprob_out
    double* posteriors_out
    intp_t* states_out
    SeqStatus* status_out


cdef inline void run_task(void* ctx, Py_ssize_t k, int worker) noexcept nogil:
    """hmm_team task k of a SeqRun: its run of sequences, on the worker's scratch."""
    cdef SeqRun* run = <SeqRun*> ctx
    cdef Py_ssize_t s
    cdef char* scratch = run.scratch[worker]
    if scratch == NULL:
        scratch = <char*> malloc(run.scratch_bytes)
        run.scratch[worker] = scratch
    for s in range(run.bounds[k], run.bounds[k + 1]):
        if scratch == NULL:
            run.status_out[s] = status(STATUS_NO_MEMORY, run.offsets[s])
        else:
            run.status_out[s] = run.kernel(run.chain, run.frames, run.offsets[s],
                                           run.offsets[s + 1], scratch, run.logprob_out + s,
                                           run.posteriors_out, run.states_out)


cdef inline Py_ssize_t chunk_bounds(const intp_t* off, Py_ssize_t n_seq, Py_ssize_t n_chunks,
                                    intp_t* bounds) noexcept nogil:
    """Cut sequences 0..n_seq-1 into at most n_chunks runs of about equal frame counts;
    bounds[c]..bounds[c+1] is chunk c. Returns the number of chunks."""
    cdef Py_ssize_t c = 0, s
    cdef double per_chunk = <double> (off[n_seq] - off[0]) / n_chunks
    bounds[0] = 0
    for s in range(1, n_seq):
        if off[s] - off[0] >= (c + 1) * per_chunk:
            c += 1
            bounds[c] = s
    bounds[c + 1] = n_seq
    return c + 1


cdef enum:
    TASKS_PER_THREAD = 16     # runs of sequences per thread: balance without per-task cost


cdef inline void run_sequences(
    seq_kernel_t kernel, size_t scratch_bytes, const Chain* chain, const Frames* frames,
    const intp_t* offsets, Py_ssize_t n_seq, int n_threads,
    double* logprob_out, double* posteriors_out, intp_t* states_out, SeqStatus* status_out,
) noexcept nogil:
    """Run ``kernel`` on every sequence; sequence s spans offsets[s]:offsets[s + 1].
    ``n_threads`` is the team (from team_size): 1 runs on the calling thread."""
    cdef SeqRun run
    cdef intp_t single_bounds[2]
    cdef char* scratch_one[1]
    cdef Py_ssize_t n_tasks = 1, w
    run.kernel = kernel
    run.scratch_bytes = scratch_bytes
    run.chain = chain
    run.frames = frames
    run.offsets = offsets
    run.logprob_out = logprob_out
    run.posteriors_out = posteriors_out
    run.states_out = states_out
    run.status_out = status_out
    single_bounds[0] = 0
    single_bounds[1] = n_seq
    run.bounds = single_bounds
    scratch_one[0] = NULL
    run.scratch = scratch_one
    if n_threads > 1 and n_seq > 1:
        run.scratch = <char**> calloc(n_threads, sizeof(char*))
        run.bounds = <intp_t*> malloc((min(n_seq, TASKS_PER_THREAD * n_threads) + 1)
                                      * sizeof(intp_t))
        if run.scratch == NULL or run.bounds == NULL:  # run on this thread instead
            free(run.scratch)
            free(<void*> run.bounds)
            run.scratch = scratch_one
            run.bounds = single_bounds
            n_threads = 1
        else:
            n_tasks = chunk_bounds(offsets, n_seq, min(n_seq, TASKS_PER_THREAD * n_threads),
                                   <intp_t*> run.bounds)
    hmm_team_run(n_threads, n_tasks, run_task, &run)  # on this thread alone for 1
    for w in range(n_threads if run.scratch != scratch_one else 1):
        free(run.scratch[w])
    if run.scratch != scratch_one:
        free(run.scratch)
        free(<void*> run.bounds)


# ---------------------------------------------------------------------------------------
# Python-side helpers shared by the kernel modules' def wrappers (they hold the GIL).
# They turn already-validated ndarrays into the structs above, checking only what a
# wrapper must never trust (dtype, contiguity, sizes), at a cost of a few ns per array.
# ---------------------------------------------------------------------------------------

cimport numpy as cnp


cdef inline const double* f64_data(object arr, Py_ssize_t size, str name) except NULL:
    if (not cnp.PyArray_Check(arr)
            or cnp.PyArray_TYPE(<cnp.ndarray> arr) != cnp.NPY_DOUBLE
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> arr)
            or not cnp.PyArray_ISBEHAVED_RO(<cnp.ndarray> arr)
            or cnp.PyArray_SIZE(<cnp.ndarray> arr) != size):
        raise TypeError(f"internal: {name} must be a native C-contiguous float64 array of "
                        f"size {size}")
    return <const double*> cnp.PyArray_DATA(<cnp.ndarray> arr)


cdef inline const intp_t* intp_data(object arr, str name) except NULL:
    if (not cnp.PyArray_Check(arr)
            or cnp.PyArray_TYPE(<cnp.ndarray> arr) != cnp.NPY_INTP
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> arr)
            or not cnp.PyArray_ISBEHAVED_RO(<cnp.ndarray> arr)):
        raise TypeError(f"internal: {name} must be a native C-contiguous intp array")
    return <const intp_t*> cnp.PyArray_DATA(<cnp.ndarray> arr)


cdef inline int float_frames(object X, Py_ssize_t* T, Py_ssize_t* D, const void** data,
                             bint* single) except -1:
    """Check X: a C-contiguous, aligned (T, D) float64 or float32 array (frames of feature
    vectors, read without a copy). ``D[0]``: the width X must have, or -1 to take X's."""
    if (not cnp.PyArray_Check(X) or cnp.PyArray_NDIM(<cnp.ndarray> X) != 2
            or (D[0] >= 0 and cnp.PyArray_DIM(<cnp.ndarray> X, 1) != D[0])
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> X)
            or not cnp.PyArray_ISBEHAVED_RO(<cnp.ndarray> X)):
        raise TypeError(f"internal: X must be a C-contiguous aligned "
                        f"(T, {D[0] if D[0] >= 0 else 'D'}) array")
    cdef int typ = cnp.PyArray_TYPE(<cnp.ndarray> X)
    if typ != cnp.NPY_DOUBLE and typ != cnp.NPY_FLOAT:
        raise TypeError("internal: X must be float64 or float32")
    single[0] = typ == cnp.NPY_FLOAT
    T[0] = cnp.PyArray_DIM(<cnp.ndarray> X, 0)
    D[0] = cnp.PyArray_DIM(<cnp.ndarray> X, 1)
    data[0] = cnp.PyArray_DATA(<cnp.ndarray> X)
    return 0


cdef inline bint symbol_array(object X) noexcept:
    """X is a kernel-ready symbol array: an aligned, C-contiguous intp ndarray of shape
    (T,) or (T, 1), T >= 1 (values are range-checked by the kernels as they read them)."""
    if not cnp.PyArray_Check(X):
        return False
    cdef cnp.ndarray a = <cnp.ndarray> X
    if (cnp.PyArray_TYPE(a) != cnp.NPY_INTP or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or not cnp.PyArray_ISBEHAVED_RO(a) or cnp.PyArray_SIZE(a) < 1):
        return False
    return cnp.PyArray_NDIM(a) == 1 or (cnp.PyArray_NDIM(a) == 2 and cnp.PyArray_DIM(a, 1) == 1)


cdef inline Py_ssize_t padded_width(Py_ssize_t n) noexcept nogil:
    return (n + 3) & ~3


cdef inline const Chain* get_chain(object chain) except NULL:
    """The Chain inside a capsule made by hmmfast._chain.compile_chain."""
    return <const Chain*> PyCapsule_GetPointer(chain, CHAIN_CAPSULE)


cdef inline Py_ssize_t fill_frames(Frames* f, tuple emission, object rows, Py_ssize_t n_states,
                                   bint need_scaled) except -1:
    """emission = (log_table, scaled_table, row_log_scale); returns the number of frames.

    ``scaled_table``/``row_log_scale`` may be None when ``need_scaled`` is false.
    """
    cdef cnp.ndarray log_table = <cnp.ndarray?> emission[0]
    if cnp.PyArray_NDIM(log_table) != 2 or cnp.PyArray_DIM(log_table, 1) != n_states:
        raise TypeError("internal: log_table must have shape (n_rows, n_states)")
    f.extra = NULL
    f.n_rows = cnp.PyArray_DIM(log_table, 0)
    f.log_table = f64_data(log_table, f.n_rows * n_states, "log_table")
    if need_scaled:
        f.scaled_table = f64_data(emission[1], f.n_rows * n_states, "scaled_table")
        f.row_log_scale = f64_data(emission[2], f.n_rows, "row_log_scale")
    else:
        f.scaled_table = NULL
        f.row_log_scale = NULL
    if rows is None:
        f.rows = NULL
        return f.n_rows
    f.rows = intp_data(rows, "rows")
    return cnp.PyArray_SIZE(<cnp.ndarray> rows)


cdef inline const intp_t* offsets_data(object offsets, Py_ssize_t n_frames, intp_t* single,
                                       Py_ssize_t* n_seq) except NULL:
    """Sequence boundaries; ``None`` means one sequence over all frames (uses ``single``)."""
    cdef const intp_t* off
    cdef Py_ssize_t s, n
    if offsets is None:
        if n_frames < 1:
            raise ValueError("internal: no frames")
        single[0] = 0
        single[1] = n_frames
        n_seq[0] = 1
        return single
    off = intp_data(offsets, "offsets")
    n = cnp.PyArray_SIZE(<cnp.ndarray> offsets) - 1
    if n < 0 or off[0] != 0 or off[n] != n_frames:
        raise ValueError("internal: offsets must run from 0 to the number of frames")
    for s in range(n):
        if off[s + 1] <= off[s]:
            raise ValueError("internal: offsets must be strictly increasing")
    n_seq[0] = n
    return off


cdef inline int raise_for_status(const SeqStatus* st, Py_ssize_t n_seq, const Frames* frames,
                                 const intp_t* offsets, bint impossible_is_error) except -1:
    """Raise the library error for the first failed sequence, if any."""
    cdef Py_ssize_t s
    cdef int code
    for s in range(n_seq):
        code = st[s].code
        if code == STATUS_OK or (not impossible_is_error and (code == STATUS_IMPOSSIBLE
                                                              or code == STATUS_PRUNED)):
            continue
        from hmmfast._errors import raise_kernel_status
        raise_kernel_status(
            code, s, st[s].frame, offsets[s],
            frames.rows[st[s].frame] if (code == STATUS_BAD_ROW and frames.rows != NULL) else -1,
            frames.n_rows,
        )
    return 0


cdef inline SeqStatus* status_buffer(Py_ssize_t n_seq, SeqStatus* single) except NULL:
    if n_seq <= 1:
        return single
    cdef SeqStatus* buf = <SeqStatus*> malloc(n_seq * sizeof(SeqStatus))
    if buf == NULL:
        raise MemoryError()
    return buf


cdef enum:
    # below this many trellis cells (frames x N x N) a kernel call keeps the GIL: dropping
    # and retaking it (~0.1 us) would cost more than the few microseconds of work
    NOGIL_MIN_CELLS = 20000

cdef inline double trellis_ns(Py_ssize_t n_frames, Py_ssize_t n_states) noexcept nogil:
    """Estimated single-thread time of one trellis pass (forward, or Viterbi) in ns:
    measured ~12 ns per frame at N = 5 (latency-bound), ~0.2 ns per cell at N = 64."""
    return n_frames * (8.0 + 0.2 * <double> n_states * <double> n_states)


cdef inline int team_size(int n_threads, Py_ssize_t n_tasks, Py_ssize_t n_frames,
                          Py_ssize_t n_states) noexcept nogil:
    """Threads worth starting for n_tasks independent tasks of n_frames in all (one
    trellis pass each; hmm_team.h decides: explicit or automatic request, break-even,
    busy machine)."""
    return hmm_team_size(n_threads, n_tasks, trellis_ns(n_frames, n_states))


cdef enum:
    OUTPUT_NONE = 0
    OUTPUT_POSTERIORS = 1     # (T, N) float64
    OUTPUT_STATES = 2         # (T,) intp
    OUTPUT_STEPS = 3          # (T,) float64


cdef inline object run_kernel(
    seq_kernel_t kernel, size_t bytes_per_state, size_t bytes_per_frame, size_t bytes_per_cell,
    bint need_scaled, int output, bint impossible_is_error,
    object chain, tuple emission, object rows, object offsets, object logprob_out, int n_threads,
    const void* extra=NULL,
):
    """The shared body of every def wrapper: structs, outputs, scratch size, nogil run, errors.

    Scratch per thread = bytes_per_state * stride(N) + bytes_per_frame * T_max
    + bytes_per_cell * T_max * N, where T_max is the longest sequence; kernels place
    their O(N) vectors stride(N) doubles apart, then per-frame, then per-cell storage.
    Returns the total log-probability (float), or (total, output array).
    """
    cdef const Chain* c = get_chain(chain)
    cdef Frames f
    cdef intp_t single_offsets[2]
    cdef SeqStatus single_status
    cdef Py_ssize_t n_seq, s, t_max = 0
    cdef double single_logprob, total = 0.0
    cdef double* logprob = &single_logprob
    cdef double* post = NULL  # (T, N) posteriors, or (T,) per-step values
    cdef intp_t* states = NULL
    cdef cnp.ndarray out = None
    cdef cnp.npy_intp dims[2]
    single_status.code = STATUS_OK  # written by the kernel; initialised for the compiler
    cdef Py_ssize_t n_frames = fill_frames(&f, emission, rows, c.n_states, need_scaled)
    f.extra = extra
    cdef const intp_t* off = offsets_data(offsets, n_frames, single_offsets, &n_seq)
    t_max = longest_sequence(off, n_seq)
    if logprob_out is not None:
        logprob = <double*> f64_data(logprob_out, n_seq, "logprob_out")
    elif n_seq > 1:
        logprob = <double*> malloc(n_seq * sizeof(double))
        if logprob == NULL:
            raise MemoryError()
    if output == OUTPUT_POSTERIORS:
        dims[0] = n_frames
        dims[1] = c.n_states
        out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_DOUBLE, 0)
        post = <double*> cnp.PyArray_DATA(out)
    elif output == OUTPUT_STATES:
        dims[0] = n_frames
        out = cnp.PyArray_EMPTY(1, dims, cnp.NPY_INTP, 0)
        states = <intp_t*> cnp.PyArray_DATA(out)
    elif output == OUTPUT_STEPS:
        dims[0] = n_frames
        out = cnp.PyArray_EMPTY(1, dims, cnp.NPY_DOUBLE, 0)
        post = <double*> cnp.PyArray_DATA(out)
    cdef size_t scratch_bytes = (bytes_per_state * stride(c.n_states) + bytes_per_frame * t_max
                                 + bytes_per_cell * t_max * c.n_states)
    cdef SeqStatus* st = NULL
    try:
        st = status_buffer(n_seq, &single_status)
        # a short call keeps the GIL: releasing and retaking it costs more than the work
        if n_frames * c.n_states * c.n_states >= NOGIL_MIN_CELLS:
            with nogil:
                run_sequences(kernel, scratch_bytes, c, &f, off, n_seq,
                              team_size(n_threads, n_seq, n_frames, c.n_states),
                              logprob, post, states, st)
        else:
            run_sequences(kernel, scratch_bytes, c, &f, off, n_seq, 1, logprob, post,
                          states, st)
        for s in range(n_seq):
            if st[s].code == STATUS_NO_MEMORY:
                raise MemoryError(f"could not allocate {scratch_bytes} bytes of scratch")
        raise_for_status(st, n_seq, &f, off, impossible_is_error)
        for s in range(n_seq):
            total += logprob[s]
    finally:
        if st != &single_status:
            free(st)
        if logprob_out is None and logprob != &single_logprob:
            free(logprob)
    if output == OUTPUT_NONE:
        return total
    return total, out
