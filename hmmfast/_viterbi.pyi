# Type stub for the compiled module built from csrc/_viterbi.pyx.
import numpy as np
import numpy.typing as npt

from ._trellis import _Chain, _Emission

def viterbi(
    chain: _Chain,
    emission: _Emission,
    rows: npt.NDArray[np.intp] | None,
    offsets: npt.NDArray[np.intp] | None,
    logprob_out: npt.NDArray[np.float64] | None = ...,
    n_threads: int = ...,
    raise_impossible: bool = ...,
) -> tuple[float, npt.NDArray[np.intp]]: ...
def path_log_prob(
    chain: _Chain,
    emission: _Emission,
    rows: npt.NDArray[np.intp] | None,
    offsets: npt.NDArray[np.intp] | None,
    states: npt.NDArray[np.intp],
    logprob_out: npt.NDArray[np.float64] | None = ...,
) -> float: ...
def _force_simd(flag: int) -> int: ...
def _auto_checkpoint_bytes() -> int: ...
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
def _set_stored_delta_bytes(nbytes: int) -> int: ...
