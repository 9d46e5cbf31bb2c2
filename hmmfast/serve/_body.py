"""Reading a request body: its media type, its size, its time, and the scan that counts it.

A body is refused as early as its problem shows:

- an explicit ``Content-Type`` that is not JSON: 415 before a byte of it is read (a web
  page can post ``text/plain`` or a form cross-site without a CORS preflight, never
  ``application/json``); no ``Content-Type`` at all means JSON (tritonclient sends none);
- a ``Content-Length`` beyond the limit: 413 at once, before reading the body;
- while the chunks arrive, each is scanned (``hmmfast._jsonscan.Scanner``, GIL released
  for large chunks): invalid JSON is a 400 and too many sessions or observations a 413
  as soon as the byte that shows it arrives;
- a body that takes longer than ``--timeout-body`` seconds to arrive: 408, connection
  closed.

After an early answer the server discards the rest of the body as it comes (so the
client, which may still be sending, reads a clean answer and the connection stays
usable); the discarding is bounded in time by ``--timeout-header`` (a following request
head must arrive by then, ``_run``), so a client cannot hold the connection open by
dripping an endless body.
"""

import asyncio

from .. import _jsonscan as J
from ._errors import ServeError, limit_error
from ._json import scan_error

JSON_TYPES = ("application/json",)

try:
    _timeout = asyncio.timeout  # Python >= 3.11: no extra task
except AttributeError:  # pragma: no cover - Python 3.10
    _timeout = None


class Body:
    """A request body read in full and accepted by its scanner.

    Attributes
    ----------
    data : bytes or bytearray
    scan : hmmfast._jsonscan.Scanner or None
    """

    __slots__ = ("data", "scan")

    def __init__(self, data, scan):
        self.data = data
        self.scan = scan

    def __len__(self):
        return len(self.data)


def check_content_type(headers):
    """415 unless the request's Content-Type is absent or JSON (UTF-8)."""
    value = headers.get("content-type")
    if value is None or not value.strip():
        return
    media, _, params = value.partition(";")
    media = media.strip().lower()
    if media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        for param in params.split(";"):
            name, _, charset = param.partition("=")
            charset = charset.strip().strip('"').lower()
            if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
                raise ServeError(415, "unsupported_media_type", "the body must be UTF-8 "
                                 f"JSON (application/json), got charset={charset[:40]}")
        return
    raise ServeError(415, "unsupported_media_type", "Content-Type must be application/json "
                     f"(or absent), got {value.strip()[:80]!r}; e.g. curl -d sends a form "
                     "type: add -H 'Content-Type: application/json'")


def _too_large(size, limit, admin, at_least=False):
    if admin:
        return ServeError(413, "body_too_large", f"an admin request body is at most {limit} "
                          f"bytes, got {'more than ' if at_least else ''}{size}")
    return limit_error("max_body_bytes", size, limit,
                       "request body bytes" + (" (at least)" if at_least else ""))


def session_limits(scanner, data, settings):
    """The error of a sessions body whose scan stopped: 413 naming the limit, or 400."""
    status, _, _, item, count = scanner.error
    if status == J.LIMIT_ITEMS:
        return limit_error("max_sessions", count, settings.max_sessions,
                           "sessions in the request (at least)")
    if status == J.LIMIT_PAYLOAD:
        return limit_error("max_observations", count, settings.max_observations,
                           f"observations in session {item} (at least)")
    return scan_error(scanner, data)


async def read_body(request, limit, scanner=None, refuse=None, *, timeout=None,
                    admin=False):
    """The request's body as a :class:`Body`.

    Parameters
    ----------
    request : starlette.requests.Request
    limit : int
        Largest body (bytes).
    scanner : hmmfast._jsonscan.Scanner, optional
        Fed with each chunk; the body is refused as soon as it stops.
    refuse : callable(scanner, data) -> ServeError, optional
        The error of a stopped scan (default: the 400 of invalid JSON).
    timeout : float, optional
        Seconds the whole body may take to arrive (408 beyond).
    admin : bool
        Word the 413 for an admin call.
    """
    check_content_type(request.headers)
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise ServeError(400, "bad_request", f"Content-Length must be a number of bytes, "
                             f"got {declared[:40]!r}")
        if int(declared) > limit:
            raise _too_large(int(declared), limit, admin)
    if timeout is None or _timeout is None:
        data = await _read(request, limit, scanner, refuse, admin)
    else:
        try:
            async with _timeout(timeout):
                data = await _read(request, limit, scanner, refuse, admin)
        except TimeoutError:
            raise ServeError(408, "body_timeout", f"the request body did not arrive within "
                             f"{timeout:g} s (--timeout-body)",
                             headers={"Connection": "close"}) from None
    return Body(data, scanner)


async def _read(request, limit, scanner, refuse, admin):
    data, size = None, 0
    async for chunk in request.stream():
        if not chunk:
            continue
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, admin, at_least=True)
        if scanner is not None and scanner.feed(chunk) < 0:
            seen = chunk if data is None else data + chunk
            raise (refuse or scan_error)(scanner, seen)
        if data is None:
            data = chunk
        else:
            if type(data) is bytes:
                data = bytearray(data)
            data += chunk
    if data is None:
        data = b""
    if scanner is not None and scanner.finish() != J.DONE:
        raise (refuse or scan_error)(scanner, data)
    return data
