# The compiled Markov chain: every form of the start and transition probabilities the
# kernels read, built once when the parameters are set.
#
# Design note
# -----------
# ``compile_chain`` returns a PyCapsule named "hmmfast.Chain" holding a malloc'd
# ``Chain`` struct (csrc/_common.pxd) whose pointers reference NumPy arrays; the capsule's
# context owns a tuple of those arrays, so the struct can never outlive its data. A
# kernel call turns the capsule into a ``const Chain*`` with one PyCapsule_GetPointer
# (a few ns, against ~5 ns per array for type, contiguity and size checks).
#
# Forms kept (N states, n_pad = N rounded up to a multiple of 4):
#   startprob, log startprob                      (N,)
#   transmat, log transmat                        (N, N)   dense, row i = P(next | i)
#   transmat, log transmat, transmat.T padded     (N, n_pad) for the vectorised steps
#   the non-zero transitions by column (CSC: predecessors of each state) and by row
#   (CSR: successors), with their probabilities and logs, so that exact rescues and
#   sparse kernels touch only allowed transitions
#   mass_floor                                    the scaled kernels' precision guard
#
# Sparse chains. A transition matrix given as a scipy.sparse CSR matrix with more than
# DENSE_LIMIT states is kept sparse only: the dense forms are not built (they would be
# N^2 doubles, 200 MB at N = 5,000) and Chain.sparse tells every kernel to take its
# products over the non-zero transitions (O(nnz) per step). Smaller sparse matrices get
# the dense forms too and run the dense kernels. Dense and sparse steps sum (and maximise)
# over the predecessors in the same ascending order, so both give the same bits.
# Inputs are validated by the Python layer (hmmfast._kernel_inputs); this module checks
# only dtype and sizes.

from libc.stdlib cimport malloc, free
from cpython.pycapsule cimport (
    PyCapsule_New, PyCapsule_GetPointer, PyCapsule_GetContext, PyCapsule_SetContext,
)
from cpython.ref cimport Py_INCREF, Py_XDECREF, PyObject

import numpy as np
from scipy import sparse

cimport numpy as cnp
from _common cimport Chain, CHAIN_CAPSULE, f64_data, intp_data, padded_width

cnp.import_array()


cdef void free_chain(object capsule) noexcept:
    cdef void* ctx = PyCapsule_GetContext(capsule)
    free(PyCapsule_GetPointer(capsule, CHAIN_CAPSULE))
    Py_XDECREF(<PyObject*> ctx)


