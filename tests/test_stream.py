"""StreamScorer and StreamDecoder (issue 14): streaming equals offline, exactly.

Oracles: offline ``model.score`` / ``model.decode`` on the concatenated input,
``hmmfast._reference`` (log-space alpha, Viterbi) and brute force (tests/hmm_oracles.py).
Fixed-lag decoding has an offline definition too: the state emitted for step tau is the
offline Viterbi path of the prefix that ends L steps later.
"""

import numpy as np
import pytest
from factories import categorical, left_to_right, random_gaussian, sparse_chain
from hmm_oracles import brute_force, log, random_model
from scipy import sparse
from scipy.special import logsumexp

import hmmfast
from hmmfast import _reference
from hmmfast import StreamDecoder, StreamScorer
from hmmfast._stream_decoder import StreamDecoderKernel
from hmmfast._stream_scorer import StreamScorerKernel


# ---------------------------------------------------------------- models and chunkings

def left_to_right_model(rng, n, m):
    """(startprob, transmat, emissionprob): a left-to-right chain (random stays in
    [0.8, 0.999)) with peaked emissions."""
    startprob, transmat = left_to_right(n, rng.uniform(0.8, 0.999, n))
    return startprob, transmat, rng.dirichlet(np.ones(m) * 0.5, size=n)


def tied_model(n_pairs=2, m=3, sticky=0.7):
    """Pairs of states with identical emissions and mirror-symmetric transitions: the two
    states of a pair always tie exactly, so their parallel paths never coalesce and every
    decision is a tie broken to the lowest index."""
    rng = np.random.default_rng(123)
    n = 2 * n_pairs
    block = rng.dirichlet(np.ones(n_pairs), size=n_pairs) * (1 - sticky)
    transmat = np.zeros((n, n))
    for a in range(n_pairs):
        for b in range(n_pairs):
            for u in range(2):
                for v in range(2):
                    transmat[2 * a + u, 2 * b + v] = block[a, b] / 2
        transmat[2 * a, 2 * a] += sticky
        transmat[2 * a + 1, 2 * a + 1] += sticky
    emission = np.repeat(rng.dirichlet(np.ones(m), size=n_pairs), 2, axis=0)
    return categorical(np.full(n, 1.0 / n), transmat, emission)


def model_zoo(m=6):
    """(name, model) pairs: dense, structural zeros, left-to-right, tiny transitions."""
    zoo = []
    for k, (n, zeros) in enumerate([(1, False), (2, False), (3, True), (5, False), (5, True),
                                    (8, True), (12, False), (40, True)]):
        rng = np.random.default_rng(100 + k)
        zoo.append((f"random-N{n}{'-zeros' if zeros else ''}",
                    categorical(*random_model(rng, n, m, zeros=zeros))))
    zoo.append(("left-to-right", categorical(*left_to_right_model(np.random.default_rng(7), 6, m))))
    rng = np.random.default_rng(8)
    startprob, transmat, emissionprob = random_model(rng, 4, m)
    transmat[:, 3] = [1e-250, 1e-300, 1e-200, 0.5]  # a state entered only via tiny transitions
    transmat /= transmat.sum(axis=1, keepdims=True)
    zoo.append(("tiny-transitions", categorical(startprob, transmat, emissionprob)))
    return zoo


def sample(model, T, seed):
    return model.sample(T, random_state=seed)[0][:, 0]


def chunks(rng, X, max_chunk=60, symbols=True):
    """Split X into random pushes of mixed forms: single observations (Python int, NumPy
    integer, 1-element list) and chunks (ndarray, list, hmmlearn's (n, 1) column)."""
    t, T = 0, len(X)
    while t < T:
        r = rng.random()
        size = 1 if r < 0.5 else int(rng.integers(2, max_chunk))
        if r > 0.995:
            size = int(rng.integers(500, 6000))
        piece = X[t:t + size]
        form = rng.integers(0, 3)
        if not symbols:
            if len(piece) == 1 and form == 0:
                yield piece[0]  # one frame as a 1-D array
            else:
                yield piece if form else piece.tolist()
        elif len(piece) == 1:
            yield (int(piece[0]), np.int64(piece[0]), [int(piece[0])])[form]
        else:
            yield (piece, piece.tolist(), piece[:, None])[form]
        t += len(piece)


# ---------------------------------------------------------------- StreamScorer

@pytest.mark.parametrize("name,model", model_zoo(), ids=[n for n, _ in model_zoo()])
def test_scorer_equals_score_on_prefixes(name, model):
    rng = np.random.default_rng(hash(name) % 2**32)
    T = 100_000 if name in ("random-N5-zeros", "left-to-right", "tiny-transitions") else 20_000
    X = sample(model, T, 1)
    scorer = model.stream_scorer()
    assert isinstance(scorer, StreamScorer)
    assert scorer.posterior is None and scorer.last_step is None and scorer.logprob == 0.0
    t = 0
    checks = set(rng.integers(1, T, size=8)) | {1, T}
    last = {}
    for piece in chunks(rng, X):
        value = scorer.push(piece)
        t += np.size(piece)
        assert scorer.n_seen == t and value == scorer.logprob
        if any(t_prev < c <= t for c in checks for t_prev in [t - np.size(piece)]):
            last[t] = value
    assert t == T
    for t, value in last.items():
        np.testing.assert_allclose(value, model.score(X[:t]), rtol=1e-9)
    assert not scorer.impossible


