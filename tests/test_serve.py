"""hmmfast serve: the HTTP service (extra [serve]).

Most cases run the app in-process through Starlette's TestClient (fast); the
end-to-end set at the bottom starts the real server (``python -m hmmfast.serve``,
uvicorn) in a subprocess on a free port and talks HTTP with httpx. Results over HTTP
are compared with the library's exactly: the JSON floats round-trip.
"""

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from factories import categorical, needs, random_categorical, random_gaussian
from factories import sessions as draw

import hmmfast
from hmmfast.monitor import AnomalyDetector

# every test below but the two about imports needs the [serve] extra and httpx (all in
# [test]); without them those tests skip, one by one
needs_serve = needs("starlette", "uvicorn", "prometheus_client", "httpx")
try:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from hmmfast.serve import Settings, create_app, unit_hash

    with warnings.catch_warnings():  # starlette 1.x prefers httpx2; httpx works the same
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
except ImportError:
    pass

TOKEN = "test-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# ---------------------------------------------------------------------- models


def left_to_right():
    """State 0 emits 0/1, state 1 emits 1/2/3; 1 never returns to 0: [2, 0] is
    impossible."""
    return categorical([1.0, 0.0], [[0.8, 0.2], [0.0, 1.0]],
                       [[0.6, 0.4, 0.0, 0.0], [0.0, 0.2, 0.4, 0.4]])


def as_json(sessions):
    return [np.asarray(s).ravel().tolist() if s.shape[-1] == 1 or s.ndim == 1
            else s.tolist() for s in sessions]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve_models")
    a, b = random_categorical(0, 5, 10), random_categorical(1, 5, 10)
    paths = {"a": d / "a.npz", "b": d / "b.npz", "c": d / "c.npz"}
    a.save(paths["a"])
    b.save(paths["b"])
    random_categorical(2, 5, 10).save(paths["c"])
    train = [x.ravel() for x in draw(a, 400, 5, low=10, high=30)]
    detector = AnomalyDetector(a).fit(train)
    paths["det"] = d / "det.npz"
    a.save(paths["det"], metadata={"anomaly_detector": detector.to_dict()})
    paths["lr"] = d / "lr.npz"
    left_to_right().save(paths["lr"])
    paths["gauss"] = d / "gauss.npz"
    random_gaussian(0, "diag", 3, 2).save(paths["gauss"])
    paths["gauss1"] = d / "gauss1.npz"
    random_gaussian(1, "diag", 3, 1).save(paths["gauss1"])
    paths["m4"] = d / "m4.npz"
    random_categorical(3, 5, 4).save(paths["m4"])
    pois = hmmfast.PoissonHMM(2)
    pois.startprob_ = [0.5, 0.5]
    pois.transmat_ = [[0.9, 0.1], [0.2, 0.8]]
    pois.lambdas_ = [[1.0, 5.0], [4.0, 0.5]]
    paths["poisson"] = d / "poisson.npz"
    pois.save(paths["poisson"])
    paths["not_a_model"] = d / "junk.npz"
    paths["not_a_model"].write_bytes(b"PK\x03\x04 definitely not a model")
    return paths


@pytest.fixture
def client(files):
    with TestClient(create_app(files["a"], admin_token=TOKEN)) as c:
        yield c


def score(c, sessions, **options):
    r = c.post("/v1/score", json={"sessions": sessions, **options})
    assert r.status_code == 200, r.text
    return r.json()


def assert_error(r, status, code, *words):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["status"] == status and err["code"] == code, err
    for w in words:
        assert w in err["message"], (w, err["message"])
    return err


def metrics(c):
    r = c.get("/metrics")
    assert r.status_code == 200
    out = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric(values, name, **labels):
    return values.get((name, tuple(sorted(labels.items()))))


# ---------------------------------------------------------------------- results = library


@needs_serve
@pytest.mark.parametrize("n_sessions", [1, 5, 40])  # a list of views / lengths= batches
def test_score_equals_library(client, files, n_sessions):
    model = hmmfast.load(files["a"])
    sessions = [x.ravel() for x in draw(model, n_sessions, n_sessions, 3)]
    reply = score(client, [s.tolist() for s in sessions])
    assert reply["model"] == model.fingerprint
    assert reply["scores"] == [float(model.score(s)) for s in sessions]  # exact
    assert reply["impossible"] == []
    assert "models" not in reply and "per_step" not in reply


@needs_serve
def test_score_per_step(client, files):
    model = hmmfast.load(files["a"])
    sessions = [x.ravel() for x in draw(model, 12, 3, 3)]
    reply = score(client, [s.tolist() for s in sessions], per_step=True)
    scores, steps = model.score_batch(sessions, per_step=True)
    assert reply["scores"] == scores.tolist()
    assert reply["per_step"] == [s.tolist() for s in steps]
    for total, row in zip(reply["scores"], reply["per_step"], strict=True):
        assert math.isclose(sum(row), total, rel_tol=1e-12)


