"""hmmfast serve: state that survives a restart (issue 27, defect 2).

The live version, the held versions and the A/B split are written to a state file before
each change takes effect; an app built again over the same state directory (a restart)
serves what was live, or, when the command line names another model (a new deploy), that
model, holding the rest for rollback. Files named by the state are checked by
fingerprint."""

import json
import logging
import os
import signal

import pytest

import hmmfast

pytest.importorskip("starlette", reason="the [serve] extra is part of the [test] extra")
pytest.importorskip("httpx")
import httpx
from serve_support import AUTH, TOKEN, Server, TestClient, assert_error, categorical

from hmmfast.serve import create_app
from hmmfast.serve._state import StateError


@pytest.fixture
def models(tmp_path):
    d = tmp_path / "models"
    d.mkdir()
    paths = {}
    for i, name in enumerate("abcd"):
        paths[name] = d / f"{name}.npz"
        categorical(i).save(paths[name])
    paths["fp"] = {k: hmmfast.load(v).fingerprint for k, v in paths.items()}
    return paths


def app(models, name="a", state=None, **kw):
    return create_app(models[name], admin_token=TOKEN, state_dir=state, **kw)


def state_file(d):
    return d / "hmmfast-serve-hmmfast.json"


def held(c):
    return [v["fingerprint"] for v in c.get("/v1/models").json()["versions"]]


def test_restart_restores_live_held_and_split(models, tmp_path, caplog):
    fp, d = models["fp"], tmp_path / "state"
    d.mkdir()
    with TestClient(app(models, state=d)) as c:
        assert c.post("/v1/models", json={"path": str(models["b"])}, headers=AUTH).status_code == 200
        assert c.post("/v1/models", json={"path": "c.npz"}, headers=AUTH).status_code == 200
        r = c.post("/v1/models/ab", json={"path": "d.npz", "fraction": 0.25}, headers=AUTH)
        assert r.status_code == 200
        before = c.get("/v1/models").json()
    saved = json.loads(state_file(d).read_text())
    assert [v["fingerprint"] for v in saved["versions"]] == [fp["c"], fp["b"], fp["a"]]
    assert saved["split"]["fingerprint"] == fp["d"] and saved["split"]["fraction"] == 0.25
    assert saved["startup"]["fingerprint"] == fp["a"]
    assert oct(os.stat(state_file(d)).st_mode & 0o777) == "0o644"
    assert not [p for p in os.listdir(d) if p.endswith(".tmp")]
    caplog.set_level(logging.INFO, logger="hmmfast.serve")
    with TestClient(app(models, state=d)) as c:  # the restart: same command line
        after = c.get("/v1/models").json()
        assert after["live"] == fp["c"] and held(c) == [fp["c"], fp["b"], fp["a"]]
        assert after["split"]["candidate"]["fingerprint"] == fp["d"]
        assert after["split"]["fraction"] == 0.25
        assert c.post("/v1/score", json={"sessions": [[1, 2]]}).json()["model"] == fp["c"]
    assert before["live"] == after["live"]
    assert any("restored from" in r.message and fp["c"][:12] in r.message
               for r in caplog.records)


def test_without_a_state_dir_nothing_is_written(models, tmp_path):
    with TestClient(app(models)) as c:
        c.post("/v1/models", json={"path": str(models["b"])}, headers=AUTH)
    assert not [p for p in os.listdir(models["a"].parent) if p.endswith(".json")]


def test_command_line_wins_on_a_new_deploy(models, tmp_path, caplog):
    fp, d = models["fp"], tmp_path
    with TestClient(app(models, state=d)) as c:
        c.post("/v1/models", json={"path": "b.npz"}, headers=AUTH)
        c.post("/v1/models/ab", json={"path": "c.npz", "fraction": 0.5}, headers=AUTH)
    caplog.set_level(logging.INFO, logger="hmmfast.serve")
    with TestClient(app(models, "d", state=d)) as c:  # deployed with another model
        assert held(c) == [fp["d"], fp["b"], fp["a"]]
        split = c.get("/v1/models").json()["split"]
        assert split["candidate"]["fingerprint"] == fp["c"]  # carried, as by a swap
    assert any("command line wins" in r.message for r in caplog.records)
    saved = json.loads(state_file(d).read_text())
    assert saved["startup"]["fingerprint"] == fp["d"] and saved["versions"][0]["fingerprint"] == fp["d"]
    with TestClient(app(models, "d", state=d)) as c:  # and the next restart keeps it
        assert held(c)[0] == fp["d"]


