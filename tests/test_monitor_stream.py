"""SessionStream's early flags, calibrated by steps read (issue 24).

A long-session simulator (a sticky 4-state chain, sessions of 20-500 steps): the share
of held-out normal sessions flagged early must be the anomalous percentile within
+-0.5 points, for sessions of 20-100 and of 100-500 steps and every ``normalize``
(a threshold set on whole sessions flagged 19-38 % of them). The flag step itself is
checked against an oracle: running scores from ``model.score`` of each prefix against
the cut-offs interpolated with ``numpy.interp``.
"""

import numpy as np
import pytest

import hmmfast
from hmmfast.monitor import AnomalyDetector


def sticky_model(seed=0, n=4, m=8, stay=0.9):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n) * (1 - stay) + np.eye(n) * stay
    model.emissionprob_ = rng.dirichlet(np.full(m, 0.8), size=n)
    return model


def draw(model, count, rng, lo, hi):
    return [model.sample(int(rng.integers(lo, hi + 1)), random_state=rng)[0][:, 0]
            for _ in range(count)]


def early_flags(det, sessions):
    stream = det.stream()
    flagged = []
    for x in sessions:
        stream.reset()
        for o in x.tolist():
            if stream.push(o) == "anomalous":
                break
        flagged.append(stream.flagged)
    return np.array(flagged)


@pytest.fixture(scope="module")
def long_sessions():
    model = sticky_model()
    rng = np.random.default_rng(1)
    train = draw(model, 3000, rng, 20, 500)
    held = {"20-100": draw(model, 1500, rng, 20, 100),
            "100-500": draw(model, 1500, rng, 100, 500)}
    return model, train, held


@pytest.mark.slow
@pytest.mark.parametrize("normalize", ["per_step", "none", "min_step"])
def test_early_flag_share_on_normal_sessions_is_the_tier(long_sessions, normalize):
    model, train, held = long_sessions
    det = AnomalyDetector(model, normalize=normalize).fit(train)
    for bucket, sessions in held.items():
        share = 100 * early_flags(det, sessions).mean()
        assert abs(share - det.anomalous) <= 0.5, (bucket, share)


@pytest.mark.parametrize("normalize", ["per_step", "none", "min_step"])
def test_flag_step_matches_prefix_scores_against_interpolated_cutoffs(normalize):
    model = sticky_model(2)
    rng = np.random.default_rng(3)
    train = draw(model, 600, rng, 20, 120)
    det = AnomalyDetector(model, normalize=normalize, suspicious=20.0, anomalous=10.0,
                          min_steps=8).fit(train)
    table = det.stream_cutoffs_
    points = np.array(table["steps"])
    cuts = np.array(table["anomalous"])
    assert points[0] == 8 and np.all(np.diff(points) > 0)
    odd = draw(sticky_model(4), 40, rng, 20, 150)
    stream = det.stream()
    n_flagged = 0
    for x in odd + train[:40]:
        stream.reset()
        for o in x.tolist():
            stream.push(o)
        prefix_scores = []
        for t in range(1, len(x) + 1):
            if normalize == "min_step":
                prefix_scores.append(min(model.score(x[:k]) - model.score(x[:k - 1])
                                         if k > 1 else model.score(x[:1])
                                         for k in range(1, t + 1)))
            else:
                ll = model.score(x[:t])
                prefix_scores.append(ll / t if normalize == "per_step" else ll)
        expected = None
        for t in range(8, len(x) + 1):
            if t <= points[-1]:
                cut = np.interp(t, points, cuts)
            else:
                cut = cuts[-1] * (t / points[-1] if normalize == "none" else 1.0)
            if prefix_scores[t - 1] < cut - 1e-9 * abs(cut):
                expected = t
                break
            if prefix_scores[t - 1] < cut + 1e-9 * abs(cut):
                expected = "tie"
                break
        if expected != "tie":
            assert stream.flagged_at == expected, (stream.flagged_at, expected)
        n_flagged += stream.flagged
    assert n_flagged >= 10  # not vacuous


def test_stream_without_any_session_reaching_min_steps_uses_whole_session_cutoffs():
    model = sticky_model(5)
    rng = np.random.default_rng(6)
    train = draw(model, 300, rng, 3, 6)
    det = AnomalyDetector(model, min_steps=10).fit(train)
    assert det.stream_cutoffs_ is None
    stream = det.stream()
    x = draw(model, 1, rng, 12, 12)[0]
    for o in x[:11].tolist():
        level = stream.push(o)
    assert level in ("normal", "suspicious", "anomalous")
    assert stream.end() == det.predict([x[:11]]).level[0]
