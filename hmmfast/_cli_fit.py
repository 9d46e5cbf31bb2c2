"""``hmmfast fit DATA -o MODEL``: Baum-Welch on a data file, the model written atomically.

The model file is opened (its temporary file created) before the data is read, so a
path that cannot be written fails before the fit. Settings come from the options, with
the library's defaults where the command line has none (states 2, iter 100, tol 0.01);
with ``--init-from MODEL`` they come from that file and the options given override them,
and the fit starts from its parameters (``init_params`` "" unless ``--init-params``):
the model file then records the earlier data hashes (hmmfast._versions).
"""

import datetime
import inspect
import json
import os
import shlex
import sys
import warnings

import numpy as np

from ._cli_commands import explain, load_model, open_output
from ._cli_data import Batch, DataSource, UsageError
from ._cli_progress import FitProgress, ProgressMonitor, Reporter

FAMILIES = {"categorical": "CategoricalHMM", "gaussian": "GaussianHMM", "gmm": "GMMHMM",
            "poisson": "PoissonHMM", "multinomial": "MultinomialHMM"}
DEFAULTS = {"n_components": 2, "n_iter": 100, "tol": 1e-2}  # where the library's differ
RESERVED = ("command", "data", "created", "init_from")      # metadata keys fit writes


def _classes():
    import hmmfast

    return {family: getattr(hmmfast, name) for family, name in FAMILIES.items()}


def _family_of(model):
    for family, name in FAMILIES.items():
        if type(model).__name__ == name:
            return family
    raise UsageError(f"--init-from: a {type(model).__name__} cannot be refitted here")


def check_fit_options(args, family):
    """Options that only some families take."""
    continuous = family in ("gaussian", "gmm")
    if args.covariance_type is not None and not continuous:
        raise UsageError(f"--covariance-type applies to --family gaussian or gmm, not {family}")
    if args.min_covar is not None and not continuous:
        raise UsageError(f"--min-covar applies to --family gaussian or gmm, not {family}")
    if args.n_mix is not None and family != "gmm":
        raise UsageError(f"--n-mix applies to --family gmm, not {family}")
    if args.n_features is not None and family != "categorical":
        raise UsageError("--n-features applies to --family categorical (continuous "
                         "families take the frame width from --dim)")
    if args.dim is not None and family == "categorical":
        raise UsageError("--dim applies to the frame families (gaussian, gmm, poisson, "
                         "multinomial); categorical data is one symbol per observation")


def _letters(cls, option, value):
    allowed = inspect.signature(cls.__init__).parameters["params"].default
    if value is not None and set(value) - set(allowed):
        raise UsageError(f"{option} {value!r}: {cls.__name__} takes letters from "
                         f"{allowed!r}")
    return value


def _priors(cls, pairs):
    names = [n for n in cls._get_param_names() if n.endswith(("_prior", "_weight"))]
    out = {}
    for name, text in pairs:
        if name not in names:
            raise UsageError(f"--prior {name}: {cls.__name__}'s priors are {', '.join(names)}")
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list):
            try:
                value = np.asarray(value, dtype=float)
            except (ValueError, TypeError):
                value = None
        if value is None or isinstance(value, (bool, str, dict)):
            raise UsageError(f"--prior {name}={text}: expected a number or a JSON array of "
                             "numbers")
        out[name] = value
    return out


