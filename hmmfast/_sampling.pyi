# Type stub for the compiled module built from csrc/_sampling.pyx.
import numpy as np
import numpy.typing as npt

def sample_path(
    start_cdf: npt.NDArray[np.float64],
    trans_cdf: npt.NDArray[np.float64],
    uniforms: npt.NDArray[np.float64],
    first_state: int = ...,
) -> npt.NDArray[np.intp]: ...
def sample_rows(
    cdf_table: npt.NDArray[np.float64],
    rows: npt.NDArray[np.intp],
    uniforms: npt.NDArray[np.float64],
) -> npt.NDArray[np.intp]: ...
