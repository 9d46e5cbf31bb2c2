# Type stub for the compiled module built from csrc/_nbest.pyx.
import numpy as np
import numpy.typing as npt

from ._trellis import _Chain, _Emission

def nbest(
    chain: _Chain,
    emission: _Emission,
    rows: npt.NDArray[np.intp] | None,
    n: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]: ...