def test_scorer_log_implementation_model_and_exactness():
    """The stream agrees with the "log" implementation too, and far below float64's range."""
    rng = np.random.default_rng(3)
    params = random_model(rng, 5, 10)
    model = categorical(*params, implementation="log")
    X = rng.integers(0, 10, size=100_000)
    scorer = model.stream_scorer()
    value = scorer.push(X)
    assert value < -1e5
    np.testing.assert_allclose(value, model.score(X), rtol=1e-12)
    np.testing.assert_allclose(value, categorical(*params).score(X), rtol=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_scorer_posterior_and_last_step_match_reference(seed):
    rng = np.random.default_rng(seed)
    n, m = (2, 3, 4, 5, 6, 8, 20, 40)[seed], 5  # from 16 states exps are vectorised
    params = random_model(rng, n, m, zeros=seed % 2 == 1)
    if seed == 4:
        params = left_to_right_model(rng, n, m)
    model = categorical(*params)
    X = sample(model, 300, seed)
    alpha = _reference.log_alpha(params[0], params[1],
                                 _reference.categorical_log_emissions(params[2], X))
    lse = logsumexp(alpha, axis=1)
    scorer = model.stream_scorer()
    for t, x in enumerate(X):
        scorer.push(int(x))
        post = scorer.posterior
        assert post.shape == (n,) and post.dtype == np.float64
        np.testing.assert_allclose(post, np.exp(alpha[t] - lse[t]), rtol=0, atol=1e-12)
        expected_step = lse[t] - (lse[t - 1] if t else 0.0)
        np.testing.assert_allclose(scorer.last_step, expected_step, rtol=1e-10, atol=1e-10)
    assert scorer.posterior is not scorer.posterior  # a fresh array each time


def test_scorer_path_below_float64_range():
    """The only path has probability ~1e-400: the exact rescue must keep it."""
    eps = 1e-200
    startprob = [1.0, 0.0, 0.0]
    transmat = [[1 - eps, eps, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    emissionprob = [[1.0, 0.0, 0.0], [eps, 0.0, 1 - eps], [0.0, 1.0, 0.0]]
    X = [0, 0, 1, 1]
    truth = brute_force(startprob, transmat, log(emissionprob).T[X])
    scorer = categorical(startprob, transmat, emissionprob).stream_scorer()
    for x in X:
        value = scorer.push(x)
    np.testing.assert_allclose(value, truth["loglik"], rtol=1e-12)
    np.testing.assert_allclose(scorer.posterior, truth["posteriors"][-1], atol=1e-12)


def impossible_model():
    """0 -> 1 allowed, 1 absorbing; state 0 emits {0, 1}, state 1 emits {1, 2}."""
    return categorical([1.0, 0.0], [[0.5, 0.5], [0.0, 1.0]],
                       [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])


def test_scorer_impossible_then_reset():
    model = impossible_model()
    scorer = model.stream_scorer()
    scorer.push([0, 2])  # 2 only from state 1, which never emits 0 and never leaves
    assert np.isfinite(scorer.logprob)
    assert scorer.push(0) == -np.inf == model.score([0, 2, 0])
    assert scorer.impossible and scorer.last_step == -np.inf and scorer.n_seen == 3
    with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
        scorer.posterior
    assert info.value.step == 2
    assert scorer.push(0) == -np.inf  # -inf for good, still counted ...
    assert scorer.push([1, 2, 0]) == -np.inf and scorer.n_seen == 7
    with pytest.raises(hmmfast.HMMInputError):  # ... and still validated
        scorer.push(3)
    assert scorer.n_seen == 7
    scorer.reset()
    assert not scorer.impossible and scorer.n_seen == 0 and scorer.posterior is None
    assert scorer.logprob == 0.0
    np.testing.assert_allclose(scorer.push([0, 0, 1, 2, 2]), model.score([0, 0, 1, 2, 2]),
                               rtol=1e-12)
    # impossible at the very first observation
    scorer.reset()
    assert scorer.push(2) == -np.inf and scorer.impossible
    with pytest.raises(hmmfast.ImpossibleSequenceError):
        scorer.posterior


BAD_SYMBOLS = [3, -1, 2**70, [0, 5, 1], [0, -2], 1.5, [0.0, 1.0], "a", None, True,
               [[0, 1]], np.array([[0, 1], [1, 0]]), np.array([0, 1], dtype=np.uint64) + 2**63,
               [1, [2]]]


def expected_error(model, obs):
    """What model.score raises on obs (a scalar as a one-element sequence)."""
    if obs is None or isinstance(obs, (str, bool, int, float, np.generic)):
        obs = np.array([obs], dtype=object if obs is None else None)
    with pytest.raises((ValueError, TypeError)) as info:
        model.score(obs)
    return info.value


@pytest.mark.parametrize("bad", BAD_SYMBOLS, ids=repr)
def test_bad_symbols_raise_like_score_and_change_nothing(bad):
    model = impossible_model()
    X = [0, 0, 1, 1, 2, 1]
    scorer, decoder = model.stream_scorer(), model.stream_decoder()
    scorer.push(X[:3])
    out = [decoder.push(X[:3])]
    before = (scorer.logprob, scorer.n_seen, scorer.last_step, scorer.posterior.copy())
    window = decoder.window
    expected = expected_error(model, bad)
    for stream in (scorer, decoder):
        with pytest.raises(type(expected)) as info:
            stream.push(bad)
        assert str(info.value) == str(expected)
    assert (scorer.logprob, scorer.n_seen, scorer.last_step) == before[:3]
    np.testing.assert_array_equal(scorer.posterior, before[3])
    assert decoder.n_seen == 3 and decoder.window == window
    np.testing.assert_allclose(scorer.push(X[3:]), model.score(X), rtol=1e-12)
    out += [decoder.push(X[3:]), decoder.flush()]
    np.testing.assert_array_equal(np.concatenate(out), model.decode(X)[1])


def test_empty_chunk_is_a_no_op():
    model = impossible_model()
    scorer, decoder = model.stream_scorer(), model.stream_decoder()
    assert scorer.push([]) == 0.0 and scorer.n_seen == 0 and scorer.posterior is None
    assert decoder.push(np.array([], dtype=np.intp)).shape == (0,) and decoder.n_seen == 0
    scorer.push(0)
    value = scorer.logprob
    assert scorer.push(np.zeros(0, dtype=int)) == value and scorer.n_seen == 1


def test_snapshot_ignores_later_parameter_changes():
    rng = np.random.default_rng(4)
    params = random_model(rng, 4, 5)
    model = categorical(*params)
    X = rng.integers(0, 5, size=500)
    expected_score, expected_path = model.score(X), model.decode(X)[1]
    scorer, decoder = model.stream_scorer(), model.stream_decoder()
    scorer.push(X[:100])
    out = [decoder.push(X[:100])]
    model.transmat_ = rng.dirichlet(np.ones(4), size=4)  # the model changes mid-stream
    model.emissionprob_ = rng.dirichlet(np.ones(5), size=4)
    np.testing.assert_allclose(scorer.push(X[100:]), expected_score, rtol=1e-12)
    out += [decoder.push(X[100:]), decoder.flush()]
    np.testing.assert_array_equal(np.concatenate(out), expected_path)
    assert model.score(X) != expected_score


def test_unfitted_model_raises():
    with pytest.raises(hmmfast.NotFittedError):
        hmmfast.CategoricalHMM(3).stream_scorer()
    with pytest.raises(hmmfast.NotFittedError):
        hmmfast.GaussianHMM(3).stream_decoder()


# ---------------------------------------------------------------- continuous families


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_gaussian_streams_equal_offline(covariance_type):
    model = random_gaussian(5, covariance_type, n=4, d=3)
    X = model.sample(12_000, random_state=2)[0]
    rng = np.random.default_rng(9)
    scorer, decoder = model.stream_scorer(), model.stream_decoder()
    out, t = [], 0
    for piece in chunks(rng, X, symbols=False):
        value = scorer.push(piece)
        out.append(decoder.push(piece))
        t += 1 if np.ndim(piece) == 1 else len(piece)
        assert scorer.n_seen == decoder.n_seen == t
    np.testing.assert_allclose(value, model.score(X), rtol=1e-9)
    out.append(decoder.flush())
    np.testing.assert_array_equal(np.concatenate(out), model.decode(X)[1])
    # the whole sequence in one push (several blocks of log-emissions)
    scorer.reset()
    np.testing.assert_allclose(scorer.push(X), model.score(X), rtol=1e-9)
    log_em = model._compute_log_likelihood(X)
    alpha = _reference.log_alpha(model.startprob_, model.transmat_, log_em[:200])[-1]
    scorer.reset()
    scorer.push(X[:200])
    np.testing.assert_allclose(scorer.posterior, np.exp(alpha - logsumexp(alpha)), atol=1e-12)
    decoder.reset()
    np.testing.assert_array_equal(np.concatenate([decoder.push(X), decoder.flush()]),
                                  model.decode(X)[1])


def test_gaussian_bad_frames_raise_like_score():
    model = random_gaussian(6, "diag", n=3, d=2)
    scorer, decoder = model.stream_scorer(), model.stream_decoder()
    X = model.sample(20, random_state=0)[0]
    scorer.push(X[:5])
    out = [decoder.push(X[:5])]
    value = scorer.logprob
    for bad in ([1.0, 2.0, 3.0], [np.nan, 1.0], [[1.0, np.inf]], ["a", "b"], [1 + 2j, 0],
                np.zeros((2, 2, 2))):
        as_frames = np.atleast_2d(np.asarray(bad))
        with pytest.raises((ValueError, TypeError)) as info:
            model.score(as_frames)
        for stream in (scorer, decoder):
            with pytest.raises(type(info.value)) as got:
                stream.push(bad)
            assert str(got.value) == str(info.value)
    assert scorer.logprob == value and scorer.n_seen == decoder.n_seen == 5
    # a chunk with one bad frame deep inside is refused whole
    chunk = X[5:].copy()
    chunk[9, 1] = np.nan
    for stream in (scorer, decoder):
        with pytest.raises(hmmfast.HMMInputError, match=r"X\[9\]"):
            stream.push(chunk)
    assert scorer.n_seen == decoder.n_seen == 5
    np.testing.assert_allclose(scorer.push(X[5:]), model.score(X), rtol=1e-12)
    out += [decoder.push(X[5:]), decoder.flush()]
    np.testing.assert_array_equal(np.concatenate(out), model.decode(X)[1])


def test_poisson_and_missing_frames():
    rng = np.random.default_rng(12)
    model = hmmfast.PoissonHMM(3, missing="marginalize")
    model.startprob_ = rng.dirichlet(np.ones(3))
    model.transmat_ = rng.dirichlet(np.ones(3), size=3)
    model.lambdas_ = rng.uniform(0.5, 8.0, (3, 2))
    X = model.sample(3000, random_state=1)[0].astype(float)
    X[rng.random(3000) < 0.1] = np.nan  # missing frames
    scorer, decoder = model.stream_scorer(), model.stream_decoder()
    out = []
    for piece in chunks(rng, X, symbols=False):
        scorer.push(piece)
        out.append(decoder.push(piece))
    out.append(decoder.flush())
    np.testing.assert_allclose(scorer.logprob, model.score(X), rtol=1e-9)
    np.testing.assert_array_equal(np.concatenate(out), model.decode(X)[1])


class HookHMM(hmmfast.BaseHMM):
    """hmmlearn's custom-emission recipe: only _compute_log_likelihood."""

    def _compute_log_likelihood(self, X):
        return -0.5 * (X - np.arange(self.n_components)) ** 2


def test_custom_emission_hook():
    rng = np.random.default_rng(2)
    model = HookHMM(3)
    model.startprob_ = rng.dirichlet(np.ones(3))
    model.transmat_ = rng.dirichlet(np.ones(3), size=3)
    X = rng.normal(1.0, 1.5, size=(5000, 1))
    scorer, decoder = model.stream_scorer(), model.stream_decoder()
    out = []
    for piece in chunks(rng, X, symbols=False):
        scorer.push(piece)
        out.append(decoder.push(piece))
    out.append(decoder.flush())
    np.testing.assert_allclose(scorer.logprob, model.score(X), rtol=1e-9)
    np.testing.assert_array_equal(np.concatenate(out), model.decode(X)[1])
    scorer.push(2.5)  # a scalar is one frame of one feature
    assert scorer.n_seen == 5001
    with pytest.raises(hmmfast.HMMInputError):
        scorer.push([np.nan])
    assert scorer.n_seen == 5001


# ---------------------------------------------------------------- StreamDecoder: exactness

def decode_stream(decoder, pieces):
    out = [decoder.push(p) for p in pieces]
    out.append(decoder.flush())
    for o in out:
        assert o.dtype == np.intp and o.ndim == 1
    return np.concatenate(out)


@pytest.mark.parametrize("name,model", model_zoo(), ids=[n for n, _ in model_zoo()])
def test_decoder_equals_viterbi(name, model):
    rng = np.random.default_rng(hash(name) % 2**32 + 1)
    T = 100_000 if name in ("random-N5-zeros", "left-to-right", "random-N12") else 20_000
    X = sample(model, T, 3)
    decoder = model.stream_decoder()
    assert isinstance(decoder, StreamDecoder)
    path = decode_stream(decoder, chunks(rng, X))
    np.testing.assert_array_equal(path, model.decode(X)[1])
    assert decoder.n_seen == 0 and decoder.window == 0  # flush starts a new stream
    # the same decoder, a second stream, one observation at a time
    Y = sample(model, 3000, 4)
    np.testing.assert_array_equal(decode_stream(decoder, (int(y) for y in Y)),
                                  model.decode(Y)[1])


@pytest.mark.parametrize("n_pairs", [1, 2, 3])
def test_decoder_exact_ties(n_pairs):
    """Tied pairs of states: the output still equals offline Viterbi, whose ties go to the
    lowest index. With one pair the two tied paths never merge: the window holds the
    whole stream (exact decoding of a non-coalescing model) until flush."""
    model = tied_model(n_pairs)
    X = sample(model, 100_000 if n_pairs == 1 else 20_000, 0)
    decoder = model.stream_decoder()
    out = [decoder.push(X[:-1000])]
    for x in X[-1000:]:
        out.append(decoder.push(int(x)))
    if n_pairs == 1:
        assert decoder.window == len(X) and sum(map(len, out)) == 0
    out.append(decoder.flush())
    path = np.concatenate(out)
    np.testing.assert_array_equal(path, model.decode(X)[1])
    assert np.all(path % 2 == 0)  # every tie went to the lower state of its pair
    Y = X[:3000]
    np.testing.assert_array_equal(
        decode_stream(model.stream_decoder(), [Y[:1000], Y[1000:]]),
        _reference.viterbi(model.startprob_, model.transmat_,
                           _reference.categorical_log_emissions(model.emissionprob_, Y))[1])


def test_decoder_uniform_emissions_and_uniform_transitions():
    for transmat in (np.full((4, 4), 0.25), np.array([[0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0],
                                                      [0, 0, 0.5, 0.5], [0.5, 0, 0, 0.5]])):
        model = categorical(np.full(4, 0.25), transmat, np.full((4, 3), 1 / 3))
        X = np.random.default_rng(0).integers(0, 3, size=2000)
        rng = np.random.default_rng(1)
        np.testing.assert_array_equal(decode_stream(model.stream_decoder(), chunks(rng, X)),
                                      model.decode(X)[1])


def test_decoder_matches_brute_force_on_short_streams():
    for seed in range(30):
        rng = np.random.default_rng(seed)
        params = random_model(rng, 3, 3, zeros=seed % 2 == 0)
        model = categorical(*params)
        X = sample(model, 6, seed)
        truth = brute_force(*params[:2], log(params[2]).T[X])
        path = decode_stream(model.stream_decoder(), (int(x) for x in X))
        np.testing.assert_array_equal(path, truth["viterbi_path"])


def test_decoder_large_state_space_uint16_backpointers():
    rng = np.random.default_rng(5)
    params = random_model(rng, 300, 20)
    model = categorical(*params)
    X = rng.integers(0, 20, size=1500)
    path = decode_stream(model.stream_decoder(), chunks(rng, X))
    np.testing.assert_array_equal(path, model.decode(X)[1])


# ---------------------------------------------------------------- StreamDecoder: memory

def sticky_model(n=5, m=8, stay=0.9, seed=0):
    rng = np.random.default_rng(seed)
    transmat = np.full((n, n), (1 - stay) / (n - 1)) + np.eye(n) * (stay - (1 - stay) / (n - 1))
    return categorical(np.full(n, 1 / n), transmat, rng.dirichlet(np.ones(m), size=n))


def test_window_stays_bounded_on_a_mixing_model():
    model = sticky_model()
    X = sample(model, 100_000, 7)
    decoder = model.stream_decoder()
    out, windows = [], np.empty(len(X), dtype=np.intp)
    push = decoder.push
    for t, x in enumerate(X.tolist()):
        out.append(push(x))
        windows[t] = decoder.window
    assert windows.max() < 150  # in fact ~30; unbounded growth would reach 100,000
    assert windows[-10_000:].max() < 150  # no drift as T grows
    out.append(decoder.flush())
    np.testing.assert_array_equal(np.concatenate(out), model.decode(X)[1])
    # chunked: the window after each push is just the chunk's unresolved tail
    rng = np.random.default_rng(0)
    for piece in chunks(rng, X[:50_000]):
        decoder.push(piece)
        assert decoder.window < 150
    decoder.reset()
    assert decoder.window == 0 and decoder.n_seen == 0


def test_single_state_and_single_survivor_emit_at_once():
    model = categorical([1.0], [[1.0]], [[0.5, 0.5]])
    decoder = model.stream_decoder()
    for x in [0, 1, 1, 0]:
        np.testing.assert_array_equal(decoder.push(x), [0])
        assert decoder.window == 0
    assert decoder.flush().shape == (0,)
    # deterministic emissions: every step has one possible state
    model = categorical([0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]], [[1.0, 0.0], [0.0, 1.0]])
    decoder = model.stream_decoder()
    assert list(decoder.push([0, 1, 1])) == [0, 1, 1] and decoder.window == 0


# ---------------------------------------------------------------- StreamDecoder: max_lag

@pytest.mark.parametrize("lag", [0, 1, 2, 5, 17])
def test_max_lag_is_viterbi_of_the_prefix_and_never_late(lag):
    """The state of step tau is that of offline Viterbi on X[:tau + lag + 1], and it comes
    out with the push of step tau + lag at the latest."""
    rng = np.random.default_rng(lag)
    params = random_model(rng, 4, 3, zeros=lag % 2 == 1)
    model = categorical(*params)
    X = sample(model, 400, lag)
    decoder = model.stream_decoder(max_lag=lag)
    assert decoder.max_lag == lag
    emitted_at = []
    out = []
    for t, x in enumerate(X):
        got = decoder.push(int(x))
        out.append(got)
        emitted_at += [t] * len(got)
        assert decoder.window <= lag
    out.append(decoder.flush())
    emitted_at += [len(X)] * len(out[-1])
    path = np.concatenate(out)
    T = len(X)
    assert len(path) == T
    for tau in range(T):
        assert emitted_at[tau] <= tau + lag or tau + lag >= T
        end = min(tau + lag, T - 1)
        assert path[tau] == model.decode(X[:end + 1])[1][tau], tau


@pytest.mark.parametrize("lag", [0, 3, 40])
def test_max_lag_with_chunks_keeps_the_promise(lag):
    rng = np.random.default_rng(10 + lag)
    model = categorical(*random_model(rng, 5, 6, zeros=True))
    X = sample(model, 20_000, 1)
    decoder = model.stream_decoder(max_lag=lag)
    n_out, t, out = 0, 0, []
    for piece in chunks(rng, X):
        got = decoder.push(piece)
        out.append(got)
        n_out += len(got)
        t += np.size(piece)
        assert n_out >= t - lag and decoder.window == t - n_out <= lag
    out.append(decoder.flush())
    # chunking does not change fixed-lag output: same as one observation at a time
    one = model.stream_decoder(max_lag=lag)
    np.testing.assert_array_equal(np.concatenate(out),
                                  decode_stream(one, (int(x) for x in X)))


def test_max_lag_equals_viterbi_when_paths_coalesce_fast():
    rng = np.random.default_rng(0)
    n = 5
    emission = np.full((n, n), 0.02) + np.eye(n) * (0.9)  # nearly deterministic
    emission /= emission.sum(axis=1, keepdims=True)
    model = categorical(np.full(n, 0.2), rng.dirichlet(np.ones(n) * 2, size=n), emission)
    X = sample(model, 100_000, 5)
    decoder = model.stream_decoder(max_lag=25)
    path = decode_stream(decoder, chunks(rng, X))
    np.testing.assert_array_equal(path, model.decode(X)[1])


def test_max_lag_validation():
    model = impossible_model()
    for bad, error in ((-1, hmmfast.ParameterError), (1.5, hmmfast.HMMTypeError),
                       (True, hmmfast.HMMTypeError), ("3", hmmfast.HMMTypeError)):
        with pytest.raises(error):
            model.stream_decoder(max_lag=bad)
    assert model.stream_decoder(max_lag=np.int64(3)).max_lag == 3
    assert model.stream_decoder().max_lag is None


# ---------------------------------------------------------------- StreamDecoder: beam

PRUNINGS = [dict(beam=0.0), dict(beam=1.0), dict(beam=4.0), dict(max_active=1),
            dict(max_active=3), dict(beam=2.0, max_active=4, min_active=2),
            dict(beam=0.5, min_active=3), dict(beam=np.inf, max_active=5)]


@pytest.mark.parametrize("kw", PRUNINGS, ids=[str(k) for k in PRUNINGS])
def test_beam_stream_equals_offline_beam_decode(kw):
    """The offline beam decoder (csrc/_beam.pyx, sparse expansion of active states) is
    the oracle; the stream runs dense steps with pruned states at -inf."""
    rng = np.random.default_rng(11)
    n, m = 12, 6
    model = categorical(rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n) * 0.4, size=n),
                        rng.dirichlet(np.ones(m) * 0.5, size=n))
    X = sample(model, 20_000, 6)
    want_score, want = model.decode(X, **kw)
    decoder = model.stream_decoder(**kw)
    np.testing.assert_array_equal(decode_stream(decoder, chunks(rng, X)), want)
    np.testing.assert_array_equal(decode_stream(decoder, (int(x) for x in X[:2000])),
                                  model.decode(X[:2000], **kw)[1])
    # with a lag, as with exact decoding: emitted no later than promised
    lagged = model.stream_decoder(max_lag=30, **kw)
    out = [lagged.push(x) for x in X[:3000]]
    assert lagged.window <= 30
    assert sum(len(o) for o in out) == 3000 - lagged.window


