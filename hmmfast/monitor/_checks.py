"""Argument checks shared by the monitors: each error names the argument, what was
expected and what came (hmmfast's error classes, so ValueError/TypeError still catch)."""

import numbers

import numpy as np

from .._base import BaseHMM
from .._errors import HMMInputError, HMMTypeError, ParameterError


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def percent(name, value):
    """A percentile in percent, 0 <= value <= 100, as numpy.percentile takes it."""
    if not _is_real(value):
        raise HMMTypeError(f"{name} must be a number in [0, 100] (a percentile in percent), "
                           f"got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 100.0:
        raise ParameterError(f"{name} must be in [0, 100] (a percentile in percent, e.g. 5.0 "
                             f"for the 5th percentile), got {value!r}")
    return value


def fraction(name, value, low_open=True, high_open=True):
    """A fraction in (0, 1) (ends excluded unless told)."""
    if not _is_real(value):
        raise HMMTypeError(f"{name} must be a number between 0 and 1 (a fraction), got {value!r}")
    value = float(value)
    ok_low = value > 0.0 if low_open else value >= 0.0
    ok_high = value < 1.0 if high_open else value <= 1.0
    if not (ok_low and ok_high):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ParameterError(f"{name} must be a fraction in {interval}, got {value!r}")
    return value


def positive(name, value):
    """A finite number > 0."""
    if not _is_real(value) or not np.isfinite(value) or value <= 0:
        kind = ParameterError if _is_real(value) else HMMTypeError
        raise kind(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def integer(name, value, minimum):
    """An integer >= minimum."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise HMMTypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def model(value, name="model"):
    """An hmmfast model."""
    if not isinstance(value, BaseHMM):
        raise HMMTypeError(f"{name} must be an hmmfast model (e.g. hmmfast.CategoricalHMM), "
                           f"got {type(value).__name__}")
    return value


def sequences(value, lengths, name="sequences"):
    """Reject an empty batch and the wrong container early, with the usual message."""
    if lengths is not None:
        return
    if isinstance(value, np.ndarray) or not isinstance(value, (list, tuple)):
        raise HMMTypeError(
            f"{name} must be a list (or tuple) of arrays, one per session, got "
            f"{type(value).__name__}; pass the concatenated form by keyword: "
            f"X, lengths=lengths")
    if len(value) == 0:
        raise HMMInputError(f"{name} is empty; expected at least one session")


def finite_scores(name, value, allow_neg_inf=True):
    """A 1-D float64 array of scores: NaN and +inf are errors (and -inf unless allowed)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise HMMTypeError(f"{name} must be an array of numbers, got {value!r:.80} "
                           f"({exc})") from None
    arr = arr.reshape(-1) if arr.ndim == 0 else arr
    if arr.ndim != 1:
        raise HMMInputError(f"{name} must be a 1-D array of scores, got shape {arr.shape}")
    bad = np.isnan(arr) | (arr == np.inf)
    if not allow_neg_inf:
        bad |= arr == -np.inf
    if np.any(bad):
        i = int(np.argmax(bad))
        allowed = "finite numbers or -inf" if allow_neg_inf else "finite numbers"
        raise HMMInputError(f"{name} must hold {allowed}; {name}[{i}] = {float(arr[i])}")
    return arr

