"""hmmfast serve: safe swaps, the A/B split's status, metric series of dropped versions
(issue 27, defects 3 and 8).

A swap to a model that would refuse sessions the live model accepts (another family,
another dimension, fewer symbols) is a 409 unless forced; "compatible" is checked
against each family's own rule. The A/B status's Welch interval is checked against
scipy.stats on the same per-session numbers.
"""

import numpy as np
import pytest
from scipy import stats

import hmmfast

pytest.importorskip("starlette", reason="the [serve] extra is part of the [test] extra")
from prometheus_client.parser import text_string_to_metric_families
from serve_support import AUTH, TOKEN, TestClient, assert_error, categorical, gaussian, poisson

from hmmfast.serve import create_app


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("swaps")
    models = {"cat10": categorical(0, m=10), "cat10b": categorical(1, m=10),
              "cat12": categorical(2, m=12), "cat4": categorical(3, m=4),
              "gauss2": gaussian(0, 2), "gauss2b": gaussian(1, 2), "gauss3": gaussian(0, 3),
              "gmm2": None, "pois2": poisson(0, 2)}
    gmm = hmmfast.GMMHMM(2, n_mix=2, covariance_type="diag")
    gmm.startprob_ = [0.5, 0.5]
    gmm.transmat_ = [[0.9, 0.1], [0.1, 0.9]]
    gmm.weights_ = [[0.5, 0.5], [0.3, 0.7]]
    gmm.means_ = np.arange(8.0).reshape(2, 2, 2)
    gmm.covars_ = np.ones((2, 2, 2))
    models["gmm2"] = gmm
    out = {}
    for name, model in models.items():
        out[name] = d / f"{name}.npz"
        model.save(out[name])
    return out


def swap(c, path, **extra):
    return c.post("/v1/models", json={"path": str(path), **extra}, headers=AUTH)


@pytest.mark.parametrize("live,new,ok", [
    ("cat10", "cat10b", True),    # same family and symbols
    ("cat10", "cat12", True),     # more symbols: every old session still valid
    ("cat10", "cat4", False),     # fewer symbols: symbols 4..9 would be refused
    ("cat10", "gauss2", False),   # the case: every client would get 422
    ("gauss2", "gauss2b", True),
    ("gauss2", "gmm2", True),     # both take real frames of 2 numbers
    ("gauss2", "gauss3", False),  # another dimension
    ("gauss2", "pois2", False),   # counts are not real frames
    ("pois2", "gauss2", False),
    ("gauss2", "cat10", False),
])
def test_swap_needs_force_when_sessions_would_be_refused(files, live, new, ok):
    with TestClient(create_app(files[live], admin_token=TOKEN)) as c:
        live_fp = hmmfast.load(files[live]).fingerprint
        new_fp = hmmfast.load(files[new]).fingerprint
        r = swap(c, files[new])
        if ok:
            assert r.status_code == 200 and r.json()["live"] == new_fp
            return
        err = assert_error(r, 409, "incompatible_model", '"force": true', "live model takes")
        assert err["live"] == live_fp and err["refused"] == new_fp
        assert c.get("/v1/models").json()["live"] == live_fp
        assert_error(swap(c, files[new], force="yes"), 422, "bad_request", "force")
        r = swap(c, files[new], force=True)
        assert r.status_code == 200 and r.json()["live"] == new_fp and r.json()["forced"]
        # rollback is never refused: it is the way back
        assert c.post("/v1/models/rollback", json={}, headers=AUTH).json()["live"] == live_fp


def test_ab_candidate_uses_the_same_rule(files):
    with TestClient(create_app(files["cat10"], admin_token=TOKEN)) as c:
        r = c.post("/v1/models/ab", json={"path": str(files["cat4"]), "fraction": 0.5},
                   headers=AUTH)
        assert_error(r, 422, "incompatible_candidate", "n_features=4")
        r = c.post("/v1/models/ab", json={"path": str(files["cat12"]), "fraction": 0.5},
                   headers=AUTH)
        assert r.status_code == 200


