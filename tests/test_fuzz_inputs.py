"""Whatever a caller passes, the answer is a result or a library error, never a crash.

Hypothesis throws arrays of every dtype, shape and value range (plus non-arrays) at each
public entry point of a fitted model and at the functional API.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hmmfast

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
def model():
    m = hmmfast.CategoricalHMM(3)
    m.startprob_ = [0.5, 0.5, 0.0]
    m.transmat_ = [[0.8, 0.2, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]]
    m.emissionprob_ = [[0.5, 0.5, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.5, 0.5]]
    return m


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(X=st.one_of(arrays, others), lengths=lengths,
       method=st.sampled_from(["score", "score_samples", "decode", "predict",
                               "predict_proba", "map"]))
def test_model_methods_never_crash(model, X, lengths, method):
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
def test_unaligned_and_byte_swapped_symbols(model, X):
    expected = np.array(X, dtype=np.intp)  # aligned native copy
    try:
        want = model.score(expected)
    except LIBRARY_ERRORS as exc:
        with pytest.raises(type(exc)):
            model.score(X)
        return
    assert model.score(X) == want