def test_beam_stream_on_a_sparse_left_to_right_model():
    rng = np.random.default_rng(12)
    model = categorical(*left_to_right_model(rng, 300, 20))
    X = sample(model, 5000, 7)
    for kw in (dict(beam=3.0), dict(max_active=8)):
        want = model.decode(X, **kw)[1]
        got = decode_stream(model.stream_decoder(**kw), chunks(rng, X))
        np.testing.assert_array_equal(got, want)


def test_beam_infinite_is_exact_and_pruning_shortens_the_window():
    model = tied_model(n_pairs=1)  # two tied paths never coalesce: the window grows
    X = sample(model, 400, 8)
    exact = model.stream_decoder(beam=np.inf, min_active=2)  # nothing to prune
    assert exact.push(X).size == 0 and exact.window == 400
    np.testing.assert_array_equal(exact.flush(), model.decode(X)[1])
    pruned = model.stream_decoder(max_active=1)  # one survivor: final at once
    out = pruned.push(X)
    assert pruned.window == 0
    np.testing.assert_array_equal(out, model.decode(X, max_active=1)[1])


def test_beam_stream_pruning_error_and_rollback():
    # the greedy first step picks state 1, whose only continuation cannot emit symbol 1
    model = categorical(np.array([0.5, 0.5]), np.array([[0.5, 0.5], [0.0, 1.0]]),
                        np.array([[0.4, 0.6], [0.9, 0.1]]))
    model.emissionprob_ = np.array([[0.4, 0.6], [1.0, 0.0]])
    decoder = model.stream_decoder(max_active=1)
    assert decoder.push(0).tolist() == [1]  # one survivor: final at once
    with pytest.raises(hmmfast.PruningError, match="widen beam") as info:
        decoder.push([0, 1])
    assert info.value.step == 2 and info.value.position == 1
    assert decoder.n_seen == 1  # the push was not applied
    assert decoder.push(0).tolist() == [1]
    with pytest.raises(hmmfast.PruningError):
        model.decode([0, 0, 1], max_active=1)
    # exact decoding of the same stream is possible
    np.testing.assert_array_equal(decode_stream(model.stream_decoder(), [[0, 0, 1]]),
                                  model.decode([0, 0, 1])[1])
    # a stream that never pruned reports a plain impossible observation
    stuck = categorical(np.array([1.0, 0.0]), np.eye(2), np.eye(2))
    plain = stuck.stream_decoder(beam=100.0)
    plain.push([0, 0])
    with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
        plain.push([0, 1])
    assert type(info.value) is hmmfast.ImpossibleSequenceError
    assert plain.n_seen == 2


