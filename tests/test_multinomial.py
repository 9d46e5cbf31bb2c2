"""MultinomialHMM: hmmlearn's MultinomialHMM as the oracle, scipy.stats.multinomial for
the emissions, CategoricalHMM for the one-trial case, and every layer a family reaches
(files, CLI, batch, streams, monitor, service, Dask)."""

import logging
import pickle
import warnings

import numpy as np
import pytest
from scipy import stats

import hmmfast
from hmmfast import HMMInputError, ParameterError

hl = pytest.importorskip("hmmlearn.hmm")

N, M, TRIALS = 3, 4, 6


def model(seed=0, n_trials=TRIALS, zero=False, **kw):
    rng = np.random.default_rng(seed)
    m = hmmfast.MultinomialHMM(N, n_trials=n_trials, **kw)
    m.startprob_ = rng.dirichlet(np.ones(N))
    m.transmat_ = rng.dirichlet(np.ones(N), size=N)
    b = rng.dirichlet(np.ones(M), size=N)
    if zero:  # a structural zero: state 0 never emits category 1
        b[0, 1] = 0.0
        b[0] /= b[0].sum()
    m.emissionprob_ = b
    return m


def reference(ours, **kw):
    with warnings.catch_warnings():
        logging.disable(logging.WARNING)  # hmmlearn's "MultinomialHMM has undergone..."
        try:
            ref = hl.MultinomialHMM(ours.n_components, n_trials=ours.n_trials,
                                    implementation="scaling", **kw)
        finally:
            logging.disable(logging.NOTSET)
    ref.startprob_ = np.array(ours.startprob_)
    ref.transmat_ = np.array(ours.transmat_)
    ref.emissionprob_ = np.array(ours.emissionprob_)
    return ref


def test_log_emissions_equal_scipy_multinomial():
    m = model(zero=True)
    X = np.array([[6, 0, 0, 0], [1, 1, 2, 2], [0, 3, 0, 3], [0, 0, 0, 0], [2, 0, 4, 0]])
    want = np.array([[stats.multinomial.logpmf(x, n=x.sum(), p=m.emissionprob_[j])
                      for j in range(N)] for x in X])
    got = m._compute_log_likelihood(X)
    assert np.array_equal(np.isneginf(got), np.isneginf(want))  # state 0 cannot emit 1
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("implementation", ["scaling", "log"])
def test_inference_equals_hmmlearn(implementation):
    ours = model(1, implementation=implementation)
    ref = reference(ours)
    X, _ = ours.sample(400, random_state=2)
    lengths = [150, 250]
    assert ours.score(X, lengths) == pytest.approx(ref.score(X, lengths), rel=1e-12)
    np.testing.assert_allclose(ours.predict_proba(X, lengths), ref.predict_proba(X, lengths),
                               atol=1e-10)
    assert ours.decode(X, lengths)[0] == pytest.approx(ref.decode(X, lengths)[0], rel=1e-12)
    assert ours.aic(X, lengths) == pytest.approx(ref.aic(X, lengths), rel=1e-12)
    assert ours.bic(X, lengths) == pytest.approx(ref.bic(X, lengths), rel=1e-12)


