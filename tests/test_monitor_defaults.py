"""AnomalyDetector's defaults (issue 24): session ends, combined evidence, calibrated tiers.

Oracles: the end step from ``predict_proba`` (the posterior at the last step) and the
learned exit probabilities recomputed from ``predict_proba`` per session; end symbols
from ``model.score`` of the session with the symbol appended; tier shares counted on the
training sessions themselves; ties built on purpose.
"""

import json

import numpy as np
import pytest

import hmmfast
from hmmfast.monitor import AnomalyDetector

N, M = 3, 6


def chain_model(seed, n=N, m=M, stay=0.7):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n) * (1 - stay) + np.eye(n) * stay
    model.emissionprob_ = rng.dirichlet(np.full(m, 0.8), size=n)
    return model


def draw(model, count, rng, lo=5, hi=40):
    return [model.sample(int(rng.integers(lo, hi)), random_state=rng)[0][:, 0]
            for _ in range(count)]


# ---------------------------------------------------------------- session ends


def test_fitted_model_learns_exit_probabilities_from_last_step_posteriors():
    model = chain_model(0)
    rng = np.random.default_rng(1)
    train = draw(model, 300, rng)
    det = AnomalyDetector(model).fit(train)
    assert det.end_symbol_ is None
    # oracle: posteriors of each session from the model's own predict_proba
    ends, visits = np.zeros(N), np.zeros(N)
    for x in train:
        post = model.predict_proba(x)
        ends += post[-1]
        visits += post.sum(axis=0)
    np.testing.assert_allclose(det.exit_prob_, (ends + 0.5) / (visits + 1.0), rtol=1e-9)
    test = draw(model, 40, rng)
    rec = det.predict(test)
    for s, x in enumerate(test):
        end = np.log(model.predict_proba(x)[-1] @ det.exit_prob_)
        assert rec.end_step[s] == pytest.approx(end, rel=1e-9)
        assert rec.loglik[s] == pytest.approx(model.score(x), rel=1e-9)
        # the end step is one more scored step of the per-step score
        assert rec.score[s] == pytest.approx((model.score(x) + end) / (len(x) + 1), rel=1e-9)


def test_exit_step_matches_on_a_gaussian_model_and_a_sparse_chain():
    rng = np.random.default_rng(2)
    g = hmmfast.GaussianHMM(2)
    g.startprob_ = [0.6, 0.4]
    g.transmat_ = [[0.9, 0.1], [0.2, 0.8]]
    g.means_ = [[0.0], [3.0]]
    g.covars_ = [[1.0], [0.5]]
    train = [g.sample(int(rng.integers(5, 30)), random_state=rng)[0] for _ in range(200)]
    det = AnomalyDetector(g).fit(train)
    rec = det.predict(train[:20])
    for s, x in enumerate(train[:20]):
        end = np.log(g.predict_proba(x)[-1] @ det.exit_prob_)
        assert rec.end_step[s] == pytest.approx(end, rel=1e-9)
    from scipy import sparse

    model = chain_model(3)
    train = draw(model, 200, rng)
    dense = AnomalyDetector(model).fit(train)
    model.transmat_ = sparse.csr_matrix(model.transmat_)
    sparse_det = AnomalyDetector(model).fit(train)
    np.testing.assert_allclose(sparse_det.predict(train).score, dense.predict(train).score,
                               rtol=1e-12)


