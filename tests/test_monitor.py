"""hmmfast.monitor: AnomalyDetector, its reasons, streams, segments and persistence.

Oracles are independent of the code under test: thresholds from ``model.score`` per
session and ``numpy.percentile``; reasons from Viterbi paths of the pure-NumPy reference
(hmmfast._reference) read by plain Python; per-step values from a per-session
StreamScorer; percentiles from ``scipy.stats.percentileofscore(kind="mean")``.
"""

import itertools
import json

import numpy as np
import pytest
from factories import categorical, random_categorical, sessions
from hmm_oracles import random_model
from scipy.stats import percentileofscore

import hmmfast
from hmmfast import _reference
from hmmfast import _session_stats
from hmmfast.monitor import AnomalyDetector, SegmentedDetector, SessionStream

N, M = 4, 6


def peaked_model(seed, m=M):
    """This file's model: N states, Dirichlet(0.6) rows (a few likely pages per state)."""
    return random_categorical(seed, N, m, concentration=0.6)


def levels_oracle(scores, thresholds, tie=None, cutoffs=None):
    """Strictly below a threshold is that tier; with ``cutoffs`` (issue 24) a score equal
    to the threshold is below it when its tie key (log-likelihood per step) is below the
    tier's "tie"."""
    below = {}
    for tier in ("suspicious", "anomalous"):
        below[tier] = scores < thresholds[tier]
        if cutoffs is not None:
            below[tier] |= (scores == thresholds[tier]) & (tie < cutoffs[tier]["tie"])
    return np.where(below["anomalous"], "anomalous",
                    np.where(below["suspicious"], "suspicious", "normal"))


def ref_path(model, x):
    log_b = _reference.categorical_log_emissions(model.emissionprob_, x)
    return _reference.viterbi(model.startprob_, model.transmat_, log_b)[1]


def python_reasons(path):
    switches = sum(int(a != b) for a, b in itertools.pairwise(path))
    longest = max(len(list(g)) for _, g in itertools.groupby(path.tolist()))
    return switches / max(len(path) - 1, 1), longest


def stream_steps(model, x):
    scorer = model.stream_scorer()
    out = []
    for o in x:
        scorer.push(int(o))
        out.append(scorer.last_step)
    return np.array(out)


@pytest.fixture(scope="module")
def fitted():
    model = peaked_model(0)
    rng = np.random.default_rng(1)
    train = sessions(model, 400, rng, flat=True)
    test = (sessions(model, 150, rng, flat=True)
            + sessions(peaked_model(5), 50, rng, flat=True))
    return model, train, test


# ---------------------------------------------------------------- thresholds and levels


def order_statistic(scores, q):
    """The score below which exactly round(q % of n) training sessions lie (issue 24:
    the tier's share of training sessions is the percentile, without interpolation)."""
    return np.sort(scores)[round(q / 100 * len(scores))]


@pytest.mark.parametrize("normalize", ["per_step", "none", "min_step"])
def test_thresholds_are_numpy_percentiles_of_training_scores(fitted, normalize):
    model, train, test = fitted
    det = AnomalyDetector(model, suspicious=5.0, anomalous=1.0, normalize=normalize,
                          end_symbol=None, evidence=("score",)).fit(train)
    if normalize == "per_step":
        ind = np.array([model.score(x) / len(x) for x in train])
    elif normalize == "none":
        ind = np.array([model.score(x) for x in train])
    else:
        ind = np.array([stream_steps(model, x).min() for x in train])
    for tier, q in (("suspicious", 5.0), ("anomalous", 1.0)):
        np.testing.assert_allclose(det.thresholds_[tier], order_statistic(ind, q), rtol=1e-12)
    rec = det.predict(test)
    # levels follow the detector's own scores and thresholds exactly
    tie = rec.loglik / rec.length
    expected = levels_oracle(rec.score, det.thresholds_, tie, det.cutoffs_)
    np.testing.assert_array_equal(rec.level, expected)
    np.testing.assert_array_equal(rec.level_code, (expected != "normal").astype(int)
                                  + (expected == "anomalous"))
    # and the independently computed scores give the same levels
    ind_test = (np.array([model.score(x) / len(x) for x in test]) if normalize == "per_step"
                else np.array([model.score(x) for x in test]) if normalize == "none"
                else np.array([stream_steps(model, x).min() for x in test]))
    np.testing.assert_allclose(rec.score, ind_test, rtol=1e-9)
    untied = rec.score != det.thresholds_["suspicious"]
    untied &= rec.score != det.thresholds_["anomalous"]
    np.testing.assert_array_equal(rec.level[untied],
                                  levels_oracle(ind_test, det.thresholds_)[untied])
    assert {"normal", "anomalous"} <= set(rec.level)


