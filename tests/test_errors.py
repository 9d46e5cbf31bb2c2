"""Bad input gets a clear library error (type and message), never a crash or a wrong answer.

The last section lets hypothesis throw arrays of every dtype, shape and value range (plus
non-arrays) at each public entry point of a fitted model and at the functional API.
"""

import numpy as np
import pytest
from factories import categorical
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hmmfast
from hmmfast import (
    HMMInputError,
    HMMTypeError,
    ImpossibleSequenceError,
    NotFittedError,
    ParameterError,
)

PI = [0.6, 0.4]
A = [[0.7, 0.3], [0.4, 0.6]]
B = [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]]


@pytest.fixture
def model(make_model):
    return make_model(PI, A, B)


# ------------------------------------------------------------------ parameters

@pytest.mark.parametrize("name,value,match", [
    ("startprob_", [0.5, 0.3, 0.2], r"startprob_ must have shape \(n_components,\) = \(2,\), got \(3,\)"),
    ("startprob_", [[0.5, 0.5]], r"startprob_ must have shape .* got \(1, 2\)"),
    ("startprob_", [np.nan, 1.0], r"startprob_ must be finite; startprob_\[0\] = nan"),
    ("startprob_", [1.5, -0.5], r"startprob_ must be non-negative; startprob_\[1\] = -0.5"),
    ("startprob_", [0.5, 0.6], r"startprob_ sums to 1.1.*expected 1"),
    ("transmat_", [[0.7, 0.3]], r"transmat_ must have shape \(n_components, n_components\) = \(2, 2\), got \(1, 2\)"),
    ("transmat_", [[0.7, 0.3], [0.5, 0.6]], r"row 1 of transmat_ sums to 1.1"),
    ("transmat_", [[0.7, 0.3], [np.inf, 0.0]], r"transmat_ must be finite; transmat_\[1, 0\] = inf"),
    ("transmat_", [[1.2, -0.2], [0.5, 0.5]], r"transmat_ must be non-negative; transmat_\[0, 1\]"),
    ("emissionprob_", [[0.5, 0.5], [0.5, 0.5]], r"emissionprob_ must have shape \(n_components, n_features\) = \(2, 3\), got \(2, 2\)"),
    ("emissionprob_", [[0.5, 0.5, 0.1], [0.2, 0.7, 0.1]], r"row 0 of emissionprob_ sums to 1.1"),
])
def test_invalid_parameters_rejected_when_set(model, name, value, match):
    with pytest.raises(ParameterError, match=match):
        setattr(model, name, value)


def test_non_numeric_parameter():
    model = hmmfast.CategoricalHMM(2)
    with pytest.raises(HMMTypeError, match="startprob_ must be an array of numbers"):
        model.startprob_ = ["a", "b"]
    with pytest.raises(ValueError):  # also a ValueError, as hmmlearn users catch
        model.startprob_ = ["a", "b"]


def test_complex_values_are_refused(make_model):
    model = hmmfast.CategoricalHMM(2)
    with pytest.raises(hmmfast.HMMTypeError, match="startprob_ .*complex"):
        model.startprob_ = np.array([0.5, 0.5], dtype=complex)
    with pytest.raises(hmmfast.HMMTypeError, match="log_emissions .*complex"):
        hmmfast.forward([0.5, 0.5], np.eye(2), np.zeros((3, 2), dtype=complex))
    with pytest.raises(hmmfast.HMMTypeError, match="transmat .*complex"):
        hmmfast.forward([0.5, 0.5], np.eye(2, dtype=complex), np.zeros((3, 2)))


def test_tiny_drift_is_renormalised(model):
    model.transmat_ = [[0.7 + 1e-10, 0.3], [0.4, 0.6]]
    np.testing.assert_allclose(model.transmat_.sum(axis=1), 1.0, rtol=0, atol=1e-15)


def test_parameters_are_read_only(model):
    with pytest.raises(ValueError, match="read-only"):
        model.transmat_[0, 0] = 0.5


