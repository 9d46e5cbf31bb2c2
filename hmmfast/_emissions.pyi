# Type stub for the compiled module built from csrc/_emissions.pyx.
import numpy as np
import numpy.typing as npt

def scaled_rows(
    log_table: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
def canonical_symbols(X: object) -> npt.NDArray[np.intp] | None: ...