@pytest.mark.parametrize("kwargs,error", [
    (dict(beam=-1.0), hmmfast.ParameterError), (dict(beam="wide"), hmmfast.HMMTypeError),
    (dict(max_active=0), hmmfast.ParameterError),
    (dict(max_active=2, min_active=3), hmmfast.ParameterError)])
def test_bad_beam_options(kwargs, error):
    with pytest.raises(error):
        impossible_model().stream_decoder(**kwargs)


# ---------------------------------------------------------------- StreamDecoder: impossible

def test_decoder_impossible_observation_changes_nothing():
    model = impossible_model()
    decoder = model.stream_decoder()
    out = [decoder.push([0, 0, 1]), decoder.push(2)]  # 2 only from state 1 ...
    state = (decoder.n_seen, decoder.window)
    with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
        decoder.push(0)  # ... from which 0 is impossible
    assert info.value.step == 4 and info.value.position == 0
    assert "observation 4" in str(info.value)
    assert (decoder.n_seen, decoder.window) == state
    with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
        decoder.push([1, 2, 1, 0, 1])  # impossible at chunk index 3
    assert info.value.step == 7 and info.value.position == 3
    assert (decoder.n_seen, decoder.window) == state
    out += [decoder.push([1, 2]), decoder.flush()]
    np.testing.assert_array_equal(np.concatenate(out), model.decode([0, 0, 1, 2, 1, 2])[1])
    # impossible at the very first observation, and with max_lag
    for lag in (None, 0, 2):
        decoder = model.stream_decoder(max_lag=lag)
        with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
            decoder.push(2)
        assert info.value.step == 0 and decoder.n_seen == 0
        got = [decoder.push([0, 1]), decoder.push(1)]
        with pytest.raises(hmmfast.ImpossibleSequenceError):
            decoder.push(np.array([2, 2, 0]))
        assert decoder.n_seen == 3
        got += [decoder.push(2), decoder.flush()]
        # as if the failed pushes never happened
        expected = decode_stream(model.stream_decoder(max_lag=lag), [[0, 1], 1, 2])
        np.testing.assert_array_equal(np.concatenate(got), expected)
        if lag is None:
            np.testing.assert_array_equal(expected, model.decode([0, 1, 1, 2])[1])


