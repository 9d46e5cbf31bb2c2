"""The command line's commands: fit, score, decode and info (one function each).

Each takes the parsed arguments and returns the exit status; errors are raised (the
library's ValueErrors, DataError, OSError, UsageError) and turned into one line on
stderr by hmmfast._cli.main.
"""

import contextlib
import datetime
import json
import os
import re
import shlex
import sys
import tempfile
import textwrap
import warnings

import numpy as np

from . import _textio
from ._cli_data import Batch, DataError, DataSource, UsageError
from ._cli_progress import FitProgress, Meter, ProgressMonitor, Reporter


FAMILIES = ("categorical", "gaussian", "gmm", "poisson", "multinomial")


def check_writable(path, what):
    """Fail before the work when ``path``'s directory does not exist (exit status 1)."""
    if path is None or path == "-":
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise DataError(f"cannot write {what} {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise DataError(f"cannot write {what} {path}: it is a directory")


def _model_class(family):
    from . import GMMHMM, CategoricalHMM, GaussianHMM, MultinomialHMM, PoissonHMM

    return {"categorical": CategoricalHMM, "gaussian": GaussianHMM, "gmm": GMMHMM,
            "poisson": PoissonHMM, "multinomial": MultinomialHMM}[family]


def _threads(args):
    from ._base import resolve_threads

    return resolve_threads(args.threads)


# ------------------------------------------------------------------------------ fit


def check_fit_options(args):
    """Options that only some families take."""
    if args.covariance_type is not None and args.family not in ("gaussian", "gmm"):
        raise UsageError(f"--covariance-type applies to --family gaussian or gmm, not "
                         f"{args.family}")
    if args.n_mix is not None and args.family != "gmm":
        raise UsageError(f"--n-mix applies to --family gmm, not {args.family}")
    if args.n_features is not None and args.family != "categorical":
        raise UsageError("--n-features applies to --family categorical (continuous "
                         "families take the frame width from --dim)")
    if args.dim is not None and args.family == "categorical":
        raise UsageError("--dim applies to the frame families (gaussian, gmm, poisson, "
                         "multinomial); categorical data is one symbol per observation")


def new_model(args, n_threads):
    kwargs = {"n_components": args.states, "n_iter": args.iter, "tol": args.tol,
              "n_init": args.n_init, "random_state": args.seed, "n_threads": n_threads}
    if args.family in ("gaussian", "gmm"):
        kwargs["covariance_type"] = args.covariance_type or "diag"
    if args.family == "gmm":
        kwargs["n_mix"] = args.n_mix or 1
    if args.family == "categorical" and args.n_features is not None:
        kwargs["n_features"] = args.n_features
    return _model_class(args.family)(**kwargs)


def fit(args, argv):
    """hmmfast fit DATA -o MODEL."""
    from ._errors import ConvergenceWarning, HMMInputError

    check_fit_options(args)
    check_writable(args.output, "the model file")
    symbols = args.family == "categorical"
    source = DataSource(args.data, symbols=symbols, n_symbols=args.n_features, dim=args.dim,
                        ids=args.ids, fmt=args.format)
    X, lengths = source.read_all()
    model = new_model(args, args.threads)  # None: every core, and saved as None
    reporter = Reporter.for_options(args.progress, args.quiet)
    progress = FitProgress(reporter, args.iter, args.n_init)
    model.monitor_ = ProgressMonitor(args.tol, args.iter, False, progress)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        try:
            model.fit(X, lengths)
        except HMMInputError as exc:
            offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
            np.cumsum(lengths, out=offsets[1:])
            line = 1 if source.format in ("text", "jsonl") else None
            raise explain(exc, source, Batch(X, offsets, line=line)) from None
        finally:
            reporter.done()
    for w in caught:
        if issubclass(w.category, ConvergenceWarning) and not args.quiet:
            text = str(w.message).removeprefix("hmmfast: ")
            print(f"hmmfast: warning: {text}", file=sys.stderr)
        elif not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    metadata = {
        "command": shlex.join(["hmmfast", *argv]),
        "data": {"file": os.path.basename(source.name), "format": source.format,
                 "n_sequences": len(lengths), "n_samples": int(lengths.sum())},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    model.save(args.output, metadata=metadata)
    if not args.quiet:
        monitor = model.monitor_
        state = "converged" if monitor.converged else "not converged"
        print(f"hmmfast: fitted {type(model).__name__}({_sizes(model)}) on {len(lengths):,} "
              f"sequences: log-likelihood {monitor.history[-1]:.10g} after {monitor.iter} "
              f"iterations ({state}); wrote {args.output}", file=sys.stderr)
    return 0


def _sizes(model):
    parts = [f"n_components={model.n_components}"]
    for name in ("n_features", "n_mix", "covariance_type"):
        value = getattr(model, name, None)
        if value is not None:
            parts.append(f"{name}={value!r}" if isinstance(value, str) else
                         f"{name}={value}")
    return ", ".join(parts)


# ------------------------------------------------------------------------------ score, decode


def load_model(path):
    from . import load

    return load(path)


def _source_for(model, args):
    symbols = model._observation_kind() == "symbols"
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


@contextlib.contextmanager
def output_stream(path):
    """stdout, or a file written through a temporary file renamed into place on success
    (a failed run leaves no partial results file)."""
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".hmmfast-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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


_ROW = re.compile(r"\bX\[(\d+)")


def explain(exc, source, batch):
    """A DataError for a library error about the data: names the file and, when the
    message names a row of the concatenated X, the line (or sequence) it came from."""
    text = str(exc)
    match = _ROW.search(text)
    if match and int(match.group(1)) < batch.offsets[-1]:
        row = int(match.group(1))
        s = int(np.searchsorted(batch.offsets, row, "right")) - 1
        unit = "symbol" if source.symbols else "frame"
        text += f" [{batch.where(s)}, {unit} {row - batch.offsets[s]}]"
    else:
        text += f" [{batch.span()}]"
    return DataError(f"{source.name}: {text}")


def _run(model, batch, source, command, threads, algorithm):
    from ._errors import HMMInputError

    if not source.symbols:
        _check_frames(model, batch, source)
    try:
        if command == "score":
            return model.score_batch(batch.X, threads, lengths=batch.lengths), None
        return model.decode_batch(batch.X, threads, lengths=batch.lengths,
                                  algorithm=algorithm, errors="mark")
    except HMMInputError as exc:
        raise explain(exc, source, batch) from None


def apply(args, command):
    """hmmfast score|decode MODEL DATA: one output line per sequence."""
    check_writable(args.output, "the results file")
    model = load_model(args.model)
    source = _source_for(model, args)
    threads = _threads(args)
    reporter = Reporter.for_options(args.progress, args.quiet,
                                    results_on_stdout=args.output in (None, "-"))
    meter = Meter(reporter, command, source.size)
    key = "score" if command == "score" else "logprob"
    algorithm = getattr(args, "algorithm", None)
    try:
        with output_stream(args.output) as out:
            for batch in source.batches():
                values, paths = _run(model, batch, source, command, threads, algorithm)
                write_all(out, _textio.format_results(values, paths, batch.ids,
                                                      json=args.json, key=key,
                                                      n_threads=threads))
                meter.update(len(batch), source.bytes_read)
    finally:
        meter.finish(source.bytes_read, always=args.progress)
    return 0


# ------------------------------------------------------------------------------ info


def info(args):
    """hmmfast info MODEL: the header and parameter shapes."""
    from . import load, read_header

    header = read_header(args.model)
    verified = None
    if args.verify:
        load(args.model)
        verified = True
    if args.json:
        record = {"file": args.model, "size": os.path.getsize(args.model), "header": header}
        if verified:
            record["verified"] = True
        print(json.dumps(record, indent=2, sort_keys=True))
        return 0
    print("\n".join(describe(args.model, header, verified)))
    return 0


def describe(path, header, verified=None):
    """Human-readable lines for a model file's header."""
    structure = header.get("structure", {})
    sizes = ", ".join(f"{k}={v}" for k, v in structure.items())
    lines = [
        f"file           {path} ({os.path.getsize(path):,} bytes)",
        f"model          {header.get('class')}({sizes})",
        f"format         {header.get('format')} version {header.get('format_version')}, "
        f"written by hmmfast {header.get('hmmfast_version')}",
        f"fingerprint    {header.get('fingerprint')}",
    ]
    record = header.get("fit")
    if record:
        state = "converged" if record.get("converged") else "not converged"
        lines.append(f"fit            {record.get('method', 'fit')}, log-likelihood "
                     f"{record.get('log_likelihood')!r} after {record.get('n_iter')} "
                     f"iterations ({state}), on {_count(record.get('n_sequences'))} "
                     f"sequences, {_count(record.get('n_samples'))} samples")
        if record.get("training_data_sha256"):
            lines.append(f"training data  sha256 {record['training_data_sha256']}")
    else:
        lines.append("fit            none recorded (parameters were assigned)")
    lines.append("parameters")
    for name, spec in header.get("arrays", {}).items():
        shape = tuple(spec.get("shape", ()))
        lines.append(f"  {name:<22} {spec.get('dtype'):<6} {shape}")
    params = header.get("params", {})
    if params:
        text = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(params.items()))
        lines.extend(textwrap.wrap(text, 99, initial_indent="settings       ",
                                   subsequent_indent=" " * 15))
    metadata = header.get("metadata") or {}
    if metadata:
        lines.append("metadata")
        for k, v in metadata.items():
            lines.append(f"  {k:<22} {json.dumps(v)}")
    if verified:
        lines.append("verified       every checksum and parameter (hmmfast.load)")
    return lines


def _count(value):
    return f"{value:,}" if isinstance(value, int) else str(value)
