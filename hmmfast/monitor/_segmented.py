"""SegmentedDetector: one AnomalyDetector per user segment, sessions routed by key."""

from .._errors import HMMInputError, HMMTypeError, ParameterError
from . import _checks
from ._detector import AnomalyDetector
from ._record import Record


class SegmentedDetector:
    """One detector (one model of normal behaviour) per user segment.

    Admins, power users and guests behave differently; one model of all of them calls
    every admin session odd. Each session goes to its segment's detector, whose
    thresholds come from that segment's own normal sessions.

    Parameters
    ----------
    detectors : dict
        {segment key: AnomalyDetector}. Keys are any hashable values (str, int, ...).
    default : key, optional
        Where sessions of a segment not in ``detectors`` go. None (the default): such a
        session is an error naming the key (HMMInputError), so a typo or a new segment
        is never scored by the wrong model silently.

    Examples
    --------
    >>> seg = SegmentedDetector({"admin": AnomalyDetector(m1),            # doctest: +SKIP
    ...                          "guest": AnomalyDetector(m2)})
    >>> seg.fit(sessions, segments).predict(new_sessions, new_segments)  # doctest: +SKIP
    """

    def __init__(self, detectors, default=None):
        if not isinstance(detectors, dict) or not detectors:
            raise HMMTypeError(f"detectors must be a non-empty dict {{segment: "
                               f"AnomalyDetector}}, got {detectors!r:.80}")
        for key, det in detectors.items():
            if not isinstance(det, AnomalyDetector):
                raise HMMTypeError(f"detectors[{key!r}] must be an AnomalyDetector, got "
                                   f"{type(det).__name__}")
        if default is not None and default not in detectors:
            raise ParameterError(f"default must be one of the segments "
                                 f"{sorted(map(repr, detectors))} or None, got {default!r}")
        self.detectors = dict(detectors)
        self.default = default

    def _route(self, sequences, segments):
        """{key: list of session indices}, in first-seen order."""
        _checks.sequences(sequences, None)
        try:
            n_segments = len(segments)
        except TypeError:
            raise HMMTypeError(f"segments must be a sequence with one key per session, got "
                               f"{type(segments).__name__}") from None
        if n_segments != len(sequences):
            raise HMMInputError(f"segments must hold one key per session: expected "
                                f"{len(sequences)} keys, got {n_segments}")
        groups = {}
        known = self.detectors
        for i, key in enumerate(segments):
            key = key.item() if hasattr(key, "item") else key  # numpy scalars
            if key not in known:
                if self.default is None:
                    raise HMMInputError(
                        f"segments[{i}] = {key!r} is not a known segment (expected one of "
                        f"{sorted(map(repr, known))}); give SegmentedDetector a default= to "
                        "route unknown segments", sequence=i)
                key = self.default
            groups.setdefault(key, []).append(i)
        return groups

    def fit(self, sequences, segments):
        """Fit each segment's detector on that segment's sessions.

        Parameters
        ----------
        sequences : list of array-like
            One array per session.
        segments : sequence of keys, one per session

        Returns
        -------
        self

        Raises
        ------
        HMMInputError
            A count mismatch, an unknown key without ``default``, or a detector left
            without sessions that is not fitted already.
        """
        groups = self._route(sequences, segments)
        for key, det in self.detectors.items():
            if key in groups:
                det.fit([sequences[i] for i in groups[key]])
            elif not hasattr(det, "thresholds_"):
                raise HMMInputError(f"segment {key!r} has no sessions to fit on (and its "
                                    "detector is not fitted)")
        return self

    def predict(self, sequences, segments):
        """Each session scored by its segment's detector.

        Returns
        -------
        Record
            The fields of :meth:`AnomalyDetector.predict`, in the order of ``sequences``
            (scores and thresholds are each segment's own).
        """
        groups = self._route(sequences, segments)
        parts, order = [], []
        for key, idx in groups.items():
            parts.append(self.detectors[key].predict([sequences[i] for i in idx]))
            order.extend(idx)
        return Record.concatenate(parts, order)

    def __repr__(self):
        return f"SegmentedDetector({sorted(map(repr, self.detectors))}, default={self.default!r})"
