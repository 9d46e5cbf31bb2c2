"""Checkpointed Viterbi over dense log-emissions computed one segment at a time.

The continuous families (GaussianHMM, GMMHMM, PoissonHMM) hand the decoders a dense
(T, N) float64 log-emission matrix, 8x the uint8 backpointer table that
``_checkpoint.viterbi_checkpoint`` avoids. This driver never builds it: the caller gives
a function returning the log-emission rows of frames a..b-1, and each sequence of T
frames is decoded in segments of K frames (csrc/_checkpoint.pyx, "Segment-fed API"):

1. Forward over the sequence, one segment's rows at a time (``maxplus_forward``),
   copying delta at the start of every segment but the last (the checkpoints); the last
   segment runs with its backpointers and traces back from the first argmax
   (``viterbi_segment``).
2. The other segments in reverse order: their rows again, steps redone from the
   checkpoint with backpointers, traced back from the state the next segment starts at.

Working memory beyond the input: (ceil((T - 1) / K) - 1) N doubles of checkpoints, one
segment's rows and backpointers (K N (8 + b) bytes) and what the family's density needs
for K frames; K = max(MIN_SEGMENT, ceil(sqrt(T))) keeps it O(sqrt(T) N). Each step is
the full decoder's arithmetic and each row the same value (a frame's log-density does not
depend on its neighbours), so score and path are the full decoder's bit for bit, ties
included, and an impossible sequence raises the same error. Emissions are computed about
twice (2T - K frames), the max-plus steps too. Sequences run one after another (the
full-table kernels spread them across threads).
"""

import math

import numpy as np

from . import _checkpoint
from ._errors import _STATUS_IMPOSSIBLE, raise_kernel_status

#: Fewest frames per segment: each segment costs two Python-level kernel calls (a few
#: microseconds); 1024 frames keep that under a few percent of the work at N = 8.
MIN_SEGMENT = 1024


def segment_length(n_frames):
    """K, frames per segment for a sequence of T frames: max(MIN_SEGMENT, ceil(sqrt(T))),
    at most T - 1 (1 when T <= 2)."""
    return max(1, min(n_frames - 1, max(MIN_SEGMENT, math.isqrt(n_frames - 1) + 1)))


def viterbi_blocks(chain, n_states, log_emissions, offsets, n_frames, segment=None):
    """Most likely state path of every sequence, log-emissions fed segment by segment.

    Parameters
    ----------
    chain : PyCapsule
        From :func:`hmmfast._kernel_inputs.chain`.
    n_states : int
    log_emissions : callable
        ``log_emissions(a, b)`` returns the log-emissions of frames a..b-1 (global
        indices, a < b), ndarray of shape (b - a, n_states), float64, C-contiguous.
    offsets : ndarray of shape (n_seq + 1,), intp, or None
        Validated sequence boundaries (None: one sequence).
    n_frames : int
    segment : int, optional
        K for every sequence (tests); default ``segment_length(T)`` per sequence.

    Returns
    -------
    logprob : float
        Sum over sequences of log P(X_s, path_s).
    states : ndarray of shape (n_frames,), intp

    Raises
    ------
    hmmfast.ImpossibleSequenceError
        For the first sequence with probability zero, naming its first impossible step.
    """
    states = np.empty(n_frames, dtype=np.intp)
    bounds = [0, n_frames] if offsets is None else offsets.tolist()
    total = 0.0
    for s in range(len(bounds) - 1):
        total += _sequence(chain, n_states, log_emissions, bounds[s], bounds[s + 1], s,
                           segment or segment_length(bounds[s + 1] - bounds[s]), states)
    return total, states


def _sequence(chain, n, log_emissions, start, stop, seq, k, states):
    """Decode frames start..stop-1 into ``states``; returns the sequence's log P."""

    def check(bad, first_frame):
        if bad >= 0:
            raise_kernel_status(_STATUS_IMPOSSIBLE, seq, first_frame + bad, start, -1, 0)

    checkpoints = range(start, stop - 1, k)  # segment s: frames c + 1 .. min(c + k, stop - 1)
    saved = np.empty((max(len(checkpoints) - 1, 0), n))  # delta at every c but the last
    delta = np.empty(n)
    check(_checkpoint.maxplus_forward(chain, log_emissions(start, start + 1), delta, True),
          start)
    for s, c in enumerate(checkpoints[:-1]):
        saved[s] = delta
        check(_checkpoint.maxplus_forward(chain, log_emissions(c + 1, c + k + 1), delta),
              c + 1)
    last = checkpoints[-1] if checkpoints else start
    rows = log_emissions(last + 1, stop) if last + 1 < stop else np.empty((0, n))
    check(_checkpoint.viterbi_segment(chain, rows, delta, -1, states[last:stop]), last + 1)
    logprob = float(delta[states[stop - 1]])
    for s in range(len(checkpoints) - 2, -1, -1):
        c = checkpoints[s]
        check(_checkpoint.viterbi_segment(chain, log_emissions(c + 1, c + k + 1), saved[s],
                                          states[c + k], states[c:c + k + 1]), c + 1)
    return logprob
