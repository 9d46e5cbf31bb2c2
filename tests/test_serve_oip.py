"""hmmfast serve speaks the Open Inference Protocol (KServe v2 REST): a client no one here
wrote, tritonclient's InferenceServerClient, against the real server (uvicorn on
127.0.0.1). Scores come back equal to ``score_batch`` bit for bit, states to
``decode_batch``; errors are the protocol's ``{"error": ...}``."""

import numpy as np
import pytest

import hmmfast

pytest.importorskip("starlette", reason="the [serve] extra is part of the [test] extra")
# the [test] extra installs tritonclient[http]
pytest.importorskip("tritonclient.http")
import tritonclient.http as tritonhttp
from tritonclient.utils import InferenceServerException
from serve_support import AUTH, TOKEN, Server, TestClient, categorical, gaussian

from hmmfast.serve import create_app


def left_to_right():
    """[2, 0] is impossible: state 1 never returns to 0, which alone emits 0."""
    model = hmmfast.CategoricalHMM(2)
    model.startprob_ = [1.0, 0.0]
    model.transmat_ = [[0.8, 0.2], [0.0, 1.0]]
    model.emissionprob_ = [[0.6, 0.4, 0.0, 0.0], [0.0, 0.2, 0.4, 0.4]]
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("oip")
    out = {"lr": d / "lr.npz", "gauss": d / "gauss.npz", "cat": d / "cat.npz",
           "cat2": d / "cat2.npz"}
    left_to_right().save(out["lr"])
    gaussian(3, n_features=3).save(out["gauss"])
    categorical(0, m=4).save(out["cat"])
    categorical(1, m=4).save(out["cat2"])
    return out


@pytest.fixture(scope="module")
def server(files, tmp_path_factory):
    s = Server(files["lr"], tmp_path_factory.mktemp("oip_server"), "--model-name", "clicks")
    yield s
    s.stop()


def client(server):
    return tritonhttp.InferenceServerClient(url=f"127.0.0.1:{server.port}")


def tensor(name, array, datatype):
    t = tritonhttp.InferInput(name, list(array.shape), datatype)
    t.set_data_from_numpy(array, binary_data=False)
    return t


def outputs(*names):
    return [tritonhttp.InferRequestedOutput(n, binary_data=False) for n in names]


def sessions_of(model, n, seed):
    rng = np.random.default_rng(seed)
    return [model.sample(int(rng.integers(1, 25)), random_state=rng)[0] for _ in range(n)]


def test_health_and_metadata(server, files):
    c = client(server)
    live = hmmfast.load(files["lr"])
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("clicks") and not c.is_model_ready("hmmfast")
    assert c.is_model_ready("clicks", live.fingerprint[:12])
    meta = c.get_server_metadata()
    assert meta["name"] == "hmmfast" and meta["version"] == hmmfast.__version__
    model = c.get_model_metadata("clicks")
    assert model["versions"] == [live.fingerprint[:12]]
    assert model["inputs"] == [{"name": "obs", "datatype": "INT64", "shape": [-1]},
                               {"name": "lengths", "datatype": "INT64", "shape": [-1]}]
    assert [o["name"] for o in model["outputs"]] == ["score", "states"]


def test_round_trip_equals_score_batch(server, files):
    model = hmmfast.load(files["lr"])
    sessions = [*sessions_of(model, 300, 1), np.array([[2], [0]])]  # the last: impossible
    obs = np.concatenate(sessions).ravel().astype(np.int64)
    lengths = np.array([len(s) for s in sessions], dtype=np.int64)
    result = client(server).infer("clicks", [tensor("obs", obs, "INT64"),
                                             tensor("lengths", lengths, "INT64")],
                                  outputs=outputs("score", "states"), request_id="q-7")
    want = model.score_batch(sessions)
    got = result.as_numpy("score")
    assert want[-1] == -np.inf and np.isnan(got[-1])  # JSON null: tritonclient reads NaN
    assert got[:-1].tobytes() == want[:-1].tobytes()  # bit for bit
    response = result.get_response()
    assert response["id"] == "q-7" and response["outputs"][0]["data"][-1] is None
    _, paths = model.decode_batch(sessions, errors="mark")
    states = result.as_numpy("states")
    assert states.tolist() == [*np.concatenate(paths[:-1]).tolist(), -1, -1]


