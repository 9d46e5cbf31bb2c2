"""How sessions lie across partitions: validate=, empty partitions, known divisions and
the tasks per partition (issue 28, items 5 and 7-9).

Oracles: the single-process calls on the same sessions, model.fit on them, and counts
of the tasks the workers ran (Dask's task stream).
"""

import warnings

import numpy as np
import pytest

import hmmfast
from hmmfast import HMMInputError

# the [dask] extra (part of the [test] extra); without it this module skips
pytest.importorskip("dask.dataframe", reason="needs the [dask] extra")
pytest.importorskip("distributed", reason="needs the [dask] extra")
pytest.importorskip("pyarrow", reason="needs the [dask] extra")
import dask
import dask.bag as db
import dask.dataframe as dd
import distributed
import pandas as pd
from dask_data import categorical, cluster_client, frame, from_parts, long_frame, sessions
from dask_data import write_parquet

from hmmfast.distributed import decode_partitions, fit_distributed, score_partitions
from hmmfast.distributed import _tasks as T

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")  # in dask


@pytest.fixture(scope="module")
def client():
    with cluster_client() as c:
        yield c


def concat(seqs):
    return np.concatenate(seqs), [len(s) for s in seqs]


# ---------------------------------------------------------------------- item 5: validate


def repeated_session():
    """Session 's1' has rows in partitions 0 and 2 (not neighbours)."""
    model = categorical(1, init_params="", n_iter=3)
    seqs = sessions(model, 6, seed=2)
    df = long_frame(seqs, ["s0", "s1", "s2", "s3", "s1", "s5"])
    rows = np.cumsum([0] + [len(s) for s in seqs])
    parts = [df.iloc[rows[0]:rows[2]], df.iloc[rows[2]:rows[4]], df.iloc[rows[4]:]]
    return model, from_parts(parts)


def test_without_validate_a_repeated_session_goes_unseen(client):
    """The documented limit that validate=True lifts: two rows for 's1'."""
    model, ddf = repeated_session()
    got = score_partitions(model, ddf).compute()
    assert list(got.index).count("s1") == 2


@pytest.mark.parametrize("call", ["score", "decode", "fit"])
def test_validate_finds_a_session_in_two_partitions(client, call):
    model, ddf = repeated_session()
    with pytest.raises(HMMInputError, match=r"session 's1' appears in partitions 0 and 2 "
                                            r"\(session_col='session', found by validate"):
        if call == "score":
            score_partitions(model, ddf, validate=True).compute()
        elif call == "decode":
            decode_partitions(model, ddf, validate=True).compute()
        else:
            fit_distributed(model, ddf, validate=True)


def test_validate_passes_good_data(client):
    model = categorical(3)
    seqs = sessions(model, 30, seed=4)
    ddf = frame(seqs, np.arange(30)[::-1], cuts=[8, 19])
    got = score_partitions(model, ddf, validate=True).compute()
    assert np.array_equal(got.to_numpy(), model.score_batch(seqs))
    assert list(got.index) == list(range(29, -1, -1))


def test_unique_sessions_reports_first_repeat():
    ids = [pd.Index([1, 2, 3]), pd.Index([]), pd.Index([4, 5]), pd.Index([6, 2])]
    with pytest.raises(HMMInputError, match="session 2 appears in partitions 0 and 3"):
        T.unique_sessions(ids, "session")
    assert T.unique_sessions(ids[:3], "session")


# ---------------------------------------------------------------------- item 7: empty


def with_empty_partitions():
    """Partitions: empty, sessions 0-4, empty, sessions 5-9, empty."""
    model = categorical(5, init_params="", n_iter=4, tol=-np.inf)
    seqs = sessions(model, 10, seed=6)
    df = long_frame(seqs, np.arange(10))
    cut = sum(len(s) for s in seqs[:5])
    empty = df.iloc[:0]
    return model, seqs, from_parts([empty, df.iloc[:cut], empty, df.iloc[cut:], empty])


def test_empty_partitions_give_empty_results(client):
    model, seqs, ddf = with_empty_partitions()
    scores = score_partitions(model, ddf)
    assert len(scores.partitions[0].compute()) == 0
    got = scores.compute()
    assert list(got.index) == list(range(10))
    assert np.array_equal(got.to_numpy(), model.score_batch(seqs))
    decoded = decode_partitions(model, ddf, posteriors=True, occupancy=True).compute()
    paths = model.decode_batch(seqs)[1]
    assert all(np.array_equal(np.asarray(a), b)
               for a, b in zip(decoded["states"], paths, strict=True))
    bag = db.from_delayed([dask.delayed(list)(seqs[:3]), dask.delayed(list)([])])
    assert score_partitions(model, bag).compute() == model.score_batch(seqs[:3]).tolist()


def test_a_filter_that_empties_partitions(client, tmp_path):
    model = categorical(7)
    seqs = sessions(model, 30, seed=8)
    df = long_frame(seqs, np.arange(30))
    rows = np.cumsum([0] + [len(s) for s in seqs])
    ddf = dd.read_parquet(write_parquet(df, tmp_path / "d", [rows[10], rows[20]]))
    kept = ddf[ddf.session < 10]
    got = score_partitions(model, kept).compute()
    assert np.array_equal(got.to_numpy(), model.score_batch(seqs[:10]))


