"""One test per defect found by the adversarial review of the inference core (issue 11).

Each test failed on the reviewed code; the oracle is independent every time (brute-force
logsumexp, the NumPy reference, the "log" kernel, or the parameters themselves).
"""

import copy
import pickle
import sys
import threading
import time

import numpy as np
import pytest
from hmm_oracles import brute_force, random_model
from scipy.special import logsumexp

import hmmfast
from hmmfast import _reference

# ------------------------------------------------------------------ 1. scaling underflow


def reference_loglik(startprob, transmat, log_em, lengths=None):
    return float(np.sum(_reference.forward(startprob, transmat, log_em, lengths)))


def test_issue_repro_flushed_state_recovers_functional(implementation):
    log_em = np.array([[0.0, -800.0]] + [[-1.0, 0.0]] * 1000)
    expected = logsumexp([np.log(0.5) - 800.0, np.log(0.5) - 1000.0])  # -800.69
    got = hmmfast.forward([0.5, 0.5], np.eye(2), log_em, implementation=implementation)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(got, reference_loglik([0.5, 0.5], np.eye(2), log_em), rtol=1e-12)


def test_issue_repro_flushed_state_recovers_model(implementation, make_model):
    e, f = np.exp(-20.0), np.exp(-10.0)
    model = make_model([0.5, 0.5], np.eye(2),
                       [[0.5, 0.5 * e, 0.5 - 0.5 * e], [0.5 * f, 0.5, 0.5 - 0.5 * f]],
                       implementation)
    X = np.array([0] * 80 + [1] * 60)
    log_em = _reference.categorical_log_emissions(model.emissionprob_, X)
    expected = reference_loglik(model.startprob_, model.transmat_, log_em)
    assert expected == pytest.approx(-897.73, abs=0.01)
    np.testing.assert_allclose(model.score(X), expected, rtol=1e-12)
    ll, post = model.score_samples(X)
    np.testing.assert_allclose(ll, expected, rtol=1e-12)
    np.testing.assert_allclose(post, _reference.posteriors(model.startprob_, model.transmat_,
                                                            log_em), atol=1e-9)
    n_params = 1 + 2 + 2 * 2
    np.testing.assert_allclose(model.aic(X), -2 * expected + 2 * n_params, rtol=1e-12)


def _left_to_right(n, stay):
    transmat = np.zeros((n, n))
    for i in range(n):
        transmat[i, i] = stay if i < n - 1 else 1.0
        if i < n - 1:
            transmat[i, i + 1] = 1.0 - stay
    return np.eye(1, n)[0], transmat


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
        startprob, transmat = _left_to_right(3, 0.999)
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
    expected = reference_loglik(startprob, transmat, log_em, lengths)
    assert np.isfinite(expected)
    for impl in ("scaling", "log"):
        got = hmmfast.forward(startprob, transmat, log_em, lengths=lengths, implementation=impl)
        np.testing.assert_allclose(got, expected, rtol=1e-9, err_msg=impl)
        ll, post = hmmfast.forward_backward(startprob, transmat, log_em, lengths=lengths,
                                            implementation=impl)
        np.testing.assert_allclose(ll, expected, rtol=1e-9, err_msg=impl)
        np.testing.assert_allclose(
            post, _reference.posteriors(startprob, transmat, log_em, lengths), atol=1e-9,
            err_msg=impl)


