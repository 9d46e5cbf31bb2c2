"""The command line's commands that read a model and data: score, decode and detect.

Each takes the parsed arguments and returns the exit status; errors are raised (the
library's ValueErrors, DataError, OSError, UsageError) and turned into one line on
stderr by hmmfast._cli.main. Also the helpers the other commands share: the output
(:func:`open_output`) and the threads.
"""

import contextlib
import json
import os
import stat
import sys

import numpy as np

from . import _decoders, _textio
from ._cli_data import DataError, DataSource, UsageError
from ._cli_progress import Meter, Reporter
from ._outputs import Output


def _threads(args):
    """The model calls' threads: --threads, or None (the library's automatic choice: a
    team only where it gains, on idle CPUs)."""
    return args.threads


def _format_threads(threads):
    """Threads for the compiled writer (an explicit count: None is every CPU)."""
    from ._threads import resolve_threads

    return resolve_threads(threads)


@contextlib.contextmanager
def open_output(path, inputs, *, default_stdout=True):
    """The binary file to write the results to, opened before the work: standard output
    for None or "-" (None instead without ``default_stdout``), else an
    hmmfast._outputs.Output (atomic for a regular file, in place for a device or FIFO),
    committed when the block ends normally. ``inputs``: (what, path) pairs the output
    must not be (UsageError)."""
    if path is None or path == "-":
        if not default_stdout:
            yield None
            return
        out = sys.stdout.buffer
        try:
            yield out
            out.flush()
        except OSError as exc:
            if isinstance(exc, BrokenPipeError) or exc.filename is not None:
                raise
            raise OSError(exc.errno, exc.strerror or str(exc), "standard output") from None
        return
    check_not_input(path, inputs)
    with Output(path) as f:
        yield f


def check_not_input(path, inputs):
    """UsageError when the output ``path`` is one of the ``inputs`` ((what, path) pairs):
    the same regular file, by device and inode (links and other spellings included)."""
    try:
        out = os.stat(path)
    except OSError:
        return  # a new file is no input
    if not stat.S_ISREG(out.st_mode):
        return  # a device or FIFO is written in place, never replaced
    for what, name in inputs:
        if name is None or name == "-":
            continue
        try:
            st = os.stat(name)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            raise UsageError(f"the output {path} is the {what} file {name}: writing it would "
                             "replace the input; choose another output path")


# ------------------------------------------------------------------------------ score, decode


def load_model(path):
    from . import load

    return load(path)


def _source_for(model, args):
    from . import CategoricalHMM

    symbols = isinstance(model, CategoricalHMM)
    if symbols and args.dim is not None:
        raise UsageError(f"--dim applies to continuous models; {args.model} holds a "
                         "CategoricalHMM (one symbol per observation)")
    dim = None
    if not symbols:
        d = model.n_features
        if args.dim is not None and args.dim != d:
            raise UsageError(f"--dim {args.dim} does not match the model, whose frames have "
                             f"n_features={d} numbers")
        dim = d
    return DataSource(args.data, symbols=symbols, n_symbols=model.n_features if symbols
                      else None, dim=dim, ids=args.ids, json_ids=args.json,
                      fmt=args.format, chunk=args.chunk)



def write_all(out, data):
    """Write every byte or raise: a buffered write returns a short count instead of
    raising when the error (a closed pipe, a full disk) came after some bytes went out;
    writing the rest raises it."""
    view = memoryview(data)
    while view:
        n = out.write(view)
        if not n:
            raise OSError(f"could not write the results ({type(out).__name__}.write "
                          f"returned {n!r})")
        view = view[n:]


def _check_frames(model, batch, source):
    """Name the line of a non-finite observation (the model would name the row only)."""
    if np.isfinite(batch.X).all() or getattr(model, "missing", "raise") != "raise":
        return
    row = int(np.argmax(~np.isfinite(batch.X).all(axis=1)))
    s = int(np.searchsorted(batch.offsets, row, "right")) - 1
    raise DataError(f"{source.name}: {batch.where(s)}, frame {row - batch.offsets[s]}: "
                    "NaN or infinity; observations must be finite")


