"""The Starlette app: routes, the admin check, errors as JSON.

``create_app(model_path, ...)`` loads and validates the model file, restores the saved
state when there is one, then builds one ``Starlette(routes=..., exception_handlers=...,
lifespan=...)`` over a model registry, a metrics registry, the data service and the Open
Inference Protocol's handlers; nothing is global, so tests and embedders can build as
many apps as they like.

Every reply is JSON (``/metrics``: Prometheus text). A refused request gets
``{"error": {"status", "code", "message", ...}}`` with a 4xx status, including unknown
paths (404) and methods (405) (under ``/v2``, the protocol's ``{"error": "..."}``); an
unexpected failure is a JSON 500 and is logged with its traceback (bad input never gets
there).
"""

import contextlib
import logging
import os
import time

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Route

from .. import _jsonscan as J
from ._auth import AdminAuth
from ._body import read_body, session_limits
from ._errors import ServeError
from ._json import dumps, loads, show, type_name
from ._metrics import Metrics
from ._oip import OIP
from ._paths import ModelPaths
from ._registry import Registry, check_fraction, load_version
from ._service import Service
from ._settings import Settings
from ._state import StateFile, restore, saver, state_path

log = logging.getLogger("hmmfast.serve")

#: Largest body of an admin request (a path and a fraction).
ADMIN_MAX_BYTES = 64 * 1024
JSON = "application/json"
ENDPOINTS = {
    "/v1/score": "POST", "/v1/decode": "POST", "/v1/anomaly": "POST",
    "/v1/models": "GET, POST", "/v1/models/rollback": "POST", "/v1/models/ab": "GET, POST",
    "/v1/state/reload": "POST", "/healthz": "GET", "/readyz": "GET", "/metrics": "GET",
    "/v2": "GET", "/v2/health/live": "GET", "/v2/health/ready": "GET",
}


def json_response(obj, status=200, headers=None):
    return Response(dumps(obj), status_code=status, headers=headers, media_type=JSON)


def error_response(exc, protocol=False):
    body = {"error": exc.message} if protocol else exc.body()
    return json_response(body, exc.status, exc.headers)


def _admin_object(body, allowed, required=()):
    obj = loads(body) if body.strip() else {}
    if type(obj) is not dict:
        raise ServeError(422, "bad_request", "the body must be a JSON object, got "
                         f"{type_name(obj)}")
    unknown = set(obj) - set(allowed)
    if unknown:
        raise ServeError(422, "bad_request", f"unknown field {show(sorted(unknown)[0])}; "
                         f"this endpoint takes {', '.join(sorted(allowed))}")
    for name in required:
        if name not in obj:
            raise ServeError(422, "bad_request", f"the body needs {name!r}")
    return obj


def _path(obj):
    path = obj["path"]
    if type(path) is not str or not path or "\x00" in path:
        raise ServeError(422, "bad_request", f'"path" must be the path of a model file (a '
                         f"non-empty string), got {show(path)}")
    return path


def _force(obj):
    force = obj.get("force", False)
    if type(force) is not bool:
        raise ServeError(422, "bad_request", f"force must be true or false, got {show(force)}")
    return force