def _padded(matrix, fill):
    n = matrix.shape[0]
    out = np.full((n, (n + 3) // 4 * 4), fill)
    out[:, :n] = matrix
    return out


DENSE_LIMIT = 64  # a sparse matrix with more states than this stays sparse only


def _sparse_structure(csr):
    """(start, index, prob) of a canonical CSR matrix (sorted, no explicit zeros)."""
    return (np.ascontiguousarray(csr.indptr, dtype=np.intp),
            np.ascontiguousarray(csr.indices, dtype=np.intp),
            np.ascontiguousarray(csr.data, dtype=np.float64))


def _nonzeros(matrix):
    """(start (N + 1,), index (nnz,), prob (nnz,)): row-wise non-zero structure."""
    mask = matrix > 0.0
    start = np.zeros(matrix.shape[0] + 1, dtype=np.intp)
    np.cumsum(mask.sum(axis=1), out=start[1:])
    index = np.ascontiguousarray(np.nonzero(mask)[1], dtype=np.intp)
    prob = np.ascontiguousarray(matrix[mask], dtype=np.float64)
    return start, index, prob


def compile_chain(startprob, transmat, double mass_floor):
    """Capsule of a Chain for validated probabilities.

    Parameters
    ----------
    startprob : ndarray of shape (N,), float64
    transmat : ndarray of shape (N, N), float64, or scipy.sparse matrix
        Validated (rows stochastic); a sparse matrix keeps its non-zero pattern.
    mass_floor : float
        See csrc/_trellis.pyx (0 for a well-mixed chain).

    Returns
    -------
    PyCapsule named "hmmfast.Chain"
    """
    start = np.ascontiguousarray(startprob, dtype=np.float64)
    cdef Py_ssize_t n = start.shape[0]
    if n < 1 or transmat.shape != (n, n):
        raise ValueError("internal: startprob (N,) and transmat (N, N) with N >= 1")
    if not mass_floor >= 0.0:
        raise ValueError("internal: mass_floor must be >= 0")
    cdef bint sparse_only = sparse.issparse(transmat) and n > DENSE_LIMIT
    if sparse.issparse(transmat):
        csr = sparse.csr_matrix(transmat, dtype=np.float64)
        csr = sparse.csr_matrix((csr.data.copy(), csr.indices.copy(), csr.indptr.copy()),
                                shape=csr.shape)  # writable: canonicalised below
        csr.eliminate_zeros()
        csr.sort_indices()
        row_start, row_to, row_prob = _sparse_structure(csr)
        csc = sparse.csr_matrix(csr.T)
        csc.sort_indices()
        col_start, col_from, col_prob = _sparse_structure(csc)
        trans = None if sparse_only else np.ascontiguousarray(csr.toarray())
    else:
        trans = np.ascontiguousarray(transmat, dtype=np.float64)
        row_start, row_to, row_prob = _nonzeros(trans)
        col_start, col_from, col_prob = _nonzeros(np.ascontiguousarray(trans.T))
    with np.errstate(divide="ignore"):
        log_start = np.log(start)
        row_log = np.log(row_prob)
        col_log = np.log(col_prob)
    if sparse_only:
        dense = (None, None, None, None, None)
    else:
        with np.errstate(divide="ignore"):
            log_trans = np.log(trans)
        dense = (trans, log_trans, _padded(trans, 0.0), _padded(log_trans, -np.inf),
                 _padded(trans.T, 0.0))
    keep = (start, log_start, *dense,
            row_start, row_to, row_prob, row_log, col_start, col_from, col_prob, col_log)
    cdef Py_ssize_t n_pad = padded_width(n), nnz = row_to.shape[0]
    cdef Chain* c = <Chain*> malloc(sizeof(Chain))
    if c == NULL:
        raise MemoryError()
    try:
        c.n_states = n
        c.n_pad = n_pad
        c.mass_floor = mass_floor
        c.startprob = f64_data(keep[0], n, "startprob")
        c.log_startprob = f64_data(keep[1], n, "log_startprob")
        c.sparse = sparse_only
        if sparse_only:
            c.transmat = c.log_transmat = NULL
            c.transmat_pad = c.log_transmat_pad = c.transmat_t_pad = NULL
        else:
            c.transmat = f64_data(keep[2], n * n, "transmat")
            c.log_transmat = f64_data(keep[3], n * n, "log_transmat")
            c.transmat_pad = f64_data(keep[4], n * n_pad, "transmat_pad")
            c.log_transmat_pad = f64_data(keep[5], n * n_pad, "log_transmat_pad")
            c.transmat_t_pad = f64_data(keep[6], n * n_pad, "transmat_t_pad")
        c.row_start = intp_data(keep[7], "row_start")
        c.row_to = intp_data(keep[8], "row_to")
        c.row_prob = f64_data(keep[9], nnz, "row_prob")
        c.row_log = f64_data(keep[10], nnz, "row_log")
        c.col_start = intp_data(keep[11], "col_start")
        c.col_from = intp_data(keep[12], "col_from")
        c.col_prob = f64_data(keep[13], nnz, "col_prob")
        c.col_log = f64_data(keep[14], nnz, "col_log")
        c.n_nonzero = nnz
        capsule = PyCapsule_New(<void*> c, CHAIN_CAPSULE, <void (*)(object) noexcept> free_chain)
    except BaseException:
        free(c)
        raise
    Py_INCREF(keep)
    PyCapsule_SetContext(capsule, <void*> keep)
    return capsule
