"""The wire format: request bodies to numpy batches, results to JSON replies.

A request body is a JSON object ``{"sessions": [...], <options>}``. A session is a list
of observations, or an object ``{"id": "...", "obs": [...]}`` (the id routes it in an
A/B split; an optional ``"segment"`` routes it to a segmented detector's segment). An observation is an integer symbol for a CategoricalHMM, and a list of
``n_features`` numbers (a frame) for the continuous families (a bare number where
n_features is 1).

The body was scanned as it arrived (``_body``, the compiled ``hmmfast._jsonscan``): valid
JSON, sessions and observations counted against the limits, byte spans recorded. Here the
observations are converted from those spans straight into one array (``fill_symbols`` /
``fill_frames``, without the GIL); only the options and the ids are decoded by Python.
Every check is a whole-batch pass; a message names the first bad session and position.

Replies carry floats as JSON numbers written by ``repr`` (shortest round-trip: the client
reads back the library's exact float64); -inf, which JSON cannot spell, is ``null``.
"""

import itertools

import numpy as np

from .. import _jsonscan as J
from ._errors import ServeError, bad_observation
from ._json import (SMALL, DuplicateKey, decode, describe, duplicate_error, dumps, quote,
                    show)

__all__ = ["Batch", "Request", "check_counts", "check_symbols", "choice", "dumps", "flag",
           "float_lists", "floats", "request_object", "sessions"]

#: Up to this many sessions are handed to the library as a list of views (the cheapest
#: call for a few sessions); more go as one concatenated array with ``lengths=``.
FEW_SESSIONS = 8
#: Keys longer than this (bytes, as written) are not decoded: no endpoint has one.
LONG_KEY = 256


class Large:
    """An option value too large to decode; messages describe it."""

    def __init__(self, text):
        self.text = text


def _show_option(value):
    return value.text if isinstance(value, Large) else show(value)


class Request:
    """A data request: its options (decoded) and its scanned body.

    Attributes
    ----------
    options : dict
        Option name -> value (a :class:`Large` for a value beyond ``SMALL`` bytes).
    data : bytes or bytearray
        The body.
    scan : hmmfast._jsonscan.Scanner
        The scanner that accepted it (``items()``: the sessions).
    sessions_raw : tuple
        (start, end, kind) of the "sessions" value.
    """

    __slots__ = ("data", "options", "scan", "sessions_raw")

    def __init__(self, data, scan, options, sessions_raw):
        self.data, self.scan, self.options, self.sessions_raw = data, scan, options, \
            sessions_raw


def _key(data, start, end):
    if end - start > LONG_KEY:
        return None  # not an option's name
    raw = bytes(data[start:end])
    return raw[1:-1].decode("utf-8") if b"\\" not in raw else decode(raw)


_LITERALS = {b"true": True, b"false": False, b"null": None}


def _option(raw, kind):
    """An option's value: decoded when small, else described (:class:`Large`)."""
    if len(raw) <= 5 and bytes(raw) in _LITERALS:
        return _LITERALS[bytes(raw)]
    return decode(raw) if len(raw) <= SMALL else Large(describe(raw, kind))


def request_object(body, allowed):
    """The body (a scanned :class:`hmmfast.serve._body.Body`) as a :class:`Request`
    whose keys are ``sessions`` and the ``allowed`` options: 422 for another shape,
    400 for a key given twice."""
    data, scan = body.data, body.scan
    if scan.root_kind != J.J_OBJECT:
        raise ServeError(422, "bad_request", 'the body must be a JSON object {"sessions": '
                         f"[...]}}, got {describe(data, scan.root_kind)}")
    names = sorted(allowed | {"sessions"})
    members, unknown = {}, None
    for k_start, k_end, v_start, v_end, kind in scan.members():
        key = _key(data, k_start, k_end)
        if key is not None and key in members:
            raise duplicate_error(key)
        if key not in names and unknown is None:
            unknown = quote(key) if key is not None else describe(data[k_start:k_end])
        members[key] = (v_start, v_end, kind)
    if "sessions" not in members:
        raise ServeError(422, "bad_request", 'the body has no "sessions"; expected '
                         '{"sessions": [session, ...]}')
    if unknown is not None or scan.n_members > len(members):
        shown = unknown or f"(the body has {scan.n_members} fields)"
        raise ServeError(422, "bad_request", f"unknown field {shown}; this endpoint takes "
                         f"{', '.join(names)}")
    options = {}
    for key in allowed & set(members):
        v_start, v_end, kind = members[key]
        try:
            options[key] = _option(data[v_start:v_end], kind)
        except DuplicateKey as exc:
            raise duplicate_error(exc.key, f'"{key}"') from None
    return Request(data, scan, options, members["sessions"])