@needs_serve
def test_impossible_sessions(files):
    model = left_to_right()
    with TestClient(create_app(files["lr"])) as c:
        sessions = [[0, 1, 2], [2, 0], [0, 0, 3, 3], [3, 1, 0]]
        reply = score(c, sessions, per_step=True)
        assert reply["impossible"] == [1, 3]
        assert reply["scores"][1] is None and reply["scores"][3] is None
        assert reply["scores"][0] == model.score(np.array(sessions[0]))
        assert reply["per_step"][0] == [float(v) for v in
                                        model.score_batch([np.array(sessions[0])],
                                                          per_step=True)[1][0]]
        assert all(v is None for v in reply["per_step"][1])
        assert all(v is None for v in reply["per_step"][3])
        r = c.post("/v1/decode", json={"sessions": sessions})
        assert r.status_code == 200
        d = r.json()
        assert d["impossible"] == [1, 3]
        assert d["logprobs"][1] is None and d["states"][1] == []
        lp, path = model.decode(np.array(sessions[2]))
        assert d["logprobs"][2] == lp and d["states"][2] == path.tolist()
        assert "NaN" not in r.text and "Infinity" not in r.text


@needs_serve
@pytest.mark.parametrize("algorithm", [None, "viterbi", "map"])
def test_decode_equals_library(client, files, algorithm):
    model = hmmfast.load(files["a"])
    sessions = [x.ravel() for x in draw(model, 20, 11, 3)]
    body = {"sessions": [s.tolist() for s in sessions]}
    if algorithm:
        body["algorithm"] = algorithm
    r = client.post("/v1/decode", json=body)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["model"] == model.fingerprint
    for s, lp, states in zip(sessions, reply["logprobs"], reply["states"], strict=True):
        want_lp, want_states = model.decode(s, algorithm=algorithm or "viterbi")
        assert lp == want_lp and states == want_states.tolist()


@needs_serve
def test_anomaly_equals_detector(files):
    model = hmmfast.load(files["det"])
    detector = AnomalyDetector.from_dict(hmmfast.read_header(files["det"])["metadata"]
                                         ["anomaly_detector"], model)
    sessions = [x.ravel() for x in draw(model, 30, 21, 3)]
    sessions.append(np.full(25, 9))  # a long run of one symbol: should stand out
    with TestClient(create_app(files["det"])) as c:
        r = c.post("/v1/anomaly", json={"sessions": [s.tolist() for s in sessions]})
        assert r.status_code == 200, r.text
        reply = r.json()
        want = detector.predict(sessions).to_json()
        assert reply["model"] == model.fingerprint
        assert reply["levels"] == want["level"]
        assert reply["scores"] == want["score"]
        for name, values in reply["reasons"].items():
            assert values == want[name], name
        counts = {lv: want["level"].count(lv) for lv in ("normal", "suspicious", "anomalous")}
        m = metrics(c)
        for level, n in counts.items():
            assert metric(m, "hmmfast_anomalies_total", level=level) == n


@needs_serve
def test_anomaly_without_detector_is_404(client):
    r = client.post("/v1/anomaly", json={"sessions": [[1, 2]]})
    assert_error(r, 404, "no_detector", "anomaly_detector")


@needs_serve
def test_gaussian_sessions(files):
    model = hmmfast.load(files["gauss"])
    sessions = draw(model, 10, 4, 3)
    with TestClient(create_app(files["gauss"])) as c:
        reply = score(c, [s.tolist() for s in sessions])
        assert reply["scores"] == [float(model.score(s)) for s in sessions]
        d = c.post("/v1/decode", json={"sessions": [s.tolist() for s in sessions]}).json()
        for s, lp, states in zip(sessions, d["logprobs"], d["states"], strict=True):
            want = model.decode(s)
            assert lp == want[0] and states == want[1].tolist()
        r = c.post("/v1/score", json={"sessions": [[[0.1, 0.2], [1.0]]]})
        assert_error(r, 422, "bad_observation", "session 0, position 1", "n_features=2")
        r = c.post("/v1/score", content=b'{"sessions": [[[0.1, 0.2]], [[1, 1e999]]]}')
        err = assert_error(r, 422, "bad_observation", "session 1, position 0", "finite")
        assert err["session"] == 1 and err["position"] == 0


@needs_serve
def test_gaussian_one_feature_takes_bare_numbers(files):
    model = hmmfast.load(files["gauss1"])
    x = model.sample(7, random_state=0)[0]
    with TestClient(create_app(files["gauss1"])) as c:
        bare = score(c, [x.ravel().tolist()])["scores"]
        framed = score(c, [x.tolist()])["scores"]
        mixed = score(c, [[v if i % 2 else [v] for i, v in enumerate(x.ravel().tolist())]])
        assert bare == framed == mixed["scores"] == [float(model.score(x))]
        r = c.post("/v1/score", json={"sessions": [[1.0, [2.0], [3.0, 4.0]]]})
        assert_error(r, 422, "bad_observation", "position 2", "a list of 2")
        r = c.post("/v1/score", json={"sessions": [[1.0, "x"]]})
        assert_error(r, 422, "bad_observation", "position 1", "string")


