"""Large state spaces (issue 15): sparse transition matrices (same bits as dense) and
beam-pruned Viterbi (Kaldi's conventions; exact with an infinite beam)."""

import itertools
import pickle
import warnings

import numpy as np
import pytest
from scipy import sparse

import hmmfast
from hmmfast import _reference


def sparse_chain(rng, n, per_row=3):
    """A random chain with ``per_row`` successors per state (self-loop included)."""
    A = np.zeros((n, n))
    for i in range(n):
        succ = np.unique(np.concatenate([[i], rng.choice(n, per_row - 1)]))
        A[i, succ] = rng.dirichlet(np.ones(len(succ)))
    start = np.zeros(n)
    start[rng.choice(n, max(1, n // 4), replace=False)] = 1.0
    return start / start.sum(), A


def left_to_right(n, stay=0.8, skip=0.05):
    A = np.zeros((n, n))
    for i in range(n):
        if i + 2 < n:
            A[i, i], A[i, i + 1], A[i, i + 2] = stay, 1 - stay - skip, skip
        elif i + 1 < n:
            A[i, i], A[i, i + 1] = stay, 1 - stay
        else:
            A[i, i] = 1.0
    return np.eye(1, n)[0], A


# ------------------------------------------------------------------ sparse == dense


@pytest.mark.parametrize("n", [6, 90])  # 90 > 64: the sparse-only kernels
@pytest.mark.parametrize("implementation", ["scaling", "log"])
def test_sparse_and_dense_give_the_same_bits(n, implementation):
    rng = np.random.default_rng(n)
    start, A = sparse_chain(rng, n)
    log_em = rng.normal(size=(500, n)) * 3
    lengths = [200, 1, 299]
    for fmt in (sparse.csr_matrix, sparse.coo_matrix, sparse.csc_matrix):
        S = fmt(A)
        assert (hmmfast.forward(start, S, log_em, lengths=lengths, implementation=implementation)
                == hmmfast.forward(start, A, log_em, lengths=lengths,
                                   implementation=implementation))
        ll_s, post_s = hmmfast.forward_backward(start, S, log_em, lengths=lengths,
                                                implementation=implementation)
        ll_d, post_d = hmmfast.forward_backward(start, A, log_em, lengths=lengths,
                                                implementation=implementation)
        assert ll_s == ll_d
        np.testing.assert_array_equal(post_s, post_d)
        v_s, p_s = hmmfast.viterbi(start, S, log_em, lengths=lengths)
        v_d, p_d = hmmfast.viterbi(start, A, log_em, lengths=lengths)
        assert v_s == v_d
        np.testing.assert_array_equal(p_s, p_d)
    # and both equal the NumPy reference
    np.testing.assert_allclose(ll_d, _reference.forward(start, A, log_em, lengths).sum(),
                               rtol=1e-10)


@pytest.mark.parametrize("n", [6, 80])
def test_sparse_fit_equals_dense_fit_and_keeps_zeros(n):
    rng = np.random.default_rng(10 + n)
    start, A = sparse_chain(rng, n)
    B = rng.dirichlet(np.ones(9), n)
    models = []
    for trans in (A, sparse.csr_matrix(A)):
        m = hmmfast.CategoricalHMM(n, init_params="", n_iter=6, tol=-np.inf)
        m.startprob_, m.transmat_, m.emissionprob_ = start, trans, B
        models.append(m)
    X = models[0].sample(3000, random_state=2)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        for m in models:
            m.fit(X, [1000, 2000])
    dense, sp = models
    assert sparse.issparse(sp.transmat_) and sp.transmat_.format == "csr"
    np.testing.assert_array_equal(sp.transmat_.toarray(), dense.transmat_)
    np.testing.assert_array_equal(sp.emissionprob_, dense.emissionprob_)
    assert sp.monitor_.history == dense.monitor_.history
    assert np.all(dense.transmat_[A == 0] == 0)
    assert sp.transmat_.nnz <= np.count_nonzero(A)
    with pytest.raises(ValueError, match="read-only"):
        sp.transmat_.data[0] = 0.5
    twin = pickle.loads(pickle.dumps(sp))
    assert sparse.issparse(twin.transmat_) and twin.score(X) == sp.score(X)
    np.testing.assert_allclose(sp.get_stationary_distribution(),
                               dense.get_stationary_distribution(), atol=1e-8)
    assert sp.bic(X) != dense.bic(X)  # the sparse model counts only its non-zeros


def test_sparse_model_samples_and_inits_on_its_pattern():
    rng = np.random.default_rng(3)
    n = 70
    start, A = sparse_chain(rng, n)
    model = hmmfast.CategoricalHMM(n, random_state=0)
    model.startprob_, model.transmat_ = start, sparse.csr_matrix(A)
    model.emissionprob_ = rng.dirichlet(np.ones(5), n)
    X, states = model.sample(5000, random_state=1)
    assert np.all(A[states[:-1], states[1:]] > 0)  # only allowed transitions
    model.init_params = "t"
    model.n_iter = 0
    model.fit(X)
    assert sparse.issparse(model.transmat_)
    np.testing.assert_array_equal(model.transmat_.indices, sparse.csr_matrix(A).indices)
    np.testing.assert_allclose(np.asarray(model.transmat_.sum(axis=1)).ravel(), 1.0)


def test_sparse_fit_supervised_counts_and_forbidden_transitions():
    start, A = left_to_right(5)
    model = hmmfast.CategoricalHMM(5, n_features=3)
    model.transmat_ = sparse.csr_matrix(A)
    X = np.array([0, 1, 1, 2, 0, 1, 2])
    states = np.array([0, 0, 1, 2, 2, 3, 4])
    model.fit_supervised(X, states)
    expected = np.zeros((5, 5))
    for i, j in itertools.pairwise(states):
        expected[i, j] += 1
    rows = expected.sum(axis=1, keepdims=True)
    got = model.transmat_.toarray()
    seen = rows[:, 0] > 0
    np.testing.assert_allclose(got[seen], expected[seen] / rows[seen])
    bad = hmmfast.CategoricalHMM(5, n_features=3)
    bad.transmat_ = sparse.csr_matrix(A)
    with pytest.raises(hmmfast.HMMInputError, match=r"states\[1\] = 3 -> states\[2\] = 1"):
        bad.fit_supervised([0, 1, 2], [2, 3, 1])


def test_bad_sparse_matrices():
    model = hmmfast.CategoricalHMM(3)
    with pytest.raises(hmmfast.ParameterError, match="row 1 of transmat_ sums to"):
        model.transmat_ = sparse.csr_matrix([[1.0, 0, 0], [0.5, 0, 0], [0, 0, 1.0]])
    with pytest.raises(hmmfast.ParameterError, match=r"non-negative; transmat_\[0, 1\]"):
        model.transmat_ = sparse.csr_matrix([[1.5, -0.5, 0], [0, 1.0, 0], [0, 0, 1.0]])
    with pytest.raises(hmmfast.ParameterError, match="shape"):
        model.transmat_ = sparse.eye(4, format="csr")


# ------------------------------------------------------------------ beam


@pytest.mark.parametrize("seed", range(12))
def test_infinite_beam_equals_dense_viterbi(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 40))
    start, A = sparse_chain(rng, n, per_row=int(rng.integers(1, 6)))
    if seed % 3 == 0:
        A = rng.dirichlet(np.ones(n), n)  # dense
    log_em = rng.normal(size=(300, n)) * 2
    if seed % 4 == 1:
        log_em = np.round(log_em)  # exact ties
    log_em[rng.random(log_em.shape) < 0.05] = -np.inf
    lengths = [100, 150, 50]
    try:
        want = hmmfast.viterbi(start, A, log_em, lengths=lengths)
    except hmmfast.ImpossibleSequenceError as exc:
        with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
            hmmfast.viterbi(start, A, log_em, lengths=lengths, beam=np.inf, max_active=n)
        assert not isinstance(info.value, hmmfast.PruningError)
        assert info.value.position == exc.position
        return
    for trans in (A, sparse.csr_matrix(A)):
        got = hmmfast.viterbi(start, trans, log_em, lengths=lengths, beam=np.inf,
                              max_active=n)  # max_active=N forces the beam kernel
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])


