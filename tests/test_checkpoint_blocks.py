"""Checkpointed Viterbi for the continuous families with log-emissions computed one
segment at a time (hmmfast/_checkpoint_blocks.py and the segment-fed kernels of
csrc/_checkpoint.pyx): bit-identical to the full decoder, bounded memory."""

import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest
from factories import random_gaussian
from scipy import sparse

import hmmfast
from hmmfast import _checkpoint, _checkpoint_blocks, _kernel_inputs, _viterbi
from hmmfast import _validation as V

SEGMENTS = (None, 1, 2, 3, 7)  # None: the driver's own rule (one segment at these T)


def chain_params(rng, n, zeros=False):
    startprob = rng.dirichlet(np.ones(n))
    transmat = rng.dirichlet(np.full(n, 0.5), size=n)
    if zeros and n > 1:  # structural zeros, each row keeping its diagonal
        transmat[rng.random((n, n)) < 0.3] = 0.0
        transmat[np.arange(n), np.arange(n)] += 0.1
        transmat /= transmat.sum(axis=1, keepdims=True)
    return startprob, transmat


def gmm(rng, n, d, k, covariance_type="diag"):
    model = hmmfast.GMMHMM(n, n_mix=k, covariance_type=covariance_type)
    model.startprob_, model.transmat_ = chain_params(rng, n)
    model.weights_ = rng.dirichlet(np.ones(k), size=n)
    model.means_ = rng.normal(scale=2.0, size=(n, k, d))
    if covariance_type == "diag":
        model.covars_ = rng.uniform(0.5, 2.0, size=(n, k, d))
    else:
        a = rng.normal(size=(n, k, d, d))
        model.covars_ = a @ np.swapaxes(a, -1, -2) + d * np.eye(d)
    return model


def poisson(rng, n, d, **kw):
    model = hmmfast.PoissonHMM(n, **kw)
    model.startprob_, model.transmat_ = chain_params(rng, n, zeros=True)
    model.lambdas_ = rng.uniform(0.5, 6.0, size=(n, d))
    return model


def full_decode(model, X, lengths=None):
    """The full-table decoder on the whole (T, N) log-emission matrix (the old path)."""
    c = model._cache or model._prepare()
    emission, rows, n = model._frames(c, X, False)
    offsets = None if lengths is None else V.lengths_to_offsets(lengths, n)
    return _viterbi.viterbi(c.chain, emission, rows, offsets, None, c.n_threads)


def decode_with_segment(model, X, lengths, k):
    """decode(X, memory="checkpoint") with every sequence cut into segments of k frames."""
    if k is None:
        return model.decode(X, lengths, memory="checkpoint")
    with mock.patch.object(_checkpoint_blocks, "segment_length", lambda n_frames: k):
        return model.decode(X, lengths, memory="checkpoint")


def assert_same_as_full(model, X, lengths=None, segments=SEGMENTS):
    """Same score and path bit for bit, or the same error, for every segment length."""
    try:
        expected = full_decode(model, X, lengths)
    except hmmfast.ImpossibleSequenceError as exc:
        for k in segments:
            with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
                decode_with_segment(model, X, lengths, k)
            assert (info.value.sequence, info.value.step, info.value.position) == (
                exc.sequence, exc.step, exc.position)
            assert str(info.value) == str(exc)
        return exc
    for k in segments:
        score, states = decode_with_segment(model, X, lengths, k)
        assert score == expected[0], k
        assert states.dtype == np.intp
        np.testing.assert_array_equal(states, expected[1], err_msg=f"segment {k}")
    score, states = model.decode(X, lengths)  # memory="full" (through viterbi_dense)
    assert score == expected[0]
    np.testing.assert_array_equal(states, expected[1])
    return None


def gaussian_frames(rng, n_frames, d, scale=3.0):
    return rng.normal(scale=scale, size=(n_frames, d))


