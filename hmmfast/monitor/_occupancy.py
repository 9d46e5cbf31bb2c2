"""OccupancyMonitor: which decoded states production sessions actually use."""

import collections

import numpy as np

from .. import _validation as V
from .._errors import HMMInputError, HMMTypeError
from . import _checks
from ._reasons import path_reasons

#: A state is called dead only when the window holds enough frames that it would have
#: had at least this many at its baseline share (fewer: a quiet state, not a dead one).
DEAD_MIN_EXPECTED = 50


def _paths(state_paths, lengths, n_states):
    """(states (F,), offsets (S + 1,)) from a list of paths or a concatenation + lengths."""
    if lengths is None:
        if isinstance(state_paths, np.ndarray) or not isinstance(state_paths, (list, tuple)):
            raise HMMTypeError("state_paths must be a list (or tuple) of state arrays (as "
                               "decode_batch returns), or the concatenation with lengths=")
        arrays = [np.asarray(p).reshape(-1) for p in state_paths]
        arrays = [a for a in arrays if a.size]  # empty: an impossible session (errors="mark")
        if not arrays:
            return np.empty(0, np.intp), np.zeros(1, np.intp)
        states = np.concatenate(arrays)
        offsets = np.zeros(len(arrays) + 1, dtype=np.intp)
        np.cumsum([a.size for a in arrays], out=offsets[1:])
    else:
        states = np.asarray(state_paths).reshape(-1)
        offsets = V.lengths_to_offsets(lengths, states.size)
    if states.dtype.kind not in "iu":
        raise HMMTypeError(f"state_paths must hold integer state indices, got dtype "
                           f"{states.dtype}")
    bad = (states < 0) | (states >= n_states)
    if bad.any():
        i = int(np.argmax(bad))
        raise HMMInputError(f"state_paths hold state {states[i]} at position {i}: expected "
                            f"0 <= state < n_components={n_states}", position=i)
    return states.astype(np.intp, copy=False), offsets


def expected_switch_rate(model):
    """1 - sum_i pi_i A_ii: how often the model's own chain changes state, at stationarity."""
    pi = model.get_stationary_distribution()
    return float(1.0 - np.dot(pi, np.diag(model.transmat_)))


