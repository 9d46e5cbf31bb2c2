"""The Starlette app: routes, body limits, the admin check, errors as JSON.

``create_app(model_path, ...)`` loads and validates the model file, then builds one
``Starlette(routes=..., exception_handlers=..., lifespan=...)`` over a model registry,
a metrics registry and the data service; nothing is global, so tests and embedders can
build as many apps as they like.

Every reply is JSON (``/metrics``: Prometheus text). A refused request gets
``{"error": {"status", "code", "message", ...}}`` with a 4xx status, including unknown
paths (404) and methods (405); an unexpected failure is a JSON 500 and is logged with
its traceback (bad input never gets there).
"""

import contextlib
import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Route

from . import _wire as W
from ._auth import AdminAuth
from ._errors import ServeError, limit_error
from ._metrics import Metrics
from ._registry import Registry, check_fraction, load_version
from ._service import Service
from ._settings import Settings

log = logging.getLogger("hmmfast.serve")

#: Largest body of an admin request (a path and a fraction).
ADMIN_MAX_BYTES = 64 * 1024
JSON = "application/json"
ENDPOINTS = {
    "/v1/score": "POST", "/v1/decode": "POST", "/v1/anomaly": "POST",
    "/v1/models": "GET, POST", "/v1/models/rollback": "POST", "/v1/models/ab": "POST",
    "/healthz": "GET", "/readyz": "GET", "/metrics": "GET",
}


def json_response(obj, status=200, headers=None):
    return Response(W.dumps(obj), status_code=status, headers=headers, media_type=JSON)


def error_response(exc):
    return json_response(exc.body(), exc.status, exc.headers)


