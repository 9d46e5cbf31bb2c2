"""n-best Viterbi: ``model.nbest`` / ``hmmfast.nbest`` and the kernel (csrc/_nbest.pyx),
against brute-force enumeration of every path, the full-table decoder and
``_reference.path_log_prob``.

The order of the returned list is documented in csrc/_nbest.pyx: candidates are sorted by
(-score, predecessor state, predecessor rank) at every step and by (-score, final state,
rank) at the end. ``kernel_order`` rebuilds that order from the enumerated paths alone (no
hmmfast code), in the kernel's floating-point order of additions; when equal scores are
equal in exact arithmetic it is "highest score, then the smallest path read backwards
from the last step" (the Viterbi tie rule), which ``test_exact_ties_*`` checks directly.
"""

import numpy as np
import pytest
from factories import categorical
from hmm_oracles import brute_force, categorical_log_emissions, enumerate_paths, log, random_model
from scipy import sparse

import hmmfast
from hmmfast import _chain, _kernel_inputs, _nbest, _reference, _viterbi


def compile_model(startprob, transmat, log_emissions):
    chain = _kernel_inputs.chain(np.asarray(startprob, float), np.asarray(transmat, float))
    return chain, _kernel_inputs.emission(np.asarray(log_emissions, float), False)


def kernel_order(startprob, transmat, log_emissions):
    """(scores, paths) of every finite path, in the documented n-best order.

    A path s_0..s_{T-1} sorts by (-S_{T-1}, s_{T-1}, -P_{T-1}, s_{T-2}, ..., -P_1, s_0),
    S_t its score through frame t and P_t = S_{t-1} + log A(s_{t-1}, s_t).
    """
    log_b = np.asarray(log_emissions, dtype=np.float64)
    big_t = log_b.shape[0]
    paths, logp = enumerate_paths(startprob, transmat, log_b)
    log_pi, log_a = log(startprob), log(transmat)
    keyed = []
    for k in np.flatnonzero(np.isfinite(logp)):
        s = paths[k]
        score = log_pi[s[0]] + log_b[0, s[0]]
        pre = [0.0] * big_t
        for t in range(1, big_t):
            pre[t] = score + log_a[s[t - 1], s[t]]
            score = pre[t] + log_b[t, s[t]]
        assert score == logp[k]  # the same additions as enumerate_paths
        key = [-score, int(s[-1])]
        for t in range(big_t - 1, 0, -1):
            key += [-pre[t], int(s[t - 1])]
        keyed.append((tuple(key), k))
    keyed.sort()
    order = np.array([k for _, k in keyed], dtype=np.intp)
    return logp[order], paths[order].reshape(len(order), big_t)


