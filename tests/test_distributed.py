"""hmmfast.distributed on a real LocalCluster (2 worker processes).

Oracles: the single-process batch calls (score_batch / decode_batch: equal exactly) and
``model.fit`` on the concatenated sessions (equal to 1e-10 for the same start).
"""

import itertools
import os
import signal
import warnings

import numpy as np
import pytest
from factories import needs, random_categorical, sessions

import hmmfast
from hmmfast import HMMInputError, HMMTypeError, ImpossibleSequenceError, ParameterError

# every test but the one about imports needs the [dask] extra (in [test]); without it
# those tests skip, one by one
needs_dask = needs("dask", "distributed", "pandas")
try:
    import dask
    import dask.bag as db
    import dask.dataframe as dd
    import distributed
    import pandas as pd

    from hmmfast.distributed import decode_partitions, fit_distributed, score_partitions
except ImportError:
    pass

N, M = 3, 4


def small_model(seed=0, **kw):
    """This file's model: N states over M symbols (``kw``: constructor options)."""
    return random_categorical(seed, N, M, n_features=M, **kw)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def frame(seqs, ids, cuts, obs_cols=("obs",)):
    """A Dask DataFrame, one row per observation, cut into partitions after the
    sessions in ``cuts`` (session indices)."""
    lengths = [len(s) for s in seqs]
    X = np.concatenate(seqs)
    df = pd.DataFrame({"session": np.repeat(np.asarray(ids), lengths)})
    for d, c in enumerate(obs_cols):
        df[c] = X[:, d]
    rows = np.concatenate([[0], np.cumsum(lengths)])
    bounds = [0, *[rows[c] for c in cuts], len(df)]
    return from_parts([df.iloc[a:b] for a, b in itertools.pairwise(bounds)])


def from_parts(parts):
    return dd.from_delayed([dask.delayed(p) for p in parts], meta=parts[0].iloc[:0],
                           verify_meta=False)


def concat(seqs):
    return np.concatenate(seqs), [len(s) for s in seqs]


# ---------------------------------------------------------------------- packaging


def test_optional_dependency(import_report):
    """`import hmmfast` never imports dask; without dask the module names the extra."""
    assert "dask" not in import_report["hmmfast"]
    assert "distributed" not in import_report["hmmfast"]
    message = import_report["hmmfast.distributed without dask"] or ""
    assert 'pip install "hmmfast[dask]"' in message


# ---------------------------------------------------------------------- inference


@needs_dask
def test_score_decode_bag_equal_single_process(client):
    model = small_model()
    seqs = sessions(model, 40, 1, 3, 40)
    bag = db.from_sequence(seqs, npartitions=3)
    scores = score_partitions(model, bag)
    assert isinstance(scores, db.Bag)
    assert scores.compute() == model.score_batch(seqs).tolist()
    decoded = decode_partitions(model, bag).compute()
    logprob, paths = model.decode_batch(seqs)
    assert [d[0] for d in decoded] == logprob.tolist()
    assert all(np.array_equal(d[1], p) for d, p in zip(decoded, paths, strict=True))


@needs_dask
def test_score_decode_frame_equal_single_process(client):
    model = small_model()
    seqs = sessions(model, 40, 1, 3, 40)
    ids = [f"user-{i}" for i in np.random.default_rng(2).permutation(len(seqs))]  # unsorted
    ddf = frame(seqs, ids, cuts=[7, 21, 30])
    scores = score_partitions(model, ddf)
    assert isinstance(scores, dd.Series)
    got = scores.compute()
    assert list(got.index) == ids and got.index.name == "session"
    assert np.array_equal(got.to_numpy(), model.score_batch(seqs))
    decoded = decode_partitions(model, ddf, algorithm="map").compute()
    logprob, paths = model.decode_batch(seqs, algorithm="map")
    assert list(decoded.index) == ids
    assert np.array_equal(decoded["logprob"].to_numpy(), logprob)
    assert all(np.array_equal(a, b) for a, b in zip(decoded["states"], paths, strict=True))


@needs_dask
@needs("pyarrow")
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index")  # in dask
def test_parquet_files_session_column_or_index(client, tmp_path):
    model = small_model(3)
    seqs = sessions(model, 30, 4, 3, 40)
    ids = np.arange(100, 130, dtype=np.int64)
    lengths = [len(s) for s in seqs]
    df = pd.DataFrame({"session": np.repeat(ids, lengths),
                       "obs": np.concatenate(seqs)[:, 0].astype(np.int32)})
    rows = np.concatenate([[0], np.cumsum(lengths)])
    for k, (a, b) in enumerate([(0, 10), (10, 18), (18, 30)]):
        df.iloc[rows[a]:rows[b]].to_parquet(tmp_path / f"part-{k}.parquet", index=False)
    expected = model.score_batch(seqs)
    for ddf in (dd.read_parquet(tmp_path), dd.read_parquet(tmp_path, index="session")):
        got = score_partitions(model, ddf).compute()
        assert list(got.index) == ids.tolist()
        assert np.array_equal(got.to_numpy(), expected)


