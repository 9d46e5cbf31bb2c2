"""The kernels on a precomputed log-emission matrix (emissions computed elsewhere).

For users whose emission scores come from a neural network, a custom density or another
library: give the chain's probabilities and a (T, N) matrix of log P(x_t | state j).
Parameters are validated on every call (there is no model to cache them on).
"""

import numpy as np

from . import _decoders, _kernel_inputs, _sparse, _trellis
from . import _validation as V
from ._errors import ParameterError


def _prepare(startprob, transmat, log_emissions, lengths, implementation):
    scaling = V.uses_scaling(implementation)
    shape = np.shape(startprob)
    if len(shape) != 1:
        raise ParameterError(
            f"startprob must be a 1-D array of n_components probabilities, got shape {shape}"
        )
    n = shape[0]
    if n < 1:
        raise ParameterError("startprob is empty; expected at least one state")
    start = V.probability_vector("startprob", startprob, n)
    if _sparse.is_sparse(transmat):  # kept sparse: O(non-zeros) per step
        trans = _sparse.stochastic_matrix("transmat", transmat, n)
    else:
        trans = V.stochastic_matrix("transmat", transmat, n, n)
    log_em = V.log_emission_matrix(log_emissions, n)
    offsets = None if lengths is None else V.lengths_to_offsets(lengths, log_em.shape[0])
    return (_kernel_inputs.chain(start, trans), _kernel_inputs.emission(log_em, scaling),
            offsets, scaling)


def forward(startprob, transmat, log_emissions, *, lengths=None, implementation="scaling"):
    """Log-likelihood log P(X) by the forward algorithm.

    Parameters
    ----------
    startprob : array-like of shape (n_components,)
    transmat : array-like or scipy.sparse matrix of shape (n_components, n_components)
    log_emissions : array-like of shape (n_samples, n_components)
        log P(x_t | state j); -inf for an impossible emission.
    lengths : array-like of int, optional
        Split the rows into sequences (positive lengths summing to n_samples).
    implementation : {"scaling", "log"}

    Returns
    -------
    float
        Summed over sequences; -inf when a sequence is impossible.
    """
    chain, emission, offsets, scaling = _prepare(
        startprob, transmat, log_emissions, lengths, implementation
    )
    return _trellis.forward(chain, emission, None, offsets, scaling)


def forward_backward(startprob, transmat, log_emissions, *, lengths=None,
                     implementation="scaling"):
    """Log-likelihood and state posteriors; arguments as for :func:`forward`.

    Returns
    -------
    logprob : float
    posteriors : ndarray of shape (n_samples, n_components)

    Raises
    ------
    ImpossibleSequenceError
        When a sequence has probability zero.
    """
    chain, emission, offsets, scaling = _prepare(
        startprob, transmat, log_emissions, lengths, implementation
    )
    return _trellis.forward_backward(chain, emission, None, offsets, scaling)


def viterbi(startprob, transmat, log_emissions, *, lengths=None, beam=None, max_active=None,
            min_active=None, memory="full"):
    """Most likely state path (Viterbi); ties break to the lowest state index.

    Parameters are those of :func:`forward`, and:

    beam : float, optional
        Beam pruning: keep states within ``beam`` (natural log) of each step's best.
    max_active, min_active : int, optional
        Keep at most / at least that many states per step.
    memory : {"full", "checkpoint"}
        As for ``BaseHMM.decode``: "checkpoint" keeps O(sqrt(T) N) backpointer memory
        (the same path, ~2x the time); "full" switches to it above 256 MiB of backpointers.

    Returns
    -------
    logprob : float
        log P(X, states), summed over sequences (the true log-density of the returned
        path, also when pruning returns a worse one).
    states : ndarray of shape (n_samples,), intp

    Raises
    ------
    ImpossibleSequenceError
        When a sequence has probability zero; names the first impossible step.
        PruningError (a subclass) when pruning removed every path.
    """
    choice = _decoders.choose("viterbi", beam, max_active, min_active, memory)
    chain, emission, offsets, _ = _prepare(startprob, transmat, log_emissions, lengths, "log")
    total, states, _ = _decoders.run(choice, chain, emission, None, offsets,
                                     emission[0].shape[0])
    return total, states


def nbest(startprob, transmat, log_emissions, n):
    """The n most probable distinct state paths of one sequence (list Viterbi), best first.

    ``startprob``, ``transmat``, ``log_emissions`` as for :func:`forward` (one sequence);
    ``n`` >= 1. Returns a list of (log P(X, states), states); ties as in
    ``BaseHMM.nbest``, so entry 0 is :func:`viterbi`'s result exactly. Time
    O(T (N^2 + N n log N)), memory O(T N n).

    Raises
    ------
    ImpossibleSequenceError
        Naming the first impossible step.
    """
    chain, emission, _, _ = _prepare(startprob, transmat, log_emissions, None, "log")
    return _decoders.nbest(chain, emission, None, n)
