"""Pure-NumPy reference implementation: the oracle the compiled kernels are tested against.

Written for clarity, not speed: the textbook recursions in log space with
``scipy.special.logsumexp``, one sequence at a time. Users hunting a bug can call these
on the same inputs as the kernels. Ties in Viterbi break to the lowest state index, as
in the kernels.
"""

import numpy as np
from scipy.special import logsumexp


def _log(x):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(x, dtype=np.float64))


def _sequences(log_emissions, lengths):
    log_emissions = np.asarray(log_emissions, dtype=np.float64)
    if lengths is None:
        lengths = [len(log_emissions)]
    start = 0
    for length in lengths:
        yield log_emissions[start:start + length]
        start += length


def log_alpha(startprob, transmat, log_b):
    """log alpha_t(j) = log P(x_0..x_t, state_t = j); ndarray (T, N)."""
    log_a = _log(transmat)
    alpha = np.empty_like(log_b)
    alpha[0] = _log(startprob) + log_b[0]
    for t in range(1, len(log_b)):
        alpha[t] = logsumexp(alpha[t - 1][:, None] + log_a, axis=0) + log_b[t]
    return alpha


def log_beta(transmat, log_b):
    """log beta_t(i) = log P(x_{t+1}.. | state_t = i); ndarray (T, N)."""
    log_a = _log(transmat)
    beta = np.zeros_like(log_b)
    for t in range(len(log_b) - 2, -1, -1):
        beta[t] = logsumexp(log_a + (log_b[t + 1] + beta[t + 1])[None, :], axis=1)
    return beta


def forward(startprob, transmat, log_emissions, lengths=None):
    """Per-sequence log-likelihoods, ndarray (n_seq,)."""
    return np.array([
        logsumexp(log_alpha(startprob, transmat, log_b)[-1])
        for log_b in _sequences(log_emissions, lengths)
    ])


def posteriors(startprob, transmat, log_emissions, lengths=None):
    """State posteriors gamma, ndarray (T, N) (NaN rows for an impossible sequence)."""
    out = []
    for log_b in _sequences(log_emissions, lengths):
        alpha = log_alpha(startprob, transmat, log_b)
        beta = log_beta(transmat, log_b)
        with np.errstate(invalid="ignore"):
            out.append(np.exp(alpha + beta - logsumexp(alpha[-1])))
    return np.concatenate(out)


def viterbi(startprob, transmat, log_emissions, lengths=None):
    """(per-sequence log P(X, path) ndarray, concatenated paths ndarray)."""
    log_a = _log(transmat)
    scores, paths = [], []
    for log_b in _sequences(log_emissions, lengths):
        big_t, n = log_b.shape
        delta = _log(startprob) + log_b[0]
        psi = np.zeros((big_t, n), dtype=np.intp)
        for t in range(1, big_t):
            cand = delta[:, None] + log_a  # cand[i, j]
            psi[t] = np.argmax(cand, axis=0)  # first maximiser = lowest index
            delta = cand[psi[t], np.arange(n)] + log_b[t]
        path = np.empty(big_t, dtype=np.intp)
        path[-1] = np.argmax(delta)
        for t in range(big_t - 1, 0, -1):
            path[t - 1] = psi[t, path[t]]
        scores.append(delta[path[-1]])
        paths.append(path)
    return np.array(scores), np.concatenate(paths)


def path_log_prob(startprob, transmat, log_emissions, states, lengths=None):
    """Per-sequence joint log-density log P(X, states), ndarray (n_seq,)."""
    log_a = _log(transmat)
    log_pi = _log(startprob)
    out, start = [], 0
    for log_b in _sequences(log_emissions, lengths):
        s = np.asarray(states[start:start + len(log_b)])
        start += len(log_b)
        out.append(log_pi[s[0]] + log_b[np.arange(len(s)), s].sum() + log_a[s[:-1], s[1:]].sum())
    return np.array(out)


def categorical_log_emissions(emissionprob, symbols):
    """(T, N) log P(symbol_t | state j) for a categorical model."""
    return _log(emissionprob).T[np.asarray(symbols).reshape(-1)]
