"""The register-resident Viterbi for N <= 12 (csrc/hmm_viterbi_regs.h) against independent
oracles: brute-force enumeration of every path (ties included), and the general decoder
(csrc/hmm_steps.h, selected with ``_viterbi._force_simd(0)``), which must agree bit for
bit on scores and paths, errors included. The compiled fast entries of ``decode`` and
``score`` are checked against the general Python path they bypass."""

import numpy as np
import pytest
from hmm_oracles import brute_force, categorical_log_emissions, random_model

import hmmfast
from hmmfast import _viterbi


@pytest.fixture
def both_decoders():
    """Run a function with the small-N kernel (when the CPU has AVX2) and the general one."""
    def run(fn):
        out = []
        for flag in (1, 0):
            _viterbi._force_simd(flag)
            try:
                out.append(fn())
            except ValueError as exc:  # errors must agree too
                out.append((type(exc), getattr(exc, "step", None), str(exc)))
        return out
    yield run
    _viterbi._force_simd(-1)


def categorical(startprob, transmat, emissionprob):
    model = hmmfast.CategoricalHMM(len(startprob))
    model.startprob_, model.transmat_, model.emissionprob_ = startprob, transmat, emissionprob
    return model


@pytest.mark.parametrize("n", range(1, 14))
@pytest.mark.parametrize("zeros", [False, True])
def test_matches_brute_force_and_the_general_decoder(n, zeros, both_decoders):
    rng = np.random.default_rng(100 * n + zeros)
    for trial in range(4):
        startprob, transmat, emissionprob = random_model(rng, n, 4, zeros=zeros)
        model = categorical(startprob, transmat, emissionprob)
        T = 6 if n <= 3 else 4
        X = rng.integers(0, 4, size=T).astype(np.intp)
        fast, general = both_decoders(lambda: model.decode(X))
        if isinstance(fast, tuple) and isinstance(fast[0], type):
            assert fast == general
            continue
        assert fast[0] == general[0]
        np.testing.assert_array_equal(fast[1], general[1])
        oracle = brute_force(startprob, transmat, categorical_log_emissions(emissionprob, X))
        if oracle["viterbi_path"] is None:
            continue
        np.testing.assert_allclose(fast[0], oracle["viterbi_logp"], rtol=1e-12)
        np.testing.assert_array_equal(fast[1], oracle["viterbi_path"])


@pytest.mark.parametrize("n", range(1, 14))
def test_exact_ties_go_to_the_lowest_state(n, both_decoders):
    """Uniform everything: every path ties; the answer is all zeros (the smallest path
    read backwards), as brute force says."""
    model = categorical(np.full(n, 1 / n), np.full((n, n), 1 / n), np.full((n, 3), 1 / 3))
    X = np.array([0, 1, 2, 1, 0], dtype=np.intp)
    fast, general = both_decoders(lambda: model.decode(X))
    np.testing.assert_array_equal(fast[1], np.zeros(5, dtype=np.intp))
    assert fast[0] == general[0]
    if n <= 4:
        oracle = brute_force(model.startprob_, model.transmat_,
                             categorical_log_emissions(model.emissionprob_, X))
        np.testing.assert_array_equal(fast[1], oracle["viterbi_path"])


@pytest.mark.parametrize("n", [2, 5, 8, 9, 12])
def test_long_sequences_many_sequences_and_dense_frames(n, both_decoders):
    rng = np.random.default_rng(n)
    startprob, transmat, emissionprob = random_model(rng, n, 7, zeros=True)
    model = categorical(startprob, transmat, emissionprob)
    X, lengths = model.sample(5000, random_state=3)[0], [1, 2, 997, 3000, 1000]
    fast, general = both_decoders(lambda: model.decode(X, lengths))
    assert fast[0] == general[0]
    np.testing.assert_array_equal(fast[1], general[1])
    # the functional API: dense (T, N) log-emissions, rows picked by time
    log_em = rng.normal(scale=3.0, size=(3000, n))
    log_em[rng.random(log_em.shape) < 0.2] = -np.inf
    log_em[:, 0] = np.maximum(log_em[:, 0], -50.0)  # keep state 0 possible
    fast, general = both_decoders(
        lambda: hmmfast.viterbi(np.full(n, 1 / n), np.full((n, n), 1 / n), log_em,
                                lengths=[1000, 2000]))
    assert fast[0] == general[0]
    np.testing.assert_array_equal(fast[1], general[1])


def test_impossible_steps_and_bad_symbols_fail_alike(both_decoders):
    stuck = categorical(np.array([1.0, 0.0, 0.0]), np.eye(3), np.eye(3))
    X = np.array([0, 0, 0, 1, 0], dtype=np.intp)
    fast, general = both_decoders(lambda: stuck.decode(X))
    assert fast == general and fast[0] is hmmfast.ImpossibleSequenceError and fast[1] == 3
    fast, general = both_decoders(lambda: stuck.decode(np.array([1, 0], dtype=np.intp)))
    assert fast == general and fast[1] == 0
    # a symbol outside the table, read by the kernel itself on the fast path
    fast, general = both_decoders(lambda: stuck.decode(np.array([0, 0, 7], dtype=np.intp)))
    assert fast == general and fast[0] is hmmfast.HMMInputError
    assert "n_features=3, got 7" in fast[2]
    fast, general = both_decoders(lambda: stuck.decode(np.array([0, -1], dtype=np.intp)))
    assert fast == general and fast[0] is hmmfast.HMMInputError


def test_fast_entries_equal_the_general_path():
    """model.decode/score take a compiled shortcut for a ready intp array; every other
    form of the same data goes through validation: all must agree."""
    rng = np.random.default_rng(5)
    model = categorical(*random_model(rng, 5, 6))
    X = rng.integers(0, 6, size=200)
    ready = X.astype(np.intp)
    forms = [ready, ready[:, None], X.tolist(), X.astype(np.int32)[:, None],
             np.asfortranarray(ready[:, None])]
    scores = [model.score(x) for x in forms] + [model._score(ready)]
    assert len(set(scores)) == 1
    decodes = [model.decode(x) for x in forms] + [model._decode(ready)]
    for lp, path in decodes:
        assert lp == decodes[0][0]
        np.testing.assert_array_equal(path, decodes[0][1])
    model.algorithm = "map"  # the model's default algorithm is honoured
    np.testing.assert_array_equal(model.decode(ready)[1], model.decode(ready, algorithm="map")[1])
    assert model.decode(ready, algorithm="viterbi")[0] == decodes[0][0]
    model.algorithm = "bogus"
    with pytest.raises(hmmfast.ParameterError, match="algorithm"):
        model.decode(ready)
    # unfitted: the fast entry defers to the general path's error
    with pytest.raises(hmmfast.NotFittedError):
        hmmfast.CategoricalHMM(3).decode(ready)
    with pytest.raises(hmmfast.NotFittedError):
        hmmfast.CategoricalHMM(3).score(ready)


def test_fast_entries_are_methods_with_the_documented_signature():
    import inspect

    sig = inspect.signature(hmmfast.CategoricalHMM.decode)
    assert list(sig.parameters) == ["self", "X", "lengths", "algorithm", "beam", "max_active",
                                    "min_active", "memory"]
    assert sig.parameters["beam"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(hmmfast.GaussianHMM.score).parameters) == [
        "self", "X", "lengths"]
    assert "Most likely state sequence" in hmmfast.CategoricalHMM.decode.__doc__
    assert hmmfast.CategoricalHMM.score.__name__ == "score"