def test_not_fitted():
    model = hmmfast.CategoricalHMM(2)
    with pytest.raises(NotFittedError, match="no startprob_, transmat_, emissionprob_"):
        model.score([[0]])
    assert not hasattr(model, "startprob_")
    with pytest.raises(AttributeError):
        _ = model.emissionprob_


def test_n_components_changed_after_parameters(model):
    model.n_components = 3
    with pytest.raises(ParameterError, match=r"startprob_ has shape \(2,\) but the model's sizes \(n_components=3, n_features=3\) need \(3,\)"):
        model.score([0, 1])
    model.startprob_ = [0.2, 0.3, 0.5]
    model.transmat_ = np.full((3, 3), 1 / 3)
    with pytest.raises(ParameterError, match=r"emissionprob_ has shape \(2, 3\) .* need \(3, 3\)"):
        model.score([0, 1])
    model.n_features = 4
    model.emissionprob_ = np.full((3, 4), 0.25)
    assert model.score([0, 3]) == pytest.approx(2 * np.log(0.25))


def test_n_features_changed_after_parameters(model):
    model.n_features = 4
    with pytest.raises(ParameterError, match=r"emissionprob_ has shape \(2, 3\) .* need \(2, 4\)"):
        model.score([0, 1])


@pytest.mark.parametrize("n", [0, -1, 2.5, "3", True])
def test_bad_n_components(n):
    with pytest.raises(ValueError, match="n_components must be an integer >= 1"):
        hmmfast.CategoricalHMM(n).startprob_ = [1.0]


def test_bad_implementation_and_algorithm(make_model):
    with pytest.raises(ParameterError, match="implementation must be one of"):
        make_model(PI, A, B, implementation="fast").score([0])
    model = make_model(PI, A, B)
    with pytest.raises(ParameterError, match="algorithm must be one of"):
        model.decode([0, 1], algorithm="beam")


# ------------------------------------------------------------------ observations

@pytest.mark.parametrize("X,exc,match", [
    (np.array([[0.0], [1.0]]), HMMTypeError, "X must hold integer symbols .* got dtype float64"),
    (np.array([True, False]), HMMTypeError, "got dtype bool"),
    (np.array(["a", "b"]), HMMTypeError, "integer symbols"),
    (np.array([0, 1, 3]), HMMInputError, r"out of range at X\[2\] \(sequence 0, step 2\): expected 0 <= symbol < n_features=3, got 3"),
    (np.array([[0], [-1]]), HMMInputError, r"out of range at X\[1\].*got -1"),
    (np.zeros((4, 2), dtype=int), HMMInputError, r"X must have shape \(n_samples, 1\) or \(n_samples,\).*got \(4, 2\)"),
    (np.zeros((2, 1, 1), dtype=int), HMMInputError, "got \\(2, 1, 1\\)"),
    (np.zeros((0, 1), dtype=int), HMMInputError, "X is empty"),
    ([], HMMInputError, "X is empty"),
    (np.array([2**40]), HMMInputError, "out of range"),
    (np.array([2**63 + 5], dtype=np.uint64), HMMInputError, "too large"),
])
def test_bad_observations(model, X, exc, match):
    for method in (model.score, model.decode, model.predict, model.predict_proba,
                   model.score_samples):
        with pytest.raises(exc, match=match):
            method(X)


def test_symbol_error_names_the_sequence(model):
    X = np.array([0, 1, 2, 0, 7, 1])
    with pytest.raises(HMMInputError, match=r"X\[4\] \(sequence 1, step 1\)"):
        model.score(X, lengths=[3, 3])


