"""score_batch / decode_batch (issue 14): equal to per-sequence calls exactly, on 1 and 2
threads, for every family; per-step scores; impossible sequences. Threads sharing one
model: tests/test_threads.py."""

import numpy as np
import pytest
from factories import categorical, random_categorical, sessions
from scipy.special import logsumexp

import hmmfast
from hmmfast import _reference


@pytest.mark.parametrize("n_threads", [1, 2])
def test_categorical_batch_equals_per_sequence_calls(n_threads):
    rng = np.random.default_rng(0)
    model = random_categorical(rng, 4, 6, zeros=True)
    seqs = [*sessions(model, 300, rng, 1, 61), model.sample(10_000, random_state=1)[0]]
    seqs[5] = seqs[5][:1]  # a length-1 sequence
    scores = model.score_batch(seqs, n_threads)
    assert scores.dtype == np.float64 and scores.shape == (len(seqs),)
    np.testing.assert_array_equal(scores, [model.score(x) for x in seqs])
    logprobs, paths = model.decode_batch(seqs, n_threads)
    for x, lp, p in zip(seqs, logprobs, paths, strict=True):
        want_lp, want_p = model.decode(x)
        assert lp == want_lp
        np.testing.assert_array_equal(p, want_p)
        assert p.dtype == np.intp
    logprobs, paths = model.decode_batch(seqs, n_threads, algorithm="map")
    for x, lp, p in zip(seqs, logprobs, paths, strict=True):
        want_lp, want_p = model.decode(x, algorithm="map")
        assert lp == want_lp
        np.testing.assert_array_equal(p, want_p)


def test_many_short_sequences_and_the_concatenated_form():
    rng = np.random.default_rng(1)
    model = random_categorical(rng, 4, 6)
    seqs = [rng.integers(0, 6, size=int(t)) for t in rng.integers(1, 20, size=10_000)]
    scores = model.score_batch(seqs)
    lengths = [len(x) for x in seqs]
    X = np.concatenate(seqs)
    np.testing.assert_array_equal(model.score_batch(X, lengths=lengths), scores)
    np.testing.assert_allclose(scores.sum(), model.score(X, lengths), rtol=1e-12)
    np.testing.assert_array_equal(scores[[17, 4711]], [model.score(seqs[17]),
                                                       model.score(seqs[4711])])
    # a positional 2-tuple is two sequences, never (X, lengths)
    pair = (seqs[0], seqs[1])
    np.testing.assert_array_equal(model.score_batch(pair), scores[:2])
    # inputs as lists, (n, 1) arrays, other integer dtypes
    mixed = [seqs[2].tolist(), seqs[3][:, None], seqs[4].astype(np.uint8)]
    np.testing.assert_array_equal(model.score_batch(mixed), scores[2:5])


def test_empty_batch_and_bad_input():
    rng = np.random.default_rng(2)
    model = random_categorical(rng, 4, 6)
    assert model.score_batch([]).shape == (0,)
    assert model.decode_batch([]) == (pytest.approx(np.empty(0)), [])
    scores, steps = model.score_batch([], per_step=True)
    assert scores.shape == (0,) and steps == []
    with pytest.raises(hmmfast.HMMInputError, match="sequence 1: X is empty"):
        model.score_batch([[0, 1], []])
    with pytest.raises(hmmfast.HMMInputError, match=r"observation symbol out of range at X\[4\] \(sequence 1, step 2\)"):
        model.score_batch([[0, 1], [1, 2, 9]])
    with pytest.raises(hmmfast.HMMTypeError, match="sequence 0: X must hold integer symbols"):
        model.score_batch([[0.5, 1.0]])
    with pytest.raises(hmmfast.HMMTypeError, match="list .* of arrays"):
        model.score_batch(np.array([0, 1, 2]))
    with pytest.raises(hmmfast.ParameterError, match="errors must be one of"):
        model.decode_batch([[0]], errors="ignore")


