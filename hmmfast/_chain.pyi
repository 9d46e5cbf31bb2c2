# Type stub for the compiled module built from csrc/_chain.pyx.
import numpy as np
import numpy.typing as npt

from ._trellis import _Chain

DENSE_LIMIT: int

def compile_chain(
    startprob: npt.NDArray[np.float64],
    transmat: object,  # (N, N) float64 ndarray, or a scipy.sparse matrix (scipy has no stubs)
    mass_floor: float,
) -> _Chain: ...