class OccupancyMonitor:
    """Decoded-state occupancy over a window of production sessions.

    A model that has drifted into using one state for everything (collapse), states that
    hardly fire any more (dead), or paths that flip state far more or less often than in
    training are signs that production no longer looks like what the model learnt. With
    a baseline (:meth:`fit` on training paths, or
    :meth:`AnomalyDetector.occupancy_monitor`) the verdicts are judged against it:

    * ``collapsed``: some state holds at least ``collapse_fraction`` of the window's frames
      *and* at least b + (1 - b) / 2 of them, b its training share (a healthy model whose
      paths sit 90 % in one state is collapsed only above 95 %);
    * ``dead_states``: states whose share fell below a tenth of their training share (19 %
      to 1 % is dead), once the window would have held ``DEAD_MIN_EXPECTED`` (50) of their
      frames at the training share.

    Without a baseline: one state at ``collapse_fraction`` or more, and states with no
    frame at all.

    Parameters
    ----------
    model : hmmfast model
        The model whose decoded paths are fed to ``update``.
    collapse_fraction : float
        A fraction in (0, 1] (default 0.8), see above.
    window : int, optional
        Keep the last ``window`` sessions (default 1,000, as ``hmmfast serve`` uses: a
        collapse that starts after any number of healthy sessions fills the window within
        ``window`` sessions; measured: reported 686 sessions after it starts, median of 10
        runs, README). None: everything since ``reset`` (a late collapse is then diluted by
        the healthy history and may never be reported).
    min_frames : int
        No verdict (``collapsed``, ``dead_states``, ``oscillating``) before the window
        holds this many frames (default 100).
    switch_tolerance : float
        ``oscillating`` when the window's switch rate is more than this factor above, or
        below 1/this of, the baseline (default 2.0).

    Attributes
    ----------
    baseline_occupancy_ : ndarray of shape (n_components,) or None
        The training paths' share of frames per state (:meth:`fit`).
    baseline_switch_rate_ : float
        From :meth:`fit` on training paths (Viterbi paths of normal sessions); until then
        the model chain's own rate, 1 - sum_i pi_i A_ii (decoded paths usually switch
        less than the chain, so fit is the better baseline).
    """

    def __init__(self, model, collapse_fraction=0.8, window=1_000, *, min_frames=100,
                 switch_tolerance=2.0):
        self.model = _checks.model(model)
        self.n_components = int(model.n_components)
        self.collapse_fraction = _checks.fraction("collapse_fraction", collapse_fraction,
                                                  high_open=False)
        self.window = None if window is None else _checks.integer("window", window, 1)
        self.min_frames = _checks.integer("min_frames", min_frames, 1)
        self.switch_tolerance = _checks.positive("switch_tolerance", switch_tolerance)
        if self.switch_tolerance < 1:
            raise HMMInputError(f"switch_tolerance must be >= 1 (a factor), got "
                                f"{switch_tolerance!r}")
        self.baseline_switch_rate_ = None
        self.baseline_occupancy_ = None
        self.reset()

    def reset(self):
        """Forget the production paths (the baseline stays)."""
        self._sessions = collections.deque()  # (counts (N,), switches, transitions)
        self._counts = np.zeros(self.n_components, dtype=np.int64)
        self._switches = 0
        self._transitions = 0
        self._n_paths = 0

    def _summaries(self, state_paths, lengths):
        states, offsets = _paths(state_paths, lengths, self.n_components)
        n_seq = len(offsets) - 1
        if n_seq == 0:
            return states, offsets, np.empty(0, np.intp), np.empty(0, np.intp)
        switches, _ = path_reasons(states, offsets)
        return states, offsets, switches, np.diff(offsets) - 1

    def fit(self, state_paths, *, lengths=None):
        """Set the baseline (switch rate, occupancy) from training paths. Returns self."""
        states, _, switches, transitions = self._summaries(state_paths, lengths)
        if states.size == 0:
            raise HMMInputError("state_paths is empty; expected training paths")
        self.baseline_switch_rate_ = float(switches.sum() / max(transitions.sum(), 1))
        self.baseline_occupancy_ = np.bincount(states, minlength=self.n_components) / states.size
        return self

    def update(self, state_paths, *, lengths=None):
        """Add decoded paths (a list of state arrays, e.g. ``decode_batch(...)[1]``; empty
        ones are skipped; or the concatenation with ``lengths=``). Returns self."""
        states, offsets, switches, transitions = self._summaries(state_paths, lengths)
        n_seq = len(offsets) - 1
        if self.window is None:
            self._counts += np.bincount(states, minlength=self.n_components)
            self._switches += int(switches.sum())
            self._transitions += int(transitions.sum())
        else:
            first = max(0, n_seq - self.window)  # older ones would leave at once
            for s in range(first, n_seq):
                counts = np.bincount(states[offsets[s]:offsets[s + 1]],
                                     minlength=self.n_components)
                self._sessions.append((counts, int(switches[s]), int(transitions[s])))
                self._counts += counts
                self._switches += int(switches[s])
                self._transitions += int(transitions[s])
            while len(self._sessions) > self.window:
                counts, sw, tr = self._sessions.popleft()
                self._counts -= counts
                self._switches -= sw
                self._transitions -= tr
        self._n_paths += n_seq
        return self

    # ---------------------------------------------------------------- verdicts

    @property
    def n_frames(self):
        """Frames (decoded steps) in the window."""
        return int(self._counts.sum())

    @property
    def occupancy(self):
        """ndarray of shape (n_components,): share of the window's frames in each state
        (zeros when empty)."""
        total = self._counts.sum()
        return self._counts / total if total else np.zeros(self.n_components)

    def _ready(self):
        return self.n_frames >= self.min_frames

    @property
    def collapsed(self):
        """True when one state holds at least ``collapse_fraction`` of the frames and, with
        a baseline, at least b + (1 - b) / 2 of them (b: its training share)."""
        if not self._ready():
            return False
        share = self.occupancy
        hit = share >= self.collapse_fraction
        base = self.baseline_occupancy_
        if base is not None:
            hit &= share >= base + (1.0 - base) / 2.0
        return bool(hit.any())

    @property
    def dead_states(self):
        """ndarray of the states that (almost) stopped firing: with a baseline, a share
        below a tenth of the training share (once the window would hold
        DEAD_MIN_EXPECTED of their frames); without, no frame at all. Empty before
        min_frames."""
        if not self._ready():
            return np.empty(0, dtype=np.intp)
        base = self.baseline_occupancy_
        if base is None:
            return np.flatnonzero(self._counts == 0)
        enough = base * self.n_frames >= DEAD_MIN_EXPECTED
        return np.flatnonzero(enough & (self.occupancy < base / 10.0))

    @property
    def switch_rate(self):
        """Share of the window's transitions where the decoded state changes (NaN when
        there are none)."""
        return self._switches / self._transitions if self._transitions else float("nan")

    @property
    def baseline_switch_rate(self):
        """The fitted baseline, or the model chain's own rate before :meth:`fit`."""
        if self.baseline_switch_rate_ is not None:
            return self.baseline_switch_rate_
        return expected_switch_rate(self.model)

    @property
    def oscillating(self):
        """True when the switch rate is beyond ``switch_tolerance`` of the baseline, either
        way (far more flipping, or paths frozen)."""
        if not self._ready() or not self._transitions:
            return False
        rate, base = self.switch_rate, self.baseline_switch_rate
        tol = self.switch_tolerance
        return bool(rate > tol * base or rate < base / tol)

    def state(self):
        """A JSON-safe dict for dashboards."""
        rate = self.switch_rate
        return {
            "occupancy": self.occupancy.tolist(),
            "collapsed": self.collapsed,
            "dead_states": self.dead_states.tolist(),
            "switch_rate": None if np.isnan(rate) else rate,
            "baseline_switch_rate": self.baseline_switch_rate,
            "oscillating": self.oscillating,
            "n_frames": self.n_frames,
            "n_paths": self._n_paths,
            "baseline_occupancy": (None if self.baseline_occupancy_ is None
                                   else self.baseline_occupancy_.tolist()),
        }

    def __repr__(self):
        return (f"OccupancyMonitor(n_components={self.n_components}, n_frames={self.n_frames}, "
                f"collapsed={self.collapsed}, dead_states={self.dead_states.tolist()})")