@needs_serve
def test_poisson_counts(files):
    model = hmmfast.load(files["poisson"])
    x = model.sample(6, random_state=1)[0]
    with TestClient(create_app(files["poisson"])) as c:
        assert score(c, [x.astype(int).tolist()])["scores"] == [float(model.score(x))]
        r = c.post("/v1/score", json={"sessions": [x.tolist(), [[1, 2], [0.5, 1]]]})
        assert_error(r, 422, "bad_observation", "session 1, position 1", "counts")


@needs_serve
def test_empty_request_and_sessions_with_ids(client, files):
    assert score(client, []) == {"model": hmmfast.load(files["a"]).fingerprint,
                                 "scores": [], "impossible": []}
    model = hmmfast.load(files["a"])
    reply = score(client, [{"id": "u1", "obs": [1, 2, 3]}, [4, 5], {"obs": [6]}])
    assert reply["scores"] == [float(model.score(np.array(s))) for s in ([1, 2, 3], [4, 5], [6])]


# ---------------------------------------------------------------------- errors and limits

BAD_BODIES = [
    (b"", 400, "bad_json", "empty"),
    (b"{", 400, "bad_json", "not valid JSON"),
    (b"\xff\xfe\x00", 400, "bad_json", "not valid JSON"),
    (b'{"sessions": [[1, NaN]]}', 400, "bad_json", "NaN"),
    (b"[" * 100_000, 400, "bad_json", ""),
    (b"[[1, 2]]", 422, "bad_request", "JSON object"),
    (b'{"session": [[1]]}', 422, "bad_request", '"sessions"'),
    (b'{"sessions": [[1]], "per_stp": true}', 422, "bad_request", "per_stp"),
    (b'{"sessions": {"a": 1}}', 422, "bad_request", "list of sessions"),
    (b'{"sessions": [[1], 5]}', 422, "bad_session", "session 1"),
    (b'{"sessions": [{"id": "x"}]}', 422, "bad_session", '"obs"'),
    (b'{"sessions": [{"obs": [1], "extra": 1}]}', 422, "bad_session", "extra"),
    (b'{"sessions": [{"id": [1], "obs": [1]}]}', 422, "bad_session", '"id"'),
    (b'{"sessions": [{"obs": 3}]}', 422, "bad_session", '"obs"'),
    (b'{"sessions": [[1], []]}', 422, "bad_session", "session 1 is empty"),
    (b'{"sessions": [[1, 2], [3, 10]]}', 422, "bad_observation", "session 1, position 1"),
    (b'{"sessions": [[1, -1]]}', 422, "bad_observation", "position 1"),
    (b'{"sessions": [[1.5]]}', 422, "bad_observation", "integer symbol"),
    (b'{"sessions": [[1, true]]}', 422, "bad_observation", "boolean"),
    (b'{"sessions": [[1, "2"]]}', 422, "bad_observation", "string"),
    (b'{"sessions": [[1, null]]}', 422, "bad_observation", "null"),
    (b'{"sessions": [[[1]]]}', 422, "bad_observation", "a list"),
    (b'{"sessions": [[1, 123456789012345678901234567890]]}', 422, "bad_observation", "1234"),
    (b'{"sessions": [[1]], "per_step": 1}', 422, "bad_request", "per_step"),
]


@needs_serve
@pytest.mark.parametrize("body,status,code,word", BAD_BODIES)
def test_bad_requests(client, body, status, code, word):
    r = client.post("/v1/score", content=body)
    assert_error(r, status, code, word)


@needs_serve
def test_bad_decode_option(client):
    r = client.post("/v1/decode", json={"sessions": [[1]], "algorithm": "beam"})
    assert_error(r, 422, "bad_request", "algorithm", "viterbi")
    r = client.post("/v1/decode", json={"sessions": [[1]], "per_step": True})
    assert_error(r, 422, "bad_request", "per_step")


@needs_serve
def test_bad_observation_names_session_and_position(client):
    r = client.post("/v1/score", json={"sessions": [[1, 2, 3], [4, 5, 6, 99, 1]]})
    err = assert_error(r, 422, "bad_observation", "n_features=10", "got 99")
    assert (err["session"], err["position"]) == (1, 3)


@needs_serve
def test_limits(files):
    app = create_app(files["a"], max_sessions=3, max_observations=5, max_body_bytes=200)
    with TestClient(app) as c:
        r = c.post("/v1/score", json={"sessions": [[1]] * 4})
        err = assert_error(r, 413, "max_sessions", "--max-sessions", "4")
        assert err["limit"] == "--max-sessions" and err["maximum"] == 3
        r = c.post("/v1/score", json={"sessions": [[1], [1] * 6]})
        err = assert_error(r, 413, "max_observations", "--max-observations", "session 1")
        r = c.post("/v1/score", content=b'{"sessions": [[' + b"1," * 200 + b"1]]}")
        assert_error(r, 413, "max_body_bytes", "--max-body-bytes")

        def chunks():  # no Content-Length: counted while it streams in
            for _ in range(50):
                yield b"          "

        r = c.post("/v1/score", content=chunks())
        assert_error(r, 413, "max_body_bytes", "--max-body-bytes")
        assert score(c, [[1, 2, 3, 4, 5]] * 3)["impossible"] == []


