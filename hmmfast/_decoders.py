"""Which decoder runs: the one place that validates decode options and dispatches.

Every decode comes here: ``BaseHMM.decode`` (after its compiled fast entry,
csrc/_viterbi.pyx ``model_decode``, which serves exact Viterbi of one ready symbol
array by itself), ``decode_batch`` (_batch), the functional ``viterbi`` (_functional) and
the monitor's batch pass (monitor/_evaluate).

* :func:`choose` validates ``algorithm``, ``beam``/``max_active``/``min_active`` and
  ``memory`` together and returns a :class:`Choice`.
* :func:`run` runs the chosen decoder over kernel-ready frames: beam-pruned Viterbi
  (csrc/_beam.pyx), exact Viterbi with the full backpointer table (csrc/_viterbi.pyx) or
  checkpointed (csrc/_checkpoint.pyx; :func:`viterbi_kernel` picks, switching by itself
  above ``_checkpoint.AUTO_CHECKPOINT_BYTES``), or MAP (forward-backward, then the
  joint log-probability of the step-wise best states).
* :func:`decode_model` is a model's decode: a model whose frames are log-emissions of
  validated feature vectors computable a block at a time (the continuous families: the
  ``_blocked_frames`` hook) takes exact Viterbi through :func:`viterbi_dense`, so
  checkpointed decoding never builds their (T, N) log-emission matrix
  (_checkpoint_blocks); every other decode goes through the model's ``_frames`` and
  :func:`run`.
"""

from typing import NamedTuple

import numpy as np

from . import _beam, _checkpoint, _checkpoint_blocks, _nbest, _trellis, _viterbi
from . import _validation as V
from ._errors import ParameterError

ALGORITHMS = ("viterbi", "map")
MEMORY = ("full", "checkpoint")


class Choice(NamedTuple):
    """A validated decode request (see :func:`choose`)."""

    algorithm: str  #: in ALGORITHMS
    pruning: tuple | None  #: the beam kernel's (beam, max_active, min_active); None: exact
    memory: str  #: in MEMORY


EXACT_VITERBI = Choice("viterbi", None, "full")
MAP = Choice("map", None, "full")


def check_memory(memory):
    if not isinstance(memory, str) or memory not in MEMORY:
        raise ParameterError(f"memory must be one of {MEMORY}, got {memory!r}")
    return memory


def choose(algorithm, beam=None, max_active=None, min_active=None, memory="full"):
    """The decoder for these options, validated together.

    Parameters
    ----------
    algorithm : {"viterbi", "map"}
    beam, max_active, min_active
        Beam pruning (``_validation.pruning``); Viterbi only.
    memory : {"full", "checkpoint"}
        "checkpoint" is exact Viterbi only.

    Returns
    -------
    Choice

    Raises
    ------
    ParameterError, HMMTypeError
        Naming the option and what it may be.
    """
    if (beam is None and max_active is None and min_active is None
            and isinstance(memory, str) and memory == "full"):
        if algorithm == "viterbi":
            return EXACT_VITERBI
        if algorithm == "map":
            return MAP
    check_memory(memory)
    pruning = V.pruning(beam, max_active, min_active)
    if pruning is not None and memory == "checkpoint":
        raise ParameterError("memory='checkpoint' is exact Viterbi; beam decoding already "
                             "stores backpointers for the active states only")
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ParameterError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm != "viterbi" and (pruning is not None or memory == "checkpoint"):
        raise ParameterError("beam, max_active, min_active and memory='checkpoint' apply to "
                             "Viterbi decoding: use algorithm='viterbi'")
    return tuple.__new__(Choice, (algorithm, pruning, memory))  # Choice(...), 0.5 us faster


def viterbi_kernel(memory, n_states, offsets, n_frames, computed_emissions=False):
    """_viterbi.viterbi or _checkpoint.viterbi_checkpoint (same arguments and results).

    ``memory="full"`` keeps the full table unless it would exceed
    ``_checkpoint.AUTO_CHECKPOINT_BYTES`` (256 MiB: T = 4.2 million frames at N = 64);
    with ``computed_emissions`` (a continuous family, whose full path also computes the
    whole (T, N) float64 log-emission matrix) that matrix counts too (T = 3.7 million at
    N = 8).
    """
    if memory == "full":
        limit = _checkpoint.AUTO_CHECKPOINT_BYTES
        if computed_emissions:
            limit -= 8 * n_states * n_frames
        longest = n_frames  # a bound: the longest sequence, looked up only if it matters
        if offsets is not None and _checkpoint.full_table_bytes(n_states, longest) > limit:
            longest = int(np.max(np.diff(offsets)))
        if _checkpoint.full_table_bytes(n_states, longest) <= limit:
            return _viterbi.viterbi
    return _checkpoint.viterbi_checkpoint


