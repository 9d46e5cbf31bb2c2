"""Data files for the command line: sequences in batches, whatever the file format.

Formats (chosen by the file's extension, or ``--format``):

text (any other extension, or ``-`` for standard input)
    One sequence per line. Observations are separated by runs of spaces, tabs or commas.
    Categorical models read integer symbols >= 0; the continuous families read numbers,
    ``dim`` per frame (``--dim D``: a line of T * D numbers is T frames). With ``ids``
    (``--ids``) each line's first field is the sequence's id. Blank lines are errors, so
    output line k always answers input line k. Parsed by the compiled reader
    (csrc/_textio.pyx) in big binary blocks.
jsonl (``.jsonl``, ``.ndjson``)
    One JSON value per line: a list of observations (symbols, numbers, or frames as lists
    of D numbers), or an object ``{"id": ..., "obs": [...]}``. When the first line
    carries an id, every line must.
npz (``.npz``)
    Arrays ``X`` (all sequences concatenated) and optional ``lengths`` (one per
    sequence; default: X is one sequence) and ``ids`` (one per sequence).
npy (``.npy``)
    One sequence.

Text and JSON lines may be gzip-compressed: recognised by their first bytes (the gzip
magic), whatever the name, also on standard input; a ``.gz`` suffix is ignored when the
format is read from the extension (``sessions.jsonl.gz`` is JSON lines).

A reader yields :class:`Batch` objects of at most ``chunk`` sequences each, so memory
stays bounded on huge text and JSON-lines files. Every error is a :class:`DataError` (or
the reader's TextFormatError, also a ValueError) whose message names the file and the
line or sequence.
"""

import itertools
import json
import os
import re
import sys

import numpy as np

from . import _textio
from ._cli_gzip import open_input

FORMATS = ("text", "jsonl", "npz", "npy")
BLOCK = 8 << 20          # bytes read from a text file at a time
CHUNK = 100_000          # sequences per batch


class DataError(ValueError):
    """A data file that cannot be read as sequences (exit status 1)."""


class UsageError(Exception):
    """Options that do not fit together, the data or the model (exit status 2)."""


class Batch:
    """Up to ``chunk`` consecutive sequences of a data file.

    Attributes
    ----------
    X : ndarray
        The sequences concatenated: (T,) intp symbols, or (T, D) float64 frames.
    offsets : ndarray of shape (n + 1,), intp
        Sequence s is ``X[offsets[s]:offsets[s + 1]]``.
    ids : tuple (bytes, spans, quote) or None
        The ids in the form ``_textio.format_results`` writes.
    first : int
        Index (0-based) of the batch's first sequence in the file.
    line : int or None
        Line number (1-based) of the first sequence, for text and JSON-lines files.
    """

    __slots__ = ("X", "first", "ids", "line", "offsets")

    def __init__(self, X, offsets, ids=None, first=0, line=None):
        self.X = X
        self.offsets = offsets
        self.ids = ids
        self.first = first
        self.line = line

    def __len__(self):
        return len(self.offsets) - 1

    @property
    def lengths(self):
        return np.diff(self.offsets)

    def where(self, s):
        """Where sequence s of the batch is in the file, for messages."""
        if self.line is not None:
            return f"line {self.line + s}"
        return f"sequence {self.first + s}"

    def span(self):
        """The batch's lines (or sequences) in the file, for messages."""
        last = len(self) - 1
        if self.line is not None:
            return f"lines {self.line}-{self.line + last}"
        return f"sequences {self.first}-{self.first + last}"


def detect_format(path, fmt=None):
    """The format name for ``path`` (``fmt`` wins when given)."""
    if fmt is not None:
        return fmt
    name = os.fspath(path).lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".npy"):
        return "npy"
    return "text"


