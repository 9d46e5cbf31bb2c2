"""hmmfast.serve: the HTTP service (``hmmfast serve MODEL_FILE``), extra ``[serve]``.

An ASGI app on Starlette, run by uvicorn in one process, metrics in Prometheus text via
prometheus-client. ``import hmmfast`` never imports this package; importing it without
its extra raises ImportError naming the ``pip install`` to run. The names below are
imported on first use (so ``python -m hmmfast.serve`` answers Ctrl-C during start-up
with exit 130 rather than a traceback from inside an import).

Endpoints: POST /v1/score, /v1/decode, /v1/anomaly (``{"sessions": [...]}``); GET
/v1/models, /v1/models/ab; admin (``Authorization: Bearer <token>``): POST /v1/models
(hot swap), /v1/models/rollback, /v1/models/ab (A/B split), /v1/state/reload; GET
/healthz, /readyz, /metrics; the Open Inference Protocol (KServe v2) under /v2. See the
README's "The HTTP service" section for the wire format.

Public surface
--------------
create_app(model_path, *, admin_token=None, threads=None, max_body_bytes=...,
           max_sessions=..., max_observations=..., model_dir=None, state_dir=None,
           **settings) -> Starlette app
run(model_path, *, host="127.0.0.1", port=8000, admin_token_file=None, ...)  (blocking)
main(argv=None) -> int         the command line (``python -m hmmfast.serve``)
add_arguments(parser), run_args(args) -> int   for embedding in another argparse tree
Settings                       limits and monitor settings
unit_hash(session_id) -> float the A/B split's place of an id in [0, 1)
"""

import importlib
import importlib.util


def _missing():
    for name in ("starlette", "uvicorn", "prometheus_client"):
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


_absent = _missing()
if _absent is not None:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"hmmfast.serve needs the [serve] extra (starlette, uvicorn, prometheus-client), "
        f"which is not installed (no module named {_absent!r}); install it with: "
        'pip install "hmmfast[serve]"')

_WHERE = {
    "ServeError": "._errors", "Settings": "._settings", "add_arguments": "._run",
    "build_parser": "._run", "create_app": "._app", "main": "._run", "run": "._run",
    "run_args": "._run", "unit_hash": "._registry",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'hmmfast.serve' has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
