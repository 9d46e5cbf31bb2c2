"""EmissionDriftCheck: have the states' emissions, or the frames they explain, moved?

Three checks, each per state:

* **means** (Gaussian, GMM, Poisson): the mean of the production frames Viterbi assigns
  to the state against the model's mean, beyond ``z`` of the state's own standard
  deviation (``flagged``);
* **emission distribution** (CategoricalHMM): the posterior-weighted symbol counts
  C[i, m] = sum_t P(q_t = i | O) [o_t = m] against ``emissionprob_``: a G-test
  (G = 2 sum_m C log(C / (W p)), W = sum_m C, chi-square with one degree of freedom
  fewer than the symbols the state can emit) at ``alpha``, *and* an effect size: the
  Kullback-Leibler divergence KL(C / W || p) above ``divergence``. Posterior weights,
  not Viterbi counts: for traffic drawn from the model E[C[i, m]] = p[i, m] E[W] exactly,
  while Viterbi's hard assignment favours each state's likeliest symbols;
* **frames and variance** (every family): each state's posterior-weighted share of the
  frames against its expected share (``frame_ratio_``: the training share after
  :meth:`fit`, else the model chain's own: sum_t P(q_t = i) for the sessions' lengths,
  from the start probabilities and the transitions), flagged beyond a factor
  ``share_ratio`` either way (a state drifting toward a neighbour loses its frames to
  it); and the posterior-weighted variance of a state's frames against the model's
  (``variance_ratio_``), flagged beyond a factor ``variance_ratio``.
"""

import numpy as np
from scipy import stats

from .. import _validation as V
from .._errors import HMMInputError, HMMTypeError
from . import _checks, _evaluate


def state_moments(model):
    """(means (N, D), standard deviations (N, D)) of each state's emission distribution
    (the family's ``_emission_moments``).

    GaussianHMM: ``means_`` and the square roots of the covariance diagonals. GMMHMM: the
    mixture's mean sum_k w_k mu_k and its variance sum_k w_k (sigma_k^2 + mu_k^2) - mean^2,
    per feature. PoissonHMM: lambda and sqrt(lambda).
    """
    moments = model._emission_moments()
    if moments is None:
        raise HMMTypeError(f"EmissionDriftCheck needs a CategoricalHMM or a model with emission "
                           f"means (GaussianHMM, GMMHMM, PoissonHMM), got {type(model).__name__}")
    return moments


def chain_occupancy(model, lengths):
    """Expected frames per state, sum over sessions of sum_{t < T} P(q_t = i) under the
    model's chain: ndarray of shape (n_components,)."""
    lengths = np.asarray(lengths, dtype=np.intp)
    reaching = np.bincount(lengths)[::-1].cumsum()[::-1]  # sessions with T > t, t = 0..
    trans = model.transmat_
    marg = np.asarray(model.startprob_, dtype=np.float64)
    total = np.zeros_like(marg)
    for t in range(1, len(reaching)):
        total += reaching[t] * marg
        marg = trans.T @ marg
    return total


