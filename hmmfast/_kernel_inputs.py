"""Validated parameters -> the tuples the Cython kernels take.

``chain``    = (startprob, log_startprob, transmat, log_transmat, transmat_pad,
                log_transmat_pad, transmat_t_pad): the pad copies (of transmat, its log
                and its transpose) have rows widened to a multiple of 4 columns holding
                0 (resp. -inf), for the vectorised steps
``emission`` = (log_table, scaled_table, row_log_scale); the last two are None when only
               log-space kernels will read it.
See csrc/_common.pxd for what the kernels do with them.
"""

import numpy as np

from . import _emissions
from ._validation import read_only_log


def chain(startprob, transmat):
    """Kernel chain tuple from a validated start vector and transition matrix."""
    start = np.ascontiguousarray(startprob, dtype=np.float64)
    trans = np.ascontiguousarray(transmat, dtype=np.float64)
    log_trans = read_only_log(trans)
    return (start, read_only_log(start), trans, log_trans, _padded(trans, 0.0),
            _padded(log_trans, -np.inf), _padded(trans.T, 0.0))


def _padded(matrix, fill):
    """Read-only copy of a square matrix with rows widened to a multiple of 4 by ``fill``."""
    n = matrix.shape[0]
    out = np.full((n, (n + 3) // 4 * 4), fill)
    out[:, :n] = matrix
    out.flags.writeable = False
    return out


def emission(log_table, scaling):
    """Kernel emission tuple from a (K, N) log-emission table."""
    log_table = np.ascontiguousarray(log_table, dtype=np.float64)
    if not scaling:
        return (log_table, None, None)
    scaled, row_log_scale = _emissions.scaled_rows(log_table)
    return (log_table, scaled, row_log_scale)
