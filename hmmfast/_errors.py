"""The exceptions hmmfast raises.

Every error is a ValueError or TypeError subclass whose message names the argument, what
was expected and what came, so callers that catch hmmlearn's ValueErrors keep working.
"""


class HMMInputError(ValueError):
    """Observations, lengths or states that do not fit the model."""


class HMMTypeError(TypeError, ValueError):
    """An argument of the wrong type or dtype (also a ValueError, as in hmmlearn)."""


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
    """

    def __init__(self, message, sequence, step, position):
        super().__init__(message)
        self.sequence = sequence
        self.step = step
        self.position = position


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
            f"n_features={n_rows}, got {value}"
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
