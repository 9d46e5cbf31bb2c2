# Type stub for the compiled module built from csrc/_chain.pyx.
import numpy as np
import numpy.typing as npt

def compile_chain(
    startprob: npt.NDArray[np.float64],
    transmat: npt.NDArray[np.float64],
    mass_floor: float,
) -> object: ...
