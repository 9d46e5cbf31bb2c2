"""Prometheus metrics, in a registry of the app's own (never the global default).

Counters and the latency histogram are updated by the requests; the monitors' state
(drift, occupancy, the A/B arms, the versions held) is read from the model registry
when /metrics is scraped, so it is never stale.

==================================================  =====================================
``hmmfast_requests_total{endpoint,model}``          requests answered (any status)
``hmmfast_request_errors_total{endpoint,status}``   requests refused (4xx/5xx)
``hmmfast_request_seconds{endpoint,model}``         server time per request (histogram)
``hmmfast_sessions_total{endpoint}``                sessions in answered requests
``hmmfast_anomalies_total{level}``                  /v1/anomaly sessions by level
``hmmfast_drift_window_mean``                       live model: mean per-step score
``hmmfast_drift_alarm``                             live model: 1 while drifting
``hmmfast_occupancy_collapsed``                     live model: 1 when one state dominates
``hmmfast_state_occupancy{state}``                  live model: share of decoded frames
``hmmfast_ab_fraction``                             candidate's share (0: no split)
``hmmfast_ab_loglik_per_step{arm}``                 mean log-likelihood per step, per arm
``hmmfast_ab_sessions{arm}``                        sessions served per arm in the split
``hmmfast_ab_anomaly_rate{arm,level}``              share of each level per arm
``hmmfast_impossible_total{endpoint}``              sessions the model gives probability 0
``hmmfast_occupancy_dead_states``                  live model: states that stopped firing
``hmmfast_occupancy_oscillating``                  live model: 1 when the switch rate is off
``hmmfast_occupancy_switch_rate``                  live model: the window's switch rate
``hmmfast_occupancy_frames``                       live model: frames in the window
``hmmfast_model_info{model,role,class}``            1 per version held (live/held/candidate)
==================================================  =====================================

``model`` labels carry the first 12 hex digits of the fingerprint; a version's series are
removed when it is no longer held (after swaps and rollbacks, /metrics stays the size of
the versions held).
"""

import math

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

#: Latency buckets (seconds): fine below a millisecond, where single-session requests are.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.0025, 0.005, 0.0075, 0.01,
           0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LEVELS = ("normal", "suspicious", "anomalous")


def _value(x):
    return float("nan") if x is None else float(x)


class _StateCollector:
    """Gauges read from the model registry at scrape time."""

    def __init__(self, registry):
        self._registry = registry

    def describe(self):
        return []

    def collect(self):
        snap = self._registry.snapshot
        live = snap.live
        drift = live.monitors.drift
        occupancy = live.monitors.occupancy
        yield GaugeMetricFamily("hmmfast_drift_window_mean", "Live model: mean per-step "
                                "log-likelihood of the drift window", value=drift.mean)
        yield GaugeMetricFamily("hmmfast_drift_alarm", "Live model: 1 while the drift "
                                "window's mean is below the baseline's quantile",
                                value=float(drift.alarm))
        yield GaugeMetricFamily("hmmfast_occupancy_collapsed", "Live model: 1 when one "
                                "decoded state holds more than collapse_fraction of the "
                                "window's frames", value=float(occupancy.collapsed))
        occ = GaugeMetricFamily("hmmfast_state_occupancy", "Live model: share of the "
                                "occupancy window's decoded frames in each state",
                                labels=["state"])
        for state, share in enumerate(occupancy.occupancy.tolist()):
            occ.add_metric([str(state)], share)
        yield occ
        occ_state = occupancy.state()
        yield GaugeMetricFamily("hmmfast_occupancy_dead_states", "Live model: states whose "
                                "share of the window fell below a tenth of their training "
                                "share", value=float(len(occ_state["dead_states"])))
        yield GaugeMetricFamily("hmmfast_occupancy_oscillating", "Live model: 1 when the "
                                "window's switch rate is far from the baseline's",
                                value=float(occ_state["oscillating"]))
        yield GaugeMetricFamily("hmmfast_occupancy_switch_rate", "Live model: share of the "
                                "window's decoded transitions that change state",
                                value=_value(occ_state["switch_rate"]))
        yield GaugeMetricFamily("hmmfast_occupancy_frames", "Live model: decoded frames in "
                                "the occupancy window", value=float(occ_state["n_frames"]))
        split = snap.split
        yield GaugeMetricFamily("hmmfast_ab_fraction", "Share of sessions served by the A/B "
                                "candidate (0: no split)",
                                value=0.0 if split is None else split.fraction)
        loglik = GaugeMetricFamily("hmmfast_ab_loglik_per_step", "A/B split: mean "
                                   "log-likelihood per observation of each arm's sessions",
                                   labels=["arm"])
        sessions = GaugeMetricFamily("hmmfast_ab_sessions", "A/B split: sessions served by "
                                     "each arm", labels=["arm"])
        rates = GaugeMetricFamily("hmmfast_ab_anomaly_rate", "A/B split: share of each "
                                  "arm's /v1/anomaly sessions at each level",
                                  labels=["arm", "level"])
        if split is not None:
            for arm, stats in split.arms.items():
                state = stats.state()
                loglik.add_metric([arm], _value(state["loglik_per_step"]))
                sessions.add_metric([arm], state["sessions"])
                for level in LEVELS:
                    rates.add_metric([arm, level], _value(state["anomaly_rates"].get(level)))
        yield loglik
        yield sessions
        yield rates
        info = GaugeMetricFamily("hmmfast_model_info", "Model versions held: 1 per version, "
                                 "role live, held (for rollback) or candidate",
                                 labels=["model", "role", "class"])
        for i, version in enumerate(snap.versions):
            info.add_metric([version.short, "live" if i == 0 else "held",
                             version.header["class"]], 1.0)
        if split is not None:
            c = split.candidate
            info.add_metric([c.short, "candidate", c.header["class"]], 1.0)
        yield info


