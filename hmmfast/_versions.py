"""Traceable model versions: the data hash, the fit record's lineage and the version id.

A fit records (``BaseHMM._record_fit``) what it read and what it made:

- ``training_data_sha256``: the data as the model read it (``_io_format.
  training_data_sha256``); :func:`hash_data` computes the same digest without a model,
  so a data file can be checked against a model file later (``hmmfast info
  --check-data``).
- ``fingerprint``: the model's fingerprint right after the fit. A file whose parameters
  no longer have that fingerprint (assigned after the fit) has a *stale* record: save
  keeps it, marked ``"stale": true``, and it no longer counts for the version id.
- ``random_seed``: the seed the fit drew from. With ``random_state=None`` a seed is
  drawn from NumPy's global generator (so ``np.random.seed`` still makes runs
  repeatable) and recorded: ``random_state=<that seed>`` repeats the fit exactly. An int
  ``random_state`` is recorded as is; a RandomState or Generator as None.
- ``previous_training_data_sha256``: a warm start (a fit that keeps some fitted
  parameters: ``init_params`` without their letters) continues the record of the model
  it starts from, so weekly retraining keeps the hash of every earlier data set, oldest
  first. A fresh fit starts an empty list.

``version_id`` (in the header of format version 2, and in ``hmmfast info``): SHA-256 of
the canonical JSON of the training data hashes (the earlier ones, then the last), the
hyper-parameters (every saved constructor parameter but the run-time ``n_threads`` and
``verbose``; array-valued ones by their checksum; the recorded seed) and the
fingerprint. Without a fit record, or with a stale one, the data part is left out:
hash(fingerprint, hyper-parameters). Two files share a version id exactly when they
hold the same parameters, made with the same settings from the same data.
"""

import hashlib
import json

import numpy as np

from . import _io_format as F
from ._errors import HMMInputError, HMMTypeError, ModelFileError

VERSION_ID_VERSION = 1
RUN_TIME = ("n_threads", "verbose")  # settings that change neither the fit nor the model
FIT_EXTRA = {  # fit-record keys added with format version 2 (checked when present)
    "fingerprint": (str, type(None)), "random_seed": (int, type(None)),
    "previous_training_data_sha256": list, "stale": bool,
}
_SEED_BOUND = 2**31 - 1


def hash_data(X, lengths=None, *, sample_weight=None, states=None):
    """SHA-256 of training data, exactly as ``fit`` records it (hmmfast addition).

    ``model.fit(X, lengths)`` stores this digest in its fit record
    (``hmmfast.read_header(path)["fit"]["training_data_sha256"]``); compute it again to
    check that a data set is the one a saved model was trained on. Values are hashed,
    not containers: lists and arrays, int32 and int64, whole-valued floats and ints,
    (n,) and (n, 1), ``lengths=None`` and ``[n]`` hash alike.

    Parameters
    ----------
    X : array-like of shape (n_samples,) or (n_samples, n_features)
        The observations, as given to ``fit``.
    lengths : array-like of int, optional
        Sequence lengths, as given to ``fit``.
    sample_weight, states : array-like, optional
        As given to ``fit`` (they are part of what it hashes). ``states`` with no known
        state (all -1) is an ordinary fit and is not hashed, as in ``fit``.

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    HMMTypeError
        X is not numbers.
    HMMInputError
        lengths, sample_weight or states that do not fit X.
    """
    from . import _fit
    from . import _validation as V

    arr = V._real_array("X", X, "an array of observations (n_samples,) or "
                        "(n_samples, n_features)")
    if arr.dtype.kind not in "biuf":
        raise HMMTypeError(f"X must hold numbers (symbols, counts or values), got dtype "
                           f"{arr.dtype}")
    if arr.ndim not in (1, 2) or arr.shape[0] == 0:
        raise HMMInputError(f"X must be a non-empty array of shape (n_samples,) or "
                            f"(n_samples, n_features), got shape {arr.shape}")
    offsets = _fit._offsets(lengths, len(arr))
    weights = _fit.check_sample_weight(sample_weight, len(offsets) - 1)
    labels = None
    if states is not None:
        labels = V._real_array("states", states, "an array of state indices")
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if (labels.shape != (len(arr),) or labels.dtype.kind not in "iu"
                or np.any(labels < -1)):
            raise HMMInputError(f"states must be integers >= -1 (-1: unknown), one per "
                                f"sample, shape ({len(arr)},), got {labels.dtype} of shape "
                                f"{labels.shape}")
        if not np.any(labels >= 0):
            labels = None
    return F.training_data_sha256(arr, None, offsets, weights, labels)


# ---------------------------------------------------------------------- fit records


