"""Running the service: ``hmmfast serve MODEL_FILE`` (uvicorn, one process).

One process holds the models, the swaps, the A/B split and the metrics; ``--threads``
sets the kernels' threads. Scale out with more instances behind a load balancer. The
server binds to 127.0.0.1 unless told otherwise.

Start-up: the model file is loaded and validated, the saved state restored, then the
listening socket is bound (a port in use is a one-line error, exit 1, before anything
claims to be live), then uvicorn serves. Connections: ``--timeout-keep-alive``,
``--limit-concurrency`` and ``--backlog`` are uvicorn's; a request head must arrive
within ``--timeout-header`` of its first byte, and a new connection must send something
within ``--timeout-keep-alive`` (the HTTP protocol class below closes the connection), a
body within ``--timeout-body`` (408, ``_body``).

Shutdown: on SIGTERM the server first drains for ``--drain-seconds``: ``/readyz`` (and
the protocol's ready endpoints) answer 503 while every request is still served, so the
load balancer takes the instance out; then it stops accepting connections, lets
in-flight requests finish (up to 20 s) and exits 0. Ctrl-C (SIGINT) skips the drain and
exits 130; a second Ctrl-C stops at once. Exit status: 0 after SIGTERM, 1 when the model
file, the saved state, the token, a setting or the address is refused, 2 for a usage
error, 130 when interrupted.
"""

import argparse
import ipaddress
import logging
import os
import signal
import socket
import sys
import time

from .._serve_args import GRACEFUL_SECONDS, add_arguments
from ._auth import read_token

log = logging.getLogger("hmmfast.serve")

LOOPBACK = ("localhost",)

__all__ = ["add_arguments", "build_parser", "main", "run", "run_args"]


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"hmmfast: error: {message} (see '{self.prog} --help')\n")
        sys.exit(2)


def build_parser(prog="hmmfast serve"):
    parser = _OneLineParser(
        prog=prog, description="Serve an hmmfast model over HTTP: POST /v1/score, "
        "/v1/decode, /v1/anomaly; GET /v1/models, /healthz, /readyz, /metrics; the Open "
        "Inference Protocol under /v2.")
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


