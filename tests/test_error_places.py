"""Errors about one place in the input carry it as attributes (sequence, step, position).

Every input below is built with one bad observation at a chosen (sequence, step); its row
in the concatenated X is the sum of the earlier sequences' lengths plus the step. The
error must carry exactly that place, and its message must name the same row, so a caller
(serve, the command line, Dask) reads the attributes instead of parsing the text.
"""

import pickle

import numpy as np
import pytest

import hmmfast
from hmmfast import HMMInputError, HMMTypeError, ImpossibleSequenceError, PruningError
from hmmfast._errors import locate, place, reworded

LENGTHS = [3, 4, 2]


def categorical():
    model = hmmfast.CategoricalHMM(2, n_features=3)
    model.startprob_ = [0.6, 0.4]
    model.transmat_ = [[0.7, 0.3], [0.4, 0.6]]
    model.emissionprob_ = [[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]]
    return model


def left_to_right():
    """State 1 never returns to state 0, which alone emits symbol 0."""
    model = hmmfast.CategoricalHMM(2, n_features=2)
    model.startprob_ = [1.0, 0.0]
    model.transmat_ = [[0.5, 0.5], [0.0, 1.0]]
    model.emissionprob_ = [[1.0, 0.0], [0.0, 1.0]]
    return model


def gaussian():
    model = hmmfast.GaussianHMM(2, covariance_type="diag")
    model.startprob_ = [0.5, 0.5]
    model.transmat_ = [[0.9, 0.1], [0.2, 0.8]]
    model.means_ = [[0.0, 0.0], [2.0, 2.0]]
    model.covars_ = [[1.0, 1.0], [1.0, 1.0]]
    return model


def poisson():
    model = hmmfast.PoissonHMM(2)
    model.startprob_ = [0.5, 0.5]
    model.transmat_ = [[0.9, 0.1], [0.2, 0.8]]
    model.lambdas_ = [[1.0, 4.0], [3.0, 0.5]]
    return model


def sequences_with(good, bad, sequence, step):
    """LENGTHS-long sequences of ``good``, with ``bad`` at (sequence, step), and the
    bad row's index in their concatenation."""
    seqs = [np.array([good] * n) for n in LENGTHS]
    seqs[sequence] = seqs[sequence].copy()
    seqs[sequence][step] = bad
    return seqs, sum(LENGTHS[:sequence]) + step


def assert_place(exc, sequence, step, position):
    assert (exc.sequence, exc.step, exc.position) == (sequence, step, position), str(exc)
    if position is not None and "X[" in str(exc):
        assert f"X[{position}" in str(exc)


BAD_OBSERVATIONS = [  # (model, good observation, bad observation)
    (categorical, 1, 3),
    (categorical, 1, -1),
    (gaussian, [0.0, 1.0], [np.nan, 1.0]),
    (gaussian, [0.0, 1.0], [0.0, np.inf]),
    (poisson, [1.0, 2.0], [-1.0, 2.0]),
    (poisson, [1.0, 2.0], [1.0, 2.5]),
]


@pytest.mark.parametrize("make,good,bad", BAD_OBSERVATIONS)
@pytest.mark.parametrize("sequence,step", [(0, 0), (1, 2), (2, 1)])
def test_batch_errors_name_sequence_step_and_position(make, good, bad, sequence, step):
    model = make()
    seqs, row = sequences_with(good, bad, sequence, step)
    for call in (model.score_batch, model.decode_batch):
        with pytest.raises(HMMInputError) as info:
            call(seqs)
        assert_place(info.value, sequence, step, row)


@pytest.mark.parametrize("make,good,bad", BAD_OBSERVATIONS)
def test_concatenated_errors_name_the_row(make, good, bad):
    model = make()
    seqs, row = sequences_with(good, bad, 1, 2)
    X = np.concatenate(seqs)
    for call in (lambda: model.score(X, LENGTHS), lambda: model.decode(X, LENGTHS),
                 lambda: model.score_batch(X, lengths=LENGTHS)):
        with pytest.raises(HMMInputError) as info:
            call()
        exc = info.value
        assert exc.position == row
        # the kernels know the sequence; X's validation runs before lengths are read
        assert (exc.sequence, exc.step) in ((1, 2), (None, None))


def test_kernel_symbol_error_names_all_three():
    model = categorical()
    X = np.array([0, 1, 2, 0, 1, 7, 2])
    with pytest.raises(HMMInputError) as info:
        model.score(X, [3, 4])
    assert_place(info.value, 1, 2, 5)


def test_stream_errors_name_the_index_in_the_push():
    model = categorical()
    scorer = model.stream_scorer()
    scorer.push([0, 1])
    with pytest.raises(HMMInputError) as info:
        scorer.push([1, 2, 5])
    assert info.value.position == 2
    decoder = left_to_right().stream_decoder()
    decoder.push([0, 1])
    with pytest.raises(ImpossibleSequenceError) as info:
        decoder.push([1, 0])
    assert_place(info.value, 0, 3, 1)  # the stream's observation 3, index 1 of the push


def test_impossible_and_pruned_sequences():
    model = left_to_right()
    seqs = [np.array([0, 1]), np.array([0, 1, 1, 0, 1])]
    with pytest.raises(ImpossibleSequenceError) as info:
        model.decode_batch(seqs)
    assert_place(info.value, 1, 3, 5)
    # max_active=1 keeps state 0 (the likelier for symbol 0), which cannot emit 1
    with pytest.raises(PruningError) as info:
        _pruned_model().decode_batch([np.array([0, 1]), np.array([0, 0, 1])], max_active=1)
    assert_place(info.value, 0, 1, 1)


