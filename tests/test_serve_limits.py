"""hmmfast serve: bounded work per request (issue 27, defect 1).

A body under --max-body-bytes but over --max-sessions or --max-observations is refused
while it is scanned, before any Python object is built for it: the memory the request
costs is measured with tracemalloc (the old parser built ~0.5 GB of lists for a 16 MiB
body of one-step sessions before the limit was checked). Over the wire, the client that
is still sending reads a clean 413 and its connection stays usable.
"""

import json
import socket
import tracemalloc

import numpy as np
import pytest

import hmmfast

pytest.importorskip("starlette", reason="the [serve] extra is part of the [test] extra")
from serve_support import Server, TestClient, assert_error, categorical, gaussian

from hmmfast.serve import create_app

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("limits") / "cat.npz"
    categorical(0).save(path)
    return path


def tiny_sessions_body(size):
    """About ``size`` bytes of one-step sessions: {"sessions": [[1],[1],...]}."""
    n = (size - 20) // 4
    return b'{"sessions": [' + b"[1]," * n + b"[1]]}"


def peak_bytes(call):
    """(result, peak bytes allocated by Python and NumPy during ``call()``)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak


def test_16_mib_of_tiny_sessions_is_refused_without_parsing_it(model_file):
    body = tiny_sessions_body(16 * MiB - 64)
    assert len(body) < 16 * MiB  # under the body limit: only the session count refuses it
    with TestClient(create_app(model_file)) as c:
        r, peak = peak_bytes(lambda: c.post("/v1/score", content=body))
        err = assert_error(r, 413, "max_sessions", "--max-sessions", "at least")
        assert err["value"] == 10_001 and err["maximum"] == 10_000
        # the old code built 4 million lists (~0.5 GB); a second copy of the body at most
        assert peak < 2 * len(body), peak
        assert c.post("/v1/score", json={"sessions": [[1, 2]]}).status_code == 200


def test_one_long_session_is_refused_without_parsing_it(model_file):
    body = b'{"sessions": [[' + b"1," * (8 * MiB - 10) + b"1]]}"
    with TestClient(create_app(model_file)) as c:
        r, peak = peak_bytes(lambda: c.post("/v1/score", content=body))
        err = assert_error(r, 413, "max_observations", "session 0", "--max-observations")
        assert err["value"] == 100_001
        assert peak < 2 * len(body), peak


def test_memory_of_a_valid_large_body_is_its_arrays(model_file):
    """A valid body within the limits costs its arrays, not a Python object per value:
    6 MB of symbols (3 million) -> 24 MB of int64 (measured: 30 MB at the peak; the old
    parser: 87 MB)."""
    rng = np.random.default_rng(1)
    sessions = rng.integers(0, 10, size=(1000, 3000))
    body = json.dumps({"sessions": sessions.tolist()}, separators=(",", ":")).encode()
    model = hmmfast.load(model_file)
    with TestClient(create_app(model_file)) as c:
        r, peak = peak_bytes(lambda: c.post("/v1/score", content=body))
    assert r.status_code == 200
    assert r.json()["scores"] == model.score_batch(list(sessions)).tolist()
    assert peak < sessions.size * 8 * 2, peak


def test_late_syntax_error_is_named_by_line_and_column(model_file):
    body = b'{"sessions": [\n' + b"[1, 2],\n" * 1000 + b"[1, 2,]\n]}"
    with TestClient(create_app(model_file)) as c:
        err = assert_error(c.post("/v1/score", content=body), 400, "bad_json",
                           "line 1002, column 7")
    assert "expected a value" in err["message"]


def test_frames_limits(tmp_path):
    path = tmp_path / "g.npz"
    gaussian(0).save(path)
    app = create_app(path, max_sessions=2, max_observations=3)
    with TestClient(app) as c:
        assert_error(c.post("/v1/score", json={"sessions": [[[0, 1]]] * 3}), 413,
                     "max_sessions")
        assert_error(c.post("/v1/score", json={"sessions": [[[0, 1]] * 4]}), 413,
                     "max_observations", "session 0")
        assert c.post("/v1/score", json={"sessions": [[[0, 1]] * 3] * 2}).status_code == 200


def _request(path, body, content_length=None):
    n = len(body) if content_length is None else content_length
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n\r\n").encode() + body


def _read_reply(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split()[1]), json.loads(rest[:length])


@pytest.mark.slow
def test_over_the_wire_an_early_413_leaves_the_connection_usable(model_file, tmp_path):
    body = tiny_sessions_body(8 * MiB)
    with Server(model_file, tmp_path) as server, \
            socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(_request("/v1/score", body))  # all of it, before reading
        status, reply = _read_reply(sock)
        assert status == 413 and reply["error"]["code"] == "max_sessions"
        sock.sendall(_request("/v1/score", b'{"sessions": [[1, 2, 3]]}'))
        status, reply = _read_reply(sock)  # the rest of the first body was discarded
        assert status == 200 and len(reply["scores"]) == 1
        # a declared length beyond --max-body-bytes is refused before the body is read
        sock.sendall(_request("/v1/score", b"", content_length=17 * MiB))
        status, reply = _read_reply(sock)
        assert status == 413 and reply["error"]["code"] == "max_body_bytes"