def test_score_only_by_default_and_one_session_without_lengths(server, files):
    model = hmmfast.load(files["lr"])
    obs = np.array([0, 1, 2, 3, 3], dtype=np.int64)
    result = client(server).infer("clicks", [tensor("obs", obs, "INT64")])
    assert [o["name"] for o in result.get_response()["outputs"]] == ["score"]
    assert result.as_numpy("score").tolist() == [model.score(obs.reshape(-1, 1))]


def test_frames(files, tmp_path):
    model = hmmfast.load(files["gauss"])
    sessions = sessions_of(model, 50, 2)
    obs = np.concatenate(sessions)
    lengths = np.array([len(s) for s in sessions], dtype=np.int64)
    with Server(files["gauss"], tmp_path) as server:
        c = client(server)
        meta = c.get_model_metadata("hmmfast")
        assert meta["inputs"][0] == {"name": "obs", "datatype": "FP64", "shape": [-1, 3]}
        result = c.infer("hmmfast", [tensor("obs", obs, "FP64"),
                                     tensor("lengths", lengths, "INT64")])
        assert result.as_numpy("score").tobytes() == model.score_batch(sessions).tobytes()
        with pytest.raises(InferenceServerException, match=r"shape must be \[n_frames, 3\]"):
            c.infer("hmmfast", [tensor("obs", obs.ravel(), "FP64")])


@pytest.mark.parametrize("inputs,status,fragment", [
    (lambda: [tensor("obs", np.array([0.5, 1.0]), "FP64")], 400, "integer symbols"),
    (lambda: [tensor("obs", np.array([0, 1, 9], dtype=np.int64), "INT64")], 422,
     "session 0, position 2"),
    (lambda: [tensor("obs", np.array([0, 1], dtype=np.int64), "INT64"),
              tensor("lengths", np.array([1, 2], dtype=np.int64), "INT64")], 400, "sums to 3"),
    (lambda: [tensor("obs", np.array([0, 1], dtype=np.int64), "INT64"),
              tensor("lengths", np.array([2, 0], dtype=np.int64), "INT64")], 422, ">= 1"),
    (lambda: [tensor("x", np.array([0], dtype=np.int64), "INT64")], 400, "unknown input"),
])
def test_errors_are_the_protocols(server, inputs, status, fragment):
    with pytest.raises(InferenceServerException) as info:
        client(server).infer("clicks", inputs())
    assert str(info.value.status()) == str(status) and fragment in info.value.message()


def test_binary_tensors_are_refused_with_the_fix(server):
    t = tritonhttp.InferInput("obs", [2], "INT64")
    t.set_data_from_numpy(np.array([0, 1], dtype=np.int64))  # binary by default
    with pytest.raises(InferenceServerException, match="binary_data=False"):
        client(server).infer("clicks", [t])


def test_protocol_over_http(files):
    """Status codes and bodies the client library does not show: {"error": "..."}, the
    version in the path, the limits, a swap changing the version."""
    app = create_app(files["cat"], admin_token=TOKEN, max_sessions=2)
    version = hmmfast.load(files["cat"]).fingerprint[:12]
    body = {"inputs": [{"name": "obs", "shape": [3], "datatype": "INT64", "data": [0, 1, 2]},
                       {"name": "lengths", "shape": [2], "datatype": "INT64",
                        "data": [1, 2]}]}
    with TestClient(app) as c:
        r = c.post(f"/v2/models/hmmfast/versions/{version}/infer", json=body)
        assert r.status_code == 200 and r.json()["model_version"] == version
        r = c.post("/v2/models/hmmfast/versions/000000000000/infer", json=body)
        assert r.status_code == 404 and set(r.json()) == {"error"}
        assert c.get("/v2/models/nope").json() == {
            "error": 'no model "nope" here; this server serves "hmmfast"'}
        r = c.post("/v2/models/hmmfast/infer", content=b'{"inputs": [')
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
        r = c.post("/v2/models/hmmfast/infer", json={**body, "inputs": [
            {**body["inputs"][0], "shape": [3], "data": [0, 1, 2]},
            {**body["inputs"][1], "shape": [3], "data": [1, 1, 1]}]})
        assert r.status_code == 413 and "--max-sessions" in r.json()["error"]
        r = c.post("/v2/models/hmmfast/infer", json={**body, "inputs": [
            {**body["inputs"][0], "shape": [2]}]})
        assert r.status_code == 400 and "holds 2 values but data has 3" in r.json()["error"]
        r = c.post("/v2/models/hmmfast/infer", content=b'{"inputs": [], "inputs": []}')
        assert r.status_code == 400 and "twice" in r.json()["error"]
        assert c.get("/v2/nothing").status_code == 404 and "error" in c.get("/v2/nothing").json()
        c.post("/v1/models", json={"path": str(files["cat2"])}, headers=AUTH)
        new = hmmfast.load(files["cat2"]).fingerprint[:12]
        assert c.get("/v2/models/hmmfast").json()["versions"] == [new]


