"""OccupancyMonitor judged against its baseline, with a bounded default window (issue 24).

Paths are the sampled state sequences themselves (the monitor reads paths, whatever
decoded them), so the occupancy each window should show is known exactly.
"""

import numpy as np

import hmmfast
from hmmfast.monitor import AnomalyDetector, OccupancyMonitor


def chain(start, trans, m=4, seed=0):
    rng = np.random.default_rng(seed)
    n = len(start)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = start
    model.transmat_ = trans
    model.emissionprob_ = rng.dirichlet(np.ones(m), size=n)
    return model


def paths(model, count, rng, lo=8, hi=16):
    return [model.sample(int(rng.integers(lo, hi)), random_state=rng)[1]
            for _ in range(count)]


def healthy_model():
    return chain([0.4, 0.3, 0.3], [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])


def test_collapse_after_20000_healthy_sessions_is_reported_within_1000():
    model = healthy_model()
    rng = np.random.default_rng(1)
    train = paths(model, 2000, rng)
    healthy = paths(model, 20_000, rng)
    stuck = [np.zeros(len(p), dtype=np.intp) for p in paths(model, 1000, rng)]
    found = {}
    for window in (1_000, None):
        mon = OccupancyMonitor(model) if window == 1_000 else \
            OccupancyMonitor(model, window=None)
        mon.fit(train)
        for block in range(0, len(healthy), 500):
            mon.update(healthy[block:block + 500])
            assert not mon.collapsed and mon.dead_states.size == 0
        found[window] = None
        for s, path in enumerate(stuck):
            mon.update([path])
            if mon.collapsed:
                found[window] = s + 1
                break
    assert found[1_000] is not None and found[1_000] <= 1_000
    # the window the paths are counted in is the default; everything-since-reset dilutes
    assert found[None] is None


def test_a_healthy_model_mostly_in_one_state_is_not_collapsed():
    model = chain([0.9, 0.05, 0.05], [[0.96, 0.02, 0.02], [0.3, 0.7, 0.0], [0.3, 0.0, 0.7]])
    rng = np.random.default_rng(2)
    train, prod = paths(model, 1000, rng), paths(model, 1000, rng)
    mon = OccupancyMonitor(model).fit(train)
    mon.update(prod)
    assert 0.85 < mon.occupancy[0] < 0.95  # ~90 % in state 0, as in training
    assert not mon.collapsed and mon.dead_states.size == 0
    no_baseline = OccupancyMonitor(model).update(prod)  # the baseline-free rule
    assert no_baseline.collapsed
    # the same model really collapsing: above b + (1 - b) / 2 = 95 %
    mon.update([np.zeros(12, dtype=np.intp)] * 1000)
    assert mon.collapsed


def test_a_state_falling_from_19_to_1_percent_is_dead():
    model = chain([0.45, 0.36, 0.19], [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05],
                                       [0.05, 0.05, 0.9]])
    rng = np.random.default_rng(3)
    train = paths(model, 1000, rng)
    mon = OccupancyMonitor(model).fit(train)
    base = mon.baseline_occupancy_[2]
    assert 0.15 < base < 0.3
    prod = paths(model, 1000, rng)
    # relabel state 2's frames to state 0 until about 1 % of all frames are left in it
    flat = np.concatenate(prod)
    keep = np.flatnonzero(flat == 2)[: int(0.01 * flat.size)]
    moved = np.where(flat == 2, 0, flat)
    moved[keep] = 2
    new = np.split(moved, np.cumsum([len(p) for p in prod])[:-1])
    mon.update(new)
    assert abs(mon.occupancy[2] - 0.01) < 0.002
    assert mon.dead_states.tolist() == [2]
    assert OccupancyMonitor(model).update(new).dead_states.size == 0  # not exactly zero


def test_thin_states_are_not_called_dead_on_healthy_traffic():
    """States with ~2 % of the frames: a window of 1,000 healthy sessions never calls them
    dead (checked over 20 consecutive windows)."""
    model = chain([0.48, 0.48, 0.02, 0.02], [[0.9, 0.08, 0.01, 0.01], [0.08, 0.9, 0.01, 0.01],
                                             [0.3, 0.3, 0.4, 0.0], [0.3, 0.3, 0.0, 0.4]])
    rng = np.random.default_rng(4)
    mon = OccupancyMonitor(model).fit(paths(model, 2000, rng))
    assert mon.baseline_occupancy_[2:].max() < 0.03
    for _ in range(20):
        mon.update(paths(model, 1000, rng))
        assert mon.dead_states.size == 0 and not mon.collapsed


def test_detector_gives_an_occupancy_monitor_with_its_training_baseline():
    model = healthy_model()
    rng = np.random.default_rng(5)
    train = [model.sample(int(rng.integers(8, 16)), random_state=rng)[0][:, 0]
             for _ in range(500)]
    det = AnomalyDetector(model, end_symbol=None).fit(train)
    mon = det.occupancy_monitor()
    viterbi = np.concatenate(model.decode_batch(train)[1])
    np.testing.assert_allclose(mon.baseline_occupancy_,
                               np.bincount(viterbi, minlength=3) / viterbi.size, rtol=1e-12)
    assert mon.window == 1_000
    _, found = det.predict(train[:5], return_paths=True)
    for p, x in zip(found, train[:5], strict=True):
        np.testing.assert_array_equal(p, model.decode(x)[1])
