"""The arms of an A/B split: what each served, and how their likelihoods compare.

Each arm counts its sessions, their log-likelihood (pooled per step, for the Prometheus
gauge), the mean and variance of the sessions' per-step log-likelihoods (Chan et al.'s
pairwise update, so a batch costs one NumPy pass under the lock) and the anomaly levels.
:func:`welch` compares two arms: the difference of means with its Welch interval (the
arms' variances differ in general; sessions are the independent units).
"""

import math
import threading

import numpy as np


class ArmStats:
    """One arm of an A/B split: sessions, log-likelihood per step, anomaly levels.

    Two per-step means: ``loglik_per_step`` pools every step (the arm's total
    log-likelihood over its total steps, the Prometheus gauge), ``mean_per_step`` is the
    mean over sessions of each session's log P / T (the unit the Welch interval compares:
    sessions are the independent draws). Impossible sessions (-inf) are counted apart.
    """

    LEVELS = ("normal", "suspicious", "anomalous")

    def __init__(self):
        self._lock = threading.Lock()
        self.sessions = 0
        self.scored_sessions = 0
        self.loglik = 0.0
        self.steps = 0
        self.impossible = 0
        self.levels = dict.fromkeys(self.LEVELS, 0)
        self._n, self._mean, self._m2 = 0, 0.0, 0.0  # per-session per-step scores

    def add_sessions(self, n):
        with self._lock:
            self.sessions += n

    def add_scores(self, scores, lengths):
        finite = np.isfinite(scores)
        x = scores[finite] / lengths[finite]
        n_b = len(x)
        mean_b = float(x.mean()) if n_b else 0.0
        m2_b = float(((x - mean_b) ** 2).sum()) if n_b else 0.0
        with self._lock:
            self.scored_sessions += len(scores)
            self.impossible += int(len(scores) - finite.sum())
            self.loglik += float(scores[finite].sum())
            self.steps += int(lengths[finite].sum())
            if n_b:  # Chan et al.'s pairwise update of the mean and the sum of squares
                n_a, n = self._n, self._n + n_b
                delta = mean_b - self._mean
                self._mean += delta * n_b / n
                self._m2 += m2_b + delta * delta * n_a * n_b / n
                self._n = n

    def add_levels(self, levels):
        names, counts = np.unique(np.asarray(levels), return_counts=True)
        with self._lock:
            for name, n in zip(names.tolist(), counts.tolist(), strict=True):
                self.levels[name] = self.levels.get(name, 0) + n

    @property
    def loglik_per_step(self):
        with self._lock:
            return self.loglik / self.steps if self.steps else float("nan")

    def moments(self):
        """(n, mean, sample variance) of the sessions' per-step scores (NaN when
        undefined)."""
        with self._lock:
            n, mean, m2 = self._n, self._mean, self._m2
        return n, (mean if n else float("nan")), (m2 / (n - 1) if n > 1 else float("nan"))

    def state(self):
        n, mean, var = self.moments()
        with self._lock:
            judged = sum(self.levels.values())
            return {
                "sessions": self.sessions,
                "loglik_per_step": self.loglik / self.steps if self.steps else None,
                "mean_per_step": mean if n else None,
                "sd_per_step": math.sqrt(var) if n > 1 else None,
                "scored_sessions": self.scored_sessions,
                "impossible": self.impossible,
                "anomaly_rates": {k: (v / judged if judged else None)
                                  for k, v in self.levels.items()},
            }


def welch(a, b, level=0.95):
    """The difference of two arms' mean per-step scores, ``a`` minus ``b``, with its
    Welch confidence interval (unequal variances; Welch-Satterthwaite degrees of
    freedom). JSON-safe: fields are None until each arm has two scored sessions."""
    n_a, mean_a, var_a = a.moments()
    n_b, mean_b, var_b = b.moments()
    out = {"candidate_minus_live": None, "ci95": None, "standard_error": None, "df": None,
           "method": "Welch t interval over sessions' mean per-step log-likelihoods"}
    if n_a and n_b:
        out["candidate_minus_live"] = mean_a - mean_b
    if n_a < 2 or n_b < 2:
        return out
    from scipy.stats import t as student_t

    u_a, u_b = var_a / n_a, var_b / n_b
    se = math.sqrt(u_a + u_b)
    diff = mean_a - mean_b
    if se == 0:
        out.update(ci95=[diff, diff], standard_error=0.0)
        return out
    df = (u_a + u_b) ** 2 / (u_a * u_a / (n_a - 1) + u_b * u_b / (n_b - 1))
    half = float(student_t.ppf(0.5 + level / 2, df)) * se
    out.update(ci95=[diff - half, diff + half], standard_error=se, df=df)
    return out
