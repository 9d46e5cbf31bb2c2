"""StreamScorer and StreamDecoder: a model's observations in, the stream kernels' arrays out.

The stream kernels (csrc/_stream_scorer.pyx, csrc/_stream_decoder.pyx; what they take is
in csrc/_stream_common.pxd) know arrays only. Each public class here is its kernel plus
a constructor that resolves the model once (``kernel_inputs``):

* the compiled chain, captured now (the snapshot: later assignments to the model build
  a new cache and never reach an existing stream);
* the cached log-emission table when the model's symbols index one (``c.symbols``, a
  CategoricalHMM without its own ``_compute_log_likelihood``): pushing one symbol, or a
  ready intp array of symbols, then runs in compiled code only;
* ``read``, which the kernel calls for every other push: it validates the whole push
  with the model's own code, so a bad observation raises what ``model.score`` raises on
  it (positions are indices into the push), and returns the symbols or the push's
  log-emissions computed a block at a time (``model._emission_blocks``: the family's
  compiled density, or hmmlearn's ``_compute_log_likelihood`` hook).

What one observation is comes from ``model._observation_kind()`` (DECISIONS §14): for
"symbols" an integer is one observation and a 1-D array (or hmmlearn's (n, 1) column) a
chunk; otherwise a 1-D array of n_features numbers is one frame and a 2-D array a chunk.
"""

import numpy as np

from . import _stream_decoder, _stream_scorer
from . import _validation as V
from ._base import BaseHMM
from ._errors import HMMTypeError


def kernel_inputs(model):
    """(chain, table, read) for a stream kernel over ``model``'s current parameters.

    Raises HMMTypeError for an object that is not an hmmfast model, and what
    ``model.score`` raises for a model without valid parameters.
    """
    if not isinstance(model, BaseHMM):
        raise HMMTypeError(
            f"model must be an hmmfast model (a BaseHMM), got {type(model).__name__}")
    c = model._cache or model._prepare()
    if c.symbols is not None:
        return c.chain, c.symbols[0], _symbol_reader  # (M, N) log P(symbol | state)
    return c.chain, None, _block_reader(model, c, model._observation_kind() == "symbols")


def _symbol_push(obs):
    """A push of symbols as an array with at least one dimension, or None when empty."""
    if isinstance(obs, np.ndarray):
        arr = obs
    else:
        try:
            arr = np.asarray(obs)
        except (TypeError, ValueError, OverflowError):
            V.symbols(obs)  # raises the library's error for it
            raise
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.size == 0:
        return None
    return arr


def _symbol_reader(obs):
    """``read`` for a table stream: None or a C-contiguous (T,) intp array of symbols
    (the kernel range-checks them against its table)."""
    arr = _symbol_push(obs)
    return None if arr is None else V.symbols(arr)


def _block_reader(model, c, symbols):
    """``read`` for a stream without a table: None or (T, log_emissions(a, b))."""

    def read(obs):
        if symbols:
            arr = _symbol_push(obs)
            if arr is None:
                return None
        else:
            arr = V._real_array("X", obs)
            if arr.ndim <= 1:
                arr = arr.reshape(1, -1)  # one frame of n_features values (a scalar: one)
            elif arr.ndim == 2 and arr.shape[0] == 0:
                return None
        return model._emission_blocks(c, arr)

    return read


class StreamScorer(_stream_scorer.StreamScorerKernel):
    """Running log-likelihood and filtered state distribution of an observation stream.

    Created by ``model.stream_scorer()``. Memory is O(N) for any stream length.

    Parameters
    ----------
    model : hmmfast model
        Any fitted hmmfast model. Its compiled parameters are captured now: assigning new
        parameters to the model later does not affect this stream (create a new one). A
        subclass that supplies its own ``_compute_log_likelihood`` (hmmlearn's
        custom-emission hook) is called through that hook, which reads what it reads.

    Notes
    -----
    Observations: for a CategoricalHMM an integer (Python or NumPy) is one observation and
    a 1-D integer array or list (or hmmlearn's (n, 1) array) a chunk; for the feature-vector
    families a 1-D array of ``n_features`` numbers is one frame and a 2-D array a chunk of
    frames (missing frames, with ``missing="marginalize"``, as in ``score``). An empty
    chunk is a no-op. Invalid observations raise what ``model.score``
    raises on them (positions in messages are indices into the pushed chunk) and leave
    the stream unchanged: a chunk is validated in full before any of it is applied.

    The arithmetic is the exact log-space forward recursion (see csrc/_stream_scorer.pyx):
    after any sequence of pushes, the running value equals ``model.score`` of the
    concatenated observations to rounding (1e-9 relative is tested on streams of 100,000
    steps).

    An observation the model cannot produce after the ones before it makes the running
    log-likelihood -inf and sets ``impossible``; later pushes are still validated and
    counted, and return -inf; ``reset()`` starts over.

    Not for concurrent use: one thread at a time per stream.

    Examples
    --------
    >>> import hmmfast
    >>> model = hmmfast.CategoricalHMM(2)
    >>> model.startprob_ = [0.6, 0.4]
    >>> model.transmat_ = [[0.7, 0.3], [0.4, 0.6]]
    >>> model.emissionprob_ = [[0.9, 0.1], [0.2, 0.8]]
    >>> scorer = model.stream_scorer()
    >>> round(scorer.push(0), 4)           # log P(o_1)
    -0.478
    >>> round(scorer.push([1, 1]), 4)      # a chunk: log P(o_1..o_3) = model.score([0, 1, 1])
    -2.3019
    >>> scorer.posterior.round(4)          # P(state_3 | o_1..o_3)
    array([0.0958, 0.9042])
    """

    __slots__ = ("_model",)

    def __init__(self, model):
        super().__init__(*kernel_inputs(model))
        self._model = model

    @property
    def model(self):
        """The model this stream was created from (its parameters as they were then are
        what the stream uses)."""
        return getattr(self, "_model", None)