@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "full", "tied"])
@pytest.mark.parametrize("seed", range(4))
def test_gaussian(covariance_type, seed):
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(1, 10)), int(rng.integers(1, 5))
    model = random_gaussian(rng, covariance_type, n, d, zeros=True)
    for big_t in (1, 2, 3, 4, 29, 100):
        assert_same_as_full(model, gaussian_frames(rng, big_t, d))


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_gmm(covariance_type):
    rng = np.random.default_rng(11)
    model = gmm(rng, 5, 3, 3, covariance_type)
    for big_t in (1, 2, 57, 200):
        assert_same_as_full(model, gaussian_frames(rng, big_t, 3))


def test_poisson():
    rng = np.random.default_rng(12)
    model = poisson(rng, 6, 4)
    for big_t in (1, 2, 40, 150):
        assert_same_as_full(model, rng.poisson(3.0, size=(big_t, 4)))


def test_float32_frames():
    rng = np.random.default_rng(13)
    model = random_gaussian(rng, "full", 7, 3, zeros=True)
    X = gaussian_frames(rng, 130, 3).astype(np.float32)
    assert_same_as_full(model, X)
    model = poisson(rng, 4, 2)
    assert_same_as_full(model, rng.poisson(3.0, size=(90, 2)).astype(np.float32))


@pytest.mark.parametrize("family", ["gaussian", "poisson"])
def test_missing_frames(family):
    rng = np.random.default_rng(14)
    if family == "gaussian":
        model = random_gaussian(rng, "diag", 5, 2, zeros=True, missing="marginalize")
        X = gaussian_frames(rng, 120, 2)
    else:
        model = poisson(rng, 5, 2, missing="marginalize")
        X = rng.poisson(3.0, size=(120, 2)).astype(float)
    X[rng.random(120) < 0.3] = np.nan
    X[:2] = np.nan  # the first frame (delta_0) and a segment start missing
    X[-1] = np.nan
    assert_same_as_full(model, X)
    assert_same_as_full(model, X, [50, 1, 69])


def test_several_sequences_uneven_lengths():
    rng = np.random.default_rng(15)
    model = random_gaussian(rng, "diag", 6, 2, zeros=True)
    lengths = [1, 2, 17, 5, 1, 40, 3]
    X = gaussian_frames(rng, sum(lengths), 2)
    assert_same_as_full(model, X, lengths)
    model.n_threads = 2
    assert_same_as_full(model, X, lengths)


def test_every_length_and_segment_boundary():
    """T from 1 to 40 with K = 1..6: full segments, one-frame tails, K >= T - 1."""
    rng = np.random.default_rng(16)
    model = random_gaussian(rng, "diag", 3, 1, zeros=True)
    X = gaussian_frames(rng, 40, 1)
    for big_t in range(1, 41):
        assert_same_as_full(model, X[:big_t], segments=(None, 1, 2, 3, 4, 5, 6))


def test_ties_go_to_the_lowest_state():
    """Identical states (same emissions, same transition rows): every step is a tie; the
    path must be the full decoder's (lowest index), score identical."""
    rng = np.random.default_rng(17)
    model = hmmfast.GaussianHMM(4, covariance_type="diag")
    model.startprob_ = np.full(4, 0.25)
    model.transmat_ = np.full((4, 4), 0.25)
    model.means_ = np.zeros((4, 2))
    model.covars_ = np.ones((4, 2))
    X = gaussian_frames(rng, 60, 2)
    assert_same_as_full(model, X)
    assert not full_decode(model, X)[1].any()
    # pairs of tied states among distinct ones
    model = random_gaussian(rng, "diag", 6, 2, zeros=True)
    means = model.means_.copy()
    means[1], means[4] = means[0], means[3]
    model.means_ = means
    covars = np.diagonal(model.covars_, axis1=1, axis2=2).copy()
    covars[1], covars[4] = covars[0], covars[3]
    model.covars_ = covars
    model.transmat_ = np.round(model.transmat_ * 4 + 1) / np.round(
        model.transmat_ * 4 + 1).sum(axis=1, keepdims=True)
    assert_same_as_full(model, gaussian_frames(rng, 150, 2), [70, 80])


