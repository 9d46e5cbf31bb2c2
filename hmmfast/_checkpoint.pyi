# Type stub for the compiled module built from csrc/_checkpoint.pyx.
import numpy as np
import numpy.typing as npt

from ._trellis import _Chain, _Emission

AUTO_CHECKPOINT_BYTES: int

def viterbi_checkpoint(
    chain: _Chain,
    emission: _Emission,
    rows: npt.NDArray[np.intp] | None,
    offsets: npt.NDArray[np.intp] | None,
    logprob_out: npt.NDArray[np.float64] | None = ...,
    n_threads: int = ...,
    raise_impossible: bool = ...,
) -> tuple[float, npt.NDArray[np.intp]]: ...
def checkpoint_scratch_bytes(n_states: int, T: int) -> int: ...
def checkpoint_segment_length(n_states: int, T: int) -> int: ...
def full_table_bytes(n_states: int, T: int) -> int: ...
def maxplus_forward(
    chain: _Chain,
    log_em: npt.NDArray[np.float64],
    delta: npt.NDArray[np.float64],
    first: bool = ...,
) -> int: ...
def viterbi_segment(
    chain: _Chain,
    log_em: npt.NDArray[np.float64],
    delta: npt.NDArray[np.float64],
    end_state: int,
    states_out: npt.NDArray[np.intp],
) -> int: ...
def _force_simd(flag: int) -> int: ...
