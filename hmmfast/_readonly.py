"""Read-only parameter arrays whose edit errors say how to assign.

A model stores every fitted parameter read-only: it validates a parameter once, when it
is assigned, and caches what the kernels need (logs, transposes, factorisations), so an
edit in place would leave the cache stale. NumPy's own refusal ("output array is
read-only", "assignment destination is read-only") does not say what to do instead.
:class:`ParameterArray` is an ndarray that differs from its base class in one way: an
in-place operator or an item assignment on a read-only instance raises
:class:`hmmfast.ParameterError` (a ValueError, as NumPy's) naming the parameter and
the assignment that works::

    model.means_ *= 1000                    # ParameterError: ... assign a new array:
    model.means_ = model.means_ * 1000      # validated, the cache rebuilt

Everything else is the ndarray's, and the subclass does not spread: ufunc results
(``__array_wrap__``), copies and pickles are plain ndarrays; only views of a parameter
(``model.means_[0]``, ``.T``) stay ParameterArrays, read-only like it. Cost: none on
the inference paths, which read the model's compiled inputs, not these arrays (score
and decode timed the same with and without it, see the README); ``freeze`` is one view
per assignment (a microsecond or two, beside the assignment's validation). A ufunc on a
parameter pays ~1 us more for ``__array_wrap__``: M-steps and ``sample``, not hot paths.
"""

import numpy as np

from ._errors import ParameterError

_OPERATORS = {"__iadd__": "+", "__isub__": "-", "__imul__": "*", "__itruediv__": "/",
              "__ifloordiv__": "//", "__imod__": "%", "__ipow__": "**", "__imatmul__": "@",
              "__iand__": "&", "__ior__": "|", "__ixor__": "^", "__ilshift__": "<<",
              "__irshift__": ">>"}


def _name(arr):
    """The parameter an array (or a view of it) holds, or "the parameter"."""
    while arr is not None:
        name = arr.__dict__.get("_parameter") if hasattr(arr, "__dict__") else None
        if name:
            return name
        arr = getattr(arr, "base", None)
    return "the parameter"


def _refuse(arr, how):
    name = _name(arr)
    attr = f"model.{name}" if name != "the parameter" else "model.<parameter>"
    raise ParameterError(
        f"{name} is read-only: a model validates a parameter and rebuilds its cached "
        f"kernel inputs only when the parameter is assigned, so edit a copy and assign "
        f"it, e.g. {how.format(attr=attr)}")


class ParameterArray(np.ndarray):
    """ndarray of a model parameter; editing it in place raises a ParameterError that
    says how to assign instead (see the module docstring)."""

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        if return_scalar:
            return arr[()]
        return arr if type(arr) is np.ndarray else arr.view(np.ndarray)

    def __setitem__(self, key, value):
        if not self.flags.writeable:
            _refuse(self, "new = {attr}.copy(); new[...] = value; {attr} = new")
        super().__setitem__(key, value)

    def copy(self, order="C"):
        """A writeable copy, a plain ndarray."""
        return np.asarray(self).copy(order)

    def __copy__(self):
        return np.asarray(self).copy()

    def __deepcopy__(self, memo):
        return np.asarray(self).copy()

    def __reduce__(self):  # pickles as a plain ndarray
        return np.asarray(self).__reduce__()


def _inplace(method, symbol):
    base = getattr(np.ndarray, method)

    def op(self, other):
        if not self.flags.writeable:
            _refuse(self, f"{{attr}} = {{attr}} {symbol} value")
        return base(self, other)

    op.__name__ = method
    return op


for _method, _symbol in _OPERATORS.items():
    setattr(ParameterArray, _method, _inplace(_method, _symbol))


def freeze(arr, name):
    """``arr`` (a float64 ndarray the caller owns) as a read-only :class:`ParameterArray`
    holding parameter ``name`` (e.g. "means_"); a view, no copy."""
    arr.flags.writeable = False
    out = arr.view(ParameterArray)
    out.__dict__["_parameter"] = name
    return out
