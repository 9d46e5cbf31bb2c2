"""hmmlearn's semi-private hooks and initialisation log records, for its users and tests.

hmmlearn reports two things about initialisation through the ``logging`` module (its
tests read them with pytest's ``caplog``), and hmmfast writes the same records, worded
as hmmlearn words them, to the logger ``"hmmfast"``:

* a parameter that is set but will be overwritten because ``init_params`` names it
  ("Even though the 'startprob_' attribute is set, it will be overwritten during
  initialization because 'init_params' contains 's'");
* too little data for the free parameters being fitted ("Fitting a model with 42 free
  scalar parameters with only 5 data points will result in a degenerate solution.").

``_check_and_set_n_features(X)`` is hmmlearn's hook that checks X against the model's
``n_features`` (or sets it from X); the families' versions live here, called by their
methods of that name.
"""

import logging

import numpy as np

from ._errors import HMMInputError, HMMTypeError

log = logging.getLogger("hmmfast")


def log_overwrite(name, code):
    """The record hmmlearn writes when ``init_params`` overwrites a parameter already set."""
    log.warning("Even though the %r attribute is set, it will be overwritten during "
                "initialization because 'init_params' contains %r", name, code)


def log_if_degenerate(model, X):
    """hmmlearn's record when X has fewer scalars than the free parameters in ``params``
    (``model._get_n_fit_scalars_per_param()``); nothing for a model that cannot count
    its parameters (a custom subclass without the hook)."""
    try:
        per_param = model._get_n_fit_scalars_per_param()
    except (NotImplementedError, AttributeError, TypeError, KeyError, ValueError):
        return  # sizes or settings not valid yet: the family's own checks will say so
    if per_param is None:
        return
    n_fit = int(sum(per_param.get(p, 0) for p in model.params))
    size = int(np.size(X))
    if size < n_fit:
        log.warning("Fitting a model with %d free scalar parameters with only %d data "
                    "points will result in a degenerate solution.", n_fit, size)


def check_n_features(model, X):
    """hmmlearn's ``_check_and_set_n_features`` for feature vectors: X of shape
    (n_samples, n_features) must match the model's ``n_features``, which X sets when it
    is not known yet."""
    shape = np.shape(X)
    if len(shape) != 2:
        raise HMMInputError(f"X must have shape (n_samples, n_features), got {shape}")
    d = getattr(model, "n_features", None)
    if d is None:
        model.n_features = int(shape[1])
    elif shape[1] != d:
        raise HMMInputError(f"Unexpected number of dimensions, got {shape[1]} but expected "
                            f"{d} (n_features)")


def check_symbols(model, X):
    """hmmlearn's ``_check_and_set_n_features`` for CategoricalHMM: X holds non-negative
    integers below ``n_features`` (set to the largest symbol + 1 when not known yet)."""
    arr = np.asarray(X)
    if arr.dtype.kind not in "iu":
        raise HMMTypeError(f"Symbols should be integers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise HMMInputError("X is empty; expected at least one observation")
    if arr.min() < 0:
        raise HMMInputError(f"Symbols should be nonnegative, got {arr.min()}")
    if model.n_features is None:
        model.n_features = int(arr.max()) + 1
    elif arr.max() >= model.n_features:
        raise HMMInputError(f"Largest symbol is {arr.max()} but the model only emits symbols "
                            f"up to {model.n_features - 1} (n_features={model.n_features})")