class _App:
    """The handlers, over one registry, service, metrics, admin check and model paths."""

    def __init__(self, model_path, settings, admin_token, model_dir, state_dir):
        self.settings = settings
        model_path = os.path.realpath(os.fsdecode(os.fspath(model_path)))
        first = load_version(model_path, settings)
        self.startup_path = model_path
        self.registry = Registry(first, settings.keep_versions)
        self.paths = ModelPaths(model_dir or os.path.dirname(model_path),
                                settings.load_timeout, settings)
        self.state = None
        self.restored = None
        if state_dir is not None:
            try:
                self._restore(first, state_dir)
            except (OSError, ServeError) as exc:
                from ._state import StateError

                reason = exc.message if isinstance(exc, ServeError) else \
                    (exc.strerror or str(exc))
                raise StateError(f"cannot keep the state file in {state_dir}: {reason}; "
                                 "give a writable --state-dir, or --no-state") from None
        self.metrics = Metrics(self.registry)
        self.service = Service(settings, self.metrics)
        self.auth = AdminAuth(admin_token)
        self.oip = OIP(self)
        for name in ("score", "decode", "anomaly"):
            self.metrics.prepare(name, self.registry.snapshot.live.short)

    def _restore(self, first, state_dir):
        self.state = StateFile(state_path(state_dir, self.settings.model_name),
                               self.settings.model_name)
        saved = self.state.read()
        startup = {"path": first.path, "fingerprint": first.fingerprint}
        if saved is not None:
            same = saved["startup"]["fingerprint"] == first.fingerprint
            versions, candidate, fraction = restore(
                saved, self.state, first, self._load_saved, self.registry.keep, same)
            if not same:
                log.warning("hmmfast serve: the command line's model %s (%s) differs from "
                            "the saved state's start-up model %s: the command line wins (a "
                            "new deploy); the saved live model %s is held for rollback",
                            first.short, first.file, saved["startup"]["fingerprint"][:12],
                            saved["versions"][0]["fingerprint"][:12])
            self.registry.before.append(saver(self.state, startup))
            self.restored = self.registry.restore(versions, candidate, fraction)
            live = self.registry.snapshot.live
            split = self.registry.snapshot.split
            log.info("hmmfast serve: restored from %s: live %s (%s), held %s, %s",
                     self.state.path, live.short, live.file,
                     [v.short for v in self.registry.snapshot.versions[1:]] or "none",
                     "no A/B split" if split is None else
                     f"A/B split {split.fraction:g} to {split.candidate.short}")
        else:
            self.registry.before.append(saver(self.state, startup))
            self.state.write(self.registry.snapshot, startup)

    def _load_saved(self, path):
        """A model file named by the saved state (checked against --model-dir)."""
        if os.path.realpath(path) == self.startup_path:  # the command line's file
            return load_version(path, self.settings)
        return self.paths.load_now(path)

    # ---------------------------------------------------------------- plumbing

    def endpoint(self, name, handler, counted=True, protocol=False):
        """An endpoint that runs ``handler(request, start)``, maps ServeError to its JSON
        reply (the Open Inference Protocol's form when ``protocol``) and counts the
        request in the metrics."""
        metrics, registry = self.metrics, self.registry

        async def run(request):
            start = time.perf_counter()
            model = registry.snapshot.live.short
            try:
                response = await handler(request, start)
            except ServeError as exc:
                response = error_response(exc, protocol)
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

        def refuse(scanner, seen):
            return session_limits(scanner, seen, settings)

        async def handler(request, start):
            scanner = J.Scanner("sessions", "obs", max_items=settings.max_sessions,
                                max_payload=settings.max_observations)
            body = await read_body(request, settings.max_body_bytes, scanner, refuse,
                                   timeout=settings.timeout_body)
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

    async def _admin_body(self, request, allowed, required=()):
        self.auth.check(request.headers)
        body = await read_body(request, ADMIN_MAX_BYTES, admin=True,
                               timeout=self.settings.timeout_body)
        return _admin_object(body.data, allowed, required)

    def _reply(self, result):
        return json_response({**result, **self.registry.describe()})

    # ---------------------------------------------------------------- handlers

    async def models(self, request, start):
        if request.method == "GET":
            return json_response(self.registry.describe())
        obj = await self._admin_body(request, {"path", "force"}, ("path",))
        path, force = _path(obj), _force(obj)
        version = await self.paths.load(path)
        result = await run_in_threadpool(self.registry.swap, version, force)
        if not result["unchanged"]:
            log.info("hmmfast serve: model %s (%s) is live%s; %s kept for rollback",
                     version.short, version.file, " (forced)" if force else "",
                     result["previous"][:12])
            self.metrics.prepare("score", version.short)
        return self._reply(result)

    async def rollback(self, request, start):
        obj = await self._admin_body(request, {"fingerprint"})
        result = await run_in_threadpool(self.registry.rollback, obj.get("fingerprint"))
        log.info("hmmfast serve: rolled back to %s", result["live"][:12])
        return self._reply(result)

    async def ab(self, request, start):
        if request.method == "GET":
            split = self.registry.snapshot.split
            return json_response({"live": self.registry.snapshot.live.fingerprint,
                                  "split": None if split is None else split.status()})
        obj = await self._admin_body(request, {"path", "fraction"}, ("fraction",))
        fraction = check_fraction(obj["fraction"])
        candidate = None
        if "path" in obj and fraction != 0:
            candidate = await self.paths.load(_path(obj))
        result = await run_in_threadpool(self.registry.start_split, candidate, fraction)
        split = result["split"]
        if split is None:
            log.info("hmmfast serve: A/B split ended")
        else:
            log.info("hmmfast serve: A/B split: %s serves %.4g of the sessions",
                     split["candidate"]["fingerprint"][:12], split["fraction"])
        return self._reply(result)

    async def state_reload(self, request, start):
        """Apply the state file (written by another instance sharing the directory)."""
        await self._admin_body(request, set())
        if self.state is None:
            raise ServeError(409, "no_state", "this server keeps no state file (started "
                             "without a state directory)")

        def apply():
            from ._state import StateError

            saved = self.state.read()
            if saved is None:
                raise ServeError(404, "no_state_file", f"no state file at {self.state.path}")
            snap = self.registry.snapshot
            known = [*snap.versions, *([snap.split.candidate] if snap.split else [])]
            try:
                versions, candidate, fraction = restore(
                    saved, self.state, snap.live, self._load_saved, self.registry.keep,
                    True, known)
            except StateError as exc:
                raise ServeError(409, "state_not_restored", str(exc)[:600]) from None
            return self.registry.restore(versions, candidate, fraction)

        result = await run_in_threadpool(apply)
        log.info("hmmfast serve: state reloaded from %s: live %s", self.state.path,
                 result["live"][:12])
        return json_response({"reloaded": self.state.path, **result})

    async def healthz(self, request, start):
        return json_response({"status": "ok"})

    async def readyz(self, request, start):
        snap = self.registry.snapshot
        if self.registry.closing:
            raise ServeError(503, "shutting_down", "the server is shutting down (draining: "
                             "it still answers requests until it stops)")
        return json_response({"ready": True, "model": snap.live.fingerprint})

    async def metrics_text(self, request, start):
        return Response(generate_latest(self.metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    # ---------------------------------------------------------------- errors

    @staticmethod
    async def http_error(request, exc):
        status = exc.status_code
        path = request.url.path
        protocol = path == "/v2" or path.startswith("/v2/")
        if status == 404:
            error = ServeError(404, "not_found", f"no endpoint {path[:200]!r}; the "
                               f"endpoints are {', '.join(ENDPOINTS)} and /v2/models/<name>"
                               "[/ready, /infer]")
        elif status == 405:
            allow = (exc.headers or {}).get("Allow") or ENDPOINTS.get(path, "")
            error = ServeError(405, "method_not_allowed", f"{request.method} is not allowed "
                               f"on {path}; use {allow}", headers={"Allow": allow})
        else:
            error = ServeError(status, "http_error", str(exc.detail), headers=exc.headers)
        return error_response(error, protocol)

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
            Route("/v1/models/ab", e("ab", self.ab), methods=["GET", "POST"]),
            Route("/v1/state/reload", e("state_reload", self.state_reload),
                  methods=["POST"]),
            Route("/healthz", e("healthz", self.healthz, False), methods=["GET"]),
            Route("/readyz", e("readyz", self.readyz, False), methods=["GET"]),
            Route("/metrics", e("metrics", self.metrics_text, False), methods=["GET"]),
            *self.oip.routes(),
        ]


def create_app(model_path, *, admin_token=None, threads=1,
               max_body_bytes=Settings.max_body_bytes, max_sessions=Settings.max_sessions,
               max_observations=Settings.max_observations, model_dir=None, state_dir=None,
               **settings):
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
    model_dir : str or os.PathLike, optional
        The only directory admin calls may load model files from (default: the model
        file's directory).
    state_dir : str or os.PathLike, optional
        Keep the live version, held versions and A/B split in a state file there,
        restored when an app is created over the same directory (see ``_state``).
        Default None: no state file (``hmmfast serve`` defaults to the model file's
        directory).
    **settings
        Other :class:`hmmfast.serve.Settings` fields: drift_window, drift_quantile,
        collapse_fraction, occupancy_window, inline_bytes, keep_versions, timeout_body,
        load_timeout, model_name.

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
        A setting or the admin token is invalid; the saved state cannot be restored
        (``StateError``: a file it names is missing or changed).
    """
    config = Settings(threads=threads, max_body_bytes=max_body_bytes,
                      max_sessions=max_sessions, max_observations=max_observations, **settings)
    state = _App(model_path, config, admin_token,
                 None if model_dir is None else os.fsdecode(os.fspath(model_dir)),
                 None if state_dir is None else os.fsdecode(os.fspath(state_dir)))
    live = state.registry.snapshot.live

    @contextlib.asynccontextmanager
    async def lifespan(app):
        log.info("hmmfast serve: model %s (%s, %s, n_components=%d) is live; admin "
                 "endpoints %s", live.short, live.file, live.header["class"],
                 live.model.n_components, "on" if state.auth.enabled else "off")
        yield
        state.registry.closing = True
        state.paths.close()

    app = Starlette(routes=state.routes(), lifespan=lifespan,
                    exception_handlers={HTTPException: state.http_error,
                                        Exception: state.internal_error})
    app.state.registry = state.registry
    app.state.metrics = state.metrics
    app.state.settings = config
    app.state.paths = state.paths
    app.state.state_file = state.state
    return app