def impossible_poisson():
    """State 0 emits only zeros in feature 1, state 1 only zeros in feature 0; the chain
    starts in state 1 and never goes from 0 back to 1."""
    model = hmmfast.PoissonHMM(2)
    model.startprob_ = [0.0, 1.0]
    model.transmat_ = [[1.0, 0.0], [0.5, 0.5]]
    model.lambdas_ = [[4.0, 0.0], [0.0, 4.0]]
    return model


@pytest.mark.parametrize("step", [0, 1, 2, 5, 6, 8, 9])
def test_impossible_sequences_raise_the_full_decoders_error(step):
    model = impossible_poisson()
    X = np.tile([0.0, 2.0], (10, 1))  # state 1 throughout
    X[step] = [3.0, 0.0]  # state 0 here, so state 1 (needed next) is unreachable
    exc = assert_same_as_full(model, X)
    if step < 9:
        assert exc is not None and exc.step == (0 if step == 0 else step + 1)
        assert (assert_same_as_full(model, X[:1]) is None) == (step > 0)  # T = 1
    else:
        assert exc is None
    # behind a possible sequence: sequence index, step and position as the full decoder's
    exc2 = assert_same_as_full(model, np.vstack([np.tile([0.0, 1.0], (3, 1)), X]), [3, 10])
    assert (exc2 is None) == (exc is None)
    if exc2 is not None:
        assert (exc2.sequence, exc2.step, exc2.position) == (1, exc.step, exc.position + 3)


def test_sparse_transmat():
    rng = np.random.default_rng(18)
    model = random_gaussian(rng, "diag", 8, 2, zeros=True)
    X = gaussian_frames(rng, 300, 2)
    dense = full_decode(model, X)
    model.transmat_ = sparse.csr_matrix(model.transmat_)
    assert_same_as_full(model, X)
    score, states = model.decode(X, memory="checkpoint")
    assert score == dense[0]
    np.testing.assert_array_equal(states, dense[1])


@pytest.mark.parametrize("flag", [0, 1])
def test_both_vector_paths(flag):
    """SSE2/AVX2 max-plus steps and the register-resident N <= 12 full decoder."""
    rng = np.random.default_rng(19)
    try:
        for n in (1, 3, 5, 8, 13):
            model = random_gaussian(rng, "diag", n, 2, zeros=True)
            X = gaussian_frames(rng, 200, 2)
            _checkpoint._force_simd(flag)
            for viterbi_flag in (0, 1):
                _viterbi._force_simd(viterbi_flag)
                assert_same_as_full(model, X)
    finally:
        _checkpoint._force_simd(-1)
        _viterbi._force_simd(-1)


def spy_blocks(model):
    """Record the number of frames of every log-emission evaluation."""
    sizes = []
    evaluate = model._log_emissions

    def spy(c, frames, missing, n_threads=1):
        sizes.append(len(frames))
        return evaluate(c, frames, missing, n_threads)

    model._log_emissions = spy
    return sizes


def test_log_emissions_are_computed_one_segment_at_a_time():
    rng = np.random.default_rng(20)
    model = random_gaussian(rng, "diag", 4, 2, zeros=True)
    big_t = 50_000
    X = gaussian_frames(rng, big_t, 2)
    expected = full_decode(model, X)
    sizes = spy_blocks(model)
    score, states = model.decode(X, memory="checkpoint")
    assert score == expected[0]
    np.testing.assert_array_equal(states, expected[1])
    k = _checkpoint_blocks.segment_length(big_t)
    assert k == _checkpoint_blocks.MIN_SEGMENT
    assert max(sizes) == k
    assert sum(sizes) == 2 * big_t - 1 - ((big_t - 2) % k + 1)  # the last segment once
    sizes.clear()
    model.decode(X)  # the full decoder: one matrix
    assert sizes == [big_t]
    assert _checkpoint_blocks.segment_length(10 ** 8) == 10 ** 4