class StreamDecoder(_stream_decoder.StreamDecoderKernel):
    """Exact online Viterbi decoding of an observation stream.

    Created by ``model.stream_decoder(max_lag=None)``. ``push`` returns the states that
    have become final, ``flush`` the rest at the end of the stream; the concatenation of
    everything returned equals ``model.decode(X)[1]`` of the concatenated observations
    exactly, ties included (without ``max_lag``).

    Parameters
    ----------
    model : hmmfast model
        Any fitted hmmfast model; its compiled parameters are captured now (later
        assignments to the model do not affect this decoder).
    max_lag : int >= 0 or None
        None (default): exact decoding. A state is emitted once every surviving partial
        path agrees on it (the paths have coalesced); memory is bounded by the unresolved
        ``window``, which stays short for a model whose paths coalesce (most mixing
        models) but grows without bound for one whose paths never merge (e.g. an identity
        transition matrix with several possible states).
        An int L: fixed-lag decoding. Whenever more than L steps are unresolved, the
        oldest is emitted from the best path ending at the current step (ties to the lowest
        state), so every state comes out at most L steps after its observation and the
        window never exceeds L. Such a state may differ from offline Viterbi (a later
        observation could have preferred another path through it), and consecutive forced
        states need not be joined by an allowed transition. Where the paths coalesce
        within L steps the output is exact.
    beam, max_active, min_active : optional
        Beam pruning, as for ``model.decode``: after each step only the states within
        ``beam`` (natural log) of the step's best survive, at most ``max_active`` and at
        least ``min_active`` of them (the rules of csrc/_prune.pxd). Every state is still
        scored (a dense step), pruned ones are set to -inf, so the output equals
        ``model.decode(X, beam=..., max_active=..., min_active=...)`` on the concatenated
        observations, and pruning also shortens the window: fewer surviving paths
        coalesce sooner. When pruning has removed every path that could explain an
        observation, the push raises :class:`hmmfast.PruningError` (widen the beam).

    Notes
    -----
    Observations are given as for :class:`StreamScorer`; invalid ones raise what
    ``model.decode`` raises and leave the decoder unchanged. An observation that no
    surviving path can explain raises :class:`hmmfast.ImpossibleSequenceError` (its
    ``step`` is the observation's index in the stream, its ``position`` the index in the
    pushed chunk) and leaves the decoder as it was before the push; the stream can go on
    with other observations. The algorithm (convergence trace, ring buffer, fixed lag,
    pruning) is described in csrc/_stream_decoder.pyx.

    Not for concurrent use: one thread at a time per decoder.

    Examples
    --------
    With ``model`` as in :class:`StreamScorer`:

    >>> decoder = model.stream_decoder()
    >>> [decoder.push(x).tolist() for x in (0, 1, 1, 0)]
    [[], [0], [1], [1]]
    >>> decoder.window, decoder.flush().tolist()
    (1, [0])
    >>> model.decode([0, 1, 1, 0])[1].tolist()
    [0, 1, 1, 0]
    """

    __slots__ = ("_model",)

    def __init__(self, model, max_lag=None, *, beam=None, max_active=None, min_active=None):
        lag = -1 if max_lag is None else V.check_n("max_lag", max_lag, minimum=0)
        pruning = V.pruning(beam, max_active, min_active)
        super().__init__(*kernel_inputs(model), lag, pruning)
        self._model = model

    @property
    def model(self):
        """The model this decoder was created from (its parameters as they were then are
        what the decoder uses)."""
        return getattr(self, "_model", None)
