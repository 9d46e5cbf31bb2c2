"""SegmentedDetector (issue 24): a shared unfitted model is refused, per-segment rates,
persistence for the service."""

import json

import numpy as np
import pytest

import hmmfast
from hmmfast.monitor import AnomalyDetector, SegmentedDetector


def model_(seed, n=3, m=5):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n)
    model.emissionprob_ = rng.dirichlet(np.ones(m), size=n)
    return model


def draw(model, count, rng):
    return [model.sample(int(rng.integers(5, 20)), random_state=rng)[0][:, 0]
            for _ in range(count)]


def test_one_unfitted_model_shared_by_two_segments_is_refused():
    shared = hmmfast.CategoricalHMM(3, n_iter=5, random_state=0)
    with pytest.raises(hmmfast.ParameterError, match="share one unfitted model"):
        SegmentedDetector({"a": AnomalyDetector(shared), "b": AnomalyDetector(shared)})
    det = AnomalyDetector(model_(1))
    with pytest.raises(hmmfast.ParameterError, match="same AnomalyDetector"):
        SegmentedDetector({"a": det, "b": det}).fit(
            draw(model_(1), 10, np.random.default_rng(0)), ["a"] * 5 + ["b"] * 5)


def test_a_fitted_model_shared_with_per_segment_thresholds_and_rates():
    model = model_(2)
    other = model_(3)
    rng = np.random.default_rng(4)
    a, b = draw(model, 1000, rng), draw(other, 1000, rng)
    seg = SegmentedDetector({"a": AnomalyDetector(model), "b": AnomalyDetector(model)})
    seg.fit(a + b, ["a"] * 1000 + ["b"] * 1000)
    ta, tb = seg.detectors["a"].thresholds_, seg.detectors["b"].thresholds_
    assert ta != tb
    held_a, held_b = draw(model, 2000, rng), draw(other, 2000, rng)
    rates = seg.rates(held_a + held_b, ["a"] * 2000 + ["b"] * 2000)
    codes_a = seg.detectors["a"].predict(held_a).level_code
    assert rates["a"] == {"sessions": 2000, "suspicious": np.mean(codes_a >= 1),
                          "anomalous": np.mean(codes_a == 2)}
    for key in ("a", "b"):  # held-out normal sessions: near the calibrated percentiles
        assert abs(rates[key]["anomalous"] - 0.01) < 0.01
        assert abs(rates[key]["suspicious"] - 0.05) < 0.02
    back = SegmentedDetector.from_dict(json.loads(json.dumps(seg.to_dict())), model)
    rec, ref = back.predict(held_b[:50], ["b"] * 50), seg.predict(held_b[:50], ["b"] * 50)
    np.testing.assert_array_equal(rec.score, ref.score)
    np.testing.assert_array_equal(rec.level, ref.level)
    two = SegmentedDetector({"a": AnomalyDetector(model).fit(a),
                             "b": AnomalyDetector(other).fit(b)})
    with pytest.raises(hmmfast.ParameterError, match="one shared"):
        two.to_dict()
