"""Scoring, decoding and one EM iteration on a Dask LocalCluster against one process,
same files; and the tasks per partition against a plain map_partitions.

Usage: python bench/bench_dask.py [--sessions 200000] [--partitions P] [--repeats 3]
                                  [--task-files 400] [--dir /tmp/hmmfast_dask_bench]
                                  [--out bench/results/dask.md]

Data: ``--sessions`` sessions of 40-60 observations (mean 50) drawn from a CategoricalHMM
(N=5, M=10), written once as ``--partitions`` Parquet files (columns ``session`` int64,
``obs`` int32; whole sessions per file; default one file per 25,000 sessions) under
``--dir`` and reused while the sizes match. The issue's size: ``--sessions 1000000``.

1. Scoring every session. Dask: a LocalCluster of 2 worker processes x 1 thread reads the
   files itself (``dask.dataframe.read_parquet``) and runs ``score_partitions`` (one
   ``score_batch`` per partition); the Series of scores comes back to the client. One
   process: read each file (``pandas.read_parquet``), convert it with the same vectorised
   code, ``score_batch(X, lengths=...)`` on 2 threads. Results checked equal (==). The
   split: reading, conversion and kernels (Dask: the workers' fine performance metrics,
   in seconds per worker), and what is left of the wall time (Dask: the engine -
   scheduling, transfers, the result's trip to the client, idle workers).
2. Decoding every session (Viterbi paths). ``compute()``: Dask brings the DataFrame of
   paths (an Arrow list column) to the client; one process reads each file and calls
   ``decode_batch(X, lengths=...)`` on 2 threads (a list of arrays). ``to_parquet``: Dask
   writes ``decode_partitions(...)`` with no schema; one process decodes each file, builds
   the same Arrow column and writes one Parquet file per input file. Paths checked equal.
3. One EM iteration (E-step + M-step). One process: the whole data in memory,
   ``hmmfast._fit.estep`` + ``_do_mstep`` on 2 threads. Dask: ``fit_distributed`` with the
   partitions kept on the workers, the time between two iterations' progress callbacks
   (median); the one-off reading and conversion is reported separately.
4. Tasks per partition (``--task-files``, 0 to skip): the same sessions in that many
   files; the tasks the workers run and the wall time of ``score_partitions(...).compute()``
   against a plain ``map_partitions`` returning the same Series (read, convert, score),
   with the session ids a column (no divisions) and an index of known divisions.

The machine's load average is printed with the figures: the ratios come from one run
(each row against its one-process peer measured beside it).
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from _benchlib import median_seconds, write_table

import hmmfast
from hmmfast import _fit

N, M = 5, 10


def true_model(seed=0):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(N, n_features=M)
    model.startprob_ = rng.dirichlet(np.ones(N))
    model.transmat_ = 0.5 * np.eye(N) + 0.5 * rng.dirichlet(np.ones(N), size=N)
    model.emissionprob_ = rng.dirichlet(np.ones(M), size=N)
    return model


def write_data(folder, n_sessions, n_files):
    """Parquet files of whole sessions (reused when the manifest matches)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    manifest = folder.with_name(folder.name + ".json")  # beside: the folder holds only data
    want = {"sessions": n_sessions, "files": n_files, "version": 1}
    if manifest.exists() and json.loads(manifest.read_text()) == want:
        return sorted(folder.glob("part-*.parquet"))
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*.parquet"):
        old.unlink()
    model = true_model()
    rng = np.random.default_rng(1)
    bounds = np.linspace(0, n_sessions, n_files + 1).astype(np.int64)
    t0 = time.perf_counter()
    for k in range(n_files):
        ids = np.arange(bounds[k], bounds[k + 1], dtype=np.int64)
        lengths = rng.integers(40, 61, size=len(ids))
        obs, _ = model.sample(int(lengths.sum()), random_state=rng.integers(1 << 31))
        table = pa.table({"session": np.repeat(ids, lengths),
                          "obs": obs[:, 0].astype(np.int32)})
        pq.write_table(table, folder / f"part-{k:04d}.parquet", row_group_size=len(table))
    manifest.write_text(json.dumps(want))
    print(f"wrote {n_files} files in {time.perf_counter() - t0:.1f} s", flush=True)
    return sorted(folder.glob("part-*.parquet"))


