# Type stub for the compiled module built from csrc/_stream.pyx.
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base  # cdef classes: their own C instance layout

from ._base import BaseHMM

_Observation: TypeAlias = int | np.integer[Any] | npt.ArrayLike

@disjoint_base
class _Stream:
    @property
    def n_seen(self) -> int: ...
    @property
    def model(self) -> BaseHMM: ...

@disjoint_base
class StreamScorer(_Stream):
    def __init__(self, model: BaseHMM) -> None: ...
    def push(self, obs: _Observation) -> float: ...
    def reset(self) -> None: ...
    @property
    def logprob(self) -> float: ...
    @property
    def last_step(self) -> float | None: ...
    @property
    def impossible(self) -> bool: ...
    @property
    def posterior(self) -> npt.NDArray[np.float64] | None: ...

@disjoint_base
class StreamDecoder(_Stream):
    def __init__(
        self,
        model: BaseHMM,
        max_lag: int | None = ...,
        *,
        beam: float | None = ...,
        max_active: int | None = ...,
        min_active: int | None = ...,
    ) -> None: ...
    def push(self, obs: _Observation) -> npt.NDArray[np.intp]: ...
    def flush(self) -> npt.NDArray[np.intp]: ...
    def reset(self) -> None: ...
    @property
    def window(self) -> int: ...
    @property
    def max_lag(self) -> int | None: ...
