# Text input and output of the command line: sequences in, one result line per sequence out.
#
# Design note
# -----------
# Reading. A text data file holds one sequence per line: observations separated by
# whitespace (spaces, tabs; ``\r`` counts as a space, so CRLF files read too) or by one
# comma with optional whitespace around it, optionally led by an id (the line's first
# field, when ``with_ids``). A comma separates two fields, so ``1,,2``, a leading and a
# trailing comma are empty fields, and errors (never silently dropped). Separators are
# skipped by a 256-byte character-class table that also counts the commas crossed, so the
# empty-field rule costs no second pass (measured: the same speed as the reader that
# treated commas as whitespace, on space- and comma-separated files). The caller reads
# the file in big binary blocks and hands one ``bytes`` block to ``parse_symbols``
# (non-negative integer symbols, range-checked against ``n_symbols``; digits past the
# limit stop accumulating, so no length overflows) or ``parse_numbers`` (floats, ``dim``
# per frame, by C's strtod: any length, copied to a heap buffer when longer than the
# 63-byte stack one). Each call parses whole lines only, at most ``max_lines`` of them,
# without the GIL, into one concatenated observation array plus sequence offsets (the
# layout the batch kernels take), and returns how many bytes it consumed; the caller keeps
# the rest (a partial last line) for the next block, or passes ``final=True`` at end of
# file so a last line without a newline counts. Blank lines are errors (output lines stay
# aligned with input lines). The first bad token stops the parse; the wrapper raises
# hmmfast._errors.TextFormatError naming the line (1-based, counted from ``first_line``),
# the column (1-based byte) and the token, after the nogil loop.
#
# Writing. ``format_results`` turns per-sequence results (a log-probability or score, and
# optionally a state path and an id) into the bytes of the output lines, as text
# (``[id<TAB>]value[<TAB>s0 s1 ...]``) or as JSON lines (``{"id": ..., "<key>": value,
# "states": [...]}``). Values are written exactly as Python's repr writes them (the
# shortest decimal that reads back to the same double, ``-inf`` for an impossible
# sequence; ``null`` in JSON, which has no infinities). repr's digits come from
# hmm_repr_double (csrc/hmm_repr.h: exact 128-bit integer arithmetic, no GIL) for
# 2^-10 <= |x| < 2^53, the range scores and log-probabilities live in, and from CPython's
# own dtoa (under the GIL) for the rare rest. Formatting and line assembly run on
# ``n_threads`` threads, each writing its own share of the lines into its own buffer, sized
# beforehand from per-line upper bounds.

from libc.stdlib cimport malloc, calloc, free, strtod
from libc.string cimport memcpy, memchr, strlen
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free
from cython.parallel cimport prange

import numpy as np

from hmmfast._errors import TextFormatError

cimport numpy as cnp

cnp.import_array()

ctypedef Py_ssize_t intp_t

cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int* ptype) except NULL
    int Py_DTSF_ADD_DOT_0

cdef extern from "hmm_repr.h" nogil:
    # the length written, or 0: the caller uses CPython's dtoa
    int hmm_repr_double(double x, char* out) noexcept


cdef enum:
    OK = 0
    ERR_TOKEN = 1      # not a symbol / not a number
    ERR_NEGATIVE = 2   # a negative symbol
    ERR_RANGE = 3      # a symbol >= n_symbols
    ERR_BLANK = 4      # a blank line
    ERR_NO_OBS = 5     # an id and nothing after it
    ERR_DIM = 6        # the count of numbers is not a multiple of dim
    ERR_EMPTY = 7      # an empty field: two commas, or a comma at a line's start or end
    ERR_MEMORY = 8     # no memory for a very long number

cdef enum:
    MAX_NUMBER = 63     # longest number token copied to the stack (longer: the heap)
    SLOT = 32           # bytes per formatted double (repr needs at most 24)

cdef Py_ssize_t MAX_SYMBOLS_LIMIT = (<Py_ssize_t> 1) << 40  # symbols without a model

cdef struct ParseResult:
    int code
    Py_ssize_t n_lines     # complete lines parsed (also: the failing line's index)
    Py_ssize_t n_values    # observations written
    Py_ssize_t consumed    # bytes consumed
    Py_ssize_t line_start  # byte position of the failing line
    Py_ssize_t tok_start   # byte span of the failing token
    Py_ssize_t tok_end
    Py_ssize_t count       # ERR_DIM: the numbers on the line


