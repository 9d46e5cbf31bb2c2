"""The Open Inference Protocol (KServe v2, REST, JSON tensors) over the live model.

==========================================  ============================================
``GET /v2/health/live``                      200 ``{"live": true}``
``GET /v2/health/ready``                     200 ``{"ready": true}``; 503 while draining
``GET /v2``                                  server metadata: name, version, extensions
``GET /v2/models/<name>[/versions/<v>]``     model metadata: inputs, outputs, versions
``GET /v2/models/<name>[/versions/<v>]/ready``  200 ``{"name", "ready": true}``
``POST /v2/models/<name>[/versions/<v>]/infer``  scores (and Viterbi states) of sessions
==========================================  ============================================

``<name>`` is ``--model-name`` (default "hmmfast"); the one version is the live model's
fingerprint's first 12 hex digits (a swap changes it). The protocol serves the live model
(an A/B split applies to /v1 only).

An inference request's inputs: ``obs``, the sessions' observations concatenated, row-major
(INT64 symbols of shape [F] for a CategoricalHMM; FP64 frames of shape [F, n_features]
for the other families, [F] when n_features is 1), and ``lengths`` (INT64, shape [S],
summing to F; absent: one session). Outputs: ``score`` (FP64 [S], log P(session); an
impossible session is ``null``) always, ``states`` (INT64 [F], the Viterbi path; -1 for
the frames of an impossible session) when the request's ``outputs`` ask for it. Tensors
are JSON: Triton's binary-data extension is not spoken; a request whose inputs use it
gets 400 (tritonclient: ``set_data_from_numpy(..., binary_data=False)``), and a request
for binary outputs is answered with JSON tensors, which the protocol's clients read.
Errors are the protocol's ``{"error": "<message>"}``, with the same statuses as /v1.

The body is scanned as it arrives like every data body (``_body``): invalid JSON is a
400, and a body beyond ``--max-body-bytes`` a 413, before any of it is decoded; the
``data`` arrays go straight into NumPy arrays.
"""

import math
import time

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from .. import _jsonscan as J
from ._body import read_body
from ._errors import ServeError, limit_error
from ._json import DuplicateKey, decode, duplicate_error, dumps, quote, show
from ._wire import Batch, check_counts, check_symbols, floats

JSON = "application/json"
#: Most inputs an inference request may list (the protocol's, here obs and lengths).
MAX_INPUTS = 8
#: Largest input object or request field other than tensor data (bytes).
SMALL_FIELD = 64 * 1024
INTEGER_TYPES = ("INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8")
FLOAT_TYPES = ("FP64", "FP32", "FP16")
OUTPUTS = ("score", "states")


def _bad(message):
    return ServeError(400, "bad_request", message)


def _parameters(obj, where):
    """The "parameters" object of ``obj`` ({} when absent)."""
    parameters = obj.get("parameters")
    if parameters is None:
        return {}
    if type(parameters) is not dict:
        raise _bad(f'"parameters" of {where} must be an object, got {show(parameters)}')
    return parameters


def _reply(obj, status=200):
    return Response(dumps(obj), status_code=status, media_type=JSON)


def _small(data, start, end, what):
    if end - start > SMALL_FIELD:
        raise _bad(f"{what} takes {end - start} bytes; at most {SMALL_FIELD}")
    try:
        return decode(data[start:end])
    except DuplicateKey as exc:
        raise duplicate_error(exc.key, what) from None