def test_decoder_impossible_in_a_long_chunk_after_ring_growth():
    """Two exactly tied states never coalesce, so the window keeps every step; a long
    chunk grows the ring, fails at its 2500th observation, and loses nothing."""
    model = categorical([0.5, 0.5], [[0.85, 0.15], [0.15, 0.85]],
                        [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    X = np.random.default_rng(0).integers(0, 2, size=5000)
    decoder = model.stream_decoder()
    out = [decoder.push(X[:2000])]
    assert decoder.window == 2000
    bad = X[2000:].copy()
    bad[2500] = 2  # in range, but no state emits it
    with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
        decoder.push(bad)
    assert info.value.step == 4500 and info.value.position == 2500
    assert decoder.window == decoder.n_seen == 2000
    out += [decoder.push(X[2000:]), decoder.flush()]
    np.testing.assert_array_equal(np.concatenate(out), model.decode(X)[1])


class NaNHookHMM(HookHMM):
    """Its hook fails (NaN) on frames above 50: the failure comes after earlier blocks of a
    long chunk were already computed."""

    def _compute_log_likelihood(self, X):
        out = super()._compute_log_likelihood(X)
        out[X[:, 0] > 50] = np.nan
        return out


def test_failure_in_a_later_block_restores_the_stream():
    rng = np.random.default_rng(1)
    model = NaNHookHMM(3)
    model.startprob_ = rng.dirichlet(np.ones(3))
    model.transmat_ = rng.dirichlet(np.ones(3), size=3)
    X = rng.normal(1.0, 1.5, size=(10_000, 1))
    scorer, decoder = model.stream_scorer(), model.stream_decoder()
    scorer.push(X[:100])
    out = [decoder.push(X[:100])]
    value, post, window = scorer.logprob, scorer.posterior, decoder.window
    bad = X[100:].copy()
    bad[9000] = 99.0  # in the third block of 4096 frames
    for stream in (scorer, decoder):
        with pytest.raises(hmmfast.HMMInputError):
            stream.push(bad)
        assert stream.n_seen == 100
    assert scorer.logprob == value and decoder.window == window
    np.testing.assert_array_equal(scorer.posterior, post)
    np.testing.assert_allclose(scorer.push(X[100:]), model.score(X), rtol=1e-9)
    out += [decoder.push(X[100:]), decoder.flush()]
    np.testing.assert_array_equal(np.concatenate(out), model.decode(X)[1])


def test_every_integer_form_is_one_observation():
    model = impossible_model()
    X = [0, 1, 1, 2, 2, 1, 2]
    forms = [0, np.uint8(1), np.int32(1), np.array(2), np.int64(2), np.array([1]),
             np.uint64(2)]
    scorer, decoder = model.stream_scorer(), model.stream_decoder()
    out = []
    for t, obs in enumerate(forms):
        np.testing.assert_allclose(scorer.push(obs), model.score(X[:t + 1]), rtol=1e-12)
        out.append(decoder.push(obs))
        assert scorer.n_seen == decoder.n_seen == t + 1
    out.append(decoder.flush())
    np.testing.assert_array_equal(np.concatenate(out), model.decode(X)[1])


def test_uninitialised_stream_refuses_work():
    for cls in (StreamScorer, StreamDecoder):
        stream = cls.__new__(cls)
        with pytest.raises(RuntimeError, match="not initialised"):
            stream.push(0)
    with pytest.raises(hmmfast.HMMTypeError):
        StreamScorer("not a model")


@pytest.mark.parametrize("n", [6, 90])  # 90: a chain kept only in sparse form
def test_sparse_transition_matrix(n):
    rng = np.random.default_rng(n)
    _, transmat = sparse_chain(rng, n)
    model = categorical(np.full(n, 1.0 / n), sparse.csr_matrix(transmat),
                        rng.dirichlet(np.ones(7), size=n))
    X = sample(model, 20_000, 2)
    scorer, decoder = model.stream_scorer(), model.stream_decoder()
    out = []
    for piece in chunks(rng, X):
        scorer.push(piece)
        out.append(decoder.push(piece))
    out.append(decoder.flush())
    np.testing.assert_allclose(scorer.logprob, model.score(X), rtol=1e-9)
    np.testing.assert_array_equal(np.concatenate(out), model.decode(X)[1])


# ---------------------------------------------------------------- the model side (issue 23)

class TemperedCategorical(hmmfast.CategoricalHMM):
    """A CategoricalHMM with its own emission hook (log P(symbol | state) / 2), so it has no
    table fast path: its symbols reach the kernels as blocks of log-emissions."""

    def _compute_log_likelihood(self, X):
        return 0.5 * np.log(self.emissionprob_.T[np.asarray(X).reshape(-1)])


def test_categorical_subclass_with_its_own_hook_streams_symbols():
    rng = np.random.default_rng(23)
    startprob, transmat, emissionprob = random_model(rng, 4, 5)
    model = TemperedCategorical(4)
    model.startprob_, model.transmat_, model.emissionprob_ = startprob, transmat, emissionprob
    X = rng.integers(0, 5, size=6000)
    log_b = 0.5 * log(emissionprob).T[X]  # the hook's definition, evaluated here
    alpha = _reference.log_alpha(startprob, transmat, log_b)
    scorer, decoder = model.stream_scorer(), model.stream_decoder()
    out, t = [], 0
    for piece in chunks(rng, X):  # ints are single observations, as for any CategoricalHMM
        value = scorer.push(piece)
        out.append(decoder.push(piece))
        t += np.size(piece)
        assert scorer.n_seen == decoder.n_seen == t
    np.testing.assert_allclose(value, logsumexp(alpha[-1]), rtol=1e-9)
    np.testing.assert_allclose(scorer.posterior, np.exp(alpha[-1] - logsumexp(alpha[-1])),
                               atol=1e-12)
    out.append(decoder.flush())
    np.testing.assert_array_equal(np.concatenate(out),
                                  _reference.viterbi(startprob, transmat, log_b)[1])
    for bad in (5, -1, [0, 7]):  # refused as model.score refuses them, nothing changed
        with pytest.raises(hmmfast.HMMInputError) as want:
            model.score(np.atleast_1d(bad))
        with pytest.raises(hmmfast.HMMInputError) as got:
            scorer.push(bad)
        assert str(got.value) == str(want.value)
    assert scorer.n_seen == len(X)


def test_observation_kind_of_every_family():
    assert hmmfast.BaseHMM()._observation_kind() == "features"
    assert HookHMM(2)._observation_kind() == "features"
    assert hmmfast.GaussianHMM(2)._observation_kind() == "features"
    assert hmmfast.GMMHMM(2)._observation_kind() == "features"
    assert hmmfast.PoissonHMM(2)._observation_kind() == "counts"
    assert hmmfast.CategoricalHMM(2)._observation_kind() == "symbols"
    # observations stay symbols when only the emission hook is the subclass's own
    assert TemperedCategorical(2)._observation_kind() == "symbols"
    assert not TemperedCategorical(2)._symbol_frames()


@pytest.mark.parametrize("family", ["hook", "gaussian", "poisson"])
def test_emission_blocks_equal_the_densities(family):
    """model._emission_blocks(c, X): X validated once, then any block a..b of frames has
    the log-densities of those frames (scipy.stats / the hook's formula as oracles)."""
    from scipy import stats

    rng = np.random.default_rng(5)
    if family == "hook":
        model = HookHMM(3)
        X = rng.normal(1.0, 1.5, size=(50, 1))
        want = -0.5 * (X - np.arange(3)) ** 2
    elif family == "gaussian":
        model = random_gaussian(7, "diag", n=3, d=2)
        X = model.sample(50, random_state=0)[0]
        want = np.stack([stats.multivariate_normal(model.means_[j], model.covars_[j]).logpdf(X)
                         for j in range(3)], axis=1)
    else:
        model = hmmfast.PoissonHMM(3, missing="marginalize")
        model.lambdas_ = rng.uniform(0.5, 6.0, (3, 2))
        X = rng.poisson(3.0, size=(50, 2)).astype(float)
        X[[4, 30]] = np.nan  # missing frames: log-emission 0 in every state
        with np.errstate(invalid="ignore"):
            want = np.stack([stats.poisson(model.lambdas_[j]).logpmf(X).sum(axis=1)
                             for j in range(3)], axis=1)
        want[[4, 30]] = 0.0
    model.startprob_ = np.full(3, 1 / 3)
    model.transmat_ = np.full((3, 3), 1 / 3)
    n, log_emissions = model._emission_blocks(model._prepare(), X)
    assert n == 50
    for a, b in ((0, 50), (0, 1), (10, 37), (49, 50)):
        block = log_emissions(a, b)
        assert block.shape == (b - a, 3) and block.dtype == np.float64
        assert block.flags.c_contiguous
        np.testing.assert_allclose(block, want[a:b], rtol=1e-12, atol=1e-12)
    with pytest.raises(hmmfast.HMMInputError):  # validated once, up front
        model._emission_blocks(model._prepare(), np.zeros((0, X.shape[1])))


def test_one_symbol_never_leaves_compiled_code():
    """The kernel takes an in-range integer (and a ready intp array of in-range symbols)
    itself; only other pushes reach the Python-side ``read``, which explains errors."""
    from hmmfast import _stream_intake

    model = impossible_model()
    chain, table, read = _stream_intake.kernel_inputs(model)
    calls = []

    def counting_read(obs):
        calls.append(obs)
        return read(obs)

    kernels = [StreamScorerKernel(chain, table, counting_read),
               StreamDecoderKernel(chain, table, counting_read)]
    for kernel in kernels:
        kernel.push(0)
        kernel.push(np.int64(1))
        kernel.push(np.array([1, 2], dtype=np.intp))
        assert calls == []
        kernel.push([2, 1])
        assert len(calls) == 1
        with pytest.raises(hmmfast.HMMInputError, match="got 3"):
            kernel.push(3)
        assert len(calls) == 2 and kernel.n_seen == 6
        calls.clear()
    np.testing.assert_allclose(kernels[0].logprob, model.score([0, 1, 1, 2, 2, 1]),
                               rtol=1e-12)


def test_kernels_refuse_a_read_that_breaks_the_contract():
    """Kernels run without bounds checks: what ``read`` returns is checked before use (and
    symbols are range-checked by the kernel, as every kernel checks the rows it reads)."""
    from hmmfast import _stream_intake

    model = impossible_model()
    chain, table, _ = _stream_intake.kernel_inputs(model)
    g = random_gaussian(1, "diag", n=3, d=2)
    g_chain = _stream_intake.kernel_inputs(g)[0]
    internal = (RuntimeError, TypeError)
    bad_reads = [
        (chain, table, lambda obs: np.array([0, 3]), hmmfast.HMMInputError),  # outside M
        (chain, table, lambda obs: np.array([0.0, 1.0]), internal),  # not intp symbols
        (g_chain, None, lambda obs: (2, lambda a, b: np.zeros((b - a, 2))), internal),  # N=3
        (g_chain, None, lambda obs: (2, lambda a, b: np.zeros((b - a, 3), np.float32)),
         internal),
    ]
    for kernel_class in (StreamScorerKernel, StreamDecoderKernel):
        for chain_, table_, read, error in bad_reads:
            kernel = kernel_class(chain_, table_, read)
            with pytest.raises(error, match="internal|out of range at X\\[1\\]"):
                kernel.push([0, 1])
            assert kernel.n_seen == 0
