# Type stub for the compiled module built from csrc/_stream_scorer.pyx.
from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base  # cdef classes: their own C instance layout

from ._trellis import _Chain

_Observation: TypeAlias = int | np.integer[Any] | npt.ArrayLike
# read(obs): None (an empty push), symbols (a table stream) or (T, log_emissions(a, b))
_Read: TypeAlias = Callable[[Any], Any]

@disjoint_base
class StreamScorerKernel:
    def __init__(
        self, chain: _Chain, table: npt.NDArray[np.float64] | None, read: _Read
    ) -> None: ...
    def push(self, obs: _Observation) -> float: ...
    def reset(self) -> None: ...
    @property
    def n_seen(self) -> int: ...
    @property
    def logprob(self) -> float: ...
    @property
    def last_step(self) -> float | None: ...
    @property
    def impossible(self) -> bool: ...
    @property
    def posterior(self) -> npt.NDArray[np.float64] | None: ...