def flag(request, name):
    """A boolean option (False when absent)."""
    value = request.options.get(name, False)
    if type(value) is not bool:
        raise ServeError(422, "bad_request", f"{name} must be true or false, got "
                         f"{_show_option(value)}")
    return value


def choice(request, name, options, default):
    """A string option among ``options`` (``default`` when absent or null)."""
    value = request.options.get(name)
    if value is None:
        return default
    if type(value) is not str or value not in options:
        raise ServeError(422, "bad_request", f"{name} must be one of {list(options)}, got "
                         f"{_show_option(value)}")
    return value


class Batch:
    """A request's sessions, concatenated.

    Attributes
    ----------
    values : ndarray
        (F,) intp symbols (CategoricalHMM) or (F, n_features) float64 frames.
    lengths : ndarray of shape (S,), intp
    offsets : ndarray of shape (S + 1,), intp
        Session s is ``values[offsets[s]:offsets[s + 1]]``.
    ids : list or None
        One id (str) or None per session; None when no session has one.
    index : ndarray of shape (S,) or None
        The sessions' positions in the request (set for one arm of an A/B split).
    segments : list or None
        One ``"segment"`` (str) or None per session; None when no session has one.
    """

    __slots__ = ("ids", "index", "lengths", "offsets", "segments", "values")

    def __init__(self, values, lengths, ids=None, index=None):
        self.values = values
        self.lengths = np.asarray(lengths, dtype=np.intp)
        self.offsets = np.zeros(len(self.lengths) + 1, dtype=np.intp)
        np.cumsum(self.lengths, out=self.offsets[1:])
        self.ids = ids
        self.index = index
        self.segments = None

    def __len__(self):
        return len(self.lengths)

    def call_args(self):
        """(args, kwargs) for ``score_batch``/``decode_batch``/``predict``: a list of views
        for a few sessions, else the concatenation with ``lengths=``."""
        if len(self.lengths) <= FEW_SESSIONS:
            o = self.offsets.tolist()
            return ([self.values[a:b] for a, b in itertools.pairwise(o)],), {}
        return (self.values,), {"lengths": self.lengths}

    def take(self, selected):
        """The sub-batch of the sessions where the boolean array ``selected`` is True."""
        frames = np.repeat(selected, self.lengths)
        index = np.flatnonzero(selected)
        ids = None if self.ids is None else [self.ids[i] for i in index.tolist()]
        out = Batch(self.values[frames], self.lengths[selected], ids, index)
        if self.segments is not None:
            out.segments = [self.segments[i] for i in index.tolist()]
        return out


def _session_error(data, scan, row, s):
    """The 4xx of session ``s`` (its items() row), whose shape is wrong."""
    kind, flags = int(row[J.KIND]), int(row[J.FLAGS])
    if kind != J.J_OBJECT:
        raise ServeError(422, "bad_session", f"session {s} must be a list of observations "
                         f'or an object {{"id": ..., "obs": [...]}}, got '
                         f"{describe(data[row[J.START]:row[J.END]], kind)}", session=s)
    for bit, key in ((J.DUP_PAYLOAD, "obs"), (J.DUP_ID, "id"), (J.DUP_SEGMENT, "segment")):
        if flags & bit:
            raise duplicate_error(key, f"session {s}")
    if flags & J.UNKNOWN_KEY:
        _, k_start, k_end = scan.unknown_key
        key = _key(data, k_start, k_end)
        shown = quote(key) if key is not None else describe(data[k_start:k_end])
        raise ServeError(422, "bad_session", f'session {s} has unknown field {shown}; '
                         'expected {"id": "...", "obs": [...]}', session=s)
    if not flags & J.HAS_PAYLOAD:
        raise ServeError(422, "bad_session", f'session {s} has no "obs"; expected '
                         '{"id": "...", "obs": [...]}', session=s)
    if row[J.P_KIND] != J.J_ARRAY:
        raise ServeError(422, "bad_session", f'session {s}: "obs" must be a list of '
                         f"observations, got {describe(data[row[J.P_START]:row[J.P_END]])}",
                         session=s)
    if flags & J.HAS_SEGMENT and row[J.SEG_KIND] not in (J.J_STRING, J.J_NULL):
        raise ServeError(422, "bad_session", f'session {s}: "segment" must be a string, '
                         f"got {describe(data[row[J.SEG_START]:row[J.SEG_END]])}", session=s)
    raise ServeError(422, "bad_session", f'session {s}: "id" must be a string (or an '
                     f"integer), got {describe(data[row[J.ID_START]:row[J.ID_END]])}",
                     session=s)


