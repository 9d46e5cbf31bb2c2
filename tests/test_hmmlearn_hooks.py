"""hmmlearn's semi-private hooks, log records and accepted shapes; read-only parameters
whose edit errors say how to assign (hmmfast._compat, hmmfast._readonly)."""

import logging
import warnings

import numpy as np
import pytest

import hmmfast
from hmmfast import HMMInputError, HMMTypeError, ParameterError
from hmmfast._readonly import ParameterArray


def gaussian(covariance_type="diag", n=2, d=3, **kw):
    rng = np.random.default_rng(0)
    m = hmmfast.GaussianHMM(n, covariance_type, **kw)
    m.startprob_ = np.full(n, 1.0 / n)
    m.transmat_ = np.full((n, n), 1.0 / n)
    m.means_ = rng.normal(size=(n, d))
    m.covars_ = {"spherical": np.ones(n), "diag": np.ones((n, d)),
                 "full": np.tile(np.eye(d), (n, 1, 1)), "tied": np.eye(d)}[covariance_type]
    return m


def categorical():
    m = hmmfast.CategoricalHMM(2)
    m.startprob_ = [0.6, 0.4]
    m.transmat_ = [[0.7, 0.3], [0.4, 0.6]]
    m.emissionprob_ = [[0.1, 0.4, 0.5], [0.6, 0.3, 0.1]]
    return m


def gmm():
    m = hmmfast.GMMHMM(2, n_mix=2)
    m.startprob_ = [0.5, 0.5]
    m.transmat_ = [[0.5, 0.5], [0.5, 0.5]]
    m.weights_ = [[0.5, 0.5], [0.3, 0.7]]
    m.means_ = np.arange(8.0).reshape(2, 2, 2)
    m.covars_ = np.ones((2, 2, 2))
    return m


def poisson():
    m = hmmfast.PoissonHMM(2)
    m.startprob_ = [0.5, 0.5]
    m.transmat_ = [[0.5, 0.5], [0.5, 0.5]]
    m.lambdas_ = [[1.0, 2.0], [3.0, 4.0]]
    return m


def multinomial():
    m = hmmfast.MultinomialHMM(2, n_trials=3)
    m.startprob_ = [0.5, 0.5]
    m.transmat_ = [[0.5, 0.5], [0.5, 0.5]]
    m.emissionprob_ = [[0.2, 0.8], [0.6, 0.4]]
    return m


# ---------------------------------------------------------------------- log records


def messages(caplog):
    return [r.getMessage() for r in caplog.records]


def test_overwrite_record_names_the_parameter(caplog):
    caplog.set_level(logging.WARNING)
    m = hmmfast.GaussianHMM(2, n_iter=1)
    m.startprob_ = [0.3, 0.7]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        m.fit(np.random.default_rng(1).normal(size=(50, 2)))
    assert messages(caplog) == [
        "Even though the 'startprob_' attribute is set, it will be overwritten during "
        "initialization because 'init_params' contains 's'"]
    assert caplog.records[0].name == "hmmfast"


