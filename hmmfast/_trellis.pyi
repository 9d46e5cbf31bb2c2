# Type stub for the compiled module built from csrc/_trellis.pyx.
import numpy as np
import numpy.typing as npt
from typing import TypeAlias

Chain: TypeAlias = object  # a capsule from hmmfast._chain.compile_chain
Emission: TypeAlias = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]

def forward(
    chain: Chain,
    emission: Emission,
    rows: npt.NDArray[np.intp] | None,
    offsets: npt.NDArray[np.intp] | None,
    scaling: bool,
    logprob_out: npt.NDArray[np.float64] | None = ...,
    n_threads: int = ...,
) -> float: ...
def forward_backward(
    chain: Chain,
    emission: Emission,
    rows: npt.NDArray[np.intp] | None,
    offsets: npt.NDArray[np.intp] | None,
    scaling: bool,
    logprob_out: npt.NDArray[np.float64] | None = ...,
    n_threads: int = ...,
) -> tuple[float, npt.NDArray[np.float64]]: ...
def _force_simd(flag: int) -> int: ...
def _force_regs(flag: bool) -> None: ...
def model_score(self: object, X: npt.ArrayLike, lengths: npt.ArrayLike | None = ...) -> float: ...
