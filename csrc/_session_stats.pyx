# Per-session reductions for hmmfast.monitor: the statistics behind the anomaly detector's
# reasons (hmmfast/monitor/_reasons.py).
#
# Design note
# -----------
# No HMM arithmetic here: these are plain reductions over what the kernels already
# produced for a batch of sessions (one concatenated array plus offsets), done in one
# pass per session instead of several NumPy passes over the whole batch:
#
# * ``path_stats``: over a concatenated Viterbi path, each session's number of state
#   switches and its longest run in one state;
# * ``step_stats``: over concatenated per-step log conditionals log P(o_t | o_<t), each
#   session's smallest step and its number of steps below a floor (only the session's
#   own first ``own`` steps count there, so an appended end-of-session step can be left
#   out without copying the array).
#
# Validation: the wrappers check dtypes, contiguity and shapes, and that the offsets
# start at 0, never decrease and end at the array's length (an O(S) serial loop before
# the parallel one), so the loops read only inside the arrays. Sessions run across
# ``n_threads`` (OpenMP, dynamic schedule in chunks of CHUNK sessions) when the batch
# holds at least PARALLEL_MIN_FRAMES frames; a small batch never starts a team.

from libc.math cimport INFINITY

import numpy as np

cimport numpy as cnp
from cython.parallel cimport prange
from _common cimport intp_t

cnp.import_array()

cdef enum:
    PARALLEL_MIN_FRAMES = 65536
    CHUNK = 2048  # sessions per task: a thread that the OS pauses holds up little


cdef const intp_t* _intp(object arr, str name) except NULL:
    cdef cnp.ndarray a = <cnp.ndarray?> arr
    if (cnp.PyArray_TYPE(a) != cnp.NPY_INTP or cnp.PyArray_NDIM(a) != 1
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)):
        raise TypeError(f"internal: {name} must be a 1-D C-contiguous intp array")
    return <const intp_t*> cnp.PyArray_DATA(a)


cdef const double* _f64(object arr, str name) except NULL:
    cdef cnp.ndarray a = <cnp.ndarray?> arr
    if (cnp.PyArray_TYPE(a) != cnp.NPY_DOUBLE or cnp.PyArray_NDIM(a) != 1
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISALIGNED(a)):
        raise TypeError(f"internal: {name} must be a 1-D C-contiguous float64 array")
    return <const double*> cnp.PyArray_DATA(a)


cdef Py_ssize_t _check_offsets(object offsets, Py_ssize_t n_items, str name) except -1:
    """Number of sessions; offsets must be (S + 1,) from 0 to n_items, non-decreasing."""
    cdef const intp_t* off = _intp(offsets, name)
    cdef Py_ssize_t n_seq = cnp.PyArray_SIZE(<cnp.ndarray> offsets) - 1, s
    if n_seq < 0 or off[0] != 0 or off[n_seq] != n_items:
        raise ValueError(f"internal: {name} must run from 0 to {n_items}")
    for s in range(n_seq):
        if off[s + 1] < off[s]:
            raise ValueError(f"internal: {name} decreases at {s}")
    return n_seq


cdef inline int session_threads(int n_threads, Py_ssize_t n_items,
                                Py_ssize_t n_seq) noexcept nogil:
    """The team for a batch: ``n_threads`` from PARALLEL_MIN_FRAMES items and two
    sessions up, else 1 (the loop then runs serially, never starting a team)."""
    return n_threads if n_items >= PARALLEL_MIN_FRAMES and n_seq > 1 else 1


cdef inline void path_one(const intp_t* states, Py_ssize_t t0, Py_ssize_t t1,
                          intp_t* switches, intp_t* longest) noexcept nogil:
    # branch-free body (conditional moves): decoded paths of anomalous sessions switch
    # unpredictably, and a mispredicted branch per step costs more than the work
    cdef Py_ssize_t t, n_switch = 0, run = 1, best = 1
    cdef bint change
    if t1 <= t0:
        switches[0] = 0
        longest[0] = 0
        return
    for t in range(t0 + 1, t1):
        change = states[t] != states[t - 1]
        n_switch += change
        run = 1 if change else run + 1
        best = run if run > best else best
    switches[0] = n_switch
    longest[0] = best