def test_missing_or_changed_live_file_is_an_error_naming_it(models, tmp_path):
    d = tmp_path
    with TestClient(app(models, state=d)) as c:
        c.post("/v1/models", json={"path": "b.npz"}, headers=AUTH)
    categorical(99).save(models["b"])  # b.npz now holds another model
    with pytest.raises(StateError, match=f"{models['b']}.*changed since"):
        app(models, state=d)
    os.unlink(models["b"])
    with pytest.raises(StateError, match=f"{models['b']}.*live model"):
        app(models, state=d)


def test_missing_candidate_is_an_error(models, tmp_path):
    with TestClient(app(models, state=tmp_path)) as c:
        c.post("/v1/models/ab", json={"path": "c.npz", "fraction": 0.5}, headers=AUTH)
    os.unlink(models["c"])
    with pytest.raises(StateError, match="A/B candidate"):
        app(models, state=tmp_path)


def test_held_file_changed_or_missing_is_dropped_with_a_warning(models, tmp_path, caplog):
    fp = models["fp"]
    with TestClient(app(models, state=tmp_path)) as c:
        for name in "bcd":
            c.post("/v1/models", json={"path": f"{name}.npz"}, headers=AUTH)
        assert held(c) == [fp["d"], fp["c"], fp["b"]]
    categorical(77).save(models["c"])
    os.unlink(models["b"])
    caplog.set_level(logging.WARNING, logger="hmmfast.serve")
    with TestClient(app(models, state=tmp_path)) as c:
        assert held(c) == [fp["d"]]
    text = " ".join(r.message for r in caplog.records)
    assert "c.npz" in text and "changed since" in text and "b.npz" in text


def test_a_change_that_cannot_be_saved_is_not_made(models, tmp_path):
    fp = models["fp"]
    with TestClient(app(models, state=tmp_path)) as c:
        path = state_file(tmp_path)
        os.unlink(path)
        path.mkdir()  # os.replace onto a non-empty directory fails
        (path / "x").write_text("x")
        r = c.post("/v1/models", json={"path": "b.npz"}, headers=AUTH)
        assert_error(r, 503, "state_not_saved", "not made")
        assert held(c) == [fp["a"]]
        assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_corrupt_state_file_is_named(models, tmp_path):
    state_file(tmp_path).write_text("{not json")
    with pytest.raises(StateError, match=r"not valid JSON \(.*\); remove it"):
        app(models, state=tmp_path)
    state_file(tmp_path).write_text(json.dumps({"format": "hmmfast-serve-state",
                                                "format_version": 1, "versions": []}))
    with pytest.raises(StateError, match="versions must be"):
        app(models, state=tmp_path)


def test_instances_sharing_a_state_dir_reload(models, tmp_path):
    fp = models["fp"]
    with TestClient(app(models, state=tmp_path)) as one, \
            TestClient(app(models, state=tmp_path)) as two:
        one.post("/v1/models", json={"path": "b.npz"}, headers=AUTH)
        one.post("/v1/models/ab", json={"path": "c.npz", "fraction": 0.1}, headers=AUTH)
        assert held(two) == [fp["a"]]
        assert_error(two.post("/v1/state/reload", json={}), 401, "unauthorized")
        r = two.post("/v1/state/reload", json={}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert held(two) == held(one) == [fp["b"], fp["a"]]
        assert two.get("/v1/models").json()["split"]["candidate"]["fingerprint"] == fp["c"]
    with TestClient(app(models)) as c:
        assert_error(c.post("/v1/state/reload", json={}, headers=AUTH), 409, "no_state")


@pytest.mark.slow
def test_real_restart(models, tmp_path):
    """``hmmfast serve`` twice over one state directory (its default: the model's)."""
    fp = models["fp"]
    options = ("--state-dir", str(models["a"].parent))
    server = Server(models["a"], tmp_path, *options)
    with server:
        r = httpx.post(server.url + "/v1/models", json={"path": "b.npz"}, headers=AUTH)
        assert r.status_code == 200
        status, err = server.stop(signal.SIGTERM)
    assert status == 0, err
    with Server(models["a"], tmp_path, *options) as server:
        assert httpx.get(server.url + "/v1/models").json()["live"] == fp["b"]
        status, err = server.stop()
    assert "restored from" in err and fp["b"][:12] in err
