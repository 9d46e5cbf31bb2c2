# Type stub for the compiled module built from csrc/_viterbi.pyx.
import numpy as np
import numpy.typing as npt

from ._trellis import Chain, Emission

def viterbi(
    chain: Chain,
    emission: Emission,
    rows: npt.NDArray[np.intp] | None,
    offsets: npt.NDArray[np.intp] | None,
    logprob_out: npt.NDArray[np.float64] | None = ...,
    n_threads: int = ...,
) -> tuple[float, npt.NDArray[np.intp]]: ...
def path_log_prob(
    chain: Chain,
    emission: Emission,
    rows: npt.NDArray[np.intp] | None,
    offsets: npt.NDArray[np.intp] | None,
    states: npt.NDArray[np.intp],
    logprob_out: npt.NDArray[np.float64] | None = ...,
) -> float: ...
def _force_simd(flag: int) -> int: ...
def model_decode(
    self: object,
    X: npt.ArrayLike,
    lengths: npt.ArrayLike | None = ...,
    algorithm: str | None = ...,
    *,
    beam: float | None = ...,
    max_active: int | None = ...,
    min_active: int | None = ...,
    memory: str = ...,
) -> tuple[float, npt.NDArray[np.intp]]: ...
