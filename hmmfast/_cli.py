"""The ``hmmfast`` command line (also ``python -m hmmfast``).

``main(argv) -> int`` builds one argparse tree and runs one command: demo, fit, score,
decode, info, bench, serve (the HTTP service of the [serve] extra, whose own parser
hmmfast.serve provides). Exit status: 0 success, 1 failure (a bad data or model file, an
error from the library), 2 usage (bad or conflicting options), 130 interrupted (Ctrl-C),
141 when the reader of the output went away (``| head``). Every expected error is one
line on stderr, ``hmmfast: error: ...``, without a traceback; an unexpected one (a bug)
keeps its traceback. The commands live in hmmfast._cli_commands, the data readers in
hmmfast._cli_data, progress reports in hmmfast._cli_progress, the benchmark in
hmmfast._bench.
"""

import argparse
import importlib
import os
import sys

DATA_HELP = """\
data files (by extension; --format overrides):
  text     one sequence per line; observations separated by spaces, tabs or commas.
           Categorical models: integer symbols >= 0. Continuous models: numbers, --dim
           per frame (default: the model's n_features; 1 for fit). With --ids the first
           field of each line is the sequence's id. Blank lines are errors. "-" reads
           standard input.
  .jsonl   one JSON value per line: a list of observations (symbols, numbers or frames
           as lists of numbers), or {"id": ..., "obs": [...]}.
  .npz     arrays X (the sequences concatenated), optional lengths and ids.
  .npy     one sequence.
"""

