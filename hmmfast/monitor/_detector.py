"""AnomalyDetector: two-tier thresholds on session scores, with reasons from the path."""

import numpy as np

from .._batch import concatenate
from .._errors import HMMInputError, NotFittedError, ParameterError
from . import _checks, _evaluate, _reasons
from ._record import Record, level_codes, level_names

NORMALIZE = ("per_step", "none", "min_step")

#: Default floor of ``unseen`` for discrete families: P(o_t | o_<t) < 1e-6.
UNSEEN_PROB = 1e-6

_FORMAT = "hmmfast.monitor.AnomalyDetector"
_VERSION = 1
_REASON_DISTS = ("switch_rate", "longest_run", "length")


class AnomalyDetector:
    """Flag sessions that a model of normal behaviour finds unlikely, in two tiers.

    ``fit`` sets the thresholds at percentiles of the training (normal) sessions' scores:
    below the ``suspicious`` percentile (default the 5th) a session is "suspicious" (log
    it), below the ``anomalous`` one (default the 1st) it is "anomalous" (block it). The
    level comes from the score and the thresholds alone; the reasons read from the
    Viterbi path and the per-step scores explain it.

    Parameters
    ----------
    model : hmmfast model
        A model of normal sessions. If it is not fitted yet, ``fit`` first trains it
        (Baum-Welch, with the model's own settings) on the sessions it is given.
    suspicious, anomalous : float
        Percentiles in percent (0-100, as ``numpy.percentile`` takes them) of the training
        scores; ``anomalous <= suspicious``.
    normalize : {"per_step", "none", "min_step"}
        The score of a session of T scored steps:

        * "per_step" (default): log P(O) / T, the mean log-likelihood per observation,
          so sessions of different lengths compare (raw log P(O) falls with length, so
          a threshold on it mostly flags long sessions);
        * "none": log P(O) itself (with an end symbol, a length-aware score; the streaming
          flag is exact for discrete models, see :meth:`stream`);
        * "min_step": min_t log P(o_t | o_<t), the least likely single observation given
          its past: one bad step in a long normal session, which a mean dilutes.
    min_steps : int
        Observations a :meth:`stream` reads before it may flag a session (default 10).
    end_symbol : int, optional
        CategoricalHMM only: a symbol (< n_features) appended to every session, so the
        model learns where sessions end and one that stops early scores low. Sessions
        must not contain it. When ``fit`` trains the model, it trains with it.
    unseen_log : float, optional
        ``unseen`` counts the steps with log P(o_t | o_<t) below this. Default: log(1e-6)
        for the discrete families (CategoricalHMM, PoissonHMM, MultinomialHMM); for
        densities (Gaussian, GMM) the smallest per-step value seen in training.
    n_threads : int, optional
        Threads for the kernels (default: the model's ``n_threads``).

    Attributes
    ----------
    thresholds_ : dict
        {"suspicious": float, "anomalous": float}, in the units of the score.
    n_train_ : int
        Number of training sessions.
    unseen_log_ : float
        The floor ``unseen`` uses.
    training_ : dict
        The training sessions' reason distributions ("switch_rate", "longest_run",
        "length"), each (sorted distinct values, counts).

    Examples
    --------
    >>> detector = AnomalyDetector(model).fit(normal_sessions)      # doctest: +SKIP
    >>> record = detector.predict(sessions)                          # doctest: +SKIP
    >>> record.level[:3], record.switch_rate_pct[:3]                 # doctest: +SKIP
    """

    def __init__(self, model, suspicious=5.0, anomalous=1.0, normalize="per_step", *,
                 min_steps=10, end_symbol=None, unseen_log=None, n_threads=None):
        self.model = _checks.model(model)
        self.suspicious = _checks.percent("suspicious", suspicious)
        self.anomalous = _checks.percent("anomalous", anomalous)
        if self.anomalous > self.suspicious:
            raise ParameterError(
                f"anomalous must be <= suspicious (the anomalous tier is the rarer one), got "
                f"anomalous={anomalous!r} > suspicious={suspicious!r}")
        if not isinstance(normalize, str) or normalize not in NORMALIZE:
            raise ParameterError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
        self.normalize = normalize
        self.min_steps = _checks.integer("min_steps", min_steps, 1)
        self.end_symbol = _evaluate.check_end_symbol(model, end_symbol)
        if unseen_log is not None:
            if not _checks._is_real(unseen_log) or np.isnan(unseen_log):
                raise ParameterError(f"unseen_log must be a number (a log-probability "
                                     f"floor) or None, got {unseen_log!r}")
            unseen_log = float(unseen_log)
        self.unseen_log = unseen_log
        self.n_threads = n_threads

    # ---------------------------------------------------------------- fitting

    def _discrete(self):
        return self.model._observation_kind() in ("symbols", "counts")

    def _model_fitted(self):
        try:
            self.model._cache or self.model._prepare()
        except NotFittedError:
            return False
        return True

    def _fit_model(self, sequences, lengths):
        """Train the model on the sessions (end symbols appended when configured)."""
        model = self.model
        if lengths is not None:
            X, lengths = sequences, lengths
            if self.end_symbol is not None:
                from .. import _validation as V

                rows = V.symbols(X)
                offsets = V.lengths_to_offsets(lengths, len(rows))
                rows, offsets = _evaluate.append_end(rows, offsets, self.end_symbol)
                X, lengths = rows, np.diff(offsets)
        else:
            X, offsets = concatenate(sequences, model._observation_kind() == "symbols")
            if self.end_symbol is not None:
                X, offsets = _evaluate.append_end(X, offsets, self.end_symbol)
            lengths = np.diff(offsets)
        model.fit(X, lengths=lengths)

    def fit(self, sequences, *, lengths=None):
        """Set the thresholds (and reason distributions) from normal sessions.

        Parameters
        ----------
        sequences : list of array-like
            One array per session (as ``model.score`` takes it); or X, the concatenation,
            with ``lengths=`` (hmmlearn's convention).
        lengths : array-like of int, optional

        Returns
        -------
        self

        Raises
        ------
        HMMInputError
            An empty list, or a training session the model gives probability zero.
        """
        _checks.sequences(sequences, lengths)
        if not self._model_fitted():
            self._fit_model(sequences, lengths)
        batch = _evaluate.run(self.model, sequences, lengths, self.n_threads, self.end_symbol)
        scores = self._scores(batch)
        impossible = np.flatnonzero(~np.isfinite(scores))
        if impossible.size:
            s = int(impossible[0])
            raise HMMInputError(
                f"training session {s} has probability zero under the model (score "
                f"{scores[s]}); normal sessions must be possible: fit the model on them or "
                "leave it unfitted so that fit trains it", sequence=s)
        self.thresholds_ = {
            "suspicious": float(np.percentile(scores, self.suspicious)),
            "anomalous": float(np.percentile(scores, self.anomalous)),
        }
        if self.unseen_log is not None:
            self.unseen_log_ = self.unseen_log
        elif self._discrete():
            self.unseen_log_ = float(np.log(UNSEEN_PROB))
        else:
            self.unseen_log_ = float(np.min(batch.own_steps()))
        lengths_ = batch.lengths
        switches, longest = _reasons.path_reasons(batch.states, batch.offsets,
                                                  batch.n_threads)
        self.training_ = {
            "switch_rate": _reasons.distribution(_reasons.switch_rate(switches, lengths_)),
            "longest_run": _reasons.distribution(longest),
            "length": _reasons.distribution(lengths_),
        }
        self.n_train_ = len(scores)
        return self

    # ---------------------------------------------------------------- scoring

    def _scores(self, batch):
        if self.normalize == "per_step":
            return batch.loglik / batch.n_scored
        if self.normalize == "none":
            return batch.loglik.copy()
        return _reasons.step_reasons(batch.steps, batch.scored_offsets, batch.offsets,
                                     0.0, batch.n_threads)[0]

    def _check_fitted(self):
        if not hasattr(self, "thresholds_"):
            raise NotFittedError(
                "this AnomalyDetector is not fitted: call fit(normal_sessions) (or load it "
                "with AnomalyDetector.from_dict) before predict or stream")

    def score(self, sequences, *, lengths=None):
        """Each session's score (per ``normalize``), no reasons: ndarray of shape (S,)."""
        _checks.sequences(sequences, lengths)
        return self._scores(_evaluate.run(self.model, sequences, lengths, self.n_threads,
                                          self.end_symbol, decode=False))

    def predict(self, sequences, *, lengths=None):
        """Score every session, give its level and the reasons.

        Parameters
        ----------
        sequences : list of array-like, or X with ``lengths=``

        Returns
        -------
        Record
            Fields, each an ndarray of shape (n_sessions,):

            * ``score`` (float): per ``normalize``; -inf for an impossible session;
            * ``level`` (str): "normal", "suspicious" or "anomalous" (strictly below a
              threshold is that tier); ``level_code`` (int8) 0, 1, 2 likewise;
            * ``switch_rate`` (float), ``switch_rate_pct``: fraction of transitions where
              the Viterbi state changes, and its percentile (0-100) among the training
              sessions (high: oscillation);
            * ``longest_run`` (int), ``longest_run_pct``: longest stay in one state, and
              its percentile (high: stuck);
            * ``length`` (int), ``length_pct``: observations (the end symbol not counted),
              and its percentile (low: the session stopped early);
            * ``min_step`` (float): the smallest log P(o_t | o_<t) (the end step included);
            * ``unseen`` (int): steps with log P(o_t | o_<t) < ``unseen_log_``.

            For an impossible session (no state path) ``switch_rate`` and the path
            percentiles are NaN and ``longest_run`` is 0.
        """
        self._check_fitted()
        _checks.sequences(sequences, lengths)
        batch = _evaluate.run(self.model, sequences, lengths, self.n_threads, self.end_symbol)
        return self._record(batch)

    def _record(self, batch):
        threads = batch.n_threads
        scores = self._scores(batch)
        codes = level_codes(scores, self.thresholds_)
        lengths = batch.lengths
        switches, longest = _reasons.path_reasons(batch.states, batch.offsets, threads)
        min_step, unseen = _reasons.step_reasons(batch.steps, batch.scored_offsets,
                                                 batch.offsets, self.unseen_log_, threads)
        rate = _reasons.switch_rate(switches, lengths)
        rate_pct = _reasons.percentile_of(self.training_["switch_rate"], rate)
        longest_pct = _reasons.percentile_of(self.training_["longest_run"], longest)
        impossible = batch.loglik == -np.inf
        if impossible.any():  # no state path: no path reasons
            rate[impossible] = rate_pct[impossible] = longest_pct[impossible] = np.nan
            longest[impossible] = 0
        return Record(
            score=scores,
            level=level_names(codes),
            level_code=codes,
            switch_rate=rate,
            switch_rate_pct=rate_pct,
            longest_run=longest,
            longest_run_pct=longest_pct,
            length=lengths,
            length_pct=_reasons.percentile_of(self.training_["length"], lengths),
            min_step=min_step,
            unseen=unseen,
        )

    # ---------------------------------------------------------------- streaming

    def stream(self):
        """A :class:`SessionStream` for one session at a time, flagging early.

        ``push(obs)`` returns the level of the session so far (None before ``min_steps``
        observations); once it is "anomalous" the stream is ``flagged`` and the caller
        may stop reading. See :class:`SessionStream` for what is promised.
        """
        self._check_fitted()
        from ._stream import SessionStream

        return SessionStream(self)

    # ---------------------------------------------------------------- persistence

    def to_dict(self):
        """The fitted detector as a JSON-safe dict (``json.dumps`` works), for a model
        file's header metadata under "anomaly_detector"; :meth:`from_dict` reads it."""
        self._check_fitted()
        model = self.model
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "model": {"class": type(model).__name__, "n_components": int(model.n_components),
                      "fingerprint": _fingerprint(model)},
            "suspicious": self.suspicious,
            "anomalous": self.anomalous,
            "normalize": self.normalize,
            "min_steps": self.min_steps,
            "end_symbol": self.end_symbol,
            "unseen_log": self.unseen_log,
            "unseen_log_": self.unseen_log_,
            "thresholds": dict(self.thresholds_),
            "n_train": self.n_train_,
            "training": {name: _reasons.dist_to_dict(self.training_[name])
                         for name in _REASON_DISTS},
        }

    @classmethod
    def from_dict(cls, d, model):
        """A fitted detector from :meth:`to_dict`'s output, over ``model``.

        Raises ParameterError when the dict is not a detector's, or was fitted over a
        different model (class, n_components, or fingerprint when both have one).
        """
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ParameterError(f"expected a dict from AnomalyDetector.to_dict() (format "
                                 f"{_FORMAT!r}), got {str(d)[:80]!r}")
        if d.get("version") != _VERSION:
            raise ParameterError(f"AnomalyDetector dict version {d.get('version')!r} is not "
                                 f"supported (expected {_VERSION})")
        _checks.model(model)
        meta = d.get("model", {})
        if meta.get("class") != type(model).__name__ or \
                meta.get("n_components") != model.n_components:
            raise ParameterError(
                f"this detector was fitted over a {meta.get('class')} with n_components="
                f"{meta.get('n_components')}, got a {type(model).__name__} with "
                f"n_components={model.n_components}")
        found = _fingerprint(model)
        if meta.get("fingerprint") and found and meta["fingerprint"] != found:
            raise ParameterError(
                f"this detector was fitted over the model with fingerprint "
                f"{meta['fingerprint'][:12]}..., got a model with fingerprint {found[:12]}...")
        try:
            det = cls(model, d["suspicious"], d["anomalous"], d["normalize"],
                      min_steps=d["min_steps"], end_symbol=d["end_symbol"],
                      unseen_log=d["unseen_log"])
            thresholds = {k: float(d["thresholds"][k]) for k in ("suspicious", "anomalous")}
            det.unseen_log_ = float(d["unseen_log_"])
            det.n_train_ = int(d["n_train"])
            training = d["training"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ParameterError(f"AnomalyDetector dict is missing or has a bad entry: "
                                 f"{exc!r}") from None
        if not thresholds["anomalous"] <= thresholds["suspicious"]:
            raise ParameterError(f"thresholds must have anomalous <= suspicious, got "
                                 f"{thresholds}")
        det.thresholds_ = thresholds
        det.training_ = {name: _reasons.dist_from_dict(name, training.get(name, {}))
                         for name in _REASON_DISTS}
        return det

    def __repr__(self):
        state = f", thresholds_={self.thresholds_}" if hasattr(self, "thresholds_") else ""
        return (f"AnomalyDetector({type(self.model).__name__}, suspicious={self.suspicious}, "
                f"anomalous={self.anomalous}, normalize={self.normalize!r}{state})")


def _fingerprint(model):
    """The model's fingerprint when the library provides one (model files), else None."""
    try:
        value = model.fingerprint
    except Exception:  # an unfitted model, or a library without fingerprints
        return None
    return value if isinstance(value, str) else None
