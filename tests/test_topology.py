"""hmmfast.topology: closed-form matrices, and structural zeros that initialisation
(init_params without "s"/"t", or a sparse transmat_) and EM keep."""

import warnings

import numpy as np
import pytest
from scipy import sparse

import hmmfast
from hmmfast import ParameterError
from hmmfast.topology import banded, ergodic, left_right


def test_left_right_closed_form():
    start, trans = left_right(4, skip=1, self_loop=0.5)
    np.testing.assert_array_equal(start, [1, 0, 0, 0])
    np.testing.assert_allclose(trans, [[0.5, 0.25, 0.25, 0.0],
                                       [0.0, 0.5, 0.25, 0.25],
                                       [0.0, 0.0, 0.5, 0.5],
                                       [0.0, 0.0, 0.0, 1.0]], rtol=0, atol=0)
    _, plain = left_right(3, skip=0, self_loop=0.9)
    np.testing.assert_allclose(plain, [[0.9, 0.1, 0], [0, 0.9, 0.1], [0, 0, 1]], atol=1e-15)
    _, no_loop = left_right(3, skip=0, self_loop=0.0)
    np.testing.assert_array_equal(no_loop, [[0, 1, 0], [0, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(left_right(1)[1], [[1.0]])


@pytest.mark.parametrize("skip", [0, 1, 2, 5])
def test_left_right_moves_reach_skip_plus_one(skip):
    n = 7
    _, trans = left_right(n, skip=skip)
    for i in range(n - 1):
        reach = np.flatnonzero(trans[i])
        assert reach.min() == i and reach.max() == min(i + skip + 1, n - 1)
    np.testing.assert_allclose(trans.sum(axis=1), 1.0, rtol=0, atol=1e-15)


def test_banded_and_ergodic_closed_form():
    start, trans = banded(4, 1)
    np.testing.assert_allclose(start, 0.25)
    third = 1 / 3
    np.testing.assert_allclose(trans, [[0.5, 0.5, 0, 0], [third, third, third, 0],
                                       [0, third, third, third], [0, 0, 0.5, 0.5]])
    start, trans = ergodic(3)
    np.testing.assert_allclose(start, 1 / 3)
    np.testing.assert_allclose(trans, np.full((3, 3), 1 / 3))


@pytest.mark.parametrize("make", [lambda s: left_right(5, skip=1, sparse=s),
                                  lambda s: banded(5, 2, sparse=s),
                                  lambda s: ergodic(5, sparse=s)])
def test_sparse_equals_dense(make):
    dense, csr = make(False), make(True)
    assert sparse.issparse(csr[1]) and csr[1].format == "csr"
    np.testing.assert_array_equal(csr[1].toarray(), dense[1])
    np.testing.assert_array_equal(csr[0], dense[0])
    model = hmmfast.CategoricalHMM(5)
    model.startprob_, model.transmat_ = csr  # valid model parameters
    model.transmat_ = dense[1]


@pytest.mark.parametrize("call, match", [
    (lambda: left_right(0), "n must be an integer >= 1"),
    (lambda: left_right(3, skip=-1), "skip must be an integer >= 0"),
    (lambda: left_right(3, self_loop=1.0), r"self_loop must be in \[0, 1\)"),
    (lambda: left_right(3, self_loop="x"), "self_loop must be a probability"),
    (lambda: banded(3, -1), "width must be an integer >= 0"),
    (lambda: ergodic(2.5), "n must be an integer"),
])
def test_bad_arguments(call, match):
    with pytest.raises((ParameterError, hmmfast.HMMTypeError), match=match):
        call()


def _left_right_data(seed=0):
    truth = hmmfast.GaussianHMM(4, "diag")
    truth.startprob_, truth.transmat_ = left_right(4, skip=1, self_loop=0.7)
    truth.means_ = np.arange(4.0)[:, None] * 4
    truth.covars_ = np.ones((4, 1))
    rng = np.random.default_rng(seed)
    return truth, np.concatenate([truth.sample(25, random_state=rng)[0] for _ in range(60)])


@pytest.mark.parametrize("as_sparse", [False, True])
@pytest.mark.parametrize("method", ["fit", "fit_viterbi"])
def test_training_keeps_the_zeros(as_sparse, method):
    truth, X = _left_right_data()
    model = hmmfast.GaussianHMM(4, "diag", init_params="mc", n_iter=15, random_state=0)
    model.startprob_, model.transmat_ = left_right(4, skip=1, sparse=as_sparse)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        getattr(model, method)(X, [25] * 60)
    trans = model.transmat_.toarray() if as_sparse else np.asarray(model.transmat_)
    assert np.all(trans[np.asarray(truth.transmat_) == 0] == 0)
    np.testing.assert_array_equal(model.startprob_, [1, 0, 0, 0])


def test_sparse_pattern_survives_random_initialisation():
    """With "t" in init_params a sparse transmat_ gets random values on its pattern."""
    _, X = _left_right_data(1)
    model = hmmfast.GaussianHMM(4, "diag", init_params="tmc", n_iter=3, random_state=0)
    start, trans = left_right(4, skip=1, sparse=True)
    model.startprob_, model.transmat_ = start, trans
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.fit(X, [25] * 60)
    assert sparse.issparse(model.transmat_)
    assert np.all(model.transmat_.toarray()[trans.toarray() == 0] == 0)
    assert model.transmat_.nnz == trans.nnz
