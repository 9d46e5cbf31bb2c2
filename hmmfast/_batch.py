"""Many sequences in one kernel call: score_batch and decode_batch.

Sequences are concatenated once (CategoricalHMM: one memcpy per kernel-ready sequence,
csrc/_emissions.pyx ``gather_symbols``) with an offsets array, and every kernel runs over
all of them at once, across threads (``n_threads``; one sequence never starts a team).
Results are per sequence and equal per-sequence calls exactly: the kernels compute each
sequence independently, in the same order of operations.
"""

import numpy as np

from . import _decoders, _emissions, _trellis
from . import _validation as V
from ._errors import HMMInputError, HMMTypeError, ParameterError, locate, reworded
from ._threads import team_request

ERRORS = ("raise", "mark")


def _threads(c, n_threads):
    return c.n_threads if n_threads is None else team_request(n_threads)


def gather(model, c, sequences, lengths, scaled):
    """(emission, rows, offsets, n_frames) for a batch, or None for an empty batch.

    ``sequences`` is a list or tuple of arrays, one per sequence; with ``lengths`` it is
    instead X, the concatenation (hmmlearn's convention, by keyword only).
    """
    if lengths is not None:
        emission, rows, n = model._frames(c, sequences, scaled)
        return emission, rows, V.lengths_to_offsets(lengths, n), n
    if isinstance(sequences, np.ndarray) or not isinstance(sequences, (list, tuple)):
        raise HMMTypeError(
            "sequences must be a list (or tuple) of arrays, one per sequence; pass the "
            "concatenated form by keyword: score_batch(X, lengths=lengths)")
    if len(sequences) == 0:
        return None
    X, offsets = concatenate(sequences, model._symbol_frames())
    try:
        emission, rows, n = model._frames(c, X, scaled)
    except (HMMInputError, HMMTypeError) as exc:
        locate(exc, offsets)  # a row of the concatenation: name its sequence too
        raise
    return emission, rows, offsets, n


def concatenate(sequences, symbols):
    """A non-empty list of sequences as one array and offsets, each sequence checked.

    Parameters
    ----------
    sequences : list or tuple of array-like
    symbols : bool
        True: symbol sequences, validated by ``V.symbols`` and copied into one intp
        array (csrc/_emissions.pyx ``gather_symbols``); False: feature arrays of shape
        (n_samples, n_features) (1-D: one feature), non-empty and sharing n_features.

    Returns
    -------
    X : ndarray, (T,) intp symbols or (T, n_features) features
    offsets : ndarray of shape (n_seq + 1,), intp

    Raises
    ------
    HMMInputError, HMMTypeError
        Naming the sequence (also as its ``sequence`` attribute).
    """
    if symbols:
        def convert(item, s):
            try:
                return V.symbols(item)
            except (HMMInputError, HMMTypeError) as exc:
                raise reworded(exc, f"sequence {s}: {exc}", sequence=s) from None
        return _emissions.gather_symbols(sequences, convert)
    arrays = []
    for s, item in enumerate(sequences):
        arr = np.asarray(item)
        if arr.ndim == 1:  # a sequence of scalar observations
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise HMMInputError(
                f"sequence {s} must be a non-empty (n_samples, n_features) array, got shape "
                f"{V._shape_str(arr.shape)}", sequence=s)
        arrays.append(arr)
    try:
        X = np.concatenate(arrays)
    except ValueError as exc:
        raise HMMInputError(f"sequences do not share one number of features ({exc})") from None
    offsets = np.zeros(len(arrays) + 1, dtype=np.intp)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    return X, offsets


def score_batch(model, sequences, n_threads=None, lengths=None, per_step=False):
    """See BaseHMM.score_batch."""
    c = model._cache or model._prepare()
    threads = _threads(c, n_threads)
    batch = gather(model, c, sequences, lengths, True)
    if batch is None:
        return (np.empty(0), []) if per_step else np.empty(0)
    emission, rows, offsets, _ = batch
    scores = np.empty(len(offsets) - 1)
    _trellis.forward(c.chain, emission, rows, offsets, c.scaling, scores, threads)
    if not per_step:
        return scores
    # the scores above are score()'s, bit for bit; the steps sum to them to rounding
    _, steps = _trellis.forward_steps(c.chain, emission, rows, offsets, c.scaling,
                                      np.empty(len(scores)), threads)
    return scores, _emissions.split_by_offsets(steps, offsets)


def decode_batch(model, sequences, n_threads=None, lengths=None, algorithm=None,
                 errors="raise", **pruning):
    """See BaseHMM.decode_batch.

    Unlike ``decode``, a continuous family's ``memory="checkpoint"`` here still builds
    the batch's whole (T, N) log-emission matrix (only the backpointers are
    checkpointed): batches are many short sequences decoded across threads, for which
    that matrix is small; decode one long sequence with ``decode`` (_checkpoint_blocks).
    """
    if errors not in ERRORS:
        raise ParameterError(f"errors must be one of {ERRORS}, got {errors!r}")
    choice = _decoders.choose(model.algorithm if algorithm is None else algorithm, **pruning)
    c = model._cache or model._prepare()
    threads = _threads(c, n_threads)
    batch = gather(model, c, sequences, lengths, choice.algorithm == "map")
    if batch is None:
        return np.empty(0), []
    emission, rows, offsets, n_frames = batch
    logprob = np.empty(len(offsets) - 1)
    _, states, impossible = _decoders.run(choice, c.chain, emission, rows, offsets, n_frames,
                                          c.scaling, logprob, threads, errors == "raise")
    paths = _emissions.split_by_offsets(states, offsets)
    for s in np.flatnonzero(impossible):  # only with errors="mark"
        paths[s] = states[:0]
    return logprob, paths
