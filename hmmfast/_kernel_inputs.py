"""Validated parameters -> the objects the Cython kernels take.

``chain``    = a capsule holding every form of the start and transition probabilities
               the kernels read, and the scaled kernels' precision guard ``mass_floor``
               (see csrc/_chain.pyx and csrc/_trellis.pyx)
``emission`` = (log_table, scaled_table, row_log_scale); the last two are None when only
               log-space kernels will read it.
See csrc/_common.pxd for what the kernels do with them.
"""

import numpy as np
from scipy import sparse

from . import _chain, _emissions


#: A chain whose every transition probability is at least this is "well mixed": each state
#: gets a share of the mass at every step, so the scaled kernels need no per-state guard.
WELL_MIXED = 1e-100
#: Otherwise scaled alpha entries must stay above MASS_FLOOR (and above NORMAL_PRODUCT
#: divided by the smallest positive transition, so that every product stays a normal double).
MASS_FLOOR = 1e-200
NORMAL_PRODUCT = 1e-290


def mass_floor(transmat):
    """The scaled kernels' precision guard for a validated transition matrix (dense, or
    sparse with no explicit zeros) (0: none)."""
    values = transmat.data if sparse.issparse(transmat) else transmat
    positive = values[values > 0.0]
    smallest = float(positive.min())
    if positive.size == np.prod(transmat.shape) and smallest >= WELL_MIXED:
        return 0.0
    return max(MASS_FLOOR, NORMAL_PRODUCT / smallest)


def chain(startprob, transmat):
    """Kernel chain (a capsule, see csrc/_chain.pyx) from validated probabilities; a
    sparse transition matrix stays sparse."""
    if not sparse.issparse(transmat):
        transmat = np.ascontiguousarray(transmat, dtype=np.float64)
    return _chain.compile_chain(startprob, transmat, mass_floor(transmat))


def emission(log_table, scaling, n_threads=1):
    """Kernel emission tuple from a (K, N) log-emission table."""
    log_table = np.ascontiguousarray(log_table, dtype=np.float64)
    if not scaling:
        return (log_table, None, None)
    scaled, row_log_scale = _emissions.scaled_rows(log_table, n_threads)
    return (log_table, scaled, row_log_scale)