def test_other_percentiles_and_equal_tiers(fitted):
    model, train, _ = fitted
    ind = np.array([model.score(x) / len(x) for x in train])
    det = AnomalyDetector(model, suspicious=20.0, anomalous=20.0, end_symbol=None,
                          evidence=("score",)).fit(train)
    assert det.thresholds_["suspicious"] == det.thresholds_["anomalous"]
    np.testing.assert_allclose(det.thresholds_["anomalous"], order_statistic(ind, 20.0),
                               rtol=1e-12)
    assert set(det.predict(train).level) == {"normal", "anomalous"}


def test_impossible_session_scores_minus_inf_and_is_anomalous():
    model = peaked_model(2)
    em = model.emissionprob_.copy()
    em[:, M - 1] = 0.0  # no state emits the last symbol
    em /= em.sum(axis=1, keepdims=True)
    model.emissionprob_ = em
    rng = np.random.default_rng(3)
    train = sessions(model, 200, rng, flat=True)
    for normalize in ("per_step", "none", "min_step"):
        det = AnomalyDetector(model, normalize=normalize).fit(train)
        bad = np.array([0, 1, M - 1, 2, 3])
        rec = det.predict([train[0], bad])
        assert rec.score[1] == -np.inf and rec.level[1] == "anomalous"
        assert rec.level_code[1] == 2
        assert rec.min_step[1] == -np.inf and rec.unseen[1] == 3  # the step and all after
        assert np.isnan(rec.switch_rate[1]) and np.isnan(rec.switch_rate_pct[1])
        assert rec.longest_run[1] == 0 and np.isnan(rec.longest_run_pct[1])
        assert np.isfinite(rec.score[0])


# ---------------------------------------------------------------- reasons


def test_reasons_match_python_oracle_on_reference_viterbi_paths(fitted):
    model, train, test = fitted
    det = AnomalyDetector(model, end_symbol=None).fit(train)
    rec = det.predict(test)
    train_rates, train_runs = zip(*(python_reasons(ref_path(model, x)) for x in train),
                                  strict=True)
    train_lengths = [len(x) for x in train]
    for s, x in enumerate(test):
        rate, longest = python_reasons(ref_path(model, x))
        assert rec.switch_rate[s] == pytest.approx(rate, abs=1e-15)
        assert rec.longest_run[s] == longest
        assert rec.length[s] == len(x)
        steps = stream_steps(model, x)
        assert rec.min_step[s] == pytest.approx(steps.min(), rel=1e-9)
        assert rec.unseen[s] == np.sum(steps < np.log(1e-6))
        assert rec.switch_rate_pct[s] == pytest.approx(
            percentileofscore(train_rates, rate, kind="mean"), abs=1e-9)
        assert rec.longest_run_pct[s] == pytest.approx(
            percentileofscore(train_runs, longest, kind="mean"), abs=1e-9)
        assert rec.length_pct[s] == pytest.approx(
            percentileofscore(train_lengths, len(x), kind="mean"), abs=1e-9)


