"""The wire format: request bodies to numpy batches, results to JSON replies.

A request body is a JSON object ``{"sessions": [...], <options>}``. A session is a list
of observations, or an object ``{"id": "...", "obs": [...]}`` (the id routes it in an
A/B split; an optional ``"segment"`` routes it to a segmented detector's segment). An observation is an integer symbol for a CategoricalHMM, and a list of
``n_features`` numbers (a frame) for the continuous families (a bare number where
n_features is 1). Every check here is a whole-batch pass in C (``map``, ``set``,
``numpy``); the per-session loops that name a bad session and position run only once a
pass has found something wrong.

Replies carry floats as JSON numbers written by ``repr`` (shortest round-trip: the client
reads back the library's exact float64); -inf, which JSON cannot spell, is ``null``.
"""

import itertools
import json

import numpy as np

from ._errors import ServeError, bad_observation, limit_error

try:  # optional: a faster parser and writer, used when installed
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None

#: Up to this many sessions are handed to the library as a list of views (the cheapest
#: call for a few sessions); more go as one concatenated array with ``lengths=``.
FEW_SESSIONS = 8

_chain = itertools.chain.from_iterable
_INT_TYPES = {int}
_NUMBER_TYPES = {int, float}


def _reject_constant(name):
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


# built once: json.loads/dumps with options build a new decoder/encoder on every call
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def loads(body):
    """The parsed JSON body; 400 for anything that is not one JSON value."""
    if not body:
        raise ServeError(400, "bad_json", "the body is empty; expected a JSON object "
                         '{"sessions": [...]}')
    try:
        if orjson is not None:
            return orjson.loads(body)
        # as json.loads reads bytes: UTF-8, -16 or -32 by the first bytes
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except RecursionError:
        raise ServeError(400, "bad_json", "the body nests JSON too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, orjson's error
        raise ServeError(400, "bad_json", f"the body is not valid JSON: {exc}"[:300]) from None


def dumps(obj):
    """``obj`` as compact JSON bytes (floats round-trip exactly; no NaN or inf)."""
    if orjson is not None:
        return orjson.dumps(obj)
    return _ENCODER.encode(obj).encode()


def _type_name(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "an integer", float: "a number"}.get(type(value),
                                                                       type(value).__name__)


def _show(value):
    """A short rendering of a JSON value for an error message (never recursive)."""
    if type(value) in (list, dict):
        return f"({_type_name(value)} of {len(value)})"
    text = repr(value) if type(value) is float else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def request_object(body, allowed):
    """The body as a dict whose keys are ``sessions`` and the ``allowed`` options."""
    obj = loads(body)
    if type(obj) is not dict:
        raise ServeError(422, "bad_request", f'the body must be a JSON object {{"sessions": '
                         f"[...]}}, got {_type_name(obj)}")
    if "sessions" not in obj:
        raise ServeError(422, "bad_request", 'the body has no "sessions"; expected '
                         '{"sessions": [session, ...]}')
    unknown = set(obj) - allowed - {"sessions"}
    if unknown:
        names = ", ".join(sorted(allowed | {"sessions"}))
        raise ServeError(422, "bad_request", f"unknown field {_show(sorted(unknown)[0])}; this "
                         f"endpoint takes {names}")
    return obj


def flag(obj, name):
    """A boolean option (False when absent)."""
    value = obj.get(name, False)
    if type(value) is not bool:
        raise ServeError(422, "bad_request", f"{name} must be true or false, got "
                         f"{_show(value)}")
    return value


def choice(obj, name, options, default):
    """A string option among ``options`` (``default`` when absent or null)."""
    value = obj.get(name)
    if value is None:
        return default
    if value not in options:
        raise ServeError(422, "bad_request", f"{name} must be one of {list(options)}, got "
                         f"{_show(value)}")
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


def _sessions_list(raw, max_sessions):
    if type(raw) is not list:
        raise ServeError(422, "bad_request", f'"sessions" must be a list of sessions, got '
                         f"{_type_name(raw)}")
    if len(raw) > max_sessions:
        raise limit_error("max_sessions", len(raw), max_sessions, "sessions in the request")
    kinds = set(map(type, raw))
    if kinds <= {list}:
        return raw, None, None
    observations, ids, segments = [], [], []
    for s, item in enumerate(raw):
        if type(item) is list:
            observations.append(item)
            ids.append(None)
            segments.append(None)
            continue
        if type(item) is not dict:
            raise ServeError(422, "bad_session", f"session {s} must be a list of observations "
                             f'or an object {{"id": ..., "obs": [...]}}, got '
                             f"{_type_name(item)}", session=s)
        extra = set(item) - {"id", "obs", "segment"}
        if extra or "obs" not in item:
            what = f"unknown field {_show(sorted(extra)[0])}" if extra else 'no "obs"'
            raise ServeError(422, "bad_session", f'session {s} has {what}; expected {{"id": '
                             f'"...", "obs": [...]}}', session=s)
        obs, sid = item["obs"], item.get("id")
        if type(obs) is not list:
            raise ServeError(422, "bad_session", f'session {s}: "obs" must be a list of '
                             f"observations, got {_type_name(obs)}", session=s)
        if sid is not None:
            if type(sid) is int:
                sid = str(sid)
            elif type(sid) is not str:
                raise ServeError(422, "bad_session", f'session {s}: "id" must be a string '
                                 f"(or an integer), got {_type_name(sid)}", session=s)
        segment = item.get("segment")
        if segment is not None and type(segment) is not str:
            raise ServeError(422, "bad_session", f'session {s}: "segment" must be a string, '
                             f"got {_type_name(segment)}", session=s)
        observations.append(obs)
        ids.append(sid)
        segments.append(segment)
    return (observations, (ids if any(i is not None for i in ids) else None),
            (segments if any(g is not None for g in segments) else None))


def _lengths(observations, max_observations):
    lengths = list(map(len, observations))
    if max(lengths) > max_observations:
        s = next(i for i, n in enumerate(lengths) if n > max_observations)
        raise limit_error("max_observations", lengths[s], max_observations,
                          f"observations in session {s}")
    if min(lengths) == 0:
        s = lengths.index(0)
        raise ServeError(422, "bad_session", f"session {s} is empty; expected at least one "
                         "observation", session=s)
    return lengths


def _first(observations, bad, missing=ServeError):
    """(session, position, value) of the first observation where ``bad(value)``; when
    there is none, (None, None, None) if ``missing`` is None, else a 422."""
    for s, obs in enumerate(observations):
        for t, x in enumerate(obs):
            if bad(x):
                return s, t, x
    if missing is None:
        return None, None, None
    # not reached: a whole-batch check found something the per-item one does not
    raise ServeError(422, "bad_observation", "an observation is not valid for this model")


def _overflows(value):
    try:
        float(value)
    except OverflowError:
        return True
    return False


def _locate(offsets, flat_index):
    s = int(np.searchsorted(offsets, flat_index, side="right")) - 1
    return s, int(flat_index - offsets[s])


def _symbols(observations, lengths, n_symbols):
    flat = list(_chain(observations))
    expected = f"expected an integer symbol 0 <= symbol < n_features={n_symbols}"
    if set(map(type, flat)) != _INT_TYPES:
        s, t, x = _first(observations, lambda x: type(x) is not int)
        raise bad_observation(s, t, f"{expected}, got {_type_name(x)} {_show(x)}")
    try:
        values = np.array(flat, dtype=np.intp)
    except OverflowError:
        low, high = int(np.iinfo(np.intp).min), int(np.iinfo(np.intp).max)
        s, t, x = _first(observations, lambda x: not low <= x <= high)
        raise bad_observation(s, t, f"{expected}, got {_show(x)}") from None
    batch = Batch(values, lengths)
    bad = (values < 0) | (values >= n_symbols)
    if bad.any():
        f = int(np.argmax(bad))
        s, t = _locate(batch.offsets, f)
        raise bad_observation(s, t, f"{expected}, got {values[f]}")
    return batch


def _frames(observations, lengths, n_features, counts):
    frames = list(_chain(observations))
    kinds = set(map(type, frames))
    what = f"a frame of n_features={n_features} numbers"
    if kinds == {list}:
        if set(map(len, frames)) != {n_features}:
            s, t, x = _first(observations, lambda x: type(x) is not list or
                             len(x) != n_features)
            raise bad_observation(s, t, f"expected {what}, got a list of {len(x)}")
        numbers = list(_chain(frames))
    elif n_features == 1 and kinds <= _NUMBER_TYPES:
        numbers = frames
    elif n_features == 1 and kinds <= {list, int, float}:  # bare numbers and [x] frames
        s, t, x = _first(observations, lambda x: type(x) is list and len(x) != 1,
                         missing=None)
        if s is not None:
            raise bad_observation(s, t, f"expected {what}, got a list of {len(x)}")
        numbers = [x[0] if type(x) is list else x for x in frames]
    else:
        ok = (list,) if n_features > 1 else (list, int, float)
        s, t, x = _first(observations, lambda x: type(x) not in ok)
        raise bad_observation(s, t, f"expected {what}, got {_type_name(x)} {_show(x)}")
    if not set(map(type, numbers)) <= _NUMBER_TYPES:
        s, t, x = _first(observations, lambda x: any(
            type(v) not in _NUMBER_TYPES for v in (x if type(x) is list else [x])))
        bad = next(v for v in (x if type(x) is list else [x]) if type(v) not in _NUMBER_TYPES)
        raise bad_observation(s, t, f"expected {what}, got {_type_name(bad)} {_show(bad)} "
                              "in it")
    try:
        values = np.array(numbers, dtype=np.float64).reshape(-1, n_features)
    except OverflowError:  # an integer beyond float64's range
        values = None
    batch = Batch(values, lengths)
    finite = None if values is None else np.isfinite(values).all(axis=1)
    if values is None or not finite.all():
        if values is None:
            s, t, _ = _first(observations, lambda x: any(
                _overflows(v) for v in (x if type(x) is list else [x])))
        else:
            s, t = _locate(batch.offsets, int(np.argmin(finite)))
        raise bad_observation(s, t, f"expected {what}, got a value beyond float64's range "
                              "(observations must be finite)")
    if counts:
        bad = ((values < 0) | (np.floor(values) != values)).any(axis=1)
        if bad.any():
            f = int(np.argmax(bad))
            s, t = _locate(batch.offsets, f)
            raise bad_observation(s, t, "the model's observations are counts: expected "
                                  f"non-negative whole numbers, got {values[f].tolist()}")
    return batch


def sessions(obj, model, settings):
    """The request's sessions as a :class:`Batch` for ``model``.

    Raises ServeError: 413 beyond ``max_sessions`` or ``max_observations``, 422 for a
    malformed session or an observation the model cannot take (naming the session and
    the position).
    """
    observations, ids, segments = _sessions_list(obj["sessions"], settings.max_sessions)
    if not observations:
        return None
    lengths = _lengths(observations, settings.max_observations)
    kind = model._observation_kind()
    if kind == "symbols":
        batch = _symbols(observations, lengths, int(model.n_features))
    else:
        batch = _frames(observations, lengths, int(model.n_features), kind == "counts")
    batch.ids = ids
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
