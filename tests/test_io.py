"""Model files (hmmfast/_io.py): round trips, committed fixtures, fingerprints, the
training-data hash, atomic writes. Hostile files and fuzzing: tests/test_io_hostile.py.

The fixtures tests/data/*_v1.npz were written by tests/data/make_io_fixtures.py; the
values they are checked against here are in this file's source or computed here with
NumPy, SciPy and hashlib from the documented definitions, never read back from hmmfast.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from factories import categorical
from numpy.lib import format as npy_format
from scipy import sparse
from scipy.stats import multivariate_normal

import hmmfast
from hmmfast import _io, _reference
from hmmfast._errors import HMMTypeError, NotFittedError

DATA = Path(__file__).resolve().parent / "data"
pytestmark = pytest.mark.filterwarnings("ignore::hmmfast.ConvergenceWarning")


# ---------------------------------------------------------------------- models


def _truth_gaussian(d=2):
    m = hmmfast.GaussianHMM(2, covariance_type="diag")
    m.startprob_, m.transmat_ = [0.6, 0.4], [[0.9, 0.1], [0.2, 0.8]]
    m.means_ = np.array([[0.0] * d, [3.0] * d])
    m.covars_ = np.ones((2, d))
    return m


def build(case):
    """A fitted model (fixed seeds) of every family, covariance type and layout."""
    rng = np.random.default_rng(7)
    lengths = [60, 40]
    if case in ("categorical", "categorical-priors", "sparse"):
        X = rng.integers(0, 4, size=(100, 1))
        if case == "categorical":
            return hmmfast.CategoricalHMM(3, n_iter=5, random_state=0).fit(X, lengths)
        if case == "categorical-priors":  # array prior, tol=-inf, a RandomState
            m = hmmfast.CategoricalHMM(3, transmat_prior=np.full((3, 3), 2.0), n_iter=3,
                                       tol=float("-inf"), random_state=np.random.RandomState(1))
            return m.fit(X, lengths)
        m = hmmfast.CategoricalHMM(3, n_iter=5, random_state=0, init_params="se")
        m.transmat_ = sparse.csr_matrix([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])
        return m.fit(X, lengths)
    if case.startswith("gaussian-"):
        X, _ = _truth_gaussian().sample(100, random_state=3)
        ct = case.split("-")[1]
        return hmmfast.GaussianHMM(2, covariance_type=ct, n_iter=5, random_state=0).fit(
            X, lengths)
    if case.startswith("gmm-"):
        X, _ = _truth_gaussian().sample(100, random_state=4)
        ct = case.split("-")[1]
        return hmmfast.GMMHMM(2, n_mix=2, covariance_type=ct, n_iter=4, random_state=0).fit(
            X, lengths)
    assert case == "poisson"
    X = rng.poisson([2.0, 5.0], size=(100, 2))
    return hmmfast.PoissonHMM(2, n_iter=5, random_state=0).fit(X, lengths)


CASES = ["categorical", "categorical-priors", "sparse", "gaussian-spherical", "gaussian-diag",
         "gaussian-full", "gaussian-tied", "gmm-spherical", "gmm-diag", "gmm-full", "gmm-tied",
         "poisson"]
PARAMS = {"CategoricalHMM": ["startprob_", "transmat_", "emissionprob_"],
          "GaussianHMM": ["startprob_", "transmat_", "means_", "covars_"],
          "GMMHMM": ["startprob_", "transmat_", "weights_", "means_", "covars_"],
          "PoissonHMM": ["startprob_", "transmat_", "lambdas_"]}


def observations(model, seed=11):
    X, _ = model.sample(30, random_state=seed)
    return X


def same_value(a, b):
    if sparse.issparse(a) or sparse.issparse(b):
        return (sparse.issparse(a) and sparse.issparse(b) and a.shape == b.shape
                and all(np.array_equal(getattr(a, k), getattr(b, k))
                        for k in ("data", "indices", "indptr")))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b or (a != a and b != b)


# ---------------------------------------------------------------------- round trips


@pytest.mark.parametrize("case", CASES)
def test_round_trip_is_identical(case, tmp_path):
    model = build(case)
    path = tmp_path / "model.npz"
    meta = {"owner": "team-a", "thresholds": [1.5, -2], "nested": {"ok": True, "none": None}}
    model.save(path, metadata=meta)
    loaded = hmmfast.load(path)
    assert type(loaded) is type(model)
    for name in PARAMS[type(model).__name__]:
        assert same_value(getattr(loaded, name), getattr(model, name)), name
    for name, value in model.get_params().items():
        if isinstance(value, np.random.RandomState):
            assert loaded.get_params()[name] is None  # documented: not saved
        else:
            assert same_value(loaded.get_params()[name], value), name
    X = observations(model)
    assert loaded.score(X) == model.score(X)
    assert loaded.score(X, [10, 20]) == model.score(X, [10, 20])
    for algorithm in ("viterbi", "map"):
        lp1, s1 = model.decode(X, algorithm=algorithm)
        lp2, s2 = loaded.decode(X, algorithm=algorithm)
        assert lp1 == lp2 and np.array_equal(s1, s2)
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded.fingerprint == model.fingerprint
    assert loaded._fit_record == model._fit_record and model._fit_record["n_iter"] > 0
    header = hmmfast.read_header(path)
    assert header["metadata"] == meta
    assert header["fingerprint"] == model.fingerprint
    assert header["class"] == type(model).__name__ and header["format_version"] == 2
    assert header["fit"]["training_data_sha256"] == model._fit_record["training_data_sha256"]
    # save(load(f)) keeps everything, down to the bytes (deterministic files)
    again = tmp_path / "again.npz"
    loaded.save(again, metadata=meta)
    if case != "categorical-priors":  # there the RandomState came back as None
        assert again.read_bytes() == path.read_bytes()
    assert hmmfast.read_header(again)["fit"] == header["fit"]


def test_file_is_a_plain_npz_without_pickles(tmp_path):
    model = build("gaussian-full")
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["__header__", "covars_", "means_", "startprob_", "transmat_"]
        assert z["covars_"].shape == (2, 2, 2) and z["covars_"].dtype == "<f8"
        assert json.loads(z["__header__"].tobytes())["class"] == "GaussianHMM"


def test_read_header_reads_no_parameter_data(tmp_path):
    rng = np.random.default_rng(2)
    model = fixed_model()
    model.n_features = None
    model.emissionprob_ = rng.dirichlet(np.ones(2000), size=3)  # 48 kB of data
    path = tmp_path / "m.npz"
    model.save(path)
    raw = bytearray(path.read_bytes())
    data = np.ascontiguousarray(model.emissionprob_).tobytes()
    at = raw.find(data) + len(data) - 5  # corrupt the data only, far from its .npy header
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert hmmfast.read_header(path)["fingerprint"] == model.fingerprint
    with pytest.raises(hmmfast.ModelFileError, match="emissionprob_"):
        hmmfast.load(path)


def test_path_is_written_exactly_and_pathlike_or_str(tmp_path):
    model = build("categorical")
    model.save(str(tmp_path / "model.bin"))
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]
    assert hmmfast.load(str(tmp_path / "model.bin")).fingerprint == model.fingerprint
    with pytest.raises(FileNotFoundError):  # documented: an OSError opening is not wrapped
        hmmfast.load(tmp_path / "missing.npz")


def test_unsavable_models_and_metadata_write_nothing(tmp_path):
    class Custom(hmmfast.CategoricalHMM):
        pass

    custom = Custom(2)
    custom.startprob_, custom.transmat_ = [1, 0], [[1, 0], [0, 1]]
    custom.emissionprob_ = [[1, 0], [0, 1]]
    with pytest.raises(HMMTypeError, match="built-in classes"):
        custom.save(tmp_path / "c.npz")
    with pytest.raises(HMMTypeError, match="built-in classes"):
        custom.fingerprint
    with pytest.raises(NotFittedError):
        hmmfast.CategoricalHMM(2).save(tmp_path / "u.npz")
    model = build("categorical")
    model.algorithm = "bogus"  # load would refuse it, so save does
    with pytest.raises(hmmfast.ParameterError, match="algorithm"):
        model.save(tmp_path / "m.npz")
    model.algorithm = "viterbi"
    for bad, where in [({"a": np.float32(1)}, "['a']"), ({"a": [1, {2: 3}]}, "['a'][1]"),
                       ({"x": float("nan")}, "['x']"), ([1, 2], "dict")]:
        with pytest.raises(HMMTypeError, match="metadata") as info:
            model.save(tmp_path / "m.npz", metadata=bad)
        assert where in str(info.value)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------- fixtures

CAT_X = [0, 1, 1, 2, 3, 3, 0, 2, 1, 1, 0, 3]
CAT_STATES = [0, 0, 1, 1, 2, 2, 0, 1, 1, 1, 0, 2]
CAT_LENGTHS = [8, 4]
CAT_FINGERPRINT = "1fa0946e5ae8c8d09a1c4723b0fff2dc36d7f7fe846ee29e36d16e3fb7ec1967"
GAUSS_FINGERPRINT = "9dede6c9cb2d00358eed81973757497954637d7e03a2e45d314ca6bf0ab9e76e"


def checksum(arr):
    """The documented array checksum, written again: dtype, shape, C-order bytes."""
    arr = np.ascontiguousarray(arr)
    head = f"{arr.dtype.str}|{','.join(str(s) for s in arr.shape)}|".encode()
    return hashlib.sha256(head + arr.tobytes()).hexdigest()


def fingerprint_of(cls, structure, arrays):
    doc = {"fingerprint_version": 1, "class": cls, "structure": structure,
           "arrays": {k: checksum(v) for k, v in arrays.items()}}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def counted(pairs, n_rows, n_cols):
    counts = np.zeros((n_rows, n_cols))
    np.add.at(counts, tuple(np.array(pairs).T), 1.0)
    return counts / counts.sum(axis=1, keepdims=True)


def test_categorical_fixture_loads_with_known_values():
    path = DATA / "categorical_v1.npz"
    model = hmmfast.load(path)
    x, s = np.array(CAT_X), np.array(CAT_STATES)
    starts = np.cumsum([0, *CAT_LENGTHS[:-1]])
    inner = [t for t in range(len(s) - 1) if t + 1 not in starts]
    startprob = np.bincount(s[starts], minlength=3) / len(starts)
    transmat = counted([(s[t], s[t + 1]) for t in inner], 3, 3)
    emissionprob = counted(list(zip(s, x, strict=True)), 3, 4)
    for name, want in [("startprob_", startprob), ("transmat_", transmat),
                       ("emissionprob_", emissionprob)]:
        np.testing.assert_array_equal(getattr(model, name), want)
    log_b = _reference.categorical_log_emissions(emissionprob, x)
    want = _reference.forward(startprob, transmat, log_b, CAT_LENGTHS).sum()
    np.testing.assert_allclose(model.score(x[:, None], CAT_LENGTHS), want, rtol=1e-12)
    header = hmmfast.read_header(path)
    assert header["hmmfast_version"] == "0.1.0" and header["format_version"] == 1
    assert header["metadata"]["anomaly_detector"]["thresholds_"]["anomalous"] == -3.0
    structure = {"n_components": 3, "n_features": 4, "transmat_format": "dense"}
    want_fp = fingerprint_of("CategoricalHMM", structure, {
        "emissionprob_": emissionprob, "startprob_": startprob, "transmat_": transmat})
    assert header["fingerprint"] == model.fingerprint == want_fp == CAT_FINGERPRINT
    h = hashlib.sha256()  # the documented training-data hash, written again
    for label, arr in [("X", x.astype("<i8")[:, None]), ("lengths", np.array(CAT_LENGTHS,
                       dtype="<i8")), ("states", s.astype("<i8"))]:
        h.update(label.encode())
        h.update(f"{arr.dtype.str}|{','.join(map(str, arr.shape))}|".encode() + arr.tobytes())
    fit = header["fit"]
    assert fit["training_data_sha256"] == h.hexdigest() == model._fit_record[
        "training_data_sha256"]
    assert fit["method"] == "fit_supervised" and fit["n_samples"] == 12
    assert fit["n_sequences"] == 2
    np.testing.assert_allclose(fit["log_likelihood"], want, rtol=1e-12)


GAUSS_STARTPROB = [1.0, 0.0, 0.0]
GAUSS_TRANSMAT = [[0.75, 0.25, 0.0], [0.0, 0.5, 0.5], [0.125, 0.0, 0.875]]
GAUSS_MEANS = [[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]]
GAUSS_COVARS = [[[1.0, 0.25], [0.25, 0.5]], [[2.0, 0.0], [0.0, 2.0]],
                [[0.5, -0.125], [-0.125, 1.5]]]
GAUSS_X = [[0.1, -0.2], [0.4, 0.3], [2.5, 1.2], [3.3, 0.1], [-1.0, 3.0], [-2.2, 4.4]]


def test_gaussian_csr_fixture_loads_with_known_values():
    path = DATA / "gaussian_full_csr_v1.npz"
    model = hmmfast.load(path)
    assert sparse.issparse(model.transmat_)
    np.testing.assert_array_equal(model.transmat_.toarray(), GAUSS_TRANSMAT)
    np.testing.assert_array_equal(model.startprob_, GAUSS_STARTPROB)
    np.testing.assert_array_equal(model.means_, GAUSS_MEANS)
    np.testing.assert_array_equal(model.covars_, GAUSS_COVARS)
    np.testing.assert_array_equal(model.means_prior, [[0, 0], [1, 1], [2, 2]])
    assert model.tol == float("-inf") and model.random_state == 7
    assert model.covariance_type == "full"
    X = np.array(GAUSS_X)
    log_b = np.column_stack([multivariate_normal(m, c).logpdf(X)
                             for m, c in zip(GAUSS_MEANS, GAUSS_COVARS, strict=True)])
    want = _reference.forward(GAUSS_STARTPROB, GAUSS_TRANSMAT, log_b).sum()
    np.testing.assert_allclose(model.score(X), want, rtol=1e-12)
    want_states = _reference.viterbi(GAUSS_STARTPROB, GAUSS_TRANSMAT, log_b)[1]
    np.testing.assert_array_equal(model.predict(X), np.ravel(want_states))
    csr = sparse.csr_matrix(np.array(GAUSS_TRANSMAT))
    structure = {"n_components": 3, "n_features": 2, "covariance_type": "full",
                 "transmat_format": "csr", "transmat_nnz": 6}
    want_fp = fingerprint_of("GaussianHMM", structure, {
        "startprob_": np.array(GAUSS_STARTPROB), "transmat_.data": csr.data,
        "transmat_.indices": csr.indices.astype("<i8"),
        "transmat_.indptr": csr.indptr.astype("<i8"), "means_": np.array(GAUSS_MEANS),
        "covars_": np.array(GAUSS_COVARS)})
    assert model.fingerprint == want_fp == GAUSS_FINGERPRINT
    assert hmmfast.read_header(path)["fit"] is None


# ---------------------------------------------------------------------- fingerprint


FIXED = ([0.5, 0.25, 0.25], [[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.0, 0.5, 0.5]],
         [[0.5, 0.5], [0.125, 0.875], [1.0, 0.0]])  # exact binary fractions


def fixed_model(**kw):
    """A CategoricalHMM holding FIXED (``kw``: constructor options)."""
    return categorical(*FIXED, **kw)


def test_fingerprint_is_stable_and_ignores_run_time_settings():
    base = fixed_model().fingerprint
    assert len(base) == 64 and int(base, 16) >= 0
    assert fixed_model().fingerprint == base  # two separately built models
    other = fixed_model(n_threads=1, verbose=True, random_state=5, n_iter=99, tol=1.0,
                        algorithm="map", implementation="log", params="s", init_params="",
                        startprob_prior=3.0, n_init=4)
    assert other.fingerprint == base
    code = ("import hmmfast; m = hmmfast.CategoricalHMM(3); "
            f"m.startprob_, m.transmat_, m.emissionprob_ = {FIXED!r}; print(m.fingerprint)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == base  # another process


@pytest.mark.parametrize("name", ["startprob_", "transmat_", "emissionprob_"])
def test_fingerprint_changes_with_any_parameter(name):
    model = fixed_model()
    value = np.array(getattr(model, name))
    flat = value.reshape(-1)
    flat[1] = np.nextafter(flat[1], 0.0)  # one ulp in one entry (within the row tolerance)
    tweaked = fixed_model()
    setattr(tweaked, name, value)
    assert not np.array_equal(getattr(tweaked, name), getattr(model, name))
    assert tweaked.fingerprint != model.fingerprint


def test_fingerprint_changes_with_structure():
    base = fixed_model()
    sparse_model = fixed_model()
    sparse_model.transmat_ = sparse.csr_matrix(base.transmat_)
    assert sparse_model.fingerprint != base.fingerprint  # documented: storage form counts
    g1, g2 = _truth_gaussian(), _truth_gaussian()
    g2.covariance_type = "spherical"
    g2.covars_ = [1.0, 1.0]
    assert g1.fingerprint != g2.fingerprint
    with pytest.raises(NotFittedError):
        hmmfast.GaussianHMM(2).fingerprint


# ---------------------------------------------------------------------- training data hash


def test_training_data_hash_depends_on_the_data_not_its_container():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=50)

    def digest(X, lengths=None, **kw):
        m = hmmfast.CategoricalHMM(2, n_iter=1, random_state=0)
        return m.fit(X, lengths, **kw)._fit_record["training_data_sha256"]

    base = digest(x[:, None], [20, 30])
    assert digest(x.tolist(), [20, 30]) == base
    assert digest(x.astype(np.int32), np.array([20, 30])) == base
    assert digest(x, None) == digest(x[:, None], [50])
    assert digest(x, [25, 25]) != base
    changed = x.copy()
    changed[7] = (changed[7] + 1) % 3
    assert digest(changed, [20, 30]) != base
    assert digest(x, [20, 30], sample_weight=[1.0, 2.0]) != base


def test_training_data_hash_of_continuous_data_follows_the_definition():
    X = np.random.default_rng(1).normal(size=(40, 2)).astype(np.float32)
    X[5] = np.nan  # a missing frame
    m = hmmfast.GaussianHMM(2, n_iter=1, random_state=0, missing="marginalize")
    got = m.fit(X)._fit_record["training_data_sha256"]
    h = hashlib.sha256()
    x64, lengths = X.astype("<f8"), np.array([40], dtype="<i8")
    h.update(b"X" + b"<f8|40,2|" + x64.tobytes() + b"lengths" + b"<i8|1|" + lengths.tobytes())
    assert got == h.hexdigest()


# ---------------------------------------------------------------------- atomic writes


def _fail_on_call(k, exc):
    calls = {"n": 0}
    real = npy_format.write_array

    def write_array(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == k:
            raise exc
        return real(*args, **kwargs)

    return write_array


@pytest.mark.parametrize("where", ["write_array", "fsync", "replace", "interrupt"])
def test_interrupted_save_leaves_previous_file_intact(where, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = fixed_model()
    old.save(path)
    before = path.read_bytes()
    new = build("categorical")
    if where == "write_array":
        monkeypatch.setattr(npy_format, "write_array", _fail_on_call(3, OSError("disk full")))
    elif where == "interrupt":
        monkeypatch.setattr(npy_format, "write_array", _fail_on_call(2, KeyboardInterrupt()))
    elif where == "fsync":
        monkeypatch.setattr(_io.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("EIO")))
    else:
        monkeypatch.setattr(_io.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises((OSError, KeyboardInterrupt)):
        new.save(path)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary file left
    assert path.read_bytes() == before
    assert hmmfast.load(path).fingerprint == old.fingerprint
    new.save(path)  # and the next save works
    assert hmmfast.load(path).fingerprint == new.fingerprint


def test_failed_first_save_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(_io.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("x")))
    with pytest.raises(OSError):
        fixed_model().save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []
    with pytest.raises(FileNotFoundError):
        fixed_model().save(tmp_path / "no" / "such" / "dir.npz")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_file_mode_follows_umask_and_existing_file(tmp_path):
    path = tmp_path / "m.npz"
    mask = os.umask(0o027)
    try:
        fixed_model().save(path)
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o640
    path.chmod(0o604)
    fixed_model().save(path)
    assert path.stat().st_mode & 0o777 == 0o604
