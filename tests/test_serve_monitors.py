"""hmmfast serve's monitors and logs (issue 24): /v1/anomaly feeds occupancy with the
detector's training baseline, impossible sessions, dead states, oscillation and frames
exported, anomalous sessions kept out of the drift window, routing by segment, the path
and input/output logs."""

import json
import warnings

import numpy as np
import pytest

import hmmfast

pytest.importorskip("starlette", reason="the [serve] extra is part of the [test] extra")
from prometheus_client.parser import text_string_to_metric_families

from hmmfast.monitor import AnomalyDetector, SegmentedDetector
from hmmfast.serve import create_app
from hmmfast.serve._run import build_parser

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def model_(seed=0, n=3, m=6):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n) * 0.4 + np.eye(n) * 0.6
    em = rng.dirichlet(np.ones(m), size=n)
    em[:, m - 1] = 0.0  # the last page is impossible
    model.emissionprob_ = em / em.sum(axis=1, keepdims=True)
    return model


def draw(model, n, seed, lo=8, hi=20):
    rng = np.random.default_rng(seed)
    return [model.sample(int(rng.integers(lo, hi)), random_state=rng)[0][:, 0].tolist()
            for _ in range(n)]


def metrics(c):
    out = {}
    for family in text_string_to_metric_families(c.get("/metrics").text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def metric(m, name, **labels):
    return m[name, tuple(sorted(labels.items()))]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve_monitors")
    model = model_()
    det = AnomalyDetector(model).fit([np.array(x) for x in draw(model, 600, 1)])
    path = d / "det.npz"
    model.save(path, metadata={"anomaly_detector": det.to_dict()})
    return model, det, path


def test_anomaly_feeds_occupancy_and_impossible_sessions_are_counted(model_file):
    model, det, path = model_file
    app = create_app(path)
    with TestClient(app) as c:
        m = metrics(c)
        assert metric(m, "hmmfast_occupancy_frames") == 0
        assert metric(m, "hmmfast_impossible_total", endpoint="anomaly") == 0
        sessions = draw(model, 100, 2)
        r = c.post("/v1/anomaly", json={"sessions": [*sessions, [0, 5, 1]]})
        assert r.status_code == 200, r.text
        assert r.json()["impossible"] == [100]
        c.post("/v1/score", json={"sessions": [[5], [1, 2]]})
        m = metrics(c)
        frames = sum(len(s) for s in sessions)  # the impossible session has no path
        assert metric(m, "hmmfast_occupancy_frames") == frames
        assert metric(m, "hmmfast_impossible_total", endpoint="anomaly") == 1
        assert metric(m, "hmmfast_impossible_total", endpoint="score") == 1
        assert metric(m, "hmmfast_occupancy_dead_states") == 0
        assert metric(m, "hmmfast_occupancy_oscillating") == 0
        occ = app.state.registry.snapshot.live.monitors.occupancy.monitor
        np.testing.assert_allclose(occ.baseline_occupancy_, det.training_["occupancy"])
        # the anomaly reply carries each session's reason
        reasons = r.json()["reasons"]["reason"]
        assert len(reasons) == 101 and reasons[100] != ""


def test_anomalous_sessions_stay_out_of_the_drift_window(model_file):
    model, det, path = model_file
    bots = [[0, 4] * 10] * 50  # flipping between two pages: anomalous
    normal = draw(model, 30, 3)
    assert (det.predict([np.array(b) for b in bots]).level == "anomalous").all()
    for keep in (False, True):
        app = create_app(path, drift_keep_anomalous=keep)
        with TestClient(app) as c:
            c.post("/v1/anomaly", json={"sessions": bots + normal})
            tracker = app.state.registry.snapshot.live.monitors.drift
            tracker.state()  # flush the buffer
            fed = sum(len(p[0]) for p in tracker._pending)
            rec = det.predict([np.array(s) for s in bots + normal])
            expected = len(bots) + len(normal) if keep else int(np.sum(rec.level_code < 2))
            assert fed == expected


def test_segmented_detector_routes_by_segment(tmp_path):
    model = model_(4)
    rng = np.random.default_rng(5)
    a = [np.array(x) for x in draw(model, 400, 6, 5, 10)]
    b = [np.array(x) for x in draw(model, 400, 7, 15, 30)]
    seg = SegmentedDetector({"guest": AnomalyDetector(model), "admin": AnomalyDetector(model)})
    seg.fit(a + b, ["guest"] * 400 + ["admin"] * 400)
    path = tmp_path / "seg.npz"
    model.save(path, metadata={"anomaly_detector": seg.to_dict()})
    test = [x.tolist() for x in a[:5] + b[:5]]
    keys = ["guest"] * 5 + ["admin"] * 5
    order = rng.permutation(10)
    with TestClient(create_app(path)) as c:
        body = {"sessions": [{"id": f"s{i}", "obs": test[i], "segment": keys[i]}
                             for i in order]}
        r = c.post("/v1/anomaly", json=body)
        assert r.status_code == 200, r.text
        expected = seg.predict([np.array(test[i]) for i in order], [keys[i] for i in order])
        np.testing.assert_allclose(r.json()["scores"], expected.score, rtol=1e-12)
        assert r.json()["levels"] == expected.level.tolist()
        bad = c.post("/v1/anomaly", json={"sessions": [{"obs": [1, 2], "segment": "root"}]})
        assert bad.status_code == 422 and "root" in bad.text


def test_path_and_io_logs(model_file, tmp_path):
    model, det, path = model_file
    paths_file, io_file = tmp_path / "paths.jsonl", tmp_path / "io.jsonl"
    sessions = draw(model, 400, 8)
    with TestClient(create_app(path, log_paths=0.05, log_paths_file=str(paths_file),
                               log_io=str(io_file))) as c:
        body = {"sessions": [{"id": f"u{i}", "obs": s} for i, s in enumerate(sessions)]}
        r = c.post("/v1/anomaly", json=body)
        assert r.status_code == 200
        c.post("/v1/score", json={"sessions": sessions[:3]})
    rows = [json.loads(x) for x in open(paths_file)]
    assert 5 < len(rows) < 40
    for row in rows:
        s = int(row["id"][1:])
        _, expected = det.predict([np.array(sessions[s])], return_paths=True)
        assert row["path"] == expected[0].tolist()
        assert row["level"] == r.json()["levels"][s]
    io = [json.loads(x) for x in open(io_file)]
    assert [x["endpoint"] for x in io] == ["anomaly", "score"]
    assert json.loads(io[0]["reply"]) == r.json()
    assert json.loads(io[1]["request"]) == {"sessions": sessions[:3]}


def test_command_line_options():
    args = build_parser().parse_args(["m.npz", "--log-paths", "0.01", "--log-io", "io.jsonl",
                                      "--drift-keep-anomalous"])
    assert args.log_paths == 0.01 and args.log_io == "io.jsonl" and args.drift_keep_anomalous
    with pytest.raises(SystemExit):
        build_parser().parse_args(["m.npz", "--log-paths", "2"])
