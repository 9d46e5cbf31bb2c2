"""AnomalyDetector: two-tier levels from a session's score and path, with reasons."""

import numpy as np

from .. import _validation as V
from .._batch import concatenate
from .._errors import HMMInputError, NotFittedError, ParameterError
from . import _checks, _end, _evaluate, _evidence, _persist, _prefix, _reasons
from ._evidence import EVIDENCE
from ._record import Record, level_names

NORMALIZE = ("per_step", "none", "min_step")

#: Default floor of ``unseen`` for discrete families: P(o_t | o_<t) < 1e-6.
UNSEEN_PROB = 1e-6



class AnomalyDetector:
    """Flag sessions that a model of normal behaviour finds unlikely, in two tiers.

    ``fit`` calibrates on normal sessions: a session is "suspicious" (log it) or
    "anomalous" (block it) when its score or its path is beyond what that share of the
    training sessions shows: the ``suspicious`` (default 5) and ``anomalous`` (default 1)
    percentiles are the shares of normal sessions at each tier, all evidence counted
    together. The evidence (``evidence=``):

    * "score": the session's score (``normalize``), low;
    * "deviation": the log-likelihood per step below the training mean, in standard
      deviations for the session's length (a mean of T steps varies ~1/T: one threshold
      on it would mostly flag short sessions), low: a long session that is steadily a
      little unlikely (bots);
    * "end_step": log P(end | session), the step that ends the session (``end_symbol``),
      low: a session that stops where normal sessions do not;
    * "longest_run": the longest stay in one Viterbi state, high (stuck: scrapers);
    * "switch_z": the Viterbi state changes beyond the training switch rate, in standard
      deviations of a binomial count for the session's length, high (oscillation);
    * "length": the number of observations, high (a session that runs on);
    * "unseen": steps the model finds (near-)impossible, high.

    Each has a cut-off per tier, chosen on the training sessions so that the share of
    them beyond any cut-off is the tier's percentile (the calibration is in
    ``hmmfast.monitor._evidence``: a common tail share for every kind of evidence, then
    "deviation" (or the score, without it) filling the rest, ties broken by the
    log-likelihood per step so that no tier is unreachable). The record's ``reason`` names the evidence that
    fired.

    Parameters
    ----------
    model : hmmfast model
        A model of normal sessions. If it is not fitted yet, ``fit`` first trains it
        (Baum-Welch, with the model's own settings) on the sessions it is given.
    suspicious, anomalous : float
        Percentiles in percent (0-100): the share of normal sessions at each tier;
        ``anomalous <= suspicious``. Measured on held-out normal sessions at the
        anomalous tier (1): 1.1 % on the clickstream demo, 0.9-1.4 % on sessions of
        20-500 steps for every ``normalize`` (README, bench/bench_monitor.py).
    normalize : {"per_step", "none", "min_step"}
        The score of a session of T scored steps (its end step included):

        * "per_step" (default): log P(O) / T, the mean log-likelihood per step, so
          sessions of different lengths compare;
        * "none": log P(O) itself (length-aware);
        * "min_step": min_t log P(o_t | o_<t), the least likely single observation
          given its past: one bad step in a long normal session, which a mean dilutes.
    min_steps : int
        Observations a :meth:`stream` reads before it may flag a session (default 10).
        Measured: 0.5-1.2 % of held-out normal sessions of 20-100 and 100-500 steps
        flagged early at the 1 % tier, for every ``normalize``.
    end_symbol : "auto", int or None
        Where sessions end (``hmmfast.monitor._end``). "auto" (default): when ``fit``
        trains a CategoricalHMM, the next free symbol, max(n_features, largest symbol +
        1), is appended to every session (the model's ``n_features`` grows by one) so
        that Baum-Welch learns where sessions end; for a model handed in fitted (any
        family) and for the other families, each state's probability of ending a
        session is learnt on the training sessions (``exit_prob_``) and the end step is
        log sum_i P(q_T = i | O) e_i. An int: that symbol (< n_features of a
        CategoricalHMM that has it) is appended. None: no end step.
    evidence : sequence of str
        The evidence that decides levels (default all of EVIDENCE; "end_step" is left
        out when there is no end step). ``("score",)``: the score alone.
    unseen_log : float, optional
        ``unseen`` counts the steps with log P(o_t | o_<t) below this. Default: log(1e-6)
        for the discrete families (CategoricalHMM, PoissonHMM, MultinomialHMM); for
        densities (Gaussian, GMM) the smallest per-step value seen in training.
    n_threads : int, optional
        Threads for the kernels (default: the model's ``n_threads``).

    Attributes
    ----------
    thresholds_ : dict
        {"suspicious": float, "anomalous": float}: the score's cut-offs, in its units.
    cutoffs_ : dict
        {tier: {evidence: cut-off}}: every evidence's cut-off ("tie": the second key's
        cut-off where the fill evidence ties at its cut-off, -inf otherwise).
    stream_cutoffs_ : dict or None
        The early-flag cut-offs by steps read (:class:`SessionStream`).
    end_symbol_ : int or None
        The symbol appended to every session.
    exit_prob_ : ndarray of shape (n_components,) or None
        Each state's learned probability of ending a session.
    n_train_ : int
        Number of training sessions.
    unseen_log_ : float
        The floor ``unseen`` uses.
    training_ : dict
        The training sessions' reason distributions ("switch_rate", "longest_run",
        "length"), each (sorted distinct values, counts); "occupancy" (share of Viterbi
        frames per state), "switch_rate_all" (switches / transitions over all paths) and
        "per_step" ((mean, a, b): the log-likelihood per step and its variance a + b / T).

    Examples
    --------
    >>> detector = AnomalyDetector(model).fit(normal_sessions)      # doctest: +SKIP
    >>> record = detector.predict(sessions)                          # doctest: +SKIP
    >>> record.level[:3], record.reason[:3]                          # doctest: +SKIP
    """

    def __init__(self, model, suspicious=5.0, anomalous=1.0, normalize="per_step", *,
                 min_steps=10, end_symbol="auto", evidence=EVIDENCE, unseen_log=None,
                 n_threads=None):
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
        self.end_symbol = _end.check_end_symbol(model, end_symbol)
        self.evidence = _check_evidence(evidence)
        if unseen_log is not None:
            if not _checks._is_real(unseen_log) or np.isnan(unseen_log):
                raise ParameterError(f"unseen_log must be a number (a log-probability "
                                     f"floor) or None, got {unseen_log!r}")
            unseen_log = float(unseen_log)
        self.unseen_log = unseen_log
        self.n_threads = n_threads
        self.end_symbol_ = self.end_symbol if isinstance(self.end_symbol, int) else None
        self.exit_prob_ = None
        self._exit = None

    # ---------------------------------------------------------------- fitting

    def _discrete(self):
        return self.model._observation_kind() in ("symbols", "counts")

    def _model_fitted(self):
        try:
            self.model._cache or self.model._prepare()
        except NotFittedError:
            return False
        return True

    def _fit_model(self, sequences, lengths, end_symbol):
        """Train the model on the sessions (``end_symbol`` appended when not None)."""
        model = self.model
        if end_symbol is not None:
            X, offsets = self._training_symbols(sequences, lengths)
            X, offsets = _end.append_end(X, offsets, end_symbol)
            lengths = np.diff(offsets)
        elif lengths is None:
            X, offsets = concatenate(sequences, model._observation_kind() == "symbols")
            lengths = np.diff(offsets)
        else:
            X = sequences
        model.fit(X, lengths=lengths)

    def _training_symbols(self, sequences, lengths):
        if lengths is not None:
            rows = V.symbols(sequences)
            return rows, V.lengths_to_offsets(lengths, len(rows))
        return concatenate(sequences, True)

    def _resolve_end(self, sequences, lengths):
        """Train the model when needed and settle where sessions end (end_symbol_ or
        exit_prob_)."""
        model = self.model
        fitted = self._model_fitted()
        self.exit_prob_, self._exit = None, None
        if fitted and self.end_symbol_ is not None:  # a refit: the model has the symbol
            return
        if self.end_symbol != "auto":
            self.end_symbol_ = self.end_symbol
            if not fitted:
                self._fit_model(sequences, lengths, self.end_symbol_)
            return
        if not fitted and model._observation_kind() == "symbols" \
                and model._symbol_frames():
            rows, _ = self._training_symbols(sequences, lengths)
            self.end_symbol_ = _end.auto_symbol(model, rows)
            model.n_features = self.end_symbol_ + 1
            self._fit_model(sequences, lengths, self.end_symbol_)
            return
        self.end_symbol_ = None
        if not fitted:
            self._fit_model(sequences, lengths, None)
        self.exit_prob_ = _end.learn_exit(model, sequences, lengths, self.n_threads)

    def _run(self, sequences, lengths, decode=True):
        exit_inputs = None
        if self.exit_prob_ is not None:
            c = self.model._cache or self.model._prepare()
            if self._exit is None or self._exit.key is not c:
                self._exit = _end.ExitInputs(self.model, c, self.exit_prob_)
            exit_inputs = self._exit
        return _evaluate.run(self.model, sequences, lengths, self.n_threads, self.end_symbol_,
                             exit_inputs, decode)

    def fit(self, sequences, *, lengths=None):
        """Calibrate the levels (and the reasons' distributions) on normal sessions.

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
        self._resolve_end(sequences, lengths)
        batch = self._run(sequences, lengths)
        scores = self._scores(batch)
        impossible = np.flatnonzero(~np.isfinite(scores))
        if impossible.size:
            s = int(impossible[0])
            raise HMMInputError(
                f"training session {s} has probability zero under the model (score "
                f"{scores[s]}); normal sessions must be possible: fit the model on them or "
                "leave it unfitted so that fit trains it", sequence=s)
        if self.unseen_log is not None:
            self.unseen_log_ = self.unseen_log
        elif self._discrete():
            self.unseen_log_ = float(np.log(UNSEEN_PROB))
        else:
            self.unseen_log_ = float(np.min(batch.own_steps()))
        switches, _ = _reasons.path_reasons(batch.states, batch.offsets, batch.n_threads)
        self.training_ = {
            "occupancy": np.bincount(batch.states, minlength=self.model.n_components)
            / max(batch.states.size, 1),
            "switch_rate_all": float(switches.sum()
                                     / max(int(np.sum(batch.lengths - 1)), 1)),
            "per_step": _evidence.length_model(batch.loglik / batch.n_scored,
                                               batch.n_scored),
        }
        ev = self._evidence(batch)
        self.training_.update({
            "switch_rate": _reasons.distribution(ev["switch_rate"]),
            "longest_run": _reasons.distribution(ev["longest_run"]),
            "length": _reasons.distribution(ev["length"]),
        })
        percentiles = {"suspicious": self.suspicious, "anomalous": self.anomalous}
        pinned = ("score",) if self.normalize == "per_step" and "deviation" in self.evidence \
            else ()
        self.cutoffs_ = _evidence.calibrate(self._stats(ev), ev["tie"], percentiles, pinned)
        self.thresholds_ = {tier: self.cutoffs_[tier]["score"] for tier in percentiles}
        self.stream_cutoffs_ = _prefix.calibrate(batch.own_steps(), batch.offsets,
                                                 self.normalize, self.min_steps, percentiles)
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

    def _evidence(self, batch):
        """Every per-session quantity the record and the levels read: a dict of (S,)."""
        threads = batch.n_threads
        lengths = batch.lengths
        switches, longest = _reasons.path_reasons(batch.states, batch.offsets, threads)
        min_step, unseen = _reasons.step_reasons(batch.steps, batch.scored_offsets,
                                                 batch.offsets, self.unseen_log_, threads)
        rate = _reasons.switch_rate(switches, lengths)
        if batch.has_end:
            end_step = batch.steps[batch.scored_offsets[1:] - 1]
        else:
            end_step = np.full(len(lengths), np.nan)
        own = np.add.reduceat(batch.own_steps(), batch.offsets[:-1]) if len(lengths) else \
            np.empty(0)
        impossible = batch.loglik == -np.inf
        if impossible.any():  # no state path: no path reasons
            rate[impossible] = np.nan
            longest[impossible] = 0
        per_step = batch.loglik / batch.n_scored
        training = self.training_
        z = _evidence.switch_z(switches, lengths, training["switch_rate_all"])
        if impossible.any():
            z[impossible] = np.nan
        return {"score": self._scores(batch), "tie": per_step,
                "deviation": _evidence.deviation(per_step, batch.n_scored,
                                                 training["per_step"]),
                "switch_rate": rate, "switch_z": z, "longest_run": longest,
                "length": lengths, "min_step": min_step, "unseen": unseen,
                "end_step": end_step, "loglik": own, "impossible": impossible}

    def _stats(self, ev):
        """The path evidence the levels read: {name: (S,) float64}."""
        names = [n for n in self.evidence
                 if n != "end_step" or self.end_symbol_ is not None
                 or self.exit_prob_ is not None]
        return {n: np.asarray(ev[n], dtype=np.float64) for n in names}

    def _check_fitted(self):
        if not hasattr(self, "thresholds_"):
            raise NotFittedError(
                "this AnomalyDetector is not fitted: call fit(normal_sessions) (or load it "
                "with AnomalyDetector.from_dict) before predict or stream")

    def score(self, sequences, *, lengths=None):
        """Each session's score (per ``normalize``), no reasons: ndarray of shape (S,)."""
        self._check_fitted()
        _checks.sequences(sequences, lengths)
        return self._scores(self._run(sequences, lengths, decode=False))

    def predict(self, sequences, *, lengths=None, return_paths=False):
        """Score every session, give its level and the reasons.

        Parameters
        ----------
        sequences : list of array-like, or X with ``lengths=``
        return_paths : bool
            Also return the Viterbi paths (a list of intp arrays, one per session, empty
            for an impossible one), e.g. for an :class:`OccupancyMonitor` or a
            :class:`PathLog`.

        Returns
        -------
        Record (and the paths with ``return_paths``)
            Fields, each an ndarray of shape (n_sessions,):

            * ``score`` (float): per ``normalize``; -inf for an impossible session;
            * ``level`` (str): "normal", "suspicious" or "anomalous"; ``level_code``
              (int8) 0, 1, 2 likewise; ``reason`` (str): the evidence beyond its cut-off
              at the session's tier, comma-separated (e.g. "longest_run",
              "deviation,end_step"),
              "" for a normal session;
            * ``deviation`` (float): the log-likelihood per step against the training
              mean, in standard deviations for the session's length;
            * ``switch_rate`` (float), ``switch_rate_pct``: fraction of transitions where
              the Viterbi state changes, and its percentile (0-100) among the training
              sessions (high: oscillation); ``switch_z``: the switches beyond the training
              rate in binomial standard deviations;
            * ``longest_run`` (int), ``longest_run_pct``: longest stay in one state, and
              its percentile (high: stuck);
            * ``length`` (int), ``length_pct``: observations (the end step not counted),
              and its percentile;
            * ``end_step`` (float): log P(end | session), NaN without an end step (low:
              the session stopped where normal ones do not);
            * ``min_step`` (float): the smallest log P(o_t | o_<t) (the end step included);
            * ``unseen`` (int): steps with log P(o_t | o_<t) < ``unseen_log_``;
            * ``loglik`` (float): log P(O) of the session's own observations.

            For an impossible session (no state path) ``switch_rate`` and the path
            percentiles are NaN and ``longest_run`` is 0.
        """
        self._check_fitted()
        _checks.sequences(sequences, lengths)
        batch = self._run(sequences, lengths)
        record = self._record(batch)
        if not return_paths:
            return record
        paths = np.split(batch.states, batch.offsets[1:-1])
        for s in np.flatnonzero(record.score == -np.inf):
            paths[s] = np.empty(0, dtype=np.intp)
        return record, paths

    def _record(self, batch):
        ev = self._evidence(batch)
        scores = ev["score"]
        codes, reasons = _evidence.levels(self.cutoffs_, self._stats(ev), ev["tie"])
        rate_pct = _reasons.percentile_of(self.training_["switch_rate"], ev["switch_rate"])
        longest_pct = _reasons.percentile_of(self.training_["longest_run"], ev["longest_run"])
        if ev["impossible"].any():
            longest_pct[ev["impossible"]] = np.nan
        return Record(
            score=scores,
            level=level_names(codes),
            level_code=codes,
            reason=reasons,
            deviation=ev["deviation"],
            switch_rate=ev["switch_rate"],
            switch_z=ev["switch_z"],
            switch_rate_pct=rate_pct,
            longest_run=ev["longest_run"],
            longest_run_pct=longest_pct,
            length=ev["length"],
            length_pct=_reasons.percentile_of(self.training_["length"], ev["length"]),
            end_step=ev["end_step"],
            min_step=ev["min_step"],
            unseen=ev["unseen"],
            loglik=ev["loglik"],
        )

    def rates(self, sequences, *, lengths=None):
        """The share of ``sequences`` (normal sessions, e.g. held out) at each tier: a dict
        {"sessions": n, "suspicious": share at suspicious or worse, "anomalous": share
        anomalous}; fit calibrates both to their percentiles on the training sessions."""
        codes = self.predict(sequences, lengths=lengths).level_code
        return {"sessions": int(codes.size),
                "suspicious": float(np.mean(codes >= 1)) if codes.size else float("nan"),
                "anomalous": float(np.mean(codes == 2)) if codes.size else float("nan")}

    # ---------------------------------------------------------------- streaming

    def stream(self):
        """A :class:`SessionStream` for one session at a time, flagging early.

        ``push(obs)`` returns the level of the session so far (None before ``min_steps``
        observations), from the running score against cut-offs for the number of steps
        read (``stream_cutoffs_``); once it is "anomalous" the stream is ``flagged`` and
        the caller may stop reading. See :class:`SessionStream`.
        """
        self._check_fitted()
        from ._stream import SessionStream

        return SessionStream(self)

    # ---------------------------------------------------------------- monitors

    def occupancy_monitor(self, collapse_fraction=0.8, window=1_000, **options):
        """An :class:`OccupancyMonitor` over the model whose baseline (occupancy and
        switch rate) is the training sessions' Viterbi paths."""
        self._check_fitted()
        from ._occupancy import OccupancyMonitor

        mon = OccupancyMonitor(self.model, collapse_fraction, window, **options)
        mon.baseline_occupancy_ = np.asarray(self.training_["occupancy"], dtype=np.float64)
        mon.baseline_switch_rate_ = float(self.training_["switch_rate_all"])
        return mon

    # ---------------------------------------------------------------- persistence

    def to_dict(self):
        """The fitted detector as a JSON-safe dict (``json.dumps`` works), for a model
        file's header metadata under "anomaly_detector"; :meth:`from_dict` reads it."""
        self._check_fitted()
        return _persist.to_dict(self)

    @classmethod
    def from_dict(cls, d, model):
        """A fitted detector from :meth:`to_dict`'s output, over ``model``.

        Raises ParameterError when the dict is not a detector's, or was fitted over a
        different model (class, n_components, or fingerprint when both have one).
        """
        return _persist.from_dict(cls, d, model)

    def __repr__(self):
        state = f", thresholds_={self.thresholds_}" if hasattr(self, "thresholds_") else ""
        return (f"AnomalyDetector({type(self.model).__name__}, suspicious={self.suspicious}, "
                f"anomalous={self.anomalous}, normalize={self.normalize!r}{state})")


def _check_evidence(evidence):
    if isinstance(evidence, str):
        evidence = (evidence,)
    try:
        names = tuple(evidence)
    except TypeError:
        raise ParameterError(f"evidence must be a sequence of names from {EVIDENCE}, got "
                             f"{evidence!r}") from None
    unknown = [n for n in names if n not in EVIDENCE]
    if unknown or "score" not in names:
        raise ParameterError(f"evidence must be names from {EVIDENCE} including 'score', "
                             f"got {evidence!r}")
    return tuple(n for n in EVIDENCE if n in names)
