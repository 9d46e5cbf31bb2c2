# Type stub for the compiled module built from csrc/_densities.pyx.
import numpy as np
import numpy.typing as npt
from typing import Literal, TypeAlias, overload

_Frames: TypeAlias = npt.NDArray[np.float64] | npt.NDArray[np.float32]

@overload
def gaussian_diag(
    X: _Frames, means_t: npt.NDArray[np.float64], precisions_t: npt.NDArray[np.float64],
    log_norm: npt.NDArray[np.float64], n_threads: int = ..., scaled: Literal[False] = ...,
) -> npt.NDArray[np.float64]: ...
@overload
def gaussian_diag(
    X: _Frames, means_t: npt.NDArray[np.float64], precisions_t: npt.NDArray[np.float64],
    log_norm: npt.NDArray[np.float64], n_threads: int, scaled: Literal[True],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None,
           npt.NDArray[np.float64] | None]: ...
def gaussian_cholesky(
    X: _Frames, means: npt.NDArray[np.float64], cholesky: npt.NDArray[np.float64],
    inv_diagonal: npt.NDArray[np.float64], log_norm: npt.NDArray[np.float64],
    n_threads: int = ...,
) -> npt.NDArray[np.float64]: ...
def poisson(
    X: _Frames, log_lambdas_t: npt.NDArray[np.float64], lambda_sums: npt.NDArray[np.float64],
    n_threads: int = ...,
) -> npt.NDArray[np.float64]: ...
def mixture_reduce(
    comp: npt.NDArray[np.float64], k: int, want_resp: bool = ...
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64] | None]: ...
def _force_simd(flag: int) -> int: ...
