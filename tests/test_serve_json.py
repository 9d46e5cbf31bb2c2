"""hmmfast serve: one JSON behaviour whatever is installed (issue 27, defects 7 and 8).

The service parses every body with its own scanner, never an optional fast parser: the
answers do not change when orjson is installed (the suite runs them with a poisoned
orjson in the process too). Content types, duplicate keys, encodings and the wording of
what came are checked here.
"""

import json
import subprocess
import sys

import pytest

import hmmfast

pytest.importorskip("starlette", reason="the [serve] extra is part of the [test] extra")
from serve_support import AUTH, TOKEN, TestClient, assert_error, categorical, gaussian

from hmmfast.serve import create_app


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("json")
    out = {"cat": d / "cat.npz", "gauss": d / "gauss.npz", "other": d / "other.npz"}
    categorical(0).save(out["cat"])
    gaussian(0).save(out["gauss"])
    categorical(1).save(out["other"])
    return out


@pytest.fixture(scope="module")
def client(files):
    with TestClient(create_app(files["cat"], admin_token=TOKEN)) as c:
        yield c


@pytest.fixture(scope="module")
def gclient(files):
    with TestClient(create_app(files["gauss"])) as c:
        yield c


def test_overflowing_number_names_the_session(gclient):
    # orjson refused the whole body (400 bad_json); the service names the session
    r = gclient.post("/v1/score", content=b'{"sessions": [[[0, 1]], [[0, 1], [1e309, 2]]]}')
    err = assert_error(r, 422, "bad_observation", "session 1, position 1", "1e309",
                       "beyond float64")
    assert (err["session"], err["position"]) == (1, 1)


def test_nan_and_infinity_are_not_json(client):
    for token in (b"NaN", b"Infinity", b"-Infinity"):
        r = client.post("/v1/score", content=b'{"sessions": [[1, ' + token + b"]]}")
        assert_error(r, 400, "bad_json", "NaN or Infinity", "column 19 (byte 18)")


def test_utf8_only(client):
    body = json.dumps({"sessions": [[1, 2]]})
    model = hmmfast.load(client.app.state.registry.snapshot.live.path)
    want = [float(model.score([[1], [2]]))]
    # a UTF-8 BOM is skipped (RFC 8259 allows it)
    r = client.post("/v1/score", content=b"\xef\xbb\xbf" + body.encode())
    assert r.status_code == 200 and r.json()["scores"] == want
    # UTF-16 and -32 are refused (Python's json read them; orjson did not): one answer
    for encoding in ("utf-16", "utf-16-le", "utf-32"):
        r = client.post("/v1/score", content=body.encode(encoding))
        assert_error(r, 400, "bad_json", "not UTF-8")
    assert_error(client.post("/v1/score", content=b'{"sessions": [], "x": "\xe9"}'), 400,
                 "bad_json", "not UTF-8")


@pytest.mark.parametrize("body,where", [
    (b'{"sessions": [[1]], "sessions": [[2]]}', "the body"),
    (b'{"per_step": true, "sessions": [[1]], "per_step": false}', "the body"),
    (b'{"sessions": [{"obs": [1], "obs": [2]}]}', "session 0"),
    (b'{"sessions": [[1], {"id": "a", "id": "b", "obs": [3]}]}', "session 1"),
    (b'{"sess\\u0069ons": [[1]], "sessions": [[2]]}', "the body"),
])
def test_duplicate_keys_are_refused(client, body, where):
    err = assert_error(client.post("/v1/score", content=body), 400, "duplicate_key", where,
                       "twice")
    assert "unique" in err["message"]


def test_duplicate_keys_in_admin_bodies(client, files):
    r = client.post("/v1/models", headers=AUTH,
                    content=json.dumps({"path": "x"})[:-1].encode() + b', "path": "'
                    + str(files["other"]).encode() + b'"}')
    assert_error(r, 400, "duplicate_key", '"path"')
    live = client.get("/v1/models").json()["live"]
    assert live == hmmfast.load(files["cat"]).fingerprint


