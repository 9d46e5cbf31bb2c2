"""Checks that make bad input impossible before a kernel sees it.

Parameters are validated once, when they are set; observations on every call, by a
fast path for already-canonical arrays (``_emissions.canonical_symbols``) and the
functions here for everything else. Each message names the argument, what was expected
and what came.
"""

import numbers

import numpy as np

from ._errors import HMMInputError, HMMTypeError, ParameterError
from ._readonly import freeze

#: Largest |row sum - 1| accepted for a float64 probability vector; within it the row is
#: renormalised, beyond it the parameter is rejected. Lower-precision inputs (float32,
#: float16) are checked to their own precision: n_columns * machine epsilon.
SUM_TOLERANCE = 1e-8


def _shape_str(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def refuse_dask(name, value):
    """A clear error for a Dask collection (DataFrame, Bag, Array, Delayed), recognised by
    Dask's collection protocol without importing Dask, before NumPy would compute all
    of it into one array (for X: one sequence)."""
    if hasattr(type(value), "__dask_graph__"):
        raise HMMTypeError(
            f"{name} is a Dask collection ({type(value).__module__}."
            f"{type(value).__name__}); hmmfast's estimator methods take data in memory and "
            "would compute all of it as one sequence. Use hmmfast.distributed, which works "
            "per session on the cluster: fit_distributed(model, data), "
            "score_partitions(model, data) or decode_partitions(model, data); or compute() "
            "it first if it fits in memory")


def _real_array(name, value, what="an array of numbers"):
    """``value`` as an ndarray of real numbers (any dtype but complex), or a clear error."""
    if not isinstance(value, np.ndarray):
        refuse_dask(name, value)
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise HMMTypeError(f"{name} must be {what}; got {value!r:.80} ({exc})") from None
    if arr.dtype.kind == "c":
        raise HMMTypeError(f"{name} must hold real numbers, got complex dtype {arr.dtype}")
    return arr


def broadcast_real(name, value, shape):
    """``value`` (a number or an array of real numbers) as a read-only float64 view
    broadcast to ``shape``, or a clear error (values are the caller's to check)."""
    arr = _real_array(name, value)
    try:
        return np.broadcast_to(np.asarray(arr, dtype=np.float64), shape)
    except ValueError:
        raise ParameterError(
            f"{name} must be a number or an array broadcastable to {shape}, "
            f"got shape {_shape_str(np.shape(arr))}"
        ) from None


def as_float_array(name, value, shape, expected):
    """``value`` as a new float64 array of exactly ``shape``, or a clear error.

    ``expected`` describes the shape in words, e.g. "(n_components,) = (3,)".
    """
    arr = _real_array(name, value)
    try:
        arr = np.array(arr, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise HMMTypeError(f"{name} must be an array of numbers; got {value!r:.80} ({exc})") from None
    if arr.shape != tuple(shape):
        raise ParameterError(f"{name} must have shape {expected}, got {_shape_str(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ParameterError(f"{name} must be finite; {name}{list(bad)} = {float(arr[bad])}")
    return arr


def _sum_tolerance(value, n_cols):
    """Row-sum tolerance for probabilities given as ``value`` (by its float precision)."""
    dtype = getattr(value, "dtype", None)
    eps = np.finfo(dtype).eps if dtype is not None and dtype.kind == "f" else 0.0
    return max(SUM_TOLERANCE, n_cols * float(eps))


def _normalise_rows(name, arr, tolerance, vector=False):
    """Check non-negativity and unit row sums of a 2-D array in place; renormalise drift."""
    if np.any(arr < 0):
        bad = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        index = list(bad[1:] if vector else bad)
        raise ParameterError(f"{name} must be non-negative; {name}{index} = {float(arr[bad])}")
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0) > tolerance
    if np.any(off):
        i = int(np.argmax(off))
        what = name if vector else f"row {i} of {name}"
        raise ParameterError(
            f"{what} sums to {float(sums[i])!r}; expected 1 (within {tolerance:g})"
        )
    # renormalise only rows off by more than rounding, so validating an already
    # validated array (unpickling, copying) leaves it bit for bit unchanged
    drift = np.abs(sums - 1.0) > arr.shape[1] * np.finfo(np.float64).eps
    arr[drift] /= sums[drift, None]


def probability_vector(name, value, n, size_name="n_components"):
    """Validated read-only float64 copy of a probability vector of length ``n``."""
    arr = as_float_array(name, value, (n,), f"({size_name},) = ({n},)")
    _normalise_rows(name, arr[None, :], _sum_tolerance(value, n), vector=True)
    return freeze(arr, name)


def stochastic_matrix(name, value, n_rows, n_cols, cols_name="n_components"):
    """Validated read-only float64 copy of a row-stochastic (n_rows, n_cols) matrix."""
    arr = as_float_array(
        name, value, (n_rows, n_cols), f"(n_components, {cols_name}) = ({n_rows}, {n_cols})"
    )
    _normalise_rows(name, arr, _sum_tolerance(value, n_cols))
    return freeze(arr, name)


def read_only_log(arr):
    """log of a probability array (0 -> -inf), C-contiguous and read-only."""
    with np.errstate(divide="ignore"):
        out = np.ascontiguousarray(np.log(arr))
    out.flags.writeable = False
    return out


IMPLEMENTATIONS = ("scaling", "log")


def uses_scaling(implementation):
    """True for implementation="scaling", False for "log", an error otherwise."""
    if implementation not in IMPLEMENTATIONS:
        raise ParameterError(
            f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}"
        )
    return implementation == "scaling"


def check_random_state(seed):
    """A numpy random generator from None, an int, a RandomState or a Generator."""
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, (np.random.RandomState, np.random.Generator)):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.RandomState(seed)
    raise HMMTypeError(
        f"random_state must be None, an int, a RandomState or a Generator, got {seed!r}"
    )


