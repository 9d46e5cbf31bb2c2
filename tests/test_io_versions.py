"""Traceable model versions (issue 26): hash_data, the fit record's fingerprint, seed and
warm-start chain, stale records, version_id, and the command line's fit/info around them.

The oracles are the documented definitions written again here with hashlib and json
(README "Model files and versions", hmmfast/_versions.py), and repeated fits.
"""

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from numpy.lib import format as npy_format

import hmmfast
from hmmfast import _cli

DATA = Path(__file__).resolve().parent / "data"
pytestmark = pytest.mark.filterwarnings("ignore::hmmfast.ConvergenceWarning")  # short fits


def digest(parts):
    """The documented training-data hash over (label, array) parts."""
    h = hashlib.sha256()
    for label, arr in parts:
        arr = np.ascontiguousarray(arr)
        h.update(label.encode())
        h.update(f"{arr.dtype.str}|{','.join(map(str, arr.shape))}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def documented_version_id(header):
    """version_id written again from the README's definition."""
    params = {}
    for name, value in header["params"].items():
        if name in ("n_threads", "verbose"):
            continue
        if isinstance(value, dict) and "__array__" in value:
            value = {"__array_sha256__": header["arrays"][value["__array__"]]["sha256"]}
        params[name] = value
    doc = {"version_id_version": 1, "fingerprint": header["fingerprint"],
           "hyper_parameters": params}
    fit = header["fit"]
    if fit and not fit.get("stale") and fit["training_data_sha256"]:
        doc["training_data"] = [*fit.get("previous_training_data_sha256", []),
                                fit["training_data_sha256"]]
        doc["random_seed"] = fit.get("random_seed")
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def symbols(n=120, seed=0, m=4):
    return np.random.default_rng(seed).integers(0, m, n)


# ---------------------------------------------------------------------- hash_data


def test_hash_data_is_public():
    assert "hash_data" in hmmfast.__all__ and callable(hmmfast.hash_data)


@pytest.mark.parametrize("make, X, lengths, kw", [
    (lambda: hmmfast.CategoricalHMM(2, n_iter=2), symbols()[:, None], [50, 70], {}),
    (lambda: hmmfast.CategoricalHMM(2, n_iter=2), symbols().tolist(), None, {}),
    (lambda: hmmfast.CategoricalHMM(2, n_iter=2), symbols().astype(np.int32), [120], {}),
    (lambda: hmmfast.CategoricalHMM(2, n_iter=2), symbols()[:, None], [60, 60],
     {"sample_weight": [1.0, 3.0]}),
    (lambda: hmmfast.CategoricalHMM(2, n_iter=2), symbols()[:, None], [60, 60],
     {"states": np.r_[[0, 1] * 10, [-1] * 100]}),
    (lambda: hmmfast.GaussianHMM(2, n_iter=2), np.random.default_rng(1).normal(size=(80, 2)),
     [30, 50], {}),
    (lambda: hmmfast.GaussianHMM(2, n_iter=2), symbols()[:, None], None, {}),  # ints
    (lambda: hmmfast.GaussianHMM(2, n_iter=2, missing="marginalize"),
     np.where(np.arange(60)[:, None] % 7 == 3, np.nan,
              np.random.default_rng(2).normal(size=(60, 1))), None, {}),
    (lambda: hmmfast.PoissonHMM(2, n_iter=2), symbols(m=9).reshape(60, 2), [20, 40], {}),
    (lambda: hmmfast.GMMHMM(2, n_mix=2, n_iter=2),
     np.random.default_rng(4).normal(size=(90, 1)).astype(np.float32), [45, 45], {}),
])
def test_hash_data_equals_what_fit_records(make, X, lengths, kw):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model = make().fit(X, lengths, **kw)
    assert hmmfast.hash_data(X, lengths, **kw) == model._fit_record["training_data_sha256"]


def test_hash_data_follows_its_definition():
    x = symbols()
    want = digest([("X", x.astype("<i8")[:, None]), ("lengths", np.array([50, 70], "<i8"))])
    assert hmmfast.hash_data(x, [50, 70]) == want
    assert hmmfast.hash_data(x.astype(float)[:, None], np.array([50, 70])) == want  # values
    f = np.random.default_rng(1).normal(size=(10, 3))
    want = digest([("X", f.astype("<f8")), ("lengths", np.array([10], "<i8")),
                   ("sample_weight", np.array([2.0]))])
    assert hmmfast.hash_data(f, sample_weight=[2.0]) == want
    assert hmmfast.hash_data(x, [50, 70]) != hmmfast.hash_data(x, [70, 50])
    with pytest.raises(hmmfast.HMMInputError):
        hmmfast.hash_data(x, [50, 50])
    with pytest.raises(hmmfast.HMMTypeError):
        hmmfast.hash_data([["a"], ["b"]])


# ---------------------------------------------------------------------- the fit record


def test_fit_record_carries_the_fingerprint_it_produced(tmp_path):
    model = hmmfast.CategoricalHMM(2, n_iter=5, random_state=0).fit(symbols()[:, None])
    assert model._fit_record["fingerprint"] == model.fingerprint
    model.save(tmp_path / "a.npz")
    header = hmmfast.read_header(tmp_path / "a.npz")
    assert header["fit"]["fingerprint"] == header["fingerprint"]
    assert header["fit"]["stale"] is False
    assert header["version_id"] == documented_version_id(header)
    assert header["format_version"] == 2


def test_assigned_parameters_make_the_record_stale(tmp_path):
    model = hmmfast.CategoricalHMM(2, n_iter=5, random_state=0).fit(symbols()[:, None])
    fitted = model.fingerprint
    model.transmat_ = [[0.5, 0.5], [0.25, 0.75]]
    model.save(tmp_path / "b.npz")
    header = hmmfast.read_header(tmp_path / "b.npz")
    assert header["fit"]["stale"] is True and header["fit"]["fingerprint"] == fitted
    assert header["fingerprint"] == model.fingerprint != fitted
    # the stale record no longer counts: the id is hash(fingerprint, hyper-parameters)
    assert header["version_id"] == documented_version_id(header)
    fresh = hmmfast.CategoricalHMM(2, n_iter=5, random_state=0)
    for name in ("startprob_", "transmat_", "emissionprob_"):
        setattr(fresh, name, getattr(model, name))
    fresh.save(tmp_path / "c.npz")  # the same parameters and settings, never fitted
    other = hmmfast.read_header(tmp_path / "c.npz")
    assert other["fit"] is None and other["version_id"] == header["version_id"]
    loaded = hmmfast.load(tmp_path / "b.npz")  # stays stale through save/load
    loaded.save(tmp_path / "d.npz")
    assert hmmfast.read_header(tmp_path / "d.npz")["fit"]["stale"] is True


def test_warm_starts_keep_the_earlier_data_hashes(tmp_path):
    model = hmmfast.CategoricalHMM(2, n_iter=3, random_state=0)
    parts = [symbols(seed=s)[:, None] for s in range(3)]
    hashes = [hmmfast.hash_data(x) for x in parts]
    model.fit(parts[0])
    model.init_params = ""  # keep every parameter: a warm start
    model.fit(parts[1])
    assert model._fit_record["previous_training_data_sha256"] == hashes[:1]
    model.save(tmp_path / "w.npz")
    loaded = hmmfast.load(tmp_path / "w.npz")
    loaded.fit(parts[2])
    record = loaded._fit_record
    assert record["previous_training_data_sha256"] == hashes[:2]
    assert record["training_data_sha256"] == hashes[2]
    loaded.save(tmp_path / "w2.npz")
    header = hmmfast.read_header(tmp_path / "w2.npz")
    assert header["version_id"] == documented_version_id(header)
    loaded.init_params = "ste"  # a fresh fit starts a new chain
    loaded.fit(parts[0])
    assert loaded._fit_record["previous_training_data_sha256"] == []
    partial = hmmfast.CategoricalHMM(2, n_iter=3, random_state=0, init_params="s")
    partial.fit(parts[0])  # first fit: nothing to continue
    partial.fit(parts[1])  # keeps transmat_ and emissionprob_: a warm start
    assert partial._fit_record["previous_training_data_sha256"] == hashes[:1]


def test_the_drawn_seed_is_recorded_and_repeats_the_fit():
    X = symbols()[:, None]
    np.random.seed(5)
    first = hmmfast.CategoricalHMM(3, n_iter=10).fit(X)
    seed = first._fit_record["random_seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**31
    again = hmmfast.CategoricalHMM(3, n_iter=10, random_state=seed).fit(X)
    assert again.fingerprint == first.fingerprint
    assert again._fit_record["random_seed"] == seed
    np.random.seed(5)  # the seed comes from NumPy's global generator
    assert hmmfast.CategoricalHMM(3, n_iter=10).fit(X).fingerprint == first.fingerprint
    rs = hmmfast.CategoricalHMM(3, n_iter=2, random_state=np.random.RandomState(1)).fit(X)
    assert rs._fit_record["random_seed"] is None


def test_version_id_changes_with_data_settings_and_parameters(tmp_path):
    X = symbols()[:, None]
    ids = {}
    for name, kw, data in [("base", {}, X), ("tol", {"tol": 0.5}, X),
                           ("data", {}, X[::-1].copy()), ("threads", {"n_threads": 1}, X)]:
        m = hmmfast.CategoricalHMM(2, n_iter=5, random_state=0, **kw).fit(data)
        m.save(tmp_path / f"{name}.npz")
        header = hmmfast.read_header(tmp_path / f"{name}.npz")
        assert header["version_id"] == documented_version_id(header)
        ids[name] = header["version_id"]
    assert len({ids["base"], ids["tol"], ids["data"]}) == 3
    assert ids["threads"] == ids["base"]  # a run-time setting is no part of the version


# ---------------------------------------------------------------------- files


def rewrite_header(src, dst, edit):
    with zipfile.ZipFile(src) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    header = json.loads(npy_format.read_array(io.BytesIO(members["__header__.npy"])).tobytes())
    edit(header)
    buf = io.BytesIO()
    npy_format.write_array(buf, np.frombuffer(json.dumps(header).encode(), np.uint8))
    members["__header__.npy"] = buf.getvalue()
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dst


def test_a_forged_version_id_is_refused(tmp_path):
    hmmfast.CategoricalHMM(2, n_iter=3, random_state=0).fit(symbols()[:, None]).save(
        tmp_path / "m.npz")
    forged = rewrite_header(tmp_path / "m.npz", tmp_path / "f.npz",
                            lambda h: h.__setitem__("version_id", "0" * 64))
    with pytest.raises(hmmfast.ModelFileError, match="version_id"):
        hmmfast.read_header(forged)
    for key, value in [("stale", "no"), ("previous_training_data_sha256", ["xyz"]),
                       ("random_seed", 1.5)]:
        bad = rewrite_header(tmp_path / "m.npz", tmp_path / "g.npz",
                             lambda h, k=key, v=value: h["fit"].__setitem__(k, v))
        with pytest.raises(hmmfast.ModelFileError, match=key):
            hmmfast.load(bad)


def test_format_1_files_load_and_get_a_computed_version_id(tmp_path, capsys):
    path = DATA / "categorical_v1.npz"
    header = hmmfast.read_header(path)
    assert header["format_version"] == 1 and "version_id" not in header
    assert _cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    computed = documented_version_id(header)
    assert f"version id     {computed} (computed" in out
    hmmfast.load(path).save(tmp_path / "v2.npz")  # re-saved: the same version
    assert hmmfast.read_header(tmp_path / "v2.npz")["version_id"] == computed


# ---------------------------------------------------------------------- the command line


@pytest.fixture
def text_data(tmp_path):
    rng = np.random.default_rng(7)
    lines = [" ".join(map(str, rng.integers(0, 3, rng.integers(5, 30)))) for _ in range(40)]
    (tmp_path / "d.txt").write_text("\n".join(lines) + "\n")
    return tmp_path, lines


def read_lines(lines):
    seqs = [np.array(line.split(), dtype=int) for line in lines]
    return np.concatenate(seqs), [len(s) for s in seqs]


def test_cli_fit_records_the_seed_and_the_data_path(text_data, capsys):
    d, lines = text_data
    assert _cli.main(["fit", str(d / "d.txt"), "-o", str(d / "a.npz"), "--quiet"]) == 0
    header = hmmfast.read_header(d / "a.npz")
    seed = header["fit"]["random_seed"]
    assert isinstance(seed, int)  # the old command line saved random_state null
    assert header["metadata"]["data"]["path"] == str((d / "d.txt").resolve())
    X, lengths = read_lines(lines)
    assert header["fit"]["training_data_sha256"] == hmmfast.hash_data(X, lengths)
    assert _cli.main(["fit", str(d / "d.txt"), "-o", str(d / "b.npz"), "--quiet",
                      "--seed", str(seed)]) == 0
    assert hmmfast.read_header(d / "b.npz")["fingerprint"] == header["fingerprint"]


def test_cli_info_check_data(text_data, capsys):
    d, lines = text_data
    assert _cli.main(["fit", str(d / "d.txt"), "-o", str(d / "a.npz"), "--quiet",
                      "--seed", "1"]) == 0
    assert _cli.main(["info", str(d / "a.npz"), "--check-data", str(d / "d.txt")]) == 0
    assert "matches the training data" in capsys.readouterr().out
    # the same sequences as JSON lines: values, not containers, are hashed
    (d / "d.jsonl").write_text("".join(json.dumps([int(v) for v in line.split()]) + "\n"
                                       for line in lines))
    assert _cli.main(["info", str(d / "a.npz"), "--check-data", str(d / "d.jsonl")]) == 0
    (d / "e.txt").write_text("\n".join(lines[:-1]) + "\n")  # one sequence fewer
    assert _cli.main(["info", str(d / "a.npz"), "--check-data", str(d / "e.txt")]) == 1
    err = capsys.readouterr().err
    assert "does not match the training data" in err and len(err.splitlines()) == 1
    (d / "f.txt").write_text("9 9 9\n")  # a symbol the model does not know: still hashed
    assert _cli.main(["info", str(d / "a.npz"), "--check-data", str(d / "f.txt")]) == 1


def test_cli_fit_init_from_is_a_warm_start(text_data, capsys):
    d, lines = text_data
    (d / "week2.txt").write_text("\n".join(lines[::-1][:25]) + "\n")
    assert _cli.main(["fit", str(d / "d.txt"), "-o", str(d / "w1.npz"), "--quiet",
                      "--seed", "3", "--states", "3"]) == 0
    assert _cli.main(["fit", str(d / "week2.txt"), "-o", str(d / "w2.npz"), "--quiet",
                      "--init-from", str(d / "w1.npz"), "--iter", "7",
                      "--metadata", "week=2", "--metadata", 'team={"name": "search"}']) == 0
    # the API: the saved model, the options set, every parameter kept
    model = hmmfast.load(d / "w1.npz")
    model.set_params(init_params="", n_iter=7, n_threads=None)
    X2, lengths2 = read_lines(lines[::-1][:25])
    model.fit(X2, lengths2)
    header = hmmfast.read_header(d / "w2.npz")
    assert header["fingerprint"] == model.fingerprint
    X1, lengths1 = read_lines(lines)
    assert header["fit"]["previous_training_data_sha256"] == [hmmfast.hash_data(X1, lengths1)]
    assert header["metadata"]["init_from"]["fingerprint"] == \
        hmmfast.read_header(d / "w1.npz")["fingerprint"]
    assert header["metadata"]["week"] == 2 and header["metadata"]["team"] == {"name": "search"}
    assert _cli.main(["info", str(d / "w2.npz"), "--check-data", str(d / "d.txt")]) == 0
    assert "earlier training data 1 of 1" in capsys.readouterr().out
    assert _cli.main(["fit", str(d / "d.txt"), "-o", str(d / "x.npz"), "--init-from",
                      str(d / "w1.npz"), "--states", "4"]) == 2
    assert "a warm start keeps the structure" in capsys.readouterr().err


def test_cli_info_diff(tmp_path, capsys):
    a = hmmfast.CategoricalHMM(2, n_iter=5, random_state=0).fit(symbols()[:, None])
    a.save(tmp_path / "a.npz", metadata={"k": 1})
    a.save(tmp_path / "a2.npz", metadata={"k": 1})
    assert _cli.main(["info", "--diff", str(tmp_path / "a.npz"), str(tmp_path / "a2.npz")]) == 0
    assert "the same model" in capsys.readouterr().out
    b = hmmfast.load(tmp_path / "a.npz")
    old = a.transmat_.copy()
    b.transmat_ = [[0.6, 0.4], [0.3, 0.7]]
    b.tol = 0.5
    b.save(tmp_path / "b.npz", metadata={"k": 2})
    assert _cli.main(["info", "--diff", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 1
    out = capsys.readouterr().out
    largest = float(np.max(np.abs(old - np.array([[0.6, 0.4], [0.3, 0.7]]))))
    assert f"largest |A - B| = {largest:.6g}" in out
    for words in ("parameter transmat_", "settings tol", "metadata k", "fit stale",
                  "version version_id"):
        assert words in out, words
    assert _cli.main(["info", "--diff", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"),
                      "--json"]) == 1
    diff = json.loads(capsys.readouterr().out)
    assert {(r["section"], r["name"]) for r in diff["differences"]} >= {
        ("parameter", "transmat_"), ("settings", "tol"), ("metadata", "k")}
    assert _cli.main(["info", str(tmp_path / "a.npz"), "--diff", "x", "y"]) == 2
    os.remove(tmp_path / "a2.npz")
