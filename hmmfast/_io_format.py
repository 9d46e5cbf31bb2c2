"""The model file format (version 2; version 1 is read too): names, checksums, the
fingerprint and header checks.

Imports no model class: hmmfast._fit uses :func:`training_data_sha256`, hmmfast._io the
rest (the format itself is described at the top of hmmfast/_io.py).
"""

import hashlib
import json
import math
import numbers
import re

import numpy as np

from ._errors import HMMTypeError, ModelFileError

FORMAT = "hmmfast-model"
FORMAT_VERSION = 2  # 2: version_id in the header, fit records with their lineage
FINGERPRINT_VERSION = 1
HEADER = "__header__"  # member holding the UTF-8 JSON header as a uint8 array
PARAM_PREFIX = "param."  # members holding array-valued constructor parameters

FLOAT, INDEX, BYTES = "<f8", "<i8", "|u1"  # the only dtypes a file may hold
COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")
TRANSMAT_FORMATS = ("dense", "csr")

#: the fitted parameters of each built-in class, in the order load assigns them
PARAMETERS = {
    "CategoricalHMM": ("startprob_", "transmat_", "emissionprob_"),
    "GaussianHMM": ("startprob_", "transmat_", "means_", "covars_"),
    "GMMHMM": ("startprob_", "transmat_", "weights_", "means_", "covars_"),
    "PoissonHMM": ("startprob_", "transmat_", "lambdas_"),
    "MultinomialHMM": ("startprob_", "transmat_", "emissionprob_"),
}
#: the structural hyper-parameters of each class (besides transmat_format/_nnz)
STRUCTURE = {
    "CategoricalHMM": ("n_components", "n_features"),
    "GaussianHMM": ("n_components", "n_features", "covariance_type"),
    "GMMHMM": ("n_components", "n_features", "n_mix", "covariance_type"),
    "PoissonHMM": ("n_components", "n_features"),
    "MultinomialHMM": ("n_components", "n_features"),
}
CSR_PARTS = ("data", "indices", "indptr")
HEADER_KEYS = {
    "format": str, "format_version": int, "hmmfast_version": str, "class": str,
    "structure": dict, "params": dict, "unsaved_params": list, "arrays": dict,
    "fingerprint": str, "fit": (dict, type(None)), "metadata": dict,
}
HEADER_KEYS_V2 = {**HEADER_KEYS, "version_id": str}  # format version 2 adds version_id
FIT_KEYS = {  # required keys of the fit record (more JSON-safe keys may follow them)
    "log_likelihood": (float, type(None)), "n_iter": int, "converged": bool,
    "n_samples": int, "n_sequences": int, "training_data_sha256": (str, type(None)),
    "method": str,
}
_HEX64 = re.compile(r"[0-9a-f]{64}")


# ---------------------------------------------------------------------- hashes


def _encode(arr):
    """The bytes hashed for one array: ``f"{dtype.str}|{shape}|"`` in ASCII (shape as
    comma-separated sizes, "" for a scalar), then the data in C order."""
    shape = ",".join(str(int(s)) for s in arr.shape)
    return f"{arr.dtype.str}|{shape}|".encode("ascii"), np.ascontiguousarray(arr)


def array_sha256(arr):
    """Hex SHA-256 of an array: of ``f"{dtype.str}|{shape}|"`` (e.g. ``"<f8|64,1000|"``)
    followed by its bytes in C order. Files hold little-endian arrays, so the digest
    is the same on every platform."""
    head, data = _encode(arr)
    h = hashlib.sha256(head)
    h.update(data)
    return h.hexdigest()


