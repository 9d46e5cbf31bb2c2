"""hmmfast._jsonscan, the scanner and converters behind the service's request bodies,
against Python's json module: the same bodies accepted, the same values read (floats bit
for bit), the counts and spans right, and nothing changed by where the chunks split."""

import json
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmmfast import _jsonscan as J

MAX_DEPTH = 64


def depth(value):
    if type(value) is list:
        return 1 + max((depth(v) for v in value), default=0)
    if type(value) is dict:
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def _no_constants(name):
    raise ValueError(name)


def python_accepts(body):
    """The oracle: strict UTF-8 (a leading BOM skipped), json.loads without NaN or
    Infinity, nesting at most 64."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return False
    return depth(value) <= MAX_DEPTH


def scan(body, chunks=None, **kw):
    s = J.Scanner(**kw)
    if chunks is None:
        s.feed(body)
    else:
        cuts = sorted(set(chunks))
        for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True):
            if s.feed(body[a:b]) < 0:
                break
    if s.status == J.RUNNING:
        s.finish()
    return s


def outcome(s):
    return (s.status, s.error[:3] if s.status < 0 else None, s.root_kind, s.members(),
            s.list_kind, s.list_span if s.list_kind else None, s.items().tolist(),
            s.unknown_key)


# ---------------------------------------------------------------------- strategies

scalars = (st.none() | st.booleans() | st.integers(-(2 ** 80), 2 ** 80)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                      max_leaves=30)
spacing = st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")])


@st.composite
def json_bodies(draw):
    value = draw(values)
    sep = draw(spacing)
    text = json.dumps(value, separators=sep, ensure_ascii=draw(st.booleans()))
    return (draw(st.sampled_from(["", " ", "\n\t"])) + text
            + draw(st.sampled_from(["", " ", "\r\n"]))).encode()


@st.composite
def mutated(draw):
    body = bytearray(draw(json_bodies()))
    for _ in range(draw(st.integers(1, 3))):
        if not body:
            break
        i = draw(st.integers(0, len(body) - 1))
        op = draw(st.integers(0, 2))
        if op == 0:
            del body[i]
        elif op == 1:
            body.insert(i, draw(st.sampled_from(b'{}[],:"\\0-.eE+ntfNI\x00\x1f\xff\xc3')))
        else:
            body[i] = draw(st.integers(0, 255))
    return bytes(body)


any_body = json_bodies() | mutated() | st.binary(max_size=40)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------- validity


@FUZZ
@given(body=any_body)
def test_accepts_exactly_what_python_accepts(body):
    s = scan(body)
    assert (s.status == J.DONE) == python_accepts(body), (body, s.error)


@FUZZ
@given(body=any_body, data=st.data())
def test_chunk_boundaries_change_nothing(body, data):
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=6))
    assert outcome(scan(body, cuts)) == outcome(scan(body))
    assert outcome(scan(body, range(len(body)))) == outcome(scan(body))


@pytest.mark.parametrize("body,detail", [
    (b"", "no JSON value"),
    (b"  \n", "no JSON value"),
    (b"[1, 2", "ends inside"),
    (b'{"a": NaN}', "NaN"),
    (b"[-Infinity]", "NaN"),
    (b"[1] [2]", "more data"),
    (b"[01]", "invalid number"),
    (b"[1.]", "invalid number"),
    (b'{"a" 1}', "':'"),
    (b"{1: 2}", "string key"),
    (b'["\x01"]', "control character"),
    (b'["\\x"]', "invalid escape"),
    (b'["\\u12g4"]', "\\u escape"),
    (b'["\xed\xa0\x80"]', "not UTF-8"),  # an encoded surrogate
    (b'["\xc0\xaf"]', "not UTF-8"),  # overlong
    (b"\xff\xfe[\x001\x00]\x00", "not UTF-8"),  # UTF-16 with its BOM
    (b"[\x001\x00]\x00", "not UTF-8"),  # UTF-16 without
    (b"[tru]", "literal"),
    (b"[" * 65 + b"]" * 65, "deeper than 64"),
])
def test_errors_say_what_and_where(body, detail):
    s = scan(body)
    status, offset, text, _, _ = s.error
    assert status == J.SYNTAX and detail in text
    assert not python_accepts(body)
    assert 0 <= offset <= len(body)


def test_depth_limit_is_64():
    assert scan(b"[" * 64 + b"]" * 64).status == J.DONE
    assert scan(b"[" * 65 + b"]" * 65).status == J.SYNTAX


def test_utf8_bom_is_skipped():
    s = scan(b'\xef\xbb\xbf{"sessions": [[1]]}')
    assert s.status == J.DONE and s.items()[0, J.P_COUNT] == 1


# ---------------------------------------------------------------------- counts and spans


sessions = st.lists(
    st.lists(st.integers(0, 9), max_size=6)
    | st.fixed_dictionaries({"obs": st.lists(st.integers(0, 9), max_size=6)},
                            optional={"id": st.text(max_size=5) | st.integers(0, 99)})
    | scalars, max_size=12)


@FUZZ
@given(items=sessions, extra=st.dictionaries(st.sampled_from(["per_step", "algorithm"]),
                                             scalars, max_size=2), sep=spacing)
def test_sessions_counted_and_located(items, extra, sep):
    body = json.dumps({**extra, "sessions": items}, separators=sep).encode()
    s = scan(body)
    assert s.status == J.DONE
    members = {json.loads(body[a:b]): json.loads(body[c:d]) for a, b, c, d, _ in s.members()}
    assert members == {**extra, "sessions": items}
    rows = s.items()
    assert len(rows) == s.n_items == len(items)
    assert s.n_not_arrays == sum(type(i) is not list for i in items)
    counts = [len(i) if type(i) is list else len(i["obs"]) if type(i) is dict else None
              for i in items]
    present = [c for c in counts if c is not None]
    assert s.total_count == sum(present)
    assert s.min_count == (min(present) if present else None)
    assert s.payload_counts().tolist() == [c or 0 for c in counts]
    for row, item in zip(rows, items, strict=True):
        assert json.loads(body[row[J.START]:row[J.END]]) == item
        if type(item) is list:
            assert row[J.KIND] == J.J_ARRAY and row[J.P_COUNT] == len(item)
        elif type(item) is dict:
            assert row[J.KIND] == J.J_OBJECT and row[J.P_COUNT] == len(item["obs"])
            assert json.loads(body[row[J.P_START]:row[J.P_END]]) == item["obs"]
            if "id" in item:
                assert json.loads(body[row[J.ID_START]:row[J.ID_END]]) == item["id"]
            else:
                assert not row[J.FLAGS] & J.HAS_ID
        else:
            assert row[J.KIND] not in (J.J_ARRAY, J.J_OBJECT)


def test_escaped_key_names_the_list():
    s = scan(b'{"sess\\u0069ons": [[1, 2]]}')
    assert s.list_kind == J.J_ARRAY and s.items()[0, J.P_COUNT] == 2


def test_session_object_flags():
    s = scan(b'{"sessions": [{"obs": [1], "obs": [2]}, {"id": 1, "id": 2, "obs": []},'
             b' {"obs": [1], "x": 3}, {"id": "a"}]}')
    flags = s.items()[:, J.FLAGS]
    assert flags[0] & J.DUP_PAYLOAD and flags[1] & J.DUP_ID
    assert flags[2] & J.UNKNOWN_KEY and not flags[0] & J.UNKNOWN_KEY
    assert not flags[3] & J.HAS_PAYLOAD and flags[3] & J.HAS_ID
    item, a, b = s.unknown_key
    assert item == 2 and s.items()[2, J.START] < a < b


@pytest.mark.parametrize("chunk", [None, 7])
def test_item_limit_stops_at_the_first_item_beyond(chunk):
    body = b'{"sessions": [' + b"[1]," * 1000 + b"[1]]}"
    s = scan(body, None if chunk is None else range(0, len(body), chunk), max_items=10)
    status, offset, _, _, count = s.error
    assert status == J.LIMIT_ITEMS and count == 11
    assert offset == body.index(b"[1]", 14 + 4 * 10)  # the 11th session's first byte
    assert s.consumed == offset


def test_payload_limit_names_the_session():
    body = b'{"sessions": [[1, 2], {"obs": [1, 2, 3, 4]}, [1]]}'
    s = scan(body, max_payload=3)
    status, _, _, item, count = s.error
    assert status == J.LIMIT_PAYLOAD and item == 1 and count == 4


def test_inputs_mode_counts_leaves():
    body = json.dumps({"inputs": [{"name": "obs", "shape": [2, 3], "datatype": "FP64",
                                   "data": [[1, 2, 3], [4, 5, 6]]},
                                  {"data": 7, "name": "x"}]}).encode()
    s = scan(body, list_key="inputs", payload_key="data", id_key=False,
             strict_items=False, array_items=False)
    rows = s.items()
    assert rows[:, J.P_LEAVES].tolist() == [6, 1]
    assert rows[:, J.P_COUNT].tolist() == [2, 0]
    assert s.unknown_key is None


# ---------------------------------------------------------------------- numbers


def bits(x):
    return struct.pack("<d", x)


float_tokens = (st.floats(allow_nan=False, allow_infinity=False).map(repr)
                | st.integers(-(10 ** 30), 10 ** 30).map(str)
                | st.builds(lambda m, e: f"{m}e{e}", st.integers(-10 ** 20, 10 ** 20),
                            st.integers(-340, 320))
                | st.builds(lambda a, b: f"{a}.{b}", st.integers(-999, 999),
                            st.text("0123456789", min_size=1, max_size=25))
                | st.sampled_from(["0", "-0", "-0.0", "0e0", "1e-400", "4.9e-324",
                                   "2.2250738585072014e-308", "1.7976931348623157e308",
                                   "9007199254740993", "0.1", "123456789012345.6"]))


@settings(max_examples=600, deadline=None)
@given(tokens=st.lists(float_tokens, min_size=1, max_size=20))
def test_numbers_read_bit_for_bit_as_python_reads_them(tokens):
    body = ("[" + ", ".join(tokens) + "]").encode()
    s = scan(body, list_key="", payload_key="")
    assert s.status == J.DONE
    expected = [float(json.loads(t)) for t in tokens]
    finite = [math.isfinite(x) for x in expected]
    out, error = J.fill_numbers(body, 0, len(body), len(tokens), False)
    if all(finite):
        assert error is None
        assert [bits(x) for x in out.tolist()] == [bits(x) for x in expected]
    else:
        assert error[0] == J.F_RANGE and error[2] == finite.index(False)


@settings(max_examples=300, deadline=None)
@given(ints=st.lists(st.integers(-(2 ** 63), 2 ** 63 - 1), min_size=1, max_size=20))
def test_integers_exact(ints):
    body = json.dumps({"sessions": [ints]}).encode()
    s = scan(body)
    row = s.items()
    out, error = J.fill_symbols(body, row[:, J.P_START].copy(), row[:, J.P_COUNT].copy(),
                                len(ints))
    assert error is None and out.tolist() == ints


def test_scanner_fills_its_own_payloads():
    body = b'{"sessions": [[3, 1], {"id": "x", "obs": [0, 2, 2]}, [1]]}'
    s = scan(body)
    values, error = s.fill_symbols(body)
    assert error is None and values.tolist() == [3, 1, 0, 2, 2, 1]
    values, error = s.fill_symbols(body, 3)  # symbols must be < 3
    assert error[:3] == (J.F_SYMBOL, 0, 0) and error[5] == 3
    frames = b'{"sessions": [[[1, 2.5]], {"obs": [[3, 4], [5, 6]]}]}'
    s = scan(frames)
    values, error = s.fill_frames(frames, 2, False, int(s.items()[:, J.P_LEAVES].sum()))
    assert error is None and values.tolist() == [1, 2.5, 3, 4, 5, 6]


@pytest.mark.parametrize("token,code", [
    ("9223372036854775808", J.F_INT_RANGE), ("-9223372036854775809", J.F_INT_RANGE),
    ("1.0", J.F_NOT_INT), ("1e2", J.F_NOT_INT), ('"3"', J.F_NOT_NUMBER),
    ("true", J.F_NOT_NUMBER), ("null", J.F_NOT_NUMBER), ("[1]", J.F_NOT_NUMBER),
    ('{"a": 1}', J.F_NOT_NUMBER),
])
def test_symbol_errors_name_session_position_and_token(token, code):
    body = f'{{"sessions": [[1, 2], [3, {token}, 4]]}}'.encode()
    rows = scan(body).items()
    _, error = J.fill_symbols(body, rows[:, J.P_START].copy(), rows[:, J.P_COUNT].copy(), 5)
    assert error[:3] == (code, 1, 1)
    assert body[error[3]:error[4]].decode() == token


def test_frames():
    frames = [[[0.5, -1e-3], [2, 3]], [[1e300, 7]]]
    body = json.dumps({"sessions": frames}).encode()
    rows = scan(body).items()
    out, error = J.fill_frames(body, rows[:, J.P_START].copy(), rows[:, J.P_COUNT].copy(), 2,
                               False, int(rows[:, J.P_LEAVES].sum()))
    assert error is None
    assert out.reshape(-1, 2).tolist() == [[0.5, -1e-3], [2.0, 3.0], [1e300, 7.0]]


@pytest.mark.parametrize("obs,bare,code,count", [
    ("[[1, 2], [3]]", False, J.F_FRAME_LEN, 1),
    ("[[1, 2], [3, 4, 5, 6]]", False, J.F_FRAME_LEN, 4),
    ("[[1, 2], 3]", False, J.F_NOT_FRAME, 0),
    ("[[1, 2], [3, null]]", False, J.F_IN_FRAME, 0),
    ("[[1, 2], [3, 1e999]]", False, J.F_RANGE, 0),
])
def test_frame_errors(obs, bare, code, count):
    body = f'{{"sessions": [{obs}]}}'.encode()
    rows = scan(body).items()
    _, error = J.fill_frames(body, rows[:, J.P_START].copy(), rows[:, J.P_COUNT].copy(), 2,
                             bare, int(rows[:, J.P_LEAVES].sum()))
    assert error[:3] == (code, 0, 1) and error[5] == count


def test_bare_numbers_when_one_feature():
    body = b'{"sessions": [[1.5, [2], -0]]}'
    rows = scan(body).items()
    out, error = J.fill_frames(body, rows[:, J.P_START].copy(), rows[:, J.P_COUNT].copy(), 1,
                               True, 3)
    assert error is None and out.tolist() == [1.5, 2.0, 0.0]
    assert bits(out[2]) == bits(0.0)  # an integer -0 reads as Python's float(0)


def test_numbers_do_not_depend_on_the_locale(tmp_path):
    """strtod follows LC_NUMERIC (a decimal comma in de_DE); the scanner must not."""
    import shutil
    import subprocess
    import sys

    if shutil.which("localedef") is None:
        pytest.skip("localedef is needed to build a decimal-comma locale")
    built = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8",
                            str(tmp_path / "de_DE.UTF-8")], capture_output=True)
    if not (tmp_path / "de_DE.UTF-8").exists():
        pytest.skip(f"localedef could not build de_DE.UTF-8: {built.stderr[:200]!r}")
    code = ("import locale, numpy; from hmmfast import _jsonscan as J\n"
            "locale.setlocale(locale.LC_NUMERIC, 'de_DE.UTF-8')\n"
            "assert locale.localeconv()['decimal_point'] == ','\n"
            "body = b'[0.30000000000000004, 1.25e-17, 123456789.123456789]'\n"
            "out, error = J.fill_numbers(body, 0, len(body), 3, False)\n"
            "print(error, [x.hex() for x in out.tolist()])\n")
    env = {**__import__("os").environ, "LOCPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    expected = [float(x).hex() for x in ("0.30000000000000004", "1.25e-17",
                                          "123456789.123456789")]
    assert out.stdout.strip() == f"None {expected}"


def test_empty_and_contiguity():
    out, error = J.fill_symbols(b"{}", np.empty(0, np.int64), np.empty(0, np.int64), 0)
    assert error is None and out.shape == (0,)
    with pytest.raises(ValueError):
        J.fill_numbers(b"[1]", 0, 10, 1, True)
    with pytest.raises(ValueError):
        J.Scanner(max_items=0)
