"""Where an error inside a partition is: the partition, the user's session id, the step
and, for continuous data, the column.

The library's errors carry their place in the data the call saw (``sequence``, ``step``,
``position``: see hmmfast._errors); inside a partition that data is the partition's
rows, its sessions in order. Here that place is translated into the user's terms and
written at the front of the message, ``partition 3, session 80000, step 7, column 'x1':
...``, and also set as attributes of the error, so a caller never parses the message:

partition : int
    The partition's number (its position in the collection).
session : object or None
    The user's session id (a DataFrame's ``session_col``); None for a Bag, whose items
    have no ids (``sequence`` is then the item's position within the partition).
column : str or None
    The observation column holding the bad value (a value error on a known row).

``sequence``, ``step`` and ``position`` keep the library's meaning within the partition
(``position`` is the partition's row, ``sequence`` the session's position in it).
"""

import numpy as np

from .._errors import HMMInputError, HMMTypeError, locate, reworded


def show(session_id):
    """repr of a session id as the user wrote it (4, not np.int64(4))."""
    return repr(plain(session_id))


def plain(value):
    """A NumPy scalar as the Python value it holds (ids in messages and attributes)."""
    return value.item() if isinstance(value, np.generic) else value


def prefix(index, session=None, step=None, column=None):
    """'partition 3, session 80000, step 7, column 'obs': ' (the parts that are known)."""
    parts = [f"partition {index}"]
    if session is not None:
        parts.append(session)
    if step is not None:
        parts.append(f"step {step}")
    if column is not None:
        parts.append(f"column {column!r}")
    return ", ".join(parts) + ": "


def input_error(message, index, part=None, row=None, column=None, cls=HMMInputError):
    """An error about row ``row`` of a partition (None: the partition as a whole), its
    place (session, step, column) written in front and set as attributes."""
    return placed(cls(message, position=row), index, part, column)


def placed(exc, index, part=None, column=None):
    """``exc`` reworded with its place in front (see the module notes), as a new error of
    the same type; ``part`` (a Partition) names the session and, for a value error on a
    known row, the column."""
    if part is not None:
        locate(exc, part.offsets)
    s, step = getattr(exc, "sequence", None), getattr(exc, "step", None)
    session = session_id = None
    if part is not None and s is not None and 0 <= s < part.n_sessions:
        session = part.session_name(s)
        session_id = None if part.ids is None else plain(part.ids[s])
    else:
        step = None  # a step means something within a named session only
    if column is None and isinstance(exc, (HMMInputError, HMMTypeError)):
        column = part.column_at(getattr(exc, "position", None)) if part is not None else None
    text = str(exc)
    position = getattr(exc, "position", None)
    if part is not None and position is not None:  # X is the partition's rows
        row = f"row {position} of the partition"
        text = text.replace(f"X[{position}] (sequence {s}, step {step})", row)
        text = text.replace(f"X[{position}]", row)
    return tag(reworded(exc, prefix(index, session, step, column) + text), index,
               session_id, column)


def tag(exc, partition, session=None, column=None):
    """``exc`` with the attributes ``partition``, ``session`` and ``column`` set."""
    exc.partition, exc.session, exc.column = partition, plain(session), column
    return exc


def reraise(exc, index, part=None):
    """Raise the library error ``exc`` again with its place in the partition (always
    raises)."""
    raise placed(exc, index, part) from None


def split_error(session_id, left, right, session_col):
    return tag(HMMInputError(
        f"session {show(session_id)} is split across partitions {left} and {right} "
        f"(session_col={session_col!r}): every session must lie within one partition, its "
        "rows in time order. Repartition on session boundaries: write the files by session, "
        f"or shuffle on {session_col!r} and sort each partition by session and time"),
        right, session_id)


def repeated_error(session_id, partitions, session_col):
    """A session found in two partitions that are not neighbours (``validate=True``)."""
    first, second = partitions
    return tag(HMMInputError(
        f"session {show(session_id)} appears in partitions {first} and {second} "
        f"(session_col={session_col!r}, found by validate=True): every session must lie "
        "within one partition. Repartition on session boundaries: write the files by "
        f"session, or shuffle on {session_col!r} and sort each partition by session and "
        "time"), second, session_id)
