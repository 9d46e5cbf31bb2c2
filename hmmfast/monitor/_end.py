"""Where a session ends: the end symbol, or each state's learned probability of ending.

An HMM has no notion of the end of a session: a session that stops after two pages
scores as well as a normal one's first two pages. The detector adds one step to every
session, log P(end | the session), in one of two ways:

* **end symbol** (a CategoricalHMM the detector trains): symbol ``end`` is appended to
  every training session, so Baum-Welch learns where sessions end like any other page,
  and to every session scored. ``end = max(n_features, largest symbol + 1)``: the next
  free symbol (the model's ``n_features`` grows by one).
* **exit probabilities** (a model handed in already fitted, of any family, and the
  families that have no symbols): each state's probability of ending a session is learnt
  on the training sessions, as HTK's exit state: e_i = (expected session ends in state i
  + 1/2) / (expected visits of state i + 1), from the posteriors P(q_t = i | O) (the
  +1/2, +1 keep a state never seen at an end possible but unlikely). The end step is
  then log sum_i P(q_T = i | O) e_i.

The kernels compute both the same way: one extra frame per session. With exit
probabilities the chain gets an extra "exit" state (start 0, reached from state i with
e_i, emitting only the end frame; the other rows are left as they are, so they sum to
1 + e_i), so that the forward pass over the session and its end frame gives
log P(O) + log sum_i alpha_T(i) e_i / sum_i alpha_T(i): exactly the session's
log-likelihood plus its end step, and the per-step conditionals of its own frames are
unchanged (the exit state emits nothing else). Viterbi over the same input ends its path
in the state that best combines the path's probability with its exit probability.
"""

import numpy as np
from scipy import sparse

from .. import _kernel_inputs
from .._errors import HMMInputError, ParameterError

#: Pseudo-counts of the exit probabilities: (ends + EXIT_PRIOR) / (visits + 2 * EXIT_PRIOR).
EXIT_PRIOR = 0.5


def check_end_symbol(model, end_symbol):
    """``end_symbol`` as given: "auto", None, or a symbol index (CategoricalHMM only)."""
    if end_symbol is None or (isinstance(end_symbol, str) and end_symbol == "auto"):
        return end_symbol
    if isinstance(end_symbol, str):
        raise ParameterError(f'end_symbol must be "auto", a symbol index or None, got '
                             f"{end_symbol!r}")
    if model._observation_kind() != "symbols" or not model._symbol_frames():
        raise ParameterError(
            f"end_symbol applies to a CategoricalHMM (an extra symbol that ends every "
            f"session), got end_symbol={end_symbol!r} with a {type(model).__name__}; the "
            'default end_symbol="auto" learns where sessions end for every family')
    if isinstance(end_symbol, bool) or not isinstance(end_symbol, (int, np.integer)) \
            or end_symbol < 0:
        raise ParameterError(f"end_symbol must be a symbol index >= 0, \"auto\" or None, got "
                             f"{end_symbol!r}")
    n_features = getattr(model, "n_features", None)
    if n_features is not None and end_symbol >= n_features:
        raise ParameterError(
            f"end_symbol must be < the model's n_features={n_features} (the model must "
            f"have a symbol for the end of a session), got {end_symbol}")
    return int(end_symbol)


def auto_symbol(model, rows):
    """The end symbol for a CategoricalHMM the detector trains: max(n_features, largest
    symbol + 1) of ``rows`` (the training symbols)."""
    largest = int(rows.max()) if rows.size else -1
    n_features = getattr(model, "n_features", None)
    return max(int(n_features) if n_features is not None else 0, largest + 1)


def append_end(rows, offsets, end_symbol):
    """(rows with ``end_symbol`` after every session, their offsets); rejects a session
    that already holds the end symbol."""
    hits = np.flatnonzero(rows == end_symbol)
    if hits.size:
        t = int(hits[0])
        s = int(np.searchsorted(offsets, t, side="right")) - 1
        raise HMMInputError(
            f"sequence {s} holds the end-of-session symbol {end_symbol} at step "
            f"{t - offsets[s]}: the detector appends it to every session itself; expected "
            "page symbols only", sequence=s, step=t - offsets[s], position=t)
    n_seq = len(offsets) - 1
    return (np.insert(rows, offsets[1:], end_symbol),
            offsets + np.arange(n_seq + 1, dtype=offsets.dtype))


