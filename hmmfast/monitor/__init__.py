"""Production monitoring and anomaly detection over hmmfast models.

Import it explicitly (``import hmmfast.monitor`` or ``from hmmfast import monitor``):
``import hmmfast`` does not load it. Built from the library's batch and stream kernels;
needs NumPy only (the plots need matplotlib: ``pip install "hmmfast[plot]"``).

* :class:`AnomalyDetector` — two-tier thresholds (suspicious / anomalous) at percentiles of
  normal sessions' scores, reasons read from the Viterbi path, early-terminating streams.
* :class:`SegmentedDetector` — one detector per user segment, sessions routed by key.
* :class:`LikelihoodDriftMonitor` — a sliding window of production scores against the
  baseline's distribution of window means.
* :class:`OccupancyMonitor` — decoded-state occupancy: collapse, dead states, oscillation.
* :class:`EmissionDriftCheck` — per-state emission means against the model (Gaussian,
  GMM and Poisson families).
* :func:`plot_scores`, :func:`plot_state_strip`, :func:`plot_occupancy` — figures.
"""

from ._detector import NORMALIZE, AnomalyDetector
from ._drift import LikelihoodDriftMonitor
from ._emission_drift import EmissionDriftCheck
from ._occupancy import OccupancyMonitor
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
    "Record",
    "SegmentedDetector",
    "SessionStream",
    "plot_occupancy",
    "plot_scores",
    "plot_state_strip",
]