def _pruned_model():
    """Two states that never switch: state 0 emits only 0, state 1 both symbols."""
    model = hmmfast.CategoricalHMM(2, n_features=2)
    model.startprob_ = [0.5, 0.5]
    model.transmat_ = [[1.0, 0.0], [0.0, 1.0]]
    model.emissionprob_ = [[1.0, 0.0], [0.5, 0.5]]
    return model


def test_sequence_level_errors():
    model = categorical()
    with pytest.raises(HMMTypeError) as info:
        model.score_batch([np.array([0, 1]), np.array([0.5, 1.0])])
    assert_place(info.value, 1, None, None)
    with pytest.raises(HMMInputError) as info:
        gaussian().score_batch([np.zeros((2, 2)), np.zeros((0, 2))])
    assert_place(info.value, 1, None, None)
    with pytest.raises(HMMInputError) as info:
        model.score(np.zeros(6, dtype=int), [2, 0, 4])
    assert_place(info.value, 1, None, None)
    with pytest.raises(HMMInputError) as info:
        model.fit(np.zeros((6, 1), dtype=int), [2, 4], sample_weight=[1.0, -1.0])
    assert_place(info.value, 1, None, None)


def test_states_and_log_emissions_name_their_row():
    model = categorical()
    with pytest.raises(HMMInputError) as info:
        model.fit_supervised(np.zeros((5, 1), dtype=int), [0, 1, 0, 2, 1])
    assert info.value.position == 3
    log_em = np.zeros((4, 2))
    log_em[2, 1] = np.nan
    with pytest.raises(HMMInputError) as info:
        hmmfast.forward([0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]], log_em)
    assert info.value.position == 2


def test_plain_errors_have_no_place_and_keep_working():
    for cls in (HMMInputError, HMMTypeError, ImpossibleSequenceError, PruningError):
        exc = cls("a message")
        assert str(exc) == "a message" and place(exc) == dict.fromkeys(
            ("sequence", "step", "position"))
    assert place(hmmfast.ParameterError("x")) == dict.fromkeys(("sequence", "step", "position"))


@pytest.mark.parametrize("exc", [
    HMMInputError("bad X[4]", sequence=1, step=2, position=4),
    HMMTypeError("bad type", sequence=3),
    ImpossibleSequenceError("impossible", 1, 2, 4),
    PruningError("pruned", 0, 5, 5),
])
def test_errors_pickle_with_their_place(exc):
    # Dask sends a worker's errors to the client pickled
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and str(back) == str(exc)
    assert place(back) == place(exc)


def test_reworded_and_locate():
    exc = HMMInputError("X[5] is bad", position=5)
    offsets = np.array([0, 3, 7, 9])
    assert locate(exc, offsets) is exc
    assert place(exc) == {"sequence": 1, "step": 2, "position": 5}
    other = HMMInputError("sequence 2 step 1", sequence=2, step=1)
    assert locate(other, offsets).position == 8
    new = reworded(exc, "partition 3: X[5] is bad")
    assert type(new) is HMMInputError and str(new) == "partition 3: X[5] is bad"
    assert place(new) == place(exc)
    assert reworded(hmmfast.ParameterError("p"), "q").args == ("q",)


def test_distributed_reraise_keeps_the_place():
    pytest.importorskip("dask")
    from hmmfast.distributed._partitions import reraise

    with pytest.raises(HMMInputError, match="partition 2: X") as info:
        reraise(HMMInputError("X[4] is bad", sequence=1, step=1, position=4), 2)
    assert place(info.value) == {"sequence": 1, "step": 1, "position": 4}


# ---------------------------------------------------------------------- serve


def serve_errors():
    pytest.importorskip("starlette")
    from hmmfast.serve import _errors

    return _errors


@pytest.mark.parametrize("index", [None, np.array([4, 9, 2])])
@pytest.mark.parametrize("make,good,bad", BAD_OBSERVATIONS)
def test_serve_names_session_and_position_from_the_attributes(make, good, bad, index):
    errors = serve_errors()
    seqs, _ = sequences_with(good, bad, 1, 2)
    offsets = np.cumsum([0, *LENGTHS])
    with pytest.raises(HMMInputError) as info:
        make().score_batch(seqs)
    body = errors.from_library(info.value, offsets, index).body()["error"]
    session = 1 if index is None else 9
    assert (body["code"], body["session"], body["position"]) == ("bad_observation", session, 2)
    assert body["message"].startswith(f"session {session}, position 2: ")
    assert "sequence 1" not in body["message"]


def test_serve_reads_no_place_from_the_message():
    errors = serve_errors()
    offsets = np.array([0, 3, 7])
    # a message that names a row and a sequence, on an error that carries no place
    body = errors.from_library(HMMInputError("X[4] of sequence 1 is bad"), offsets).body()
    assert body["error"]["code"] == "bad_input" and "session" not in body["error"]
    assert body["error"]["message"] == "X[4] of sequence 1 is bad"
    impossible = ImpossibleSequenceError("sequence 1 is impossible at X[4]", 1, 1, 4)
    body = errors.from_library(impossible, offsets, np.array([5, 6])).body()["error"]
    assert (body["code"], body["session"], body["position"]) == ("impossible_session", 6, 1)
    assert body["message"] == "session 6: session 6 is impossible at X[4]"

