"""Sparse transition matrices (scipy.sparse ``transmat_``, issue 15): the same bits as the
dense matrix in every kernel, fits that keep the sparsity pattern, sampling and
initialisation on the pattern, clear errors."""

import itertools
import pickle
import warnings

import numpy as np
import pytest
from factories import left_to_right, sparse_chain
from scipy import sparse

import hmmfast
from hmmfast import _reference


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
    start, A = left_to_right(5, skip=0.05)
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
