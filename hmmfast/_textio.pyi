# Type stub for the compiled module built from csrc/_textio.pyx.
import numpy as np
import numpy.typing as npt

from ._errors import TextFormatError as TextFormatError

def parse_symbols(
    data: bytes,
    start: int = ...,
    stop: int = ...,
    *,
    final: bool = ...,
    max_lines: int = ...,
    n_symbols: int | None = ...,
    with_ids: bool = ...,
    first_line: int = ...,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp] | None, int]: ...
def parse_numbers(
    data: bytes,
    start: int = ...,
    stop: int = ...,
    *,
    final: bool = ...,
    max_lines: int = ...,
    dim: int = ...,
    with_ids: bool = ...,
    first_line: int = ...,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp], npt.NDArray[np.intp] | None, int]: ...
def repr_double(x: float) -> str: ...
def format_results(
    values: npt.ArrayLike,
    paths: list[npt.NDArray[np.intp]] | None = ...,
    ids: tuple[bytes, npt.NDArray[np.intp], bool] | None = ...,
    *,
    json: bool = ...,
    key: str = ...,
    n_threads: int = ...,
) -> bytes: ...
