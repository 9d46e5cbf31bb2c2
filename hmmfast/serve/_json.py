"""JSON in the service: one parser behaviour for every body, whatever is installed.

Every request body is first scanned by the compiled scanner (``hmmfast._jsonscan``):
strict RFC 8259 JSON, UTF-8 only (a leading BOM is skipped; UTF-16/32 is refused), no
NaN or Infinity, nesting at most 64 deep. Only what it accepts is ever decoded by Python's
``json``, and only small parts of a data request (keys, options, ids; the observations
go straight into arrays). Duplicate keys are refused (400 ``duplicate_key``) wherever
the service reads an object. There is no optional faster parser: the same body gets the
same answer on every installation.

Replies are written by Python's ``json`` (compact; floats as ``repr`` writes them, so a
client reads back the library's exact float64).
"""

import json

from .. import _jsonscan as J
from ._errors import ServeError

#: Values up to this many bytes are decoded for an error message or an option.
SMALL = 4096

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_KIND = {J.J_OBJECT: "an object", J.J_ARRAY: "a list", J.J_STRING: "a string",
         J.J_NUMBER: "a number", J.J_TRUE: "a boolean", J.J_FALSE: "a boolean",
         J.J_NULL: "null"}


class DuplicateKey(ValueError):
    """An object that names a key twice."""

    def __init__(self, key):
        super().__init__(key)
        self.key = key


def _unique_pairs(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(key)
        obj[key] = value
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_pairs)


def duplicate_error(key, where="the body"):
    return ServeError(400, "duplicate_key", f"{where} has the key {quote(key)} twice; "
                      "keys must be unique")


def quote(text):
    """A key or name for a message: JSON-quoted, at most ~40 characters."""
    shown = json.dumps(text)
    return shown if len(shown) <= 40 else shown[:36] + '..."'


def decode(raw):
    """A JSON value the scanner accepted (bytes), as Python (DuplicateKey possible)."""
    return _DECODER.decode(bytes(raw).decode("utf-8"))


def scan_error(scanner, data):
    """The 400 of a body the scanner stopped on as not JSON (or 503 out of memory)."""
    status, offset, detail, _, _ = scanner.error
    if status == J.NO_MEMORY:
        return ServeError(503, "out_of_memory", "the server ran out of memory reading the "
                          "body; try again later or send a smaller request")
    head = bytes(data[:offset])
    line = head.count(b"\n") + 1
    column = offset - (head.rfind(b"\n") + 1) + 1
    if detail == "no JSON value" and not head.strip():
        return ServeError(400, "bad_json", 'the body is empty; expected a JSON object '
                          '{"sessions": [...]}')
    return ServeError(400, "bad_json", f"the body is not valid JSON: {detail} at line "
                      f"{line}, column {column} (byte {offset})")


def loads(data):
    """A whole small body (admin calls, the inference protocol's small replies) as
    Python, by the same rules as every body: 400 for anything else."""
    scanner = J.Scanner("", "")
    scanner.feed(data)
    if scanner.finish() != J.DONE:
        raise scan_error(scanner, data)
    try:
        return decode(data)
    except DuplicateKey as exc:
        raise duplicate_error(exc.key) from None


def dumps(obj):
    """``obj`` as compact JSON bytes (floats round-trip exactly; no NaN or inf)."""
    return _ENCODER.encode(obj).encode()


def type_name(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "an integer", float: "a number"}.get(type(value),
                                                                       type(value).__name__)


def show(value):
    """A short rendering of a Python JSON value for a message: the value itself for a
    scalar, what it is for a container ("a list of 3 values")."""
    if type(value) is list:
        n = len(value)
        return f"a list of {n} value{'' if n == 1 else 's'}"
    if type(value) is dict:
        n = len(value)
        return f"an object of {n} key{'' if n == 1 else 's'}"
    if type(value) is bool:
        return f"a boolean ({json.dumps(value)})"
    if type(value) is str:
        return "a string " + quote(value)
    if value is None:
        return "null"
    text = repr(value) if type(value) is float else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe(raw, kind=None):
    """A short rendering of the raw JSON value ``raw`` (bytes the scanner accepted)."""
    if len(raw) <= SMALL:
        try:
            return show(decode(raw))
        except (ValueError, RecursionError):
            pass
    if kind == J.J_NUMBER or (kind is None and raw[:1] in b"-0123456789"):
        text = bytes(raw[:40]).decode("ascii", "replace")
        return text + ("..." if len(raw) > 40 else "")
    first = {b"[": "a list", b"{": "an object", b'"': "a string"}.get(bytes(raw[:1]))
    return f"{first or _KIND.get(kind, 'a value')} of {len(raw)} bytes"
