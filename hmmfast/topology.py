"""Transition topologies: start and transition probabilities with structural zeros.

Each function returns ``(startprob, transmat)`` for a model with ``n`` states::

    import hmmfast as hmm
    from hmmfast.topology import left_right

    model = hmm.GaussianHMM(5, init_params="mc")   # leave "s" and "t" out of init_params
    model.startprob_, model.transmat_ = left_right(5, skip=1)
    model.fit(X, lengths)                           # the zeros stay zeros

A zero probability stays zero through ``fit``, ``fit_viterbi`` and ``fit_supervised``
(the M-step's counts there are zero; a Dirichlet prior above 1 on such a cell would
un-zero it, as in hmmlearn). Initialisation keeps them when ``init_params`` leaves out
"s" and "t", as in hmmlearn; a sparse ``transmat_`` (``sparse=True``) also keeps its
pattern when "t" is in ``init_params`` (random values on the same non-zeros). The
values returned are a start, not an estimate: uniform over the allowed moves, with
``self_loop`` on the diagonal of a left-right chain.

Sparse (CSR) transition matrices make decoding and fitting cost O(T * non-zeros)
instead of O(T * n**2) (see the README's "Decoders"); use them for long chains.
"""

import numpy as np
from scipy import sparse as _sparse

from . import _validation as V
from ._errors import ParameterError

__all__ = ["banded", "ergodic", "left_right"]


def _out(startprob, transmat, sparse):
    if sparse:
        return startprob, _sparse.csr_matrix(transmat)
    return startprob, transmat


def _from_mask(mask, diagonal=None):
    """Rows uniform over ``mask``; with ``diagonal`` that mass on i -> i and the rest
    shared by the other allowed moves (a row without others keeps 1 on the diagonal)."""
    n = mask.shape[0]
    trans = np.zeros((n, n))
    for i in range(n):
        allowed = np.flatnonzero(mask[i])
        if diagonal is None:
            trans[i, allowed] = 1.0 / len(allowed)
            continue
        others = allowed[allowed != i]
        if len(others) == 0:
            trans[i, i] = 1.0
        else:
            trans[i, i] = diagonal
            trans[i, others] = (1.0 - diagonal) / len(others)
    return trans


def left_right(n, skip=1, self_loop=0.5, *, sparse=False):
    """A left-to-right (Bakis) chain: start in state 0, stay or move forward.

    State i goes to itself with probability ``self_loop`` and forward to i + 1, ...,
    i + skip + 1 (those that exist), sharing the rest equally; the last state is
    absorbing (probability 1 of staying). ``skip=0`` is the plain chain, each state
    to itself and the next; ``skip=1`` also jumps over one state (HTK's usual
    topology).

    Parameters
    ----------
    n : int >= 1
        Number of states.
    skip : int >= 0
        States a move may jump over (moves go up to skip + 1 states forward).
    self_loop : float in [0, 1)
        Probability of staying in a state (not the last).
    sparse : bool
        Return ``transmat`` as a scipy.sparse CSR matrix.

    Returns
    -------
    startprob : ndarray of shape (n,)
        [1, 0, ..., 0].
    transmat : ndarray of shape (n, n), or CSR
        Upper triangular with bandwidth skip + 1.
    """
    n = V.check_n("n", n)
    skip = V.check_n("skip", skip, minimum=0)
    self_loop = _probability("self_loop", self_loop, upper_open=True)
    i, j = np.indices((n, n))
    mask = (j >= i) & (j <= i + skip + 1)
    startprob = np.zeros(n)
    startprob[0] = 1.0
    return _out(startprob, _from_mask(mask, self_loop), sparse)


def banded(n, width, *, sparse=False):
    """A banded chain: from state i to any state within ``width`` of it, uniformly; start
    anywhere, uniformly (ordered regimes that move by small steps, up or down).

    Parameters
    ----------
    n : int >= 1
    width : int >= 0
        Largest |i - j| of a move (0: every state absorbing).
    sparse : bool
        Return ``transmat`` as a scipy.sparse CSR matrix.

    Returns
    -------
    startprob : ndarray of shape (n,)
        Uniform.
    transmat : ndarray of shape (n, n), or CSR
        Non-zero on the 2 * width + 1 central diagonals.
    """
    n = V.check_n("n", n)
    width = V.check_n("width", width, minimum=0)
    i, j = np.indices((n, n))
    return _out(np.full(n, 1.0 / n), _from_mask(np.abs(i - j) <= width), sparse)


def ergodic(n, *, sparse=False):
    """A fully connected chain: uniform start and transition probabilities.

    Every state can follow every state (hmmlearn's default structure); useful as a
    uniform start beside the other topologies, e.g. in :func:`hmmfast.select`.

    Returns
    -------
    startprob : ndarray of shape (n,)
    transmat : ndarray of shape (n, n), or CSR
    """
    n = V.check_n("n", n)
    return _out(np.full(n, 1.0 / n), np.full((n, n), 1.0 / n), sparse)


def _probability(name, value, upper_open=False):
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a probability, got {value!r}") from None
    if not (0.0 <= p < 1.0 if upper_open else 0.0 <= p <= 1.0):
        bound = "[0, 1)" if upper_open else "[0, 1]"
        raise ParameterError(f"{name} must be in {bound}, got {value!r}")
    return p
