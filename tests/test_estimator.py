"""hmmlearn/scikit-learn estimator protocol: params, clone, pickle and copies, custom
emissions, AIC/BIC."""

import copy
import pickle

import numpy as np
import pytest
from factories import categorical, needs

import hmmfast
from hmmfast import _reference

PI = [0.6, 0.4]
A = [[0.7, 0.3], [0.4, 0.6]]
B = [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]]


def test_get_set_params_from_signature():
    model = hmmfast.CategoricalHMM(3, n_iter=5, random_state=1)
    params = model.get_params()
    assert params["n_components"] == 3 and params["n_iter"] == 5
    assert params["implementation"] == "scaling" and params["n_features"] is None
    assert set(params) == {
        "n_components", "startprob_prior", "transmat_prior", "emissionprob_prior",
        "n_features", "algorithm", "random_state", "n_iter", "tol", "verbose", "params",
        "init_params", "implementation", "n_init", "n_threads",
    }
    assert model.set_params(n_iter=7, algorithm="map") is model
    assert model.n_iter == 7 and model.algorithm == "map"
    with pytest.raises(ValueError, match="invalid parameter 'bogus'"):
        model.set_params(bogus=1)
    assert "n_components=3" in repr(model) and "n_iter=7" in repr(model)


@needs("sklearn")  # comes with hmmlearn, in the [test] extra
def test_sklearn_clone():
    from sklearn import base

    model = categorical(PI, A, B, "log", n_iter=3)
    copy = base.clone(model)
    assert copy.get_params() == {**model.get_params(), "n_features": 3}
    assert not hasattr(copy, "startprob_")


def test_set_params_invalidates_cache(make_model):
    model = make_model(PI, A, B)
    X = np.array([0, 2, 1])
    before = model.score(X)
    model.set_params(implementation="log")
    assert model._cache is None
    assert model.score(X) == pytest.approx(before, rel=1e-13)
    model.transmat_ = [[0.5, 0.5], [0.5, 0.5]]
    assert model.score(X) != pytest.approx(before)


def test_plain_lists_accepted(make_model):
    model = make_model(PI, A, B)
    assert isinstance(model.transmat_, np.ndarray) and model.transmat_.dtype == np.float64
    assert model.n_features == 3


def test_pickle_round_trip(make_model):
    model = make_model(PI, A, B)
    X = np.array([0, 2, 1, 1])
    model.score(X)
    copy = pickle.loads(pickle.dumps(model))
    assert copy.score(X) == model.score(X)
    np.testing.assert_array_equal(copy.decode(X)[1], model.decode(X)[1])
    for name in ("startprob_", "transmat_", "emissionprob_"):
        np.testing.assert_array_equal(getattr(copy, name), getattr(model, name))
        assert not getattr(copy, name).flags.writeable, name


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


def test_custom_emission_hook():
    """hmmlearn's documented hook: override only _compute_log_likelihood."""

    class Shifted(hmmfast.CategoricalHMM):
        def _compute_log_likelihood(self, X):
            return np.log(np.asarray(self.emissionprob_).T[(np.asarray(X).ravel() + 1) % 3])

    model = Shifted(2)
    model.startprob_, model.transmat_, model.emissionprob_ = PI, A, B
    X = np.array([0, 2, 1, 1, 0])
    log_em = _reference.categorical_log_emissions(B, (X + 1) % 3)
    np.testing.assert_allclose(model.score(X), _reference.forward(PI, A, log_em)[0], rtol=1e-12)
    np.testing.assert_array_equal(model.decode(X)[1], _reference.viterbi(PI, A, log_em)[1])


def test_base_class_hook_with_continuous_features():
    class Unit(hmmfast.BaseHMM):
        def _compute_log_likelihood(self, X):
            means = np.array([-1.0, 2.0])
            return -0.5 * (X - means) ** 2 - 0.5 * np.log(2 * np.pi)

    model = Unit(2)
    model.startprob_, model.transmat_ = PI, A
    X = np.array([[-1.2], [0.3], [2.5], [2.0]])
    log_em = -0.5 * (X - [-1.0, 2.0]) ** 2 - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(model.score(X), _reference.forward(PI, A, log_em)[0], rtol=1e-12)
    with pytest.raises(hmmfast.HMMInputError, match="NaN"):
        model.score([[np.nan]])


def test_aic_bic(make_model):
    model = make_model(PI, A, B)
    X = np.array([0, 2, 1, 1, 0, 0])
    k = (2 - 1) + 2 * (2 - 1) + 2 * (3 - 1)
    ll = model.score(X)
    assert model.aic(X) == pytest.approx(-2 * ll + 2 * k)
    assert model.bic(X) == pytest.approx(-2 * ll + k * np.log(6))