def greedy_path(start, A, log_em):
    """max_active=1 by hand: the best single state at each step."""
    log_a = np.log(np.where(A > 0, A, np.nan))
    state = int(np.argmax(np.log(start) + log_em[0]))
    path, total = [state], np.log(start[state]) + log_em[0, state]
    for t in range(1, len(log_em)):
        cand = np.nan_to_num(log_a[state], nan=-np.inf) + log_em[t]
        state = int(np.argmax(cand))
        total += cand[state]
        path.append(state)
    return total, np.array(path)


def test_pruning_keeps_the_best_and_reports_the_true_score():
    rng = np.random.default_rng(7)
    n = 30
    start, A = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n) * 0.3, n)
    log_em = rng.normal(size=(400, n)) * 1.5
    exact, exact_path = hmmfast.viterbi(start, A, log_em)
    worse_found = False
    for beam in (0.0, 0.5, 2.0, 5.0, 50.0):
        for max_active in (None, 1, 3, 10):
            for min_active in (None, 2):
                if max_active is not None and min_active is not None and min_active > max_active:
                    continue
                score, path = hmmfast.viterbi(start, A, log_em, beam=beam, max_active=max_active,
                                              min_active=min_active)
                true = _reference.path_log_prob(start, A, log_em, path)[0]
                np.testing.assert_allclose(score, true, rtol=1e-12)
                assert score <= exact + 1e-9
                worse_found |= score < exact - 1e-6
    assert worse_found  # a narrow beam does return a worse path here
    score, path = hmmfast.viterbi(start, A, log_em, max_active=1)
    want_score, want_path = greedy_path(start, A, log_em)
    np.testing.assert_array_equal(path, want_path)
    np.testing.assert_allclose(score, want_score, rtol=1e-12)
    assert hmmfast.viterbi(start, A, log_em, beam=1e9)[0] == exact


