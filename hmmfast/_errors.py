"""The exceptions hmmfast raises.

Every error is a ValueError or TypeError subclass whose message names the argument, what
was expected and what came, so callers that catch hmmlearn's ValueErrors keep working.

An error about one place in the input (a symbol out of range, a NaN frame, a negative
count, an impossible or pruned sequence, a bad sequence of a batch) also carries that
place as attributes, so a caller never parses the message for it:

sequence : int or None
    Index of the sequence (0 for a single one).
step : int or None
    The time step within that sequence.
position : int or None
    The row of X, the observations as the call took them (concatenated for ``lengths``
    or a batch's list of sequences; for a stream, the chunk given to ``push``).

Each is None when the error is not about one place, or when the code that found it did
not know that part (X is checked before its ``lengths``, so a bad frame of
``score(X, lengths)`` names its ``position`` only; batches given as a list of sequences,
the kernels and the streams name all three).
"""

_PLACE = ("sequence", "step", "position")


def _set_place(exc, sequence, step, position):
    exc.sequence = None if sequence is None else int(sequence)
    exc.step = None if step is None else int(step)
    exc.position = None if position is None else int(position)


class HMMInputError(ValueError):
    """Observations, lengths or states that do not fit the model.

    Attributes ``sequence``, ``step``, ``position``: where (see the module docstring).
    """

    def __init__(self, message, *, sequence=None, step=None, position=None):
        super().__init__(message)
        _set_place(self, sequence, step, position)


class HMMTypeError(TypeError, ValueError):
    """An argument of the wrong type or dtype (also a ValueError, as in hmmlearn).

    Attributes ``sequence``, ``step``, ``position``: where (see the module docstring).
    """

    def __init__(self, message, *, sequence=None, step=None, position=None):
        super().__init__(message)
        _set_place(self, sequence, step, position)


class ParameterError(ValueError):
    """Model parameters that are not a valid HMM (shape, NaN, negative, not stochastic)."""


class NotFittedError(ValueError, AttributeError):
    """A model used before its parameters were fitted or set."""


class ModelFileError(ValueError):
    """A model file that cannot be loaded: not a model file, a newer format version, a
    checksum mismatch, shapes that contradict the header, invalid parameters. The message
    names the file, what is wrong, and what was expected."""


class ConvergenceWarning(UserWarning):
    """EM stopped at ``n_iter`` iterations before its gain fell below ``tol``."""


class ImpossibleSequenceError(ValueError):
    """A sequence the model gives probability zero, where a result needs P(X) > 0.

    Attributes
    ----------
    sequence : int
        Index of the sequence (0 for a single one).
    step : int
        The first time step, within that sequence, that no state path can explain.
    position : int
        The same step as a row index into the concatenated X.

    The library always sets all three; the arguments are optional so that the error can
    be rebuilt from its message alone (pickling, ``reworded``).
    """

    def __init__(self, message, sequence=None, step=None, position=None):
        super().__init__(message)
        _set_place(self, sequence, step, position)


class PruningError(ImpossibleSequenceError):
    """Beam pruning (beam, max_active) removed every path at some step: the sequence may
    well be possible; widen ``beam`` or raise ``min_active``. Attributes as for
    ImpossibleSequenceError."""


# Status codes shared with csrc/_common.pxd.
_STATUS_BAD_ROW = 1
_STATUS_IMPOSSIBLE = 2
_STATUS_PRUNED = 5


def raise_kernel_status(code, sequence, frame, seq_start, value, n_rows):
    """Turn a kernel's status for one sequence into the library exception (always raises)."""
    step = frame - seq_start
    where = f"X[{frame}] (sequence {sequence}, step {step})"
    if code == _STATUS_BAD_ROW:
        raise HMMInputError(
            f"observation symbol out of range at {where}: expected 0 <= symbol < "
            f"n_features={n_rows}, got {value}",
            sequence=sequence, step=step, position=frame,
        )
    if code == _STATUS_IMPOSSIBLE:
        raise ImpossibleSequenceError(
            f"sequence {sequence} has probability zero under the model: no state path "
            f"explains {where} given the steps before it; its log-likelihood is -inf, so it "
            "cannot be decoded and has no posteriors",
            sequence,
            step,
            frame,
        )
    if code == _STATUS_PRUNED:
        raise PruningError(
            f"beam pruning removed every path of sequence {sequence} at {where}: the "
            "sequence may be possible, widen beam or raise min_active",
            sequence, step, frame,
        )
    raise RuntimeError(f"hmmfast kernel returned unknown status {code} at {where}")


def place(exc):
    """``{"sequence", "step", "position"}`` of an error (None where it names none)."""
    return {name: getattr(exc, name, None) for name in _PLACE}


def reworded(exc, message, **where):
    """A new error of ``exc``'s type saying ``message`` at ``exc``'s place (``where``:
    ``sequence=``, ``step=``, ``position=`` to set instead)."""
    new = type(exc)(message)
    for name, value in {**place(exc), **where}.items():
        if value is not None:
            setattr(new, name, int(value))
    return new


def locate(exc, offsets):
    """Complete ``exc``'s place from ``offsets`` ((S + 1,) ndarray), the sequence bounds of the
    concatenated X it was raised about: the sequence and step of its position, or the
    position of its sequence's step. Returns ``exc``."""
    sequence, step, position = (getattr(exc, name, None) for name in _PLACE)
    n_seq = len(offsets) - 1
    if position is not None and sequence is None and 0 <= position < offsets[n_seq]:
        s = int(offsets.searchsorted(position, side="right")) - 1
        _set_place(exc, s, position - offsets[s], position)
    elif (position is None and sequence is not None and step is not None
          and 0 <= sequence < n_seq):
        _set_place(exc, sequence, step, offsets[sequence] + step)
    return exc


class TextFormatError(ValueError):
    """A line of a text data file that is not what the reader expects (raised by the
    compiled reader, hmmfast._textio).

    Attributes
    ----------
    line : int
        1-based line number in the file.
    column : int
        1-based byte column of the offending token (0 for a whole-line problem).
    token : str
        The offending text ('' for a whole-line problem).
    """

    def __init__(self, message, line, column, token):
        super().__init__(message)
        self.line = line
        self.column = column
        self.token = token
