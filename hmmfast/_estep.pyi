# Type stub for the compiled module built from csrc/_estep.pyx.
import numpy as np
import numpy.typing as npt

from ._trellis import _Chain, _Emission

def estep(
    chain: _Chain,
    emission: _Emission,
    rows: npt.NDArray[np.intp] | None,
    offsets: npt.NDArray[np.intp] | None,
    weights: npt.NDArray[np.float64] | None,
    scaling: bool,
    n_threads: int = ...,
    want_rows: bool = ...,
    want_posteriors: bool = ...,
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64] | None,
    npt.NDArray[np.float64] | None,
]: ...
def log_lattices(
    chain: _Chain, emission: _Emission
) -> tuple[float, npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def _force_simd(flag: int) -> int: ...
