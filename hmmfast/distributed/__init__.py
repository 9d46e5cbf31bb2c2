"""Scoring, decoding and Baum-Welch on a Dask cluster (extra ``hmmfast[dask]``).

Example::

    from distributed import Client, LocalCluster
    import dask.dataframe as dd
    from hmmfast.distributed import fit_distributed, score_partitions

    client = Client(LocalCluster(n_workers=2))       # or Client("tcp://scheduler:8786")
    ddf = dd.read_parquet("clicks/")                 # columns: session, obs
    fit_distributed(model, ddf)                      # computes; returns the model
    scores = score_partitions(model, ddf).compute()  # Series indexed by session id

Data is a Dask Bag whose items are sequences, or a Dask DataFrame with one row per
observation: a session-id column (``session_col``, or the index of that name) and the
observation column(s) (``obs_col``). **Every session lies within one partition, its rows
consecutive and in time order** (write the files by session, or shuffle on the session
column and sort each partition by session and time). This is checked where it is cheap:
a session reappearing within a partition, or split at the boundary between two
partitions, is an error naming it, and so is a column of the wrong dtype; with the
session ids as a sorted index of known divisions each partition checks its range;
``validate=True`` also compares every id across partitions. Empty partitions give empty
results.

Each partition runs the batch kernels (one call for all its sessions); results are lazy
Dask collections aligned with the input (Bag in, Bag out in the input's order; DataFrame in,
one row per session indexed by its id, keeping known divisions; decoded paths are Arrow
list columns, see _arrow.py). The model's parameters travel inside the task graph (they
are small), so a worker that dies loses nothing Dask cannot recompute. ``fit_distributed``
keeps each converted partition on the workers for the whole fit and, per iteration,
sends back only the sufficient statistics, summed in a tree.

An error inside a partition names the partition, the user's session id, the step and
(continuous data) the column, in its message and as attributes (_places.py).

Families: CategoricalHMM, GaussianHMM (every covariance type), GMMHMM, PoissonHMM and
MultinomialHMM, and subclasses (hmmlearn-style custom emissions included). Semi-supervised fits (``states=``)
are not distributed.
"""

try:
    import dask
    import dask.bag
    import dask.dataframe  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        f"hmmfast.distributed needs Dask ({exc}); install the extra: "
        'pip install "hmmfast[dask]"') from exc

from ._em import fit_distributed
from ._inference import decode_partitions, score_partitions

__all__ = ["decode_partitions", "fit_distributed", "score_partitions"]