APPLY_EPILOG = {
    "score": DATA_HELP + """
output: one line per sequence, in input order, no header:
  text     SCORE, or ID<TAB>SCORE when the input carries ids. SCORE is log P(sequence)
           written as Python's repr writes a float (shortest round-trip decimal);
           a sequence the model cannot produce scores -inf.
  --json   {"id": ..., "score": SCORE} per line ("id" only when the input carries
           ids); an impossible sequence has "score": null.
""",
    "decode": DATA_HELP + """
output: one line per sequence, in input order, no header:
  text     LOGPROB<TAB>S0 S1 S2 ..., or ID<TAB>LOGPROB<TAB>S0 S1 ... when the input
           carries ids. LOGPROB is log P(sequence, decoded path) written as Python's
           repr writes a float; the states are space-separated integers. A sequence
           the model cannot produce is written as -inf with an empty state field
           (the line ends with the tab).
  --json   {"id": ..., "logprob": LOGPROB, "states": [S0, S1, ...]} per line; an
           impossible sequence has "logprob": null and "states": [].
""",
}


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``hmmfast: error: ...`` and exit status 2."""

    def error(self, message):
        command = self.prog.split(maxsplit=1)
        hint = f"see '{self.prog} --help'" if len(command) > 1 else "see 'hmmfast --help'"
        sys.stderr.write(f"hmmfast: error: {message} ({hint})\n")
        sys.exit(2)


def _count(minimum):
    def convert(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    convert.__name__ = f"integer >= {minimum}"
    return convert


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _add_common(p, *, model_data=True):
    if model_data:
        p.add_argument("--format", choices=("text", "jsonl", "npz", "npy"),
                       help="data format (default: from the file's extension)")
        p.add_argument("--ids", action="store_true",
                       help="text data: each line's first field is the sequence's id")
        p.add_argument("--dim", type=_count(1), metavar="D",
                       help="continuous models: numbers per frame in text and flat JSON "
                            "lists")
    p.add_argument("--threads", type=_count(1), metavar="N",
                   help="threads (default: every core)")
    p.add_argument("--progress", action="store_true",
                   help="report progress on stderr even when it is not a terminal")
    p.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")


def build_parser():
    parser = Parser(prog="hmmfast", description="Fast Hidden Markov Models: fit, score and "
                    "decode sequences from files.",
                    epilog="Exit status: 0 ok, 1 failure, 2 bad usage, 130 interrupted. "
                           "Run 'hmmfast COMMAND --help' for a command's options.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"hmmfast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    raw = argparse.RawDescriptionHelpFormatter

    demo = sub.add_parser("demo", help="the dishonest casino, or anomaly detection on "
                          "simulated shop sessions (demo clickstream)",
                          description="casino (default): sample rolls of the dishonest "
                                      "casino, decode them and print the accuracy. "
                                      "clickstream: train on normal shop sessions, flag bots "
                                      "and scrapers (hmmfast.monitor) and compare with an "
                                      "order-blind baseline.")
    demo.add_argument("case", nargs="?", choices=("casino", "clickstream"), default="casino",
                      help="which demo (default casino)")
    demo.add_argument("--rolls", type=_count(1), default=300, help="casino: number of rolls "
                      "(default 300)")
    demo.add_argument("--seed", type=int, default=None,
                      help="random seed (default 7 for casino, 0 for clickstream)")
    demo.add_argument("--plot", metavar="FILE", default=None,
                      help='clickstream: write the figures to this PNG (needs matplotlib: '
                           'pip install "hmmfast[plot]")')
    demo.add_argument("--train", type=_count(100), default=3000,
                      help="clickstream: normal training sessions (default 3000)")

    fit = sub.add_parser("fit", help="fit a model to sequences (Baum-Welch), write a model "
                         "file", formatter_class=raw, epilog=DATA_HELP,
                         description="Fit a model to the sequences in DATA (Baum-Welch) and "
                                     "save it to MODEL,\nan .npz model file (see 'hmmfast "
                                     "info'). Progress goes to stderr on a terminal.")
    fit.add_argument("data", metavar="DATA", help="data file ('-': standard input)")
    fit.add_argument("-o", "--output", required=True, metavar="MODEL",
                     help="model file to write (replaced atomically)")
    fit.add_argument("--family", choices=("categorical", "gaussian", "gmm", "poisson"),
                     default="categorical", help="emission family (default categorical)")
    fit.add_argument("--states", type=_count(1), default=2, metavar="N",
                     help="hidden states (default 2)")
    fit.add_argument("--iter", type=_count(0), default=100, metavar="K",
                     help="most EM iterations (default 100)")
    fit.add_argument("--tol", type=_number, default=1e-2,
                     help="stop when the log-likelihood gains less (default 0.01)")
    fit.add_argument("--n-init", type=_count(1), default=1, metavar="R",
                     help="restarts from random initialisations; the best is kept "
                          "(default 1)")
    fit.add_argument("--seed", type=int, default=None,
                     help="random seed of the initialisation (default: random)")
    fit.add_argument("--covariance-type", choices=("diag", "full", "spherical", "tied"),
                     help="gaussian and gmm: covariance form (default diag)")
    fit.add_argument("--n-mix", type=_count(1), metavar="K",
                     help="gmm: mixture components per state (default 1)")
    fit.add_argument("--n-features", type=_count(1), metavar="M",
                     help="categorical: number of symbols (default: largest symbol + 1)")
    _add_common(fit)

    for name, what in (("score", "the log-likelihood of each sequence"),
                       ("decode", "the most likely state path of each sequence")):
        p = sub.add_parser(name, help=what, formatter_class=raw, epilog=APPLY_EPILOG[name],
                           description=f"Print {what} in DATA under the model in\n"
                                       "MODEL, one line per sequence, in batches of --chunk "
                                       "sequences.")
        p.add_argument("model", metavar="MODEL", help="model file (from 'hmmfast fit' or "
                       "model.save)")
        p.add_argument("data", metavar="DATA", help="data file ('-': standard input)")
        p.add_argument("-o", "--output", metavar="FILE",
                       help="write the results to FILE (default: standard output)")
        p.add_argument("--json", action="store_true", help="one JSON object per line")
        if name == "decode":
            p.add_argument("--algorithm", choices=("viterbi", "map"), default="viterbi",
                           help="viterbi: the jointly most likely path (default); map: the "
                                "most likely state at each step")
        p.add_argument("--chunk", type=_count(1), default=100_000, metavar="N",
                       help="sequences per batch (bounds memory; default 100000)")
        _add_common(p)

    info = sub.add_parser("info", help="show a model file's header and parameter shapes",
                          description="Print a model file's header (class, sizes, version, "
                                      "fingerprint, fit record, metadata) and parameter "
                                      "shapes, without loading the parameters.")
    info.add_argument("model", metavar="MODEL", help="model file")
    info.add_argument("--json", action="store_true", help="the header as JSON")
    info.add_argument("--verify", action="store_true",
                      help="also load the model: check every checksum and parameter")

    bench = sub.add_parser("bench", help="run the built-in benchmark (against hmmlearn when "
                           "installed)",
                           description="Latency of score/decode (N=5, M=10, T=100) and batch "
                                       "throughput, against hmmlearn when it is installed; "
                                       "writes a markdown table.")
    bench.add_argument("--out", metavar="FILE.md", help="write the table to a file "
                       "(default: standard output)")
    bench.add_argument("--png", metavar="FILE.png", help="also draw a chart (needs "
                       "matplotlib)")
    bench.add_argument("--quick", action="store_true", help="fewer repeats (a few seconds)")
    bench.add_argument("--threads", type=_count(1), metavar="N",
                       help="threads for the batch rows (default: every core)")
    # listed here for --help; main() hands "serve" to hmmfast.serve's own parser, so the
    # service's packages are imported only when it runs
    sub.add_parser("serve", help="serve a model file over HTTP (extra [serve]; see "
                   "'hmmfast serve --help')", add_help=False)
    return parser


def serve(argv):
    """``hmmfast serve ...``: the options are parsed (and --help answered) without the
    [serve] extra; running the service needs it."""
    from ._serve_args import add_arguments

    parser = Parser(prog="hmmfast serve", description="Serve a model file over HTTP "
                    "(POST /v1/score, /v1/decode, /v1/anomaly; GET /metrics; the Open "
                    "Inference Protocol under /v2). Needs the [serve] extra.")
    args = add_arguments(parser).parse_args(argv)
    try:
        service = importlib.import_module("hmmfast.serve")
    except ImportError as exc:
        sys.stderr.write(f"hmmfast: error: {_one_line(exc)}\n")
        return 1
    return service.run_args(args)


def _one_line(exc):
    text = " ".join(str(exc).split()) if str(exc) else type(exc).__name__
    return text


def _os_error(exc):
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return _one_line(exc)


def run(args, argv):
    from . import _cli_commands as C

    if args.command == "demo":
        if args.case == "clickstream":
            from ._demo_clickstream import run as clickstream

            clickstream(n_train=args.train, seed=0 if args.seed is None else args.seed,
                        plot=args.plot)
            return 0
        from ._demo import run as demo

        demo(n_rolls=args.rolls, seed=7 if args.seed is None else args.seed)
        return 0
    if args.command == "fit":
        return C.fit(args, argv)
    if args.command in ("score", "decode"):
        return C.apply(args, args.command)
    if args.command == "info":
        return C.info(args)
    if args.command == "bench":
        from ._bench import main as bench

        C.check_writable(args.out, "the table")
        C.check_writable(args.png, "the chart")
        return bench(out=args.out, png=args.png, quick=args.quick, n_threads=args.threads)
    raise AssertionError(args.command)


def main(argv=None):
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:
        try:
            return serve(argv[1:])
        except KeyboardInterrupt:
            return 130
    args = build_parser().parse_args(argv)
    from ._cli_data import UsageError

    try:
        return run(args, argv)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (| head): no message, and none at exit either
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except UsageError as exc:
        sys.stderr.write(f"hmmfast: error: {_one_line(exc)} (see 'hmmfast {args.command} "
                         "--help')\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"hmmfast: error: {_os_error(exc)}\n")
        return 1
    except (ValueError, MemoryError) as exc:
        if isinstance(exc, MemoryError):
            exc = "out of memory" + (f" ({exc})" if str(exc) else "")
        sys.stderr.write(f"hmmfast: error: {_one_line(exc)}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