def test_automatic_switch_uses_segments():
    """memory="full" beyond AUTO_CHECKPOINT_BYTES of backpointers: segment-fed too."""
    rng = np.random.default_rng(21)
    model = random_gaussian(rng, "diag", 5, 3, zeros=True)
    X = gaussian_frames(rng, 3000, 3)
    expected = full_decode(model, X, [1000, 2000])
    sizes = spy_blocks(model)
    with mock.patch.object(_checkpoint, "AUTO_CHECKPOINT_BYTES", 1000 * 8 - 1):
        score, states = model.decode(X, [1000, 2000])
    assert score == expected[0]
    np.testing.assert_array_equal(states, expected[1])
    assert max(sizes) < 2000


def test_only_the_families_own_frames_come_in_blocks():
    """The ``_blocked_frames`` hook: GaussianHMM, GMMHMM and PoissonHMM decode segment by
    segment; a subclass overriding ``_frames`` decodes the whole matrix its ``_frames``
    returns, and so does a BaseHMM subclass using hmmlearn's
    ``_compute_log_likelihood`` hook. Every path gives the full decoder's result."""
    rng = np.random.default_rng(23)
    X = np.abs(gaussian_frames(rng, 3000, 2)).round()  # counts too, for PoissonHMM
    for model in (random_gaussian(rng, "diag", 3, 2, zeros=True), gmm(rng, 3, 2, 2),
                  poisson(rng, 3, 2)):
        expected = full_decode(model, X)
        sizes = spy_blocks(model)
        score, states = model.decode(X, memory="checkpoint")
        assert score == expected[0]
        np.testing.assert_array_equal(states, expected[1])
        assert max(sizes) < len(X), type(model).__name__

    class OwnFrames(hmmfast.GaussianHMM):
        calls = 0

        def _frames(self, c, X, scaled=True):
            type(self).calls += 1
            return super()._frames(c, X, scaled)

    model = random_gaussian(rng, "full", 3, 2, zeros=True)
    own = OwnFrames(3, covariance_type="full")
    own.startprob_, own.transmat_ = model.startprob_, model.transmat_
    own.means_, own.covars_ = model.means_, model.covars_
    expected = full_decode(model, X)
    for memory in ("full", "checkpoint"):
        score, states = own.decode(X, memory=memory)
        assert score == expected[0]
        np.testing.assert_array_equal(states, expected[1])
    assert OwnFrames.calls == 2

    class Hook(hmmfast.BaseHMM):  # hmmlearn's custom-emission recipe
        def _compute_log_likelihood(self, X):
            return model._compute_log_likelihood(X)

    hook = Hook(3)
    hook.startprob_, hook.transmat_ = model.startprob_, model.transmat_
    for memory in ("full", "checkpoint"):
        score, states = hook.decode(X, memory=memory)
        assert score == expected[0]
        np.testing.assert_array_equal(states, expected[1])


def test_driver_on_a_given_matrix_and_wide_backpointers():
    """viterbi_blocks against _viterbi.viterbi, N = 300 (uint16 backpointers)."""
    rng = np.random.default_rng(22)
    for n, big_t in ((300, 60), (2, 1), (9, 333)):
        startprob, transmat = chain_params(rng, n, zeros=True)
        log_em = rng.normal(scale=2.0, size=(big_t, n))
        log_em[rng.random((big_t, n)) < 0.2] = -np.inf
        log_em[:, 0] = 0.0  # keep every frame possible
        chain = _kernel_inputs.chain(startprob, transmat)
        expected = _viterbi.viterbi(chain, (log_em, None, None), None, None)
        for k in (1, 4, 59, None):
            score, states = _checkpoint_blocks.viterbi_blocks(
                chain, n, lambda a, b: log_em[a:b], None, big_t, k)
            assert score == expected[0]
            np.testing.assert_array_equal(states, expected[1])


