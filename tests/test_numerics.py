"""implementation="scaling" and "log": exact over long sequences and through underflow.

The scaled kernels must never lose a state whose mass falls more than ~1e-308 below the
others' (the adversarial models below flush one and then need it); both implementations
equal the NumPy reference, a log-space forward (hmm_oracles.log_forward), brute force or
hand-computed values.
"""

import numpy as np
import pytest
from factories import left_to_right
from hmm_oracles import brute_force, log, log_forward, random_model
from scipy.special import logsumexp

import hmmfast
from hmmfast import _reference


@pytest.mark.parametrize("seed", range(3))
def test_long_sequence_no_underflow_log_equals_scaling(seed, make_model):
    rng = np.random.default_rng(seed)
    startprob, transmat, emissionprob = random_model(rng, 5, 10)
    X = rng.integers(0, 10, size=(100_000, 1))
    scaled = make_model(startprob, transmat, emissionprob, "scaling")
    logged = make_model(startprob, transmat, emissionprob, "log")
    s1, s2 = scaled.score(X), logged.score(X)
    assert np.isfinite(s1) and s1 < -1e5  # far beyond float64's exponent range as a probability
    np.testing.assert_allclose(s1, s2, rtol=1e-9)
    ll1, p1 = scaled.score_samples(X)
    ll2, p2 = logged.score_samples(X)
    np.testing.assert_allclose(ll1, ll2, rtol=1e-9)
    np.testing.assert_allclose(p1, p2, rtol=1e-9, atol=1e-12)
    assert np.all(np.isfinite(p1))
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(scaled.decode(X)[0], logged.decode(X)[0], rtol=1e-12)


def test_long_sequence_matches_reference(make_model):
    rng = np.random.default_rng(11)
    startprob, transmat, emissionprob = random_model(rng, 3, 4)
    X = rng.integers(0, 4, size=(20_000, 1))
    model = make_model(startprob, transmat, emissionprob)
    log_em = _reference.categorical_log_emissions(emissionprob, X)
    np.testing.assert_allclose(model.score(X), log_forward(startprob, transmat, log_em),
                               rtol=1e-10)
    ref_score, _ = _reference.viterbi(startprob, transmat, log_em)
    score, path = model.decode(X)
    np.testing.assert_allclose(score, ref_score[0], rtol=1e-12)
    np.testing.assert_allclose(
        _reference.path_log_prob(startprob, transmat, log_em, path)[0], score, rtol=1e-12
    )


