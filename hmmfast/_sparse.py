"""Sparse transition matrices: validation, M-step, sampling and summaries on CSR.

A ``transmat_`` assigned as any scipy.sparse matrix is converted once to a canonical CSR
matrix (float64, sorted indices, no explicit zeros, read-only arrays) and returned as
such; its non-zero pattern is the chain's structure: EM never un-zeros a transition, and
random initialisation ("t" in ``init_params``) draws new values on the same pattern. The
kernels then work in O(non-zeros) per step (see csrc/_chain.pyx). Results equal those
of the same matrix given dense.
"""

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from . import _validation as V
from ._errors import HMMInputError, HMMTypeError, ParameterError, locate


def is_sparse(value):
    return sparse.issparse(value)


def stochastic_matrix(name, value, n):
    """Validated read-only canonical CSR copy of a row-stochastic (n, n) sparse matrix."""
    if value.shape != (n, n):
        raise ParameterError(
            f"{name} must have shape (n_components, n_components) = ({n}, {n}), got "
            f"{V._shape_str(value.shape)}")
    if np.iscomplexobj(value.data):
        raise HMMTypeError(f"{name} must hold real numbers, got complex dtype {value.dtype}")
    csr = sparse.csr_matrix(value, dtype=np.float64, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    csr.sort_indices()
    data = csr.data
    if not np.all(np.isfinite(data)):
        k = int(np.argmax(~np.isfinite(data)))
        row = int(np.searchsorted(csr.indptr, k, side="right") - 1)
        raise ParameterError(f"{name} must be finite; {name}[{row}, {csr.indices[k]}] = "
                             f"{data[k]}")
    if np.any(data < 0):
        k = int(np.argmax(data < 0))
        row = int(np.searchsorted(csr.indptr, k, side="right") - 1)
        raise ParameterError(f"{name} must be non-negative; {name}[{row}, {csr.indices[k]}] "
                             f"= {data[k]}")
    sums = np.asarray(csr.sum(axis=1)).ravel()
    tolerance = V._sum_tolerance(value.data if hasattr(value, "data") else data, n)
    off = np.abs(sums - 1.0) > tolerance
    if np.any(off):
        i = int(np.argmax(off))
        raise ParameterError(f"row {i} of {name} sums to {float(sums[i])!r}; expected 1 "
                             f"(within {tolerance:g})")
    drift = np.abs(sums - 1.0) > n * np.finfo(np.float64).eps
    if np.any(drift):
        csr.data /= np.repeat(np.where(drift, sums, 1.0), np.diff(csr.indptr))
    return read_only(csr)


def read_only(csr):
    for arr in (csr.data, csr.indices, csr.indptr):
        arr.flags.writeable = False
    return csr


def with_values(pattern, values):
    """A read-only CSR matrix with ``pattern``'s structure and the given non-zero values."""
    out = sparse.csr_matrix((np.array(values, dtype=np.float64), pattern.indices.copy(),
                             pattern.indptr.copy()), shape=pattern.shape)
    return read_only(out)


def row_sums(csr_values, indptr):
    """Sum of each row's values, left to right (0 for an empty row): the same bits as
    the dense M-step's running sums (np.add.reduceat may pair the terms differently)."""
    counts = np.diff(indptr)
    width = int(counts.max()) if len(counts) else 0
    if width == 0:
        return np.zeros(len(counts))
    padded = np.zeros((len(counts), width))
    rows = np.repeat(np.arange(len(counts)), counts)
    padded[rows, np.arange(len(csr_values)) - np.repeat(indptr[:-1], counts)] = csr_values
    return np.cumsum(padded, axis=1)[:, -1]


def prior_values(prior, pattern):
    """A (n, n) prior (scalar or array, None = flat) at the pattern's non-zero positions."""
    if prior is None:
        return None
    return values_at(np.broadcast_to(prior, pattern.shape), pattern)


def map_estimate(counts, prior, previous):
    """Dirichlet MAP of a sparse transition matrix from expected counts at its non-zeros
    (CSR order): max(counts + prior - 1, 0) normalised per row; a row with nothing to
    normalise keeps its previous values. Zeros stay zeros."""
    alpha = prior_values(prior, previous)
    values = np.maximum(counts + (alpha - 1.0), 0.0) if alpha is not None else np.array(counts)
    sums = row_sums(values, previous.indptr)
    per_entry = np.repeat(sums, np.diff(previous.indptr))
    ok = per_entry > 0
    values[ok] /= per_entry[ok]
    values[~ok] = previous.data[~ok]
    return with_values(previous, values)


def values_at(dense, pattern):
    """A dense (n, n) array's entries at the pattern's non-zeros (CSR order)."""
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    return dense[rows, pattern.indices]


def dirichlet_log_density(matrix, prior):
    """sum (alpha - 1) log p over the non-zero transitions (0 for a flat prior)."""
    if prior is None:
        return 0.0
    alpha = prior_values(prior, matrix)
    nz = matrix.data > 0
    return float(np.sum((alpha[nz] - 1.0) * np.log(matrix.data[nz])))


def random_values(pattern, rng):
    """Random positive rows on the pattern: half uniform, half a Dirichlet(1) draw."""
    values = rng.gamma(1.0, size=pattern.nnz)
    counts = np.diff(pattern.indptr)
    values = values / np.repeat(row_sums(values, pattern.indptr), counts)
    values = 0.5 * values + 0.5 / np.repeat(np.maximum(counts, 1), counts)
    return with_values(pattern, values)


def sample_path(startprob, transmat, uniforms, first_state=-1):
    """A state path drawn with one uniform per step (as _sampling.sample_path)."""
    states = np.empty(len(uniforms), dtype=np.intp)
    if len(uniforms) == 0:
        return states
    cdf = np.cumsum(startprob)
    prev = first_state if first_state >= 0 else int(
        min(np.searchsorted(cdf, uniforms[0] * cdf[-1], side="right"), len(cdf) - 1))
    states[0] = prev
    indptr, indices, data = transmat.indptr, transmat.indices, transmat.data
    for t in range(1, len(uniforms)):
        a, b = indptr[prev], indptr[prev + 1]
        row_cdf = np.cumsum(data[a:b])
        k = min(int(np.searchsorted(row_cdf, uniforms[t] * row_cdf[-1], side="right")),
                b - a - 1)
        prev = int(indices[a + k])
        states[t] = prev
    return states


def stationary_distribution(transmat):
    """The left eigenvector for the eigenvalue of largest magnitude (1), normalised."""
    n = transmat.shape[0]
    if n <= 2:
        from scipy import linalg

        eigvals, eigvecs = linalg.eig(transmat.toarray().T)
        vec = np.real(eigvecs[:, np.argmin(np.abs(eigvals - 1.0))])
    else:
        _, eigvecs = sparse_linalg.eigs(transmat.T.tocsc(), k=1, which="LM")
        vec = np.real(eigvecs[:, 0])
    return vec / vec.sum()


def transition_counts(pattern, labels, offsets):
    """Counts of labelled transitions at the pattern's non-zeros (CSR order); a
    transition the pattern forbids is an error naming the frame."""
    n = pattern.shape[0]
    inner = np.ones(len(labels), dtype=bool)
    inner[offsets[1:] - 1] = False
    src, dst = labels[:-1][inner[:-1]], labels[1:][inner[:-1]]
    frames = np.flatnonzero(inner[:-1])
    keys = src * n + dst
    rows = np.repeat(np.arange(n), np.diff(pattern.indptr))
    allowed = rows * n + pattern.indices
    pos = np.searchsorted(allowed, keys)
    bad = (pos >= len(allowed)) | (allowed[np.minimum(pos, len(allowed) - 1)] != keys)
    if np.any(bad):
        k = int(np.argmax(bad))
        t = int(frames[k])
        raise locate(HMMInputError(
            f"states[{t}] = {src[k]} -> states[{t + 1}] = {dst[k]}: a transition the sparse "
            "transmat_ forbids (zeros stay zeros)", position=t + 1), offsets)
    return np.bincount(pos, minlength=pattern.nnz).astype(np.float64)