@pytest.mark.parametrize("lengths,match", [
    ([3, 0, 3], r"lengths\[1\] = 0: every sequence length must be a positive integer"),
    ([4, -1, 3], r"lengths\[1\] = -1"),
    ([2, 2], "lengths sum to 4 but X has 6 samples"),
    ([6.5], r"lengths\[0\] = 6.5: every sequence length must be a positive integer"),
    (["a", "b"], "lengths must hold integers"),
    ([], "lengths is empty"),
    ([[3, 3]], "lengths must be a 1-D sequence"),
])
def test_bad_lengths(model, lengths, match):
    X = np.array([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match=match):
        model.score(X, lengths)
    with pytest.raises(ValueError, match=match):
        model.decode(X, lengths)


def test_float_lengths_with_integer_values_accepted(model):
    X = np.array([0, 1, 2, 0, 1, 2])
    assert model.score(X, [3.0, 3.0]) == model.score(X, [3, 3])


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


# ------------------------------------------------------------------ impossible sequences

def test_impossible_sequence(make_model):
    model = make_model([1.0, 0.0], [[0.5, 0.5], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]])
    X = np.array([0, 1, 0, 0])  # state 1 can never return to state 0
    assert model.score(X) == -np.inf
    for call in (lambda: model.decode(X), lambda: model.decode(X, algorithm="map"),
                 lambda: model.predict_proba(X), lambda: model.score_samples(X),
                 lambda: model.predict(X)):
        with pytest.raises(ImpossibleSequenceError, match="step 2") as info:
            call()
        assert (info.value.sequence, info.value.step, info.value.position) == (0, 2, 2)
    # in the second sequence, with the global position
    X2 = np.array([0, 1, 0, 1, 1, 0])
    assert model.score(X2, [2, 4]) == -np.inf
    with pytest.raises(ImpossibleSequenceError, match=r"X\[5\] \(sequence 1, step 3\)") as info:
        model.decode(X2, [2, 4])
    assert (info.value.sequence, info.value.step, info.value.position) == (1, 3, 5)