def path_stats(states, offsets, int n_threads=1):
    """Switch counts and longest runs of each session's state path.

    Parameters
    ----------
    states : ndarray of shape (F,), intp
        Concatenated state paths.
    offsets : ndarray of shape (S + 1,), intp
        Session boundaries in ``states`` (0 ... F, non-decreasing).
    n_threads : int
        Threads over sessions.

    Returns
    -------
    switches : ndarray of shape (S,), intp
        Steps t > 0 of the session where states[t] != states[t - 1].
    longest_run : ndarray of shape (S,), intp
        The longest stretch of one state (0 for an empty session).
    """
    cdef const intp_t* st = _intp(states, "states")
    cdef Py_ssize_t n_frames = cnp.PyArray_SIZE(<cnp.ndarray> states)
    cdef Py_ssize_t n_seq = _check_offsets(offsets, n_frames, "offsets"), s
    cdef const intp_t* off = _intp(offsets, "offsets")
    sw_arr = np.empty(n_seq, dtype=np.intp)
    lr_arr = np.empty(n_seq, dtype=np.intp)
    cdef intp_t* sw = <intp_t*> cnp.PyArray_DATA(<cnp.ndarray> sw_arr)
    cdef intp_t* lr = <intp_t*> cnp.PyArray_DATA(<cnp.ndarray> lr_arr)
    cdef int threads = session_threads(n_threads, n_frames, n_seq)
    if threads <= 1:
        with nogil:
            for s in range(n_seq):
                path_one(st, off[s], off[s + 1], sw + s, lr + s)
    else:
        for s in prange(n_seq, nogil=True, num_threads=threads, schedule="dynamic",
                        chunksize=CHUNK):
            path_one(st, off[s], off[s + 1], sw + s, lr + s)
    return sw_arr, lr_arr


cdef inline void steps_one(const double* steps, Py_ssize_t u0, Py_ssize_t u1,
                           Py_ssize_t n_own, double floor, double* min_out,
                           intp_t* below_out) noexcept nogil:
    cdef Py_ssize_t u
    cdef double v, lo = INFINITY
    cdef intp_t below = 0
    for u in range(u0, u1):
        v = steps[u]
        if v < lo:
            lo = v
        if u - u0 < n_own and v < floor:
            below += 1
    min_out[0] = lo
    below_out[0] = below


def step_stats(steps, step_offsets, own_offsets, double floor, int n_threads=1):
    """Smallest step and number of steps below ``floor`` of each session.

    Parameters
    ----------
    steps : ndarray of shape (F,), float64
        Concatenated per-step values.
    step_offsets : ndarray of shape (S + 1,), intp
        Session boundaries in ``steps``.
    own_offsets : ndarray of shape (S + 1,), intp
        Boundaries of the sessions' own steps: only the first
        own_offsets[s + 1] - own_offsets[s] steps of session s count for ``below``
        (each at most the session's length in ``steps``).
    floor : float
    n_threads : int

    Returns
    -------
    min_step : ndarray of shape (S,), float64
        +inf for an empty session.
    below : ndarray of shape (S,), intp
    """
    cdef const double* v = _f64(steps, "steps")
    cdef Py_ssize_t n_items = cnp.PyArray_SIZE(<cnp.ndarray> steps)
    cdef Py_ssize_t n_seq = _check_offsets(step_offsets, n_items, "step_offsets"), s
    cdef const intp_t* off = _intp(step_offsets, "step_offsets")
    cdef const intp_t* own = _intp(own_offsets, "own_offsets")
    if cnp.PyArray_SIZE(<cnp.ndarray> own_offsets) != n_seq + 1:
        raise ValueError("internal: own_offsets and step_offsets must have one length")
    for s in range(n_seq):
        if own[s + 1] - own[s] < 0 or own[s + 1] - own[s] > off[s + 1] - off[s]:
            raise ValueError(f"internal: session {s} has more own steps than steps")
    mn_arr = np.empty(n_seq, dtype=np.float64)
    bl_arr = np.empty(n_seq, dtype=np.intp)
    cdef double* mn = <double*> cnp.PyArray_DATA(<cnp.ndarray> mn_arr)
    cdef intp_t* bl = <intp_t*> cnp.PyArray_DATA(<cnp.ndarray> bl_arr)
    cdef int threads = session_threads(n_threads, n_items, n_seq)
    if threads <= 1:
        with nogil:
            for s in range(n_seq):
                steps_one(v, off[s], off[s + 1], own[s + 1] - own[s], floor, mn + s, bl + s)
    else:
        for s in prange(n_seq, nogil=True, num_threads=threads, schedule="dynamic",
                        chunksize=CHUNK):
            steps_one(v, off[s], off[s + 1], own[s + 1] - own[s], floor, mn + s, bl + s)
    return mn_arr, bl_arr