cdef extern from *:
    """
    /* The reader's character classes: 1 whitespace between fields, 2 a comma; one load
       per byte in the separator loops (measured faster than a chain of comparisons). */
    static const unsigned char HMM_TEXT_CLASS[256] = {
        [' '] = 1, ['\\t'] = 1, ['\\r'] = 1, ['\\v'] = 1, ['\\f'] = 1, [','] = 2};
    """
    const unsigned char HMM_TEXT_CLASS[256]


cdef inline bint is_space(char c) noexcept nogil:
    """Space, tab, CR, VT or FF (not newline: it ends the line)."""
    return HMM_TEXT_CLASS[<unsigned char> c] == 1


cdef inline bint is_sep(char c) noexcept nogil:
    """Whitespace or a comma: what ends a field."""
    return HMM_TEXT_CLASS[<unsigned char> c] != 0


cdef Py_ssize_t bad_comma(const char* s, Py_ssize_t p, Py_ssize_t eol) noexcept nogil:
    """The position of the first comma in the line [p, eol) with no field before it (at
    the line's start or after another comma) or after it (at the line's end), or -1.
    The slow path: run only once a line is known to hold one."""
    cdef bint field = False     # a field since the last comma (or the line's start)
    cdef Py_ssize_t comma = -1  # the last comma, while no field follows it
    while p < eol:
        if s[p] == b',':
            if not field:
                return p
            field = False
            comma = p
            p += 1
        elif is_space(s[p]):
            p += 1
        else:
            field = True
            comma = -1
            p = token_end(s, p, eol)
    return comma


cdef inline Py_ssize_t skip_separators(const char* s, Py_ssize_t p, Py_ssize_t eol,
                                       int* commas) noexcept nogil:
    """From p past whitespace and commas to the next field (or eol), counting the
    commas crossed: one table load per byte, as fast as skipping whitespace alone."""
    cdef unsigned char cls
    commas[0] = 0
    while p < eol:
        cls = HMM_TEXT_CLASS[<unsigned char> s[p]]
        if cls == 0:
            break
        commas[0] += cls >> 1
        p += 1
    return p


cdef int fail_empty(ParseResult* r, const char* s, Py_ssize_t pos,
                    Py_ssize_t eol) noexcept nogil:
    """ERR_EMPTY at the line's first misplaced comma (the slow path, once)."""
    cdef Py_ssize_t q = bad_comma(s, pos, eol)
    return fail(r, ERR_EMPTY, pos, q, q + 1)


cdef inline Py_ssize_t token_end(const char* s, Py_ssize_t p, Py_ssize_t eol) noexcept nogil:
    while p < eol and not is_sep(s[p]):
        p += 1
    return p


cdef inline Py_ssize_t line_end(const char* s, Py_ssize_t pos, Py_ssize_t stop,
                                bint final) noexcept nogil:
    """End of the line starting at pos (its newline's position), or -1 when the line is
    incomplete (no newline before stop and not final)."""
    cdef const char* nl = <const char*> memchr(s + pos, b'\n', stop - pos)
    if nl != NULL:
        return nl - s
    return stop if final else -1


cdef inline int fail(ParseResult* r, int code, Py_ssize_t line_start, Py_ssize_t tok,
                     Py_ssize_t tok_end) noexcept nogil:
    r.code = code
    r.line_start = line_start
    r.tok_start = tok
    r.tok_end = tok_end
    return code


cdef inline Py_ssize_t read_id(const char* s, Py_ssize_t p, Py_ssize_t eol,
                               intp_t* span) noexcept nogil:
    """Skip leading whitespace, store the first field's span; return the position after
    it (the span is empty for a blank line or a leading comma)."""
    while p < eol and is_space(s[p]):
        p += 1
    span[0] = p
    p = token_end(s, p, eol)
    span[1] = p
    return p