def test_unseen_counts_near_zero_probability_pages():
    model = peaked_model(4)
    em = model.emissionprob_.copy()
    em[:, 0] = 1e-9  # a page the model (almost) never sees
    em /= em.sum(axis=1, keepdims=True)
    model.emissionprob_ = em
    rng = np.random.default_rng(5)
    train = [x for x in sessions(model, 300, rng, flat=True) if 0 not in x]
    det = AnomalyDetector(model).fit(train)
    assert det.unseen_log_ == pytest.approx(np.log(1e-6))
    x = np.array([1, 0, 2, 3, 0, 0, 4])
    rec = det.predict([x, train[0]])
    assert rec.unseen.tolist() == [3, 0]
    assert AnomalyDetector(model, unseen_log=-1e9).fit(train).predict([x]).unseen[0] == 0


def test_reasons_kernel_against_python(threads=(1, 2)):
    rng = np.random.default_rng(6)
    lengths = rng.integers(1, 12, size=20_000)  # > 65536 frames: the parallel path runs
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.intp)
    states = rng.integers(0, 3, size=offsets[-1]).astype(np.intp)
    steps = rng.normal(-2, 1.5, size=offsets[-1])
    own = np.zeros_like(offsets)  # each session's own steps: all but its last one
    own[1:] = np.cumsum(lengths - 1)
    states.flags.writeable = steps.flags.writeable = False
    for n_threads in threads:
        sw, lr = _session_stats.path_stats(states, offsets, n_threads)
        mn, below = _session_stats.step_stats(steps, offsets, own, -3.0, n_threads)
        for s in range(0, len(lengths), 97):
            path = states[offsets[s]:offsets[s + 1]]
            rate, longest = python_reasons(path)
            assert sw[s] == round(rate * max(len(path) - 1, 1)) and lr[s] == longest
            v = steps[offsets[s]:offsets[s + 1]]
            assert mn[s] == v.min()
            assert below[s] == np.sum(v[:len(v) - 1] < -3.0)
    with pytest.raises(ValueError, match="offsets"):
        _session_stats.path_stats(states, offsets[::-1].copy(), 1)
    with pytest.raises(TypeError, match="intp"):
        _session_stats.path_stats(states.astype(np.int32), offsets, 1)


# ---------------------------------------------------------------- end of session


def test_end_symbol_scores_and_paths_include_the_end_step():
    rng = np.random.default_rng(7)
    start, trans, emis = random_model(rng, 3, M + 1)
    model = categorical(start, trans, emis)
    train = [rng.integers(0, M, size=int(rng.integers(3, 15))) for _ in range(200)]
    det = AnomalyDetector(model, end_symbol=M).fit(train)
    rec = det.predict(train[:30])
    for s, x in enumerate(train[:30]):
        full = np.append(x, M)
        assert rec.score[s] == pytest.approx(model.score(full) / len(full), rel=1e-12)
        rate, longest = python_reasons(ref_path(model, full)[:-1])
        assert rec.switch_rate[s] == pytest.approx(rate) and rec.longest_run[s] == longest
        assert rec.length[s] == len(x)
        steps = stream_steps(model, full)
        assert rec.min_step[s] == pytest.approx(steps.min(), rel=1e-9)
        assert rec.unseen[s] == np.sum(steps[:-1] < np.log(1e-6))
    with pytest.raises(hmmfast.HMMInputError, match="end-of-session symbol"):
        det.predict([np.array([1, M, 2])])


@pytest.mark.filterwarnings("ignore::hmmfast.ConvergenceWarning")
def test_fit_trains_an_unfitted_model_with_the_end_symbol():
    rng = np.random.default_rng(8)
    truth = peaked_model(9, m=M + 1)
    train = [x[x != M] for x in sessions(truth, 300, rng, flat=True)]
    train = [x for x in train if x.size]
    model = hmmfast.CategoricalHMM(3, n_features=M + 1, n_iter=20, random_state=0)
    det = AnomalyDetector(model, end_symbol=M).fit(train)
    assert model.emissionprob_.shape == (3, M + 1)
    # every training session ends with the end symbol: the model learnt it
    assert model.emissionprob_[:, M].max() > 0.05
    ind = np.array([model.score(np.append(x, M)) / (len(x) + 1) for x in train])
    np.testing.assert_allclose(det.predict(train).score, ind, rtol=1e-12)
    score_only = AnomalyDetector(model, end_symbol=M, evidence=("score",)).fit(train)
    np.testing.assert_allclose(score_only.thresholds_["suspicious"], order_statistic(ind, 5),
                               rtol=1e-12)


