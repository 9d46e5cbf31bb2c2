"""decode_partitions' results as Arrow list columns: exact meta, Parquet, posteriors and
occupancy (issue 28, items 1-2).

Oracles: the single-process calls on the same sessions (decode_batch, predict_proba:
equal exactly) and counting the decoded path's states.
"""

import pickle

import numpy as np
import pytest


# the [dask] extra (part of the [test] extra); without it this module skips
pytest.importorskip("dask.dataframe", reason="needs the [dask] extra")
pytest.importorskip("distributed", reason="needs the [dask] extra")
pytest.importorskip("pyarrow", reason="needs the [dask] extra")
import dask.bag as db
import dask.dataframe as dd
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dask_data import N, categorical, cluster_client, frame, gaussian, sessions

from hmmfast.distributed import decode_partitions

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")  # in dask
LIST_INT = pd.ArrowDtype(pa.list_(pa.int64()))


@pytest.fixture(scope="module")
def client():
    with cluster_client() as c:
        yield c


@pytest.fixture(scope="module")
def data():
    model = categorical(0)
    seqs = sessions(model, 40, seed=2)
    ids = [f"user-{i}" for i in np.random.default_rng(3).permutation(len(seqs))]
    return model, seqs, ids, frame(seqs, ids, cuts=[9, 22, 31])


def test_states_column_is_arrow_with_exact_meta(client, data):
    model, seqs, ids, ddf = data
    result = decode_partitions(model, ddf)
    assert result["states"].dtype == LIST_INT
    got = result.compute()
    assert got.dtypes.to_dict() == result.dtypes.to_dict()  # meta = what the partitions hold
    assert list(got.index) == ids
    logprob, paths = model.decode_batch(seqs)
    assert np.array_equal(got["logprob"].to_numpy(), logprob)
    for row, path in zip(got["states"], paths, strict=True):
        assert np.array_equal(np.asarray(row), path)


def test_to_parquet_without_a_schema(client, data, tmp_path):
    model, seqs, ids, ddf = data
    decode_partitions(model, ddf, posteriors=True, occupancy=True).to_parquet(tmp_path / "out")
    # pandas' default (NumPy) backend cannot rebuild an Arrow list dtype from the pandas
    # metadata (pandas issue 57411): read with the pyarrow backend, or with pyarrow
    back = dd.read_parquet(tmp_path / "out", dtype_backend="pyarrow").compute()
    table = pq.read_table(tmp_path / "out")
    assert table.schema.field("states").type == pa.list_(pa.int64())
    assert table.schema.field("posteriors").type == pa.list_(pa.list_(pa.float64()))
    logprob, paths = model.decode_batch(seqs)
    assert list(back.index) == ids
    assert np.array_equal(back["logprob"].to_numpy(dtype=float), logprob)
    for row, path, seq in zip(back.itertuples(), paths, seqs, strict=True):
        assert np.array_equal(np.asarray(row.states), path)
        assert np.array_equal(np.array(row.posteriors), model.predict_proba(seq))


def test_posteriors_and_occupancy_per_session(client, data):
    model, seqs, _, ddf = data
    got = decode_partitions(model, ddf, algorithm="viterbi", posteriors=True,
                            occupancy=True).compute()
    assert list(got.columns) == ["logprob", "states", "posteriors", "occupancy"]
    for row, seq in zip(got.itertuples(), seqs, strict=True):
        post = np.array(row.posteriors)
        assert post.shape == (len(seq), N)
        assert np.array_equal(post, model.predict_proba(seq))  # the same kernel, per session
        states = np.asarray(row.states)
        expected = np.bincount(states, minlength=N) / len(states)
        assert np.array_equal(np.asarray(row.occupancy), expected)


def test_marked_session_gets_empty_lists(client):
    model = categorical(4)
    emission = np.array(model.emissionprob_)
    emission[:, 3] = 0.0  # symbol 3 impossible
    model.emissionprob_ = emission / emission.sum(axis=1, keepdims=True)
    seqs = [np.array([[0], [1], [2]]), np.array([[0], [3], [1]]), np.array([[2], [2]]),
            np.array([[1], [0]])]
    ddf = frame(seqs, [10, 11, 12, 13], cuts=[2])
    got = decode_partitions(model, ddf, errors="mark", posteriors=True,
                            occupancy=True).compute()
    assert got.loc[11, "logprob"] == -np.inf
    assert [len(got.loc[11, c]) for c in ("states", "posteriors", "occupancy")] == [0, 0, 0]
    logprob, paths = model.decode_batch(seqs, errors="mark")
    for k, sid in enumerate([10, 12, 13]):
        s = [0, 2, 3][k]
        assert got.loc[sid, "logprob"] == logprob[s]
        assert np.array_equal(np.asarray(got.loc[sid, "states"]), paths[s])
        assert np.array_equal(np.array(got.loc[sid, "posteriors"]),
                              model.predict_proba(seqs[s]))


def test_bag_items_carry_posteriors_and_occupancy(client, data):
    model, seqs, _, _ = data
    items = decode_partitions(model, db.from_sequence(seqs, npartitions=3), posteriors=True,
                              occupancy=True).compute()
    logprob, paths = model.decode_batch(seqs)
    for (lp, states, post, occ), seq, l0, p0 in zip(items, seqs, logprob, paths, strict=True):
        assert lp == l0 and np.array_equal(states, p0)
        assert np.array_equal(post, model.predict_proba(seq))
        assert np.array_equal(occ, np.bincount(p0, minlength=N) / len(p0))


def test_gaussian_feature_columns_posteriors(client):
    model = gaussian(5)
    rng = np.random.default_rng(6)
    seqs = [model.sample(int(rng.integers(5, 25)), random_state=s)[0] for s in range(20)]
    ddf = frame(seqs, np.arange(100, 120), cuts=[7, 13], obs_cols=("x0", "x1"))
    got = decode_partitions(model, ddf, obs_col=["x0", "x1"], posteriors=True).compute()
    paths = model.decode_batch(seqs)[1]
    for row, seq, path in zip(got.itertuples(), seqs, paths, strict=True):
        assert np.array_equal(np.asarray(row.states), path)
        assert np.array_equal(np.array(row.posteriors), model.predict_proba(seq))


def test_result_pickles_as_buffers(client, data):
    """What makes compute() slow when paths are objects: every session's array pickled
    on its own (about 100 bytes of overhead each). The Arrow column pickles as its
    buffers: 8 bytes a step and 4 a session, plus a constant."""
    model, seqs, _, _ = data
    short = sessions(model, 2000, seed=7, low=3, high=8)
    ddf = frame(short, np.arange(len(short)), cuts=[1000])
    part = decode_partitions(model, ddf).partitions[0].compute()
    n_steps = sum(len(s) for s in short[:1000])
    payload = 8 * n_steps + 4 * 1000 + 8 * 1000 + 8 * 1000  # states, offsets, logprob, ids
    assert len(pickle.dumps(part, protocol=5)) < payload + 4000