@needs_serve
def test_unknown_path_and_method(client):
    err = assert_error(client.get("/v3/score"), 404, "not_found", "/v1/score")
    assert "/v3/score" in err["message"]
    r = client.get("/v1/score")
    assert_error(r, 405, "method_not_allowed", "POST")
    assert "POST" in r.headers["allow"]
    assert_error(client.delete("/v1/models"), 405, "method_not_allowed")
    assert_error(client.put("/metrics"), 405, "method_not_allowed")


@needs_serve
def test_health(client, files):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"ready": True, "model": hmmfast.load(files["a"]).fingerprint}


@needs_serve
def test_server_timing_header(client):
    r = client.post("/v1/score", json={"sessions": [[1, 2]]})
    parts = dict(p.strip().split(";dur=") for p in r.headers["server-timing"].split(","))
    assert set(parts) == {"lib", "app"}
    assert 0 <= float(parts["lib"]) <= float(parts["app"])


@needs_serve
def test_large_request_runs_in_a_worker_thread(files):
    model = hmmfast.load(files["a"])
    sessions = [x.ravel() for x in draw(model, 300, 8, 3)]
    with TestClient(create_app(files["a"], inline_bytes=0)) as c:
        assert score(c, [s.tolist() for s in sessions])["scores"] == \
            model.score_batch(sessions).tolist()


# ---------------------------------------------------------------------- admin


@needs_serve
def test_admin_refused_without_token(files):
    with TestClient(create_app(files["a"])) as c:
        for path, body in (("/v1/models", {"path": str(files["b"])}),
                           ("/v1/models/rollback", {}),
                           ("/v1/models/ab", {"path": str(files["b"]), "fraction": 0.1})):
            assert_error(c.post(path, json=body, headers=AUTH), 403, "admin_disabled",
                         "--admin-token-file", "HMMFAST_ADMIN_TOKEN")
        assert c.get("/v1/models").json()["live"] == hmmfast.load(files["a"]).fingerprint


@needs_serve
def test_admin_token_checked(client, files):
    body = {"path": str(files["b"])}
    r = client.post("/v1/models", json=body)
    assert_error(r, 401, "unauthorized", "Bearer")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_error(client.post("/v1/models", json=body, headers={"Authorization": "Basic x"}),
                 401, "unauthorized")
    assert_error(client.post("/v1/models", json=body,
                             headers={"Authorization": "Bearer wrong-token-0123456789"}),
                 403, "forbidden")
    assert client.get("/v1/models").json()["live"] == hmmfast.load(files["a"]).fingerprint


@needs_serve
def test_token_must_be_long(files):
    with pytest.raises(ValueError, match="at least 16"):
        create_app(files["a"], admin_token="short")


@needs_serve
def test_read_token(tmp_path, monkeypatch):
    from hmmfast.serve._auth import read_token

    monkeypatch.delenv("HMMFAST_ADMIN_TOKEN", raising=False)
    assert read_token(None) is None
    monkeypatch.setenv("HMMFAST_ADMIN_TOKEN", TOKEN)
    assert read_token(None) == TOKEN
    f = tmp_path / "token"
    f.write_text(" file-token-0123456789abcdef\n")
    f.chmod(0o600)
    assert read_token(f) == "file-token-0123456789abcdef"
    f.write_text("\n")
    with pytest.raises(ValueError, match="admin token file"):
        read_token(f)


