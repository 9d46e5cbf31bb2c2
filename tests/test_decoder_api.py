"""n-best and checkpointed Viterbi through the public API (model methods, decode_batch,
the functional API): oracles are brute-force enumeration, the full-table decoder and
``_reference.path_log_prob``. The kernels themselves are tested in test_nbest.py and
test_checkpoint.py."""

import numpy as np
import pytest
from hmm_oracles import categorical_log_emissions, enumerate_paths, random_model
from scipy import sparse

import hmmfast
from hmmfast import _checkpoint, _decoders, _reference, _viterbi


def categorical(startprob, transmat, emissionprob):
    model = hmmfast.CategoricalHMM(len(startprob))
    model.startprob_, model.transmat_, model.emissionprob_ = startprob, transmat, emissionprob
    return model


@pytest.mark.parametrize("seed", range(6))
def test_model_nbest_is_the_top_of_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_states = 2 + seed % 2
    startprob, transmat, emissionprob = random_model(rng, n_states, 3, zeros=seed >= 3)
    model = categorical(startprob, transmat, emissionprob)
    X = model.sample(5, random_state=seed)[0].ravel()  # a possible sequence
    log_em = categorical_log_emissions(emissionprob, X)
    paths, logp = enumerate_paths(startprob, transmat, log_em)
    finite = np.isfinite(logp)
    want = np.sort(logp[finite])[::-1][:7]
    got = model.nbest(X, 7)
    assert len(got) == min(7, finite.sum())
    np.testing.assert_allclose([s for s, _ in got], want, rtol=1e-12)
    seen = set()
    for score, path in got:
        assert path.dtype == np.intp and path.shape == (5,)
        assert tuple(path) not in seen
        seen.add(tuple(path))
        assert score == pytest.approx(
            _reference.path_log_prob(startprob, transmat, log_em, path)[0], rel=1e-12)
    # entry 0 is decode's answer exactly; the functional API agrees with the model
    logprob, states = model.decode(X)
    assert got[0][0] == logprob
    np.testing.assert_array_equal(got[0][1], states)
    functional = hmmfast.nbest(startprob, transmat, log_em, 7)
    assert [s for s, _ in functional] == [s for s, _ in got]
    for (_, a), (_, b) in zip(functional, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_nbest_on_continuous_and_sparse_models():
    rng = np.random.default_rng(3)
    model = hmmfast.GaussianHMM(3, covariance_type="diag")
    model.startprob_ = np.array([0.5, 0.3, 0.2])
    model.transmat_ = rng.dirichlet(np.ones(3), size=3)
    model.means_ = rng.normal(size=(3, 2))
    model.covars_ = np.ones((3, 2))
    X = model.sample(40, random_state=1)[0]
    best = model.nbest(X, 4)
    assert best[0][0] == model.decode(X)[0]
    assert [s for s, _ in best] == sorted((s for s, _ in best), reverse=True)
    dense = categorical(*random_model(rng, 6, 4, zeros=True))
    X = dense.sample(60, random_state=2)[0]
    sparse_model = categorical(dense.startprob_, sparse.csr_array(dense.transmat_),
                               dense.emissionprob_)
    a, b = dense.nbest(X, 5), sparse_model.nbest(X, 5)
    assert [s for s, _ in a] == [s for s, _ in b]


def test_nbest_errors():
    model = categorical(np.array([1.0, 0.0]), np.eye(2), np.eye(2))
    with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
        model.nbest([0, 0, 1], 3)
    assert info.value.step == 2
    for bad, error in ((0, hmmfast.ParameterError), (2.5, hmmfast.HMMTypeError),
                       ("3", hmmfast.HMMTypeError)):
        with pytest.raises(error, match="n"):
            model.nbest([0, 0], bad)
    with pytest.raises(hmmfast.HMMInputError):
        model.nbest([0, 5], 2)
    assert len(model.nbest([0, 0, 0], 10)) == 1  # one possible path only


@pytest.mark.parametrize("n_states", [3, 12])
def test_checkpoint_equals_full_through_every_entry(n_states):
    rng = np.random.default_rng(n_states)
    model = categorical(*random_model(rng, n_states, 5, zeros=True))
    X, _ = model.sample(3000, random_state=4)
    lengths = [1, 999, 2000]
    want = model.decode(X, lengths)
    got = model.decode(X, lengths, memory="checkpoint")
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    scores, paths = model.decode_batch([X[:1000], X[1000:]], memory="checkpoint")
    full_scores, full_paths = model.decode_batch([X[:1000], X[1000:]])
    np.testing.assert_array_equal(scores, full_scores)
    for a, b in zip(paths, full_paths, strict=True):
        np.testing.assert_array_equal(a, b)
    log_em = categorical_log_emissions(model.emissionprob_, X)
    f = hmmfast.viterbi(model.startprob_, model.transmat_, log_em, memory="checkpoint")
    g = hmmfast.viterbi(model.startprob_, model.transmat_, log_em)
    assert f[0] == g[0]
    np.testing.assert_array_equal(f[1], g[1])


def test_memory_option_validation():
    model = categorical(np.array([0.5, 0.5]), np.full((2, 2), 0.5), np.full((2, 2), 0.5))
    X = [0, 1, 1]
    for bad in ("half", None, 3, "FULL"):
        with pytest.raises(hmmfast.ParameterError, match="memory"):
            model.decode(X, memory=bad)
        with pytest.raises(hmmfast.ParameterError, match="memory"):
            model.decode_batch([X], memory=bad)
    with pytest.raises(hmmfast.ParameterError, match="viterbi"):
        model.decode(X, algorithm="map", memory="checkpoint")
    with pytest.raises(hmmfast.ParameterError, match="viterbi"):
        model.decode_batch([X], algorithm="map", memory="checkpoint")
    with pytest.raises(hmmfast.ParameterError, match="beam"):
        model.decode(X, beam=3.0, memory="checkpoint")
    with pytest.raises(hmmfast.ParameterError, match="memory"):
        hmmfast.viterbi([0.5, 0.5], np.full((2, 2), 0.5), np.zeros((3, 2)), memory="x")


BAD_OPTIONS = [
    ("map", {"beam": 2.0}), ("map", {"max_active": 1}), ("map", {"memory": "checkpoint"}),
    ("viterbi", {"beam": 1.0, "memory": "checkpoint"}), ("viterbi", {"beam": -1.0}),
    ("viterbi", {"min_active": 3, "max_active": 2}), ("viterbi", {"memory": "x"}),
    ("viterbi", {"max_active": 0}), ("bogus", {}), ("bogus", {"memory": "x"}),
]


@pytest.mark.parametrize(("algorithm", "options"), BAD_OPTIONS)
def test_every_decode_entry_refuses_the_same_options_alike(algorithm, options):
    """decode (a table-driven and a continuous family), decode_batch and the functional
    viterbi validate decode options in one place: the same error, word for word."""
    model = categorical(np.array([0.5, 0.5]), np.full((2, 2), 0.5), np.full((2, 2), 0.5))
    gauss = hmmfast.GaussianHMM(2)
    gauss.startprob_, gauss.transmat_ = model.startprob_, model.transmat_
    gauss.means_, gauss.covars_ = np.zeros((2, 1)), np.ones((2, 1))
    X = np.array([0, 1, 1])
    calls = [lambda: model.decode(X, algorithm=algorithm, **options),
             lambda: model.decode(X, [2, 1], algorithm=algorithm, **options),
             lambda: gauss.decode(X[:, None], algorithm=algorithm, **options),
             lambda: model.decode_batch([X], algorithm=algorithm, **options)]
    if algorithm == "viterbi":
        calls.append(lambda: hmmfast.viterbi(model.startprob_, model.transmat_,
                                             np.zeros((3, 2)), **options))
    messages = set()
    for call in calls:
        with pytest.raises((hmmfast.ParameterError, hmmfast.HMMTypeError)) as info:
            call()
        messages.add((type(info.value), str(info.value)))
    assert len(messages) == 1, messages


def test_automatic_switch_above_the_threshold(monkeypatch):
    """memory="full" hands long sequences to the checkpointed decoder by itself (the
    compiled fast entry of decode reads the same constant, csrc/_viterbi_table.pxd)."""
    rng = np.random.default_rng(9)
    model = categorical(*random_model(rng, 4, 3))
    X = model.sample(500, random_state=1)[0]
    calls = []
    real = _checkpoint.viterbi_checkpoint

    def spy(*args):
        calls.append(len(args))
        return real(*args)

    monkeypatch.setattr(_checkpoint, "viterbi_checkpoint", spy)
    want = model.decode(X, lengths=[500])
    assert not calls  # 500 x 8 bytes: far below the threshold
    monkeypatch.setattr(_checkpoint, "AUTO_CHECKPOINT_BYTES", 100)
    got = model.decode(X, lengths=[500])
    assert calls  # the same call now checkpoints, with the same result
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    assert _decoders.viterbi_kernel("full", 4, None, 12) is _viterbi.viterbi
    assert _decoders.viterbi_kernel("full", 4, None, 13) is spy
    assert _decoders.viterbi_kernel("checkpoint", 4, None, 1) is spy
    # several sequences: the longest one's table counts (one table per thread at a time)
    two = np.array([0, 12, 24], dtype=np.intp)
    assert _decoders.viterbi_kernel("full", 4, two, 24) is _viterbi.viterbi
    assert _decoders.viterbi_kernel("full", 4, np.array([0, 13, 25], dtype=np.intp), 25) is spy


def test_automatic_switch_counts_computed_emissions():
    """A continuous family's full decode also computes the (T, N) float64 log-emissions:
    at N = 8 the switch comes at 256 MiB / (8 + 64) bytes per frame."""
    limit = _checkpoint.AUTO_CHECKPOINT_BYTES // 72
    assert _decoders.viterbi_kernel("full", 8, None, limit, True) is _viterbi.viterbi
    assert _decoders.viterbi_kernel("full", 8, None, limit + 1, True) is (
        _checkpoint.viterbi_checkpoint)
    assert _decoders.viterbi_kernel("full", 8, None, limit + 1) is _viterbi.viterbi