def test_fit_trains_an_unfitted_gaussian_model():
    rng = np.random.default_rng(10)
    truth = hmmfast.GaussianHMM(2)
    truth.startprob_ = [0.5, 0.5]
    truth.transmat_ = [[0.9, 0.1], [0.2, 0.8]]
    truth.means_ = [[0.0, 0.0], [5.0, 5.0]]
    truth.covars_ = [[1.0, 1.0], [1.0, 1.0]]
    train = [truth.sample(int(rng.integers(10, 30)), random_state=rng)[0] for _ in range(100)]
    model = hmmfast.GaussianHMM(2, n_iter=10, random_state=0)
    det = AnomalyDetector(model, end_symbol=None, evidence=("score",)).fit(train)
    ind = np.array([model.score(x) / len(x) for x in train])
    np.testing.assert_allclose(det.thresholds_["anomalous"], order_statistic(ind, 1),
                               rtol=1e-12)
    # a density family: unseen's floor is the least likely training step
    assert det.unseen_log_ == pytest.approx(
        min(stream_steps_dense(model, x).min() for x in train), rel=1e-9)
    rec = det.predict([x + 40.0 for x in train[:3]] + train[:3])
    assert (rec.level[:3] == "anomalous").all() and (rec.unseen[:3] > 0).all()


def stream_steps_dense(model, x):
    scorer = model.stream_scorer()
    out = []
    for row in x:
        scorer.push(row)
        out.append(scorer.last_step)
    return np.array(out)


def test_concatenated_input_with_lengths(fitted):
    model, train, test = fitted
    det = AnomalyDetector(model).fit(np.concatenate(train), lengths=[len(x) for x in train])
    ref = AnomalyDetector(model).fit(train)
    assert det.thresholds_ == ref.thresholds_
    a = det.predict(np.concatenate(test), lengths=[len(x) for x in test])
    b = ref.predict(test)
    for name in b:
        np.testing.assert_array_equal(a[name], b[name])


# ---------------------------------------------------------------- streams


def _stream_levels(det, sessions_):
    stream = det.stream()
    early, final, at = [], [], []
    for x in sessions_:
        stream.reset()
        for o in x.tolist():
            stream.push(o)
        early.append(stream.flagged)
        at.append(stream.flagged_at)
        final.append(stream.end())
    return np.array(early), np.array(final), at


@pytest.mark.parametrize("normalize", ["none", "min_step"])
def test_early_flags_and_end_agree_with_full_scoring(normalize):
    """Issue 24: early flags use cut-offs by steps read and the score alone, so the old
    promise (never overturned) is gone; end() still gives predict's level, and most
    early flags are confirmed by full scoring."""
    model = peaked_model(11)
    rng = np.random.default_rng(12)
    train = sessions(model, 400, rng, 10, 40, flat=True)
    odd = sessions(peaked_model(13), 300, rng, 10, 60, flat=True)
    det = AnomalyDetector(model, normalize=normalize, min_steps=5).fit(train)
    test = sessions(model, 300, rng, 10, 60, flat=True) + odd
    rec = det.predict(test)
    early, final, at = _stream_levels(det, test)
    assert early.sum() > 20  # not vacuous
    assert np.mean(rec.level[early] == "anomalous") > 0.8
    np.testing.assert_array_equal(final, rec.level)  # end() gives predict's level
    assert all(a is None or a >= 5 for a in at)


