# Type stub for the compiled module built from csrc/_jsonscan.pyx.
import numpy as np
import numpy.typing as npt
from typing import TypeAlias

from typing_extensions import disjoint_base  # cdef classes: their own C instance layout

J_NONE: int
J_OBJECT: int
J_ARRAY: int
J_STRING: int
J_NUMBER: int
J_TRUE: int
J_FALSE: int
J_NULL: int
RUNNING: int
DONE: int
SYNTAX: int
LIMIT_ITEMS: int
LIMIT_PAYLOAD: int
NO_MEMORY: int
KIND: int
FLAGS: int
START: int
END: int
P_START: int
P_END: int
P_KIND: int
P_COUNT: int
P_LEAVES: int
ID_START: int
ID_END: int
ID_KIND: int
SEG_START: int
SEG_END: int
SEG_KIND: int
N_FIELDS: int
HAS_PAYLOAD: int
HAS_ID: int
UNKNOWN_KEY: int
DUP_PAYLOAD: int
DUP_ID: int
HAS_SEGMENT: int
DUP_SEGMENT: int
F_OK: int
F_NOT_INT: int
F_INT_RANGE: int
F_NOT_NUMBER: int
F_RANGE: int
F_FRAME_LEN: int
F_NOT_FRAME: int
F_IN_FRAME: int
F_SYMBOL: int

_FillError: TypeAlias = tuple[int, int, int, int, int, int]

@disjoint_base
class Scanner:
    def __init__(
        self,
        list_key: str = ...,
        payload_key: str = ...,
        *,
        id_key: bool = ...,
        strict_items: bool = ...,
        array_items: bool = ...,
        max_items: int = ...,
        max_payload: int = ...,
    ) -> None: ...
    def feed(self, chunk: bytes | bytearray | memoryview) -> int: ...
    def finish(self) -> int: ...
    @property
    def status(self) -> int: ...
    @property
    def consumed(self) -> int: ...
    @property
    def error(self) -> tuple[int, int, str, int, int]: ...
    @property
    def root_kind(self) -> int: ...
    @property
    def n_members(self) -> int: ...
    def members(self) -> list[tuple[int, int, int, int, int]]: ...
    @property
    def list_kind(self) -> int: ...
    @property
    def list_span(self) -> tuple[int, int]: ...
    def items(self) -> npt.NDArray[np.int64]: ...
    @property
    def n_items(self) -> int: ...
    @property
    def n_not_arrays(self) -> int: ...
    @property
    def min_count(self) -> int | None: ...
    @property
    def total_count(self) -> int: ...
    def payload_counts(self) -> npt.NDArray[np.int64]: ...
    def fill_symbols(
        self, body: bytes | bytearray, n_symbols: int = ...
    ) -> tuple[npt.NDArray[np.int64], _FillError | None]: ...
    def fill_frames(
        self, body: bytes | bytearray, n_features: int, bare: bool, total: int
    ) -> tuple[npt.NDArray[np.float64], _FillError | None]: ...
    @property
    def unknown_key(self) -> tuple[int, int, int] | None: ...

def fill_symbols(
    body: bytes | bytearray,
    p_start: npt.NDArray[np.int64],
    p_count: npt.NDArray[np.int64],
    total: int,
    n_symbols: int = ...,
) -> tuple[npt.NDArray[np.int64], _FillError | None]: ...
def fill_frames(
    body: bytes | bytearray,
    p_start: npt.NDArray[np.int64],
    p_count: npt.NDArray[np.int64],
    n_features: int,
    bare: bool,
    total: int,
) -> tuple[npt.NDArray[np.float64], _FillError | None]: ...
def fill_numbers(
    body: bytes | bytearray, start: int, end: int, count: int, integer: bool
) -> tuple[npt.NDArray[np.int64] | npt.NDArray[np.float64], _FillError | None]: ...