cdef inline int fail_id(ParseResult* r, const char* s, Py_ssize_t pos, Py_ssize_t p,
                        Py_ssize_t eol) noexcept nogil:
    """A line without an id: blank, or starting with a comma (an empty id)."""
    if p < eol and s[p] == b',':
        return fail(r, ERR_EMPTY, pos, p, p + 1)
    return fail(r, ERR_BLANK, pos, p, p)


cdef int parse_symbol_lines(const char* s, Py_ssize_t start, Py_ssize_t stop, bint final,
                            Py_ssize_t max_lines, intp_t n_symbols, bint with_ids,
                            intp_t* values, intp_t* offsets, intp_t* id_spans,
                            ParseResult* r) noexcept nogil:
    cdef Py_ssize_t pos = start, eol, p, tok, n_before
    cdef intp_t v
    cdef unsigned char d
    cdef int commas
    cdef bint field
    r.code = OK
    r.n_lines = 0
    r.n_values = 0
    offsets[0] = 0
    while r.n_lines < max_lines and pos < stop:
        eol = line_end(s, pos, stop, final)
        if eol < 0:
            break
        p = pos
        n_before = r.n_values
        if with_ids:
            p = read_id(s, p, eol, id_spans + 2 * r.n_lines)
            if p == id_spans[2 * r.n_lines]:
                return fail_id(r, s, pos, p, eol)
        field = with_ids  # a field before the next comma (the id)
        while True:
            p = skip_separators(s, p, eol, &commas)
            if commas and (commas > 1 or p == eol or not field):
                return fail_empty(r, s, pos, eol)  # 1,,2 or a leading or trailing comma
            if p == eol:
                break
            field = True
            tok = p
            v = 0
            while p < eol:
                d = <unsigned char> (s[p] - 48)  # '0'
                if d > 9:
                    break
                if v < n_symbols:  # stops growing past the limit: no overflow
                    v = v * 10 + d
                p += 1
            if p == tok or (p < eol and not is_sep(s[p])):
                p = token_end(s, p, eol)
                if s[tok] == b'-' and p - tok > 1:
                    return fail(r, ERR_NEGATIVE, pos, tok, p)
                return fail(r, ERR_TOKEN, pos, tok, p)
            if v >= n_symbols:
                return fail(r, ERR_RANGE, pos, tok, p)
            values[r.n_values] = v
            r.n_values += 1
        if r.n_values == n_before:
            if with_ids:
                return fail(r, ERR_NO_OBS, pos, id_spans[2 * r.n_lines],
                            id_spans[2 * r.n_lines + 1])
            return fail(r, ERR_BLANK, pos, eol, eol)
        r.n_lines += 1
        offsets[r.n_lines] = r.n_values
        pos = eol + 1
    r.consumed = min(pos, stop)
    return OK


cdef inline int read_number(const char* tok, Py_ssize_t n, char* buf,
                            double* value) noexcept nogil:
    """The n-byte token as a double (strtod, NUL-terminated copy in ``buf`` of
    MAX_NUMBER + 1 bytes, or on the heap when longer): OK, ERR_TOKEN or ERR_MEMORY."""
    cdef char* text = buf
    cdef char* end
    cdef int code = OK
    if n > MAX_NUMBER:
        text = <char*> malloc(n + 1)
        if text == NULL:
            return ERR_MEMORY
    memcpy(text, tok, n)
    text[n] = 0
    value[0] = strtod(text, &end)
    if end != text + n:
        code = ERR_TOKEN
    if text != buf:
        free(text)
    return code