@needs_dask
def test_gaussian_feature_columns(client):
    rng = np.random.default_rng(5)
    model = hmmfast.GaussianHMM(2, covariance_type="full")
    model.startprob_ = [0.6, 0.4]
    model.transmat_ = [[0.9, 0.1], [0.2, 0.8]]
    model.means_ = [[0.0, 1.0], [3.0, -1.0]]
    model.covars_ = [[[1.0, 0.3], [0.3, 1.0]], [[2.0, 0.0], [0.0, 0.5]]]
    seqs = [model.sample(int(rng.integers(5, 30)), random_state=s)[0] for s in range(25)]
    ddf = frame(seqs, np.arange(25), cuts=[9, 16], obs_cols=("x0", "x1"))
    got = score_partitions(model, ddf, obs_col=["x0", "x1"]).compute()
    assert np.array_equal(got.to_numpy(), model.score_batch(seqs))
    dec = decode_partitions(model, ddf, obs_col=["x0", "x1"]).compute()
    paths = model.decode_batch(seqs)[1]
    assert all(np.array_equal(a, b) for a, b in zip(dec["states"], paths, strict=True))


# ---------------------------------------------------------------------- fitting


def _assert_same_fit(a, b, tol=1e-10):
    for name in a._param_shapes(a._n()):
        np.testing.assert_allclose(np.asarray(getattr(a, name)), np.asarray(getattr(b, name)),
                                   rtol=0, atol=tol, err_msg=name)
    np.testing.assert_allclose(a.monitor_.history, b.monitor_.history, rtol=1e-12)
    assert (a.monitor_.iter, a.monitor_.converged) == (b.monitor_.iter, b.monitor_.converged)


def _continuous_data(family, seed=6):
    rng = np.random.default_rng(seed)
    if family == "poisson":
        return [rng.poisson(rng.uniform(1, 8), size=(int(rng.integers(10, 40)), 2))
                for _ in range(30)]
    return [rng.normal(rng.integers(-3, 4), 1.0, size=(int(rng.integers(10, 40)), 2)) + 5
            for _ in range(30)]


FAMILIES = {
    "gaussian-diag": lambda: hmmfast.GaussianHMM(3, covariance_type="diag"),
    "gaussian-full": lambda: hmmfast.GaussianHMM(3, covariance_type="full"),
    "gaussian-tied": lambda: hmmfast.GaussianHMM(3, covariance_type="tied"),
    "gmm": lambda: hmmfast.GMMHMM(2, n_mix=2),
    "poisson": lambda: hmmfast.PoissonHMM(3),
}