class DataSource:
    """A data file opened for reading in batches.

    Parameters
    ----------
    path : str
        The file, or "-" for standard input (text or jsonl).
    symbols : bool
        Categorical observations (integers) rather than continuous frames.
    n_symbols : int or None
        Symbols must be < n_symbols (the model's n_features); None: not checked here.
    dim : int or None
        Numbers per frame for continuous text and flat JSON lists (None: 1, or the
        frames' own width in JSON lists of lists and in arrays).
    ids : bool
        Text lines start with an id.
    json_ids : bool
        Ids will be written into JSON output (text ids are then quoted).
    fmt : str or None
        One of FORMATS, overriding the extension.
    chunk : int
        Sequences per batch.
    """

    def __init__(self, path, *, symbols, n_symbols=None, dim=None, ids=False,
                 json_ids=False, fmt=None, chunk=CHUNK):
        self.path = path
        self.name = "<stdin>" if path == "-" else os.fspath(path)
        self.format = detect_format(path, fmt)
        self.symbols = symbols
        self.n_symbols = n_symbols
        self.dim = dim
        self.ids = ids
        self.json_ids = json_ids
        self.chunk = chunk
        if path == "-" and self.format in ("npz", "npy"):
            raise UsageError(f"{self.format} data cannot come from standard input: give a file")
        if ids and self.format != "text":
            raise UsageError(f"--ids applies to text data; {self.format} files carry their "
                            "own ids (jsonl: objects with \"id\"; npz: an ids array)")
        self.size = None if path == "-" else os.path.getsize(path)
        self.bytes_read = 0

    def batches(self):
        """Yield the file's sequences as :class:`Batch` objects, in order."""
        reader = {"text": self._text, "jsonl": self._jsonl, "npz": self._npz,
                  "npy": self._npy}[self.format]
        yield from reader()

    def read_all(self):
        """(X, lengths): the whole file, concatenated (for fit)."""
        parts, lengths = [], []
        for batch in self.batches():
            parts.append(batch.X)
            lengths.append(batch.lengths)
        if not parts:
            raise DataError(f"{self.name} holds no sequences")
        X = parts[0] if len(parts) == 1 else np.concatenate(parts)
        lengths = lengths[0] if len(lengths) == 1 else np.concatenate(lengths)
        return X, lengths

    def _fail(self, where, what):
        raise DataError(f"{self.name}: {where}: {what}" if where else f"{self.name}: {what}")

    def _open_text(self):
        """The binary stream of a text or JSON-lines source, decompressed when gzipped
        (then the size is unknown: no percentage in progress)."""
        f, compressed = open_input(self.path, self.name)
        if compressed:
            self.size = None
        return f

    def _close(self, f):
        if f is not sys.stdin.buffer:
            f.close()

    # ------------------------------------------------------------------------ text

    def _text(self):
        if self.symbols:
            def parse(data, pos, final, line):
                return _textio.parse_symbols(
                    data, pos, final=final, max_lines=self.chunk, n_symbols=self.n_symbols,
                    with_ids=self.ids, first_line=line)
        else:
            def parse(data, pos, final, line):
                return _textio.parse_numbers(
                    data, pos, final=final, max_lines=self.chunk, dim=self.dim or 1,
                    with_ids=self.ids, first_line=line)
        f = self._open_text()
        try:
            carry, waiting, line, first = b"", [], 1, 0
            while True:
                block = f.read(BLOCK)
                self.bytes_read += len(block)
                final = not block
                if not final and block.find(b"\n") < 0:
                    waiting.append(block)  # a long line: join once it ends
                    continue
                data = b"".join([carry, *waiting, block]) if carry or waiting else block
                waiting = []
                pos = 0
                while pos < len(data):
                    try:
                        X, offsets, spans, pos_after = parse(data, pos, final, line)
                    except _textio.TextFormatError as exc:
                        raise DataError(f"{self.name}: {exc}") from None
                    n = len(offsets) - 1
                    if n == 0:
                        break
                    ids = None if spans is None else (data, spans, self.json_ids)
                    yield Batch(X, offsets, ids, first, line)
                    pos, line, first = pos_after, line + n, first + n
                    if n < self.chunk:
                        break
                carry = data[pos:]
                if final:
                    return
        finally:
            self._close(f)

    # ------------------------------------------------------------------------ JSON lines

    def _jsonl(self):
        f = self._open_text()
        try:
            has_ids, line0, first = None, 1, 0
            while True:
                raw = list(itertools.islice(f, self.chunk))
                if not raw:
                    return
                self.bytes_read += sum(map(len, raw))
                obs, ids = [], []
                for number, value in enumerate(self._json_values(raw, line0), line0):
                    if isinstance(value, dict):
                        if "obs" not in value:
                            self._fail(f"line {number}", 'expected an object with "obs" (and '
                                       f'optionally "id"), got keys {sorted(value)}')
                        seq, carries_id = value["obs"], "id" in value
                    else:
                        seq, carries_id = value, False
                    if has_ids is None:
                        has_ids = carries_id
                    elif has_ids != carries_id:
                        self._fail(f"line {number}", "every line must carry an id when the "
                                   "first one does" if has_ids else
                                   "the first line carries no id, this one does")
                    obs.append(seq)
                    if carries_id:
                        ids.append(value["id"])
                yield self._json_batch(obs, ids if has_ids else None, first, line0)
                first += len(raw)
                line0 += len(raw)
        finally:
            self._close(f)

    def _json_values(self, raw, line0):
        """The JSON value of each line: one json.loads for the whole chunk; line by line
        only to name the line of an error."""
        try:
            values = json.loads(b"[" + b",".join(raw) + b"]")
        except (ValueError, RecursionError):
            values = None
        if values is None or len(values) != len(raw):  # a bad line, or a line holding two
            values = [self._json_line(line, number)
                      for number, line in enumerate(raw, line0)]
        for number, value in enumerate(values, line0):
            if not isinstance(value, (list, dict)):
                self._fail(f"line {number}", "expected a JSON list of observations or an "
                           f'object {{"id": ..., "obs": [...]}}, got {type(value).__name__}')
        return values

    def _json_line(self, raw, number):
        if not raw.strip():
            self._fail(f"line {number}", "blank line: expected a JSON list or object "
                       "(one sequence per line; blank lines are not allowed)")
        try:
            return json.loads(raw)
        except ValueError as exc:
            msg = getattr(exc, "msg", str(exc))
            self._fail(f"line {number}", f"not valid JSON ({msg})")
        except RecursionError:
            self._fail(f"line {number}", "JSON nested too deeply: expected a list of "
                       "observations (frames: lists of numbers)")

    def _json_batch(self, obs, ids, first, line0):
        lengths = np.empty(len(obs), dtype=np.intp)
        for s, seq in enumerate(obs):
            if not isinstance(seq, list) or not seq:
                self._fail(f"line {line0 + s}", '"obs" must be a non-empty list of '
                           f"observations, got {_short(seq)}")
            lengths[s] = len(seq)
        offsets = np.zeros(len(obs) + 1, dtype=np.intp)
        np.cumsum(lengths, out=offsets[1:])
        batch = Batch(None, offsets, self._json_ids(ids), first, line0)
        if self.symbols:
            batch.X = self._json_symbols(obs, batch)
        else:
            batch.X, batch.offsets = self._json_frames(obs, batch)
        return batch

    def _json_ids(self, ids):
        if ids is None:
            return None
        if self.json_ids:
            texts = [_json_id(i) for i in ids]
        else:  # text output: a string id as is, unless it would break the line's fields
            texts = [i if isinstance(i, str) and not _SPECIAL.search(i) else _json_id(i)
                     for i in ids]
        encoded = [t.encode() for t in texts]
        ends = np.cumsum([len(e) for e in encoded], dtype=np.intp)
        spans = np.stack([ends - [len(e) for e in encoded], ends], axis=1)
        return b"".join(encoded), spans.astype(np.intp), False

    def _json_symbols(self, obs, batch):
        flat = [v for seq in obs for v in seq]
        try:
            X = np.array(flat)
        except (ValueError, TypeError, OverflowError):
            X = np.array(flat, dtype=object)
        if X.dtype.kind not in "iu" or X.ndim != 1 or (
                X.dtype.kind == "u" and X.size and X.max() > np.iinfo(np.intp).max):
            for k, v in enumerate(flat):
                whole = isinstance(v, int) and not isinstance(v, bool)
                if not whole or not _INTP_MIN <= v <= _INTP_MAX:
                    s = int(np.searchsorted(batch.offsets, k, "right")) - 1
                    what = "too large" if whole else "not an integer"
                    self._fail(f"{batch.where(s)}, position {k - batch.offsets[s]}",
                               f"expected a symbol (an integer >= 0), got {_short(v)} "
                               f"({what})")
        X = X.astype(np.intp, copy=False)
        check_symbols(X, self.n_symbols, batch, self.name)
        return X

    def _json_frames(self, obs, batch):
        frames = []
        for s, seq in enumerate(obs):
            try:
                arr = np.asarray(seq, dtype=np.float64)
            except (ValueError, TypeError, OverflowError, RecursionError):
                self._fail(batch.where(s), "expected numbers or lists of numbers (frames "
                           "of equal width), got " + _short(seq))
            frames.append(self._shape_frames(arr, batch.where(s)))
        widths = {f.shape[1] for f in frames}
        if len(widths) > 1:
            self._fail(f"lines {batch.line}-{batch.line + len(obs) - 1}",
                       f"frames of different widths {sorted(widths)}")
        lengths = np.array([len(f) for f in frames], dtype=np.intp)
        offsets = np.zeros(len(frames) + 1, dtype=np.intp)
        np.cumsum(lengths, out=offsets[1:])
        return np.concatenate(frames), offsets

    def _shape_frames(self, arr, where):
        """A sequence's values as (T, D) frames: flat values are reshaped by --dim."""
        if arr.ndim == 1:
            d = self.dim or 1
            if arr.size % d:
                self._fail(where, f"{arr.size} numbers, not a multiple of dim={d}")
            return arr.reshape(-1, d)
        if arr.ndim != 2 or arr.shape[0] == 0:
            self._fail(where, f"expected a sequence of frames, got an array of shape "
                       f"{arr.shape}")
        if self.dim is not None and arr.shape[1] != self.dim:
            self._fail(where, f"frames have {arr.shape[1]} numbers, but --dim is {self.dim}")
        return arr

    # ------------------------------------------------------------------------ arrays

    def _load_npz(self):
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                names = set(archive.files)
                if "X" not in names:
                    self._fail("", f"an .npz data file needs an array X (and optionally "
                               f"lengths and ids), got {sorted(names) or 'no arrays'}")
                arrays = {k: archive[k] for k in ("X", "lengths", "ids") if k in names}
        except DataError:
            raise
        except (ValueError, OSError, EOFError) as exc:
            if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
                raise
            self._fail("", f"not a readable .npz file ({_reason(exc)})")
        return arrays

    def _npz(self):
        arrays = self._load_npz()
        X = self._array_X(arrays["X"], "X")
        lengths = arrays.get("lengths")
        if lengths is None:
            offsets = np.array([0, len(X)], dtype=np.intp)
        else:
            if lengths.ndim != 1 or lengths.dtype.kind not in "iu" or lengths.size == 0:
                self._fail("lengths", "expected a non-empty 1-D integer array, got "
                           f"{lengths.dtype} of shape {lengths.shape}")
            if np.any(lengths <= 0):
                i = int(np.argmax(lengths <= 0))
                self._fail("lengths", f"lengths[{i}] = {lengths[i]}: every length must be > 0")
            offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
            np.cumsum(lengths, out=offsets[1:])
            if offsets[-1] != len(X):
                self._fail("lengths", f"the lengths sum to {offsets[-1]} but X has "
                           f"{len(X)} {'symbols' if self.symbols else 'frames'}")
        ids = arrays.get("ids")
        if ids is not None:
            if ids.ndim != 1 or len(ids) != len(offsets) - 1:
                self._fail("ids", f"expected one id per sequence ({len(offsets) - 1}), got "
                           f"shape {ids.shape}")
            ids = ids.tolist()
        yield from self._array_batches(X, offsets, ids)

    def _npy(self):
        try:
            arr = np.load(self.path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
                raise
            self._fail("", f"not a readable .npy file ({_reason(exc)})")
        if not isinstance(arr, np.ndarray):
            self._fail("", "expected one array (one sequence), got an archive")
        X = self._array_X(arr, "the array")
        yield from self._array_batches(X, np.array([0, len(X)], dtype=np.intp), None)

    def _array_X(self, arr, name):
        if arr.size == 0:
            self._fail(name, "is empty: expected at least one observation")
        if self.symbols:
            if arr.ndim == 2 and arr.shape[1] == 1:
                arr = arr[:, 0]
            if arr.ndim != 1 or arr.dtype.kind not in "iu":
                self._fail(name, f"expected integer symbols of shape (T,) or (T, 1), got "
                           f"{arr.dtype} of shape {arr.shape}")
            return np.ascontiguousarray(arr, dtype=np.intp)
        if arr.dtype.kind not in "iuf":
            self._fail(name, f"expected numbers, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        return self._shape_frames(arr, name)

    def _array_batches(self, X, offsets, ids):
        n = len(offsets) - 1
        for a in range(0, n, self.chunk):
            b = min(n, a + self.chunk)
            off = offsets[a:b + 1] - offsets[a]
            batch = Batch(X[offsets[a]:offsets[b]], off,
                          self._json_ids(ids[a:b]) if ids is not None else None, a)
            if self.symbols:
                check_symbols(batch.X, self.n_symbols, batch, self.name)
            yield batch


def check_symbols(X, n_symbols, batch, name):
    """Raise DataError naming the sequence when a symbol is < 0 or >= n_symbols."""
    if X.size == 0:
        return
    bad = X < 0 if n_symbols is None else (X < 0) | (X >= n_symbols)
    if not bad.any():
        return
    k = int(np.argmax(bad))
    s = int(np.searchsorted(batch.offsets, k, "right")) - 1
    expected = ("expected 0 <= symbol" if n_symbols is None else
                f"expected 0 <= symbol < {n_symbols} (the model's n_features)")
    raise DataError(f"{name}: {batch.where(s)}, position {k - batch.offsets[s]}: symbol "
                    f"{X[k]} is out of range: {expected}")


_SPECIAL = re.compile(r'[\x00-\x1f"\\]')
_INTP_MIN, _INTP_MAX = int(np.iinfo(np.intp).min), int(np.iinfo(np.intp).max)



def _json_id(value):
    """An id as JSON text (fast paths for plain ints and strings)."""
    if type(value) is int:
        return str(value)
    if type(value) is str and not _SPECIAL.search(value):
        return f'"{value}"'
    return json.dumps(value, ensure_ascii=False)


def _short(value, limit=40):
    text = json.dumps(value) if not isinstance(value, np.ndarray) else repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _reason(exc):
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