def test_per_step_early_flag_is_a_heuristic_measured():
    model = peaked_model(11)
    rng = np.random.default_rng(12)
    train = sessions(model, 400, rng, 10, 40, flat=True)
    det = AnomalyDetector(model, min_steps=10).fit(train)
    test = (sessions(model, 300, rng, 10, 60, flat=True)
            + sessions(peaked_model(13), 300, rng, 10, 60, flat=True))
    rec = det.predict(test)
    early, final, _ = _stream_levels(det, test)
    np.testing.assert_array_equal(final, rec.level)
    overturned = early & (rec.level != "anomalous")
    # measured, not promised: most early flags hold, some are overturned
    assert early.sum() > 50 and overturned.sum() < 0.5 * early.sum()


def test_stream_push_levels_min_steps_and_impossible(fitted):
    model, train, _ = fitted
    det = AnomalyDetector(model, normalize="none", min_steps=4).fit(train)
    stream = det.stream()
    assert isinstance(stream, SessionStream)
    x = train[0]
    levels = [stream.push(int(o)) for o in x[:6]]
    assert levels[:3] == [None] * 3 and all(lv in ("normal", "suspicious", "anomalous")
                                            for lv in levels[3:])
    assert stream.steps_read == 6
    running = model.score(x[:6])
    assert stream.score == pytest.approx(running, rel=1e-12)
    # an impossible observation flags at once, before min_steps
    em = model.emissionprob_.copy()
    em[:, 0] = 0.0
    em /= em.sum(axis=1, keepdims=True)
    m2 = categorical(model.startprob_, model.transmat_, em)
    d2 = AnomalyDetector(m2, normalize="none", min_steps=4).fit(
        [t for t in train if 0 not in t])
    s2 = d2.stream()
    assert s2.push(1) is None
    assert s2.push(0) == "anomalous" and s2.flagged and s2.flagged_at == 2
    s2.end()
    with pytest.raises(hmmfast.HMMInputError, match="reset"):
        s2.push(1)
    with pytest.raises(hmmfast.HMMInputError, match="no observation"):
        det.stream().end()


def test_min_step_stream_chunks_equal_single_pushes(fitted):
    model, train, _ = fitted
    det = AnomalyDetector(model, normalize="min_step", min_steps=3).fit(train)
    a, b = det.stream(), det.stream()
    x = train[1]
    for o in x.tolist():
        a.push(o)
    b.push(x[:4])
    b.push(x[4:].tolist())
    assert a.score == b.score and a.steps_read == b.steps_read == len(x)
    assert a.end() == b.end()


@pytest.mark.filterwarnings("ignore::hmmfast.ConvergenceWarning")
def test_stream_with_end_symbol_matches_predict():
    rng = np.random.default_rng(14)
    truth = peaked_model(15, m=M + 1)
    train = [x[x != M] for x in sessions(truth, 300, rng, flat=True)]
    train = [x for x in train if x.size]
    model = hmmfast.CategoricalHMM(3, n_features=M + 1, n_iter=15, random_state=1)
    det = AnomalyDetector(model, end_symbol=M, min_steps=3).fit(train)
    rec = det.predict(train[:100])
    _, final, _ = _stream_levels(det, train[:100])
    np.testing.assert_array_equal(final, rec.level)
    stream = det.stream()
    stream.push(train[0])
    stream.end()
    assert stream.steps_read == len(train[0])
    assert stream.score == pytest.approx(rec.score[0], rel=1e-12)


# ---------------------------------------------------------------- segments


