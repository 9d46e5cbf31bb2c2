"""PathLog and the rotating JSON-lines writer (issue 24): sampling rate and seed, the
entries against predict's record and decode's paths, size-based rotation."""

import hashlib
import json

import numpy as np
import pytest

import hmmfast
from hmmfast.monitor import AnomalyDetector, PathLog
from hmmfast.monitor._pathlog import JsonLinesLog


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    model = hmmfast.CategoricalHMM(3)
    model.startprob_ = rng.dirichlet(np.ones(3))
    model.transmat_ = rng.dirichlet(np.ones(3), size=3)
    model.emissionprob_ = rng.dirichlet(np.ones(5), size=3)
    sessions = [model.sample(int(rng.integers(3, 12)), random_state=rng)[0][:, 0]
                for _ in range(3000)]
    det = AnomalyDetector(model, end_symbol=None).fit(sessions[:1000])
    return model, det, sessions


def read(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_sampled_entries_match_the_record_and_viterbi(tmp_path, fitted):
    model, det, sessions = fitted
    log = PathLog(tmp_path / "paths.jsonl", rate=0.05, seed=3)
    record, paths = det.predict(sessions, return_paths=True)
    ids = [f"s{i}" for i in range(len(sessions))]
    written = log.log(record, paths, ids=ids)
    rows = read(log.path)
    assert written == len(rows) and 0.03 < len(rows) / len(sessions) < 0.07
    for row in rows:
        s = int(row["id"][1:])
        # the hash rule, recomputed: sha256 of "seed:id" as a fraction below the rate
        h = int.from_bytes(hashlib.sha256(f"3:{row['id']}".encode()).digest()[:8], "big")
        assert h / 2.0 ** 64 < 0.05
        assert row["path"] == model.decode(sessions[s])[1].tolist()
        assert row["score"] == pytest.approx(record.score[s], rel=1e-12)
        assert row["level"] == record.level[s] and row["length"] == len(sessions[s])
    # the same ids are chosen again (stable across processes), another seed differs
    again = PathLog(tmp_path / "again.jsonl", rate=0.05, seed=3)
    again.log(record, paths, ids=ids)
    assert [r["id"] for r in read(again.path)] == [r["id"] for r in rows]
    other = PathLog(tmp_path / "other.jsonl", rate=0.05, seed=4)
    other.log(record, paths, ids=ids)
    assert [r["id"] for r in read(other.path)] != [r["id"] for r in rows]


def test_without_ids_a_seeded_draw_and_running_numbers(tmp_path, fitted):
    _, det, sessions = fitted
    record, paths = det.predict(sessions[:500], return_paths=True)
    a = PathLog(tmp_path / "a.jsonl", rate=0.1, seed=7)
    a.log(record, paths)
    a.log(record, paths)
    expected = np.random.default_rng(7).random(1000) < 0.1
    got = [r["id"] for r in read(a.path)]
    assert got == np.flatnonzero(expected).tolist()


def test_rotation_bounds_the_files(tmp_path):
    out = JsonLinesLog(tmp_path / "io.jsonl", max_bytes=1000, backups=2)
    for i in range(100):
        out.write([{"i": i, "pad": "x" * 40}])
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["io.jsonl", "io.jsonl.1", "io.jsonl.2"]
    sizes = [p.stat().st_size for p in tmp_path.iterdir()]
    assert max(sizes) <= 1000
    last = [json.loads(x)["i"] for x in open(tmp_path / "io.jsonl")]
    older = [json.loads(x)["i"] for x in open(tmp_path / "io.jsonl.1")]
    assert last[-1] == 99 and older[-1] == last[0] - 1  # consecutive across the rotation
    with pytest.raises(hmmfast.ParameterError, match="rate"):
        PathLog(tmp_path / "x.jsonl", rate=0.0)
    with pytest.raises(hmmfast.ParameterError, match="max_bytes"):
        JsonLinesLog(tmp_path / "y.jsonl", max_bytes=0)
