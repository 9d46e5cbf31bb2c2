"""ServeError: a refused request, answered as a JSON error with a 4xx status.

Every refusal says what was expected and what came; a limit names the option that sets
it. ``from_library`` turns the library's input errors (which name rows of the
concatenated observations, ``X[t]``) into errors that name the session and position.
"""

import re

import numpy as np

from .._errors import ImpossibleSequenceError
from ._settings import OPTION


class ServeError(Exception):
    """A request the service refuses (or cannot serve): status, short code, message.

    Parameters
    ----------
    status : int
        HTTP status (4xx for a bad request, 503 when not ready).
    code : str
        A stable machine-readable name ("bad_json", "max_sessions", ...).
    message : str
        One line: what was expected and what came.
    **extra
        More JSON-safe fields for the error body (session, position, limit, ...).
    """

    def __init__(self, status, code, message, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
        self.headers = extra.pop("headers", None)

    def body(self):
        """The JSON reply: ``{"error": {"status", "code", "message", ...}}``."""
        return {"error": {"status": self.status, "code": self.code, "message": self.message,
                          **self.extra}}


def limit_error(name, value, limit, what):
    """413 for a request beyond the limit ``name`` (a Settings field)."""
    option = OPTION[name]
    return ServeError(413, name, f"{what}: {value} exceeds the limit of {limit} "
                      f"({option}); split the request or raise {option}",
                      limit=option, value=value, maximum=limit)


def bad_observation(session, position, message):
    """422 naming the session index and the position inside it."""
    return ServeError(422, "bad_observation", f"session {session}, position {position}: "
                      f"{message}", session=session, position=position)


_ROW = re.compile(r"X\[(\d+)")
_SEQUENCE = re.compile(r"\bsequence (\d+)")


def from_library(exc, offsets, index=None):
    """A ServeError for a library error raised on a batch with session ``offsets``.

    Row indices of the concatenated observations in the message (``X[t]``) become the
    session index and position; ImpossibleSequenceError carries them itself. ``index``
    maps the batch's sessions to the request's (for one arm of an A/B split).
    """
    message = " ".join(str(exc).split()) or type(exc).__name__

    def session(s):
        return int(index[s]) if index is not None and 0 <= s < len(index) else int(s)

    # the library counts "sequence"s of the batch it was given: the request's sessions
    message = _SEQUENCE.sub(lambda m: f"session {session(int(m.group(1)))}", message)

    if isinstance(exc, ImpossibleSequenceError) and offsets is not None:
        s = session(exc.sequence)
        return ServeError(422, "impossible_session", f"session {s}: {message}", session=s,
                          position=int(exc.step))
    match = _ROW.search(message)
    if match and offsets is not None:
        row = int(match.group(1))
        s = int(np.searchsorted(offsets, row, side="right")) - 1
        if 0 <= s < len(offsets) - 1:
            # X is the request's observations concatenated: name the session instead
            return bad_observation(session(s), row - int(offsets[s]), message)
    return ServeError(422, "bad_input", message)