def test_segmented_detector_routes_by_key():
    rng = np.random.default_rng(16)
    ma, mb = peaked_model(17), peaked_model(18)
    train_a, train_b = sessions(ma, 200, rng, flat=True), sessions(mb, 200, rng, flat=True)
    seg = SegmentedDetector({"admin": AnomalyDetector(ma), "guest": AnomalyDetector(mb)})
    train = train_a + train_b
    keys = ["admin"] * 200 + ["guest"] * 200
    order = rng.permutation(400)
    seg.fit([train[i] for i in order], [keys[i] for i in order])
    alone_a = AnomalyDetector(ma).fit(train_a)
    assert seg.detectors["admin"].thresholds_ == alone_a.thresholds_
    test = sessions(ma, 30, rng, flat=True) + sessions(mb, 30, rng, flat=True)
    tkeys = np.array(["admin"] * 30 + ["guest"] * 30)
    perm = rng.permutation(60)
    rec = seg.predict([test[i] for i in perm], tkeys[perm])
    ra = seg.detectors["admin"].predict(test[:30])
    rb = seg.detectors["guest"].predict(test[30:])
    for name in ra:
        expected = np.concatenate([ra[name], rb[name]])[perm]
        np.testing.assert_array_equal(rec[name], expected)
    with pytest.raises(hmmfast.HMMInputError, match="'root' is not a known segment"):
        seg.predict(test[:2], ["admin", "root"])
    with pytest.raises(hmmfast.HMMInputError, match="expected 2 keys, got 1"):
        seg.predict(test[:2], ["admin"])
    fallback = SegmentedDetector(seg.detectors, default="guest")
    r = fallback.predict(test[30:32], ["root", "guest"])
    np.testing.assert_array_equal(r.score, rb.score[:2])
    with pytest.raises(hmmfast.ParameterError, match="default"):
        SegmentedDetector(seg.detectors, default="root")
    with pytest.raises(hmmfast.HMMInputError, match="no sessions"):
        SegmentedDetector({"a": AnomalyDetector(ma), "b": AnomalyDetector(mb)}).fit(
            train_a[:5], ["a"] * 5)
    with pytest.raises(hmmfast.HMMTypeError):
        SegmentedDetector({"a": ma})


# ---------------------------------------------------------------- persistence


@pytest.mark.parametrize("normalize", ["per_step", "none", "min_step"])
def test_to_dict_from_dict_round_trip(fitted, normalize):
    model, train, test = fitted
    det = AnomalyDetector(model, normalize=normalize, min_steps=7).fit(train)
    text = json.dumps(det.to_dict(), allow_nan=False)
    back = AnomalyDetector.from_dict(json.loads(text), model)
    assert back.thresholds_ == det.thresholds_ and back.min_steps == 7
    a, b = det.predict(test), back.predict(test)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    s = back.stream()
    s.push(test[0])
    assert s.score is not None
    d = det.to_dict()
    with pytest.raises(hmmfast.ParameterError, match="GaussianHMM"):
        AnomalyDetector.from_dict(d, hmmfast.GaussianHMM(N))
    with pytest.raises(hmmfast.ParameterError, match="format"):
        AnomalyDetector.from_dict({"thresholds": {}}, model)
    bad = json.loads(text)
    bad["training"]["length"]["counts"] = [-1] * len(bad["training"]["length"]["counts"])
    with pytest.raises(hmmfast.ParameterError, match="length"):
        AnomalyDetector.from_dict(bad, model)


def test_record_json_and_attribute_access(fitted):
    model, train, test = fitted
    rec = AnomalyDetector(model).fit(train).predict(test[:4])
    assert rec.n_sessions == 4 and rec.score is rec["score"]
    json.dumps(rec.to_json(), allow_nan=False)
    with pytest.raises(AttributeError, match="no field"):
        rec.nope


# ---------------------------------------------------------------- bad inputs