@pytest.mark.parametrize("n_trials", [TRIALS, None])
def test_em_iterations_equal_hmmlearn(n_trials):
    """k EM iterations from the same start give hmmlearn's parameters; with n_trials None
    and frames of different totals too (hmmlearn's test_fit does X[::2] *= 2)."""
    truth = model(3)
    X, _ = truth.sample(300, random_state=4)
    if n_trials is None:
        X[::2] *= 2
    start = model(5, n_trials=n_trials, init_params="", n_iter=6, tol=-np.inf)
    ref = reference(start, init_params="", n_iter=6, tol=-np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        start.fit(X, [100, 200])
    ref.fit(X, [100, 200])
    for name in ("startprob_", "transmat_", "emissionprob_"):
        np.testing.assert_allclose(getattr(start, name), getattr(ref, name), atol=1e-10)
    assert start.monitor_.history[-2] == pytest.approx(ref.monitor_.history[-1], rel=1e-12)
    np.testing.assert_array_equal(np.broadcast_to(start.n_trials, 300),
                                  np.broadcast_to(ref.n_trials, 300))


def test_one_trial_equals_categorical():
    m = model(7, n_trials=1)
    cat = hmmfast.CategoricalHMM(N)
    cat.startprob_, cat.transmat_, cat.emissionprob_ = (m.startprob_, m.transmat_,
                                                        m.emissionprob_)
    symbols = np.random.default_rng(8).integers(0, M, 50)
    onehot = np.eye(M, dtype=int)[symbols]
    assert m.score(onehot) == pytest.approx(cat.score(symbols), rel=1e-13)
    np.testing.assert_array_equal(m.decode(onehot)[1], cat.decode(symbols)[1])


def test_n_trials_set_from_data_and_checked():
    rng = np.random.default_rng(9)
    X = rng.multinomial(TRIALS, [0.1, 0.2, 0.3, 0.4], size=40)
    m = hmmfast.MultinomialHMM(2, n_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        m.fit(X)
    assert m.n_trials == TRIALS and np.ndim(m.n_trials) == 0  # one value: an int
    m.sample(5, random_state=0)
    bad = X.copy()
    bad[3, 0] += 1
    with pytest.raises(HMMInputError, match=r"X\[3\] sums to 7, n_trials is 6") as err:
        m.fit(bad)
    assert err.value.position == 3
    assert m.score(bad) < 0  # scoring uses each frame's own total, as hmmlearn
    mixed = hmmfast.MultinomialHMM(2, n_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        mixed.fit(bad)
    np.testing.assert_array_equal(mixed.n_trials, bad.sum(axis=1))
    with pytest.raises(ParameterError, match="single n_trials"):
        mixed.sample(3)


def test_sample_counts():
    m = model(10)
    X, states = m.sample(3000, random_state=11)
    assert X.dtype.kind == "i" and X.shape == (3000, M)
    assert np.all(X.sum(axis=1) == TRIALS)
    for j in range(N):
        share = X[states == j].sum(axis=0) / (TRIALS * np.sum(states == j))
        np.testing.assert_allclose(share, m.emissionprob_[j], atol=0.03)
    m.n_trials = None
    with pytest.raises(ParameterError, match="single n_trials"):
        m.sample(3)
    m.n_trials = [1, 2, 3]
    with pytest.raises(ParameterError, match="single n_trials"):
        m.sample(3)


@pytest.mark.parametrize("bad, what", [([[1, 2, -1, 0]], "-1"), ([[1, 2, 0.5, 0]], "0.5"),
                                       ([[1, 2, 3]], "n_features=4")])
def test_bad_observations(bad, what):
    with pytest.raises(HMMInputError, match=what):
        model().score(np.array(bad))


def test_fit_recovers_and_never_decreases():
    truth = model(12)
    truth.emissionprob_ = [[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]
    X, _ = truth.sample(3000, random_state=13)
    fitted = hmmfast.MultinomialHMM(N, n_iter=200, tol=1e-8, random_state=1).fit(X)
    assert np.all(np.diff(fitted.monitor_.history) > -1e-8)
    order = [int(np.argmax(fitted.emissionprob_[:, m])) for m in (0, 1, 3)]
    np.testing.assert_allclose(fitted.emissionprob_[order], truth.emissionprob_, atol=0.05)


def test_every_layer(tmp_path):
    """Files, CLI, batch, streams, monitor and service take a MultinomialHMM."""
    from hmmfast._cli import main

    m = model(14, zero=True)
    rng = np.random.default_rng(15)
    seqs = [m.sample(int(rng.integers(4, 30)), random_state=s)[0] for s in range(30)]
    scores = m.score_batch(seqs)
    np.testing.assert_allclose(scores, [m.score(x) for x in seqs], rtol=1e-12)
    paths = m.decode_batch(seqs)[1]
    assert all(np.array_equal(p, m.decode(x)[1]) for p, x in zip(paths, seqs, strict=True))
    # streams
    scorer, decoder = m.stream_scorer(), m.stream_decoder()
    out = []
    for row in seqs[0]:
        scorer.push(row)
        out.extend(decoder.push(row))
    out.extend(decoder.flush())
    assert scorer.logprob == pytest.approx(scores[0], rel=1e-12)
    np.testing.assert_array_equal(out, paths[0])
    # files: a per-frame n_trials array travels too
    path = tmp_path / "m.npz"
    m.save(path)
    back = hmmfast.load(path)
    assert back.fingerprint == m.fingerprint and back.n_trials == TRIALS
    assert back.score(seqs[1]) == m.score(seqs[1])
    # CLI: fit and score text files of count vectors
    data = tmp_path / "counts.txt"
    data.write_text("\n".join(" ".join(map(str, x.ravel())) for x in seqs) + "\n")
    assert main(["fit", str(data), "--family", "multinomial", "--dim", str(M), "--states",
                 "2", "--seed", "0", "-o", str(tmp_path / "fit.npz"), "--quiet"]) == 0
    fitted = hmmfast.load(tmp_path / "fit.npz")
    assert type(fitted) is hmmfast.MultinomialHMM and fitted.n_trials == TRIALS
    assert main(["score", str(path), str(data), "-o", str(tmp_path / "s.txt")]) == 0
    printed = np.loadtxt(tmp_path / "s.txt")
    np.testing.assert_allclose(printed, scores, rtol=1e-12)
    # monitor
    from hmmfast.monitor import AnomalyDetector, EmissionDriftCheck

    detector = AnomalyDetector(hmmfast.MultinomialHMM(2, n_iter=5, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        detector.fit(seqs)
    assert detector.predict(seqs[:2]).level.shape == (2,)
    assert len(EmissionDriftCheck(m).update(seqs).flagged_states) == 0
    shifted = [np.tile([0, 0, 0, TRIALS], (len(x), 1)) for x in seqs]  # all in one: drift
    assert len(EmissionDriftCheck(m).update(shifted).flagged_states) > 0
    # service
    from starlette.testclient import TestClient

    from hmmfast.serve import create_app

    with TestClient(create_app(str(path))) as client:
        reply = client.post("/v1/score", json={"sessions": [seqs[0].tolist()]})
        assert reply.status_code == 200
        assert reply.json()["scores"][0] == pytest.approx(scores[0], rel=1e-12)
        reply = client.post("/v1/score", json={"sessions": [[[1, 2, 2.5, 0]]]})
        assert reply.status_code == 422 and "counts" in reply.json()["error"]["message"]


def test_pickle():
    m = model(18)
    m.n_trials = np.array([6, 6, 7])
    back = pickle.loads(pickle.dumps(m))
    assert back.fingerprint == m.fingerprint
    np.testing.assert_array_equal(back.n_trials, m.n_trials)
    assert not back.emissionprob_.flags.writeable


def test_dask():
    distributed = pytest.importorskip("distributed")
    import dask.bag as db

    from hmmfast.distributed import fit_distributed, score_partitions

    m = model(16)
    rng = np.random.default_rng(17)
    seqs = [m.sample(int(rng.integers(4, 30)), random_state=s)[0] for s in range(30)]
    # threads, not processes (start-up time); pickling is test_pickle's
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        bag = db.from_sequence(seqs, npartitions=3)
        got = np.array(score_partitions(m, bag).compute())
        np.testing.assert_array_equal(got, m.score_batch(seqs))
        ours = hmmfast.MultinomialHMM(N, random_state=3, n_iter=6, tol=1e-9)
        ref = hmmfast.MultinomialHMM(N, random_state=3, n_iter=6, tol=1e-9)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            fit_distributed(ours, bag, init_sessions=None)
            ref.fit(np.concatenate(seqs), [len(x) for x in seqs])
    np.testing.assert_allclose(ours.emissionprob_, ref.emissionprob_, atol=1e-10)
    np.testing.assert_allclose(ours.monitor_.history, ref.monitor_.history, rtol=1e-12)
    assert ours.n_trials == ref.n_trials == TRIALS
