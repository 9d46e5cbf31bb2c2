# Type stub for the compiled module built from csrc/_trellis.pyx.
import numpy as np
import numpy.typing as npt
from typing import TypeAlias

# Stub-only names (private, so stubtest does not look for them at runtime):
_Chain: TypeAlias = object  # the PyCapsule "hmmfast.Chain" from hmmfast._chain.compile_chain
# (log_table (K, N), scaled table (K, N) or None, row log-scales (K,) or None), K = rows
# of a table (rows given) or frames (rows None); see hmmfast._kernel_inputs.emission
_Emission: TypeAlias = tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64] | None, npt.NDArray[np.float64] | None
]

def forward(
    chain: _Chain,
    emission: _Emission,
    rows: npt.NDArray[np.intp] | None,
    offsets: npt.NDArray[np.intp] | None,
    scaling: bool,
    logprob_out: npt.NDArray[np.float64] | None = ...,
    n_threads: int = ...,
) -> float: ...
def forward_backward(
    chain: _Chain,
    emission: _Emission,
    rows: npt.NDArray[np.intp] | None,
    offsets: npt.NDArray[np.intp] | None,
    scaling: bool,
    logprob_out: npt.NDArray[np.float64] | None = ...,
    n_threads: int = ...,
    raise_impossible: bool = ...,
) -> tuple[float, npt.NDArray[np.float64]]: ...
def forward_steps(
    chain: _Chain,
    emission: _Emission,
    rows: npt.NDArray[np.intp] | None,
    offsets: npt.NDArray[np.intp] | None,
    scaling: bool,
    logprob_out: npt.NDArray[np.float64] | None = ...,
    n_threads: int = ...,
) -> tuple[float, npt.NDArray[np.float64]]: ...
def _force_simd(flag: int) -> int: ...
def _force_regs(flag: bool) -> None: ...
def model_score(self: object, X: npt.ArrayLike, lengths: npt.ArrayLike | None = ...) -> float: ...
