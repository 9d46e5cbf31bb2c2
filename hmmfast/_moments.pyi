# Type stub for the compiled module built from csrc/_moments.pyx.
import numpy as np
import numpy.typing as npt

def weighted_scatter(
    X: npt.NDArray[np.float64] | npt.NDArray[np.float32],
    weights: npt.NDArray[np.float64],
    means: npt.NDArray[np.float64],
    n_threads: int = ...,
) -> npt.NDArray[np.float64]: ...

def weighted_moments(
    X: npt.NDArray[np.float64] | npt.NDArray[np.float32],
    weights: npt.NDArray[np.float64],
    ref_means: npt.NDArray[np.float64],
    n_threads: int = ...,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