def run(choice, chain, emission, rows, offsets, n_frames, scaling=False, logprob_out=None,
        n_threads=1, raise_impossible=True):
    """Decode kernel-ready frames as ``choice`` says.

    Parameters
    ----------
    choice : Choice
    chain, emission, rows, offsets
        The kernels' inputs (_kernel_inputs; rows None for dense frames, offsets None
        for one sequence). "map" reads the scaled emission when ``scaling``.
    n_frames : int
    scaling : bool
        Forward-backward arithmetic of "map".
    logprob_out : ndarray of shape (n_seq,), optional
        Receives each sequence's log P(X_s, path_s).
    n_threads : int
    raise_impossible : bool
        False: a sequence the model cannot produce gets -inf in ``logprob_out`` (and an
        unspecified path) instead of raising.

    Returns
    -------
    logprob : float
        Summed over sequences.
    states : ndarray of shape (n_frames,), intp
    impossible : ndarray of shape (n_seq,), bool, or None without ``logprob_out``
        The sequences the model cannot produce. With "map", a possible sequence whose
        step-wise best states use a forbidden transition also scores -inf (its path
        is kept), so read this, not -inf in ``logprob_out``.
    """
    algorithm, pruning, memory = choice
    if algorithm == "viterbi":
        if pruning is not None:
            total, states = _beam.beam_viterbi(chain, emission, rows, offsets, *pruning,
                                               logprob_out, n_threads, raise_impossible)
        else:
            decoder = viterbi_kernel(memory, emission[0].shape[1], offsets, n_frames)
            total, states = decoder(chain, emission, rows, offsets, logprob_out, n_threads,
                                    raise_impossible)
        return total, states, None if logprob_out is None else logprob_out == -np.inf
    _, posteriors = _trellis.forward_backward(chain, emission, rows, offsets, scaling,
                                              logprob_out, n_threads, raise_impossible)
    impossible = None if logprob_out is None else logprob_out == -np.inf
    states = np.argmax(posteriors, axis=1).astype(np.intp, copy=False)
    total = _viterbi.path_log_prob(chain, emission, rows, offsets, states, logprob_out)
    if impossible is not None:
        logprob_out[impossible] = -np.inf
    return total, states, impossible


def decode_model(model, c, X, lengths, choice):
    """``model.decode(X, lengths)`` as ``choice`` says, with the model's compiled inputs
    ``c``: (log P(X, states) summed over sequences, states)."""
    algorithm, pruning, memory = choice
    if (algorithm == "viterbi" and pruning is None
            and type(model)._frames is type(model)._blocked_frames):
        # continuous families: checkpointing never builds the (T, N) log-emissions
        return viterbi_dense(model, c, X, lengths, memory)
    emission, rows, n = model._frames(c, X, algorithm == "map")
    offsets = None if lengths is None else V.lengths_to_offsets(lengths, n)
    total, states, _ = run(choice, c.chain, emission, rows, offsets, n, c.scaling, None,
                           c.n_threads)
    return total, states


def viterbi_dense(model, c, X, lengths, memory):
    """Exact Viterbi of a model whose frames come in blocks (``_blocked_frames``).

    The kernel is chosen as everywhere (``viterbi_kernel``); the full-table decoder gets
    the (T, N) log-emission matrix, the checkpointed one log-emissions computed one
    segment at a time (``_checkpoint_blocks``), so it keeps O(sqrt(T) N) working memory
    beyond X. Both give the same score and path bit for bit.

    Parameters
    ----------
    model : BaseHMM whose ``_frames`` is its ``_blocked_frames`` (the continuous families)
    c : the model's compiled inputs (``model._cache``)
    X : array-like of shape (n_samples, n_features)
    lengths : array-like of int, or None
    memory : {"full", "checkpoint"}

    Returns
    -------
    logprob : float
    states : ndarray of shape (n_samples,), intp
    """
    n_frames, log_emissions = model._emission_blocks(c, X, c.n_threads)
    offsets = None if lengths is None else V.lengths_to_offsets(lengths, n_frames)
    decoder = viterbi_kernel(memory, c.n_components, offsets, n_frames, True)
    if decoder is _viterbi.viterbi:
        emission = (log_emissions(0, n_frames), None, None)  # as _frames(c, X, False)
        return decoder(c.chain, emission, None, offsets, None, c.n_threads)
    return _checkpoint_blocks.viterbi_blocks(c.chain, c.n_components, log_emissions, offsets,
                                             n_frames)


def nbest(chain, emission, rows, n):
    """The n best distinct paths as a list of (log-probability, states), best first."""
    n = V.check_n("n", n)
    scores, paths = _nbest.nbest(chain, emission, rows, n)
    return list(zip(scores.tolist(), paths, strict=True))
