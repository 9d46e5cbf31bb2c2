"""SegmentedDetector: one AnomalyDetector per user segment, sessions routed by key."""

from .._errors import HMMInputError, HMMTypeError, ParameterError
from . import _checks
from ._detector import AnomalyDetector
from ._record import Record

FORMAT = "hmmfast.monitor.SegmentedDetector"


def _refuse_shared_training(detectors):
    """One unfitted model object under two detectors that would each train it."""
    owner = {}
    for key, det in detectors.items():
        if hasattr(det, "thresholds_") or det._model_fitted():
            continue
        other = owner.setdefault(id(det.model), key)
        if other != key:
            raise ParameterError(
                f"segments {other!r} and {key!r} share one unfitted model object: each "
                "detector's fit would train it on its own segment (the last fit wins and "
                "scores every segment); give each segment its own model, or fit the shared "
                "model first (per-segment thresholds over one fitted model are fine)")


class SegmentedDetector:
    """One detector (one model of normal behaviour) per user segment.

    Admins, power users and guests behave differently; one model of all of them calls
    every admin session odd. Each session goes to its segment's detector, whose
    thresholds come from that segment's own normal sessions.

    Detectors may share one *fitted* model (per-segment thresholds over one model of
    everyone); one *unfitted* model shared by several detectors is refused: each
    detector's ``fit`` would train it on its own segment, and the last one would score
    every segment.

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
        _refuse_shared_training(detectors)
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
        _refuse_shared_training(self.detectors)
        seen = {}
        for key, det in self.detectors.items():
            other = seen.setdefault(id(det), key)
            if other != key:
                raise ParameterError(f"segments {other!r} and {key!r} hold the same "
                                     "AnomalyDetector: fit would fit it twice, once per "
                                     "segment; give each segment its own detector")
        groups = self._route(sequences, segments)
        for key, det in self.detectors.items():
            if key in groups:
                det.fit([sequences[i] for i in groups[key]])
            elif not hasattr(det, "thresholds_"):
                raise HMMInputError(f"segment {key!r} has no sessions to fit on (and its "
                                    "detector is not fitted)")
        return self

    def predict(self, sequences, segments, *, return_paths=False):
        """Each session scored by its segment's detector.

        Returns
        -------
        Record (and the Viterbi paths, a list in the order of ``sequences``, with
        ``return_paths``)
            The fields of :meth:`AnomalyDetector.predict`, in the order of ``sequences``
            (scores and cut-offs are each segment's own).
        """
        groups = self._route(sequences, segments)
        parts, order = [], []
        paths = [None] * len(sequences)
        for key, idx in groups.items():
            out = self.detectors[key].predict([sequences[i] for i in idx],
                                              return_paths=return_paths)
            if return_paths:
                out, found = out
                for i, p in zip(idx, found, strict=True):
                    paths[i] = p
            parts.append(out)
            order.extend(idx)
        record = Record.concatenate(parts, order)
        return (record, paths) if return_paths else record

    def rates(self, sequences, segments):
        """Per-segment false-positive report on normal sessions (e.g. held out): a dict
        {segment: {"sessions": n, "suspicious": share at suspicious or worse,
        "anomalous": share anomalous}}, the shares each segment's detector was calibrated
        to (its percentiles) on its own training sessions."""
        groups = self._route(sequences, segments)
        return {key: self.detectors[key].rates([sequences[i] for i in idx])
                for key, idx in groups.items()}

    def to_dict(self):
        """JSON-safe dict of the fitted detectors (they must share one model: a model
        file carries one), for a model file's metadata under "anomaly_detector";
        ``hmmfast serve`` then routes each session by its ``"segment"``."""
        models = {id(det.model) for det in self.detectors.values()}
        if len(models) != 1:
            raise ParameterError("to_dict needs every segment's detector over one shared "
                                 "model (a model file holds one model); save one file per "
                                 "model instead")
        return {"format": FORMAT, "version": 1,
                "default": self.default,
                "segments": [[key, det.to_dict()] for key, det in self.detectors.items()]}

    @classmethod
    def from_dict(cls, d, model):
        """A fitted SegmentedDetector over ``model`` from :meth:`to_dict`'s output."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ParameterError(f"expected a dict from SegmentedDetector.to_dict() (format "
                                 f"{FORMAT!r}), got {str(d)[:80]!r}")
        try:
            detectors = {(tuple(k) if isinstance(k, list) else k):
                         AnomalyDetector.from_dict(v, model) for k, v in d["segments"]}
            return cls(detectors, default=d.get("default"))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ParameterError):
                raise
            raise ParameterError(f"SegmentedDetector dict is missing or has a bad entry: "
                                 f"{exc!r}") from None

    def __repr__(self):
        return f"SegmentedDetector({sorted(map(repr, self.detectors))}, default={self.default!r})"