class OIP:
    """The protocol's handlers over an app's registry, service and settings."""

    def __init__(self, app):
        self.app = app
        self.settings = app.settings
        self.registry = app.registry

    # ---------------------------------------------------------------- helpers

    def _live(self, request):
        """The live version, after checking the path's model name and version."""
        name = request.path_params["name"]
        if name != self.settings.model_name:
            raise ServeError(404, "unknown_model", f"no model {quote(name)} here; this "
                             f"server serves {quote(self.settings.model_name)}")
        live = self.registry.snapshot.live
        version = request.path_params.get("version")
        if version is not None and version != live.short:
            raise ServeError(404, "unknown_version", f"version {quote(version)} of "
                             f"{quote(name)} is not live; the live version is {live.short}")
        return live

    def _obs_spec(self, live):
        if live.symbols:
            return {"name": "obs", "datatype": "INT64", "shape": [-1]}
        return {"name": "obs", "datatype": "FP64", "shape": [-1, live.n_features]}

    # ---------------------------------------------------------------- handlers

    async def live(self, request, start):
        return _reply({"live": True})

    async def ready(self, request, start):
        if self.registry.closing:
            raise ServeError(503, "shutting_down", "the server is shutting down")
        return _reply({"ready": True})

    async def server(self, request, start):
        return _reply({"name": "hmmfast", "version": __version__, "extensions": []})

    async def metadata(self, request, start):
        live = self._live(request)
        return _reply({
            "name": self.settings.model_name, "versions": [live.short],
            "platform": f"hmmfast_{live.header['class']}",
            "inputs": [self._obs_spec(live),
                       {"name": "lengths", "datatype": "INT64", "shape": [-1]}],
            "outputs": [{"name": "score", "datatype": "FP64", "shape": [-1]},
                        {"name": "states", "datatype": "INT64", "shape": [-1]}],
        })

    async def model_ready(self, request, start):
        self._live(request)
        if self.registry.closing:
            raise ServeError(503, "shutting_down", "the server is shutting down")
        return _reply({"name": self.settings.model_name, "ready": True})

    async def infer(self, request, start):
        self._live(request)
        if "inference-header-content-length" in request.headers:
            raise _bad(_BINARY)
        settings = self.settings
        scanner = J.Scanner("inputs", "data", id_key=False, strict_items=False,
                            array_items=False, max_items=MAX_INPUTS,
                            max_payload=settings.max_body_bytes)

        def refuse(scan, seen):
            if scan.error[0] == J.LIMIT_ITEMS:
                return _bad(f"an inference request takes at most {MAX_INPUTS} inputs "
                            "(obs, lengths)")
            from ._json import scan_error

            return scan_error(scan, seen)

        body = await read_body(request, settings.max_body_bytes, scanner, refuse,
                               timeout=settings.timeout_body)
        snap = self.registry.snapshot
        if len(body) <= settings.inline_bytes:
            out = self._infer(snap, body)
        else:
            out = await run_in_threadpool(self._infer, snap, body)
        response = _reply(out[0])
        response.n_sessions = out[1]
        total = time.perf_counter() - start
        response.headers["Server-Timing"] = (f"lib;dur={out[2] * 1e3:.3f}, "
                                             f"app;dur={total * 1e3:.3f}")
        return response

    # ---------------------------------------------------------------- the request

    def _infer(self, snap, body):
        data, scan = body.data, body.scan
        live = snap.live
        if scan.root_kind != J.J_OBJECT:
            raise _bad("an inference request is a JSON object {\"inputs\": [...]}")
        fields = {}
        for k_start, k_end, v_start, v_end, _ in scan.members():
            key = _small(data, k_start, k_end, "a key")
            if key in fields:
                raise duplicate_error(key)
            if key not in ("id", "parameters", "inputs", "outputs"):
                raise _bad(f"unknown field {quote(key)}; an inference request takes id, "
                           "parameters, inputs, outputs")
            fields[key] = None if key == "inputs" else _small(data, v_start, v_end,
                                                               f'"{key}"')
        if scan.list_kind != J.J_ARRAY:
            raise _bad('an inference request needs "inputs": a list of tensors')
        _parameters(fields, "the request")  # binary_data_output: answered in JSON anyway
        inputs = self._inputs(data, scan)
        if "obs" not in inputs:
            raise _bad('an inference request needs the input "obs"')
        wanted = self._outputs(fields.get("outputs"))
        batch = self._batch(data, inputs, live)
        n = len(batch)
        out = {"model_name": self.settings.model_name, "model_version": live.short}
        if type(fields.get("id")) is str:
            out["id"] = fields["id"]
        if n == 0:
            scores, states, seconds = np.empty(0), np.empty(0, np.int64), 0.0
        else:
            scores, states, seconds = self.app.service.infer(snap, batch, "states" in wanted)
        tensors = {"score": {"name": "score", "datatype": "FP64", "shape": [n],
                             "data": floats(scores)}}
        if "states" in wanted:
            tensors["states"] = {"name": "states", "datatype": "INT64",
                                 "shape": [len(states)], "data": states.tolist()}
        out["outputs"] = [tensors[name] for name in wanted]
        return out, n, seconds

    def _inputs(self, data, scan):
        """name -> (spec dict, values ndarray) of each input tensor."""
        inputs = {}
        for i, row in enumerate(scan.items()):
            if row[J.KIND] != J.J_OBJECT:
                raise _bad(f"inputs[{i}] must be a tensor object {{\"name\", \"shape\", "
                           "\"datatype\", \"data\"}")
            if not row[J.FLAGS] & J.HAS_PAYLOAD:
                raise _bad(f'inputs[{i}] has no "data"')
            if row[J.FLAGS] & J.DUP_PAYLOAD:
                raise duplicate_error("data", f"inputs[{i}]")
            skeleton = (bytes(data[row[J.START]:row[J.P_START]]) + b"null" +
                        bytes(data[row[J.P_END]:row[J.END]]))
            spec = _small(skeleton, 0, len(skeleton), f"inputs[{i}]")
            name = spec.get("name")
            if type(name) is not str:
                raise _bad(f'inputs[{i}] needs a "name" (a string)')
            unknown = set(spec) - {"name", "shape", "datatype", "parameters", "data"}
            if unknown:
                raise _bad(f"input {quote(name)} has unknown field "
                           f"{quote(sorted(unknown)[0])}")
            if _parameters(spec, f"input {quote(name)}").get("binary_data_size") is not None:
                raise _bad(_BINARY)
            if name in inputs:
                raise _bad(f"input {quote(name)} is given twice")
            if name not in ("obs", "lengths"):
                raise _bad(f"unknown input {quote(name)}; this model takes obs and lengths")
            inputs[name] = self._tensor(data, row, spec)
        return inputs

    @staticmethod
    def _tensor(data, row, spec):
        name, datatype, shape = spec["name"], spec.get("datatype"), spec.get("shape")
        if datatype not in INTEGER_TYPES + FLOAT_TYPES:
            raise _bad(f"input {quote(name)}: datatype must be one of INT64, FP64 (or "
                       f"another integer or float type), got {show(datatype)}")
        if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
            raise _bad(f"input {quote(name)}: shape must be a list of sizes >= 0, got "
                       f"{show(shape)}")
        size = math.prod(shape)
        count = int(row[J.P_LEAVES])
        if count != size:
            raise _bad(f"input {quote(name)}: shape {shape} holds {size} values but data "
                       f"has {count}")
        integer = datatype in INTEGER_TYPES
        values, error = J.fill_numbers(data, int(row[J.P_START]), int(row[J.P_END]), count,
                                       integer)
        if error is not None:
            code, _, k, t_start, t_end, _ = error
            token = bytes(data[t_start:t_end])[:40].decode("utf-8", "replace")
            what = {J.F_NOT_NUMBER: "is not a number", J.F_NOT_INT: "is not an integer",
                    J.F_INT_RANGE: "is beyond int64", J.F_RANGE: "is beyond float64"}[code]
            raise _bad(f"input {quote(name)} ({datatype}): value {k} ({token}) {what}")
        return {"datatype": datatype, "shape": shape, "integer": integer}, values

    @staticmethod
    def _outputs(requested):
        if requested is None:
            return ["score"]
        if type(requested) is not list:
            raise _bad(f'"outputs" must be a list of {{"name": ...}}, got {show(requested)}')
        names = []
        for out in requested:
            name = out.get("name") if type(out) is dict else None
            if name not in OUTPUTS:
                raise _bad(f"unknown output {show(name)}; this model gives score and states")
            _parameters(out, f"output {quote(name)}")  # binary_data: JSON all the same
            if name not in names:
                names.append(name)
        return names

    def _batch(self, data, inputs, live):
        settings = self.settings
        spec, values = inputs["obs"]
        shape = spec["shape"]
        if live.symbols:
            if not spec["integer"]:
                raise _bad(f"input \"obs\": a {live.header['class']} takes integer symbols "
                           f"(INT64), got {spec['datatype']}")
            if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
                raise _bad(f'input "obs": shape must be [n_frames], got {shape}')
            n_frames = shape[0]
        else:
            d = live.n_features
            ok = (len(shape) == 2 and shape[1] == d) or (len(shape) == 1 and d == 1)
            if not ok:
                raise _bad(f'input "obs": shape must be [n_frames, {d}] (n_features={d}), '
                           f"got {shape}")
            n_frames = shape[0]
        if "lengths" in inputs:
            lspec, lengths = inputs["lengths"]
            if not lspec["integer"] or len(lspec["shape"]) != 1:
                raise _bad(f'input "lengths" must be INT64 of shape [n_sessions], got '
                           f"{lspec['datatype']} {lspec['shape']}")
        else:
            lengths = np.array([n_frames] if n_frames else [], dtype=np.int64)
        if len(lengths) > settings.max_sessions:
            raise limit_error("max_sessions", len(lengths), settings.max_sessions,
                              "sessions in the request")
        if len(lengths) and lengths.max() > settings.max_observations:
            s = int(np.argmax(lengths > settings.max_observations))
            raise limit_error("max_observations", int(lengths[s]), settings.max_observations,
                              f"observations in session {s}")
        if len(lengths) and lengths.min() < 1:
            s = int(np.argmin(lengths))
            raise ServeError(422, "bad_session", f"session {s} has length {lengths[s]}; "
                             "lengths must be >= 1", session=s)
        if int(lengths.sum()) != n_frames:
            raise _bad(f'input "lengths" sums to {int(lengths.sum())} but "obs" has '
                       f"{n_frames} frames")
        if live.symbols:
            values = check_symbols(values, lengths, live.n_features)
        else:
            values = values.astype(np.float64, copy=False).reshape(n_frames, live.n_features)
            if live.kind == "counts":
                check_counts(values, lengths)
        return Batch(values, lengths)

    def routes(self):
        e = self.app.endpoint
        base = "/v2/models/{name}"
        versioned = base + "/versions/{version}"
        out = [
            Route("/v2", e("v2_server", self.server, False, True), methods=["GET"]),
            Route("/v2/health/live", e("v2_live", self.live, False, True), methods=["GET"]),
            Route("/v2/health/ready", e("v2_ready", self.ready, False, True),
                  methods=["GET"]),
        ]
        for prefix in (base, versioned):
            out += [
                Route(prefix, e("v2_metadata", self.metadata, False, True), methods=["GET"]),
                Route(prefix + "/ready", e("v2_model_ready", self.model_ready, False, True),
                      methods=["GET"]),
                Route(prefix + "/infer", e("v2_infer", self.infer, True, True),
                      methods=["POST"]),
            ]
        return out


_BINARY = ("binary tensor data (Triton's binary-data extension) is not spoken here; send "
           "JSON tensors: tritonclient's InferInput.set_data_from_numpy(..., "
           "binary_data=False)")