def test_fuzzed_inference_requests_get_4xx_never_500(files):
    """Bodies shaped like inference requests, with wrong types, shapes and sizes: every
    answer is a 2xx or a 4xx {"error": "..."} (TestClient re-raises anything else)."""
    import json

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers(-3, 2 ** 64) | st.floats() | st.text(
        max_size=4)
    values = st.recursive(scalars, lambda v: st.lists(v, max_size=4)
                          | st.dictionaries(st.text(max_size=4), v, max_size=3),
                          max_leaves=12)
    tensors = st.fixed_dictionaries(
        {"name": st.sampled_from(["obs", "lengths", "x"]) | values,
         "shape": st.lists(st.integers(-1, 4), max_size=3) | values,
         "datatype": st.sampled_from(["INT64", "FP64", "INT8", "BYTES"]) | values,
         "data": st.lists(st.integers(-1, 5) | st.floats(-2, 6) | values, max_size=6)
         | values},
        optional={"parameters": st.dictionaries(st.sampled_from(["binary_data_size", "x"]),
                                                values, max_size=2)})
    bodies = st.fixed_dictionaries(
        {"inputs": st.lists(tensors, max_size=3) | values},
        optional={"id": values, "outputs": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from(["score", "states", "x"])}),
            max_size=3) | values, "parameters": values, "extra": values})

    with TestClient(create_app(files["cat"], max_sessions=3)) as c:
        @settings(max_examples=300, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow,
                                         HealthCheck.function_scoped_fixture])
        @given(body=bodies | values)
        def check(body):
            r = c.post("/v2/models/hmmfast/infer",
                       content=json.dumps(body, allow_nan=False).encode()
                       if _finite(body) else b'{"inputs": [}')
            assert r.status_code in (200, 400, 404, 413, 415, 422), r.text
            reply = r.json()
            if r.status_code != 200:
                assert set(reply) == {"error"} and reply["error"]
            else:
                assert reply["outputs"][0]["name"] in ("score", "states")

        check()


def _finite(value):
    import math

    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_finite(v) for v in value)
    if type(value) is dict:
        return all(_finite(v) for v in value.values())
    return True


def test_readme_tritonclient_call(tmp_path):
    """The README's tritonclient call, as written, against the README's quick-start model."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = text[text.index("### The Open Inference Protocol"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    model = hmmfast.CategoricalHMM(2)
    model.startprob_ = [0.6, 0.4]
    model.transmat_ = [[0.7, 0.3], [0.4, 0.6]]
    model.emissionprob_ = [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]]
    model.save(tmp_path / "model.npz")
    with Server(tmp_path / "model.npz", tmp_path) as server:
        namespace = {}
        exec(compile(code.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}"),
                     "README tritonclient", "exec"), namespace)
    got = namespace["result"].as_numpy("score")
    assert got.tolist() == model.score_batch(namespace["sessions"]).tolist()
    assert "array([-4.25012156, -2.03599898])" in code
    assert np.allclose(got, [-4.25012156, -2.03599898], atol=5e-9)