def _check_objects(data, scan, items):
    """422 (or 400) naming the first session that is neither a list nor a valid
    ``{"id": ..., "obs": [...]}``."""
    kinds, flags, id_kinds = items[:, J.KIND], items[:, J.FLAGS], items[:, J.ID_KIND]
    seg_kinds = items[:, J.SEG_KIND]
    is_object = kinds == J.J_OBJECT
    id_ok = (id_kinds == J.J_STRING) | (id_kinds == J.J_NUMBER) | (id_kinds == J.J_NULL)
    seg_ok = (seg_kinds == J.J_STRING) | (seg_kinds == J.J_NULL)
    wrong = (kinds != J.J_ARRAY) & ~is_object
    wrong |= is_object & ((flags & (J.UNKNOWN_KEY | J.DUP_PAYLOAD | J.DUP_ID
                                    | J.DUP_SEGMENT)) != 0)
    wrong |= is_object & ((flags & J.HAS_PAYLOAD) == 0)
    wrong |= is_object & (items[:, J.P_KIND] != J.J_ARRAY)
    wrong |= ((flags & J.HAS_ID) != 0) & ~id_ok
    wrong |= ((flags & J.HAS_SEGMENT) != 0) & ~seg_ok
    if wrong.any():
        s = int(np.argmax(wrong))
        _session_error(data, scan, items[s], s)


def _ids(data, items):
    """One id (str) or None per session; None when none has one."""
    kinds = items[:, J.ID_KIND]
    has = (items[:, J.FLAGS] & J.HAS_ID).astype(bool) & (kinds != J.J_NULL)
    if not has.any():
        return None
    ids = [None] * len(items)
    for s in np.flatnonzero(has).tolist():
        raw = data[items[s, J.ID_START]:items[s, J.ID_END]]
        if kinds[s] == J.J_STRING and b"\\" not in raw:
            ids[s] = bytes(raw[1:-1]).decode("utf-8")
            continue
        value = decode(raw)
        if type(value) is float:
            raise ServeError(422, "bad_session", f'session {s}: "id" must be a string (or '
                             f"an integer), got {show(value)}", session=s)
        ids[s] = str(value) if type(value) is int else value
    return ids


def _segments(data, items):
    """One segment name (str) or None per session; None when none has one."""
    kinds = items[:, J.SEG_KIND]
    has = (items[:, J.FLAGS] & J.HAS_SEGMENT).astype(bool) & (kinds != J.J_NULL)
    if not has.any():
        return None
    segments = [None] * len(items)
    for s in np.flatnonzero(has).tolist():
        raw = data[items[s, J.SEG_START]:items[s, J.SEG_END]]
        segments[s] = (bytes(raw[1:-1]).decode("utf-8") if b"\\" not in raw
                       else decode(raw))
    return segments


def _token(data, error):
    return data[error[3]:error[4]]


def _text(token):
    """A number token as written (at most 40 characters)."""
    text = bytes(token[:41]).decode("ascii", "replace")
    return text if len(text) <= 40 else text[:37] + "..."


def _symbols(data, scan, n_symbols):
    expected = f"expected an integer symbol 0 <= symbol < n_features={n_symbols}"
    values, error = scan.fill_symbols(data, n_symbols)
    if error is not None:
        code, s, t = error[:3]
        token = _token(data, error)
        got = (describe(token) if code == J.F_NOT_NUMBER else
               f"{_text(token)} (not an integer)" if code == J.F_NOT_INT else _text(token))
        raise bad_observation(int(s), int(t), f"{expected}, got {got}")
    return values.astype(np.intp, copy=False)


