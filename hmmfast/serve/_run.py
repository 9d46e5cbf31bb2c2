"""Running the service: ``hmmfast serve MODEL_FILE`` (uvicorn, one process).

One process holds the models, the swaps, the A/B split and the metrics; ``--threads``
sets the kernels' threads. Scale out with more instances behind a load balancer. The
server binds to 127.0.0.1 unless told otherwise.
"""

import argparse
import ipaddress
import logging
import sys

from .._options import at_least
from ._auth import ENV_VAR, read_token
from ._settings import Settings

log = logging.getLogger("hmmfast.serve")

LOOPBACK = ("localhost",)


def add_arguments(parser):
    """Add ``hmmfast serve``'s arguments to an argparse parser."""
    parser.add_argument("model", metavar="MODEL_FILE",
                        help="model file to serve (from 'hmmfast fit' or model.save)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1, this machine only; "
                             "0.0.0.0 for every interface)")
    parser.add_argument("--port", type=at_least(0), default=8000, help="port (default 8000)")
    parser.add_argument("--threads", type=at_least(1), metavar="N", default=1,
                        help="kernel threads per request (default 1: the kernels are a "
                             "small part of a request; more pay for big batches on "
                             "otherwise idle cores)")
    parser.add_argument("--admin-token-file", metavar="FILE",
                        help=f"file holding the admin token (default: ${ENV_VAR}; without "
                             "either, the admin endpoints are off)")
    parser.add_argument("--max-body-bytes", type=at_least(1), metavar="B",
                        default=Settings.max_body_bytes,
                        help="largest request body (default 16 MiB)")
    parser.add_argument("--max-sessions", type=at_least(1), metavar="S",
                        default=Settings.max_sessions,
                        help="most sessions per request (default 10000)")
    parser.add_argument("--max-observations", type=at_least(1), metavar="T",
                        default=Settings.max_observations,
                        help="most observations per session (default 100000)")
    parser.add_argument("--drift-window", type=at_least(1), metavar="W",
                        default=Settings.drift_window,
                        help="sessions in the likelihood-drift window (default 1000)")
    parser.add_argument("--log-paths", type=_share, metavar="RATE", default=0.0,
                        help="log the Viterbi paths of this share of /v1/anomaly sessions "
                             "(e.g. 0.01; seeded) to --log-paths-file (default 0: off)")
    parser.add_argument("--log-paths-file", metavar="FILE",
                        default=Settings.log_paths_file,
                        help="the path log, JSON lines rotated at 64 MiB (default "
                             "hmmfast-paths.jsonl)")
    parser.add_argument("--log-io", metavar="FILE", default=None,
                        help="log every answered data request and its reply to FILE "
                             "(JSON lines rotated at 64 MiB; default off)")
    parser.add_argument("--drift-keep-anomalous", action="store_true",
                        help="let /v1/anomaly sessions judged anomalous into the drift "
                             "window (default: kept out)")
    parser.add_argument("--log-level", default="info",
                        choices=("critical", "error", "warning", "info", "debug"),
                        help="log level (default info)")
    parser.add_argument("--access-log", action="store_true",
                        help="log every request (off by default: it costs latency)")
    return parser


def _share(text):
    """argparse type: a share in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1], got {text!r}")
    return value


def build_parser(prog="hmmfast serve"):
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve an hmmfast model over HTTP: POST /v1/score, "
        "/v1/decode, /v1/anomaly; GET /v1/models, /healthz, /readyz, /metrics.")
    return add_arguments(parser)


def _is_loopback(host):
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _configure_logging(level):
    logger = logging.getLogger("hmmfast.serve")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())


def run(model_path, *, host="127.0.0.1", port=8000, admin_token_file=None,
        log_level="info", access_log=False, **app_options):
    """Serve ``model_path`` with uvicorn until interrupted (blocking).

    Parameters
    ----------
    model_path : str or os.PathLike
    host, port
        Where to listen (default 127.0.0.1:8000).
    admin_token_file : str, optional
        The admin token's file; default ``$HMMFAST_ADMIN_TOKEN``; neither: admin off.
    log_level : str
    access_log : bool
    **app_options
        :func:`hmmfast.serve.create_app`'s options (threads, max_body_bytes, ...).
    """
    import uvicorn

    from ._app import create_app

    _configure_logging(log_level)
    token = read_token(admin_token_file)
    app = create_app(model_path, admin_token=token, **app_options)
    if not _is_loopback(host):
        log.warning("hmmfast serve: listening on %s, reachable from other machines; the "
                    "service speaks plain HTTP: put TLS in front of it", host)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            access_log=access_log, lifespan="on", server_header=False,
                            timeout_graceful_shutdown=30)
    uvicorn.Server(config).run()


def run_args(args):
    """Run from parsed arguments (``add_arguments``'s); returns the exit status: 0 after
    a clean shutdown, 1 when the model file, the token or the settings are refused."""
    try:
        run(args.model, host=args.host, port=args.port,
            admin_token_file=args.admin_token_file, log_level=args.log_level,
            access_log=args.access_log, threads=args.threads,
            max_body_bytes=args.max_body_bytes, max_sessions=args.max_sessions,
            max_observations=args.max_observations, drift_window=args.drift_window,
            log_paths=args.log_paths, log_paths_file=args.log_paths_file, log_io=args.log_io,
            drift_keep_anomalous=args.drift_keep_anomalous)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"hmmfast: error: {where}{exc.strerror or exc}\n")
        return 1
    except ValueError as exc:  # ModelFileError, a bad token or setting
        sys.stderr.write(f"hmmfast: error: {' '.join(str(exc).split())}\n")
        return 1
    return 0


def main(argv=None):
    """``python -m hmmfast.serve MODEL_FILE [options]``; returns the exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    return run_args(args)
