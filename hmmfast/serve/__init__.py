"""hmmfast.serve: the HTTP service (``hmmfast serve MODEL_FILE``), extra ``[serve]``.

An ASGI app on Starlette, run by uvicorn in one process, metrics in Prometheus text via
prometheus-client. ``import hmmfast`` never imports this package; importing it without
its extra raises ImportError naming the ``pip install`` to run.

Endpoints: POST /v1/score, /v1/decode, /v1/anomaly (``{"sessions": [...]}``); GET
/v1/models; admin (``Authorization: Bearer <token>``): POST /v1/models (hot swap),
/v1/models/rollback, /v1/models/ab (A/B split); GET /healthz, /readyz, /metrics. See
the README's "The HTTP service" section for the wire format.

Public surface
--------------
create_app(model_path, *, admin_token=None, threads=None, max_body_bytes=...,
           max_sessions=..., max_observations=..., **settings) -> Starlette app
run(model_path, *, host="127.0.0.1", port=8000, admin_token_file=None, ...)  (blocking)
main(argv=None) -> int         the command line (``python -m hmmfast.serve``)
add_arguments(parser), run_args(args) -> int   for embedding in another argparse tree
Settings                       limits and monitor settings
unit_hash(session_id) -> float the A/B split's place of an id in [0, 1)
"""

try:
    import prometheus_client  # noqa: F401
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"hmmfast.serve needs the [serve] extra (starlette, uvicorn, prometheus-client), "
        f'which is not installed ({exc}); install it with: pip install "hmmfast[serve]"'
    ) from exc

from ._app import create_app
from ._errors import ServeError
from ._registry import unit_hash
from ._run import add_arguments, build_parser, main, run, run_args
from ._settings import Settings

__all__ = [
    "ServeError",
    "Settings",
    "add_arguments",
    "build_parser",
    "create_app",
    "main",
    "run",
    "run_args",
    "unit_hash",
]