def test_fit_leaves_empty_partitions_out(client):
    model, seqs, ddf = with_empty_partitions()
    ref = categorical(5, init_params="", n_iter=4, tol=-np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        fit_distributed(model, ddf)
        ref.fit(*concat(seqs))
    np.testing.assert_allclose(model.transmat_, ref.transmat_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(model.monitor_.history, ref.monitor_.history, rtol=1e-12)
    empty = from_parts([long_frame(seqs, np.arange(10)).iloc[:0]] * 2)
    before = model.transmat_
    with pytest.raises(HMMInputError, match=r"every partition of the data \(2\) is empty"):
        fit_distributed(model, empty)
    assert model.transmat_ is before


def test_split_session_across_an_empty_partition_in_fit(client):
    """fit compares the neighbours that hold sessions (all partitions' edges are here)."""
    model = categorical(9, init_params="")
    seqs = sessions(model, 4, seed=10)
    df = long_frame(seqs, np.arange(4))
    cut = len(seqs[0]) + 1  # one row of session 1 in the first partition
    ddf = from_parts([df.iloc[:cut], df.iloc[:0], df.iloc[cut:]])
    with pytest.raises(HMMInputError, match="session 1 is split across partitions 0 and 2"):
        fit_distributed(model, ddf)


# ---------------------------------------------------------------------- items 8-9: graph


@pytest.fixture(scope="module")
def parquet_sessions(tmp_path_factory):
    """12 Parquet files of whole sessions 0..239 (20 per file), sorted by session."""
    model = categorical(11)
    seqs = sessions(model, 240, seed=12, low=3, high=12)
    df = long_frame(seqs, np.arange(240))
    rows = np.cumsum([0] + [len(s) for s in seqs])
    folder = write_parquet(df, tmp_path_factory.mktemp("pq") / "d",
                           [rows[k] for k in range(20, 240, 20)])
    return model, seqs, folder


def executed_tasks(collection):
    with distributed.get_task_stream() as ts:
        collection.compute()
    return len(ts.data)


def test_known_divisions_are_kept(client, parquet_sessions):
    model, seqs, folder = parquet_sessions
    ddf = dd.read_parquet(folder, index="session", calculate_divisions=True)
    assert ddf.known_divisions
    for result in (score_partitions(model, ddf), decode_partitions(model, ddf, validate=True)):
        assert result.divisions == ddf.divisions
        one = result.loc[57]
        assert one.npartitions == 1  # .loc reads the partition that holds the id
        got = one.compute()
        assert list(got.index) == [57]
    assert score_partitions(model, ddf).loc[57].compute().iloc[0] == model.score(seqs[57])


def test_tasks_per_partition_against_a_plain_map_partitions(client, parquet_sessions):
    """Known divisions: one task per partition (reading fused with scoring; a plain
    map_partitions after read_parquet runs two), plus the shipped model, the divisions
    and Dask's final concatenation. Without: at most three small tasks more per
    partition than the plain map_partitions (last id, boundary check and Dask's alias of
    the output), where there were four."""
    model, seqs, folder = parquet_sessions

    def plain(df):
        ids = df.index.to_numpy()
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        lengths = np.diff(np.r_[starts, len(ids)])
        return pd.Series(model.score_batch(df["obs"].to_numpy(), lengths=lengths),
                         index=pd.Index(ids[starts], name="session"), name="score")

    meta = pd.Series(np.empty(0), index=pd.Index([], dtype="int64", name="session"),
                     name="score")
    indexed = dd.read_parquet(folder, index="session", calculate_divisions=True)
    baseline = executed_tasks(indexed.map_partitions(plain, meta=meta))
    for validate in (False, True):
        ours = executed_tasks(score_partitions(model, indexed, validate=validate))
        assert ours == indexed.npartitions + 3 and ours <= baseline + 2
    flat = dd.read_parquet(folder)
    ours = executed_tasks(score_partitions(model, flat))
    assert ours <= baseline + 3 * flat.npartitions + 2
    got = score_partitions(model, flat).compute()
    assert np.array_equal(got.to_numpy(), model.score_batch(seqs))


def test_data_that_contradicts_its_divisions(client):
    model = categorical(13)
    seqs = sessions(model, 6, seed=14)
    df = long_frame(seqs, [0, 1, 2, 3, 4, 5]).set_index("session")
    rows = np.cumsum([0] + [len(s) for s in seqs])
    parts = [df.iloc[:rows[4]], df.iloc[rows[4]:]]  # sessions 0-3, 4-5
    ddf = from_parts(parts, divisions=(0, 3, 5))  # but partition 0 should end before 3
    with pytest.raises(HMMInputError, match=r"partition 0: session 3 lies outside the "
                                            r"data's divisions .* \[0, 3\)"):
        score_partitions(model, ddf).compute()