def check_symbols(values, counts, n_symbols):
    """``values`` (intp) when every symbol is in [0, n_symbols), else the 422 naming the
    first bad one's session and position (sessions of ``counts`` observations)."""
    bad = (values < 0) | (values >= n_symbols)
    if bad.any():
        f = int(np.argmax(bad))
        s, t = _locate(counts, f)
        raise bad_observation(s, t, "expected an integer symbol 0 <= symbol < "
                              f"n_features={n_symbols}, got {values[f]}")
    return values.astype(np.intp, copy=False)


def check_counts(values, counts):
    """``values`` (frames) when they are non-negative whole numbers (a counts model:
    PoissonHMM, MultinomialHMM), else
    the 422 naming the first bad frame's session and position."""
    bad = ((values < 0) | (np.floor(values) != values)).any(axis=1)
    if bad.any():
        f = int(np.argmax(bad))
        s, t = _locate(counts, f)
        raise bad_observation(s, t, "the model's observations are counts: expected "
                              f"non-negative whole numbers, got {values[f].tolist()}")
    return values


def _frames(data, scan, counts, n_features, counts_only):
    what = f"a frame of n_features={n_features} numbers"
    leaves = int(scan.items()[:, J.P_LEAVES].sum())
    values, error = scan.fill_frames(data, n_features, n_features == 1, leaves)
    if error is not None:
        code, s, t, _, _, count = error
        token = _token(data, error)
        if code == J.F_FRAME_LEN:
            got = f"a list of {count} value{'' if count == 1 else 's'}"
        elif code == J.F_IN_FRAME:
            got = f"{describe(token)} in it"
        elif code == J.F_RANGE:
            got = f"{_text(token)}, beyond float64's range (observations must be finite)"
        else:
            got = describe(token)
        raise bad_observation(int(s), int(t), f"expected {what}, got {got}")
    n_frames = int(counts.sum())
    if values.size != n_frames * n_features:  # pragma: no cover - fill_frames checks it
        raise ServeError(422, "bad_observation", f"expected frames of {what}")
    values = values.reshape(n_frames, n_features)
    return check_counts(values, counts) if counts_only else values


def _locate(counts, flat_index):
    offsets = np.cumsum(counts)
    s = int(np.searchsorted(offsets, flat_index, side="right"))
    return s, int(flat_index - (offsets[s - 1] if s else 0))


def sessions(request, model, settings):
    """The request's sessions as a :class:`Batch` for ``model`` (None when there are
    none).

    Raises ServeError: 422 for a malformed session or an observation the model cannot
    take (naming the session and the position); 400 for a key given twice. (The limits
    were checked while the body was read.)
    """
    data, scan = request.data, request.scan
    start, end, kind = request.sessions_raw
    if kind != J.J_ARRAY:
        raise ServeError(422, "bad_request", '"sessions" must be a list of sessions, got '
                         f"{describe(data[start:end], kind)}")
    if not scan.n_items:
        return None
    ids = segments = None
    if scan.n_not_arrays:  # sessions given as objects (the plain lists need no check)
        items = scan.items()
        _check_objects(data, scan, items)
    counts = scan.payload_counts()
    if scan.min_count == 0:
        s = int(np.argmin(counts))
        raise ServeError(422, "bad_session", f"session {s} is empty; expected at least one "
                         "observation", session=s)
    if scan.n_not_arrays:
        ids, segments = _ids(data, items), _segments(data, items)
    observed = model._observation_kind()
    if observed == "symbols":
        values = _symbols(data, scan, int(model.n_features))
    else:
        values = _frames(data, scan, counts, int(model.n_features), observed == "counts")
    batch = Batch(values, counts, ids)
    batch.segments = segments
    return batch


# ---------------------------------------------------------------------- replies


def floats(arr):
    """A float array as a list for JSON, -inf (and any non-finite value) as None."""
    out = arr.tolist()
    if not np.isfinite(arr).all():
        for i in np.flatnonzero(~np.isfinite(arr)).tolist():
            out[i] = None
    return out


def float_lists(arrays):
    """A list of float arrays as lists of lists, non-finite values as None."""
    if not arrays:
        return []
    flat = floats(np.concatenate(arrays))
    bounds = np.zeros(len(arrays) + 1, dtype=np.intp)
    np.cumsum([len(a) for a in arrays], out=bounds[1:])
    b = bounds.tolist()
    return [flat[i:j] for i, j in itertools.pairwise(b)]