cdef int parse_number_lines(const char* s, Py_ssize_t start, Py_ssize_t stop, bint final,
                            Py_ssize_t max_lines, Py_ssize_t dim, bint with_ids,
                            double* values, intp_t* offsets, intp_t* id_spans,
                            ParseResult* r) noexcept nogil:
    cdef Py_ssize_t pos = start, eol, p, tok, n_before
    cdef char buf[MAX_NUMBER + 1]
    cdef int code, commas
    cdef bint field
    r.code = OK
    r.n_lines = 0
    r.n_values = 0
    offsets[0] = 0
    while r.n_lines < max_lines and pos < stop:
        eol = line_end(s, pos, stop, final)
        if eol < 0:
            break
        p = pos
        n_before = r.n_values
        if with_ids:
            p = read_id(s, p, eol, id_spans + 2 * r.n_lines)
            if p == id_spans[2 * r.n_lines]:
                return fail_id(r, s, pos, p, eol)
        field = with_ids  # a field before the next comma (the id)
        while True:
            p = skip_separators(s, p, eol, &commas)
            if commas and (commas > 1 or p == eol or not field):
                return fail_empty(r, s, pos, eol)  # 1,,2 or a leading or trailing comma
            if p == eol:
                break
            field = True
            tok = p
            p = token_end(s, p, eol)
            code = read_number(s + tok, p - tok, buf, values + r.n_values)
            if code != OK:
                return fail(r, code, pos, tok, p)
            r.n_values += 1
        if r.n_values == n_before:
            if with_ids:
                return fail(r, ERR_NO_OBS, pos, id_spans[2 * r.n_lines],
                            id_spans[2 * r.n_lines + 1])
            return fail(r, ERR_BLANK, pos, eol, eol)
        if (r.n_values - n_before) % dim != 0:
            r.count = r.n_values - n_before
            return fail(r, ERR_DIM, pos, eol, eol)
        r.n_lines += 1
        offsets[r.n_lines] = r.n_values // dim
        pos = eol + 1
    r.consumed = min(pos, stop)
    return OK


cdef str token_text(bytes data, Py_ssize_t a, Py_ssize_t b):
    text = data[a:min(b, a + 40)].decode("utf-8", "backslashreplace")
    return text + ("..." if b - a > 40 else "")


cdef raise_parse_error(ParseResult* r, bytes data, Py_ssize_t first_line, str what,
                       intp_t n_symbols, Py_ssize_t dim, bint with_ids):
    line = first_line + r.n_lines
    column = r.tok_start - r.line_start + 1
    token = token_text(data, r.tok_start, r.tok_end)
    where = f"line {line}, column {column}"
    if r.code == ERR_BLANK:
        message = (f"line {line} is blank: expected {'an id and ' if with_ids else ''}"
                   f"{what}s (one sequence per line; blank lines are not allowed)")
        column, token = 0, ""
    elif r.code == ERR_NO_OBS:
        message = f"line {line}: id {token!r} has no {what}s after it"
        column = 0
    elif r.code == ERR_NEGATIVE:
        message = f"{where}: expected a {what} (an integer >= 0), got {token!r}"
    elif r.code == ERR_RANGE:
        if n_symbols >= MAX_SYMBOLS_LIMIT:
            message = f"{where}: {what} {token!r} is too large"
        else:
            message = (f"{where}: {what} {token!r} is out of range: expected 0 <= {what} < "
                       f"{n_symbols} (the model's n_features)")
    elif r.code == ERR_DIM:
        message = (f"line {line} holds {r.count} numbers, not a multiple of dim={dim} "
                   f"(each frame is {dim} numbers)")
        column, token = 0, ""
    elif r.code == ERR_EMPTY:
        message = (f"{where}: empty field (a comma at the start or end of the line, or two "
                   f"commas with nothing between): expected a {what}")
    elif r.code == ERR_MEMORY:
        raise MemoryError(f"line {line}: no memory to read a {r.tok_end - r.tok_start}-byte "
                          "number")
    elif what == "symbol":
        message = f"{where}: expected a symbol (an integer >= 0), got {token!r}"
    else:
        message = f"{where}: expected a number, got {token!r}"
    raise TextFormatError(message, line, column, token)


cdef const char* block_data(bytes data, Py_ssize_t start, Py_ssize_t* stop) except NULL:
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    if stop[0] < 0 or stop[0] > size:
        stop[0] = size
    if start < 0 or start > stop[0]:
        raise ValueError(f"internal: start={start} outside the block of {size} bytes")
    return PyBytes_AS_STRING(data)