def check_n(name, value, minimum=1):
    """A positive integer hyper-parameter."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise HMMTypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def lengths_to_offsets(lengths, n_samples):
    """Sequence boundaries (n_seq + 1,) intp from hmmlearn's ``lengths``.

    Every length must be a positive integer (integer dtype, or floats holding whole
    numbers) and they must sum to ``n_samples``. Errors quote the value as given.
    """
    arr = _real_array("lengths", lengths, "a 1-D sequence of integers")
    if arr.ndim != 1:
        raise HMMInputError(f"lengths must be a 1-D sequence of integers, got shape {arr.shape}")
    if arr.size == 0:
        raise HMMInputError("lengths is empty; expected at least one sequence length")
    if arr.dtype.kind not in "iuf":
        raise HMMTypeError(f"lengths must hold integers, got dtype {arr.dtype}")
    with np.errstate(invalid="ignore"):
        bad = ~(arr > 0)
        if arr.dtype.kind == "f":
            bad |= ~np.isfinite(arr) | (arr != np.floor(arr))
    if np.any(bad):
        i = int(np.argmax(bad))
        raise HMMInputError(
            f"lengths[{i}] = {arr[i].item()!r}: every sequence length must be a positive integer",
            sequence=i)
    too_long = arr > n_samples
    if np.any(too_long):
        i = int(np.argmax(too_long))
        raise HMMInputError(
            f"lengths[{i}] = {arr[i].item()!r} is longer than X, which has {n_samples} samples",
            sequence=i)
    offsets = np.zeros(arr.size + 1, dtype=np.intp)
    np.cumsum(arr.astype(np.intp), out=offsets[1:])  # no overflow: each length <= n_samples
    if offsets[-1] != n_samples:
        raise HMMInputError(
            f"lengths sum to {offsets[-1]} but X has {n_samples} samples; they must be equal"
        )
    return offsets


def symbols(X):
    """Categorical observations as a C-contiguous (T,) intp array (slow path).

    Accepts hmmlearn's (n_samples, 1) integer array, a 1-D integer array, or a list.
    The range of each symbol is checked by the kernels as they read it.
    """
    if isinstance(X, np.ndarray):
        arr = X
    else:
        refuse_dask("X", X)
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise HMMTypeError(f"X must be an array of integer symbols ({exc})") from None
    if arr.size == 0:
        raise HMMInputError("X is empty; expected at least one observation")
    if arr.dtype.kind not in "iu":
        raise HMMTypeError(
            f"X must hold integer symbols (CategoricalHMM), got dtype {arr.dtype}"
        )
    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise HMMInputError(
                f"X must have shape (n_samples, 1) or (n_samples,) for a CategoricalHMM, "
                f"got {_shape_str(arr.shape)}"
            )
        arr = arr[:, 0]
    elif arr.ndim != 1:
        raise HMMInputError(
            f"X must have shape (n_samples, 1) or (n_samples,), got {_shape_str(arr.shape)}"
        )
    if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.intp).max:
        raise HMMInputError(f"X holds symbol {arr.max()}, too large for any model")
    return np.require(arr, np.intp, ["C", "A"])  # also copies unaligned or byte-swapped X


#: Largest magnitude of a finite log-density: beyond it sums over a sequence could
#: overflow (or cancel to nothing), so such values are refused rather than mis-scored.
MAX_LOG_DENSITY = 1e100


def log_emission_matrix(value, n_states, name="log_emissions"):
    """A (T, N) float64 C-contiguous aligned matrix of log-densities, T >= 1: no NaN, no
    +inf, finite values within +-MAX_LOG_DENSITY (-inf marks an impossible emission)."""
    arr = _real_array(name, value)
    try:
        arr = np.require(arr, np.float64, ["C", "A"])
    except (TypeError, ValueError) as exc:
        raise HMMTypeError(f"{name} must be an array of numbers ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] != n_states:
        raise HMMInputError(
            f"{name} must have shape (n_samples, n_components) = (T, {n_states}), "
            f"got {_shape_str(arr.shape)}"
        )
    if arr.shape[0] == 0:
        raise HMMInputError(f"{name} is empty; expected at least one time step")
    bad = np.isnan(arr) | (arr == np.inf)
    if np.any(bad):
        t, j = (int(i) for i in np.argwhere(bad)[0])
        raise HMMInputError(
            f"{name}[{t}, {j}] = {arr[t, j]}: log-densities must be finite or -inf",
            position=t)
    huge = (np.abs(arr) > MAX_LOG_DENSITY) & (arr != -np.inf)
    if np.any(huge):
        t, j = (int(i) for i in np.argwhere(huge)[0])
        raise HMMInputError(
            f"{name}[{t}, {j}] = {arr[t, j]!r}: finite log-densities must have magnitude "
            f"<= {MAX_LOG_DENSITY:g} (use -inf for an impossible emission)", position=t)
    return arr


def features(X):
    """Generic continuous observations: a finite (n_samples, n_features) float array."""
    arr = _real_array("X", X)
    try:
        arr = np.require(arr, np.float64, ["C", "A"])
    except (TypeError, ValueError) as exc:
        raise HMMTypeError(f"X must be an array of numbers ({exc})") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise HMMInputError(f"X must have shape (n_samples, n_features), got {_shape_str(arr.shape)}")
    if arr.shape[0] == 0:
        raise HMMInputError("X is empty; expected at least one observation")
    if not np.all(np.isfinite(arr)):
        t = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise HMMInputError(f"X[{t}] contains NaN or infinity; observations must be finite",
                            position=t)
    return arr


def pruning(beam=None, max_active=None, min_active=None):
    """Beam-search options as (beam, max_active, min_active) for the kernel, or None when
    none is set (exact Viterbi). beam: a log-probability width >= 0 (None or inf: no
    beam); max_active, min_active: integers >= 1 (None: no limit), min <= max."""
    if beam is None and max_active is None and min_active is None:
        return None
    width = np.inf
    if beam is not None:
        if isinstance(beam, (bool, np.bool_)) or not isinstance(beam, numbers.Real):
            raise HMMTypeError(f"beam must be a number >= 0 (a log-probability width), got {beam!r}")
        width = float(beam)
        if not width >= 0:
            raise ParameterError(f"beam must be >= 0 (a log-probability width), got {beam!r}")
    top = 0 if max_active is None else check_n("max_active", max_active)
    bottom = 0 if min_active is None else check_n("min_active", min_active)
    if top and bottom > top:
        raise ParameterError(
            f"min_active={bottom} exceeds max_active={top}; expected min_active <= max_active")
    if width == np.inf and not top:
        return None  # nothing to prune: exact Viterbi (min_active alone changes nothing)
    return width, top, bottom