@needs_serve
def test_swap_and_rollback(client, files):
    fp = {k: hmmfast.load(files[k]).fingerprint for k in ("a", "b", "c", "m4")}
    session = [1, 2, 3, 4]
    want = {k: float(hmmfast.load(files[k]).score(np.array(session))) for k in ("a", "b", "c")}
    assert_error(client.post("/v1/models/rollback", json={}, headers=AUTH), 409,
                 "no_earlier_version")
    r = client.post("/v1/models", json={"path": str(files["b"])}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["live"] == fp["b"] and r.json()["previous"] == fp["a"]
    assert score(client, [session]) == {"model": fp["b"], "scores": [want["b"]],
                                        "impossible": []}
    # the same model again changes nothing
    r = client.post("/v1/models", json={"path": str(files["b"])}, headers=AUTH)
    assert r.json()["unchanged"] is True
    client.post("/v1/models", json={"path": str(files["c"])}, headers=AUTH)
    # m4 takes 4 symbols, the live model 10: a swap needs "force" (test_serve_swaps.py)
    client.post("/v1/models", json={"path": str(files["m4"]), "force": True}, headers=AUTH)
    held = client.get("/v1/models").json()
    assert [v["fingerprint"] for v in held["versions"]] == [fp["m4"], fp["c"], fp["b"]]
    assert [v["live"] for v in held["versions"]] == [True, False, False]
    assert held["versions"][0]["file"] == "m4.npz"  # the name only, not the directory
    r = client.post("/v1/models/rollback", json={}, headers=AUTH)
    assert r.status_code == 200 and r.json()["live"] == fp["c"]
    assert score(client, [session])["scores"] == [want["c"]]
    client.post("/v1/models", json={"path": str(files["a"])}, headers=AUTH)
    r = client.post("/v1/models/rollback", json={"fingerprint": fp["b"][:12]}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["live"] == fp["b"] and r.json()["dropped"] == [fp["a"], fp["c"]]
    assert score(client, [session])["scores"] == [want["b"]]
    assert_error(client.post("/v1/models/rollback", json={"fingerprint": "0" * 12},
                             headers=AUTH), 404, "unknown_version")
    assert_error(client.post("/v1/models/rollback", json={"fingerprint": fp["b"]},
                             headers=AUTH), 409, "already_live")


@needs_serve
@pytest.mark.parametrize("key,body,code,word", [
    ("not_a_model", None, "model_file", "not a zip"),
    (None, {"path": 3}, "bad_request", "path"),
    (None, {}, "bad_request", "path"),
    (None, {"path": "x", "other": 1}, "bad_request", "other"),
])
def test_swap_refused(client, files, key, body, code, word):
    body = {"path": str(files[key])} if key else body
    r = client.post("/v1/models", json=body, headers=AUTH)
    assert_error(r, 422, code, word)
    assert client.get("/v1/models").json()["live"] == hmmfast.load(files["a"]).fingerprint


@needs_serve
def test_swap_validates_detector_metadata(client, files, tmp_path):
    # a detector fitted over another model must not go live with this one
    det = json.loads(json.dumps(hmmfast.read_header(files["det"])["metadata"]))
    path = files["a"].parent / "mismatch.npz"
    random_categorical(1, 5, 10).save(path, metadata=det)
    r = client.post("/v1/models", json={"path": str(path)}, headers=AUTH)
    assert_error(r, 422, "model_file", "anomaly_detector")


# ---------------------------------------------------------------------- A/B split


@needs_serve
def test_ab_split_fractions_and_stickiness(client, files):
    a, b = hmmfast.load(files["a"]), hmmfast.load(files["b"])
    r = client.post("/v1/models/ab", json={"path": str(files["b"]), "fraction": 0.25},
                    headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["split"]["fraction"] == 0.25
    rng = np.random.default_rng(0)
    obs = [rng.integers(0, 10, size=int(rng.integers(2, 8))) for _ in range(4000)]
    ids = [f"user-{i}" for i in range(4000)]
    body = [{"id": i, "obs": o.tolist()} for i, o in zip(ids, obs, strict=True)]
    reply = score(client, body)
    to_b = np.array([m == b.fingerprint for m in reply["models"]])
    assert reply["model"] == a.fingerprint
    assert set(reply["models"]) == {a.fingerprint, b.fingerprint}
    # the documented rule, exactly, and the share within 4.5 sigma
    assert to_b.tolist() == [unit_hash(i) < 0.25 for i in ids]
    assert abs(to_b.sum() - 1000) < 4.5 * math.sqrt(4000 * 0.25 * 0.75)
    want = [float((b if t else a).score(o)) for t, o in zip(to_b, obs, strict=True)]
    assert reply["scores"] == want
    # sticky: the same ids in another order and other batches land on the same arm
    order = rng.permutation(4000)[:500]
    again = score(client, [body[i] for i in order])
    assert [m == b.fingerprint for m in again["models"]] == to_b[order].tolist()
    # a larger fraction only adds ids to the candidate
    client.post("/v1/models/ab", json={"fraction": 0.5}, headers=AUTH)
    wider = np.array([m == b.fingerprint for m in score(client, body)["models"]])
    assert np.all(wider[to_b])
    # sessions without an id: drawn at random
    plain = score(client, [o.tolist() for o in obs[:2000]])
    share = np.mean([m == b.fingerprint for m in plain["models"]])
    assert abs(share - 0.5) < 4.5 * math.sqrt(0.25 / 2000)
    m = metrics(client)
    assert metric(m, "hmmfast_ab_fraction") == 0.5
    assert metric(m, "hmmfast_ab_sessions", arm="candidate") > 0
    assert metric(m, "hmmfast_ab_loglik_per_step", arm="live") < 0
    # fraction 0 ends the split
    r = client.post("/v1/models/ab", json={"fraction": 0}, headers=AUTH)
    assert r.json()["split"] is None and r.json()["ended"]["fraction"] == 0.5
    assert "models" not in score(client, [[1, 2]])
    assert metric(metrics(client), "hmmfast_ab_fraction") == 0.0


@needs_serve
def test_ab_arm_metrics(client, files):
    a, b = hmmfast.load(files["a"]), hmmfast.load(files["b"])
    client.post("/v1/models/ab", json={"path": str(files["b"]), "fraction": 0.5},
                headers=AUTH)
    sessions = [x.ravel() for x in draw(a, 300, 9, 3)]
    body = [{"id": f"s{i}", "obs": s.tolist()} for i, s in enumerate(sessions)]
    reply = score(client, body)
    arms = {"live": (a, []), "candidate": (b, [])}
    for m, s in zip(reply["models"], sessions, strict=True):
        arms["candidate" if m == b.fingerprint else "live"][1].append(s)
    values = metrics(client)
    for arm, (model, ss) in arms.items():
        want = model.score_batch(ss).sum() / sum(len(s) for s in ss)
        got = metric(values, "hmmfast_ab_loglik_per_step", arm=arm)
        assert got == pytest.approx(want, rel=1e-12)
        assert metric(values, "hmmfast_ab_sessions", arm=arm) == len(ss)


@needs_serve
@pytest.mark.parametrize("body,status,code", [
    ({"path": "A", "fraction": 1.5}, 422, "bad_request"),
    ({"path": "A", "fraction": "0.1"}, 422, "bad_request"),
    ({"path": "A"}, 422, "bad_request"),
    ({"path": "A", "fraction": 0.1}, 422, "candidate_is_live"),
    ({"path": "M4", "fraction": 0.1}, 422, "incompatible_candidate"),
    ({"fraction": 0.1}, 422, "bad_request"),
])
def test_ab_refused(client, files, body, status, code):
    if "path" in body:
        body = {**body, "path": str(files["a" if body["path"] == "A" else "m4"])}
    assert_error(client.post("/v1/models/ab", json=body, headers=AUTH), status, code)
    assert client.get("/v1/models").json()["split"] is None


@needs_serve
def test_ab_split_survives_swap_and_ends_on_promotion(client, files):
    fp = {k: hmmfast.load(files[k]).fingerprint for k in ("a", "b", "c")}
    client.post("/v1/models/ab", json={"path": str(files["b"]), "fraction": 0.3},
                headers=AUTH)
    r = client.post("/v1/models", json={"path": str(files["c"])}, headers=AUTH)
    assert r.json()["split"]["candidate"]["fingerprint"] == fp["b"]
    reply = score(client, [{"id": f"x{i}", "obs": [1, 2]} for i in range(50)])
    assert set(reply["models"]) <= {fp["b"], fp["c"]} and reply["model"] == fp["c"]
    r = client.post("/v1/models", json={"path": str(files["b"])}, headers=AUTH)
    assert r.json()["split"] is None  # the candidate was promoted
    assert "models" not in score(client, [[1]])


@needs_serve
def test_ab_anomaly_needs_detectors_on_both_arms(files):
    with TestClient(create_app(files["det"], admin_token=TOKEN)) as c:
        c.post("/v1/models/ab", json={"path": str(files["b"]), "fraction": 0.9},
               headers=AUTH)
        fp = hmmfast.load(files["det"]).fingerprint
        r = c.post("/v1/anomaly", json={"sessions": [{"id": f"i{k}", "obs": [1, 2, 3]}
                                                     for k in range(20)]})
        assert r.status_code == 200
        assert r.json()["models"] == [fp] * 20  # b has no detector: the live one judges


@needs_serve
def test_unit_hash_is_documented_sha256():
    import hashlib

    for sid in ("user-1", "", "ünïcode", "\ud800"):
        digest = hashlib.sha256(sid.encode("utf-8", "surrogatepass")).digest()
        assert unit_hash(sid) == int.from_bytes(digest[:8], "big") / 2 ** 64
        assert 0 <= unit_hash(sid) < 1


# ---------------------------------------------------------------------- monitors, metrics


@needs_serve
def test_metrics_families(client, files):
    score(client, [[1, 2, 3], [4, 5]])
    client.post("/v1/decode", json={"sessions": [[1, 2, 3]]})
    client.post("/v1/score", content=b"{")
    m = metrics(client)
    short = hmmfast.load(files["a"]).fingerprint[:12]
    assert metric(m, "hmmfast_requests_total", endpoint="score", model=short) == 2
    assert metric(m, "hmmfast_request_errors_total", endpoint="score", status="400") == 1
    assert metric(m, "hmmfast_sessions_total", endpoint="score") == 2
    assert metric(m, "hmmfast_sessions_total", endpoint="decode") == 1
    assert metric(m, "hmmfast_request_seconds_count", endpoint="score", model=short) == 2
    assert metric(m, "hmmfast_request_seconds_bucket", endpoint="score", model=short,
                  le="+Inf") == 2
    for name in ("hmmfast_drift_window_mean", "hmmfast_drift_alarm",
                 "hmmfast_occupancy_collapsed", "hmmfast_ab_fraction"):
        assert (name, ()) in m, name
    assert metric(m, "hmmfast_anomalies_total", level="anomalous") == 0
    assert metric(m, "hmmfast_model_info", model=short, role="live",
                  **{"class": "CategoricalHMM"}) == 1
    mean = metric(m, "hmmfast_drift_window_mean")
    want = np.mean([hmmfast.load(files["a"]).score(np.array(s)) / len(s)
                    for s in ([1, 2, 3], [4, 5])])
    assert mean == pytest.approx(want, rel=1e-12)


@needs_serve
def test_metrics_are_per_app(files):
    with TestClient(create_app(files["a"])) as c1, TestClient(create_app(files["a"])) as c2:
        score(c1, [[1]])
        short = hmmfast.load(files["a"]).fingerprint[:12]
        assert metric(metrics(c1), "hmmfast_requests_total", endpoint="score",
                      model=short) == 1
        assert metric(metrics(c2), "hmmfast_requests_total", endpoint="score",
                      model=short) == 0


@needs_serve
def test_drift_alarm_with_metadata_baseline(files, tmp_path):
    a = hmmfast.load(files["a"])
    normal = [x.ravel() for x in draw(a, 500, 31, low=15, high=25)]
    baseline = (a.score_batch(normal) / [len(s) for s in normal]).tolist()
    path = tmp_path / "drift.npz"
    a.save(path, metadata={"drift_baseline": {"scores": baseline, "window": 100}})
    with TestClient(create_app(path)) as c:
        assert c.get("/v1/models").json()["versions"][0]["drift_baseline"] == "metadata"
        score(c, [s.tolist() for s in draw(a, 100, 32, low=15, high=25)
                  for s in [s.ravel()]])
        assert metric(metrics(c), "hmmfast_drift_alarm") == 0
        other = random_categorical(7, 5, 10)
        score(c, [s.ravel().tolist() for s in draw(other, 100, 33, low=15, high=25)])
        assert metric(metrics(c), "hmmfast_drift_alarm") == 1


@needs_serve
def test_drift_baseline_sampled_from_the_model(files):
    a = hmmfast.load(files["a"])
    app = create_app(files["a"], drift_window=50)
    with TestClient(app) as c:
        score(c, [s.ravel().tolist() for s in draw(a, 60, 41, low=15, high=25)])
        tracker = app.state.registry.snapshot.live.monitors.drift
        metrics(c)  # a scrape hands buffered scores to the tracker (as do 64 sessions)
        deadline = time.monotonic() + 20
        while tracker.monitor is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert tracker.monitor is not None and tracker.source == "sampled"
        assert metric(metrics(c), "hmmfast_drift_alarm") == 0
        rare = int(np.argmin(a.get_stationary_distribution() @ a.emissionprob_))
        score(c, [[rare] * 20] * 60)  # the model's least likely symbol, over and over
        m = metrics(c)
        assert metric(m, "hmmfast_drift_alarm") == 1
        assert metric(m, "hmmfast_drift_window_mean") < tracker.monitor.threshold(50)


@needs_serve
def test_occupancy_collapse(files, tmp_path):
    sticky = [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]]
    model = categorical([1 / 3] * 3, sticky, sticky)
    path = tmp_path / "occ.npz"
    model.save(path)
    with TestClient(create_app(path)) as c:
        c.post("/v1/decode", json={"sessions": [[0] * 10 + [1] * 10 + [2] * 10] * 10})
        assert metric(metrics(c), "hmmfast_occupancy_collapsed") == 0
        c.post("/v1/decode", json={"sessions": [[0] * 30] * 40})
        m = metrics(c)
        assert metric(m, "hmmfast_occupancy_collapsed") == 1
        assert metric(m, "hmmfast_state_occupancy", state="0") > 0.8


# ---------------------------------------------------------------------- packaging


@needs_serve
def test_settings_are_checked(files):
    with pytest.raises(ValueError, match="max_sessions"):
        Settings(max_sessions=0)
    with pytest.raises(ValueError, match="drift_quantile"):
        Settings(drift_quantile=1.0)
    with pytest.raises(TypeError):
        create_app(files["a"], no_such_setting=1)
    with pytest.raises(hmmfast.ModelFileError):
        create_app(files["not_a_model"])


def test_core_import_does_not_load_the_extras(import_report):
    loaded = import_report["hmmfast.monitor"]  # after import hmmfast, hmmfast.monitor
    assert [m for m in ("starlette", "uvicorn", "prometheus_client") if m in loaded] == []


def test_import_without_the_extra_names_the_install(import_report):
    message = import_report["hmmfast.serve without starlette"] or ""
    assert 'pip install "hmmfast[serve]"' in message


# ---------------------------------------------------------------------- the real server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m hmmfast.serve`` in a subprocess on a free port."""

    def __init__(self, model_path, tmp_path, *options):
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        token_file.chmod(0o600)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "HMMFAST_ADMIN_TOKEN"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hmmfast.serve", str(model_path), "--port",
             str(self.port), "--admin-token-file", str(token_file), "--log-level",
             "warning", "--state-dir", str(tmp_path), "--drain-seconds", "0", *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode())
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not become ready within 30 s")
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def server(files, tmp_path):
    s = Server(files["det"], tmp_path, "--max-body-bytes", "200000", "--threads", "2")
    yield s
    s.stop()


@needs_serve
def test_e2e_every_endpoint(server, files):
    model = hmmfast.load(files["det"])
    detector = AnomalyDetector.from_dict(hmmfast.read_header(files["det"])["metadata"]
                                         ["anomaly_detector"], model)
    sessions = [x.ravel() for x in draw(model, 50, 51, 3)]
    body = {"sessions": [s.tolist() for s in sessions]}
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post("/v1/score", json={**body, "per_step": True})
        assert r.status_code == 200
        scores, steps = model.score_batch(sessions, per_step=True)
        assert r.json()["scores"] == scores.tolist()
        assert r.json()["per_step"] == [s.tolist() for s in steps]
        for algorithm in ("viterbi", "map"):
            d = c.post("/v1/decode", json={**body, "algorithm": algorithm}).json()
            lp, paths = model.decode_batch(sessions, algorithm=algorithm)
            assert d["logprobs"] == lp.tolist()
            assert d["states"] == [p.tolist() for p in paths]
        an = c.post("/v1/anomaly", json=body).json()
        want = detector.predict(sessions).to_json()
        assert an["levels"] == want["level"] and an["scores"] == want["score"]
        assert c.get("/v1/models").json()["live"] == model.fingerprint
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json()["ready"] is True
        families = {f.name: f for f in text_string_to_metric_families(c.get("/metrics").text)}
        for name in ("hmmfast_requests", "hmmfast_request_seconds", "hmmfast_sessions",
                     "hmmfast_anomalies", "hmmfast_drift_window_mean", "hmmfast_drift_alarm",
                     "hmmfast_occupancy_collapsed", "hmmfast_ab_loglik_per_step"):
            assert name in families, name
        sessions_total = {s.labels["endpoint"]: s.value
                          for s in families["hmmfast_sessions"].samples
                          if s.name == "hmmfast_sessions_total"}
        assert sessions_total == {"score": 50, "decode": 100, "anomaly": 50}
        # errors over the wire: JSON 4xx, never a 500
        assert_error(c.post("/v1/score", content=b"nope"), 400, "bad_json")
        assert_error(c.post("/v1/score", json={"sessions": [[1, 99]]}), 422,
                     "bad_observation")
        assert_error(c.post("/v1/score", content=b'{"sessions": [' + b"[1]," * 60_000
                            + b"[1]]}"), 413, "max_body_bytes", "--max-body-bytes")
        assert_error(c.get("/nothing"), 404, "not_found")
        assert_error(c.get("/v1/decode"), 405, "method_not_allowed")
        assert_error(c.post("/v1/models", json={"path": str(files["b"])}), 401,
                     "unauthorized")
        assert_error(c.post("/v1/models", json={"path": str(files["b"])},
                            headers={"Authorization": "Bearer nope-nope-nope-nope"}), 403,
                     "forbidden")


@needs_serve
def test_e2e_atomic_swap_under_load(server, files):
    models = {m.fingerprint: m for m in (hmmfast.load(files["det"]), hmmfast.load(files["b"]))}
    rng = np.random.default_rng(61)
    batches = [[rng.integers(0, 10, size=int(rng.integers(5, 40))) for _ in range(20)]
               for _ in range(8)]
    expected = {fp: [m.score_batch(b).tolist() for b in batches] for fp, m in models.items()}
    stop = threading.Event()
    failures, seen, answered = [], set(), [0]

    def hammer(k):
        with httpx.Client(base_url=server.url, timeout=10) as c:
            i = k
            while not stop.is_set():
                j = i % len(batches)
                r = c.post("/v1/score", json={"sessions": [s.tolist() for s in batches[j]]})
                i += 1
                if r.status_code != 200:
                    failures.append(r.text)
                    continue
                reply = r.json()
                seen.add(reply["model"])
                if reply["scores"] != expected[reply["model"]][j]:
                    failures.append(f"scores of batch {j} differ from {reply['model'][:12]}'s")
                answered[0] += 1

    workers = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
    for w in workers:
        w.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30, headers=AUTH) as admin:
            for path in (files["b"], files["det"], files["b"], files["det"]) * 2:
                time.sleep(0.1)
                r = admin.post("/v1/models", json={"path": str(path)})
                assert r.status_code == 200, r.text
            time.sleep(0.1)
            r = admin.post("/v1/models/rollback", json={})
            assert r.status_code == 200 and r.json()["live"] == hmmfast.load(files["b"]).fingerprint
            time.sleep(0.1)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert not failures, failures[:3]
    assert seen == set(models) and answered[0] > 40


