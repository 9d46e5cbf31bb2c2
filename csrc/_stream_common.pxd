# What the two stream kernels share: csrc/_stream_scorer.pyx (StreamScorer, the running
# forward pass) and csrc/_stream_decoder.pyx (StreamDecoder, online Viterbi).
#
# Design note
# -----------
# A stream kernel knows arrays only: of the Python layer it imports hmmfast._errors (to
# raise) and nothing else, and it never sees the model. hmmfast/_stream_intake.py, the
# public classes' constructors, resolves the model once and hands the kernel:
#
# * ``chain``: the model's compiled chain (the capsule of csrc/_chain.pyx);
# * ``table``: when the model's symbols index its cached log-emission table (a
#   CategoricalHMM without its own ``_compute_log_likelihood``: ``model._cache.symbols``),
#   that (M, N) float64 C-contiguous table; otherwise None;
# * ``read``: a callable for every push the kernel does not take itself. With a table,
#   ``read(obs)`` returns None for an empty chunk or a kernel-ready intp array of symbols
#   (``symbol_array`` of _common.pxd), which the kernel range-checks as every kernel
#   checks the rows it reads; without one, None or (T, log_emissions),
#   ``log_emissions(a, b)`` giving the (b - a, N) float64 C-contiguous log-emissions of
#   frames a..b-1 of the push, computed in Python (``model._emission_blocks``). ``read``
#   validates the whole push before returning and raises the library's error for
#   anything invalid (what ``model.score`` raises on it), so a failed push changes nothing.
#
# Hot path. With a table, one Python or NumPy integer in [0, M) (``symbol_row``) and a
# kernel-ready intp array of symbols (``symbol_rows``) are taken in C: pushing one symbol
# never calls a Python-level function nor touches NumPy. Anything else goes through
# ``read``. What ``read`` returns is checked here (O(T)) before a kernel indexes with it.
#
# Snapshot. A kernel keeps references to ``chain`` and ``table`` (and ``read`` to the
# model's compiled parameters), so assigning new parameters to the model afterwards never
# affects an existing stream.
#
# Threads. A stream is a state machine: ``enter`` refuses a second thread (RuntimeError)
# instead of letting it corrupt the stream. Different streams are independent.

from libc.stdlib cimport malloc
from cpython.long cimport PyLong_CheckExact
from cpython.object cimport PyObject_TypeCheck, PyTypeObject

cimport numpy as cnp
from _common cimport Chain, intp_t, get_chain, f64_data, symbol_array

cdef extern from "numpy/arrayobject.h":
    PyTypeObject PyIntegerArrType_Type  # np.integer

cdef enum:
    BLOCK = 4096       # frames per block of log-emissions (streams without a table)
    NOGIL_MIN = 64     # chunks at least this long run with the GIL released


cdef struct Inputs:
    const Chain* ch         # NULL until the kernel is initialised
    const double* table     # (n_rows, n) log-emission rows, or NULL: blocks from ``read``
    Py_ssize_t n_rows
    Py_ssize_t n


cdef inline int open_inputs(Inputs* inputs, object chain, object table,
                            object stream) except -1:
    """Fill ``inputs`` from the chain capsule and the table (or None)."""
    cdef const Chain* ch
    cdef Py_ssize_t n_rows = 0
    if inputs.ch != NULL:
        raise RuntimeError(f"{type(stream).__name__} is already initialised")
    ch = get_chain(chain)
    inputs.table = NULL
    if table is not None:
        n_rows = cnp.PyArray_DIM(<cnp.ndarray?> table, 0)
        inputs.table = f64_data(table, n_rows * ch.n_states, "table")
    inputs.n_rows = n_rows
    inputs.n = ch.n_states
    inputs.ch = ch
    return 0


cdef inline int enter(bint* busy, const Inputs* inputs, object stream) except -1:
    """Claim the stream for this call (``busy[0] = False`` releases it)."""
    if inputs.ch == NULL:
        raise RuntimeError(f"{type(stream).__name__} was not initialised with a model")
    if busy[0]:
        raise RuntimeError(
            f"this {type(stream).__name__} is in use by another thread; a stream is a "
            "state machine for one thread at a time")
    busy[0] = True
    return 0


cdef inline Py_ssize_t first_bad_row(const intp_t* rows, Py_ssize_t T,
                                     Py_ssize_t n_rows) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(T):
        if <size_t> rows[k] >= <size_t> n_rows:
            return k
    return -1


cdef inline Py_ssize_t symbol_row(const Inputs* inputs, object obs) except -2:
    """The table row of ``obs`` when it is one integer symbol (a Python or NumPy integer)
    in [0, n_rows); -1 for anything else (``read`` takes it, and explains any error)."""
    cdef long long v
    if inputs.table == NULL:
        return -1
    if not PyLong_CheckExact(obs) and not PyObject_TypeCheck(obs, &PyIntegerArrType_Type):
        return -1
    try:
        v = obs
    except OverflowError:
        return -1
    if v < 0 or v >= inputs.n_rows:
        return -1
    return <Py_ssize_t> v


cdef inline object symbol_rows(const Inputs* inputs, object obs, object read):
    """A push to a table stream as a kernel-ready intp array of rows in [0, n_rows) (its
    size is the number of steps), or None for an empty chunk: ``obs`` itself when it
    already is a kernel-ready array, else what ``read`` makes of it. The rows are
    range-checked here, as every kernel checks the rows it reads (_common.pxd): the first
    symbol outside [0, n_rows) raises what ``model.score`` raises for it."""
    cdef Py_ssize_t bad
    cdef const intp_t* data
    rows = obs
    if not symbol_array(rows):
        rows = read(obs)
        if rows is None:
            return None
        if not symbol_array(rows):
            raise RuntimeError("internal: a stream's read(obs) must return None or a "
                               "C-contiguous intp array of symbols")
    data = <const intp_t*> cnp.PyArray_DATA(<cnp.ndarray> rows)
    bad = first_bad_row(data, cnp.PyArray_SIZE(<cnp.ndarray> rows), inputs.n_rows)
    if bad >= 0:
        from hmmfast._errors import raise_kernel_status, _STATUS_BAD_ROW
        raise_kernel_status(_STATUS_BAD_ROW, 0, bad, 0, data[bad], inputs.n_rows)
    return rows


cdef inline const double* block_data(object log_em, Py_ssize_t steps,
                                     Py_ssize_t n) except NULL:
    """The data of one block of log-emissions returned by ``log_emissions(a, b)``."""
    if not (cnp.PyArray_Check(log_em) and cnp.PyArray_NDIM(<cnp.ndarray> log_em) == 2
            and cnp.PyArray_DIM(<cnp.ndarray> log_em, 0) == steps
            and cnp.PyArray_DIM(<cnp.ndarray> log_em, 1) == n):
        raise TypeError(f"internal: log_emissions(a, b) must return an array of shape "
                        f"(b - a, n_components) = ({steps}, {n})")
    return f64_data(log_em, steps * n, "log_emissions(a, b)")


cdef inline void* checked_malloc(size_t size) except NULL:
    cdef void* p = malloc(size if size > 0 else 1)
    if p == NULL:
        raise MemoryError(f"could not allocate {size} bytes for a stream")
    return p