def learn_exit(model, sequences, lengths, n_threads):
    """Each state's probability of ending a session, from the training sessions'
    posteriors (see the module docstring): ndarray of shape (n_components,).

    Impossible sessions are left out (``fit`` reports them).
    """
    from ._evaluate import posteriors

    post, _, offsets, loglik = posteriors(model, sequences, lengths, n_threads)
    possible = np.isfinite(loglik)
    frame_ok = np.repeat(possible, np.diff(offsets))
    visits = post[frame_ok].sum(axis=0)
    ends = post[offsets[1:][possible] - 1].sum(axis=0)
    return (ends + EXIT_PRIOR) / (visits + 2 * EXIT_PRIOR)


class ExitInputs:
    """Kernel inputs of a model extended with the exit state (see the module docstring),
    built once per model parameter set (``key``: the model's compiled cache)."""

    __slots__ = ("chain", "key", "symbol_table")

    def __init__(self, model, c, exit_prob):
        n = c.n_components
        start = np.append(np.asarray(model.startprob_, dtype=np.float64), 0.0)
        trans = model.transmat_
        column = np.asarray(exit_prob, dtype=np.float64)[:, None]
        if sparse.issparse(trans):
            ext = sparse.vstack([sparse.hstack([sparse.csr_matrix(trans),
                                                sparse.csr_matrix(column)]),
                                 sparse.csr_matrix(np.full((1, n + 1), 1.0 / (n + 1)))],
                                format="csr")
        else:
            ext = np.empty((n + 1, n + 1))
            ext[:n, :n] = trans
            ext[:n, n] = column[:, 0]
            # the exit state is reached only at the end frame, so its own row is never
            # read: uniform, so that a chain without zeros stays one (the kernels' fast,
            # well-mixed path)
            ext[n] = 1.0 / (n + 1)
        self.chain = _kernel_inputs.chain(start, ext)
        self.key = c
        self.symbol_table = None
        if c.symbols is not None:
            self.symbol_table = _kernel_inputs.emission(_extend(c.symbols[0]), c.scaling)


def _extend(log_table):
    """(K, N) log-emissions -> (K + 1, N + 1): the exit state emits only row K."""
    k, n = log_table.shape
    out = np.full((k + 1, n + 1), -np.inf)
    out[:k, :n] = log_table
    out[k, n] = 0.0
    return out


def exit_frames(inputs, emission, rows, offsets, scaling, n_threads):
    """(emission, rows, scored_offsets) with an end frame after every session, for the
    extended chain ``inputs.chain``."""
    n_seq = len(offsets) - 1
    if rows is not None:  # symbol frames: one more table row, the end symbol
        k = inputs.symbol_table[0].shape[0] - 1
        rows = np.asarray(rows, dtype=np.intp)
        if rows.size and (rows.min() < 0 or rows.max() >= k):
            t = int(np.flatnonzero((rows < 0) | (rows >= k))[0])
            raise HMMInputError(f"observation symbol out of range at X[{t}]: expected "
                                f"0 <= symbol < n_features={k}, got {rows[t]}")
        rows, scored = append_end(rows, offsets, k)
        return inputs.symbol_table, rows, scored
    log_em = emission[0]
    n = log_em.shape[1]
    scored = offsets + np.arange(n_seq + 1, dtype=offsets.dtype)
    table = np.full((log_em.shape[0] + n_seq, n + 1), -np.inf)
    own = np.ones(len(table), dtype=bool)
    own[scored[1:] - 1] = False
    table[own, :n] = log_em
    table[~own, n] = 0.0
    return _kernel_inputs.emission(table, scaling, n_threads), None, scored