def begin_fit(model):
    """Before a fit draws anything: give the model its generator (``model._rng``) and
    remember the seed and, for a warm start, the record it continues."""
    state = model.random_state
    seed = None
    if state is None:
        seed = int(np.random.mtrand._rand.randint(_SEED_BOUND))
        rng = np.random.RandomState(seed)
    else:
        from . import _validation as V

        rng = V.check_random_state(state)
        if isinstance(state, (int, np.integer)):
            seed = int(state)
    warm = not all(model._will_init(code, name) for code, name in model._init_letters())
    previous = getattr(model, "_fit_record", None) if warm else None
    object.__setattr__(model, "_rng", rng)
    object.__setattr__(model, "_fit_start", (seed, previous))


def fit_record(model, data, training_data_sha256, method):
    """The record of the fit that just ended (see the module docstring)."""
    seed, previous = model.__dict__.pop("_fit_start", (None, None))
    chain = []
    if previous is not None and method == "fit":
        chain = list(previous.get("previous_training_data_sha256") or [])
        if previous.get("training_data_sha256"):
            chain.append(previous["training_data_sha256"])
    monitor = model.monitor_
    return {
        "log_likelihood": monitor.history[-1] if monitor.history else None,
        "n_iter": monitor.iter,
        "converged": bool(monitor.converged),
        "n_samples": int(data.offsets[-1]),
        "n_sequences": int(data.n_seq),
        "training_data_sha256": training_data_sha256,
        "method": method,
        "fingerprint": _fingerprint_or_none(model),
        "random_seed": seed,
        "previous_training_data_sha256": chain,
        "stale": False,
    }


def _fingerprint_or_none(model):
    from . import _io
    from ._errors import NotFittedError, ParameterError

    try:
        return _io.fingerprint(model)
    except (HMMTypeError, NotFittedError, ParameterError):
        return None  # a custom subclass: it has no fingerprint


def record_for_file(record, fingerprint):
    """The fit record as a file of format version 2 holds it: every key present, and
    ``stale`` when the parameters are no longer the fit's (None: no record)."""
    if record is None:
        return None
    out = {"fingerprint": None, "random_seed": None, "previous_training_data_sha256": [],
           "stale": False, **record}
    out["previous_training_data_sha256"] = list(out["previous_training_data_sha256"])
    if out["fingerprint"] is not None and out["fingerprint"] != fingerprint:
        out["stale"] = True
    return out


def check_fit_extra(fail, fit, required):
    """The version-2 keys of a fit record: present when ``required``, well-typed."""
    for key, types in FIT_EXTRA.items():
        if key not in fit:
            if required:
                fail(f"fit record lacks {key!r} (format version 2)")
            continue
        value = fit[key]
        if not F._type_ok(value, types):
            fail(f"fit record key {key!r} is {value!r:.40}, expected "
                 f"{getattr(types, '__name__', types)}")
    if fit.get("fingerprint") is not None and not F._HEX64.fullmatch(fit["fingerprint"]):
        fail("fit fingerprint must be 64 lowercase hex digits")
    for digest in fit.get("previous_training_data_sha256", []):
        if not isinstance(digest, str) or not F._HEX64.fullmatch(digest):
            fail("fit previous_training_data_sha256 must list 64-hex-digit digests")


# ---------------------------------------------------------------------- version id


def hyper_parameters(header):
    """The saved constructor parameters that shape a fit: all but ``RUN_TIME``, an array
    by its checksum."""
    out = {}
    for name, value in header["params"].items():
        if name in RUN_TIME:
            continue
        if isinstance(value, dict) and "__array__" in value:
            value = {"__array_sha256__": header["arrays"][value["__array__"]]["sha256"]}
        out[name] = value
    return out


def version_id(header):
    """Hex SHA-256 of (training data hashes, hyper-parameters, fingerprint); see the
    module docstring. ``header``: a checked header, format version 1 or 2."""
    doc = {"version_id_version": VERSION_ID_VERSION, "fingerprint": header["fingerprint"],
           "hyper_parameters": hyper_parameters(header)}
    fit = header["fit"]
    if fit is not None and not fit.get("stale") and fit["training_data_sha256"]:
        doc["training_data"] = [*fit.get("previous_training_data_sha256", []),
                                fit["training_data_sha256"]]
        doc["random_seed"] = fit.get("random_seed")
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def check_version_id(where, header):
    """ModelFileError unless a version-2 header's version_id is the one it implies."""
    if header["format_version"] < 2:
        return
    found = version_id(header)
    if header["version_id"] != found:
        raise ModelFileError(f"{where}: version_id {str(header['version_id'])[:12]}... does "
                             f"not match the data hashes, settings and fingerprint "
                             f"({found[:12]}...)")
