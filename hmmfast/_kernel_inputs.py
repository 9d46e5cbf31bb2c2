"""Validated parameters -> the tuples the Cython kernels take.

``chain``    = (startprob, log_startprob, transmat, log_transmat)
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
    return (start, read_only_log(start), trans, read_only_log(trans))


def emission(log_table, scaling):
    """Kernel emission tuple from a (K, N) log-emission table."""
    log_table = np.ascontiguousarray(log_table, dtype=np.float64)
    if not scaling:
        return (log_table, None, None)
    scaled, row_log_scale = _emissions.scaled_rows(log_table)
    return (log_table, scaled, row_log_scale)