def spec(in_index=False):
    from hmmfast.distributed import _partitions as P

    return P.FrameSpec("session", in_index, ("obs",), None, "symbols", {})


def single_process_score(model, files):
    """(scores, seconds reading, converting, in kernels) for one pass over the files."""
    import pandas as pd

    from hmmfast.distributed import _partitions as P

    t_read = t_conv = t_kern = 0.0
    out = []
    for k, f in enumerate(files):
        t0 = time.perf_counter()
        df = pd.read_parquet(f, columns=["session", "obs"])
        t1 = time.perf_counter()
        part = P.frame_partition(df, k, spec())
        t2 = time.perf_counter()
        out.append(model.score_batch(part.X, 2, lengths=part.lengths))
        t3 = time.perf_counter()
        t_read, t_conv, t_kern = t_read + t1 - t0, t_conv + t2 - t1, t_kern + t3 - t2
    return np.concatenate(out), t_read, t_conv, t_kern


def single_process_decode(model, files, out=None):
    """(paths, seconds) of one pass: read, convert, decode_batch on 2 threads; with
    ``out`` also build each file's Arrow column and write it as Parquet there."""
    import pandas as pd

    from hmmfast.distributed import _arrow
    from hmmfast.distributed import _partitions as P

    t0 = time.perf_counter()
    paths = []
    for k, f in enumerate(files):
        part = P.frame_partition(pd.read_parquet(f, columns=["session", "obs"]), k, spec())
        logprob, decoded = model.decode_batch(part.X, 2, lengths=part.lengths)
        if out is None:
            paths.extend(decoded)
        else:
            frame = _arrow.decoded_frame(_arrow.Decoded.of(logprob, decoded),
                                         part.ids, k, N)
            frame.to_parquet(Path(out) / f"part-{k:04d}.parquet")
    return paths, time.perf_counter() - t0


def fresh_dir(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    Path(path).mkdir(parents=True)
    return path


def executed_tasks(collection):
    """(tasks the workers ran, wall seconds) for ``collection.compute()``."""
    import distributed

    with distributed.get_task_stream() as ts:
        t0 = time.perf_counter()
        collection.compute()
        seconds = time.perf_counter() - t0
    return len(ts.data), seconds


def tasks_section(model, files, n_files, folder, repeats):
    """Section 4: the same sessions in ``n_files`` files; task counts and times."""
    import dask.dataframe as dd
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hmmfast.distributed import _partitions as P
    from hmmfast.distributed import score_partitions

    folder = Path(folder)
    manifest = folder.with_name(folder.name + ".json")
    want = {"from": str(files[0].parent), "files": n_files, "version": 1}
    if not (manifest.exists() and json.loads(manifest.read_text()) == want):
        fresh_dir(folder)
        table = pa.concat_tables([pq.read_table(f) for f in files])
        ids = table["session"].to_numpy()
        cuts = np.searchsorted(ids, np.linspace(ids[0], ids[-1] + 1, n_files + 1)[1:-1])
        for k, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(ids)], strict=True)):
            pq.write_table(table.slice(a, b - a), folder / f"part-{k:04d}.parquet")
        manifest.write_text(json.dumps(want))

    def plain(df):
        part = P.frame_partition(df, 0, spec(df.index.name == "session"))
        return pd.Series(model.score_batch(part.X, 1, lengths=part.lengths), index=part.ids,
                         name="score")

    meta = pd.Series(np.empty(0), index=pd.Index([], dtype="int64", name="session"),
                     name="score")
    rows = []
    for label, ddf in (("session a column (no divisions)", dd.read_parquet(folder)),
                       ("session the index, divisions known",
                        dd.read_parquet(folder, index="session", calculate_divisions=True))):
        for what, make in (("plain map_partitions", lambda d=ddf: d.map_partitions(
                               plain, meta=meta, enforce_metadata=False)),
                           ("score_partitions", lambda d=ddf: score_partitions(model, d))):
            executed_tasks(make())  # warm
            runs = [executed_tasks(make()) for _ in range(repeats)]
            rows.append((label, what, runs[0][0], float(np.median([r[1] for r in runs]))))
    return rows