def training_data_sha256(X, missing, offsets, weights=None, labels=None):
    """Hex SHA-256 of a fit's training data, as the model read it.

    Over ``b"X"`` + the observations, ``b"lengths"`` + the sequence lengths and, when a
    fit used them, ``b"sample_weight"`` + the weights and ``b"states"`` + the known
    states, each array encoded as in :func:`array_sha256`. Observations are (n_samples,
    n_features), hashed by value, not by container: as little-endian int64 when every
    value is a whole number of magnitude <= 2**53 (whatever the dtype: symbols, counts,
    whole-valued floats), else as float64 (missing frames NaN); lengths are int64, one
    sequence of n_samples when ``lengths`` was None; weights float64; states int64 (-1
    unknown). So the same data given as a list or an array, int32, int64 or float64,
    (n,) or (n, 1), with ``lengths=None`` or ``[n]``, hashes alike, whichever family
    reads it (``hmmfast.hash_data`` computes it without a model). None when the
    observations are not numbers (a custom family's).
    """
    X = np.asarray(X)
    if X.ndim == 0 or X.dtype.kind not in "biuf":
        return None  # a custom family's observations that are not numbers
    X = _canonical_values(X.reshape(len(X), -1))
    if missing is not None:
        X = np.array(X, dtype=FLOAT)
        X[missing] = np.nan
    parts = [("X", X), ("lengths", np.diff(offsets).astype(INDEX))]
    if weights is not None:
        parts.append(("sample_weight", np.asarray(weights).astype(FLOAT, copy=False)))
    if labels is not None:
        parts.append(("states", np.asarray(labels).astype(INDEX, copy=False)))
    h = hashlib.sha256()
    for name, arr in parts:
        head, data = _encode(arr)
        h.update(name.encode("ascii"))
        h.update(head)
        h.update(data)
    return h.hexdigest()


_WHOLE_LIMIT = 2.0 ** 53  # whole floats up to here are exact in int64 and float64 alike


def _canonical_values(X):
    """X as int64 when every value is a whole number within 2**53 (or X has an integer
    dtype whose values fit int64), else as float64."""
    if X.dtype.kind in "bi" or (X.dtype.kind == "u" and (X.size == 0 or
                                                         X.max() <= np.iinfo(np.int64).max)):
        return X.astype(INDEX, copy=False)
    as_float = X.astype(FLOAT, copy=False)
    with np.errstate(invalid="ignore"):
        whole = bool(np.all((np.abs(as_float) <= _WHOLE_LIMIT) & (as_float == np.trunc(as_float))))
    return as_float.astype(INDEX) if whole else as_float


def fingerprint(class_name, structure, checksums):
    """Hex SHA-256 of the canonical JSON (sorted keys, no spaces, ASCII) of
    ``{"fingerprint_version": 1, "class": ..., "structure": {...}, "arrays": {member:
    array_sha256}}`` over the parameter members only (not the priors)."""
    doc = {"fingerprint_version": FINGERPRINT_VERSION, "class": class_name,
           "structure": structure, "arrays": checksums}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# ---------------------------------------------------------------------- members


def parameter_members(class_name, structure):
    """{member name: (dtype, shape)} of a class's parameter arrays for ``structure``."""
    n, d = structure["n_components"], structure["n_features"]
    out = {"startprob_": (FLOAT, (n,))}
    if structure["transmat_format"] == "csr":
        nnz = structure["transmat_nnz"]
        out.update({"transmat_.data": (FLOAT, (nnz,)), "transmat_.indices": (INDEX, (nnz,)),
                    "transmat_.indptr": (INDEX, (n + 1,))})
    else:
        out["transmat_"] = (FLOAT, (n, n))
    ct = structure.get("covariance_type")
    if class_name in ("CategoricalHMM", "MultinomialHMM"):
        out["emissionprob_"] = (FLOAT, (n, d))
    elif class_name == "GaussianHMM":
        out["means_"] = (FLOAT, (n, d))
        out["covars_"] = (FLOAT, {"spherical": (n,), "diag": (n, d), "full": (n, d, d),
                                  "tied": (d, d)}[ct])
    elif class_name == "GMMHMM":
        k = structure["n_mix"]
        out["weights_"] = (FLOAT, (n, k))
        out["means_"] = (FLOAT, (n, k, d))
        out["covars_"] = (FLOAT, {"spherical": (n, k), "diag": (n, k, d),
                                  "full": (n, k, d, d), "tied": (n, d, d)}[ct])
    else:
        out["lambdas_"] = (FLOAT, (n, d))
    return out