def tiny_case(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    big_t = int(rng.integers(1, 7))
    startprob, transmat, _ = random_model(rng, n, 2, zeros=seed % 2 == 1)
    log_em = rng.normal(scale=2.0, size=(big_t, n))
    if seed % 3 == 0:  # uniform emissions: exact ties between permuted paths
        log_em[:] = np.log(0.25)
    if seed % 5 == 0:
        log_em[rng.random((big_t, n)) < 0.25] = -np.inf
    return rng, startprob, transmat, log_em


@pytest.mark.parametrize("seed", range(300))
def test_matches_enumeration(seed):
    rng, startprob, transmat, log_em = tiny_case(seed)
    chain, emission = compile_model(startprob, transmat, log_em)
    want_scores, want_paths = kernel_order(startprob, transmat, log_em)
    if len(want_scores) == 0:
        truth = brute_force(startprob, transmat, log_em)
        with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
            _nbest.nbest(chain, emission, None, 3)
        assert info.value.step == truth["first_impossible_step"]
        with pytest.raises(hmmfast.ImpossibleSequenceError) as vit:
            _viterbi.viterbi(chain, emission, None, None)
        assert str(info.value) == str(vit.value)
        return
    for n in (1, 2, int(rng.integers(1, 12)), len(want_scores), len(want_scores) + 5):
        scores, paths = _nbest.nbest(chain, emission, None, n)
        k = min(n, len(want_scores))
        assert scores.shape == (k,) and scores.dtype == np.float64
        assert paths.shape == (k, log_em.shape[0]) and paths.dtype == np.intp
        np.testing.assert_allclose(scores, want_scores[:k], rtol=0, atol=1e-12)
        np.testing.assert_array_equal(scores, want_scores[:k])  # the same additions
        np.testing.assert_array_equal(paths, want_paths[:k])


@pytest.mark.parametrize("seed", range(40))
def test_larger_lists_match_enumeration(seed):
    """Merges over more than SMALL_MERGE lists (the heap path), and m = N**(T-1)."""
    rng = np.random.default_rng(5000 + seed)
    n = int(rng.integers(9, 14))
    big_t = int(rng.integers(2, 5))
    startprob, transmat, _ = random_model(rng, n, 2, zeros=seed % 2 == 1)
    log_em = rng.normal(size=(big_t, n))
    if seed % 3 == 0:
        log_em[:] = 0.0
    chain, emission = compile_model(startprob, transmat, log_em)
    want_scores, want_paths = kernel_order(startprob, transmat, log_em)
    for n_best in (10, 60, n ** (big_t - 1), 10 ** 9):
        scores, paths = _nbest.nbest(chain, emission, None, n_best)
        k = min(n_best, len(want_scores))
        np.testing.assert_array_equal(scores, want_scores[:k])
        np.testing.assert_array_equal(paths, want_paths[:k])


def reversed_lex(paths):
    return sorted(map(tuple, paths), key=lambda p: p[::-1])


@pytest.mark.parametrize("n_states, big_t", [(2, 5), (3, 4), (4, 3), (12, 3)])
def test_exact_ties_order_is_reversed_lexicographic(n_states, big_t):
    """Every path has bit-identical terms: the list is all paths, smallest read backwards
    from the last step first (Viterbi's tie rule), and path 0 is Viterbi's."""
    startprob = np.full(n_states, 1.0 / n_states)
    transmat = np.full((n_states, n_states), 1.0 / n_states)
    log_em = np.repeat(np.linspace(-1.0, -3.0, big_t)[:, None], n_states, axis=1)
    chain, emission = compile_model(startprob, transmat, log_em)
    scores, paths = _nbest.nbest(chain, emission, None, n_states ** big_t + 1)
    assert len(scores) == n_states ** big_t
    assert np.all(scores == scores[0])
    assert [tuple(p) for p in paths] == reversed_lex(
        enumerate_paths(startprob, transmat, log_em)[0])
    v_score, v_path = _viterbi.viterbi(chain, emission, None, None)
    assert v_score == scores[0]
    np.testing.assert_array_equal(v_path, paths[0])


def test_exact_ties_with_structural_zeros():
    """Rows with exactly two allowed successors (each 1/2): every possible path ties."""
    startprob = np.array([0.5, 0.0, 0.5, 0.0])
    transmat = np.array([[0.5, 0.5, 0.0, 0.0],
                         [0.0, 0.5, 0.0, 0.5],
                         [0.5, 0.0, 0.0, 0.5],
                         [0.0, 0.0, 0.5, 0.5]])
    log_em = np.zeros((5, 4))
    chain, emission = compile_model(startprob, transmat, log_em)
    paths_all, logp = enumerate_paths(startprob, transmat, log_em)
    finite = paths_all[np.isfinite(logp)]
    scores, paths = _nbest.nbest(chain, emission, None, 1000)
    assert len(scores) == len(finite) == 2 ** 5
    assert np.all(scores == logp[np.isfinite(logp)][0])
    assert [tuple(p) for p in paths] == reversed_lex(finite)


def test_n_larger_than_the_number_of_paths_returns_all():
    rng = np.random.default_rng(7)
    startprob, transmat, _ = random_model(rng, 2, 2)
    log_em = rng.normal(size=(5, 2))
    chain, emission = compile_model(startprob, transmat, log_em)
    scores, paths = _nbest.nbest(chain, emission, None, 10 ** 12)  # m is capped at 2**4
    assert len(scores) == 32 and len({tuple(p) for p in paths}) == 32
    want_scores, want_paths = kernel_order(startprob, transmat, log_em)
    np.testing.assert_array_equal(scores, want_scores)
    np.testing.assert_array_equal(paths, want_paths)


def random_case(rng, n_states, big_t, zeros, ties):
    startprob, transmat, _ = random_model(rng, n_states, 2, zeros=zeros)
    log_em = rng.normal(scale=2.0, size=(big_t, n_states))
    if ties:
        log_em = np.round(log_em)  # few distinct values; uniform rows are common ties
        log_em[:, : n_states // 2] = log_em[:, [0]]
    return startprob, transmat, log_em


@pytest.mark.parametrize("seed", range(40))
def test_n1_equals_viterbi_on_larger_models(seed):
    rng = np.random.default_rng(9000 + seed)
    n_states = int(rng.integers(1, 40))
    big_t = int(rng.integers(1, 400))
    startprob, transmat, log_em = random_case(rng, n_states, big_t, seed % 2 == 1,
                                              seed % 3 == 0)
    chain, emission = compile_model(startprob, transmat, log_em)
    v_score, v_path = _viterbi.viterbi(chain, emission, None, None)
    scores, paths = _nbest.nbest(chain, emission, None, 1)
    assert scores.shape == (1,) and paths.shape == (1, big_t)
    assert scores[0] == v_score
    np.testing.assert_array_equal(paths[0], v_path)
    scores5, paths5 = _nbest.nbest(chain, emission, None, 5)  # first of a longer list too
    assert scores5[0] == v_score
    np.testing.assert_array_equal(paths5[0], v_path)


@pytest.mark.parametrize("seed", range(20))
def test_scores_are_path_log_densities_distinct_and_sorted(seed):
    rng = np.random.default_rng(400 + seed)
    n_states = int(rng.integers(2, 12))
    big_t = int(rng.integers(2, 200))
    startprob, transmat, log_em = random_case(rng, n_states, big_t, seed % 2 == 0,
                                              seed % 4 == 1)
    chain, emission = compile_model(startprob, transmat, log_em)
    n = int(rng.integers(2, 40))
    scores, paths = _nbest.nbest(chain, emission, None, n)
    assert len(scores) == n  # long sequences have far more than n paths
    assert np.all(np.diff(scores) <= 0)
    assert len({tuple(p) for p in paths}) == len(paths)
    for score, path in zip(scores, paths, strict=True):
        ref = _reference.path_log_prob(startprob, transmat, log_em, path)[0]
        np.testing.assert_allclose(score, ref, rtol=1e-12, atol=1e-9)
        # the kernel's own path density adds the same terms in the same order
        assert score == _viterbi.path_log_prob(chain, emission, None, None, path)


def test_table_rows_equal_dense_emissions():
    rng = np.random.default_rng(3)
    startprob, transmat, emissionprob = random_model(rng, 5, 7, zeros=True)
    symbols = rng.integers(0, 7, size=120).astype(np.intp)
    table = log(emissionprob).T  # (M, N)
    chain = _kernel_inputs.chain(startprob, transmat)
    by_rows = _nbest.nbest(chain, _kernel_inputs.emission(table, False), symbols, 8)
    dense = _nbest.nbest(chain, _kernel_inputs.emission(table[symbols], False), None, 8)
    np.testing.assert_array_equal(by_rows[0], dense[0])
    np.testing.assert_array_equal(by_rows[1], dense[1])


def test_impossible_sequence_names_the_same_step_as_viterbi():
    startprob = np.array([1.0, 0.0])
    transmat = np.array([[0.0, 1.0], [0.0, 1.0]])
    log_em = np.zeros((6, 2))
    log_em[4, 1] = -np.inf  # only state 1 is reachable from step 1 on
    chain, emission = compile_model(startprob, transmat, log_em)
    with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
        _nbest.nbest(chain, emission, None, 4)
    assert info.value.step == 4 and info.value.sequence == 0
    log_em[0, 0] = -np.inf
    chain, emission = compile_model(startprob, transmat, log_em)
    with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
        _nbest.nbest(chain, emission, None, 1)
    assert info.value.step == 0


def test_internal_misuse_and_bad_rows():
    rng = np.random.default_rng(0)
    startprob, transmat, emissionprob = random_model(rng, 3, 4)
    chain = _kernel_inputs.chain(startprob, transmat)
    emission = _kernel_inputs.emission(log(emissionprob).T, False)
    rows = np.array([0, 1, 4, 2], dtype=np.intp)
    for n in (0, -3):
        with pytest.raises(ValueError, match="n must be >= 1"):
            _nbest.nbest(chain, emission, rows[:2], n)
    with pytest.raises(hmmfast.HMMInputError, match=r"X\[2\]"):
        _nbest.nbest(chain, emission, rows, 2)
    with pytest.raises(TypeError):
        _nbest.nbest(chain, emission, rows.astype(np.int32), 2)


def test_sparse_chain_equals_dense():
    """A sparse-only chain (no dense matrix) gives the dense chain's lists exactly."""
    rng = np.random.default_rng(11)
    n_states = _chain.DENSE_LIMIT + 6
    transmat = np.zeros((n_states, n_states))
    for i in range(n_states):  # left-to-right with skips, plus a random jump
        for j, w in ((i, 0.6), (i + 1, 0.3), (i + 2, 0.1)):
            transmat[i, j % n_states] += w
        transmat[i, rng.integers(n_states)] += 0.2
    transmat /= transmat.sum(axis=1, keepdims=True)
    startprob = rng.dirichlet(np.ones(n_states))
    log_em = rng.normal(scale=2.0, size=(60, n_states))
    dense = _kernel_inputs.chain(startprob, transmat)
    sparse_chain = _chain.compile_chain(startprob, sparse.csr_matrix(transmat), 0.0)
    emission = _kernel_inputs.emission(log_em, False)
    a = _nbest.nbest(dense, emission, None, 12)
    b = _nbest.nbest(sparse_chain, emission, None, 12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    v_score, v_path = _viterbi.viterbi(dense, emission, None, None)
    assert a[0][0] == v_score
    np.testing.assert_array_equal(a[1][0], v_path)


# ---------------------------------------------------------------- through the public API


@pytest.mark.parametrize("seed", range(6))
def test_model_nbest_is_the_top_of_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_states = 2 + seed % 2
    startprob, transmat, emissionprob = random_model(rng, n_states, 3, zeros=seed >= 3)
    model = categorical(startprob, transmat, emissionprob)
    X = model.sample(5, random_state=seed)[0].ravel()  # a possible sequence
    log_em = categorical_log_emissions(emissionprob, X)
    paths, logp = enumerate_paths(startprob, transmat, log_em)
    finite = np.isfinite(logp)
    want = np.sort(logp[finite])[::-1][:7]
    got = model.nbest(X, 7)
    assert len(got) == min(7, finite.sum())
    np.testing.assert_allclose([s for s, _ in got], want, rtol=1e-12)
    seen = set()
    for score, path in got:
        assert path.dtype == np.intp and path.shape == (5,)
        assert tuple(path) not in seen
        seen.add(tuple(path))
        assert score == pytest.approx(
            _reference.path_log_prob(startprob, transmat, log_em, path)[0], rel=1e-12)
    # entry 0 is decode's answer exactly; the functional API agrees with the model
    logprob, states = model.decode(X)
    assert got[0][0] == logprob
    np.testing.assert_array_equal(got[0][1], states)
    functional = hmmfast.nbest(startprob, transmat, log_em, 7)
    assert [s for s, _ in functional] == [s for s, _ in got]
    for (_, a), (_, b) in zip(functional, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_nbest_on_continuous_and_sparse_models():
    rng = np.random.default_rng(3)
    model = hmmfast.GaussianHMM(3, covariance_type="diag")
    model.startprob_ = np.array([0.5, 0.3, 0.2])
    model.transmat_ = rng.dirichlet(np.ones(3), size=3)
    model.means_ = rng.normal(size=(3, 2))
    model.covars_ = np.ones((3, 2))
    X = model.sample(40, random_state=1)[0]
    best = model.nbest(X, 4)
    assert best[0][0] == model.decode(X)[0]
    assert [s for s, _ in best] == sorted((s for s, _ in best), reverse=True)
    dense = categorical(*random_model(rng, 6, 4, zeros=True))
    X = dense.sample(60, random_state=2)[0]
    sparse_model = categorical(dense.startprob_, sparse.csr_array(dense.transmat_),
                               dense.emissionprob_)
    a, b = dense.nbest(X, 5), sparse_model.nbest(X, 5)
    assert [s for s, _ in a] == [s for s, _ in b]


def test_nbest_errors():
    model = categorical(np.array([1.0, 0.0]), np.eye(2), np.eye(2))
    with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
        model.nbest([0, 0, 1], 3)
    assert info.value.step == 2
    for bad, error in ((0, hmmfast.ParameterError), (2.5, hmmfast.HMMTypeError),
                       ("3", hmmfast.HMMTypeError)):
        with pytest.raises(error, match="n"):
            model.nbest([0, 0], bad)
    with pytest.raises(hmmfast.HMMInputError):
        model.nbest([0, 5], 2)
    assert len(model.nbest([0, 0, 0], 10)) == 1  # one possible path only
