"""Errors inside partitions name the partition, the user's session id, the step and the
column; the estimator methods refuse Dask collections (issue 28, items 3-4).

Each bad value is planted at a known session and step; the test reads the place back
from the error's attributes and from the front of its message.
"""

import numpy as np
import pytest

import hmmfast
from hmmfast import HMMInputError, HMMTypeError

# the [dask] extra (part of the [test] extra); without it this module skips
pytest.importorskip("dask.dataframe", reason="needs the [dask] extra")
pytest.importorskip("distributed", reason="needs the [dask] extra")
pytest.importorskip("pyarrow", reason="needs the [dask] extra")
import dask
import dask.array as da
import dask.bag as db
import dask.dataframe as dd
import pandas as pd
from dask_data import categorical, cluster_client, frame, gaussian, long_frame, sessions

from hmmfast.distributed import decode_partitions, fit_distributed, score_partitions


@pytest.fixture(scope="module")
def client():
    with cluster_client() as c:
        yield c


def assert_place(exc, partition, session, step, column):
    where = f"partition {partition}, session {session!r}, step {step}"
    if column is not None:
        where += f", column {column!r}"
    assert str(exc).startswith(where + ": "), str(exc)
    assert (exc.partition, exc.session, exc.step, exc.column) == (partition, session, step,
                                                                  column)


def planted_symbols():
    """Sessions 80000.. in 3 partitions; session 80017 (partition 1) has symbol 9 (the
    model has 4) at step 5."""
    model = categorical(1, init_params="")
    seqs = sessions(model, 30, seed=2, low=8, high=20)
    seqs[17] = seqs[17].copy()
    seqs[17][5] = 9
    return model, frame(seqs, np.arange(80000, 80030), cuts=[10, 20])


@pytest.mark.parametrize("call", ["score", "decode", "fit"])
def test_symbol_out_of_range_names_session_step_column(client, call):
    model, ddf = planted_symbols()
    with pytest.raises(HMMInputError) as info:
        if call == "score":
            score_partitions(model, ddf).compute()
        elif call == "decode":
            decode_partitions(model, ddf).compute()
        else:
            fit_distributed(model, ddf)
    assert_place(info.value, 1, 80017, 5, "obs")
    assert "out of range" in str(info.value)


def planted_features(value):
    """Gaussian sessions 'u-0'..'u-24' in 2 partitions, columns x0, x1; ``value`` in
    column x1 of session 'u-17', step 3 (partition 1)."""
    model = gaussian(3)
    rng = np.random.default_rng(4)
    seqs = [model.sample(int(rng.integers(6, 15)), random_state=s)[0] for s in range(25)]
    seqs[17][3, 1] = value
    return model, frame(seqs, [f"u-{i}" for i in range(25)], cuts=[12],
                        obs_cols=("x0", "x1"))


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("call", ["score", "decode", "fit"])
def test_nan_and_inf_name_the_column(client, value, call):
    model, ddf = planted_features(value)
    with pytest.raises(HMMInputError) as info:
        if call == "score":
            score_partitions(model, ddf, obs_col=["x0", "x1"]).compute()
        elif call == "decode":
            decode_partitions(model, ddf, obs_col=["x0", "x1"]).compute()
        else:
            model.set_params(init_params="")
            fit_distributed(model, ddf, obs_col=["x0", "x1"])
    assert_place(info.value, 1, "u-17", 3, "x1")


def test_poisson_bad_count_names_the_column(client):
    model = hmmfast.PoissonHMM(2)
    model.startprob_ = [0.5, 0.5]
    model.transmat_ = [[0.8, 0.2], [0.3, 0.7]]
    model.lambdas_ = [[1.0, 4.0], [6.0, 2.0]]
    rng = np.random.default_rng(5)
    seqs = [rng.poisson(3.0, size=(int(rng.integers(4, 10)), 2)).astype(float)
            for _ in range(12)]
    seqs[8][2, 0] = -1.0
    ddf = frame(seqs, np.arange(12), cuts=[4, 7], obs_cols=("c0", "c1"))
    with pytest.raises(HMMInputError) as info:
        score_partitions(model, ddf, obs_col=["c0", "c1"]).compute()
    assert_place(info.value, 2, 8, 2, "c0")


def test_missing_symbol_names_session_and_step(client):
    model = categorical(6)
    seqs = sessions(model, 8, seed=7, low=5, high=9)
    df = long_frame(seqs, np.arange(500, 508))
    df["obs"] = df["obs"].astype("Int64")
    row = sum(len(s) for s in seqs[:6]) + 2  # session 506, step 2
    df.loc[row, "obs"] = pd.NA
    ddf = dd.from_pandas(df, npartitions=1, sort=False)
    with pytest.raises(HMMInputError) as info:
        score_partitions(model, ddf).compute()
    assert_place(info.value, 0, 506, 2, "obs")


def test_impossible_session_named_in_fit(client):
    model = categorical(8, init_params="")
    emission = np.array(model.emissionprob_)
    emission[:, 3] = 0.0
    model.emissionprob_ = emission / emission.sum(axis=1, keepdims=True)
    seqs = [np.array([[0], [1]]), np.array([[2]]), np.array([[0], [1], [3], [1]])]
    with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
        fit_distributed(model, frame(seqs, ["a", "b", "c"], cuts=[2]))
    assert_place(info.value, 1, "c", 2, None)


# ---------------------------------------------------------------------- item 4


def never_computed(columns):
    """A Dask DataFrame whose only partition raises if anything computes it."""
    def boom():
        raise RuntimeError("the collection was computed")

    meta = pd.DataFrame({c: pd.Series([], dtype="int64") for c in columns})
    return dd.from_delayed([dask.delayed(boom)()], meta=meta, verify_meta=False)


def dask_collections():
    ddf = never_computed(["obs"])
    return {"DataFrame": ddf, "Series": ddf["obs"],
            "Bag": db.from_delayed([dask.delayed(list)([np.array([0, 1])])]),
            "Array": da.zeros((10, 1), dtype=np.int64, chunks=5)}


@pytest.mark.parametrize("method", ["fit", "score", "predict", "decode", "score_samples",
                                    "predict_proba"])
@pytest.mark.parametrize("kind", ["DataFrame", "Series", "Bag", "Array"])
def test_estimator_methods_refuse_dask_collections(method, kind):
    model = categorical(9)
    data = dask_collections()[kind]
    with pytest.raises(HMMTypeError, match="Dask collection") as info:
        getattr(model, method)(data)
    for name in ("fit_distributed", "score_partitions", "decode_partitions"):
        assert name in str(info.value)


@pytest.mark.parametrize("method", ["fit", "score", "decode"])
def test_continuous_estimator_refuses_dask_collections(method):
    model = gaussian(10)
    with pytest.raises(HMMTypeError, match="score_partitions"):
        getattr(model, method)(never_computed(["x0", "x1"]))
    with pytest.raises(HMMTypeError, match="fit_distributed"):
        getattr(model, method)(np.zeros((4, 2)), lengths=da.from_array(np.array([2, 2])))