def worker_metrics(client):
    """{(task prefix, activity): seconds} summed over the workers so far."""
    raw = client.run_on_scheduler(lambda dask_scheduler: dict(
        dask_scheduler.cumulative_worker_metrics))
    out = {}
    for key, value in raw.items():
        if isinstance(key, tuple) and key[0] == "execute" and key[-1] == "seconds":
            prefix, activity = key[1], key[2]
            out[(prefix, activity)] = out.get((prefix, activity), 0.0) + value
    return out


def split(before, after, n_workers):
    """Seconds per worker: reading (the Parquet tasks), conversion, kernels, other tasks."""
    diff = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    read = conv = kern = other = 0.0
    for (prefix, activity), sec in diff.items():
        if activity == "hmmfast-kernels":
            kern += sec
        elif activity == "hmmfast-convert":
            conv += sec
        elif "parquet" in prefix.lower():
            read += sec
        else:
            other += sec
    return read / n_workers, conv / n_workers, kern / n_workers, other / n_workers


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=None,
                        help="files / partitions (default: one per 25,000 sessions: Dask "
                             "costs milliseconds per task, so partitions must be large)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--task-files", type=int, default=400,
                        help="files for the tasks-per-partition comparison (0: skip it)")
    parser.add_argument("--dir", default="/tmp/hmmfast_dask_bench")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.partitions is None:
        args.partitions = max(2, args.sessions // 25_000)

    import dask.dataframe as dd
    import distributed

    from hmmfast.distributed import decode_partitions, fit_distributed, score_partitions

    load_before = os.getloadavg()

    files = write_data(Path(args.dir) / f"s{args.sessions}-p{args.partitions}",
                       args.sessions, args.partitions)
    model = true_model()

    # ---- scoring, one process
    single_process_score(model, files[:2])  # warm the page cache and the code paths
    runs = [single_process_score(model, files) for _ in range(args.repeats)]
    best = int(np.argsort([sum(r[1:]) for r in runs])[len(runs) // 2])
    scores, sp_read, sp_conv, sp_kern = runs[best]
    sp_total = sp_read + sp_conv + sp_kern
    n_frames = None

    # ---- scoring, Dask
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        ddf = dd.read_parquet(files[0].parent, columns=["session", "obs"])
        n_parts = ddf.npartitions
        got = score_partitions(model, ddf).compute()
        if not np.array_equal(got.to_numpy(), scores):
            raise SystemExit("Dask scores differ from the single-process scores")
        before = worker_metrics(client)
        dk_total = median_seconds(lambda: score_partitions(model, ddf).compute(),
                                  args.repeats, warmup=0)
        dk_read, dk_conv, dk_kern, dk_other = (
            s / args.repeats for s in split(before, worker_metrics(client), 2))
        dk_engine = dk_total - (dk_read + dk_conv + dk_kern + dk_other)

        # ---- decoding: compute() and to_parquet, against one process
        paths, _ = single_process_decode(model, files)
        got = decode_partitions(model, ddf).compute()
        if not all(np.array_equal(np.asarray(a), b)
                   for a, b in zip(got["states"], paths, strict=True)):
            raise SystemExit("Dask paths differ from the single-process paths")
        del got, paths
        sp_dec = median_seconds(lambda: single_process_decode(model, files), args.repeats,
                                warmup=0)
        dk_dec = median_seconds(lambda: decode_partitions(model, ddf).compute(), args.repeats,
                                warmup=0)
        indexed = dd.read_parquet(files[0].parent, columns=["obs"], index="session",
                                  calculate_divisions=True)
        decode_partitions(model, indexed).compute()  # warm
        dk_dec_ix = median_seconds(lambda: decode_partitions(model, indexed).compute(),
                                   args.repeats, warmup=0)
        out_sp, out_dk = Path(args.dir) / "decoded-one", Path(args.dir) / "decoded-dask"
        sp_pq = median_seconds(lambda: single_process_decode(model, files,
                                                             fresh_dir(out_sp)),
                               args.repeats, warmup=0)
        dk_pq = median_seconds(lambda: decode_partitions(model, ddf).to_parquet(
            fresh_dir(out_dk)), args.repeats, warmup=0)

        # ---- tasks per partition
        task_rows = (tasks_section(model, files, args.task_files,
                                   Path(args.dir) / f"s{args.sessions}-f{args.task_files}",
                                   args.repeats)
                     if args.task_files else [])

        # ---- one EM iteration, Dask
        stamps = []
        fitted = true_model()
        fitted.set_params(init_params="", n_iter=4, tol=-np.inf)
        t0 = time.perf_counter()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            fit_distributed(fitted, ddf, callback=lambda m: stamps.append(time.perf_counter()))
        steps = np.diff(stamps)[:-1]  # E-step + M-step; the last is the final forward pass
        dk_iter = float(np.median(steps))
        dk_load = stamps[0] - t0 - dk_iter  # reading + converting + keeping, once

    # ---- one EM iteration, one process (the data in memory)
    import pandas as pd

    from hmmfast.distributed import _partitions as P

    parts = [P.frame_partition(pd.read_parquet(f, columns=["session", "obs"]), k, spec())
             for k, f in enumerate(files)]
    X = np.concatenate([p.X for p in parts])[:, None]
    lengths = np.concatenate([p.lengths for p in parts])
    del parts
    n_frames = len(X)
    offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
    np.cumsum(lengths, out=offsets[1:])
    data = _fit.TrainingData(X, offsets)
    em = true_model()
    em.set_params(init_params="", n_threads=2)

    def iteration():
        stats, _ = _fit.estep(em, data)
        em._do_mstep(stats)

    sp_iter = median_seconds(iteration, args.repeats)

    n = args.sessions
    load_after = os.getloadavg()
    lines = [
        f"{n:,} sessions x 40-60 observations ({n_frames / 1e6:.1f} M frames), N={N}, "
        f"M={M}; {len(files)} Parquet files, {n_parts} Dask partitions; LocalCluster of 2 "
        "worker processes x 1 thread vs one process (2 kernel threads) reading the same "
        "files. Median of "
        f"{args.repeats} runs, seconds (Dask split: seconds per worker). Load average "
        f"(1 min) {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end, on "
        f"{os.cpu_count()} CPUs.",
        "",
        "| scoring every session | total | reading | conversion | kernels | engine / other "
        "| vs one process |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| one process: read_parquet + score_batch | {sp_total:.3f} | {sp_read:.3f} | "
        f"{sp_conv:.3f} | {sp_kern:.3f} | - | 1.00x |",
        f"| Dask: score_partitions(model, read_parquet(...)).compute() | {dk_total:.3f} | "
        f"{dk_read:.3f} | {dk_conv:.3f} | {dk_kern:.3f} | {dk_engine + dk_other:.3f} | "
        f"{dk_total / sp_total:.2f}x |",
        "",
        "| decoding every session (Viterbi paths) | seconds | vs one process |",
        "|---|---:|---:|",
        f"| one process: read_parquet + decode_batch (list of arrays) | {sp_dec:.3f} | "
        "1.00x |",
        f"| Dask: decode_partitions(...).compute() (Arrow list column) | {dk_dec:.3f} | "
        f"{dk_dec / sp_dec:.2f}x |",
        f"| Dask, session ids an index of known divisions: decode_partitions(...).compute() "
        f"| {dk_dec_ix:.3f} | {dk_dec_ix / sp_dec:.2f}x |",
        f"| one process: read + decode_batch + Arrow column + write Parquet per file | "
        f"{sp_pq:.3f} | 1.00x |",
        f"| Dask: decode_partitions(...).to_parquet(dir) | {dk_pq:.3f} | "
        f"{dk_pq / sp_pq:.2f}x |",
        "",
        "| one EM iteration (E-step + M-step) | seconds | vs one process |",
        "|---|---:|---:|",
        f"| one process, data in memory (2 threads) | {sp_iter:.3f} | 1.00x |",
        f"| fit_distributed, partitions kept on the workers | {dk_iter:.3f} | "
        f"{dk_iter / sp_iter:.2f}x |",
        f"| fit_distributed, once: read + convert + keep the partitions | {dk_load:.3f} | - |",
    ]
    if task_rows:
        plain_time = {label: t for label, what, _, t in task_rows
                      if what == "plain map_partitions"}
        lines += ["", f"| {args.task_files} files: scoring every session | tasks run | "
                  "seconds | vs plain map_partitions |", "|---|---:|---:|---:|"]
        lines += [f"| {label}: {what} | {tasks} | {t:.3f} | {t / plain_time[label]:.2f}x |"
                  for label, what, tasks, t in task_rows]
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