def listen(host, port, backlog):
    """A listening TCP socket on ``host:port``; OSError naming the address otherwise."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only
        # when it sees it (without: Nagle and delayed ACKs add ~40 ms to a small reply)
        sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {reason}") from None
    sock.setblocking(False)
    return sock


def _http_protocol(timeout_header, timeout_idle):
    """uvicorn's HTTP protocol class, with two timers uvicorn lacks: a connection whose
    request head has not arrived ``timeout_header`` seconds after its first byte is
    closed (slow heads: the request's first byte on a new or kept-alive connection), and
    a new connection that sends nothing is closed after ``timeout_idle`` seconds (as a
    kept-alive one is by uvicorn)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class TimedHTTP(AutoHTTPProtocol):
        _head_timer = None
        _head_cycle = None
        _idle_timer = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._idle_timer = self.loop.call_later(timeout_idle, self._timeout, None)

        def _disarm(self):
            for name in ("_head_timer", "_idle_timer"):
                timer = getattr(self, name)
                if timer is not None:
                    timer.cancel()
                    setattr(self, name, None)

        def data_received(self, data):
            if self._head_timer is None and (self.cycle is None or
                                             self.cycle.response_complete):
                self._disarm()  # the first byte of a request: its head is timed
                self._head_cycle = self.cycle
                self._head_timer = self.loop.call_later(timeout_header, self._timeout,
                                                        self.cycle)
            super().data_received(data)
            if self._head_timer is not None and self.cycle is not self._head_cycle:
                self._disarm()  # the head arrived: uvicorn started a request cycle

        def _timeout(self, cycle):
            self._head_timer = self._idle_timer = None
            if self.cycle is cycle and not self.transport.is_closing():
                log.debug("hmmfast serve: closing a connection whose request did not "
                          "arrive in time")
                self.transport.close()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

    return TimedHTTP


def _server_class(registry, drain_seconds):
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server with a drain before a SIGTERM shutdown (see the module's
        docstring); SIGTERM is not re-raised after the clean shutdown (exit 0)."""

        _drain_until = None

        def handle_exit(self, sig, frame):
            if sig == signal.SIGTERM and drain_seconds > 0 and not self.should_exit:
                if self._drain_until is None:
                    registry.closing = True
                    self._drain_until = time.monotonic() + drain_seconds
                    log.info("hmmfast serve: SIGTERM: draining for %g s (/readyz answers "
                             "503, requests are still served), then shutting down",
                             drain_seconds)
                    return
            if sig == signal.SIGTERM:
                registry.closing = True
                self.should_exit = True
                return
            registry.closing = True
            super().handle_exit(sig, frame)

        async def on_tick(self, counter):
            if self._drain_until is not None and time.monotonic() >= self._drain_until:
                self.should_exit = True
            return await super().on_tick(counter)

    return Server


def run(model_path, *, host="127.0.0.1", port=8000, admin_token_file=None,
        log_level="info", access_log=False, timeout_keep_alive=75, timeout_header=10.0,
        limit_concurrency=1000, backlog=2048, drain_seconds=5.0, state_dir=None,
        **app_options):
    """Serve ``model_path`` with uvicorn until stopped (blocking).

    Parameters
    ----------
    model_path : str or os.PathLike
    host, port
        Where to listen (default 127.0.0.1:8000).
    admin_token_file : str, optional
        The admin token's file; default ``$HMMFAST_ADMIN_TOKEN``; neither: admin off.
    log_level : str
    access_log : bool
    timeout_keep_alive : int
        Seconds an idle kept-alive connection stays open.
    timeout_header : float
        Seconds a request head may take to arrive.
    limit_concurrency : int or None
        Connections and requests at once before uvicorn answers 503.
    backlog : int
        The listening socket's queue.
    drain_seconds : float
        On SIGTERM, seconds of ``/readyz`` 503 before the listener closes.
    state_dir : str, "" or None
        The state file's directory; None: the model file's directory; "": no state.
    **app_options
        :func:`hmmfast.serve.create_app`'s options (threads, max_body_bytes, ...).
    """
    import uvicorn

    from ._app import create_app

    _configure_logging(log_level)
    token = read_token(admin_token_file)
    if state_dir is None:  # the default, beside the model: unwritable is not fatal
        state_dir = os.path.dirname(os.path.abspath(os.fspath(model_path)))
        if not os.access(state_dir, os.W_OK):
            log.warning("hmmfast serve: no state is kept: the model's directory %s is not "
                        "writable (a restart will serve %s); give --state-dir DIR, or "
                        "--no-state to silence this", state_dir, model_path)
            state_dir = ""
    app = create_app(model_path, admin_token=token, state_dir=state_dir or None,
                     **app_options)
    sock = listen(host, port, backlog)
    if not _is_loopback(host):
        log.warning("hmmfast serve: listening on %s, reachable from other machines; the "
                    "service speaks plain HTTP: put TLS in front of it", host)
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="on",
                            server_header=False, timeout_graceful_shutdown=GRACEFUL_SECONDS,
                            timeout_keep_alive=timeout_keep_alive,
                            limit_concurrency=limit_concurrency, backlog=backlog,
                            http=_http_protocol(timeout_header, timeout_keep_alive))
    server = _server_class(app.state.registry, drain_seconds)(config)
    bound = sock.getsockname()
    log.info("hmmfast serve: listening on http://%s:%d", host, bound[1])
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def run_args(args):
    """Run from parsed arguments (``add_arguments``'s); returns the exit status (see the
    module's docstring)."""
    from ._state import StateError

    state_dir = "" if args.no_state else args.state_dir
    try:
        run(args.model, host=args.host, port=args.port,
            admin_token_file=args.admin_token_file, log_level=args.log_level,
            access_log=args.access_log, threads=args.threads,
            max_body_bytes=args.max_body_bytes, max_sessions=args.max_sessions,
            max_observations=args.max_observations, drift_window=args.drift_window,
            log_paths=args.log_paths, log_paths_file=args.log_paths_file, log_io=args.log_io,
            drift_keep_anomalous=args.drift_keep_anomalous,
            model_name=args.model_name, model_dir=args.model_dir, state_dir=state_dir,
            load_timeout=args.load_timeout, timeout_body=args.timeout_body,
            timeout_keep_alive=args.timeout_keep_alive, timeout_header=args.timeout_header,
            limit_concurrency=args.limit_concurrency, backlog=args.backlog,
            drain_seconds=args.drain_seconds)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"hmmfast: error: {where}{exc.strerror or exc}\n")
        return 1
    except (ValueError, StateError) as exc:  # ModelFileError, a bad token or setting
        sys.stderr.write(f"hmmfast: error: {' '.join(str(exc).split())}\n")
        return 1
    except SystemExit as exc:  # uvicorn's start-up failure
        return exc.code if isinstance(exc.code, int) else 1
    return 0


def main(argv=None):
    """``python -m hmmfast.serve MODEL_FILE [options]``; returns the exit status."""
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
        return run_args(args)
    except KeyboardInterrupt:
        return 130
