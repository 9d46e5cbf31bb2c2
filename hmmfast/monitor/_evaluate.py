"""One pass over a batch of sessions: gather, per-step forward, Viterbi.

The detector's scores and reasons all come from the outputs of two library kernels run
over the same gathered frames (one concatenated array plus offsets, as in
``score_batch``/``decode_batch``), without splitting them into one array per session:

* ``_trellis.forward_steps``: each session's log-likelihood log P(O) and its per-step
  log conditionals log P(o_t | o_<t) (the scaled forward's normalisers);
* exact Viterbi (``_decoders.run``; the checkpointed kernel for huge sessions): the most
  likely state path, with ``raise_impossible=False`` so a session the model cannot
  produce gets -inf instead of stopping the batch.

With an end of session (``_end``: an end symbol, or the exit state of learned exit
probabilities) one end frame follows every session in both kernels; the returned paths
and steps say which frames are the session's own.
"""

import numpy as np

from .. import _batch, _decoders, _trellis
from . import _end


class BatchPass:
    """Kernel outputs for a batch of S sessions (F frames scored in all).

    Attributes
    ----------
    loglik : ndarray of shape (S,)
        log P(session) (its end step included); -inf for an impossible session.
    steps : ndarray of shape (F,)
        Per-step log conditionals, concatenated; -inf from an impossible step on.
    scored_offsets : ndarray of shape (S + 1,)
        Session boundaries in ``steps`` (each session's end step included).
    states : ndarray of shape (F - S if an end step else F,), intp
        Viterbi states of the sessions' own frames (not the end step); unspecified for an
        impossible session.
    offsets : ndarray of shape (S + 1,)
        Session boundaries in ``states`` (the sessions' own lengths).
    """

    __slots__ = ("has_end", "loglik", "n_threads", "offsets", "scored_offsets", "states",
                 "steps")

    def own_steps(self):
        """``steps`` without the end steps (``steps`` itself when there is none)."""
        if not self.has_end:
            return self.steps
        return np.delete(self.steps, self.scored_offsets[1:] - 1)

    @property
    def lengths(self):
        return np.diff(self.offsets)

    @property
    def n_scored(self):
        return np.diff(self.scored_offsets)


def run(model, sequences, lengths=None, n_threads=None, end_symbol=None, exit_inputs=None,
        decode=True):
    """The batch pass (see the module docstring). ``end_symbol`` (an int) or
    ``exit_inputs`` (``_end.ExitInputs`` of the model's current parameters) add the end
    step; ``decode=False`` skips Viterbi."""
    c = model._cache or model._prepare()
    threads = _batch._threads(c, n_threads)
    emission, rows, offsets, n_frames = _batch.gather(model, c, sequences, lengths, True)
    offsets = np.ascontiguousarray(offsets, dtype=np.intp)
    scored_offsets = offsets
    chain = c.chain
    if end_symbol is not None:
        rows, scored_offsets = _end.append_end(np.asarray(rows, dtype=np.intp), offsets,
                                               end_symbol)
    elif exit_inputs is not None:
        emission, rows, scored_offsets = _end.exit_frames(exit_inputs, emission, rows, offsets,
                                                          c.scaling, threads)
        chain = exit_inputs.chain
    has_end = scored_offsets is not offsets
    n_frames = scored_offsets[-1]
    n_seq = len(offsets) - 1
    out = BatchPass()
    out.loglik = np.empty(n_seq)
    _, out.steps = _trellis.forward_steps(chain, emission, rows, scored_offsets, c.scaling,
                                          out.loglik, threads)
    out.scored_offsets = scored_offsets
    out.offsets = offsets
    out.has_end = has_end
    out.n_threads = max(threads, 1)  # the reasons' scans: automatic (< 0) -> one thread
    out.states = None
    if decode:
        _, states, _ = _decoders.run(_decoders.EXACT_VITERBI, chain, emission, rows,
                                     scored_offsets, n_frames, c.scaling, np.empty(n_seq),
                                     threads, False)
        out.states = states if not has_end else np.delete(states, scored_offsets[1:] - 1)
    return out


def posteriors(model, sequences, lengths=None, n_threads=None):
    """State posteriors of a batch: (post (F, N), rows (F,) intp or None, offsets (S + 1,),
    loglik (S,)). ``rows`` are the symbols of a symbol-table model (None otherwise); an
    impossible session gets loglik -inf and unspecified rows of ``post``."""
    c = model._cache or model._prepare()
    threads = _batch._threads(c, n_threads)
    emission, rows, offsets, _ = _batch.gather(model, c, sequences, lengths, True)
    offsets = np.ascontiguousarray(offsets, dtype=np.intp)
    loglik = np.empty(len(offsets) - 1)
    _, post = _trellis.forward_backward(c.chain, emission, rows, offsets, c.scaling, loglik,
                                        threads, False)
    return post, rows, offsets, loglik