def test_impossible_sequences():
    model = categorical([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]])
    seqs = [[0, 0], [0, 1, 0], [0]]
    np.testing.assert_array_equal(model.score_batch(seqs), [0.0, -np.inf, 0.0])
    with pytest.raises(hmmfast.ImpossibleSequenceError, match="sequence 1") as info:
        model.decode_batch(seqs)
    assert info.value.sequence == 1 and info.value.step == 1 and info.value.position == 3
    for algorithm in ("viterbi", "map"):
        logprobs, paths = model.decode_batch(seqs, errors="mark", algorithm=algorithm)
        np.testing.assert_array_equal(logprobs, [0.0, -np.inf, 0.0])
        assert [len(p) for p in paths] == [2, 0, 1]
    scores, steps = model.score_batch(seqs, per_step=True)
    np.testing.assert_array_equal(steps[1], [0.0, -np.inf, -np.inf])


@pytest.mark.parametrize("implementation", ["scaling", "log"])
def test_per_step_scores_are_conditionals(implementation):
    rng = np.random.default_rng(3)
    model = random_categorical(rng, 4, 6, zeros=True)
    model.implementation = implementation
    seqs = sessions(model, 40, rng, 1, 81)
    scores, steps = model.score_batch(seqs, per_step=True)
    for x, total, st in zip(seqs, scores, steps, strict=True):
        assert st.shape == (len(x),)
        np.testing.assert_allclose(st.sum(), total, rtol=1e-12)
        log_em = _reference.categorical_log_emissions(model.emissionprob_, x)
        # log P(x_0..x_t) for every prefix t: the reference's forward variables
        prefix = logsumexp(_reference.log_alpha(model.startprob_, model.transmat_, log_em),
                           axis=1)
        np.testing.assert_allclose(st, np.diff(prefix, prepend=0.0), rtol=1e-9, atol=1e-12)


def test_per_step_scores_survive_the_precision_guard():
    """A left-to-right model over a long sequence: the scaled pass hands over to the log
    kernel, and the per-step values still sum to the score."""
    transmat = np.array([[0.999, 0.001, 0.0], [0.0, 0.999, 0.001], [0.0, 0.0, 1.0]])
    log_em = np.log(np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]]))
    model = categorical([1, 0, 0], transmat, np.exp(log_em))
    X = model.sample(5000, random_state=4)[0]
    scores, steps = model.score_batch([X], per_step=True)
    np.testing.assert_allclose(steps[0].sum(), model.score(X), rtol=1e-10)
    np.testing.assert_allclose(scores[0], model.score(X), rtol=0)


@pytest.mark.parametrize("family", ["gaussian", "poisson", "gmm"])
def test_every_family_batches(family):
    rng = np.random.default_rng(5)
    if family == "gaussian":
        model = hmmfast.GaussianHMM(3, covariance_type="full")
        model.means_ = rng.normal(size=(3, 2)) * 3
        model.covars_ = np.array([np.eye(2) * v for v in (0.5, 1.0, 2.0)])
    elif family == "poisson":
        model = hmmfast.PoissonHMM(3)
        model.lambdas_ = rng.uniform(0.5, 6.0, (3, 2))
    else:
        model = hmmfast.GMMHMM(3, n_mix=2)
        model.weights_ = rng.dirichlet(np.ones(2), 3)
        model.means_ = rng.normal(size=(3, 2, 2)) * 3
        model.covars_ = rng.uniform(0.5, 2.0, (3, 2, 2))
    model.startprob_ = rng.dirichlet(np.ones(3))
    model.transmat_ = rng.dirichlet(np.ones(3), 3)
    seqs = sessions(model, 50, rng, 1, 41)
    for n_threads in (1, 2):
        np.testing.assert_array_equal(model.score_batch(seqs, n_threads),
                                      [model.score(x) for x in seqs])
        logprobs, paths = model.decode_batch(seqs, n_threads)
        for x, lp, p in zip(seqs, logprobs, paths, strict=True):
            want_lp, want_p = model.decode(x)
            assert lp == want_lp
            np.testing.assert_array_equal(p, want_p)


