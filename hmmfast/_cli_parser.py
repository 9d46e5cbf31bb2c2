"""The command line's argparse tree: every command and option, with their help texts.

Options that only some families or combinations take are checked by the commands
(hmmfast._cli_fit, hmmfast._cli_commands), which raise UsageError (exit status 2).
"""

import argparse

from ._cli import Parser, _number
from ._options import at_least

DATA_HELP = """\
data files (by extension, after a .gz; --format overrides; gzip-compressed text and
JSON lines are read as such, whatever their name):
  text     one sequence per line; observations separated by whitespace or by one comma
           (1,,2 and a leading or trailing comma are empty fields: errors).
           Categorical models: integer symbols >= 0. Continuous models: numbers, --dim
           per frame (default: the model's n_features; 1 for fit). With --ids the first
           field of each line is the sequence's id. Blank lines are errors. "-" reads
           standard input.
  .jsonl   one JSON value per line: a list of observations (symbols, numbers or frames
           as lists of numbers), or {"id": ..., "obs": [...]}.
  .npz     arrays X (the sequences concatenated), optional lengths and ids.
  .npy     one sequence.
"""

OUTPUT_HELP = """
-o FILE: a regular file is replaced atomically (a temporary file beside it, renamed when
the run succeeds; symlinks followed); anything else (/dev/null, a FIFO, >(gzip > x.gz))
is written in place. FILE must not be an input.
"""

APPLY_EPILOG = {
    "score": DATA_HELP + """
output: one line per sequence, in input order, no header:
  text     SCORE, or ID<TAB>SCORE when the input carries ids. SCORE is log P(sequence)
           written as Python's repr writes a float (shortest round-trip decimal);
           a sequence the model cannot produce scores -inf. --per-step adds a field of
           the per-step log conditionals log P(o_t | o_<t), space-separated (they sum to
           SCORE).
  --json   {"id": ..., "score": SCORE} per line ("id" only when the input carries
           ids); an impossible sequence has "score": null. --per-step adds
           "per_step": [...] (-inf steps as null).
""" + OUTPUT_HELP,
    "decode": DATA_HELP + """
output: one line per sequence, in input order, no header:
  text     LOGPROB<TAB>S0 S1 S2 ..., or ID<TAB>LOGPROB<TAB>S0 S1 ... when the input
           carries ids. LOGPROB is log P(sequence, decoded path) written as Python's
           repr writes a float; the states are space-separated integers. A sequence
           the model cannot produce is written as -inf with an empty state field
           (the line ends with the tab). --posteriors adds a field: each step's
           posterior probability of its decoded state. --nbest N writes N
           LOGPROB<TAB>STATES pairs on the line, best first (fewer when fewer paths
           are possible).
  --json   {"id": ..., "logprob": LOGPROB, "states": [S0, S1, ...]} per line; an
           impossible sequence has "logprob": null and "states": []. --posteriors
           adds "posteriors": [...]; --nbest N writes {"id": ..., "paths":
           [{"logprob": ..., "states": [...]}, ...]}.
""" + OUTPUT_HELP,
    "detect": DATA_HELP + """
The model file must carry a fitted detector in its metadata, saved with
model.save(path, metadata={"anomaly_detector": detector.to_dict()}).
output: one line per session, in input order, no header:
  text     LEVEL<TAB>SCORE<TAB>REASONS, or ID<TAB>... when the input carries ids.
           LEVEL is normal, suspicious or anomalous; SCORE the detector's score;
           REASONS name=value pairs (switch_rate, switch_rate_pct, longest_run,
           longest_run_pct, length, length_pct, min_step, unseen), space-separated.
  --json   {"id": ..., "level": ..., "score": ..., <the reasons>} per line (NaN and
           infinities as null).
""" + OUTPUT_HELP,
}

EXIT_STATUS = ("Exit status: 0 ok; 1 failure (a bad data or model file, a library error, "
               "an I/O error, a failed check); 2 bad usage; 130 interrupted (SIGINT, "
               "Ctrl-C); 141 the reader of the output went away; 143 terminated "
               "(SIGTERM). Run 'hmmfast COMMAND --help' for a command's options.")


