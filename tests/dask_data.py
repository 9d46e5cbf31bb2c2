"""Small models, sessions and Dask collections for the hmmfast.distributed tests.

Each test module starts one LocalCluster (``cluster_client``, module scope) and builds its
collections from pandas frames cut at known rows, so a test states exactly which session
sits in which partition.
"""

import contextlib
import itertools

import dask
import dask.dataframe as dd
import distributed
import numpy as np
import pandas as pd

import hmmfast

N, M = 3, 4


@contextlib.contextmanager
def cluster_client():
    """A Client on a LocalCluster of 2 worker processes x 1 thread (the same as a real
    cluster: tasks and their errors travel pickled)."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def categorical(seed=0, n=N, m=M, **kw):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(n, n_features=m, **kw)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n)
    model.emissionprob_ = rng.dirichlet(np.ones(m), size=n)
    return model


def gaussian(seed=0):
    rng = np.random.default_rng(seed)
    model = hmmfast.GaussianHMM(2, covariance_type="diag")
    model.startprob_ = [0.6, 0.4]
    model.transmat_ = [[0.9, 0.1], [0.2, 0.8]]
    model.means_ = rng.normal(0, 3, size=(2, 2))
    model.covars_ = rng.uniform(0.5, 2.0, size=(2, 2))
    return model


def sessions(model, n=40, seed=1, low=3, high=40):
    """``n`` sequences sampled from ``model``, of lengths in [low, high)."""
    rng = np.random.default_rng(seed)
    return [model.sample(int(rng.integers(low, high)), random_state=seed * 1000 + s)[0]
            for s in range(n)]


def long_frame(seqs, ids, obs_cols=("obs",)):
    """A pandas DataFrame, one row per observation: "session" and the observation
    column(s) (symbols as int64)."""
    lengths = [len(s) for s in seqs]
    X = np.concatenate(seqs)
    df = pd.DataFrame({"session": np.repeat(np.asarray(ids), lengths)})
    for d, c in enumerate(obs_cols):
        df[c] = X[:, d]
    return df


def frame(seqs, ids, cuts, obs_cols=("obs",)):
    """A Dask DataFrame cut into partitions after the sessions in ``cuts``."""
    df = long_frame(seqs, ids, obs_cols)
    rows = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    bounds = [0, *[rows[c] for c in cuts], len(df)]
    return from_parts([df.iloc[a:b] for a, b in itertools.pairwise(bounds)])


def from_parts(parts, divisions=None):
    """A Dask DataFrame whose partitions are exactly ``parts`` (pandas frames)."""
    return dd.from_delayed([dask.delayed(p) for p in parts], meta=parts[0].iloc[:0],
                           divisions=divisions, verify_meta=False)


def write_parquet(df, folder, cuts):
    """``df`` as Parquet files cut at the rows ``cuts`` (part-0, part-1, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [0, *cuts, len(df)]
    for k, (a, b) in enumerate(itertools.pairwise(bounds)):
        df.iloc[a:b].to_parquet(folder / f"part-{k}.parquet", index=False)
    return folder
