"""One pass over a batch of sessions: gather, per-step forward, Viterbi.

The detector's scores and reasons all come from the outputs of two library kernels run
over the same gathered frames (one concatenated array plus offsets, as in
``score_batch``/``decode_batch``), without splitting them into one array per session:

* ``_trellis.forward_steps``: each session's log-likelihood log P(O) and its per-step
  log conditionals log P(o_t | o_<t) (the scaled forward's normalisers);
* the exact Viterbi kernel (``_decoders.viterbi_kernel``, the checkpointed one for huge
  sessions): the most likely state path, with ``raise_impossible=False`` so a session the
  model cannot produce gets -inf instead of stopping the batch.

With an end-of-session symbol (CategoricalHMM only) the symbol is appended to every
session before both kernels run; the returned paths and steps say which frames are the
session's own.
"""

import numpy as np

from .. import _batch, _decoders, _trellis
from .._errors import HMMInputError, ParameterError


class BatchPass:
    """Kernel outputs for a batch of S sessions (F frames scored in all).

    Attributes
    ----------
    loglik : ndarray of shape (S,)
        log P(session) (end symbol included); -inf for an impossible session.
    steps : ndarray of shape (F,)
        Per-step log conditionals, concatenated; -inf from an impossible step on.
    scored_offsets : ndarray of shape (S + 1,)
        Session boundaries in ``steps`` (each session's end step included).
    states : ndarray of shape (F - S if end symbol else F,), intp
        Viterbi states of the sessions' own frames (not the end step); unspecified for an
        impossible session.
    offsets : ndarray of shape (S + 1,)
        Session boundaries in ``states`` (the sessions' own lengths).
    """

    __slots__ = ("end_symbol", "loglik", "n_threads", "offsets", "scored_offsets", "states",
                 "steps")

    def own_steps(self):
        """``steps`` without the end steps (``steps`` itself when there is none)."""
        if self.end_symbol is None:
            return self.steps
        return np.delete(self.steps, self.scored_offsets[1:] - 1)

    @property
    def lengths(self):
        return np.diff(self.offsets)

    @property
    def n_scored(self):
        return np.diff(self.scored_offsets)


def check_end_symbol(model, end_symbol):
    """The end-of-session symbol as an int, or None; only CategoricalHMM takes one."""
    if end_symbol is None:
        return None
    if not model._symbol_frames():
        raise ParameterError(
            f"end_symbol applies to a CategoricalHMM (an extra symbol that ends every "
            f"session), got end_symbol={end_symbol!r} with a {type(model).__name__}; use "
            "the length_pct reason for the other families")
    if isinstance(end_symbol, bool) or not isinstance(end_symbol, (int, np.integer)) \
            or end_symbol < 0:
        raise ParameterError(f"end_symbol must be a symbol index >= 0 or None, got "
                             f"{end_symbol!r}")
    n_features = getattr(model, "n_features", None)
    if n_features is not None and end_symbol >= n_features:
        raise ParameterError(
            f"end_symbol must be < the model's n_features={n_features} (the model must "
            f"have a symbol for the end of a session), got {end_symbol}")
    return int(end_symbol)


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
            "page symbols only")
    n_seq = len(offsets) - 1
    return (np.insert(rows, offsets[1:], end_symbol),
            offsets + np.arange(n_seq + 1, dtype=offsets.dtype))


def run(model, sequences, lengths=None, n_threads=None, end_symbol=None, decode=True):
    """The batch pass (see the module docstring). ``decode=False`` skips Viterbi."""
    c = model._cache or model._prepare()
    threads = _batch._threads(c, n_threads)
    emission, rows, offsets, n_frames = _batch.gather(model, c, sequences, lengths, True)
    offsets = np.ascontiguousarray(offsets, dtype=np.intp)
    scored_offsets = offsets
    if end_symbol is not None:
        rows, scored_offsets = append_end(np.asarray(rows, dtype=np.intp), offsets, end_symbol)
        n_frames = len(rows)
    n_seq = len(offsets) - 1
    out = BatchPass()
    out.loglik = np.empty(n_seq)
    _, out.steps = _trellis.forward_steps(c.chain, emission, rows, scored_offsets, c.scaling,
                                          out.loglik, threads)
    out.scored_offsets = scored_offsets
    out.offsets = offsets
    out.end_symbol = end_symbol
    out.n_threads = max(threads, 1)  # the reasons' scans: automatic (< 0) -> one thread
    out.states = None
    if decode:
        viterbi = _decoders.viterbi_kernel("full", c.n_components, scored_offsets, n_frames)
        _, states = viterbi(c.chain, emission, rows, scored_offsets, np.empty(n_seq), threads,
                            False)
        out.states = states if end_symbol is None else np.delete(states, scored_offsets[1:] - 1)
    return out