async def read_body(request, limit, admin=False):
    """The request body, refused with 413 as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise ServeError(400, "bad_request", f"Content-Length must be a number of bytes, "
                             f"got {declared[:40]!r}")
        if int(declared) > limit:
            raise _too_large(int(declared), limit, admin)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, admin, at_least=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size, limit, admin, at_least=False):
    if admin:
        return ServeError(413, "body_too_large", f"an admin request body is at most {limit} "
                          f"bytes, got {'more than ' if at_least else ''}{size}")
    return limit_error("max_body_bytes", size, limit,
                       "request body bytes" + (" (at least)" if at_least else ""))


def _admin_object(body, allowed, required=()):
    obj = W.loads(body) if body.strip() else {}
    if type(obj) is not dict:
        raise ServeError(422, "bad_request", "the body must be a JSON object, got "
                         f"{W._type_name(obj)}")
    unknown = set(obj) - set(allowed)
    if unknown:
        raise ServeError(422, "bad_request", f"unknown field {W._show(sorted(unknown)[0])}; "
                         f"this endpoint takes {', '.join(sorted(allowed))}")
    for name in required:
        if name not in obj:
            raise ServeError(422, "bad_request", f"the body needs {name!r}")
    return obj


def _path(obj):
    path = obj["path"]
    if type(path) is not str or not path or "\x00" in path:
        raise ServeError(422, "bad_request", f'"path" must be the path of a model file (a '
                         f"non-empty string), got {W._show(path)}")
    return path


class _App:
    """The handlers, over one registry, service, metrics and admin check."""

    def __init__(self, model_path, settings, admin_token):
        self.settings = settings
        self.registry = Registry(load_version(model_path, settings), settings.keep_versions)
        self.metrics = Metrics(self.registry)
        self.service = Service(settings, self.metrics)
        self.auth = AdminAuth(admin_token)
        for name in ("score", "decode", "anomaly"):
            self.metrics.prepare(name, self.registry.snapshot.live.short)

    # ---------------------------------------------------------------- plumbing

    def endpoint(self, name, handler, counted=True):
        """An endpoint that runs ``handler(request, start)``, maps ServeError to its JSON
        reply and counts the request in the metrics."""
        metrics, registry = self.metrics, self.registry

        async def run(request):
            start = time.perf_counter()
            model = registry.snapshot.live.short
            try:
                response = await handler(request, start)
            except ServeError as exc:
                response = error_response(exc)
            except ClientDisconnect:
                return Response(status_code=400)  # nobody is listening
            if counted:
                metrics.observe(name, model, time.perf_counter() - start,
                                response.status_code, getattr(response, "n_sessions", 0))
            return response

        run.__name__ = name
        return run

    def data(self, work):
        """A data endpoint: body -> ``work(snapshot, body)`` inline or in a thread."""
        settings, registry = self.settings, self.registry

        async def handler(request, start):
            body = await read_body(request, settings.max_body_bytes)
            snap = registry.snapshot
            if len(body) <= settings.inline_bytes:
                result = work(snap, body)
            else:
                result = await run_in_threadpool(work, snap, body)
            total = time.perf_counter() - start
            response = Response(result.body, media_type=JSON, headers={
                "Server-Timing": f"lib;dur={result.lib_seconds * 1e3:.3f}, "
                                 f"app;dur={total * 1e3:.3f}"})
            response.n_sessions = result.n_sessions
            return response

        return handler

    async def _load(self, path):
        try:
            return await run_in_threadpool(load_version, path, self.settings)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ServeError(422, "model_file", f"cannot open model file {path!r}: "
                             f"{reason}"[:400]) from None
        except ValueError as exc:  # ModelFileError
            raise ServeError(422, "model_file", " ".join(str(exc).split())[:600]) from None

    async def _admin_body(self, request, allowed, required=()):
        self.auth.check(request.headers)
        return _admin_object(await read_body(request, ADMIN_MAX_BYTES, admin=True), allowed,
                             required)

    # ---------------------------------------------------------------- handlers

    async def models(self, request, start):
        if request.method == "GET":
            return json_response(self.registry.describe())
        obj = await self._admin_body(request, {"path"}, ("path",))
        version = await self._load(_path(obj))
        result = self.registry.swap(version)
        if not result["unchanged"]:
            log.info("hmmfast serve: model %s (%s) is live; %s kept for rollback",
                     version.short, version.file, result["previous"][:12])
            self.metrics.prepare("score", version.short)
        return json_response({**result, **self.registry.describe()})

    async def rollback(self, request, start):
        obj = await self._admin_body(request, {"fingerprint"})
        result = self.registry.rollback(obj.get("fingerprint"))
        log.info("hmmfast serve: rolled back to %s", result["live"][:12])
        return json_response({**result, **self.registry.describe()})

    async def ab(self, request, start):
        obj = await self._admin_body(request, {"path", "fraction"}, ("fraction",))
        fraction = check_fraction(obj["fraction"])
        candidate = None
        if "path" in obj and fraction != 0:
            candidate = await self._load(_path(obj))
        result = self.registry.start_split(candidate, fraction)
        split = result["split"]
        if split is None:
            log.info("hmmfast serve: A/B split ended")
        else:
            log.info("hmmfast serve: A/B split: %s serves %.4g of the sessions",
                     split["candidate"]["fingerprint"][:12], split["fraction"])
        return json_response({**result, **self.registry.describe()})

    async def healthz(self, request, start):
        return json_response({"status": "ok"})

    async def readyz(self, request, start):
        snap = self.registry.snapshot
        if self.registry.closing:
            raise ServeError(503, "shutting_down", "the server is shutting down")
        return json_response({"ready": True, "model": snap.live.fingerprint})

    async def metrics_text(self, request, start):
        return Response(generate_latest(self.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    # ---------------------------------------------------------------- errors

    @staticmethod
    async def http_error(request, exc):
        status = exc.status_code
        path = request.url.path
        if status == 404:
            error = ServeError(404, "not_found", f"no endpoint {path[:200]!r}; the "
                               f"endpoints are {', '.join(ENDPOINTS)}")
        elif status == 405:
            allow = (exc.headers or {}).get("Allow") or ENDPOINTS.get(path, "")
            error = ServeError(405, "method_not_allowed", f"{request.method} is not allowed "
                               f"on {path}; use {allow}", headers={"Allow": allow})
        else:
            error = ServeError(status, "http_error", str(exc.detail), headers=exc.headers)
        return error_response(error)

    @staticmethod
    async def internal_error(request, exc):
        log.error("hmmfast serve: internal error on %s %s", request.method, request.url.path,
                  exc_info=exc)
        return error_response(ServeError(500, "internal_error", "internal error (logged on "
                                         f"the server): {type(exc).__name__}"))

    def routes(self):
        s = self.service
        e = self.endpoint
        return [
            Route("/v1/score", e("score", self.data(s.score)), methods=["POST"]),
            Route("/v1/decode", e("decode", self.data(s.decode)), methods=["POST"]),
            Route("/v1/anomaly", e("anomaly", self.data(s.anomaly)), methods=["POST"]),
            Route("/v1/models", e("models", self.models), methods=["GET", "POST"]),
            Route("/v1/models/rollback", e("rollback", self.rollback), methods=["POST"]),
            Route("/v1/models/ab", e("ab", self.ab), methods=["POST"]),
            Route("/healthz", e("healthz", self.healthz, False), methods=["GET"]),
            Route("/readyz", e("readyz", self.readyz, False), methods=["GET"]),
            Route("/metrics", e("metrics", self.metrics_text, False), methods=["GET"]),
        ]


def create_app(model_path, *, admin_token=None, threads=1,
               max_body_bytes=Settings.max_body_bytes, max_sessions=Settings.max_sessions,
               max_observations=Settings.max_observations, **settings):
    """The service as an ASGI app (Starlette), serving the model file ``model_path``.

    Parameters
    ----------
    model_path : str or os.PathLike
        A model file written by ``model.save`` (``hmmfast.load`` validates it; its
        metadata may carry an "anomaly_detector" and a "drift_baseline").
    admin_token : str, optional
        Token of the admin endpoints (``Authorization: Bearer <token>``); None turns them
        off (403). ``hmmfast serve`` reads it from ``--admin-token-file`` or
        ``$HMMFAST_ADMIN_TOKEN``; embedders pass it here.
    threads : int or None
        Kernel threads per call (default 1, see :class:`Settings`; None: the model's
        ``n_threads``).
    max_body_bytes, max_sessions, max_observations : int
        Limits (16 MiB, 10,000 sessions per request, 100,000 observations per session);
        beyond them a request is refused with 413 naming the option.
    **settings
        Other :class:`hmmfast.serve.Settings` fields: drift_window, drift_quantile,
        collapse_fraction, occupancy_window, inline_bytes, keep_versions.

    Returns
    -------
    starlette.applications.Starlette
        ``app.state.registry`` (model versions), ``app.state.metrics`` (its
        ``registry`` is the prometheus_client CollectorRegistry) and
        ``app.state.settings`` are there for embedders.

    Raises
    ------
    hmmfast.ModelFileError
        The model file is not valid (nothing is served).
    OSError
        It cannot be opened.
    ValueError
        A setting or the admin token is invalid.
    """
    config = Settings(threads=threads, max_body_bytes=max_body_bytes,
                      max_sessions=max_sessions, max_observations=max_observations, **settings)
    state = _App(model_path, config, admin_token)
    live = state.registry.snapshot.live

    @contextlib.asynccontextmanager
    async def lifespan(app):
        log.info("hmmfast serve: model %s (%s, %s, n_components=%d) is live; admin "
                 "endpoints %s", live.short, live.file, live.header["class"],
                 live.model.n_components, "on" if state.auth.enabled else "off")
        yield
        state.registry.closing = True

    app = Starlette(routes=state.routes(), lifespan=lifespan,
                    exception_handlers={HTTPException: state.http_error,
                                        Exception: state.internal_error})
    app.state.registry = state.registry
    app.state.metrics = state.metrics
    app.state.settings = config
    return app
