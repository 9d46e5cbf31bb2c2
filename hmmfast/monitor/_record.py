"""The record a detector returns: named per-session arrays with attribute access."""

import numpy as np

#: The levels a session can get, in increasing severity; ``level_code`` indexes this.
LEVELS = ("normal", "suspicious", "anomalous")
_LEVEL_NAMES = np.array(LEVELS)


class Record(dict):
    """Per-session arrays by name, readable as attributes (``record.score``) or keys.

    Every field is an ndarray of shape (n_sessions,). ``to_json()`` gives the same
    fields as JSON-safe lists (non-finite numbers become None), for logs, dashboards
    and HTTP replies.
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"this record has no field {name!r}; its fields are {', '.join(self)}"
            ) from None

    def __dir__(self):
        return [*super().__dir__(), *self]

    @property
    def n_sessions(self):
        """Number of sessions (the common length of the fields)."""
        for value in self.values():
            return len(value)
        return 0

    def __repr__(self):
        fields = ", ".join(f"{k}: {np.asarray(v).dtype}" for k, v in self.items())
        return f"Record({self.n_sessions} sessions; {fields})"

    def to_json(self):
        """dict of field -> list, JSON-serialisable (NaN and +-inf become None)."""
        out = {}
        for name, value in self.items():
            arr = np.asarray(value)
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                out[name] = [v if np.isfinite(v) else None for v in arr.tolist()]
            else:
                out[name] = arr.tolist()
        return out

    @classmethod
    def concatenate(cls, parts, order):
        """One record from ``parts`` (records with the same fields) whose rows, taken in
        turn, belong at positions ``order`` (a permutation of range(total))."""
        order = np.asarray(order, dtype=np.intp)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        names = list(parts[0])
        return cls({name: np.concatenate([p[name] for p in parts])[inverse] for name in names})


def level_codes(scores, thresholds):
    """0 (normal), 1 (suspicious) or 2 (anomalous) for each score: strictly below a
    threshold is that tier (so -inf is anomalous), NaN never occurs."""
    scores = np.asarray(scores)
    return ((scores < thresholds["suspicious"]).astype(np.int8)
            + (scores < thresholds["anomalous"]).astype(np.int8))


def level_names(codes):
    """The LEVELS names of ``codes``: ndarray of str."""
    return _LEVEL_NAMES[codes]
