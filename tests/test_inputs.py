"""Every accepted form of input gives the same answer as the canonical one: observation
dtypes, layouts, lists, unaligned and byte-swapped buffers, lengths forms, float32
parameters."""

import itertools

import numpy as np
import pytest
from hmm_oracles import random_model

import hmmfast
from hmmfast import _reference


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


# -------------------------------------------------- unaligned arrays, float32 parameters


def unaligned(values, dtype):
    values = np.asarray(values, dtype=dtype)
    raw = b"\0" + values.tobytes()
    out = np.frombuffer(raw, dtype=dtype, offset=1).reshape(values.shape)
    assert not out.flags.aligned
    return out


def test_unaligned_observations(make_model):
    model = make_model([0.6, 0.4], [[0.7, 0.3], [0.4, 0.6]],
                       [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]])
    X = np.array([0, 2, 1])
    bad = unaligned(X, np.int64)
    assert model.score(bad) == model.score(X)
    np.testing.assert_array_equal(model.decode(bad)[1], model.decode(X)[1])
    packed = np.zeros(3, dtype=[("flag", "u1"), ("sym", "<i8")])  # packed: sym is unaligned
    packed["sym"] = X
    assert model.score(packed["sym"]) == model.score(X)
    lengths = unaligned([1, 2], np.int64)
    assert model.score(X, lengths) == model.score(X, [1, 2])


def test_unaligned_log_emissions(implementation):
    log_em = np.log([[0.9, 0.2], [0.05, 0.7], [0.05, 0.1]])
    args = ([0.6, 0.4], [[0.7, 0.3], [0.4, 0.6]])
    bad = unaligned(log_em, np.float64)
    assert (hmmfast.forward(*args, bad, implementation=implementation)
            == hmmfast.forward(*args, log_em, implementation=implementation))
    assert hmmfast.viterbi(*args, bad)[0] == hmmfast.viterbi(*args, log_em)[0]
    start = unaligned([0.6, 0.4], np.float64)
    assert hmmfast.forward(start, args[1], log_em) == hmmfast.forward(*args, log_em)


def test_float32_parameters_accepted_and_stored_as_float64(make_model):
    rng = np.random.default_rng(8)
    startprob, transmat, emissionprob = random_model(rng, 3, 500)
    emissionprob[0] = 1 / 500  # float32(1/500) * 500 is 1 + 2.4e-8 in float64
    e32 = emissionprob.astype(np.float32)
    assert np.max(np.abs(e32.sum(axis=1, dtype=np.float64) - 1)) > 1e-8
    model = make_model(startprob.astype(np.float32), transmat.astype(np.float32), e32)
    assert model.emissionprob_.dtype == np.float64
    np.testing.assert_allclose(model.emissionprob_.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(model.emissionprob_, emissionprob, rtol=1e-6)
    with pytest.raises(hmmfast.ParameterError, match="row 0 of emissionprob_ sums to"):
        bad = e32.copy()
        bad[0, 0] += np.float32(1e-3)
        model.emissionprob_ = bad