def family(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def model_labels(c):
    fams = family(c.get("/metrics").text)
    labels = set()
    for name in ("hmmfast_requests", "hmmfast_request_seconds"):
        labels |= {s.labels["model"] for s in fams[name].samples}
    return labels


def test_metric_series_leave_with_their_version(tmp_path):
    """After swaps through 12 models the model-labelled series are those of the versions
    held (the old code kept every version's: 53 series and 252 KB of /metrics after 50
    swaps)."""
    paths = []
    for seed in range(12):
        paths.append(tmp_path / f"m{seed}.npz")
        categorical(100 + seed).save(paths[-1])
    with TestClient(create_app(paths[0], admin_token=TOKEN, keep_versions=2)) as c:
        sizes = []
        for i in range(24):
            assert swap(c, paths[(i + 1) % len(paths)]).status_code == 200
            assert c.post("/v1/score", json={"sessions": [[1, 2, 3]]}).status_code == 200
            sizes.append(len(c.get("/metrics").content))
            held = {v["fingerprint"][:12] for v in c.get("/v1/models").json()["versions"]}
            assert len(held) == min(i + 2, 2)
            assert model_labels(c) <= held
        assert max(sizes[4:]) <= max(sizes[:4]) + 64  # /metrics does not grow with swaps
        # a candidate's series stay while the split runs, and leave when it ends
        r = c.post("/v1/models/ab", json={"path": str(paths[5]), "fraction": 0.5},
                   headers=AUTH)
        assert r.status_code == 200
        short = hmmfast.load(paths[5]).fingerprint[:12]
        c.post("/v1/score", json={"sessions": [[1, 2, 3]]})
        c.post("/v1/models/ab", json={"fraction": 0}, headers=AUTH)
        assert short not in model_labels(c)


def test_ab_status_has_each_arm_and_a_welch_interval(files):
    """GET /v1/models/ab: each arm's sessions and mean per-step log-likelihood, and the
    candidate-minus-live difference with its 95 % Welch interval, equal to scipy's on the
    same per-session numbers."""
    live = hmmfast.load(files["cat10"])
    cand = hmmfast.load(files["cat10b"])
    rng = np.random.default_rng(5)
    sessions = [rng.integers(0, 10, size=int(rng.integers(5, 40))) for _ in range(600)]
    ids = [f"user-{i}" for i in range(len(sessions))]
    with TestClient(create_app(files["cat10"], admin_token=TOKEN)) as c:
        assert c.get("/v1/models/ab").json() == {"live": live.fingerprint, "split": None}
        r = c.post("/v1/models/ab", json={"path": str(files["cat10b"]), "fraction": 0.3},
                   headers=AUTH)
        assert r.status_code == 200
        for start in range(0, len(sessions), 100):
            body = {"sessions": [{"id": i, "obs": s.tolist()} for i, s in
                                 zip(ids[start:start + 100], sessions[start:start + 100],
                                     strict=True)]}
            assert c.post("/v1/score", json=body).status_code == 200
        status = c.get("/v1/models/ab").json()["split"]
    to_cand = np.array([hmmfast.serve.unit_hash(i) < 0.3 for i in ids])
    per_step = {"live": np.array([live.score(s.reshape(-1, 1)) / len(s) for s in sessions]),
                "candidate": np.array([cand.score(s.reshape(-1, 1)) / len(s)
                                       for s in sessions])}
    x_c = per_step["candidate"][to_cand]
    x_l = per_step["live"][~to_cand]
    arms = status["arms"]
    assert arms["candidate"]["sessions"] == len(x_c) and arms["live"]["sessions"] == len(x_l)
    assert arms["candidate"]["mean_per_step"] == pytest.approx(x_c.mean(), rel=1e-12)
    assert arms["live"]["mean_per_step"] == pytest.approx(x_l.mean(), rel=1e-12)
    assert arms["live"]["sd_per_step"] == pytest.approx(x_l.std(ddof=1), rel=1e-9)
    diff = status["difference"]
    ref = stats.ttest_ind(x_c, x_l, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert diff["candidate_minus_live"] == pytest.approx(x_c.mean() - x_l.mean(), rel=1e-12)
    assert diff["ci95"] == pytest.approx([ci.low, ci.high], rel=1e-9)
    assert diff["df"] == pytest.approx(ref.df, rel=1e-9)


def test_welch_needs_two_sessions_per_arm():
    from hmmfast.serve._arms import ArmStats, welch

    a, b = ArmStats(), ArmStats()
    assert welch(a, b)["candidate_minus_live"] is None
    a.add_scores(np.array([-4.0]), np.array([2]))
    b.add_scores(np.array([-3.0, -np.inf]), np.array([1, 5]))
    out = welch(a, b)
    assert out["candidate_minus_live"] == -2.0 - -3.0 and out["ci95"] is None
    # batches merged exactly: the same as one pass over all sessions
    a.add_scores(np.array([-1.0, -9.0]), np.array([1, 3]))
    n, mean, var = a.moments()
    x = np.array([-2.0, -1.0, -3.0])
    assert (n, mean) == (3, pytest.approx(x.mean())) and var == pytest.approx(x.var(ddof=1))
