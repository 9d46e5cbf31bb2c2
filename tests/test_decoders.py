"""decode's Viterbi decoders: beam pruning (``beam``, ``max_active``, ``min_active``:
Kaldi's conventions, exact with an infinite beam) and the register-resident Viterbi for
N <= 12 (csrc/hmm_viterbi_regs.h) with the compiled fast entries of decode and score.
Sparse transition matrices: tests/test_sparse.py; n-best and checkpointed decoding:
tests/test_nbest.py, tests/test_checkpoint.py."""

import numpy as np
import pytest
from factories import categorical, left_to_right, sparse_chain
from hmm_oracles import brute_force, categorical_log_emissions, random_model
from scipy import sparse

import hmmfast
from hmmfast import _reference, _viterbi


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
    start, A = left_to_right(n, skip=0.05)
    B = np.full((n, 20), 0.01)
    B[np.arange(n), np.arange(n) % 20] += 0.8
    B /= B.sum(axis=1, keepdims=True)
    model = categorical(start, sparse.csr_matrix(A), B)
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


def test_beam_decodes_like_viterbi_when_wide():
    model = categorical([0.6, 0.4], [[0.7, 0.3], [0.4, 0.6]],
                        [[0.9, 0.05, 0.05], [0.2, 0.7, 0.1]])
    score, path = model.decode([0, 1, 2], beam=10.0)
    want_score, want_path = model.decode([0, 1, 2])
    assert score == want_score
    np.testing.assert_array_equal(path, want_path)


# ---------------------------------------------------- the register-resident Viterbi, N <= 12


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