def test_segment_kernels_check_their_arguments():
    chain = _kernel_inputs.chain(np.array([0.5, 0.5]), np.full((2, 2), 0.5))
    rows, delta = np.zeros((3, 2)), np.zeros(2)
    with pytest.raises(ValueError, match="log_em"):
        _checkpoint.maxplus_forward(chain, np.zeros((3, 3)), delta)
    with pytest.raises(ValueError, match="log_em"):
        _checkpoint.maxplus_forward(chain, rows, np.zeros(3))
    with pytest.raises(ValueError, match="first block"):
        _checkpoint.maxplus_forward(chain, np.zeros((0, 2)), delta, True)
    with pytest.raises(ValueError, match="states_out"):
        _checkpoint.viterbi_segment(chain, rows, delta, -1, np.zeros(3, np.intp))
    with pytest.raises(ValueError, match="end_state"):
        _checkpoint.viterbi_segment(chain, rows, delta, 2, np.zeros(4, np.intp))
    assert _checkpoint.maxplus_forward(chain, np.zeros((0, 2)), delta) == -1
    out = np.zeros(1, np.intp)
    assert _checkpoint.viterbi_segment(chain, np.zeros((0, 2)), np.array([0.0, 1.0]), -1,
                                       out) == -1
    assert out[0] == 1


MEMORY_SCRIPT = textwrap.dedent("""
    import hashlib
    import sys
    import numpy as np
    import hmmfast

    def status_kib(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

    big_t, n, d = {big_t}, {n}, {d}
    rng = np.random.default_rng(0)
    model = hmmfast.GaussianHMM(n, covariance_type="diag", n_threads=1)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n)
    model.means_ = rng.normal(scale=2.0, size=(n, d))
    model.covars_ = rng.uniform(0.5, 2.0, size=(n, d))
    X = rng.normal(scale=3.0, size=(big_t, d))
    model.decode(X[:5000], memory=sys.argv[1])  # warm up: code pages, caches
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
    before = status_kib("VmRSS")
    score, states = model.decode(X, memory=sys.argv[1])
    peak = status_kib("VmHWM")
    print((peak - before) * 1024, score.hex(), hashlib.sha256(states.tobytes()).hexdigest())
""")


def peak_growth(memory, big_t, n, d):
    """Peak RSS growth (bytes) of one decode in a fresh process, its score and a digest of
    its whole path."""
    script = MEMORY_SCRIPT.format(big_t=big_t, n=n, d=d)
    out = subprocess.run([sys.executable, "-c", script, memory], capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        if "clear_refs" in out.stderr or "/proc/self/status" in out.stderr:
            pytest.skip("needs Linux /proc/self/status and clear_refs")
        raise AssertionError(out.stderr)
    growth, score, digest = out.stdout.split()
    return int(growth), score, digest


@pytest.mark.slow
def test_long_gaussian_sequence_bounded_memory():
    big_t, n, d = 10 ** 6, 8, 2
    ckpt_growth, ckpt_score, ckpt_digest = peak_growth("checkpoint", big_t, n, d)
    full_growth, full_score, full_digest = peak_growth("full", big_t, n, d)
    assert (ckpt_score, ckpt_digest) == (full_score, full_digest)
    matrix_bytes = big_t * n * 8  # the (T, N) float64 log-emissions: 64 MB
    states_bytes = big_t * np.dtype(np.intp).itemsize  # the returned path, in both
    print(f"\nT={big_t} N={n} D={d}: peak RSS growth full {full_growth / 2**20:.1f} MiB, "
          f"checkpoint {ckpt_growth / 2**20:.1f} MiB (path {states_bytes / 2**20:.1f} MiB)")
    assert full_growth > matrix_bytes
    # the path, X's finiteness mask (T x D bytes) and O(sqrt(T) N) scratch
    assert ckpt_growth < states_bytes + big_t * d + 8 * 2**20