def _key_value(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def add_data_options(p):
    p.add_argument("--format", choices=("text", "jsonl", "npz", "npy"),
                   help="data format (default: from the file's extension)")
    p.add_argument("--ids", action="store_true",
                   help="text data: each line's first field is the sequence's id")
    p.add_argument("--dim", type=at_least(1), metavar="D",
                   help="continuous models: numbers per frame in text and flat JSON lists")


def add_run_options(p):
    p.add_argument("--threads", type=at_least(1), metavar="N",
                   help="threads (default: automatic, as the library's n_threads=None: "
                        "a team only where it gains, on idle CPUs)")
    p.add_argument("--progress", action="store_true",
                   help="report progress on stderr even when it is not a terminal")
    p.add_argument("--quiet", action="store_true", help="no progress or summary on stderr")


def build_parser():
    parser = Parser(prog="hmmfast", description="Fast Hidden Markov Models: fit, score and "
                    "decode sequences from files.", epilog=EXIT_STATUS)
    from . import __version__
    parser.add_argument("--version", action="version", version=f"hmmfast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _demo(sub)
    _fit(sub)
    from . import _cli_select

    _cli_select.add_parser(sub, _select_common, _number, DATA_HELP)
    for name in ("score", "decode", "detect"):
        _apply(sub, name)
    _sample(sub)
    _info(sub)
    _bench(sub)
    # listed here for --help; main() hands "serve" to hmmfast.serve's own parser, so the
    # service's packages are imported only when it runs
    sub.add_parser("serve", help="serve a model file over HTTP (extra [serve]; see "
                   "'hmmfast serve --help')", add_help=False)
    return parser


def _select_common(p):
    add_data_options(p)
    add_run_options(p)


def _demo(sub):
    demo = sub.add_parser("demo", help="the dishonest casino, or anomaly detection on "
                          "simulated shop sessions (demo clickstream)",
                          description="casino (default): sample rolls of the dishonest "
                                      "casino, decode them and print the accuracy. "
                                      "clickstream: train on normal shop sessions, flag bots "
                                      "and scrapers (hmmfast.monitor) and compare with an "
                                      "order-blind baseline.")
    demo.add_argument("case", nargs="?", choices=("casino", "clickstream"), default="casino",
                      help="which demo (default casino)")
    demo.add_argument("--rolls", type=at_least(1), default=300, help="casino: number of rolls "
                      "(default 300)")
    demo.add_argument("--seed", type=int, default=None,
                      help="random seed (default 7 for casino, 0 for clickstream)")
    demo.add_argument("--plot", metavar="FILE", default=None,
                      help='clickstream: write the figures to this PNG (needs matplotlib: '
                           'pip install "hmmfast[plot]")')
    demo.add_argument("--train", type=at_least(100), default=3000,
                      help="clickstream: normal training sessions (default 3000)")


def _fit(sub):
    raw = argparse.RawDescriptionHelpFormatter
    fit = sub.add_parser(
        "fit", help="fit a model to sequences (Baum-Welch), write a model file",
        formatter_class=raw, epilog=DATA_HELP + OUTPUT_HELP,
        description="Fit a model to the sequences in DATA (Baum-Welch) and save it to "
                    "MODEL,\nan .npz model file (see 'hmmfast info'). Progress goes to "
                    "stderr on a terminal.\nWith --init-from, start from a saved model's "
                    "parameters and settings (a warm start:\nevery parameter kept unless "
                    "--init-params names it; options given here override\nits settings).")
    fit.add_argument("data", metavar="DATA", help="data file ('-': standard input)")
    fit.add_argument("-o", "--output", required=True, metavar="MODEL",
                     help="model file to write (replaced atomically; checked before the fit)")
    fit.add_argument("--init-from", metavar="MODEL",
                     help="start from this model file's parameters and settings")
    fit.add_argument("--family", choices=("categorical", "gaussian", "gmm", "poisson",
                                          "multinomial"),
                     help="emission family (default categorical)")
    fit.add_argument("--states", type=at_least(1), metavar="N", help="hidden states (default 2)")
    fit.add_argument("--iter", type=at_least(0), metavar="K",
                     help="most EM iterations (default 100)")
    fit.add_argument("--tol", type=_number,
                     help="stop when the log-likelihood gains less (default 0.01)")
    fit.add_argument("--n-init", type=at_least(1), metavar="R",
                     help="restarts from random initialisations; the best is kept "
                          "(default 1)")
    fit.add_argument("--seed", type=int, default=None,
                     help="random seed of the initialisation (default: one is drawn and "
                          "recorded in the model file; 'hmmfast info' shows it)")
    fit.add_argument("--params", metavar="LETTERS",
                     help="parameters EM updates: s startprob, t transmat, e emissionprob, "
                          "m means, c covars, w mixture weights, l lambdas (default: all "
                          "of the family's)")
    fit.add_argument("--init-params", metavar="LETTERS",
                     help="parameters initialised from the data before EM (default: all; "
                          "with --init-from: none)")
    fit.add_argument("--implementation", choices=("scaling", "log"),
                     help="forward-backward arithmetic (default scaling)")
    fit.add_argument("--covariance-type", choices=("diag", "full", "spherical", "tied"),
                     help="gaussian and gmm: covariance form (default diag)")
    fit.add_argument("--n-mix", type=at_least(1), metavar="K",
                     help="gmm: mixture components per state (default 1)")
    fit.add_argument("--min-covar", type=_number, metavar="X",
                     help="gaussian and gmm: floor on the covariances' diagonal "
                          "(default 0.001)")
    fit.add_argument("--n-features", type=at_least(1), metavar="M",
                     help="categorical: number of symbols (default: largest symbol + 1)")
    fit.add_argument("--prior", type=_key_value, action="append", default=[],
                     metavar="NAME=VALUE",
                     help="a prior of the family's constructor (startprob_prior, "
                          "transmat_prior, emissionprob_prior, means_prior, means_weight, "
                          "covars_prior, covars_weight, weights_prior, lambdas_prior, "
                          "lambdas_weight...): a number or a JSON array; repeatable")
    fit.add_argument("--metadata", type=_key_value, action="append", default=[],
                     metavar="KEY=VALUE",
                     help="store KEY in the model file's metadata (VALUE as JSON when it "
                          "parses, else as a string); repeatable")
    add_data_options(fit)
    add_run_options(fit)


def _apply(sub, name):
    what = {"score": "the log-likelihood of each sequence",
            "decode": "the most likely state path of each sequence",
            "detect": "the anomaly level and reasons of each session"}[name]
    p = sub.add_parser(name, help=what, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=APPLY_EPILOG[name],
                       description=f"Print {what} in DATA under the model in\nMODEL, one "
                                   "line per sequence, in batches of --chunk sequences.")
    p.add_argument("model", metavar="MODEL", help="model file (from 'hmmfast fit' or "
                   "model.save)")
    p.add_argument("data", metavar="DATA", help="data file ('-': standard input)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the results to FILE (default: standard output)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    if name == "score":
        p.add_argument("--per-step", action="store_true",
                       help="also write each step's log P(o_t | o_<t)")
    if name == "decode":
        p.add_argument("--algorithm", choices=("viterbi", "map"), default="viterbi",
                       help="viterbi: the jointly most likely path (default); map: the "
                            "most likely state at each step")
        p.add_argument("--beam", type=_number, metavar="W",
                       help="viterbi: keep states within W nats of the best (approximate)")
        p.add_argument("--max-active", type=at_least(1), metavar="K",
                       help="viterbi: keep at most K states per step (approximate)")
        p.add_argument("--min-active", type=at_least(1), metavar="K",
                       help="viterbi with --beam: keep at least K states per step")
        p.add_argument("--memory", choices=("full", "checkpoint"), default="full",
                       help="viterbi: full backpointers (default), or checkpoint: "
                            "O(sqrt(T) N) memory for very long sequences, same path")
        p.add_argument("--nbest", type=at_least(1), metavar="N",
                       help="the N most probable distinct paths of each sequence")
        p.add_argument("--posteriors", action="store_true",
                       help="also write each step's posterior probability of its state")
    p.add_argument("--chunk", type=at_least(1), default=100_000, metavar="N",
                   help="sequences per batch (bounds memory; default 100000)")
    add_data_options(p)
    add_run_options(p)


def _sample(sub):
    p = sub.add_parser("sample", help="draw sequences from a model",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Draw sequences from the model in MODEL (model.sample), "
                                   "one per line,\nin the data format score and decode "
                                   "read.",
                       epilog="output: text: one sequence per line, observations "
                              "space-separated (a frame's\nnumbers in a row: read it back "
                              "with --dim); --json: {\"obs\": [...], \"states\": [...]}\n"
                              "per line. Sequence k is model.sample(LENGTH, random_state=rng)"
                              " for k = 1..N,\nwith rng = numpy.random.RandomState(SEED)."
                              + OUTPUT_HELP)
    p.add_argument("model", metavar="MODEL", help="model file")
    p.add_argument("-n", "--sequences", type=at_least(1), default=1, metavar="N",
                   help="sequences to draw (default 1)")
    p.add_argument("--length", type=at_least(1), default=100, metavar="T",
                   help="observations per sequence (default 100)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed (default: drawn, and printed on stderr)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write to FILE (default: standard output)")
    p.add_argument("--json", action="store_true",
                   help="JSON lines with the states: {\"obs\": [...], \"states\": [...]}")
    p.add_argument("--quiet", action="store_true", help="no seed report on stderr")


def _info(sub):
    info = sub.add_parser(
        "info", help="show a model file's header; check data against it; compare two",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print a model file's header (class, sizes, version id, fingerprint, "
                    "fit record,\nmetadata) and parameter shapes, without loading the "
                    "parameters.\n--check-data DATA: does DATA hash to the training data "
                    "the fit recorded?\n(exit 0 yes, 1 no). --diff A B: what differs "
                    "between two model files\n(parameters, settings, fit records, "
                    "metadata; exit 0 none, 1 some).")
    info.add_argument("model", metavar="MODEL", nargs="?", help="model file")
    info.add_argument("--json", action="store_true", help="the header (or the diff) as JSON")
    info.add_argument("--verify", action="store_true",
                      help="also load the model: check every checksum and parameter")
    info.add_argument("--check-data", metavar="DATA",
                      help="hash DATA as fit does and compare with the fit record")
    info.add_argument("--diff", nargs=2, metavar=("A", "B"),
                      help="compare two model files instead of showing one")
    add_data_options(info)


def _bench(sub):
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
    bench.add_argument("--threads", type=at_least(1), metavar="N",
                       help="threads for the batch rows (default: every core)")