def explain(exc, source, batch):
    """A DataError for a library error about the data: names the file and, when the
    error carries its place (``sequence``/``step``/``position`` of the batch's
    concatenated X), the line (or sequence) it came from."""
    from ._errors import locate

    text = str(exc)
    locate(exc, batch.offsets)
    s, step = getattr(exc, "sequence", None), getattr(exc, "step", None)
    if s is not None and step is not None and 0 <= s < len(batch.offsets) - 1:
        unit = "symbol" if source.symbols else "frame"
        text += f" [{batch.where(s)}, {unit} {step}]"
    else:
        text += f" [{batch.span()}]"
    return DataError(f"{source.name}: {text}")


# ------------------------------------------------------------------------------ the jobs


def check_apply_options(args, command):
    """Usage errors of score/decode/detect options, before any file is read."""
    if command != "decode":
        return
    pruned = [f"--{n.replace('_', '-')}" for n in ("beam", "max_active", "min_active")
              if getattr(args, n) is not None] + (["--memory"] if args.memory != "full"
                                                  else [])
    if args.algorithm == "map" and pruned:
        raise UsageError(f"{', '.join(pruned)} apply to --algorithm viterbi, not map")
    if args.nbest is not None:
        other = pruned + (["--posteriors"] if args.posteriors else []) + (
            ["--algorithm map"] if args.algorithm == "map" else [])
        if other:
            raise UsageError(f"--nbest lists exact Viterbi paths; it does not combine with "
                             f"{', '.join(other)}")


def _job(model, args, command, threads):
    """A function batch -> the output bytes for its sequences."""
    from ._errors import ParameterError

    json_out = args.json
    if command == "score":
        def job(batch):
            result = model.score_batch(batch.X, threads, lengths=batch.lengths,
                                       per_step=args.per_step)
            values, steps = result if args.per_step else (result, None)
            text = _textio.format_results(values, None, batch.ids, json=json_out,
                                          key="score", n_threads=_format_threads(threads))
            return text if steps is None else _extend(text, steps, "per_step", json_out)
        return job
    if command == "detect":
        return _detect_job(model, args, threads)
    if args.nbest is not None:
        return _nbest_job(model, args, threads)
    try:
        _decoders.choose(args.algorithm, args.beam, args.max_active, args.min_active,
                         args.memory)
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    options = {"beam": args.beam, "max_active": args.max_active,
               "min_active": args.min_active, "memory": args.memory}

    def job(batch):
        values, paths = model.decode_batch(batch.X, threads, lengths=batch.lengths,
                                           algorithm=args.algorithm, errors="mark", **options)
        text = _textio.format_results(values, paths, batch.ids, json=json_out, key="logprob",
                                      n_threads=_format_threads(threads))
        if not args.posteriors:
            return text
        return _extend(text, _posteriors(model, batch, paths), "posteriors", json_out)
    return job


def _posteriors(model, batch, paths):
    """Each step's posterior probability of its decoded state, per sequence (empty for
    an impossible sequence)."""
    from ._errors import ImpossibleSequenceError

    offsets = batch.offsets
    try:
        post = model.predict_proba(batch.X, batch.lengths)
        rows = [None] * len(paths)
    except ImpossibleSequenceError:  # some sequence is impossible: one at a time
        post = None
        rows = []
        for s in range(len(paths)):
            seq = batch.X[offsets[s]:offsets[s + 1]]
            rows.append(model.predict_proba(seq) if len(paths[s]) else None)
    out = []
    for s, path in enumerate(paths):
        if not len(path):
            out.append(np.empty(0))
            continue
        p = post[offsets[s]:offsets[s + 1]] if post is not None else rows[s]
        out.append(p[np.arange(len(path)), path])
    return out


def _extend(text, arrays, key, json_out):
    """Append one field per line: the numbers of ``arrays[s]`` (text: a tab, then the
    values space-separated, as repr writes them; JSON: ``"key": [...]``, non-finite as
    null)."""
    lines = text.split(b"\n")[:-1]
    out = []
    for line, arr in zip(lines, arrays, strict=True):
        values = arr.tolist()
        if json_out:
            items = ", ".join(repr(v) if v - v == 0 else "null" for v in values)
            out.append(line[:-1] + f', "{key}": [{items}]}}'.encode())
        else:
            out.append(line + b"\t" + " ".join(map(repr, values)).encode())
    return b"\n".join(out) + b"\n" if out else b""