def test_no_record_when_init_params_leave_it(caplog):
    caplog.set_level(logging.WARNING)
    m = hmmfast.GaussianHMM(2, n_iter=1, init_params="mc")
    m.startprob_ = [0.3, 0.7]
    m.transmat_ = [[0.5, 0.5], [0.5, 0.5]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        m.fit(np.random.default_rng(1).normal(size=(50, 2)))
    assert messages(caplog) == []
    np.testing.assert_array_equal(m.startprob_ > 0, [True, True])


@pytest.mark.parametrize("make, X, n_free", [
    # s: N - 1 = 1, t: N (N - 1) = 2, m: N D = 6, c: N D = 6 (diag)
    (lambda: gaussian(init_params=""), np.zeros((4, 3)), 15),
    # e: N (M - 1) = 4
    (lambda: categorical(), np.array([[0], [1], [2]]), 7),
    # l: N D = 4
    (lambda: poisson(), np.zeros((3, 2)), 7),
])
def test_degenerate_record_counts_free_parameters(caplog, make, X, n_free):
    caplog.set_level(logging.WARNING)
    m = make()
    m.init_params = ""
    m._init(X, [len(X)])
    assert messages(caplog) == [
        f"Fitting a model with {n_free} free scalar parameters with only {X.size} data "
        "points will result in a degenerate solution."]
    caplog.clear()
    m._init(np.zeros((n_free, X.shape[1]), dtype=X.dtype), [n_free])
    assert messages(caplog) == []


# ---------------------------------------------------------------------- _check_and_set_n_features


def test_check_and_set_n_features_feature_vectors():
    m = hmmfast.GaussianHMM(2)
    m._check_and_set_n_features(np.zeros((5, 3)))
    assert m.n_features == 3
    with pytest.raises(HMMInputError, match="got 4 but expected 3"):
        m._check_and_set_n_features(np.zeros((5, 4)))


def test_check_and_set_n_features_symbols():
    m = hmmfast.CategoricalHMM(2)
    m._check_and_set_n_features(np.array([[0, 0, 2, 1, 3]]).T)
    assert m.n_features == 4
    m._check_and_set_n_features(np.array([[0, 0, 1, 3, 1]], np.uint8))  # any shape
    with pytest.raises(HMMTypeError, match="integers"):
        m._check_and_set_n_features(np.array([[0.0, 2.0]]))
    with pytest.raises(HMMInputError, match="nonnegative"):
        m._check_and_set_n_features(np.array([[0, -2]]))
    with pytest.raises(HMMInputError, match="Largest symbol is 4"):
        m._check_and_set_n_features(np.array([[4]]))


def test_check_and_set_n_features_multinomial_sets_n_trials():
    m = hmmfast.MultinomialHMM(2)
    m._check_and_set_n_features(np.array([[0, 2, 3, 0], [1, 0, 2, 2]]))
    assert m.n_trials == 5 and m.n_features == 4
    with pytest.raises(HMMInputError, match="Total count"):
        m._check_and_set_n_features(np.array([[0, 0, 1, 1], [3, 1, 1, 0]]))
    with pytest.raises(HMMInputError, match="nonnegative integers"):
        m._check_and_set_n_features(np.array([[0.0, 2.0, 0.0, 3.0], [0.0, 2.5, 2.5, 0.0]]))


# ---------------------------------------------------------------------- covariance forms


@pytest.mark.parametrize("shape", [(2,), (2, 1), (2, 1, 1), (2, 1, 1, 1)])
def test_spherical_covars_shapes_hmmlearn_accepts(shape):
    """hmmlearn's issue 385: (n, 1) and (n, 1, 1, 1) are spherical variances too."""
    m = gaussian("spherical", d=1)
    m.covars_ = np.array([4.0, 3.0]).reshape(shape)
    np.testing.assert_array_equal(m._covars_, [4.0, 3.0])
    np.testing.assert_array_equal(m.covars_, [[[4.0]], [[3.0]]])
    m.sample(10, random_state=0)


def test_spherical_refuses_other_shapes():
    m = gaussian("spherical", d=3)
    with pytest.raises(ParameterError, match=r"\(n_components,\)"):
        m.covars_ = np.ones((2, 3))


@pytest.mark.parametrize("covariance_type, shape", [("spherical", (2,)), ("diag", (2, 3)),
                                                    ("full", (2, 3, 3)), ("tied", (3, 3))])
def test_covars_stored_form_is_read_only(covariance_type, shape):
    m = gaussian(covariance_type)
    assert m._covars_.shape == shape
    assert m.covars_.shape == (2, 3, 3)
    assert not m._covars_.flags.writeable
    with pytest.raises(ParameterError, match="assign covars_"):
        m._covars_ = np.ones(shape)
    g = gmm()
    assert g._covars_ is g.covars_
    with pytest.raises(ParameterError, match="assign covars_"):
        g._covars_ = np.ones((2, 2, 2))


# ---------------------------------------------------------------------- read-only parameters


PARAMETERS = [
    (categorical, "startprob_"), (categorical, "transmat_"), (categorical, "emissionprob_"),
    (gaussian, "means_"), (gaussian, "covars_"), (gmm, "weights_"), (gmm, "means_"),
    (gmm, "covars_"), (poisson, "lambdas_"), (multinomial, "emissionprob_"),
]


@pytest.mark.parametrize("make, name", PARAMETERS)
def test_in_place_edit_says_how_to_assign(make, name):
    """numpy's "output array is read-only" became a message naming the parameter and the
    assignment that works; the model is unchanged."""
    m = make()
    before = np.array(getattr(m, name))
    with pytest.raises(ParameterError, match=rf"{name} is read-only.*model\.{name} = "
                                             rf"model\.{name} \* value"):
        value = getattr(m, name)
        value *= 2
    with pytest.raises(ParameterError, match=rf"{name} is read-only.*new = model\.{name}"
                                             rf"\.copy\(\)"):
        getattr(m, name)[0] = 1.0
    with pytest.raises(ParameterError, match=rf"{name} is read-only"):
        getattr(m, name)[0] += 1.0  # a view of the parameter
    np.testing.assert_array_equal(getattr(m, name), before)
    compact = m._covars_ if isinstance(m, hmmfast.GaussianHMM) and name == "covars_" else None
    setattr(m, name, getattr(m, name) * 1 if compact is None else compact * 1)  # works


def test_assigning_the_product_rebuilds_the_cache():
    m = gaussian()
    X = np.random.default_rng(2).normal(size=(20, 3))
    before = m.score(X)
    m.means_ = m.means_ * 1000
    assert m.score(X) < before - 1e3


def test_parameter_arrays_do_not_spread():
    """Arithmetic on a parameter gives plain ndarrays (writeable), copies too."""
    m = gaussian()
    for value in (m.means_ * 2, np.log(m.transmat_), m.means_ + m.means_, m.means_.copy(),
                  np.array(m.means_), m.transmat_ @ m.transmat_):
        assert type(value) is np.ndarray and value.flags.writeable
    assert type(m.means_.sum()) is np.float64
    assert isinstance(m.means_, ParameterArray)
    copy = m.means_.copy()
    copy *= 2  # a copy is an ordinary array
    np.testing.assert_array_equal(copy, 2 * m.means_)


def test_fit_does_not_depend_on_the_order_of_sequences():
    """hmmlearn's test_gmmhmm_multi_sequence_fit_invariant_to_sequence_ordering: the
    k-means start depends on the set of frames, not their order."""
    from hmmfast._kmeans import kmeans_centres

    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(c, 1.0, size=(50, 2)) for c in (0.0, 4.0, 8.0)])
    perm = rng.permutation(len(X))
    a = kmeans_centres(X, 3, np.random.RandomState(0))
    b = kmeans_centres(X[perm], 3, np.random.RandomState(0))
    np.testing.assert_array_equal(a, b)
    seqs = [X[i:i + 30] for i in range(0, 150, 30)]
    fits = []
    for order in ([0, 1, 2, 3, 4], [4, 2, 0, 3, 1]):
        m = hmmfast.GMMHMM(2, n_mix=2, random_state=0, n_iter=20)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            m.fit(np.concatenate([seqs[i] for i in order]), [30] * 5)
        fits.append(m.score(X, [30] * 5))
    assert fits[0] == pytest.approx(fits[1], rel=1e-8)