def parse_symbols(bytes data, Py_ssize_t start=0, Py_ssize_t stop=-1, *, bint final=True,
                  Py_ssize_t max_lines=-1, n_symbols=None, bint with_ids=False,
                  Py_ssize_t first_line=1):
    """Parse lines of integer symbols from ``data[start:stop]``.

    Parameters
    ----------
    data : bytes
        A block of the file.
    start, stop : int
        The byte range to parse (``stop=-1``: to the end of ``data``).
    final : bool
        The range ends at end of file: a last line without a newline is complete.
        Otherwise parsing stops before the last newline-less line.
    max_lines : int
        Parse at most this many lines (-1: no limit).
    n_symbols : int or None
        Symbols must be < n_symbols (the model's n_features); None: any size up to 2**40.
    with_ids : bool
        Each line's first field is an id.
    first_line : int
        Line number of the line at ``start``, for error messages.

    Returns
    -------
    symbols : ndarray of shape (n_symbols_read,), intp
    offsets : ndarray of shape (n_lines + 1,), intp
        Sequence s is ``symbols[offsets[s]:offsets[s + 1]]``.
    id_spans : ndarray of shape (n_lines, 2), intp, or None
        Byte span of each line's id in ``data`` (with ``with_ids``).
    consumed : int
        Byte position after the last parsed line.

    Raises
    ------
    TextFormatError
        A blank line, a token that is not an integer >= 0, or a symbol out of range.
    """
    cdef const char* s = block_data(data, start, &stop)
    cdef intp_t limit = MAX_SYMBOLS_LIMIT if n_symbols is None else n_symbols
    if limit < 1 or limit > MAX_SYMBOLS_LIMIT:
        raise ValueError(f"n_symbols must be in [1, 2**40], got {n_symbols!r}")
    cdef Py_ssize_t n = stop - start
    cdef Py_ssize_t lines_cap = n // 2 + 1
    if 0 <= max_lines < lines_cap:
        lines_cap = max_lines
    cdef cnp.ndarray values = np.empty(n // 2 + 1, dtype=np.intp)
    cdef cnp.ndarray offsets = np.empty(lines_cap + 1, dtype=np.intp)
    cdef cnp.ndarray spans = np.empty((lines_cap if with_ids else 0, 2), dtype=np.intp)
    cdef ParseResult r
    with nogil:
        parse_symbol_lines(s, start, stop, final, lines_cap, limit, with_ids,
                           <intp_t*> cnp.PyArray_DATA(values),
                           <intp_t*> cnp.PyArray_DATA(offsets),
                           <intp_t*> cnp.PyArray_DATA(spans), &r)
    if r.code != OK:
        raise_parse_error(&r, data, first_line, "symbol", limit, 1, with_ids)
    values.resize(r.n_values, refcheck=False)
    offsets.resize(r.n_lines + 1, refcheck=False)
    if not with_ids:
        return values, offsets, None, r.consumed
    spans.resize((r.n_lines, 2), refcheck=False)
    return values, offsets, spans, r.consumed


def parse_numbers(bytes data, Py_ssize_t start=0, Py_ssize_t stop=-1, *, bint final=True,
                  Py_ssize_t max_lines=-1, Py_ssize_t dim=1, bint with_ids=False,
                  Py_ssize_t first_line=1):
    """Parse lines of numbers (``dim`` per frame) from ``data[start:stop]``.

    Parameters and results as for :func:`parse_symbols`, except that the values are a
    float64 array of shape (n_frames, dim) and the offsets count frames. A number is
    anything C's ``strtod`` reads in full ("1", "-2.5e3", "nan", "inf"); the model
    decides what it accepts.

    Raises
    ------
    TextFormatError
        A blank line, a token that is not a number, or a line whose count of numbers is
        not a multiple of ``dim``.
    """
    cdef const char* s = block_data(data, start, &stop)
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    cdef Py_ssize_t n = stop - start
    cdef Py_ssize_t lines_cap = n // 2 + 1
    if 0 <= max_lines < lines_cap:
        lines_cap = max_lines
    cdef cnp.ndarray values = np.empty(n // 2 + 1, dtype=np.float64)
    cdef cnp.ndarray offsets = np.empty(lines_cap + 1, dtype=np.intp)
    cdef cnp.ndarray spans = np.empty((lines_cap if with_ids else 0, 2), dtype=np.intp)
    cdef ParseResult r
    with nogil:
        parse_number_lines(s, start, stop, final, lines_cap, dim, with_ids,
                           <double*> cnp.PyArray_DATA(values),
                           <intp_t*> cnp.PyArray_DATA(offsets),
                           <intp_t*> cnp.PyArray_DATA(spans), &r)
    if r.code != OK:
        raise_parse_error(&r, data, first_line, "number", 0, dim, with_ids)
    values.resize(r.n_values, refcheck=False)
    offsets.resize(r.n_lines + 1, refcheck=False)
    values = values.reshape(r.n_values // dim, dim)
    if not with_ids:
        return values, offsets, None, r.consumed
    spans.resize((r.n_lines, 2), refcheck=False)
    return values, offsets, spans, r.consumed


# ---------------------------------------------------------------------------------- writer


cdef struct Lines:
    const double* values         # (n,)
    const char* slots            # (n, SLOT): the formatted values
    const unsigned char* slot_len
    const intp_t** paths         # (n,) state arrays, or NULL without states
    const intp_t* path_len
    const char* id_buf           # the ids' source bytes (spans below), or NULL
    const intp_t* id_spans       # (n, 2)
    bint quote_ids               # JSON output: write ids as escaped JSON strings
    bint json
    const char* key              # JSON key of the value ("score", "logprob")
    Py_ssize_t key_len


cdef inline Py_ssize_t put(char* out, const char* text, Py_ssize_t n) noexcept nogil:
    memcpy(out, text, n)
    return n


cdef inline Py_ssize_t n_digits(unsigned long long v) noexcept nogil:
    cdef Py_ssize_t k = 1
    while v >= 10:
        v //= 10
        k += 1
    return k


cdef inline Py_ssize_t put_int(char* out, intp_t value) noexcept nogil:
    cdef unsigned long long v = <unsigned long long> value
    cdef Py_ssize_t k, i, sign = 0
    if value < 0:  # never for states; kept total
        out[0] = b'-'
        sign = 1
        v = -v  # two's complement magnitude, right for the most negative value too
    k = n_digits(v)
    for i in range(k - 1, -1, -1):
        out[sign + i] = <char> (48 + v % 10)
        v //= 10
    return sign + k


cdef const char* HEX = b"0123456789abcdef"


cdef inline Py_ssize_t put_json_string(char* out, const char* s, Py_ssize_t n) noexcept nogil:
    """A JSON string literal (at most 6n + 2 bytes): escapes quote, backslash, controls."""
    cdef Py_ssize_t i, k = 0
    cdef unsigned char c
    out[k] = b'"'
    k += 1
    for i in range(n):
        c = <unsigned char> s[i]
        if c == b'"' or c == b'\\':
            out[k] = b'\\'
            out[k + 1] = <char> c
            k += 2
        elif c < 0x20:
            memcpy(out + k, b"\\u00", 4)
            out[k + 4] = HEX[c >> 4]
            out[k + 5] = HEX[c & 15]
            k += 6
        else:
            out[k] = <char> c
            k += 1
    out[k] = b'"'
    return k + 1


cdef inline Py_ssize_t line_bound(const Lines* L, Py_ssize_t i) noexcept nogil:
    """An upper bound on the bytes of line i (exact digits of its widest state)."""
    cdef Py_ssize_t b = 48 + L.key_len + SLOT, t, width
    cdef intp_t lo = 0, hi = 0
    cdef const intp_t* path
    if L.id_buf != NULL:
        b += 6 * (L.id_spans[2 * i + 1] - L.id_spans[2 * i]) + 2
    if L.paths != NULL:
        path = L.paths[i]
        for t in range(L.path_len[i]):
            if path[t] > hi:
                hi = path[t]
            if path[t] < lo:
                lo = path[t]
        width = n_digits(hi) if lo == 0 else 20
        b += (width + 2) * L.path_len[i]
    return b


cdef Py_ssize_t write_line(const Lines* L, Py_ssize_t i, char* out) noexcept nogil:
    cdef Py_ssize_t k = 0, t, id_a = 0, id_n = 0
    cdef const intp_t* path
    cdef bint finite = L.values[i] - L.values[i] == 0.0
    if L.id_buf != NULL:
        id_a = L.id_spans[2 * i]
        id_n = L.id_spans[2 * i + 1] - id_a
    if L.json:
        out[k] = b'{'
        k += 1
        if L.id_buf != NULL:
            k += put(out + k, b"\"id\": ", 6)
            if L.quote_ids:
                k += put_json_string(out + k, L.id_buf + id_a, id_n)
            else:
                k += put(out + k, L.id_buf + id_a, id_n)
            k += put(out + k, b", ", 2)
        out[k] = b'"'
        k += 1
        k += put(out + k, L.key, L.key_len)
        k += put(out + k, b"\": ", 3)
        if finite:
            k += put(out + k, L.slots + SLOT * i, L.slot_len[i])
        else:
            k += put(out + k, b"null", 4)
        if L.paths != NULL:
            k += put(out + k, b", \"states\": [", 13)
            path = L.paths[i]
            for t in range(L.path_len[i]):
                if t:
                    k += put(out + k, b", ", 2)
                k += put_int(out + k, path[t])
            out[k] = b']'
            k += 1
        return k + put(out + k, b"}\n", 2)
    if L.id_buf != NULL:
        k += put(out + k, L.id_buf + id_a, id_n)
        out[k] = b'\t'
        k += 1
    k += put(out + k, L.slots + SLOT * i, L.slot_len[i])
    if L.paths != NULL:
        out[k] = b'\t'
        k += 1
        path = L.paths[i]
        for t in range(L.path_len[i]):
            if t:
                out[k] = b' '
                k += 1
            k += put_int(out + k, path[t])
    out[k] = b'\n'
    return k + 1


cdef void repr_slots(const double* values, Py_ssize_t a, Py_ssize_t b, char* slots,
                     unsigned char* slot_len) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(a, b):
        slot_len[i] = <unsigned char> hmm_repr_double(values[i], slots + SLOT * i)


cdef void write_part(const Lines* L, Py_ssize_t a, Py_ssize_t b, char** buf,
                     Py_ssize_t* written) noexcept nogil:
    """Lines a..b into a new buffer (buf[0], NULL when out of memory)."""
    cdef Py_ssize_t i, k = 0
    for i in range(a, b):
        k += line_bound(L, i)
    buf[0] = <char*> malloc(k + 1)
    if buf[0] == NULL:
        return
    k = 0
    for i in range(a, b):
        k += write_line(L, i, buf[0] + k)
    written[0] = k


def repr_double(double x):
    """repr(x) as format_results writes it (tests compare it with Python's repr)."""
    cdef char buf[SLOT]
    cdef Py_ssize_t n = hmm_repr_double(x, buf)
    return buf[:n].decode() if n else repr(x)


def format_results(values, paths=None, ids=None, *, bint json=False, str key="score",
                   int n_threads=1):
    """The output lines for per-sequence results, as one bytes object.

    Parameters
    ----------
    values : array-like of shape (n,), float64
        One value per sequence (a score or a log-probability), written as Python's repr
        writes it; -inf (an impossible sequence) is ``-inf`` in text and ``null`` in JSON.
    paths : list of n intp arrays, optional
        One state path per sequence (decode); an empty path writes an empty field.
    ids : tuple (buffer, spans, quote), optional
        ``buffer`` (bytes) holds the ids; ``spans`` (n, 2) intp gives each id's byte
        range in it; ``quote``: in JSON output, write ids as JSON strings (escaped);
        otherwise ids are written verbatim (already JSON, or text output).
    json : bool
        JSON lines ``{"id": ..., "<key>": value[, "states": [...]]}`` instead of text
        lines ``[id<TAB>]value[<TAB>s0 s1 ...]``.
    key : str
        The JSON key of the value.
    n_threads : int
        Threads that assemble the lines.

    Returns
    -------
    bytes
    """
    cdef cnp.ndarray v = np.ascontiguousarray(values, dtype=np.float64)
    if cnp.PyArray_NDIM(v) != 1:
        raise ValueError("internal: values must be 1-D")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(v), i, p, k, n_parts, total, id_size
    cdef Lines L
    cdef bytes key_bytes = key.encode()
    cdef bytes id_buf
    cdef cnp.ndarray spans, arr
    cdef char* text
    L.values = <const double*> cnp.PyArray_DATA(v)
    L.json = json
    L.key = key_bytes
    L.key_len = len(key_bytes)
    L.paths = NULL
    L.path_len = NULL
    L.id_buf = NULL
    L.id_spans = NULL
    L.quote_ids = False
    if ids is not None:
        id_buf = ids[0]
        id_size = len(id_buf)
        spans = np.ascontiguousarray(ids[1], dtype=np.intp)
        if (cnp.PyArray_NDIM(spans) != 2 or cnp.PyArray_DIM(spans, 0) != n
                or cnp.PyArray_DIM(spans, 1) != 2):
            raise ValueError(f"internal: id spans must have shape ({n}, 2)")
        L.id_spans = <const intp_t*> cnp.PyArray_DATA(spans)
        for i in range(n):
            if not (0 <= L.id_spans[2 * i] <= L.id_spans[2 * i + 1] <= id_size):
                raise ValueError("internal: id span outside the id buffer")
        L.id_buf = PyBytes_AS_STRING(id_buf)
        L.quote_ids = bool(ids[2])
    cdef char* slots = <char*> malloc(SLOT * n + 1)
    cdef unsigned char* slot_len = <unsigned char*> malloc(n + 1)
    cdef const intp_t** path_ptr = NULL
    cdef intp_t* path_len = NULL
    cdef char** part_buf = NULL
    cdef Py_ssize_t* part_written = NULL
    n_parts = max(1, min(n_threads, n // 1024 + 1))
    try:
        if slots == NULL or slot_len == NULL:
            raise MemoryError()
        L.slots = slots
        L.slot_len = slot_len
        if paths is not None:
            if len(paths) != n:
                raise ValueError(f"internal: {len(paths)} paths for {n} values")
            path_ptr = <const intp_t**> malloc(n * sizeof(intp_t*) + 1)
            path_len = <intp_t*> malloc(n * sizeof(intp_t) + 1)
            if path_ptr == NULL or path_len == NULL:
                raise MemoryError()
            for i in range(n):
                arr = <cnp.ndarray?> paths[i]
                if (cnp.PyArray_TYPE(arr) != cnp.NPY_INTP or cnp.PyArray_NDIM(arr) != 1
                        or not cnp.PyArray_IS_C_CONTIGUOUS(arr)):
                    raise TypeError("internal: paths must be 1-D C-contiguous intp arrays")
                path_ptr[i] = <const intp_t*> cnp.PyArray_DATA(arr)
                path_len[i] = cnp.PyArray_DIM(arr, 0)
            L.paths = path_ptr
            L.path_len = path_len
        # the decimal conversion: repr's digits without the GIL where hmm_repr_double
        # can (nearly always), CPython's dtoa under the GIL for the rest
        with nogil:
            if n_parts == 1:
                repr_slots(L.values, 0, n, slots, slot_len)
            else:
                for p in prange(n_parts, num_threads=n_parts, schedule="static"):
                    repr_slots(L.values, n * p // n_parts, n * (p + 1) // n_parts, slots,
                               slot_len)
        for i in range(n):
            if slot_len[i] == 0:
                text = PyOS_double_to_string(L.values[i], b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
                k = strlen(text)  # at most 24 ("-1.2345678901234567e-308")
                memcpy(slots + SLOT * i, text, k)
                slot_len[i] = <unsigned char> k
                PyMem_Free(text)
        part_buf = <char**> calloc(n_parts, sizeof(char*))
        part_written = <Py_ssize_t*> calloc(n_parts, sizeof(Py_ssize_t))
        if part_buf == NULL or part_written == NULL:
            raise MemoryError()
        with nogil:
            if n_parts == 1:
                write_part(&L, 0, n, part_buf, part_written)
            else:
                for p in prange(n_parts, num_threads=n_parts, schedule="static"):
                    write_part(&L, n * p // n_parts, n * (p + 1) // n_parts, part_buf + p,
                               part_written + p)
        total = 0
        for p in range(n_parts):
            if part_buf[p] == NULL:
                raise MemoryError()
            total += part_written[p]
        result = PyBytes_FromStringAndSize(NULL, total)
        out = PyBytes_AS_STRING(result)
        total = 0
        for p in range(n_parts):
            memcpy(out + total, part_buf[p], part_written[p])
            total += part_written[p]
        return result
    finally:
        if part_buf != NULL:
            for p in range(n_parts):
                free(part_buf[p])
        free(part_buf)
        free(part_written)
        free(slots)
        free(slot_len)
        free(path_ptr)
        free(path_len)
