"""The lazy results of a DataFrame: one task per partition, and the checks across them.

Each partition's task reads it (the collection's own tasks, fused by Dask), converts it,
checks it and runs the kernels (``func``, a function of _tasks.py). What it cannot check
alone is a session whose rows sit in two partitions; how that is ruled out depends on
what is known about the data:

* The session ids are the index and its divisions are known (``read_parquet(...,
  index=session, calculate_divisions=True)``, ``set_index``): each partition checks that
  its ids are sorted and lie within its division range (two comparisons, in the
  partition's task). Nothing else runs: one task per partition (fewer than a plain
  ``map_partitions`` after ``read_parquet``, which Dask runs as two), and the result
  keeps the divisions (``.loc[id]`` reads one partition). ``validate=True`` costs
  nothing more: the ranges do not overlap.
* Otherwise neighbouring partitions are compared at their boundary: a tiny task per
  partition takes the last id of its result, and the partition's output task compares
  it with the next partition's first id (the usual mistake, files cut by row count, is
  a session split at a boundary). The results stream (partition p waits only for p - 1).
* ``validate=True`` (no divisions): every partition's ids go to one task, which checks
  that no id is in two partitions; every output waits for it (nothing streams) and that
  task holds all the ids at once (8 bytes per integer id).
"""

import uuid

import dask.dataframe as dd
from dask._task_spec import List, Task, TaskRef

from . import _tasks as T
from ._source import dask_value


def frame_results(func, src, meta, args, validate):
    """``func(df, *args, divisions, partition_info=...)`` mapped over the partitions of
    ``src`` (a DataFrame Source), with the checks above; a lazy DataFrame or Series.

    ``divisions`` (the data's known divisions, or None) reaches every task as one key of
    the graph, so the graph grows by one value per partition, not per pair.
    """
    if src.divisions is not None:
        divisions = dask_value(src.divisions, "hmmfast-divisions")
        # optimized now, so the read and this task are fused into one (Dask's compute()
        # does not fuse them: read_parquet + map_partitions runs two tasks per partition)
        return src.collection.map_partitions(func, *args, divisions, meta=meta,
                                             align_dataframes=False,
                                             enforce_metadata=False).optimize()
    results = src.collection.map_partitions(func, *args, None, meta=meta,
                                            align_dataframes=False,
                                            enforce_metadata=False).optimize()
    graph = dict(results.__dask_graph__())
    keys = list(results.__dask_keys__())
    token = uuid.uuid4().hex
    col = src.spec.session_col
    outputs = [(f"hmmfast-checked-{token}", p) for p in range(len(keys))]
    if validate:
        ids = [(f"hmmfast-ids-{token}", p) for p in range(len(keys))]
        unique = f"hmmfast-validate-{token}"
        for p, key in enumerate(keys):
            graph[ids[p]] = Task(ids[p], T.session_ids, TaskRef(key))
        graph[unique] = Task(unique, T.unique_sessions, List(*map(TaskRef, ids)), col)
        for p, key in enumerate(keys):
            graph[outputs[p]] = Task(outputs[p], T.released, TaskRef(key), TaskRef(unique))
    else:
        lasts = [(f"hmmfast-last-{token}", p) for p in range(len(keys))]
        for p, key in enumerate(keys):
            graph[lasts[p]] = Task(lasts[p], T.last_id, TaskRef(key))
            previous = TaskRef(lasts[p - 1]) if p else None
            graph[outputs[p]] = Task(outputs[p], T.check_boundary, TaskRef(key), previous,
                                     p, col)
    return dd.from_graph(graph, meta, (None,) * (len(keys) + 1), outputs, "hmmfast-result")
