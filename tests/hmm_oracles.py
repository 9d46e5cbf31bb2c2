"""Independent oracles for the tests: brute-force enumeration of every state path and
random model generators. Nothing here calls hmmfast."""

import itertools

import numpy as np


def log(x):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(x, dtype=np.float64))


def random_model(rng, n, m, zeros=False, concentration=1.0):
    """(startprob, transmat, emissionprob); with ``zeros``, some entries are structural zeros
    (every row keeps at least one non-zero entry). ``concentration``: of the Dirichlet
    draws of the transition and emission rows (the start row's is 1)."""
    def rows(k, width, alpha=concentration):
        p = rng.dirichlet(np.full(width, alpha), size=k)
        if zeros and width > 1:
            mask = rng.random((k, width)) < 0.35
            mask[np.arange(k), rng.integers(0, width, size=k)] = False
            p[mask] = 0.0
            p /= p.sum(axis=1, keepdims=True)
        return p
    return rows(1, n, 1.0)[0], rows(n, n), rows(n, m)


def enumerate_paths(startprob, transmat, log_emissions):
    """Joint log P(X, path) of every path: (paths (N**T, T), logp (N**T,))."""
    log_b = np.asarray(log_emissions, dtype=np.float64)
    big_t, n = log_b.shape
    log_pi, log_a = log(startprob), log(transmat)
    paths = np.array(list(itertools.product(range(n), repeat=big_t)), dtype=np.intp)
    logp = log_pi[paths[:, 0]] + log_b[0, paths[:, 0]]
    for t in range(1, big_t):
        logp = logp + log_a[paths[:, t - 1], paths[:, t]] + log_b[t, paths[:, t]]
    return paths, logp


def brute_force(startprob, transmat, log_emissions):
    """Everything the kernels compute, by enumeration.

    Returns dict with loglik, posteriors (T, N) (None if impossible), viterbi_logp,
    viterbi_path (ties: smallest read backwards, i.e. the lowest last state, then the
    lowest predecessor, ...), and first_impossible_step (None if possible).
    """
    log_b = np.asarray(log_emissions, dtype=np.float64)
    big_t, n = log_b.shape
    paths, logp = enumerate_paths(startprob, transmat, log_b)
    finite = np.isfinite(logp)
    out = {"loglik": -np.inf, "posteriors": None, "viterbi_logp": -np.inf,
           "viterbi_path": None, "first_impossible_step": None}
    if not finite.any():
        for t in range(big_t):  # the shortest prefix no path explains
            _, prefix_logp = enumerate_paths(startprob, transmat, log_b[:t + 1])
            if not np.isfinite(prefix_logp).any():
                out["first_impossible_step"] = t
                break
        return out
    mx = logp[finite].max()
    weights = np.exp(logp - mx)
    out["loglik"] = mx + np.log(weights.sum())
    post = np.zeros((big_t, n))
    for t in range(big_t):
        np.add.at(post[t], paths[:, t], weights)
    out["posteriors"] = post / weights.sum()
    best = np.flatnonzero(logp == mx)
    reversed_paths = [tuple(paths[k][::-1]) for k in best]
    out["viterbi_path"] = np.array(min(reversed_paths)[::-1], dtype=np.intp)
    out["viterbi_logp"] = mx
    return out


def log_forward(startprob, transmat, log_emissions, lengths=None):
    """log P(X), summed over the sequences, by the forward recursion in log space with
    NumPy's ``logaddexp`` (exact wherever the probabilities are: no state is ever
    rescaled to zero). Cheaper per step than scipy's ``logsumexp`` (hmmfast._reference)."""
    log_b = np.asarray(log_emissions, dtype=np.float64)
    log_pi, log_a = log(startprob), log(transmat)
    total, start = 0.0, 0
    for length in ([len(log_b)] if lengths is None else lengths):
        alpha = log_pi + log_b[start]
        for t in range(start + 1, start + length):
            alpha = np.logaddexp.reduce(alpha[:, None] + log_a, axis=0) + log_b[t]
        total += np.logaddexp.reduce(alpha)
        start += length
    return float(total)


def categorical_log_emissions(emissionprob, symbols):
    return log(emissionprob).T[np.asarray(symbols).reshape(-1)]