@pytest.mark.filterwarnings("ignore::hmmfast.ConvergenceWarning")
def test_a_session_that_stops_early_scores_low_without_knowing_about_end_symbols():
    """A left-to-right chain whose sessions end only in the last state: a session cut
    in the first state is odd only in where it ends, and the default detector sees it."""
    model = hmmfast.CategoricalHMM(3)
    model.startprob_ = [1.0, 0.0, 0.0]
    model.transmat_ = [[0.8, 0.2, 0.0], [0.0, 0.8, 0.2], [0.0, 0.0, 1.0]]
    model.emissionprob_ = [[0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0], [0, 0, 0.5, 0.5]]
    rng = np.random.default_rng(4)
    full = []
    while len(full) < 600:  # sessions that end in the last state
        x, states = model.sample(int(rng.integers(15, 25)), random_state=rng)
        if states[-1] == 2:
            full.append(x[:, 0])
    cut = [x[:3] for x in full[400:]]  # three pages of the first phase
    for fitted in (True, False):
        m = model if fitted else hmmfast.CategoricalHMM(3, n_iter=50, random_state=0)
        det = AnomalyDetector(m).fit(full[:400])
        assert (det.end_symbol_ is None) == fitted
        rec = det.predict(cut)
        assert np.mean(rec.level == "anomalous") > 0.9
        normal_ends = det.predict(full[:400]).end_step
        assert np.median(rec.end_step) < np.percentile(normal_ends, 1)
        off = AnomalyDetector(m, end_symbol=None).fit(full[:400])
        assert np.mean(off.predict(cut).level == "anomalous") < 0.5  # mostly blind without


@pytest.mark.filterwarnings("ignore::hmmfast.ConvergenceWarning")
def test_auto_end_symbol_for_a_categorical_model_the_detector_trains():
    rng = np.random.default_rng(5)
    truth = chain_model(6)
    train = draw(truth, 300, rng)
    model = hmmfast.CategoricalHMM(N, n_iter=20, random_state=0)
    det = AnomalyDetector(model).fit(train)
    largest = max(int(x.max()) for x in train)
    assert det.end_symbol_ == largest + 1 and model.n_features == largest + 2
    assert det.exit_prob_ is None
    rec = det.predict(train[:20])
    for s, x in enumerate(train[:20]):
        full = np.append(x, det.end_symbol_)
        assert rec.score[s] == pytest.approx(model.score(full) / len(full), rel=1e-12)
        assert rec.end_step[s] == pytest.approx(model.score(full) - model.score(x), rel=1e-9)
    # a model with a larger n_features: the end symbol is the next free one
    wide = hmmfast.CategoricalHMM(N, n_features=M + 3, n_iter=5, random_state=0)
    assert AnomalyDetector(wide).fit(train).end_symbol_ == M + 3
    assert wide.n_features == M + 4
    with pytest.raises(hmmfast.HMMInputError, match="end-of-session symbol"):
        det.predict([np.array([0, det.end_symbol_])])
    # persisted: predict after from_dict appends it too
    back = AnomalyDetector.from_dict(json.loads(json.dumps(det.to_dict())), model)
    np.testing.assert_array_equal(back.predict(train[:20]).score, rec.score)


def test_end_symbol_none_switches_the_end_step_off():
    model = chain_model(7)
    rng = np.random.default_rng(8)
    train = draw(model, 200, rng)
    det = AnomalyDetector(model, end_symbol=None).fit(train)
    assert det.end_symbol_ is None and det.exit_prob_ is None
    rec = det.predict(train[:10])
    assert np.isnan(rec.end_step).all()
    np.testing.assert_allclose(rec.score, [model.score(x) / len(x) for x in train[:10]],
                               rtol=1e-12)
    with pytest.raises(hmmfast.ParameterError, match="auto"):
        AnomalyDetector(model, end_symbol="last")


# ---------------------------------------------------------------- combined evidence


@pytest.mark.parametrize("normalize", ["per_step", "none", "min_step"])
def test_tier_shares_on_training_sessions_equal_the_percentiles(normalize):
    model = chain_model(9)
    rng = np.random.default_rng(10)
    train = draw(model, 2000, rng)
    det = AnomalyDetector(model, suspicious=5.0, anomalous=1.0, normalize=normalize).fit(train)
    codes = det.predict(train).level_code
    assert np.sum(codes == 2) == 20  # round(1 % of 2000)
    assert np.sum(codes >= 1) == 100
    # every anomalous session names evidence beyond the anomalous cut-offs
    rec = det.predict(train)
    for s in np.flatnonzero(codes == 2):
        for name in rec.reason[s].split(","):
            cut = det.cutoffs_["anomalous"][name]
            value = rec[name][s]
            low = name in ("score", "deviation", "end_step")
            assert (value <= cut) if low else (value > cut), (name, value, cut)
    assert set(rec.reason[codes == 0]) == {""}