def test_pruning_that_removes_every_path_says_so():
    # the greedy first step picks state 1, whose only continuation cannot emit symbol 1
    start = np.array([0.5, 0.5])
    A = np.array([[0.5, 0.5], [0.0, 1.0]])
    log_em = np.array([[np.log(0.4), np.log(0.6)], [np.log(0.9), -np.inf]])
    with pytest.raises(hmmfast.PruningError, match="widen beam") as info:
        hmmfast.viterbi(start, A, log_em, max_active=1)
    assert info.value.step == 1
    assert np.isfinite(hmmfast.viterbi(start, A, log_em)[0])
    assert isinstance(info.value, hmmfast.ImpossibleSequenceError)


def test_beam_through_the_model_api_and_batches():
    n = 100
    start, A = left_to_right(n)
    B = np.full((n, 20), 0.01)
    B[np.arange(n), np.arange(n) % 20] += 0.8
    B /= B.sum(axis=1, keepdims=True)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_, model.transmat_, model.emissionprob_ = start, sparse.csr_matrix(A), B
    X = model.sample(2000, random_state=1)[0]
    exact = model.decode(X)
    pruned = model.decode(X, beam=15.0)
    assert pruned[0] == exact[0]
    np.testing.assert_array_equal(pruned[1], exact[1])
    seqs = [X[:700], X[700:1500], X[1500:]]
    logprobs, paths = model.decode_batch(seqs, beam=15.0, max_active=50)
    for x, lp, p in zip(seqs, logprobs, paths, strict=True):
        assert (lp, p.tolist()) == (model.decode(x, beam=15.0, max_active=50)[0],
                                    model.decode(x, beam=15.0, max_active=50)[1].tolist())
    with pytest.raises(hmmfast.ParameterError, match="algorithm='viterbi'"):
        model.decode(X, algorithm="map", beam=3.0)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"beam": -1.0}, hmmfast.ParameterError, "beam must be >= 0"),
    ({"beam": "wide"}, hmmfast.HMMTypeError, "beam must be a number"),
    ({"max_active": 0}, hmmfast.ParameterError, "max_active must be an integer >= 1"),
    ({"max_active": 2, "min_active": 3}, hmmfast.ParameterError, "min_active=3 exceeds max_active=2"),
])
def test_bad_pruning_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        hmmfast.viterbi([0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]], np.zeros((3, 2)), **kwargs)
