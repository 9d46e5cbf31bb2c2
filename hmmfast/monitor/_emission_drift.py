"""EmissionDriftCheck: has a state's emission mean moved in production?"""

import numpy as np

from .. import _validation as V
from .._errors import HMMInputError, HMMTypeError
from . import _checks


def state_moments(model):
    """(means (N, D), standard deviations (N, D)) of each state's emission distribution
    (the family's ``_emission_moments``).

    GaussianHMM: ``means_`` and the square roots of the covariance diagonals. GMMHMM: the
    mixture's mean sum_k w_k mu_k and its variance sum_k w_k (sigma_k^2 + mu_k^2) - mean^2,
    per feature. PoissonHMM: lambda and sqrt(lambda).
    """
    moments = model._emission_moments()
    if moments is None:
        raise HMMTypeError(f"EmissionDriftCheck needs a model with emission means (GaussianHMM, "
                           f"GMMHMM, PoissonHMM), got {type(model).__name__}")
    return moments


class EmissionDriftCheck:
    """Per state and feature: the mean of the production frames that Viterbi assigns to
    the state, against the model's mean, flagged beyond ``z`` of the state's own standard
    deviation (not the standard error: a drift of the mean by z sigma, however many
    frames).

    Parameters
    ----------
    model : GaussianHMM, GMMHMM or PoissonHMM
        Fitted. The moments are read now (assigning new parameters later does not
        change this check).
    z : float
        Flag beyond this many standard deviations (default 2.0).
    min_frames : int
        A state needs this many assigned frames before it can be flagged (default 20).

    Attributes
    ----------
    frame_counts : ndarray of shape (n_components,)
        Frames assigned to each state so far.
    means_ : ndarray of shape (n_components, n_features)
        Production mean per state (NaN where no frame).
    deviation_ : ndarray of shape (n_components, n_features)
        (production mean - model mean) / the state's standard deviation.
    flagged : ndarray of shape (n_components, n_features), bool
    flagged_states : ndarray of int
        Sorted states with some flagged feature.
    """

    def __init__(self, model, z=2.0, *, min_frames=20):
        self.model = _checks.model(model)
        self.z = _checks.positive("z", z)
        self.min_frames = _checks.integer("min_frames", min_frames, 1)
        self._mean, self._std = state_moments(model)
        self.reset()

    def reset(self):
        """Forget the production frames."""
        n, d = self._mean.shape
        self._sum = np.zeros((n, d))
        self._n = np.zeros((n, d), dtype=np.int64)  # frames per state and feature (non-NaN)
        self.frame_counts = np.zeros(n, dtype=np.int64)

    def update(self, sequences, *, lengths=None):
        """Decode production sessions (Viterbi) and add their frames per state.

        Parameters
        ----------
        sequences : list of arrays (n_samples, n_features), or X with ``lengths=``
            A session the model cannot produce is skipped.

        Returns
        -------
        self
        """
        _checks.sequences(sequences, lengths)
        _, paths = self.model.decode_batch(sequences, lengths=lengths, errors="mark")
        if lengths is None:
            frames = [np.asarray(s, dtype=np.float64) for s, p in zip(sequences, paths,
                                                                      strict=True) if p.size]
            frames = [f[:, None] if f.ndim == 1 else f for f in frames]
        else:
            X = np.asarray(sequences, dtype=np.float64)
            X = X[:, None] if X.ndim == 1 else X
            offsets = V.lengths_to_offsets(lengths, len(X))
            frames = [X[offsets[s]:offsets[s + 1]] for s, p in enumerate(paths) if p.size]
        if not frames:
            return self
        X = np.concatenate(frames)
        states = np.concatenate([p for p in paths if p.size])
        n, d = self._mean.shape
        if X.shape[1] != d:
            raise HMMInputError(f"sequences must have n_features={d} columns, got {X.shape[1]}")
        present = ~np.isnan(X)
        np.add.at(self._sum, states, np.where(present, X, 0.0))
        np.add.at(self._n, states, present)
        self.frame_counts += np.bincount(states, minlength=n)
        return self

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
        dev = self.deviation_
        enough = self._n >= self.min_frames
        with np.errstate(invalid="ignore"):
            return enough & (np.abs(dev) > self.z)

    @property
    def flagged_states(self):
        return np.flatnonzero(self.flagged.any(axis=1))

    def state(self):
        """A JSON-safe dict: frame_counts, flagged_states, deviation (None where no frames)."""
        dev = self.deviation_
        return {
            "frame_counts": self.frame_counts.tolist(),
            "flagged_states": self.flagged_states.tolist(),
            "deviation": [[None if not np.isfinite(v) else float(v) for v in row]
                          for row in dev],
            "z": self.z,
        }

    def __repr__(self):
        return (f"EmissionDriftCheck({type(self.model).__name__}, z={self.z}, "
                f"flagged_states={self.flagged_states.tolist()})")
