# Type stub for the compiled module built from csrc/_session_stats.pyx.
import numpy as np
import numpy.typing as npt

def path_stats(
    states: npt.NDArray[np.intp], offsets: npt.NDArray[np.intp], n_threads: int = ...
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]: ...
def step_stats(
    steps: npt.NDArray[np.float64],
    step_offsets: npt.NDArray[np.intp],
    own_offsets: npt.NDArray[np.intp],
    floor: float,
    n_threads: int = ...,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]: ...