# ---------------------------------------------------------------------- JSON values


def _special_float(x):
    return {"__float__": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def encode_params(params):
    """(JSON-safe params, {member: float64 array}, unsaved names) from get_params().

    Numbers and strings stay; non-finite floats become ``{"__float__": "-inf"}``;
    arrays and lists (priors) become float64 members ``param.<name>`` referenced as
    ``{"__array__": "param.<name>"}``; a RandomState or Generator ``random_state`` is
    not saved (null, listed in ``unsaved_params``).
    """
    out, arrays, unsaved = {}, {}, []
    for name, value in sorted(params.items()):
        if value is None or isinstance(value, (bool, str)):
            out[name] = value
        elif isinstance(value, np.bool_):
            out[name] = bool(value)
        elif isinstance(value, numbers.Integral):
            out[name] = int(value)
        elif isinstance(value, numbers.Real):
            value = float(value)
            out[name] = value if math.isfinite(value) else _special_float(value)
        elif name == "random_state" and isinstance(value, (np.random.RandomState,
                                                           np.random.Generator)):
            out[name] = None
            unsaved.append(name)
        else:
            try:
                arr = np.asarray(value)
                ok = arr.dtype.kind in "biuf"
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise HMMTypeError(
                    f"cannot save constructor parameter {name}={value!r:.60}: a model file "
                    "holds numbers, strings, None and numeric arrays")
            member = PARAM_PREFIX + name
            arrays[member] = np.ascontiguousarray(arr, dtype=FLOAT)
            out[name] = {"__array__": member}
    return out, arrays, unsaved


def decode_value(value, arrays):
    """A JSON header value back to Python: special floats and array references."""
    if isinstance(value, dict):
        if set(value) == {"__float__"} and value["__float__"] in ("nan", "inf", "-inf"):
            return float(value["__float__"])
        if set(value) == {"__array__"} and value["__array__"] in arrays:
            return np.array(arrays[value["__array__"]])
        raise ValueError(f"unexpected object {value!r:.80}")
    return value


def check_metadata(metadata):
    """``metadata`` as a JSON-safe dict (None -> {}), or HMMTypeError naming the part:
    dicts with str keys, lists/tuples (saved as lists), str, int, finite float, bool,
    None."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise HMMTypeError(f"metadata must be a dict of JSON-safe values, got "
                           f"{type(metadata).__name__}")

    def walk(value, where):
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise HMMTypeError(f"metadata{where}: keys must be str, got {key!r:.40}")
                walk(item, f"{where}[{key!r}]")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")
        elif isinstance(value, float) and not math.isfinite(value):
            raise HMMTypeError(f"metadata{where} = {value}: JSON has no NaN or infinity")
        elif value is not None and not isinstance(value, (str, int, float)):
            raise HMMTypeError(
                f"metadata{where} is a {type(value).__name__}; expected JSON-safe values "
                "(dict, list, str, int, float, bool, None; convert arrays with .tolist())")

    walk(metadata, "")
    return metadata


def encode_header(header):
    """UTF-8 JSON bytes of the header (sorted keys, compact), as a uint8 array."""
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _no_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} overflows a float")
    return value


def _unique_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r:.40}")
        out[key] = value
    return out


def parse_header(where, data):
    """The header dict from its bytes (strict JSON: no NaN, no duplicate keys)."""
    try:
        header = json.loads(bytes(data).decode("utf-8"), parse_constant=_no_constant,
                            parse_float=_finite_float, object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{where}: the header is not valid UTF-8 JSON ({exc})"[:300]) \
            from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{where}: the header must be a JSON object, found "
                             f"{type(header).__name__}")
    return header


# ---------------------------------------------------------------------- header checks


def _type_ok(value, types):
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in types:
        return False  # JSON true is no int
    if isinstance(value, int) and float in types and int not in types:
        return True  # JSON 2 for a float
    return isinstance(value, types)


def _is_count(value, minimum=1):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_header(where, header, param_names):
    """Raise ModelFileError unless ``header`` is a well-formed header of format version
    1 or 2 (2 adds ``version_id`` and the fit record's lineage keys).

    ``param_names`` maps each known class name to its constructor parameter names.
    """

    def fail(what):
        raise ModelFileError(f"{where}: {what}")

    if header.get("format") != FORMAT:
        fail(f"not an hmmfast model file: header format is {header.get('format')!r:.60}, "
             f"expected {FORMAT!r}")
    version = header.get("format_version")
    if not _is_count(version):
        fail(f"format_version must be an integer >= 1, found {version!r:.40}")
    if version > FORMAT_VERSION:
        fail(f"written by a newer hmmfast (format version {version}); this hmmfast "
             f"{_version()} reads format versions up to {FORMAT_VERSION}: upgrade hmmfast")
    keys = HEADER_KEYS if version == 1 else HEADER_KEYS_V2
    missing = sorted(set(keys) - set(header))
    extra = sorted(set(header) - set(keys))
    if missing or extra:
        fail(f"header keys differ from format version {version}: missing {missing}, "
             f"unexpected {extra}"[:300])
    for key, types in keys.items():
        if not _type_ok(header[key], types):
            fail(f"header[{key!r}] has type {type(header[key]).__name__}, expected "
                 f"{getattr(types, '__name__', types)}")
    cls = header["class"]
    if cls not in param_names:
        fail(f"unknown model class {cls!r:.60}; expected one of {sorted(param_names)}")
    _check_structure(fail, cls, header["structure"])
    _check_params(fail, header, param_names[cls])
    if not _HEX64.fullmatch(header["fingerprint"]):
        fail("fingerprint must be 64 lowercase hex digits")
    if not all(isinstance(x, str) for x in header["unsaved_params"]):
        fail("unsaved_params must be a list of names")
    fit = header["fit"]
    if fit is not None:
        for key, types in FIT_KEYS.items():
            value = fit.get(key)
            if isinstance(value, dict) and key == "log_likelihood":
                value = decode_value(value, {})  # a special float
            if key not in fit or not _type_ok(value, types):
                fail(f"fit record key {key!r} is {value!r:.40}, expected "
                     f"{getattr(types, '__name__', types)}")
        digest = fit["training_data_sha256"]
        if digest is not None and not _HEX64.fullmatch(digest):
            fail("fit training_data_sha256 must be 64 lowercase hex digits")
        from ._versions import check_fit_extra

        check_fit_extra(fail, fit, required=version >= 2)
    if version >= 2 and not _HEX64.fullmatch(header["version_id"]):
        fail("version_id must be 64 lowercase hex digits")
    expected = declared_members(where, header)
    arrays = header["arrays"]
    if set(arrays) != set(expected):
        fail(f"header declares arrays {sorted(arrays)[:12]}, expected "
             f"{sorted(expected)}"[:300])
    checksums = {}
    for name, (dtype, shape) in expected.items():
        entry = arrays[name]
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "sha256"}:
            fail(f"header arrays[{name!r}] must be {{dtype, shape, sha256}}")
        declared = entry["shape"]
        if (entry["dtype"] != dtype or not isinstance(declared, list)
                or not all(_is_count(s, 0) for s in declared)
                or (shape is not None and tuple(declared) != shape)):
            fail(f"header declares {name} as {entry['dtype']!r:.12} {declared!r:.60}; "
                 f"the sizes need {dtype} {shape if shape is not None else '(any shape)'}")
        if not isinstance(entry["sha256"], str) or not _HEX64.fullmatch(entry["sha256"]):
            fail(f"header arrays[{name!r}].sha256 must be 64 lowercase hex digits")
        checksums[name] = entry["sha256"]
    params = set(parameter_members(cls, header["structure"]))
    found = fingerprint(cls, header["structure"], {k: checksums[k] for k in sorted(params)})
    if found != header["fingerprint"]:
        fail(f"fingerprint {header['fingerprint'][:12]}... does not match the class, "
             f"structure and array checksums ({found[:12]}...)")


def _check_structure(fail, cls, structure):
    keys = set(STRUCTURE[cls]) | {"transmat_format"}
    if structure.get("transmat_format") == "csr":
        keys.add("transmat_nnz")
    if set(structure) != keys:
        fail(f"structure keys {sorted(structure)} differ from {sorted(keys)} for {cls}")
    for key in keys - {"transmat_format", "covariance_type"}:
        if not _is_count(structure[key], 0 if key == "transmat_nnz" else 1):
            fail(f"structure {key} must be a positive integer, found {structure[key]!r:.40}")
    if structure["transmat_format"] not in TRANSMAT_FORMATS:
        fail(f"transmat_format must be one of {TRANSMAT_FORMATS}, found "
             f"{structure['transmat_format']!r:.40}")
    n = structure["n_components"]
    if "transmat_nnz" in structure and structure["transmat_nnz"] > n * n:
        fail(f"transmat_nnz={structure['transmat_nnz']} exceeds n_components**2 = {n * n}")
    if "covariance_type" in keys and structure["covariance_type"] not in COVARIANCE_TYPES:
        fail(f"covariance_type must be one of {COVARIANCE_TYPES}, found "
             f"{structure['covariance_type']!r:.40}")


def _choice(*options):
    return lambda v: v in options


_RULES = {  # what a saved constructor parameter may be (the rest: number, array, None)
    "n_components": _is_count, "n_features": _is_count, "n_mix": _is_count,
    "n_init": _is_count, "n_iter": lambda v: _is_count(v, 0),
    "n_threads": lambda v: v is None or _is_count(v),
    "random_state": lambda v: v is None or _type_ok(v, int),
    "algorithm": _choice("viterbi", "map"), "implementation": _choice("scaling", "log"),
    "covariance_type": _choice(*COVARIANCE_TYPES), "missing": _choice("raise", "marginalize"),
    "params": lambda v: isinstance(v, str), "init_params": lambda v: isinstance(v, str),
    "verbose": lambda v: isinstance(v, int),
}


def _plain(value):
    """A number, special float, array reference or None (priors and other settings)."""
    if isinstance(value, dict):
        return (set(value) == {"__array__"}
                or value in ({"__float__": "nan"}, {"__float__": "inf"}, {"__float__": "-inf"}))
    return value is None or _type_ok(value, float)


def _check_params(fail, header, names):
    params, structure = header["params"], header["structure"]
    unknown = sorted(set(params) - set(names))
    if unknown:
        fail(f"unknown constructor parameters {unknown[:5]} for {header['class']}; "
             f"expected some of {sorted(names)}"[:300])
    for name, value in params.items():
        if not _RULES.get(name, _plain)(value):
            fail(f"constructor parameter {name}={value!r:.60} is not valid")
    for key in ("n_components", "n_features", "n_mix", "covariance_type"):
        if key in params and key in structure and params[key] != structure[key]:
            fail(f"params {key}={params[key]!r:.20} but structure {key}="
                 f"{structure[key]!r:.20}; expected them equal")
    if "n_components" not in params:
        fail("params lacks n_components")


def declared_members(where, header):
    """{member: (dtype, shape or None)}: the parameters and the array-valued params."""
    out = parameter_members(header["class"], header["structure"])
    for name, value in header["params"].items():
        if isinstance(value, dict) and "__array__" in value:
            if value != {"__array__": PARAM_PREFIX + name}:
                raise ModelFileError(f"{where}: params[{name!r}] refers to "
                                     f"{value!r:.60}, expected {PARAM_PREFIX + name!r}")
            out[PARAM_PREFIX + name] = (FLOAT, None)
    return out


def _version():
    from . import __version__

    return __version__