class EmissionDriftCheck:
    """Per state: emission means, the emission distribution, frame share and variance of
    production traffic against the model (see the module docstring for each test).

    Parameters
    ----------
    model : CategoricalHMM, GaussianHMM, GMMHMM or PoissonHMM
        Fitted. Its parameters are read now.
    z : float
        Means: flag beyond this many standard deviations (default 2.0).
    min_frames : int
        A state needs this many (posterior-weighted or assigned) frames before any of its
        checks can flag it (default 20).
    alpha : float
        Categorical: the G-test's level (default 1e-3).
    divergence : float
        Categorical: the smallest KL divergence (nats) flagged (default 0.02). A row
        that drifts shares its change with the states whose posteriors take over some
        of its frames, so what each state shows is smaller than the row's own change:
        30 % of one row moved to a rare page showed as 0.02-0.17 per state (measured,
        README); traffic drawn from the model stays near (M - 1) / (2 W) (0.001 at W =
        3,000 frames of a state), and the G-test keeps small windows quiet.
    share_ratio : float
        Frames: flag a state whose share of the frames is more than this factor above
        or below its expected share (default 2.0).
    variance_ratio : float
        Variance: flag a state/feature whose variance is more than this factor above or
        below the model's (default 2.0; a variance estimated from n frames has a relative
        standard error ~sqrt(2 / n), 0.1 at n = 200).

    Attributes
    ----------
    frame_counts : ndarray of shape (n_components,)
        Frames Viterbi assigned to each state so far.
    means_ : ndarray of shape (n_components, n_features)
        Production mean per state (Viterbi frames; NaN where none or categorical).
    deviation_ : ndarray of shape (n_components, n_features)
        (production mean - model mean) / the state's standard deviation.
    flagged : ndarray of shape (n_components, n_features), bool
        The means check (categorical: (n_components, 1), the emission distribution).
    frame_ratio_ : ndarray of shape (n_components,)
        Posterior frame share / expected share.
    variance_ratio_ : ndarray of shape (n_components, n_features)
        Posterior-weighted variance / model variance (NaN for categorical).
    divergence_ : ndarray of shape (n_components,)
        Categorical: KL(production || emissionprob_) per state (NaN otherwise).
    flagged_states : ndarray of int
        Sorted states that any check flags.
    """

    def __init__(self, model, z=2.0, *, min_frames=20, alpha=1e-3, divergence=0.02,
                 share_ratio=2.0, variance_ratio=2.0):
        self.model = _checks.model(model)
        self.z = _checks.positive("z", z)
        self.min_frames = _checks.integer("min_frames", min_frames, 1)
        self.alpha = _checks.fraction("alpha", alpha)
        self.divergence = _checks.positive("divergence", divergence)
        self.share_ratio = _ratio("share_ratio", share_ratio)
        self.variance_ratio = _ratio("variance_ratio", variance_ratio)
        self._symbols = model._observation_kind() == "symbols"
        n = int(model.n_components)
        if self._symbols:
            self._emission = np.asarray(model.emissionprob_, dtype=np.float64)
            self._mean = np.full((n, 1), np.nan)
            self._std = np.full((n, 1), np.nan)
        else:
            self._mean, self._std = state_moments(model)
        self.baseline_share_ = None
        self.reset()

    def reset(self):
        """Forget the production frames (a fitted baseline stays)."""
        n, d = self._mean.shape
        self._sum = np.zeros((n, d))
        self._n = np.zeros((n, d), dtype=np.int64)  # frames per state and feature (non-NaN)
        self.frame_counts = np.zeros(n, dtype=np.int64)
        self._weight = np.zeros(n)  # posterior frames per state
        self._expected = np.zeros(n)  # expected posterior frames per state (chain)
        self._n_frames = 0
        self._wsum = np.zeros((n, d))  # posterior-weighted sums, per feature
        self._wsq = np.zeros((n, d))
        self._wn = np.zeros((n, d))
        if self._symbols:
            self._counts = np.zeros_like(self._emission)

    def fit(self, sequences, *, lengths=None):
        """Take the expected frame shares from training sessions (posterior-weighted)
        instead of the model chain's own. Optional. Returns self."""
        _checks.sequences(sequences, lengths)
        post, _, offsets, loglik = _evaluate.posteriors(self.model, sequences, lengths)
        ok = np.repeat(np.isfinite(loglik), np.diff(offsets))
        if not ok.any():
            raise HMMInputError("every training session has probability zero under the model")
        weight = post[ok].sum(axis=0)
        self.baseline_share_ = weight / weight.sum()
        return self

    def _frames(self, sequences, lengths):
        if lengths is None:
            arrays = [np.asarray(s, dtype=np.float64) for s in sequences]
            arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
            return np.concatenate(arrays)
        X = np.asarray(sequences, dtype=np.float64)
        return X[:, None] if X.ndim == 1 else X

    def update(self, sequences, *, lengths=None):
        """Decode production sessions (Viterbi and posteriors) and add their frames.

        Parameters
        ----------
        sequences : list of arrays (symbols, or (n_samples, n_features)), or X with
            ``lengths=``. A session the model cannot produce is skipped.

        Returns
        -------
        self
        """
        _checks.sequences(sequences, lengths)
        _, paths = self.model.decode_batch(sequences, lengths=lengths, errors="mark")
        post, rows, offsets, loglik = _evaluate.posteriors(self.model, sequences, lengths)
        n, d = self._mean.shape
        ok_session = np.isfinite(loglik)
        ok = np.repeat(ok_session, np.diff(offsets))
        self._n_frames += int(ok.sum())
        self._expected += chain_occupancy(self.model, np.diff(offsets)[ok_session])
        post = post[ok]
        self._weight += post.sum(axis=0)
        states = np.concatenate([p for p in paths if p.size]) if ok.any() else \
            np.empty(0, np.intp)
        self.frame_counts += np.bincount(states, minlength=n)
        if self._symbols:
            symbols = np.asarray(rows, dtype=np.intp)[ok] if rows is not None else \
                V.symbols(self._frames(sequences, lengths))[ok]
            m = self._counts.shape[1]
            for i in range(n):
                self._counts[i] += np.bincount(symbols, weights=post[:, i], minlength=m)[:m]
            return self
        X = self._frames(sequences, lengths)
        if X.shape[1] != d:
            raise HMMInputError(f"sequences must have n_features={d} columns, got {X.shape[1]}")
        X = X[ok]
        present = ~np.isnan(X)
        Xz = np.where(present, X, 0.0)
        np.add.at(self._sum, states, Xz)
        np.add.at(self._n, states, present)
        self._wsum += post.T @ Xz
        self._wsq += post.T @ (Xz * Xz)
        self._wn += post.T @ present
        return self

    # ---------------------------------------------------------------- means (Viterbi)

    @property
    def means_(self):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self._n > 0, self._sum / np.maximum(self._n, 1), np.nan)

    @property
    def deviation_(self):
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.means_ - self._mean) / self._std

    @property
    def flagged(self):
        if self._symbols:
            return self.flagged_emission[:, None]
        dev = self.deviation_
        enough = self._n >= self.min_frames
        with np.errstate(invalid="ignore"):
            return enough & (np.abs(dev) > self.z)

    # ---------------------------------------------------------------- posterior checks

    @property
    def frame_ratio_(self):
        """Posterior frame share / expected share, per state (NaN before any frame)."""
        total = self._weight.sum()
        if self.baseline_share_ is not None:
            expected = self.baseline_share_ * total
        else:
            expected = self._expected
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._weight / expected

    @property
    def flagged_frames(self):
        """bool (n_components,): frame share beyond ``share_ratio`` of the expected one,
        for states expected to hold at least ``min_frames`` frames."""
        expected = (self.baseline_share_ * self._weight.sum()
                    if self.baseline_share_ is not None else self._expected)
        ratio = self.frame_ratio_
        with np.errstate(invalid="ignore"):
            out = (ratio > self.share_ratio) | (ratio < 1.0 / self.share_ratio)
        return out & (expected >= self.min_frames)

    @property
    def variance_ratio_(self):
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self._wsum / self._wn
            var = self._wsq / self._wn - mean ** 2
            return var / self._std ** 2

    @property
    def flagged_variance(self):
        ratio = self.variance_ratio_
        with np.errstate(invalid="ignore"):
            out = (ratio > self.variance_ratio) | (ratio < 1.0 / self.variance_ratio)
        return out & (self._wn >= self.min_frames)

    @property
    def divergence_(self):
        """KL(production || emissionprob_) per state (categorical; NaN otherwise)."""
        if not self._symbols:
            return np.full(self._mean.shape[0], np.nan)
        w = self._counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            q = self._counts / w
            terms = np.where(q > 0, q * np.log(q / self._emission), 0.0)
        return terms.sum(axis=1)

    @property
    def flagged_emission(self):
        """Categorical: bool (n_components,), G-test at ``alpha`` and KL > ``divergence``."""
        n = self._mean.shape[0]
        if not self._symbols:
            return np.zeros(n, dtype=bool)
        w = self._counts.sum(axis=1)
        kl = self.divergence_
        df = np.maximum((self._emission > 0).sum(axis=1) - 1, 1)
        with np.errstate(invalid="ignore"):
            p_value = stats.chi2.sf(2.0 * w * kl, df)
            return (w >= self.min_frames) & (kl > self.divergence) & (p_value < self.alpha)

    @property
    def flagged_states(self):
        hit = self.flagged.any(axis=1) | self.flagged_frames | self.flagged_variance.any(axis=1)
        return np.flatnonzero(hit)

    def state(self):
        """A JSON-safe dict: frame counts, flagged states and each check's numbers (None
        where undefined)."""
        def clean(a):
            return [clean(v) for v in a] if np.ndim(a) else \
                (None if not np.isfinite(a) else float(a))

        return {
            "frame_counts": self.frame_counts.tolist(),
            "flagged_states": self.flagged_states.tolist(),
            "deviation": clean(self.deviation_),
            "frame_ratio": clean(self.frame_ratio_),
            "variance_ratio": clean(self.variance_ratio_),
            "divergence": clean(self.divergence_),
            "z": self.z,
        }

    def __repr__(self):
        return (f"EmissionDriftCheck({type(self.model).__name__}, z={self.z}, "
                f"flagged_states={self.flagged_states.tolist()})")


def _ratio(name, value):
    value = _checks.positive(name, value)
    if value <= 1:
        raise HMMInputError(f"{name} must be a factor > 1, got {value!r}")
    return value
