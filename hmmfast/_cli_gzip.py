"""Opening a text or JSON-lines data file: plain, or gzip-compressed whatever its name.

A gzip stream is recognised by its first two bytes (the magic 1f 8b), peeked without
consuming them, so standard input and FIFOs work too. Damage inside the compressed data
(a truncated download) is a DataError naming the file, raised from the read.
"""

import gzip
import sys
import zlib

GZIP_MAGIC = b"\x1f\x8b"


def open_input(path, name):
    """(binary stream, compressed?) for ``path`` ("-": standard input); ``name`` names
    the file in errors."""
    raw = sys.stdin.buffer if path == "-" else open(path, "rb")
    try:
        head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    except OSError:
        head = b""
    if head != GZIP_MAGIC:
        return raw, False
    return _GzipReader(raw, name), True


class _GzipReader:
    """A gzip stream whose damage is a DataError naming the file (not an OSError,
    EOFError or zlib.error from inside the decompressor)."""

    def __init__(self, raw, name):
        self._raw = raw
        self._gz = gzip.GzipFile(fileobj=raw, mode="rb")
        self._name = name

    def read(self, n=-1):
        try:
            return self._gz.read(n)
        except (OSError, EOFError, zlib.error) as exc:
            raise self._damaged(exc) from None

    def __iter__(self):
        while True:
            try:
                line = self._gz.readline()
            except (OSError, EOFError, zlib.error) as exc:
                raise self._damaged(exc) from None
            if not line:
                return
            yield line

    def _damaged(self, exc):
        from ._cli_data import DataError

        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return DataError(f"{self._name}: the gzip data is damaged or truncated ({reason})")

    def close(self):
        self._gz.close()
        if self._raw is not sys.stdin.buffer:
            self._raw.close()
