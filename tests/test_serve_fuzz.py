"""hmmfast serve: malformed requests (hypothesis over JSON shapes, types and sizes) get
only 2xx or 4xx JSON answers, never a 500 (in-process, Starlette's TestClient, which
re-raises any exception escaping the app)."""

import json
import warnings

import numpy as np
import pytest
from factories import categorical, needs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hmmfast
from hmmfast.monitor import AnomalyDetector

needs_serve = needs("starlette", "uvicorn", "prometheus_client", "httpx")  # in [test]
try:
    from hmmfast.serve import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
except ImportError:  # without the [serve] extra: the tests below skip
    pass

TOKEN = "fuzz-admin-token-0123456789abcdef"
ALLOWED = {200, 400, 401, 403, 404, 405, 409, 413, 422}
LIMITS = {"max_sessions": 20, "max_observations": 30, "max_body_bytes": 4000}

scalars = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70)
           | st.floats(allow_nan=False) | st.text(max_size=6))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=40)
symbols = st.integers(-3, 14)
frames = st.lists(st.floats(-1e6, 1e6) | st.integers(-5, 5), min_size=0, max_size=3)
observations = (st.lists(symbols, max_size=35) | st.lists(frames, max_size=35)
                | st.lists(symbols | frames | json_values, max_size=35))
sessions = (observations
            | st.fixed_dictionaries({"obs": observations},
                                    optional={"id": st.text(max_size=8) | json_values})
            | st.dictionaries(st.sampled_from(["id", "obs", "x"]), json_values, max_size=3)
            | json_values)
options = st.dictionaries(st.sampled_from(["per_step", "algorithm", "extra"]),
                          json_values | st.sampled_from(["viterbi", "map", True, False]),
                          max_size=2)
bodies = st.one_of(
    st.builds(lambda s, o: json.dumps({"sessions": s, **o}).encode(),
              st.lists(sessions, max_size=22), st.just({}) | st.just({}) | options),
    st.builds(lambda s: json.dumps({"sessions": s}).encode(), json_values),
    st.builds(lambda v: json.dumps(v).encode(), json_values),
    st.binary(max_size=120),
    st.builds(lambda n: b'{"sessions": [' + b"[1]," * n + b"[1]]}", st.integers(0, 1500)),
)
endpoints = st.sampled_from(["/v1/score", "/v1/decode", "/v1/anomaly"])


@pytest.fixture(scope="module")
def clients(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve_fuzz")
    rng = np.random.default_rng(0)
    # structural zeros: impossible sessions happen; symbol 9 has probability 0 everywhere
    cat = categorical([1.0, 0.0, 0.0], [[0.7, 0.3, 0.0], [0.0, 0.6, 0.4], [0.1, 0.0, 0.9]],
                      np.hstack([rng.dirichlet(np.ones(9), size=3), np.zeros((3, 1))]))
    train = [cat.sample(12, random_state=i)[0].ravel() for i in range(100)]
    detector = AnomalyDetector(cat).fit(train)
    cat.save(d / "cat.npz", metadata={"anomaly_detector": detector.to_dict()})
    other = categorical([0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]], np.full((2, 10), 0.1))
    other.save(d / "other.npz")
    gauss = hmmfast.GaussianHMM(2)
    gauss.startprob_ = [0.5, 0.5]
    gauss.transmat_ = [[0.9, 0.1], [0.1, 0.9]]
    gauss.means_ = [[0.0, 1.0], [2.0, -1.0]]
    gauss.covars_ = [[1.0, 1.0], [0.5, 2.0]]
    gauss.save(d / "gauss.npz")
    gauss1 = hmmfast.GaussianHMM(2)
    gauss1.startprob_ = [0.5, 0.5]
    gauss1.transmat_ = [[0.9, 0.1], [0.1, 0.9]]
    gauss1.means_ = [[0.0], [3.0]]
    gauss1.covars_ = [[1.0], [0.5]]
    gauss1.save(d / "gauss1.npz")
    out = {}
    with TestClient(create_app(d / "cat.npz", admin_token=TOKEN, **LIMITS)) as cat_client, \
            TestClient(create_app(d / "gauss.npz", **LIMITS)) as gauss_client, \
            TestClient(create_app(d / "gauss1.npz", **LIMITS)) as gauss1_client, \
            TestClient(create_app(d / "cat.npz", admin_token=TOKEN, **LIMITS)) as ab_client:
        r = ab_client.post("/v1/models/ab", json={"path": str(d / "other.npz"),
                                                  "fraction": 0.5},
                           headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.text
        out.update(cat=cat_client, gauss=gauss_client, gauss1=gauss1_client, ab=ab_client)
        yield out


def check(r):
    assert r.status_code in ALLOWED, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    reply = r.json()
    if r.status_code >= 400:
        err = reply["error"]
        assert err["status"] == r.status_code and err["code"] and err["message"]
    else:
        assert "model" in reply or "live" in reply
        assert "NaN" not in r.text and "Infinity" not in r.text
    return reply


FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@needs_serve
@FUZZ
@given(which=st.sampled_from(["cat", "gauss", "gauss1", "ab"]), path=endpoints, body=bodies)
def test_data_endpoints_answer_4xx_never_500(clients, which, path, body):
    check(clients[which].post(path, content=body))


@needs_serve
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(["/v1/models", "/v1/models/rollback", "/v1/models/ab"]),
       body=st.one_of(st.builds(lambda v: json.dumps(v).encode(), json_values),
                      st.binary(max_size=60),
                      st.builds(lambda p, f: json.dumps({"path": p, "fraction": f}).encode(),
                                st.text(max_size=10), json_values)),
       auth=st.sampled_from([None, "Bearer " + TOKEN, "Bearer wrong-wrong-wrong-wrong",
                             "Basic abc", ""]))
def test_admin_endpoints_answer_4xx_never_500(clients, path, body, auth):
    headers = {} if auth is None else {"Authorization": auth}
    reply = check(clients["cat"].post(path, content=body, headers=headers))
    if "live" in reply:  # a valid admin call: put the original model back
        models = clients["cat"].get("/v1/models").json()
        assert models["versions"][0]["live"]