def test_path_evidence_decides_levels_scrapers_stuck_in_a_plausible_state():
    """Sessions stuck in one state for long: every step is plausible (the per-step score
    is normal), the longest run is not; the level must read it."""
    model = hmmfast.CategoricalHMM(2)
    model.startprob_ = [0.5, 0.5]
    model.transmat_ = [[0.7, 0.3], [0.3, 0.7]]
    model.emissionprob_ = [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]
    rng = np.random.default_rng(11)
    train = [model.sample(int(rng.integers(10, 40)), random_state=rng)[0][:, 0]
             for _ in range(1000)]
    stuck = [rng.integers(0, 2, size=int(rng.integers(30, 40))) for _ in range(200)]
    det = AnomalyDetector(model).fit(train)
    rec = det.predict(stuck)
    assert np.mean(rec.level == "anomalous") > 0.95
    assert all("longest_run" in r for r in rec.reason[rec.level == "anomalous"])
    score_only = AnomalyDetector(model, evidence=("score",)).fit(train)
    assert np.mean(score_only.predict(stuck).level == "anomalous") < 0.1


def test_min_step_ties_never_make_a_tier_unreachable():
    """3 % of training sessions tie at the smallest min_step (they start with the rare
    symbol 2, log P = log 0.03 for every one of them, bit for bit); strictly below that
    value never fires, so the tie is broken by the log-likelihood per step."""
    model = hmmfast.CategoricalHMM(3)
    model.startprob_ = [0.485, 0.485, 0.03]
    model.transmat_ = [[0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.5, 0.5, 0.0]]
    model.emissionprob_ = [[0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 1.0]]
    rng = np.random.default_rng(12)
    train = [model.sample(int(rng.integers(5, 15)), random_state=rng)[0][:, 0]
             for _ in range(3000)]
    det0 = AnomalyDetector(model, normalize="min_step", evidence=("score",),
                           end_symbol=None).fit(train)
    scores = det0.predict(train).score
    lowest = scores.min()
    assert lowest == np.log(0.03) or lowest == pytest.approx(np.log(0.03), rel=1e-15)
    assert np.mean(scores == lowest) > 0.02  # the tie covers the 1st percentile
    assert np.mean(scores < np.percentile(scores, 1.0)) == 0  # the old rule: unreachable
    codes = det0.predict(train).level_code
    assert np.sum(codes == 2) == 30 and np.sum(codes >= 1) == 150
    assert det0.cutoffs_["anomalous"]["tie"] > -np.inf
    held = [model.sample(int(rng.integers(5, 15)), random_state=rng)[0][:, 0]
            for _ in range(3000)]
    share = np.mean(det0.predict(held).level_code == 2)
    assert 0.003 < share < 0.02


def test_bad_evidence_names():
    model = chain_model(13)
    with pytest.raises(hmmfast.ParameterError, match="evidence"):
        AnomalyDetector(model, evidence=("longest_run",))
    with pytest.raises(hmmfast.ParameterError, match="evidence"):
        AnomalyDetector(model, evidence=("score", "speed"))


@pytest.mark.filterwarnings("ignore::hmmfast.ConvergenceWarning")
def test_refitting_keeps_the_end_symbol_the_detector_trained_with():
    rng = np.random.default_rng(14)
    truth = chain_model(15)
    train = draw(truth, 200, rng)
    model = hmmfast.CategoricalHMM(N, n_iter=10, random_state=0)
    det = AnomalyDetector(model).fit(train)
    end = det.end_symbol_
    det.fit(draw(truth, 200, rng))  # recalibrate on new normal sessions
    assert det.end_symbol_ == end and det.exit_prob_ is None
