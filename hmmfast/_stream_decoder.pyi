# Type stub for the compiled module built from csrc/_stream_decoder.pyx.
import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base  # cdef classes: their own C instance layout

from ._stream_scorer import _Observation, _Read
from ._trellis import _Chain

@disjoint_base
class StreamDecoderKernel:
    def __init__(
        self,
        chain: _Chain,
        table: npt.NDArray[np.float64] | None,
        read: _Read,
        max_lag: int = ...,
        pruning: tuple[float, int, int] | None = ...,
    ) -> None: ...
    def push(self, obs: _Observation) -> npt.NDArray[np.intp]: ...
    def flush(self) -> npt.NDArray[np.intp]: ...
    def reset(self) -> None: ...
    @property
    def n_seen(self) -> int: ...
    @property
    def window(self) -> int: ...
    @property
    def max_lag(self) -> int | None: ...
