# Type stub for the compiled module built from csrc/_beam.pyx.
import numpy as np
import numpy.typing as npt

from ._trellis import _Chain, _Emission

def beam_viterbi(
    chain: _Chain,
    emission: _Emission,
    rows: npt.NDArray[np.intp] | None,
    offsets: npt.NDArray[np.intp] | None,
    beam: float,
    max_active: int = ...,
    min_active: int = ...,
    logprob_out: npt.NDArray[np.float64] | None = ...,
    n_threads: int = ...,
    raise_impossible: bool = ...,
) -> tuple[float, npt.NDArray[np.intp]]: ...
