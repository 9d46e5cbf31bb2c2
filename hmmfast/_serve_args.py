"""``hmmfast serve``'s command-line options, importable without the [serve] extra.

``hmmfast serve --help`` (and a usage error such as ``--port 80000``) is answered from
here before the service's packages are imported, so it works without them; running the
service then needs the extra (hmmfast.serve). Defaults are those of
:class:`hmmfast.serve.Settings` and of :func:`hmmfast.serve.run`, repeated in the help.
"""

from ._options import at_least  # the command line's integer option type

#: Defaults of the connection options (seconds, counts), measured and explained in the
#: README ("Connections").
TIMEOUT_KEEP_ALIVE = 75
TIMEOUT_HEADER = 10.0
LIMIT_CONCURRENCY = 1000
BACKLOG = 2048
DRAIN_SECONDS = 5.0
GRACEFUL_SECONDS = 20


def _port(text):
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0-65535, got {value}")
    return value


def _seconds(text):
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") \
            from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text}")
    return value


def _drain(text):
    import argparse

    value = 0.0 if text.strip() in ("0", "0.0") else None
    if value is None:
        value = _seconds(text)
    if value > 600:
        raise argparse.ArgumentTypeError(f"expected at most 600 seconds, got {text}")
    return value


def _share(text):
    """argparse type: a share in [0, 1]."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1], got {text!r}")
    return value


def add_arguments(parser):
    """Add ``hmmfast serve``'s arguments to an argparse parser."""
    parser.add_argument("model", metavar="MODEL_FILE",
                        help="model file to serve (from 'hmmfast fit' or model.save)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1, this machine only; "
                             "0.0.0.0 for every interface)")
    parser.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    parser.add_argument("--threads", type=at_least(1), metavar="N", default=1,
                        help="kernel threads per request (default 1: the kernels are a "
                             "small part of a request; more pay for big batches on "
                             "otherwise idle cores)")
    parser.add_argument("--admin-token-file", metavar="FILE",
                        help="file holding the admin token (default: $HMMFAST_ADMIN_TOKEN; "
                             "without either, the admin endpoints are off)")
    parser.add_argument("--model-name", metavar="NAME", default="hmmfast",
                        help="the model's name in the Open Inference Protocol's paths "
                             "(/v2/models/NAME) and the state file's name (default hmmfast)")
    parser.add_argument("--model-dir", metavar="DIR",
                        help="the only directory admin calls may load model files from "
                             "(default: MODEL_FILE's directory)")
    state = parser.add_mutually_exclusive_group()
    state.add_argument("--state-dir", metavar="DIR",
                       help="keep the live model, held versions and A/B split in a state "
                            "file there, restored on restart (default: MODEL_FILE's "
                            "directory)")
    state.add_argument("--no-state", action="store_true",
                       help="keep no state file (a restart serves MODEL_FILE)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-body-bytes", type=at_least(1), metavar="B",
                        default=16 * 1024 * 1024, help="largest request body (default 16 MiB)")
    limits.add_argument("--max-sessions", type=at_least(1), metavar="S", default=10_000,
                        help="most sessions per request (default 10000)")
    limits.add_argument("--max-observations", type=at_least(1), metavar="T", default=100_000,
                        help="most observations per session (default 100000)")
    limits.add_argument("--load-timeout", type=_seconds, metavar="SEC", default=60.0,
                        help="seconds an admin call's model load may take (default 60)")
    conns = parser.add_argument_group("connections")
    conns.add_argument("--timeout-keep-alive", type=at_least(1), metavar="SEC",
                       default=TIMEOUT_KEEP_ALIVE,
                       help="close a kept-alive connection idle this long (default "
                            f"{TIMEOUT_KEEP_ALIVE}; keep it above the load balancer's idle "
                            "timeout)")
    conns.add_argument("--timeout-header", type=_seconds, metavar="SEC",
                       default=TIMEOUT_HEADER,
                       help="close a connection whose request head takes longer to arrive "
                            f"(default {TIMEOUT_HEADER:g})")
    conns.add_argument("--timeout-body", type=_seconds, metavar="SEC", default=30.0,
                       help="answer 408 to a request body that takes longer to arrive "
                            "(default 30)")
    conns.add_argument("--limit-concurrency", type=at_least(1), metavar="N",
                       default=LIMIT_CONCURRENCY,
                       help="connections and requests at once before answering 503 "
                            f"(default {LIMIT_CONCURRENCY})")
    conns.add_argument("--backlog", type=at_least(1), metavar="N", default=BACKLOG,
                       help=f"connections the kernel queues before accept (default {BACKLOG})")
    conns.add_argument("--drain-seconds", type=_drain, metavar="SEC", default=DRAIN_SECONDS,
                       help="on SIGTERM, answer /readyz 503 while still serving this long "
                            "before closing the listener (default "
                            f"{DRAIN_SECONDS:g}; Ctrl-C does not wait)")
    parser.add_argument("--drift-window", type=at_least(1), metavar="W", default=1_000,
                        help="sessions in the likelihood-drift window (default 1000)")
    parser.add_argument("--drift-keep-anomalous", action="store_true",
                        help="let /v1/anomaly sessions judged anomalous into the drift "
                             "window (default: kept out)")
    logs = parser.add_argument_group("inference logs")
    logs.add_argument("--log-paths", type=_share, metavar="RATE", default=0.0,
                      help="log the Viterbi paths of this share of /v1/anomaly sessions "
                           "(e.g. 0.01; seeded) to --log-paths-file (default 0: off)")
    logs.add_argument("--log-paths-file", metavar="FILE", default="hmmfast-paths.jsonl",
                      help="the path log, JSON lines rotated at 64 MiB (default "
                           "hmmfast-paths.jsonl)")
    logs.add_argument("--log-io", metavar="FILE", default=None,
                      help="log every answered data request and its reply to FILE (JSON "
                           "lines rotated at 64 MiB; default off)")
    parser.add_argument("--log-level", default="info",
                        choices=("critical", "error", "warning", "info", "debug"),
                        help="log level (default info)")
    parser.add_argument("--access-log", action="store_true",
                        help="log every request (off by default: it costs latency)")
    return parser
