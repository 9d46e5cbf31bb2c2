"""Which exact Viterbi kernel runs (full table or checkpointed), and n-best lists.

Shared by the model API (_base), batches (_batch) and the functional API (_functional).
For the continuous families, ``decode`` comes here with the observations
(``viterbi_dense``) so that checkpointed decoding never builds their (T, N) log-emission
matrix (see _checkpoint_blocks).
"""

import functools

import numpy as np

from . import _checkpoint, _checkpoint_blocks, _nbest, _viterbi
from . import _validation as V
from ._errors import ParameterError

MEMORY = ("full", "checkpoint")

#: ``memory="full"`` switches to checkpointed decoding (the same path, O(sqrt(T) N)
#: backpointer memory, ~2x the time) when the full decoder's backpointer table for the
#: longest sequence (T x N x 1/2/4 bytes, per thread) would exceed this: 256 MiB, i.e.
#: T = 4.2 million at N = 64 (for a continuous family the (T, N) float64 log-emissions
#: it would compute count too: T = 3.7 million at N = 8).
AUTO_CHECKPOINT_BYTES = _checkpoint.AUTO_CHECKPOINT_BYTES


def check_memory(memory):
    if not isinstance(memory, str) or memory not in MEMORY:
        raise ParameterError(f"memory must be one of {MEMORY}, got {memory!r}")
    return memory


def viterbi_kernel(memory, n_states, offsets, n_frames, computed_emissions=False):
    """_viterbi.viterbi or _checkpoint.viterbi_checkpoint (same arguments and results).

    ``memory="full"`` keeps the full table unless it would exceed AUTO_CHECKPOINT_BYTES;
    with ``computed_emissions`` (a continuous family, whose full path also computes the
    whole (T, N) float64 log-emission matrix) that matrix counts too.
    """
    if memory == "full":
        need = _checkpoint.full_table_bytes(n_states, n_frames if offsets is None
                                            else int(np.max(np.diff(offsets))))
        if computed_emissions:
            need += 8 * n_states * n_frames
        if need <= AUTO_CHECKPOINT_BYTES:
            return _viterbi.viterbi
    return _checkpoint.viterbi_checkpoint


def blocked_frames(model):
    """True when ``model``'s frames are dense log-emissions of validated feature vectors
    that may be computed a block of frames at a time: the continuous families' own
    ``_frames`` (a subclass overriding it, or hmmlearn's ``_compute_log_likelihood`` hook
    on BaseHMM, keeps the whole-matrix path)."""
    return type(model)._frames is _continuous_frames()


@functools.cache
def _continuous_frames():
    from ._continuous import ContinuousHMM  # imports _base, which imports this module

    return ContinuousHMM._frames


def viterbi_dense(model, c, X, lengths, memory):
    """Exact Viterbi of a continuous-family model (``blocked_frames(model)``).

    The kernel is chosen as everywhere (``viterbi_kernel``); the full-table decoder gets
    the (T, N) log-emission matrix, the checkpointed one log-emissions computed one
    segment at a time (``_checkpoint_blocks``), so it keeps O(sqrt(T) N) working memory
    beyond X. Both give the same score and path bit for bit.

    Parameters
    ----------
    model : ContinuousHMM
    c : the model's compiled inputs (``model._cache``)
    X : array-like of shape (n_samples, n_features)
    lengths : array-like of int, or None
    memory : {"full", "checkpoint"}

    Returns
    -------
    logprob : float
    states : ndarray of shape (n_samples,), intp
    """
    frames, missing = model._observations(X)
    n_frames = frames.shape[0]
    offsets = None if lengths is None else V.lengths_to_offsets(lengths, n_frames)

    def log_emissions(a, b):
        mask = None if missing is None else missing[a:b]
        log_em = model._log_emissions(c, frames[a:b], mask, c.n_threads)
        return np.ascontiguousarray(log_em, dtype=np.float64)

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