def build_model(args):
    """(model, family) from the options: a new model, or --init-from's with its
    settings, the options given overriding them."""
    given = {key: value for key, value in {
        "n_iter": args.iter, "tol": args.tol, "n_init": args.n_init,
        "random_state": args.seed, "params": args.params, "init_params": args.init_params,
        "implementation": args.implementation, "min_covar": args.min_covar,
    }.items() if value is not None}
    structure = {key: value for key, value in {
        "n_components": args.states, "covariance_type": args.covariance_type,
        "n_mix": args.n_mix, "n_features": args.n_features}.items() if value is not None}
    if args.init_from is not None:
        model = load_model(args.init_from)
        family = _family_of(model)
        if args.family is not None and args.family != family:
            raise UsageError(f"--family {args.family}, but --init-from {args.init_from} holds "
                             f"a {family} model")
        check_fit_options(args, family)
        if args.dim is not None and args.dim != model.n_features:
            raise UsageError(f"--dim {args.dim}, but --init-from {args.init_from} has frames "
                             f"of n_features={model.n_features} numbers")
        for key, value in structure.items():
            if value != getattr(model, key, None):
                raise UsageError(f"--{key.replace('_', '-')} {value}, but --init-from "
                                 f"{args.init_from} has {key}={getattr(model, key, None)}; "
                                 "a warm start keeps the structure")
        given.setdefault("init_params", "")  # keep every parameter: a warm start
    else:
        family = args.family or "categorical"
        check_fit_options(args, family)
        model = _classes()[family](**{**DEFAULTS, **structure})
    cls = type(model)
    _letters(cls, "--params", args.params)
    _letters(cls, "--init-params", args.init_params)
    given["n_threads"] = args.threads  # a run-time setting: this run's (None: every core)
    model.set_params(**given, **_priors(cls, args.prior))
    return model, family


def user_metadata(pairs):
    """--metadata KEY=VALUE pairs as a dict (VALUE parsed as JSON when it parses)."""
    out = {}
    for key, text in pairs:
        if key in RESERVED:
            raise UsageError(f"--metadata {key}: fit writes that key itself "
                             f"({', '.join(RESERVED)})")
        try:
            out[key] = json.loads(text)
        except ValueError:
            out[key] = text
    return out


def fit(args, argv):
    """hmmfast fit DATA -o MODEL."""
    from . import _io, read_header
    from ._errors import ConvergenceWarning, HMMInputError

    extra = user_metadata(args.metadata)
    inputs = [("data", args.data), ("--init-from model", args.init_from)]
    with open_output(args.output, inputs) as out:
        model, family = build_model(args)
        symbols = family == "categorical"
        n_symbols = model.n_features if args.init_from is not None and symbols else \
            args.n_features
        source = DataSource(args.data, symbols=symbols, n_symbols=n_symbols,
                            dim=args.dim if args.init_from is None or symbols
                            else model.n_features, ids=args.ids, fmt=args.format)
        X, lengths = source.read_all()
        reporter = Reporter.for_options(args.progress, args.quiet)
        progress = FitProgress(reporter, model.n_iter, model.n_init)
        model.monitor_ = ProgressMonitor(model.tol, model.n_iter, False, progress)
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
            "data": {"file": os.path.basename(source.name),
                     "path": source.name if args.data == "-" else os.path.abspath(args.data),
                     "format": source.format, "n_sequences": len(lengths),
                     "n_samples": int(lengths.sum())},
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            **extra,
        }
        if args.init_from is not None:
            header = read_header(args.init_from)
            metadata["init_from"] = {"path": os.path.abspath(args.init_from),
                                     "fingerprint": header["fingerprint"],
                                     "version_id": header.get("version_id")}
        members = _io.encode(model, args.output, metadata)
        _io.write_members(out, members)
    if not args.quiet:
        monitor, record = model.monitor_, model._fit_record
        state = "converged" if monitor.converged else "not converged"
        version = json.loads(members[0][1].tobytes())["version_id"]
        seed = "" if record["random_seed"] is None else f", seed {record['random_seed']}"
        print(f"hmmfast: fitted {type(model).__name__}({_sizes(model)}) on {len(lengths):,} "
              f"sequences: log-likelihood {monitor.history[-1]:.10g} after {monitor.iter} "
              f"iterations ({state}); wrote {args.output} (version {version[:12]}{seed})",
              file=sys.stderr)
    return 0


def _sizes(model):
    parts = [f"n_components={model.n_components}"]
    for name in ("n_features", "n_mix", "covariance_type"):
        value = getattr(model, name, None)
        if value is not None:
            parts.append(f"{name}={value!r}" if isinstance(value, str) else
                         f"{name}={value}")
    return ", ".join(parts)