def test_path_below_float64_range_is_not_lost(implementation, make_model):
    """The only explaining path has probability ~1e-400: below what a double holds, so the
    scaled pass underflows and the log kernel's shifted sums underflow too; both must fall
    back to exact arithmetic rather than report an impossible sequence."""
    eps = 1e-200
    startprob = [1.0, 0.0, 0.0]
    transmat = [[1 - eps, eps, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    emissionprob = [[1.0, 0.0, 0.0], [eps, 0.0, 1 - eps], [0.0, 1.0, 0.0]]
    X = np.array([0, 0, 1, 1])  # only path: 0, 1, 2, 2 with probability eps**2
    truth = brute_force(startprob, transmat, log(emissionprob).T[X])
    assert np.isfinite(truth["loglik"]) and truth["loglik"] < -900
    model = make_model(startprob, transmat, emissionprob, implementation)
    np.testing.assert_allclose(model.score(X), truth["loglik"], rtol=1e-12)
    _, post = model.score_samples(X)
    np.testing.assert_allclose(post, truth["posteriors"], atol=1e-12)
    np.testing.assert_array_equal(model.decode(X)[1], truth["viterbi_path"])


def test_frame_whose_emissions_all_underflow(implementation):
    """A Gaussian-outlier-like frame: every state's log-density is about -1e5. hmmlearn's
    scaling raises here; shifting each frame by its maximum keeps it exact."""
    rng = np.random.default_rng(5)
    startprob, transmat, _ = random_model(rng, 4, 2)
    log_em = rng.normal(size=(50, 4))
    log_em[20] -= 1e5
    expected = _reference.forward(startprob, transmat, log_em)[0]
    got = hmmfast.forward(startprob, transmat, log_em, implementation=implementation)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    _, post = hmmfast.forward_backward(startprob, transmat, log_em, implementation=implementation)
    np.testing.assert_allclose(post, _reference.posteriors(startprob, transmat, log_em),
                               rtol=1e-9, atol=1e-12)


def test_subnormals_survive_import():
    """No -ffast-math: flush-to-zero would turn the smallest subnormal into 0."""
    import hmmfast._trellis  # noqa: F401

    tiny = np.float64(5e-324)
    assert tiny != 0  # denormals-are-zero would read the subnormal input as 0
    product = np.float64(1e-300) * np.float64(1e-10)  # 1e-310 is subnormal
    assert product > 0 and product < np.finfo(np.float64).tiny  # flush-to-zero gives 0


def test_identities_on_random_models(implementation, make_model):
    """forward == forward-backward likelihood; posteriors sum to 1; the Viterbi score is the
    log-density of the decoded path and bounds the true path's."""
    for seed in range(10):
        rng = np.random.default_rng(200 + seed)
        startprob, transmat, emissionprob = random_model(rng, 6, 8, zeros=seed % 2 == 0)
        model = make_model(startprob, transmat, emissionprob, implementation)
        X, true_states = model.sample(400, random_state=seed)
        log_em = _reference.categorical_log_emissions(emissionprob, X)
        ll, post = model.score_samples(X)
        np.testing.assert_allclose(ll, model.score(X), rtol=1e-12)
        np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-12)
        score, path = model.decode(X)
        np.testing.assert_allclose(
            _reference.path_log_prob(startprob, transmat, log_em, path)[0], score, rtol=1e-12)
        assert score >= _reference.path_log_prob(startprob, transmat, log_em, true_states)[0]
        assert score <= ll


# ------------------------------------------------------ a state flushed by scaling, needed later


def test_issue_repro_flushed_state_recovers_functional(implementation):
    log_em = np.array([[0.0, -800.0]] + [[-1.0, 0.0]] * 1000)
    expected = logsumexp([np.log(0.5) - 800.0, np.log(0.5) - 1000.0])  # -800.69
    got = hmmfast.forward([0.5, 0.5], np.eye(2), log_em, implementation=implementation)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(got, log_forward([0.5, 0.5], np.eye(2), log_em), rtol=1e-12)


def test_issue_repro_flushed_state_recovers_model(implementation, make_model):
    e, f = np.exp(-20.0), np.exp(-10.0)
    model = make_model([0.5, 0.5], np.eye(2),
                       [[0.5, 0.5 * e, 0.5 - 0.5 * e], [0.5 * f, 0.5, 0.5 - 0.5 * f]],
                       implementation)
    X = np.array([0] * 80 + [1] * 60)
    log_em = _reference.categorical_log_emissions(model.emissionprob_, X)
    expected = log_forward(model.startprob_, model.transmat_, log_em)
    assert expected == pytest.approx(-897.73, abs=0.01)
    np.testing.assert_allclose(model.score(X), expected, rtol=1e-12)
    ll, post = model.score_samples(X)
    np.testing.assert_allclose(ll, expected, rtol=1e-12)
    np.testing.assert_allclose(post, _reference.posteriors(model.startprob_, model.transmat_,
                                                            log_em), atol=1e-9)
    n_params = 1 + 2 + 2 * 2
    np.testing.assert_allclose(model.aic(X), -2 * expected + 2 * n_params, rtol=1e-12)


ADVERSARIAL = ["block_diagonal", "left_to_right", "recovering", "outlier", "tiny_transition"]


def adversarial_case(kind, rng):
    """(startprob, transmat, log_emissions, lengths) designed to flush a state in a scaled
    forward pass (mass more than ~1e-308 below the others) that later explains the data."""
    if kind == "block_diagonal":
        # two blocks that never talk; block B is 900 nats behind after 30 frames, then wins
        block = np.array([[0.9, 0.1], [0.2, 0.8]])
        transmat = np.zeros((4, 4))
        transmat[:2, :2] = block
        transmat[2:, 2:] = block
        startprob = np.full(4, 0.25)
        log_em = np.concatenate([
            np.tile([0.0, 0.0, -30.0, -30.0], (30, 1)),
            np.tile([-2.0, -2.0, 0.0, 0.0], (2000, 1)),
        ]) + rng.normal(scale=0.1, size=(2030, 4))
        return startprob, transmat, log_em, None
    if kind == "left_to_right":
        # the chain must stay in state 0 for 1,000 frames that favour state 1 by 1 nat
        startprob, transmat = left_to_right(3, 0.999)
        log_em = np.concatenate([
            np.tile([-1.0, 0.0, 0.0], (1000, 1)),
            np.tile([0.0, -50.0, -50.0], (40, 1)),
        ])
        return startprob, transmat, log_em, None
    if kind == "recovering":
        # state 1 keeps near-zero mass for 10**3 steps (each step 0.8 nats behind), then
        # the data switch to it; two sequences so the kernels' offsets are exercised too
        transmat = np.eye(3) * 0.999 + 0.0005
        transmat[:, 1] = 0.0
        transmat[1] = [0.0, 1.0, 0.0]
        transmat /= transmat.sum(axis=1, keepdims=True)
        startprob = np.array([0.5, 0.2, 0.3])
        one = np.concatenate([np.tile([0.0, -0.8, 0.0], (1000, 1)),
                              np.tile([-60.0, 0.0, -60.0], (900, 1))])
        return startprob, transmat, np.concatenate([one, one[:500]]), [1900, 500]
    if kind == "outlier":
        # state 1 trails by 75 nats when one outlier frame puts it 800 below the maximum;
        # afterwards the data favour it by 1 nat a frame
        startprob = np.array([0.5, 0.5])
        transmat = np.eye(2)
        log_em = np.concatenate([np.tile([0.0, -0.5], (150, 1)), [[0.0, -800.0]],
                                 np.tile([-1.0, 0.0], (1500, 1))])
        return startprob, transmat, log_em, None
    # the only way into state 1 is a transition of probability 1e-300 at a frame where it
    # emits at -50: its mass is subnormal (a few significant bits) beside state 2's, and
    # state 1 explains everything afterwards
    startprob = np.array([1.0, 0.0, 0.0])
    transmat = np.array([[0.0, 1e-300, 1.0 - 1e-300], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    log_em = np.concatenate([[[0.0, -np.inf, -np.inf], [-np.inf, -50.0, 0.0]],
                             np.tile([-np.inf, 0.0, -1.0], (1000, 1))])
    return startprob, transmat, log_em, None


@pytest.mark.parametrize("kind", ADVERSARIAL)
def test_scaling_equals_log_on_adversarial_models(kind):
    rng = np.random.default_rng(ADVERSARIAL.index(kind))
    startprob, transmat, log_em, lengths = adversarial_case(kind, rng)
    expected = log_forward(startprob, transmat, log_em, lengths)
    assert np.isfinite(expected)
    expected_post = _reference.posteriors(startprob, transmat, log_em, lengths)
    for impl in ("scaling", "log"):
        got = hmmfast.forward(startprob, transmat, log_em, lengths=lengths, implementation=impl)
        np.testing.assert_allclose(got, expected, rtol=1e-9, err_msg=impl)
        ll, post = hmmfast.forward_backward(startprob, transmat, log_em, lengths=lengths,
                                            implementation=impl)
        np.testing.assert_allclose(ll, expected, rtol=1e-9, err_msg=impl)
        np.testing.assert_allclose(post, expected_post, atol=1e-9, err_msg=impl)


def self_loop_chain(rng, n):
    """A random chain where each state has a self-loop and at most one other successor."""
    transmat = np.diag(rng.uniform(0.5, 1.0, n))
    for i in range(n):
        j = int(rng.integers(n))
        transmat[i, j] += 1.0 - transmat[i, i] if j != i else 0.0
        if j == i:
            transmat[i, i] = 1.0
    startprob = rng.dirichlet(np.ones(n))
    return startprob, transmat


def test_scaling_equals_log_on_random_sparse_models():
    """Random chains with few successors, data in regimes that favour one state by a random
    margin, and -900 outliers: scaling == log == the log-space forward oracle to 1e-9."""
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        n = int(rng.integers(2, 7))
        startprob, transmat = self_loop_chain(rng, n)
        log_em = rng.normal(size=(1200, n))
        for block in range(0, 1200, 200):
            log_em[block:block + 200, rng.integers(n)] += rng.choice([3.0, 30.0])
        log_em[rng.random(log_em.shape) < 0.02] -= 900.0
        scaled = hmmfast.forward(startprob, transmat, log_em)
        logged = hmmfast.forward(startprob, transmat, log_em, implementation="log")
        assert np.isfinite(logged)
        np.testing.assert_allclose(logged, log_forward(startprob, transmat, log_em),
                                   rtol=1e-9)
        np.testing.assert_allclose(scaled, logged, rtol=1e-9, err_msg=f"seed {seed}")


def test_largest_allowed_log_emissions_agree(implementation):
    log_em = np.array([[1e100, 0.0], [0.0, -1e100], [5.0, -1e100]])
    startprob, transmat = [0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]]
    brute = brute_force(startprob, transmat, log_em)["loglik"]
    got = hmmfast.forward(startprob, transmat, log_em, implementation=implementation)
    assert np.isfinite(got)
    np.testing.assert_allclose(got, brute, rtol=1e-15)