def sparse_chain(rng, n):
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
    margin, and -900 outliers: scaling == log == the reference to 1e-9."""
    for seed in range(40):
        rng = np.random.default_rng(1000 + seed)
        n = int(rng.integers(2, 7))
        startprob, transmat = sparse_chain(rng, n)
        log_em = rng.normal(size=(1200, n))
        for block in range(0, 1200, 200):
            log_em[block:block + 200, rng.integers(n)] += rng.choice([3.0, 30.0])
        log_em[rng.random(log_em.shape) < 0.02] -= 900.0
        scaled = hmmfast.forward(startprob, transmat, log_em)
        logged = hmmfast.forward(startprob, transmat, log_em, implementation="log")
        assert np.isfinite(logged)
        np.testing.assert_allclose(logged, reference_loglik(startprob, transmat, log_em),
                                   rtol=1e-9)
        np.testing.assert_allclose(scaled, logged, rtol=1e-9, err_msg=f"seed {seed}")


# ------------------------------------------------------------------ 2. cache race


def test_cache_never_outlives_an_assignment(make_model):
    """Readers score while a writer alternates two emission matrices. Every score equals
    one of the two parameter sets' scores, and after the threads join the model scores
    with the parameters it holds."""
    rng = np.random.default_rng(3)
    # many symbols: building the kernel inputs takes long enough for writers to land
    # while a reader is building them
    startprob, transmat, b1 = random_model(rng, 4, 20_000)
    b2 = rng.dirichlet(np.ones(20_000), size=4)
    X = rng.integers(0, 20_000, size=200)
    scores = [make_model(startprob, transmat, b).score(X) for b in (b1, b2)]
    assert scores[0] != scores[1]
    model = make_model(startprob, transmat, b1)
    bad = []
    for trial in range(40):
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                s = model.score(X)
                if s not in scores:
                    bad.append(s)

        def writer(trial=trial):
            for k in range(8):
                model.emissionprob_ = b2 if (k + trial) % 2 else b1
                time.sleep(0.0005 * (k % 3))
            stop.set()

        threads = [threading.Thread(target=reader) for _ in range(3)]
        threads.append(threading.Thread(target=writer))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        held = 0 if np.allclose(model.emissionprob_, b1, rtol=1e-12) else 1
        np.testing.assert_allclose(model.emissionprob_, (b1, b2)[held], rtol=1e-12)
        assert model.score(X) == scores[held], f"trial {trial}: scores with stale parameters"
    assert bad == []


# ------------------------------------------------------------------ 3. read-only copies


@pytest.mark.parametrize("duplicate", [lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy,
                                       copy.copy])
def test_parameters_stay_read_only_after_copies(make_model, duplicate):
    model = make_model([0.6, 0.4], [[0.7, 0.3], [0.4, 0.6]],
                       [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]])
    model.score([0, 1])
    twin = duplicate(model)
    for name in ("startprob_", "transmat_", "emissionprob_"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(twin, name)[0] = 5.0
    assert twin.score([0, 2, 1]) == model.score([0, 2, 1])


# ------------------------------------------------------------------ 4. huge log-emissions


@pytest.mark.parametrize("log_em", [
    [[1e308, 1e308], [1e308, 1e308]],
    [[1e308, 0.0], [1e308, 0.0], [-1e308, 0.0]],
    [[-1e300, 0.0], [-1e300, -1e300]],
])
@pytest.mark.parametrize("fn", [hmmfast.forward, hmmfast.forward_backward, hmmfast.viterbi])
def test_huge_finite_log_emissions_are_refused(implementation, log_em, fn):
    kwargs = {} if fn is hmmfast.viterbi else {"implementation": implementation}
    with pytest.raises(hmmfast.HMMInputError, match=r"log_emissions\[0, 0\] = .*magnitude"):
        fn([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], log_em, **kwargs)


def test_largest_allowed_log_emissions_agree(implementation):
    log_em = np.array([[1e100, 0.0], [0.0, -1e100], [5.0, -1e100]])
    startprob, transmat = [0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]]
    brute = brute_force(startprob, transmat, log_em)["loglik"]
    got = hmmfast.forward(startprob, transmat, log_em, implementation=implementation)
    assert np.isfinite(got)
    np.testing.assert_allclose(got, brute, rtol=1e-15)


# ------------------------------------------------------------------ 5. unaligned arrays


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


# ------------------------------------------------------------------ 6. X mutated mid-call


def test_observations_mutated_during_calls_never_read_out_of_bounds(make_model):
    """Another thread flips X between valid and invalid symbols while score_samples and
    decode run without the GIL: every call returns a sane result or a library error."""
    rng = np.random.default_rng(6)
    model = make_model(*random_model(rng, 5, 4))
    X = rng.integers(0, 4, size=20_000).astype(np.intp)
    stop = threading.Event()

    def flipper():  # a few positions toggle between a valid and an invalid symbol
        while not stop.is_set():
            for i in (3, 9_999, 19_000):
                X[i] = -1
                X[i] = 1

    thread = threading.Thread(target=flipper)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # hand the GIL back to the caller quickly
    thread.start()
    try:
        for _ in range(300):
            try:
                _, post = model.score_samples(X)
                assert np.all(np.isfinite(post))
                np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-9)
                logprob, states = model.decode(X, algorithm="map")
                assert not np.isnan(logprob) and states.min() >= 0 and states.max() < 5
            except (hmmfast.HMMInputError, hmmfast.ImpossibleSequenceError):
                pass
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)


# ------------------------------------------------------------------ 7. messages, conversions


@pytest.mark.parametrize("lengths,match", [
    ([1e300, 6], r"lengths\[0\] = 1e\+300"),
    (np.array([2**64 - 1, 7], dtype=np.uint64), r"lengths\[0\] = 18446744073709551615"),
    ([2**63 - 1, 2**63 - 1, 8], r"lengths\[0\] = 9223372036854775807"),
    ([2.5, 4.5], r"lengths\[0\] = 2.5"),
])
def test_lengths_report_the_value_given(make_model, lengths, match):
    model = make_model([0.6, 0.4], [[0.7, 0.3], [0.4, 0.6]],
                       [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]])
    with np.errstate(all="raise"):  # no RuntimeWarning on the way to the error
        with pytest.raises(hmmfast.HMMInputError, match=match):
            model.score(np.zeros(7, dtype=int), lengths)


def test_complex_values_are_refused(make_model):
    model = hmmfast.CategoricalHMM(2)
    with pytest.raises(hmmfast.HMMTypeError, match="startprob_ .*complex"):
        model.startprob_ = np.array([0.5, 0.5], dtype=complex)
    with pytest.raises(hmmfast.HMMTypeError, match="log_emissions .*complex"):
        hmmfast.forward([0.5, 0.5], np.eye(2), np.zeros((3, 2), dtype=complex))
    with pytest.raises(hmmfast.HMMTypeError, match="transmat .*complex"):
        hmmfast.forward([0.5, 0.5], np.eye(2, dtype=complex), np.zeros((3, 2)))


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
