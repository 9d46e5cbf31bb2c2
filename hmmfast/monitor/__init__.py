"""Production monitoring and anomaly detection over hmmfast models.

Import it explicitly (``import hmmfast.monitor`` or ``from hmmfast import monitor``):
``import hmmfast`` does not load it. Built from the library's batch and stream kernels;
needs NumPy only (the plots need matplotlib: ``pip install "hmmfast[plot]"``).

* :class:`AnomalyDetector` — two tiers (suspicious / anomalous) calibrated on normal
  sessions from their scores, where they end and their Viterbi paths together, with the
  reason per session; early-terminating streams with cut-offs by steps read.
* :class:`SegmentedDetector` — one detector per user segment, sessions routed by key.
* :class:`LikelihoodDriftMonitor` — a sliding window of production scores against the
  baseline's distribution of window means.
* :class:`OccupancyMonitor` — decoded-state occupancy: collapse, dead states, oscillation.
* :class:`EmissionDriftCheck` — per-state emissions against the model: means, the
  categorical emission distribution, frame shares and variances (every family).
* :class:`PathLog` — a seeded sample of sessions' Viterbi paths as rotating JSON lines.
* :func:`plot_scores`, :func:`plot_state_strip`, :func:`plot_occupancy` — figures.
"""

from ._detector import NORMALIZE, AnomalyDetector
from ._drift import LikelihoodDriftMonitor
from ._emission_drift import EmissionDriftCheck
from ._occupancy import OccupancyMonitor
from ._pathlog import PathLog
from ._plots import plot_occupancy, plot_scores, plot_state_strip
from ._record import LEVELS, Record
from ._segmented import SegmentedDetector
from ._stream import SessionStream

__all__ = [
    "LEVELS",
    "NORMALIZE",
    "AnomalyDetector",
    "EmissionDriftCheck",
    "LikelihoodDriftMonitor",
    "OccupancyMonitor",
    "PathLog",
    "Record",
    "SegmentedDetector",
    "SessionStream",
    "plot_occupancy",
    "plot_scores",
    "plot_state_strip",
]