@needs_dask
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fit_equals_fit_continuous(client, family):
    """Same random_state and initialisation (init_sessions=None: all sessions)."""
    seqs = _continuous_data(family)
    ours, ref = FAMILIES[family](), FAMILIES[family]()
    for m in (ours, ref):
        m.set_params(random_state=3, n_iter=8, tol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        fit_distributed(ours, db.from_sequence(seqs, npartitions=4), init_sessions=None)
        ref.fit(*concat(seqs))
    _assert_same_fit(ours, ref)


@needs_dask
def test_fit_equals_fit_categorical_frame(client):
    """Same initial parameters (init_params=""), a DataFrame, per-session weights."""
    truth = small_model(7)
    seqs = sessions(truth, 60, 8, 3, 40)
    weights = np.random.default_rng(9).uniform(0.2, 3.0, len(seqs))
    ddf = frame(seqs, np.arange(len(seqs)), cuts=[11, 30, 47])
    ddf["w"] = ddf["session"].map(dict(enumerate(weights)), meta=("w", "f8"))
    ours, ref = small_model(10, init_params="", n_iter=8, tol=1e-8), small_model(
        10, init_params="", n_iter=8, tol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        fit_distributed(ours, ddf, sample_weight="w")
        ref.fit(*concat(seqs), sample_weight=weights)
    _assert_same_fit(ours, ref)


@needs_dask
def test_fit_restarts_and_sampled_init(client):
    truth = small_model(11)
    seqs = sessions(truth, 40, 12, 3, 40)

    def make():
        return hmmfast.CategoricalHMM(N, random_state=4, n_init=3, n_iter=5)

    ours, ref = make(), make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        fit_distributed(ours, db.from_sequence(seqs, npartitions=3), init_sessions=None)
        ref.fit(*concat(seqs))
    _assert_same_fit(ours, ref)
    assert ours.n_features == ref.n_features == M
    # initialised from a sample (the first 5 sessions): a valid fit, not fit's start
    sampled = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        fit_distributed(sampled, db.from_sequence(seqs, npartitions=3), init_sessions=5)
    assert np.all(np.diff(sampled.monitor_.history) > -1e-9)


@needs_dask
def test_progress_callback_and_verbose(client, capsys):
    model = small_model(init_params="", n_iter=3, tol=-np.inf, verbose=True)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        fit_distributed(model, db.from_sequence(sessions(model, 20, 1, 3, 40),
                                                npartitions=2),
                        callback=lambda mon: seen.append((mon.iter, len(mon.history))))
    assert seen == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert capsys.readouterr().err.count("hmmfast: iteration") == 4


def kill_once_class():
    """A CategoricalHMM whose E-step kills the worker process running it, once, after the
    file ``armed`` appears (the fast path is kept: ``_accumulate_fast`` is not one of the
    hooks that switch it off). A local class, so it travels by value to the workers."""

    class KillOnce(hmmfast.CategoricalHMM):
        def _accumulate_fast(self, stats, data, row_counts, posteriors):
            folder = self.__dict__["_marker_dir"]
            if os.path.exists(os.path.join(folder, "armed")):
                try:
                    os.close(os.open(os.path.join(folder, "killed"), os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    pass
                else:
                    os.kill(os.getpid(), signal.SIGKILL)
            super()._accumulate_fast(stats, data, row_counts, posteriors)

    return KillOnce


@needs_dask
def test_worker_killed_mid_iteration(client, tmp_path):
    truth = small_model(13)
    seqs = sessions(truth, 60, 14, 3, 40)
    bag = db.from_sequence(seqs, npartitions=6)

    def make(cls):
        model = cls(N, n_features=M, init_params="", n_iter=6, tol=-np.inf)
        start = small_model(15)
        model.startprob_, model.transmat_, model.emissionprob_ = (
            start.startprob_, start.transmat_, start.emissionprob_)
        object.__setattr__(model, "_marker_dir", str(tmp_path))
        return model

    def arm(monitor):  # after the second objective: the next E-step kills a worker
        if len(monitor.history) == 2:
            (tmp_path / "armed").touch()

    cls = kill_once_class()
    killed, clean, ref = make(cls), make(cls), make(hmmfast.CategoricalHMM)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        fit_distributed(clean, bag)
        fit_distributed(killed, bag, callback=arm)
        ref.fit(*concat(seqs))
    assert (tmp_path / "killed").exists()
    for name in ("startprob_", "transmat_", "emissionprob_"):
        assert np.array_equal(getattr(killed, name), getattr(clean, name))
    assert killed.monitor_.history == clean.monitor_.history
    _assert_same_fit(killed, ref)
    client.wait_for_workers(2, timeout=30)


@needs_dask
def test_checkpoint_every_iteration_and_resume(client, tmp_path):
    truth = small_model(16)
    seqs = sessions(truth, 40, 17, 3, 40)
    bag = db.from_sequence(seqs, npartitions=3)
    key = "hmmfast.distributed"

    def make():
        return hmmfast.CategoricalHMM(N, n_features=M, random_state=5, n_iter=6,
                                      tol=-np.inf)

    path = tmp_path / "full.npz"
    written = []

    def watch(monitor):  # the file holds the parameters after monitor.iter M-steps
        if path.exists():
            written.append(hmmfast.read_header(path)["metadata"][key]["iter"])

    full = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        fit_distributed(full, bag, checkpoint=path, callback=watch)
    assert written == [1, 2, 3, 4, 5, 6]
    header = hmmfast.read_header(path)
    assert header["metadata"][key]["done"]
    assert header["metadata"][key]["history"] == full.monitor_.history
    assert header["fit"]["method"] == "fit_distributed"
    assert header["fit"]["n_sequences"] == len(seqs)
    assert header["fit"]["n_samples"] == sum(len(s) for s in seqs)
    loaded = hmmfast.load(path)
    assert np.array_equal(loaded.transmat_, full.transmat_)

    part = tmp_path / "part.npz"

    def crash(monitor):
        if len(monitor.history) == 4:
            raise RuntimeError("simulated crash")

    interrupted = make()
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_distributed(interrupted, bag, checkpoint=part, callback=crash)
    assert not hasattr(interrupted, "transmat_")  # rolled back
    assert hmmfast.read_header(part)["metadata"][key]["iter"] == 3
    resumed = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        fit_distributed(resumed, bag, checkpoint=part, resume=True)
    for name in ("startprob_", "transmat_", "emissionprob_"):
        assert np.array_equal(getattr(resumed, name), getattr(full, name))
    assert resumed.monitor_.history == full.monitor_.history
    assert resumed.monitor_.iter == full.monitor_.iter


# ---------------------------------------------------------------------- errors


@needs_dask
def test_session_split_across_partitions(client):
    model = small_model()
    seqs = sessions(model, 10, 1, 3, 40)
    lengths = [len(s) for s in seqs]
    df = frame(seqs, np.arange(10), cuts=[]).compute()
    cut = sum(lengths[:4]) + 1  # one row of session 4 in partition 0
    ddf = from_parts([df.iloc[:cut], df.iloc[cut:]])
    scores = score_partitions(model, ddf)  # lazy: nothing read yet
    with pytest.raises(HMMInputError, match="session 4 is split across partitions 0 and 1"):
        scores.compute()
    with pytest.raises(HMMInputError, match="split across partitions 0 and 1"):
        decode_partitions(model, ddf).compute()
    fitted = small_model(1, init_params="")
    before = fitted.transmat_
    with pytest.raises(HMMInputError, match="split across partitions 0 and 1"):
        fit_distributed(fitted, ddf)
    assert fitted.transmat_ is before


@needs_dask
def test_session_not_contiguous_within_partition(client):
    model = small_model()
    df = pd.DataFrame({"session": ["a", "a", "b", "a"], "obs": [0, 1, 2, 3]})
    with pytest.raises(HMMInputError, match=r"partition 0: the rows of session 'a' are not "
                                            r"contiguous .* row 0 .* row 3"):
        score_partitions(model, from_parts([df])).compute()


@needs_dask
def test_dtypes_and_columns(client):
    model = small_model()
    df = pd.DataFrame({"session": [1, 1, 2], "obs": [0.0, 1.0, 2.0]})
    with pytest.raises(HMMTypeError, match="column 'obs' .* integer symbols .* got dtype "
                                           "float64"):
        score_partitions(model, from_parts([df]))
    good = pd.DataFrame({"session": [1, 1, 2], "obs": [0, 1, 2]})
    mixed = from_parts([good, df.assign(session=[3, 3, 4])])  # meta int64, partition 1 float
    with pytest.raises(HMMTypeError, match="partition 1: column 'obs' .* float64, expected "
                                           "integer symbols .* meta says int64"):
        score_partitions(model, mixed).compute()
    with pytest.raises(HMMInputError, match="no column 'user' .*session_col"):
        score_partitions(model, from_parts([good]), session_col="user")
    with pytest.raises(HMMInputError, match=r"no column 'event' \(obs_col\)"):
        decode_partitions(model, from_parts([good]), obs_col="event")
    with pytest.raises(HMMTypeError, match="Dask Bag of sequences or a Dask DataFrame.*"
                                           "pandas.*DataFrame"):
        score_partitions(model, good)
    bag = db.from_sequence([np.array([0, 1]), np.array([0.5, 1.5])], npartitions=2)
    with pytest.raises(HMMTypeError, match="partition 1: sequence 0: .*integer symbols"):
        score_partitions(model, bag).compute()


@needs_dask
def test_bad_settings_and_data_in_fit(client):
    model = small_model(init_params="")
    bag = db.from_sequence(sessions(model, 6, 1, 3, 40), npartitions=2)
    with pytest.raises(ParameterError, match="resume=True needs checkpoint"):
        fit_distributed(model, bag, resume=True)
    with pytest.raises(HMMInputError, match="sample_weight has 1 partitions but the data "
                                            "has 2"):
        fit_distributed(model, bag, sample_weight=db.from_sequence([1.0] * 6, npartitions=1))
    weights = db.from_sequence([1.0, 1.0, 1.0, 1.0, 1.0], npartitions=2)
    with pytest.raises(HMMInputError, match="partition 1: sample_weight has 2 weights for 3"):
        fit_distributed(model, bag, sample_weight=weights)
    seqs = [np.array([[0], [1]]), np.array([[2]]), np.array([[0], [1], [2]]), np.array([[3]])]
    changing = frame(seqs, ["a", "b", "c", "d"], cuts=[2])
    # one weight per session, except session 'c' (its rows 1, 2, 3)
    changing["w"] = (changing["obs"] * (changing["session"] == "c")).astype("f8") + 1.0
    with pytest.raises(HMMInputError, match="partition 1, session 'c', step 1, column 'w': "
                                            "sample_weight changes within the session"):
        fit_distributed(model, changing, sample_weight="w")
    impossible = small_model(init_params="")
    emission = np.array(impossible.emissionprob_)
    emission[:, 3] = 0.0
    impossible.emissionprob_ = emission / emission.sum(axis=1, keepdims=True)
    seqs = [np.array([0, 1]), np.array([2]), np.array([0, 3, 1])]
    ddf = frame([s[:, None] for s in seqs], ["a", "b", "c"], cuts=[2])
    with pytest.raises(ImpossibleSequenceError, match="partition 1, session 'c', step 1: "):
        fit_distributed(impossible, ddf)
    unfitted = hmmfast.CategoricalHMM(2)
    with pytest.raises(hmmfast.NotFittedError):
        score_partitions(unfitted, bag)