class Metrics:
    """The app's metrics; ``registry`` is its prometheus_client CollectorRegistry."""

    def __init__(self, model_registry):
        r = self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter("hmmfast_requests", "Requests answered, by endpoint and "
                                "live model", ["endpoint", "model"], registry=r)
        self.errors = Counter("hmmfast_request_errors", "Requests refused, by endpoint and "
                              "HTTP status", ["endpoint", "status"], registry=r)
        self.seconds = Histogram("hmmfast_request_seconds", "Server time per request, from "
                                 "the first body byte read to the reply built",
                                 ["endpoint", "model"], buckets=BUCKETS, registry=r)
        self.sessions = Counter("hmmfast_sessions", "Sessions in answered requests",
                                ["endpoint"], registry=r)
        self.anomalies = Counter("hmmfast_anomalies", "Sessions judged by /v1/anomaly, by "
                                 "level", ["level"], registry=r)
        for level in LEVELS:
            self.anomalies.labels(level)
        self.impossible = Counter("hmmfast_impossible", "Sessions the model gives "
                                  "probability zero (score -inf), by endpoint", ["endpoint"],
                                  registry=r)
        for endpoint in ("score", "decode", "anomaly"):
            self.impossible.labels(endpoint)
        r.register(_StateCollector(model_registry))
        self._children = {}
        self._held = set()
        self.forget(None, model_registry.snapshot)
        model_registry.listeners.append(self.forget)

    def forget(self, old, new):
        """Registry listener: remove the series of versions no longer held (live, for
        rollback or candidate), so /metrics does not grow with every swap."""
        held = {v.short for v in new.versions}
        if new.split is not None:
            held.add(new.split.candidate.short)
        self._held = held
        for key in [k for k in self._children if k[1] not in held]:
            del self._children[key]
            self.requests.remove(*key)
            self.seconds.remove(*key)

    def _child(self, endpoint, model):
        key = (endpoint, model)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (self.requests.labels(endpoint, model),
                                          self.seconds.labels(endpoint, model))
        return pair

    def prepare(self, endpoint, model):
        """Create the series of an endpoint and model at 0 (so they exist before use)."""
        self._child(endpoint, model)
        self.sessions.labels(endpoint)

    def observe(self, endpoint, model, seconds, status, n_sessions=0):
        """Count one answered request (per model only while ``model`` is held: a request
        that outlives its version's removal does not bring its series back)."""
        if model in self._held:
            requests, histogram = self._child(endpoint, model)
            requests.inc()
            if not math.isnan(seconds):
                histogram.observe(seconds)
        if status >= 400:
            self.errors.labels(endpoint, str(status)).inc()
        elif n_sessions:
            self.sessions.labels(endpoint).inc(n_sessions)

    def count_levels(self, levels):
        for level, n in levels.items():
            if n:
                self.anomalies.labels(level).inc(n)

    def count_impossible(self, endpoint, n):
        if n:
            self.impossible.labels(endpoint).inc(n)
