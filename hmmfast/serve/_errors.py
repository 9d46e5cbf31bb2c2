"""ServeError: a refused request, answered as a JSON error with a 4xx status.

Every refusal says what was expected and what came; a limit names the option that sets
it. ``from_library`` turns the library's input errors (which carry their place in the
concatenated observations as attributes) into errors that name the session and position.
"""

import re

import numpy as np

from .._errors import ImpossibleSequenceError, place
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


def from_library(exc, offsets, index=None):
    """A ServeError for a library error raised on a batch with session ``offsets``.

    The error's place (its ``sequence``, ``step`` and ``position`` attributes, see
    hmmfast._errors; ``position`` is a row of the concatenated observations) becomes the
    session index and the position inside it; an error without one is a plain
    ``bad_input``. The library counts the sequences of the batch it was given, which are
    the request's sessions: its message says "session" for the sequence it names.
    ``index`` maps the batch's sessions to the request's (for one arm of an A/B split).
    """
    message = " ".join(str(exc).split()) or type(exc).__name__
    where = place(exc)
    sequence, step, position = where["sequence"], where["step"], where["position"]

    def session(s):
        return int(index[s]) if index is not None and 0 <= s < len(index) else int(s)

    if sequence is not None:
        message = re.sub(rf"\bsequence {sequence}\b", f"session {session(sequence)}", message)
    if offsets is None:
        return ServeError(422, "bad_input", message)
    if isinstance(exc, ImpossibleSequenceError) and sequence is not None and step is not None:
        s = session(sequence)
        return ServeError(422, "impossible_session", f"session {s}: {message}", session=s,
                          position=step)
    if position is not None:
        s = int(np.searchsorted(offsets, position, side="right")) - 1
        if 0 <= s < len(offsets) - 1:
            # X is the request's observations concatenated: name the session instead
            return bad_observation(session(s), position - int(offsets[s]), message)
    return ServeError(422, "bad_input", message)