def _nbest_job(model, args, threads):
    from ._errors import ImpossibleSequenceError

    n = args.nbest

    def job(batch):
        offsets, results = batch.offsets, []
        for s in range(len(batch)):
            try:
                results.append(model.nbest(batch.X[offsets[s]:offsets[s + 1]], n))
            except ImpossibleSequenceError:
                results.append([])
        best = np.array([r[0][0] if r else -np.inf for r in results])
        paths = [r[0][1] if r else np.empty(0, dtype=np.intp) for r in results]
        text = _textio.format_results(best, paths, batch.ids, json=args.json,
                                      key="logprob", n_threads=_format_threads(threads))
        lines = text.split(b"\n")[:-1]
        out = []
        for line, found in zip(lines, results, strict=True):
            if args.json:
                items = ", ".join(json.dumps({"logprob": lp, "states": st.tolist()})
                                  for lp, st in found)
                out.append(line[:-1] + f', "paths": [{items}]}}'.encode())
            else:
                extra = "".join(f"\t{lp!r}\t" + " ".join(map(str, st.tolist()))
                                for lp, st in found[1:])
                out.append(line + extra.encode())
        return b"\n".join(out) + b"\n" if out else b""
    return job


_REASONS = ("switch_rate", "switch_rate_pct", "longest_run", "longest_run_pct", "length",
            "length_pct", "min_step", "unseen")


def _detector(model, path):
    from . import read_header
    from .monitor import AnomalyDetector

    metadata = read_header(path)["metadata"]
    if "anomaly_detector" not in metadata:
        raise DataError(f"{path} carries no anomaly detector in its metadata; save one with "
                        "the model: model.save(path, metadata={\"anomaly_detector\": "
                        "detector.to_dict()})")
    try:
        return AnomalyDetector.from_dict(metadata["anomaly_detector"], model)
    except ValueError as exc:
        raise DataError(f"{path}: its anomaly_detector metadata is not usable: {exc}") \
            from None


def _detect_job(model, args, threads):
    detector = _detector(model, args.model)
    detector.n_threads = threads

    def job(batch):
        record = detector.predict(batch.X, lengths=batch.lengths)
        job.levels.update(record.level.tolist())
        text = _textio.format_results(record.score, None, batch.ids, json=args.json,
                                      key="score", n_threads=_format_threads(threads))
        fields = {name: record[name].tolist() for name in _REASONS}
        out = []
        for s, line in enumerate(text.split(b"\n")[:-1]):
            level = str(record.level[s])
            if args.json:
                reasons = "".join(f', "{k}": {_json_number(v[s])}' for k, v in fields.items())
                out.append(line[:-1] + f', "level": "{level}"{reasons}}}'.encode())
            else:
                head, _, score = line.rpartition(b"\t")
                reasons = " ".join(f"{k}={v[s]!r}" for k, v in fields.items())
                out.append((head + b"\t" if head else b"") + level.encode() + b"\t" + score
                           + b"\t" + reasons.encode())
        return b"\n".join(out) + b"\n" if out else b""
    job.levels = _LevelCount()
    return job


class _LevelCount(dict):
    def update(self, levels):
        for level in levels:
            self[level] = self.get(level, 0) + 1


def _json_number(value):
    if isinstance(value, float) and value - value != 0:
        return "null"
    return repr(value)


def _call(job, batch, source, model):
    from ._errors import HMMInputError

    if not source.symbols:
        _check_frames(model, batch, source)
    try:
        return job(batch)
    except HMMInputError as exc:
        raise explain(exc, source, batch) from None


def apply(args, command):
    """hmmfast score|decode|detect MODEL DATA: one output line per sequence."""
    check_apply_options(args, command)
    inputs = [("model", args.model), ("data", args.data)]
    with open_output(args.output, inputs) as out:
        model = load_model(args.model)
        source = _source_for(model, args)
        threads = _threads(args)
        job = _job(model, args, command, threads)
        reporter = Reporter.for_options(args.progress, args.quiet,
                                        results_on_stdout=args.output in (None, "-"))
        meter = Meter(reporter, command, source.size)
        try:
            for batch in source.batches():
                write_all(out, _call(job, batch, source, model))
                meter.update(len(batch), source.bytes_read)
        finally:
            meter.finish(source.bytes_read, always=args.progress)
    if command == "detect" and not args.quiet:
        counts = ", ".join(f"{job.levels.get(k, 0):,} {k}"
                           for k in ("normal", "suspicious", "anomalous"))
        print(f"hmmfast detect: {sum(job.levels.values()):,} sessions: {counts}",
              file=sys.stderr)
    return 0
