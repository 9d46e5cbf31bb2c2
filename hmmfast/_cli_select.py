"""``hmmfast select DATA``: how many states? The table of hmmfast.select on a data file.

Fits one model per candidate number of states (the family and options of ``hmmfast
fit``), prints one row per candidate (n_components, log-likelihood, free parameters,
converged, the criterion) with the best marked ``*`` (``--json``: one JSON object),
and can save the best model (``-o``) and plot the criterion (``--plot``).
"""

import argparse
import json
import math
import sys
import warnings

from ._options import at_least

CRITERIA = ("bic", "aic", "aicc", "cv")


def _state_counts(text):
    """argparse type: "2-6" (a range, both ends included) or "2,3,5"."""
    try:
        if "-" in text:
            low, high = (int(v) for v in text.split("-", 1))
            values = list(range(low, high + 1))
        else:
            values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX or a comma list of integers, "
                                         f"got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected state counts >= 1, got {text!r}")
    return values


def add_parser(sub, add_common, number, epilog):
    """The ``select`` subcommand's options (``add_common``: the data/threads options
    every data command takes; ``number``: the float argument type)."""
    p = sub.add_parser("select", help="choose the number of states (BIC, AIC, AICc or "
                       "cross-validation)", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=epilog,
                       description="Fit one model per candidate number of states to DATA "
                                   "and rank them by --criterion;\nprint the table, the best "
                                   "marked '*' (see hmmfast.select).")
    p.add_argument("data", metavar="DATA", help="data file ('-': standard input)")
    p.add_argument("--family", choices=("categorical", "gaussian", "gmm", "poisson",
                                        "multinomial"),
                   default="categorical", help="emission family (default categorical)")
    p.add_argument("--states", type=_state_counts, default=[1, 2, 3, 4, 5], metavar="LIST",
                   help="candidates: MIN-MAX or a comma list (default 1-5)")
    p.add_argument("--criterion", choices=CRITERIA, default="bic",
                   help="bic (default), aic, aicc, or cv (held-out log-likelihood)")
    p.add_argument("--folds", type=at_least(2), default=5, metavar="K",
                   help="cv: folds of whole sequences (default 5)")
    p.add_argument("--iter", type=at_least(0), default=100, metavar="K",
                   help="most EM iterations per fit (default 100)")
    p.add_argument("--tol", type=number, default=1e-2,
                   help="stop when the log-likelihood gains less (default 0.01)")
    p.add_argument("--n-init", type=at_least(1), default=1, metavar="R",
                   help="restarts per fit; the best is kept (default 1)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the initialisations and folds (default 0)")
    p.add_argument("--covariance-type", choices=("diag", "full", "spherical", "tied"),
                   help="gaussian and gmm: covariance form (default diag)")
    p.add_argument("--n-mix", type=at_least(1), metavar="K",
                   help="gmm: mixture components per state (default 1)")
    p.add_argument("--n-features", type=at_least(1), metavar="M",
                   help="categorical: number of symbols (default: largest symbol + 1)")
    p.add_argument("--min-covar", type=number, metavar="X",
                   help="gaussian and gmm: floor on the covariances' diagonal "
                        "(default 0.001)")
    p.add_argument("-o", "--output", metavar="MODEL",
                   help="save the best model (fitted to all the data) to this file")
    p.add_argument("--plot", metavar="FILE",
                   help='write the criterion against n_components to this PNG (needs '
                        'matplotlib: pip install "hmmfast[plot]")')
    p.add_argument("--json", action="store_true",
                   help='print {"criterion", "best", "table": [...]} as one JSON object')
    add_common(p)
    return p


def run(args):
    """hmmfast select DATA: returns the exit status."""
    from . import ConvergenceWarning, select
    from ._cli_commands import open_output
    from ._cli_data import DataSource
    from ._cli_fit import _classes, check_fit_options

    check_fit_options(args, args.family)
    cls = _classes()[args.family]
    kwargs = {"n_iter": args.iter, "tol": args.tol, "n_init": args.n_init,
              "random_state": args.seed, "n_threads": args.threads}
    for name in ("covariance_type", "n_mix", "n_features", "min_covar"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)

    def make_model(n):
        return cls(n_components=n, **kwargs)

    if args.plot is not None:
        try:
            import matplotlib.figure  # noqa: F401
        except ImportError as exc:
            from ._cli import MissingExtra

            raise MissingExtra(f"select --plot draws with matplotlib, which cannot be "
                               f'imported ({exc}): pip install "hmmfast[plot]" (or leave '
                               "out --plot)") from None
    inputs = [("data", args.data)]
    # the outputs are opened (their temporary files created) before any fit runs
    with open_output(args.output, inputs, default_stdout=False) as model_out, \
            open_output(args.plot, inputs, default_stdout=False) as png:
        source = DataSource(args.data, symbols=args.family == "categorical",
                            n_symbols=args.n_features, dim=args.dim, ids=args.ids,
                            fmt=args.format)
        X, lengths = source.read_all()
        with warnings.catch_warnings():  # the table's "converged" column says it
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = select(make_model, X, lengths, args.states, args.criterion, args.folds,
                            random_state=args.seed)
        table = [{k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                  for k, v in row.items()} for row in result.table]  # JSON: inf is null
        if args.json:
            print(json.dumps({"criterion": result.criterion, "best": result.best,
                              "table": table}))
        else:
            print(result)
        if model_out is not None:
            from . import _io

            _io.write_members(model_out, _io.encode(
                result.best_model, args.output,
                {"selected_by": result.criterion, "table": table}))
        if png is not None:
            result.plot().savefig(png, format="png")
    if not args.quiet:
        wrote = f"; wrote {args.output}" if args.output else ""
        print(f"hmmfast: best n_components={result.best} by {result.criterion} among "
              f"{args.states}{wrote}", file=sys.stderr)
    return 0
