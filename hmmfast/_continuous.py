"""ContinuousHMM: what the feature-vector families (Gaussian, GMM, Poisson) share.

Observations are a (n_samples, n_features) float array, float64 or float32 (used
without a copy when C-contiguous and aligned; statistics accumulate in float64).
A family supplies its parameters, a compiled ``density`` (``log_densities(X, n_threads)``
on validated frames), its statistics from the E-step's posteriors
(``_accumulate_posteriors``) and its M-step; the frames, missing observations, E-step
plumbing and hmmlearn's hooks are here.

Missing observations (``missing="marginalize"``): a row of X that is entirely NaN is a
frame with no evidence, emission factor 1 in every state (log-emission 0), for
inference and fitting (it contributes to the chain's statistics, not to the emissions').
With the default ``missing="raise"`` any NaN is an error naming the row; a row that is
partly NaN is always an error, and so is an infinite value.
"""

import numpy as np

from . import _fit, _kernel_inputs
from . import _validation as V
from ._base import BaseHMM
from ._errors import HMMInputError, HMMTypeError, ParameterError

MISSING = ("raise", "marginalize")


class ContinuousHMM(BaseHMM):
    """Base of the families whose observations are feature vectors."""

    _X_what = "real numbers"

    # ---------------------------------------------------------------- observations

    def _expected_features(self):
        """The model's n_features, or None before its parameters are set."""
        return getattr(self, "n_features", None)

    def _observations(self, X):
        """(frames, missing): X as a C-contiguous aligned float64/float32 (T, D) array with
        missing rows set to 0, and a boolean mask of missing rows (None when none)."""
        arr = V._real_array("X", X)
        if arr.dtype.kind not in "fiub":
            raise HMMTypeError(f"X must hold {self._X_what}, got dtype {arr.dtype}")
        if arr.dtype == np.float32 or arr.dtype == np.float64:
            arr = np.require(arr, arr.dtype, ["C", "A"])
        else:
            arr = np.require(arr, np.float64, ["C", "A"])
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise HMMInputError(
                f"X must have shape (n_samples, n_features), got {V._shape_str(arr.shape)}")
        if arr.shape[0] == 0:
            raise HMMInputError("X is empty; expected at least one observation")
        d = self._expected_features()
        if d is not None and arr.shape[1] != d:
            raise HMMInputError(
                f"X has {arr.shape[1]} features per sample but the model has "
                f"n_features={d}")
        finite = np.isfinite(arr)
        if finite.all():
            self._check_values(arr)
            return arr, None
        nan = np.isnan(arr)
        whole = nan.all(axis=1)
        bad = ~finite & ~whole[:, None]
        if np.any(bad) or self.missing == "raise":
            t = int(np.argmax(bad.any(axis=1))) if np.any(bad) else int(np.argmax(whole))
            if np.isinf(arr[t]).any():
                raise HMMInputError(f"X[{t}] contains infinity; observations must be finite",
                                    position=t)
            if self.missing == "raise":
                raise HMMInputError(
                    f"X[{t}] contains NaN; observations must be finite (or give the "
                    "model missing='marginalize' to treat all-NaN rows as missing frames)",
                    position=t)
            raise HMMInputError(
                f"X[{t}] is partly NaN; with missing='marginalize' a frame is either "
                "missing (all NaN) or observed (all finite)", position=t)
        filled = arr.copy()
        filled[whole] = 0.0
        self._check_values(filled)  # missing rows hold 0, so row indices are X's
        return filled, whole

    def _check_values(self, frames):
        """Family hook: refuse values outside the emission's support (the count
        families call ``_check_counts``)."""

    def _check_counts(self, frames):
        """Refuse negative or fractional values (the count families' support)."""
        bad = (frames < 0) | (np.floor(frames) != frames)
        if np.any(bad):
            t, d = (int(i) for i in np.argwhere(bad)[0])
            raise HMMInputError(
                f"X[{t}, {d}] = {frames[t, d].item()!r}: {type(self).__name__} observations "
                f"must be {self._X_what} (row {t})", position=t)

    def _check_missing(self):
        if self.missing not in MISSING:
            raise ParameterError(f"missing must be one of {MISSING}, got {self.missing!r}")

    # ---------------------------------------------------------------- frames

    def _log_emissions(self, c, frames, missing, n_threads=1):
        log_em = c.density.log_densities(frames, n_threads)
        if missing is not None:
            log_em[missing] = 0.0
        return log_em

    def _emission(self, c, frames, missing, scaled):
        """The kernels' emission tuple of frames; the scaled form straight from the
        density kernel where it makes one (diagonal Gaussians, N <= 8: the exp fused into
        the density pass), else from the log-densities."""
        tables = getattr(c.density, "emission_tables", None)
        if scaled and c.scaling and missing is None and tables is not None:
            log_em, scaled_table, row_log_scale = tables(frames, c.n_threads)
            if scaled_table is not None:
                return log_em, scaled_table, row_log_scale
        else:
            log_em = self._log_emissions(c, frames, missing, c.n_threads)
        return _kernel_inputs.emission(log_em, c.scaling and scaled, c.n_threads)

    def _frames(self, c, X, scaled=True):
        frames, missing = self._observations(X)
        return self._emission(c, frames, missing, scaled), None, frames.shape[0]

    _blocked_frames = _frames  # log-emissions of validated frames, any block of them

    def _emission_blocks(self, c, X, n_threads=1):
        """(n_samples, log_emissions(a, b)) through the compiled density (see BaseHMM);
        a missing frame's row is 0."""
        frames, missing = self._observations(X)

        def log_emissions(a, b):
            mask = None if missing is None else missing[a:b]
            log_em = self._log_emissions(c, frames[a:b], mask, n_threads)
            return np.ascontiguousarray(log_em, dtype=np.float64)

        return frames.shape[0], log_emissions

    def _compute_log_likelihood(self, X):
        """log density of every frame in every state, ndarray (n_samples, n_components)
        (0 for a missing frame)."""
        c = self._cache or self._prepare()
        frames, missing = self._observations(X)
        return self._log_emissions(c, frames, missing, c.n_threads)

    def _emission_table(self, scaling):
        return None

    # ---------------------------------------------------------------- fitting

    _estep_wants_posteriors = True

    def _training_X(self, X):
        """(frames, missing mask or None) for fitting."""
        self._check_missing()
        frames, missing = self._observations(X)
        if missing is not None and missing.all():
            raise HMMInputError("every frame of X is missing (NaN): nothing to fit")
        return frames, missing

    def _estep_frames(self, c, data):
        missing = data.cache.get("missing")
        if data.labels is None:
            return self._emission(c, data.X, missing, True), None
        log_em = self._log_emissions(c, data.X, missing, c.n_threads)
        log_em = _fit.mask_labels(log_em, data.labels)
        return _kernel_inputs.emission(log_em, c.scaling, c.n_threads), None

    def _observed(self, data, posteriors):
        """Weighted posteriors with missing frames' rows zeroed (they carry no evidence
        about the emissions)."""
        missing = data.cache.get("missing")
        if missing is None:
            return posteriors
        posteriors = np.array(posteriors)
        posteriors[missing] = 0.0
        return posteriors

    def _accumulate_fast(self, stats, data, row_counts, posteriors):
        self._accumulate_posteriors(stats, data.X, self._observed(data, posteriors), data)

    def _accumulate_sufficient_statistics(self, stats, X, lattice, posteriors, fwdlattice,
                                          bwdlattice):
        super()._accumulate_sufficient_statistics(stats, X, lattice, posteriors, fwdlattice,
                                                  bwdlattice)
        self._accumulate_posteriors(stats, np.asarray(X, dtype=np.float64), posteriors, None)

    def _accumulate_posteriors(self, stats, X, posteriors, data):
        """Family hook: add emission statistics from frames X (T, D) and their weighted
        posteriors (T, N) (missing frames already weigh 0)."""
        raise NotImplementedError