def test_bad_arguments_name_what_was_expected(fitted):
    model, train, _ = fitted
    cases = [
        (lambda: AnomalyDetector(model, suspicious=150), hmmfast.ParameterError, "suspicious"),
        (lambda: AnomalyDetector(model, suspicious="5"), hmmfast.HMMTypeError, "suspicious"),
        (lambda: AnomalyDetector(model, 1.0, 5.0), hmmfast.ParameterError, "anomalous must be <="),
        (lambda: AnomalyDetector(model, normalize="mean"), hmmfast.ParameterError, "normalize"),
        (lambda: AnomalyDetector(model, min_steps=0), hmmfast.ParameterError, "min_steps"),
        (lambda: AnomalyDetector("model"), hmmfast.HMMTypeError, "hmmfast model"),
        (lambda: AnomalyDetector(model, end_symbol=M), hmmfast.ParameterError, "end_symbol"),
        (lambda: AnomalyDetector(hmmfast.GaussianHMM(2), end_symbol=0), hmmfast.ParameterError,
         "CategoricalHMM"),
        (lambda: AnomalyDetector(model).fit([]), hmmfast.HMMInputError, "empty"),
        (lambda: AnomalyDetector(model).fit(np.zeros(5, int)), hmmfast.HMMTypeError, "list"),
        (lambda: AnomalyDetector(model).predict(train), hmmfast.NotFittedError, "not fitted"),
        (lambda: AnomalyDetector(model).stream(), hmmfast.NotFittedError, "not fitted"),
        (lambda: AnomalyDetector(model).fit([np.array([0, M + 3])]), hmmfast.HMMInputError,
         "out of range"),
    ]
    for call, error, text in cases:
        with pytest.raises(error, match=text):
            call()
        assert issubclass(error, (ValueError, TypeError))


def test_training_session_with_probability_zero_is_an_error():
    model = peaked_model(19)
    em = model.emissionprob_.copy()
    em[:, 1] = 0.0
    em /= em.sum(axis=1, keepdims=True)
    model.emissionprob_ = em
    with pytest.raises(hmmfast.HMMInputError, match="training session 1 has probability zero"):
        AnomalyDetector(model).fit([np.array([0, 2]), np.array([0, 1])])


# ---------------------------------------------------------------- packaging


def test_monitor_is_not_imported_by_hmmfast_and_imports_numpy_only(import_report):
    assert "hmmfast.monitor" not in import_report["hmmfast"]  # a fresh interpreter's
    assert "matplotlib" not in import_report["hmmfast.monitor"], "matplotlib imported"
    from hmmfast import monitor

    assert set(monitor.__all__) >= {"AnomalyDetector", "SegmentedDetector",
                                    "LikelihoodDriftMonitor", "OccupancyMonitor",
                                    "EmissionDriftCheck"}


@pytest.mark.filterwarnings("ignore::hmmfast.ConvergenceWarning")
def test_concatenated_input_with_end_symbol_and_a_poisson_model():
    rng = np.random.default_rng(20)
    seqs = [rng.integers(0, 5, size=int(rng.integers(3, 10))) for _ in range(100)]
    lengths = [len(s) for s in seqs]
    a = AnomalyDetector(hmmfast.CategoricalHMM(2, n_features=6, n_iter=5, random_state=0),
                        end_symbol=5).fit(np.concatenate(seqs), lengths=lengths)
    b = AnomalyDetector(hmmfast.CategoricalHMM(2, n_features=6, n_iter=5, random_state=0),
                        end_symbol=5).fit(seqs)
    assert a.thresholds_ == b.thresholds_
    ra, rb = a.predict(np.concatenate(seqs), lengths=lengths), a.predict(seqs)
    for name in ra:
        np.testing.assert_array_equal(ra[name], rb[name])
    # PoissonHMM: a discrete family (unseen below P = 1e-6), streams take count vectors
    counts = [rng.poisson(3, size=(int(rng.integers(5, 10)), 2)) for _ in range(100)]
    det = AnomalyDetector(hmmfast.PoissonHMM(2, n_iter=5, random_state=0)).fit(counts)
    assert det.unseen_log_ == pytest.approx(np.log(1e-6))
    assert det.predict([counts[0] * 10]).level[0] == "anomalous"
    stream = det.stream()
    stream.push(counts[0][0])
    stream.push(counts[0][1:])
    assert stream.end() == det.predict(counts[:1]).level[0]
    assert stream.score == pytest.approx(det.predict(counts[:1]).score[0], rel=1e-12)