@needs_serve
def test_e2e_ab_split(server, files):
    a, b = hmmfast.load(files["det"]), hmmfast.load(files["b"])
    ids = [f"visitor-{i}" for i in range(4000)]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post("/v1/models/ab", json={"path": str(files["b"]), "fraction": 0.05},
                   headers=AUTH)
        assert r.status_code == 200, r.text
        body = {"sessions": [{"id": i, "obs": [k % 10, (k * 7) % 10]}
                             for k, i in enumerate(ids)]}
        first = c.post("/v1/score", json=body).json()["models"]
        second = c.post("/v1/score", json=body).json()["models"]
        assert first == second  # sticky
        n_b = sum(m == b.fingerprint for m in first)
        assert abs(n_b - 200) < 4.5 * math.sqrt(4000 * 0.05 * 0.95)
        assert [m == b.fingerprint for m in first] == [unit_hash(i) < 0.05 for i in ids]
        split = c.get("/v1/models").json()["split"]
        assert split["candidate"]["fingerprint"] == b.fingerprint
        assert split["arms"]["candidate"]["sessions"] == 2 * n_b
        r = c.post("/v1/models/ab", json={"fraction": 0}, headers=AUTH)
        assert r.json()["split"] is None
        reply = c.post("/v1/score", json=body).json()
        assert "models" not in reply and reply["model"] == a.fingerprint


@needs_serve
def test_e2e_bad_model_file_exits_1(files, tmp_path):
    out = subprocess.run([sys.executable, "-m", "hmmfast.serve", str(files["not_a_model"]),
                          "--port", str(free_port())], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert out.stderr.startswith("hmmfast: error: model file") and "Traceback" not in out.stderr