@pytest.mark.parametrize("content_type,ok", [
    (None, True), ("application/json", True), ("application/json; charset=utf-8", True),
    ("Application/JSON;charset=UTF-8", True), ("application/vnd.api+json", True),
    ("text/plain", False), ("application/x-www-form-urlencoded", False),
    ("multipart/form-data; boundary=x", False), ("application/json; charset=latin-1", False),
    ("text/json", False),
])
def test_content_type(client, content_type, ok):
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = client.post("/v1/score", content=b'{"sessions": [[1, 2]]}', headers=headers)
    if ok:
        assert r.status_code == 200, r.text
    else:
        assert_error(r, 415, "unsupported_media_type", "application/json")


def test_content_type_on_admin_calls(client, files):
    r = client.post("/v1/models", content=json.dumps({"path": str(files["other"])}),
                    headers={**AUTH, "Content-Type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("body,fragment,not_fragment", [
    (b'{"sessions": [[1, null]]}', "got null", "null null"),
    (b'{"sessions": [[[1]]]}', "got a list of 1 value", "(a list"),
    (b'{"sessions": [[1, [1, 2]]]}', "got a list of 2 values", "(a list"),
    (b'{"sessions": [[1, true]]}', "got a boolean (true)", "boolean true"),
    (b'{"sessions": [[1, "2"]]}', 'got a string "2"', None),
    (b'{"sessions": [[1, 2.5]]}', "got 2.5 (not an integer)", None),
    (b'{"sessions": [[1, {"a": 1}]]}', "got an object of 1 key", None),
    (b'{"sessions": [[1]], "per_step": [1, 2]}', "got a list of 2 values", None),
    (b'{"sessions": [[1]], "per_step": null}', "got null", "null null"),
    (b'{"sessions": [{"obs": null}]}', 'session 0: "obs" must be a list of observations, '
     "got null", None),
])
def test_messages_say_what_came(client, body, fragment, not_fragment):
    r = client.post("/v1/score", content=body)
    assert 400 <= r.status_code < 500
    message = r.json()["error"]["message"]
    assert fragment in message
    if not_fragment:
        assert not_fragment not in message


def test_frame_messages(gclient):
    r = gclient.post("/v1/score", json={"sessions": [[[0, 1], [1, 2, 3]]]})
    assert_error(r, 422, "bad_observation", "session 0, position 1",
                 "expected a frame of n_features=2 numbers, got a list of 3 values")
    r = gclient.post("/v1/score", json={"sessions": [[[0, 1], [1, None]]]})
    assert_error(r, 422, "bad_observation", "got null in it")


BODIES = [b'{"sessions": [[1, 2], [3]]}', b'{"sessions": [[[0, 1]], [[1e309, 2]]]}',
          b'{"sessions": [[1, NaN]]}', json.dumps({"sessions": [[1]]}).encode("utf-16"),
          b'\xef\xbb\xbf{"sessions": [[1]]}', b'{"sessions": [[1]], "sessions": []}']

POISON = """
import json, sys, types, warnings
orjson = types.ModuleType("orjson")
def _refuse(*args, **kwargs):
    raise RuntimeError("orjson must not be used")
orjson.loads = orjson.dumps = _refuse
sys.modules["orjson"] = orjson
warnings.simplefilter("ignore")
from starlette.testclient import TestClient
from hmmfast.serve import create_app
bodies = [bytes.fromhex(b) for b in json.loads(sys.argv[2])]
with TestClient(create_app(sys.argv[1])) as c:
    print(json.dumps([[r.status_code, r.json()] for r in
                      (c.post("/v1/score", content=b) for b in bodies)]))
"""


@pytest.mark.parametrize("which", ["cat", "gauss"])
def test_answers_do_not_depend_on_orjson(files, which, tmp_path):
    """The same bodies in a process where orjson is importable (a poisoned one: any use
    fails) and in this one: identical answers."""
    out = subprocess.run([sys.executable, "-c", POISON, str(files[which]),
                          json.dumps([b.hex() for b in BODIES])],
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    with TestClient(create_app(files[which])) as c:
        here = [[r.status_code, r.json()] for r in
                (c.post("/v1/score", content=b) for b in BODIES)]
    assert json.loads(out.stdout) == here
    if which == "cat":
        assert [status for status, _ in here] == [200, 422, 400, 400, 200, 400]