def test_impossible_first_step(make_model):
    model = make_model([1.0, 0.0], [[0.5, 0.5], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ImpossibleSequenceError, match="step 0") as info:
        model.decode([1, 1])
    assert info.value.step == 0
    assert model.score([1, 1]) == -np.inf


def test_symbol_no_state_emits(make_model):
    model = make_model(PI, A, [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    assert model.score([0, 2, 1]) == -np.inf
    with pytest.raises(ImpossibleSequenceError, match="step 1"):
        model.decode([0, 2, 1])


# ------------------------------------------------------------------ functional API

@pytest.mark.parametrize("log_em,exc,match", [
    (np.array([[0.0, np.nan]]), HMMInputError, r"log_emissions\[0, 1\] = nan"),
    (np.array([[0.0, np.inf]]), HMMInputError, r"log_emissions\[0, 1\] = inf"),
    (np.zeros((3, 3)), HMMInputError, r"shape \(n_samples, n_components\) = \(T, 2\), got \(3, 3\)"),
    (np.zeros((0, 2)), HMMInputError, "log_emissions is empty"),
    (np.zeros(2), HMMInputError, r"got \(2,\)"),
    ([["a", "b"]], HMMTypeError, "log_emissions must be an array of numbers"),
])
def test_functional_bad_log_emissions(log_em, exc, match):
    for fn in (hmmfast.forward, hmmfast.forward_backward, hmmfast.viterbi):
        with pytest.raises(exc, match=match):
            fn(PI, A, log_em)


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


def test_functional_bad_parameters():
    with pytest.raises(ParameterError, match="row 0 of transmat sums to"):
        hmmfast.forward(PI, [[0.5, 0.6], [0.5, 0.5]], np.zeros((2, 2)))
    with pytest.raises(ParameterError, match="startprob must be a 1-D array"):
        hmmfast.forward([[0.5, 0.5]], A, np.zeros((2, 2)))
    with pytest.raises(ParameterError, match="implementation must be one of"):
        hmmfast.forward(PI, A, np.zeros((2, 2)), implementation="exp")


# ------------------------------------------------------------ fuzzing: never a crash

LIBRARY_ERRORS = (hmmfast.HMMInputError, hmmfast.HMMTypeError,
                  hmmfast.ImpossibleSequenceError, hmmfast.ParameterError)

dtypes = st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(),
                   hnp.boolean_dtypes(), hnp.complex_number_dtypes())
arrays = hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
others = st.one_of(st.none(), st.integers(), st.text(max_size=3),
                   st.lists(st.integers(-3, 6), max_size=6),
                   st.lists(st.lists(st.integers(-3, 6), max_size=2), max_size=4))
lengths = st.one_of(st.none(), st.lists(st.integers(-2, 8), max_size=4),
                    hnp.arrays(hnp.integer_dtypes(), st.integers(0, 3),
                               elements=st.integers(-2, 8)))


@pytest.fixture(scope="module")
def fuzz_model():
    return categorical([0.5, 0.5, 0.0], [[0.8, 0.2, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]],
                       [[0.5, 0.5, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.5, 0.5]])


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(X=st.one_of(arrays, others), lengths=lengths,
       method=st.sampled_from(["score", "score_samples", "decode", "predict",
                               "predict_proba", "map"]))
def test_model_methods_never_crash(fuzz_model, X, lengths, method):
    model = fuzz_model
    try:
        if method == "map":
            out = model.decode(X, lengths, algorithm="map")
        else:
            out = getattr(model, method)(X, lengths)
    except LIBRARY_ERRORS:
        return
    # a result: check it is a sane one
    n = len(np.asarray(X).reshape(-1))
    if method == "score":
        assert isinstance(out, float) and not np.isnan(out) and out <= 0
    elif method in ("score_samples", "predict_proba"):
        post = out[1] if method == "score_samples" else out
        assert post.shape == (n, 3) and np.all(np.isfinite(post))
    else:
        states = out[1] if method in ("decode", "map") else out
        assert states.shape == (n,) and states.min() >= 0 and states.max() < 3


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@st.composite
def maybe_unaligned(draw, arrays):
    """An array as drawn, or the same values in an unaligned buffer."""
    arr = draw(arrays)
    if not draw(st.booleans()) or arr.dtype.itemsize < 2:
        return arr
    raw = b"\0" + np.ascontiguousarray(arr).tobytes()
    return np.frombuffer(raw, dtype=arr.dtype, offset=1).reshape(arr.shape)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # hypothesis -> float32
@settings(max_examples=300, deadline=None, derandomize=True)
@given(log_em=st.one_of(maybe_unaligned(hnp.arrays(
           st.sampled_from([np.float64, np.float32, np.dtype(">f8")]),
           hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
           elements=finite_or_not)), others),
       fn=st.sampled_from([hmmfast.forward, hmmfast.forward_backward, hmmfast.viterbi]),
       implementation=st.sampled_from(["scaling", "log"]))
def test_functional_api_never_crashes(log_em, fn, implementation):
    kwargs = {} if fn is hmmfast.viterbi else {"implementation": implementation}
    try:
        out = fn([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], log_em, **kwargs)
    except LIBRARY_ERRORS:
        return
    value = out if isinstance(out, float) else out[0]
    assert not np.isnan(value)
    if fn is hmmfast.forward:  # the other implementation agrees
        other = "log" if implementation == "scaling" else "scaling"
        np.testing.assert_allclose(hmmfast.forward([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]],
                                                   log_em, implementation=other),
                                   value, rtol=1e-9, atol=1e-12)


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(X=maybe_unaligned(hnp.arrays(st.sampled_from([np.int64, np.int32, np.int16,
                                                     np.dtype(">i8")]),
                                    st.integers(1, 8), elements=st.integers(-1, 4))))
def test_unaligned_and_byte_swapped_symbols(fuzz_model, X):
    model = fuzz_model
    expected = np.array(X, dtype=np.intp)  # aligned native copy
    try:
        want = model.score(expected)
    except LIBRARY_ERRORS as exc:
        with pytest.raises(type(exc)):
            model.score(X)
        return
    assert model.score(X) == want
