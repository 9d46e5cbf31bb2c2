"""Which exact Viterbi kernel runs (full table or checkpointed), and n-best lists.

Shared by the model API (_base), batches (_batch) and the functional API (_functional).
"""

import numpy as np

from . import _checkpoint, _nbest, _viterbi
from . import _validation as V
from ._errors import ParameterError

MEMORY = ("full", "checkpoint")

#: ``memory="full"`` switches to checkpointed decoding (the same path, O(sqrt(T) N)
#: backpointer memory, ~2x the time) when the full decoder's backpointer table for the
#: longest sequence (T x N x 1/2/4 bytes, per thread) would exceed this: 256 MiB, i.e.
#: T = 4.2 million at N = 64.
AUTO_CHECKPOINT_BYTES = _checkpoint.AUTO_CHECKPOINT_BYTES


def check_memory(memory):
    if not isinstance(memory, str) or memory not in MEMORY:
        raise ParameterError(f"memory must be one of {MEMORY}, got {memory!r}")
    return memory


def viterbi_kernel(memory, n_states, offsets, n_frames):
    """_viterbi.viterbi or _checkpoint.viterbi_checkpoint (same arguments and results)."""
    if memory == "full":
        longest = n_frames if offsets is None else int(np.max(np.diff(offsets)))
        if _checkpoint.full_table_bytes(n_states, longest) <= AUTO_CHECKPOINT_BYTES:
            return _viterbi.viterbi
    return _checkpoint.viterbi_checkpoint


def nbest(chain, emission, rows, n):
    """The n best distinct paths as a list of (log-probability, states), best first."""
    n = V.check_n("n", n)
    scores, paths = _nbest.nbest(chain, emission, rows, n)
    return list(zip(scores.tolist(), paths, strict=True))
