"""Every accepted form of input gives the same answer as the canonical one."""

import itertools

import numpy as np
import pytest
from hmm_oracles import random_model

from hmmfast import _reference, _trellis, _viterbi


@pytest.fixture
def model(make_model, implementation):
    rng = np.random.default_rng(7)
    return make_model(*random_model(rng, 4, 5), implementation)


def test_single_step_sequence(model):
    for symbol in range(5):
        X = np.array([[symbol]])
        expected = np.log(model.startprob_ @ model.emissionprob_[:, symbol])
        assert model.score(X) == pytest.approx(expected, rel=1e-13)
        _, post = model.score_samples(X)
        joint = model.startprob_ * model.emissionprob_[:, symbol]
        np.testing.assert_allclose(post[0], joint / joint.sum(), rtol=1e-12)
        logprob, path = model.decode(X)
        assert path.tolist() == [int(np.argmax(joint))]
        assert logprob == pytest.approx(np.log(joint.max()), rel=1e-13)


def test_input_forms_agree(model):
    rng = np.random.default_rng(1)
    X = rng.integers(0, 5, size=(60, 1))
    expected = model.score(X)
    expected_path = model.decode(X)[1]
    readonly = X.copy()
    readonly.flags.writeable = False
    wide = np.zeros((60, 3), dtype=np.int64)
    wide[:, 1] = X[:, 0]
    strided = wide[:, 1:2]  # non-contiguous column view
    big = np.repeat(X, 2, axis=0)[::2]  # non-contiguous rows
    swapped = X.astype(X.dtype.newbyteorder())  # same values, other byte order
    for form in (X.ravel(), X.tolist(), X.ravel().tolist(), X.astype(np.int32),
                 X.astype(np.uint8), X.astype(np.int16), readonly, strided, big,
                 np.asfortranarray(X), swapped, swapped.astype(">i4")):
        assert model.score(form) == expected
        np.testing.assert_array_equal(model.decode(form)[1], expected_path)
    assert X.flags.writeable and np.all(wide[:, 1] == X[:, 0])  # inputs untouched


def test_many_short_sequences(model):
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 6, size=1000)
    X = rng.integers(0, 5, size=(lengths.sum(), 1))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    pieces = [X[a:b] for a, b in itertools.pairwise(starts)]
    np.testing.assert_allclose(model.score(X, lengths), sum(model.score(p) for p in pieces),
                               rtol=1e-12)
    _, post = model.score_samples(X, lengths)
    np.testing.assert_allclose(post, np.concatenate([model.predict_proba(p) for p in pieces]),
                               rtol=1e-12, atol=1e-15)
    score, path = model.decode(X, lengths)
    np.testing.assert_array_equal(path, np.concatenate([model.predict(p) for p in pieces]))
    np.testing.assert_allclose(score, sum(model.decode(p)[0] for p in pieces), rtol=1e-12)
    for lengths_form in (lengths.tolist(), tuple(lengths), lengths.astype(np.int32)):
        assert model.score(X, lengths_form) == pytest.approx(model.score(X, lengths), rel=1e-15)


def test_functional_api_accepts_lengths_and_sparse():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(3)
    startprob, transmat, _ = random_model(rng, 3, 2, zeros=True)
    log_em = rng.normal(size=(30, 3))
    lengths = [10, 5, 15]
    import hmmfast
    expected = _reference.forward(startprob, transmat, log_em, lengths).sum()
    np.testing.assert_allclose(hmmfast.forward(startprob, transmat, log_em, lengths=lengths),
                               expected, rtol=1e-12)
    sparse = scipy_sparse.csr_matrix(transmat)
    np.testing.assert_allclose(hmmfast.forward(startprob, sparse, log_em, lengths=lengths),
                               expected, rtol=1e-12)
    scores, paths = _reference.viterbi(startprob, transmat, log_em, lengths)
    score, path = hmmfast.viterbi(startprob, sparse, log_em, lengths=lengths)
    np.testing.assert_array_equal(path, paths)
    np.testing.assert_allclose(score, scores.sum(), rtol=1e-12)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_kernels_over_sequences_per_thread_count(model, n_threads):
    """The kernels' multi-sequence driver gives identical per-sequence results on 1 or 2
    threads (the OpenMP path), equal to one call per sequence."""
    c = model._cache or model._prepare()
    rng = np.random.default_rng(4)
    lengths = rng.integers(1, 50, size=4000)  # enough cells to start a thread team
    rows = rng.integers(0, 5, size=lengths.sum()).astype(np.intp)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.intp)
    per_seq = np.empty(len(lengths))
    total = _trellis.forward(c.chain, c.emission, rows, offsets, c.scaling, per_seq, n_threads)
    singles = [_trellis.forward(c.chain, c.emission, rows[a:b], None, c.scaling)
               for a, b in itertools.pairwise(offsets)]
    np.testing.assert_array_equal(per_seq, singles)
    assert total == pytest.approx(sum(singles), rel=1e-13)
    vit_per_seq = np.empty(len(lengths))
    _, path = _viterbi.viterbi(c.chain, c.emission, rows, offsets, vit_per_seq, n_threads)
    for s, (a, b) in enumerate(itertools.pairwise(offsets)):
        lp, p = _viterbi.viterbi(c.chain, c.emission, rows[a:b], None)
        np.testing.assert_array_equal(path[a:b], p)
        assert vit_per_seq[s] == lp
    _, post = _trellis.forward_backward(c.chain, c.emission, rows, offsets, c.scaling, None,
                                        n_threads)
    _, post1 = _trellis.forward_backward(c.chain, c.emission, rows, offsets, c.scaling, None, 1)
    np.testing.assert_array_equal(post, post1)


def test_large_state_space_backpointer_types(make_model):
    """N = 300 uses 16-bit backpointers: decoding still matches the reference."""
    rng = np.random.default_rng(9)
    startprob, transmat, emissionprob = random_model(rng, 300, 4)
    model = make_model(startprob, transmat, emissionprob)
    X = rng.integers(0, 4, size=40)
    log_em = _reference.categorical_log_emissions(emissionprob, X)
    ref_score, ref_path = _reference.viterbi(startprob, transmat, log_em)
    score, path = model.decode(X)
    np.testing.assert_allclose(score, ref_score[0], rtol=1e-12)
    np.testing.assert_array_equal(path, ref_path)
