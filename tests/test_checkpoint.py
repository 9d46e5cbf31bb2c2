"""Checkpointed Viterbi (``memory="checkpoint"``, csrc/_checkpoint.pyx): the full-table
decoder's exact results in O(sqrt(T) N) memory, through the kernel and the public API
(model methods, decode_batch, the functional API), and the automatic switch. The
continuous families' segment-fed variant: tests/test_checkpoint_blocks.py."""

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from factories import categorical
from hmm_oracles import categorical_log_emissions, log, random_model
from scipy import sparse

import hmmfast
from hmmfast import _chain, _checkpoint, _decoders, _kernel_inputs, _viterbi


def compile_model(startprob, transmat, log_emissions):
    chain = _kernel_inputs.chain(np.asarray(startprob, float), np.asarray(transmat, float))
    return chain, _kernel_inputs.emission(np.asarray(log_emissions, float), False)


def assert_same_as_full(chain, emission, rows=None, offsets=None, n_threads=1):
    """Both decoders: identical scores (bit for bit), paths, or errors."""
    n_seq = 1 if offsets is None else len(offsets) - 1
    lp_full, lp_ckpt = np.empty(n_seq), np.empty(n_seq)
    try:
        full = _viterbi.viterbi(chain, emission, rows, offsets, lp_full, n_threads)
    except hmmfast.ImpossibleSequenceError as exc:
        with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
            _checkpoint.viterbi_checkpoint(chain, emission, rows, offsets, lp_ckpt, n_threads)
        assert (info.value.sequence, info.value.step, info.value.position) == (
            exc.sequence, exc.step, exc.position)
        assert str(info.value) == str(exc)
        return None
    ckpt = _checkpoint.viterbi_checkpoint(chain, emission, rows, offsets, lp_ckpt, n_threads)
    assert ckpt[0] == full[0]
    np.testing.assert_array_equal(lp_ckpt, lp_full)
    assert ckpt[1].dtype == np.intp
    np.testing.assert_array_equal(ckpt[1], full[1])
    return ckpt


def random_case(rng, n_states, big_t, zeros=False, ties=False, holes=False):
    startprob, transmat, _ = random_model(rng, n_states, 2, zeros=zeros)
    log_em = rng.normal(scale=2.0, size=(big_t, n_states))
    if ties:  # equal emissions (uniform rows on some steps): exact ties between paths
        log_em[rng.random(big_t) < 0.5] = 0.0
        transmat = np.round(transmat * 4) + (transmat > 0)  # few distinct values
        transmat /= transmat.sum(axis=1, keepdims=True)
    if holes:
        log_em[rng.random((big_t, n_states)) < 0.3] = -np.inf
    return startprob, transmat, log_em


@pytest.mark.parametrize("seed", range(120))
def test_equals_full_table(seed):
    rng = np.random.default_rng(seed)
    n_states = int(rng.integers(1, 9))
    big_t = int(rng.choice([1, 2, 3, 4, int(rng.integers(5, 60)), int(rng.integers(60, 700))]))
    startprob, transmat, log_em = random_case(rng, n_states, big_t, zeros=seed % 2 == 1,
                                              ties=seed % 3 == 0, holes=seed % 5 == 0)
    chain, emission = compile_model(startprob, transmat, log_em)
    assert_same_as_full(chain, emission)


def test_every_length_up_to_300_covers_the_segment_boundaries():
    rng = np.random.default_rng(1)
    startprob, transmat, log_em = random_case(rng, 3, 300, zeros=True, ties=True)
    chain = _kernel_inputs.chain(startprob, transmat)
    seen = set()
    for big_t in range(1, 301):
        k = _checkpoint.checkpoint_segment_length(3, big_t)
        seen.add(((big_t - 1) % k) if big_t > 1 else -1)
        assert_same_as_full(chain, _kernel_inputs.emission(log_em[:big_t], False))
    assert {0, 1} <= seen and len(seen) > 10  # full segments, a one-frame tail, ...


@pytest.mark.parametrize("n_states", [3, 300])  # uint8 and uint16 backpointers
def test_segment_boundary_lengths(n_states):
    rng = np.random.default_rng(n_states)
    lengths = set()
    for base in (50, 200, 1000):
        for big_t in (base, base + 1, base + 2):
            k = _checkpoint.checkpoint_segment_length(n_states, big_t)
            # T - 1 a multiple of K, one past it, one short of it
            lengths |= {k * ((big_t - 1) // k) + 1, k * ((big_t - 1) // k) + 2,
                        k * ((big_t - 1) // k) + k}
    for big_t in sorted(lengths):
        startprob, transmat, log_em = random_case(rng, n_states, big_t, zeros=True,
                                                  ties=big_t % 2 == 0)
        chain, emission = compile_model(startprob, transmat, log_em)
        assert_same_as_full(chain, emission)


def test_impossible_sequences_fail_at_the_same_step():
    startprob = np.array([1.0, 0.0, 0.0])
    transmat = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    for big_t in (1, 2, 3, 50, 400):
        for step in sorted({0, 1, big_t // 2, big_t - 1}):
            if step >= big_t:
                continue
            log_em = np.zeros((big_t, 3))
            log_em[step] = -np.inf
            chain, emission = compile_model(startprob, transmat, log_em)
            with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
                _checkpoint.viterbi_checkpoint(chain, emission, None, None)
            assert info.value.step == step
            assert_same_as_full(chain, emission)
    # impossible through the structure only: state 0 cannot be left and emits nothing late
    log_em = np.zeros((30, 3))
    log_em[20:, 1:] = -np.inf
    log_em[25, 0] = -np.inf
    chain, emission = compile_model(startprob, transmat, log_em)
    assert assert_same_as_full(chain, emission) is None


def test_several_sequences_and_two_threads():
    rng = np.random.default_rng(5)
    startprob, transmat, emissionprob = random_model(rng, 16, 6)
    lengths = rng.integers(1, 2500, size=25)
    lengths[:4] = [1, 2, 3, 1000]
    offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
    np.cumsum(lengths, out=offsets[1:])
    rows = rng.integers(0, 5, size=offsets[-1]).astype(np.intp)
    chain = _kernel_inputs.chain(startprob, transmat)
    emission = _kernel_inputs.emission(log(emissionprob).T, False)
    for n_threads in (1, 2):  # 2: enough work (T N^2 cells) for a thread team
        assert assert_same_as_full(chain, emission, rows, offsets, n_threads) is not None

    # one impossible sequence: symbol 5 only from state 0, which cannot be re-entered
    emissionprob[:, 5] = 0.0
    emissionprob[0, 5] = 1.0
    transmat = transmat.copy()
    transmat[:, 0] = 0.0
    transmat /= transmat.sum(axis=1, keepdims=True)
    chain = _kernel_inputs.chain(startprob, transmat)
    emission = _kernel_inputs.emission(log(emissionprob).T, False)
    rows[offsets[6] + 3] = 5
    with pytest.raises(hmmfast.ImpossibleSequenceError) as info:
        _checkpoint.viterbi_checkpoint(chain, emission, rows, offsets, None, 2)
    assert info.value.sequence == 6 and info.value.step == 3
    assert_same_as_full(chain, emission, rows, offsets, 2)
    # marked instead of raised (decode_batch's errors="mark"): same scores, -inf for it
    lp_full, lp_ckpt = np.empty(len(lengths)), np.empty(len(lengths))
    full = _viterbi.viterbi(chain, emission, rows, offsets, lp_full, 2, False)
    ckpt = _checkpoint.viterbi_checkpoint(chain, emission, rows, offsets, lp_ckpt, 2, False)
    assert lp_full[6] == lp_ckpt[6] == -np.inf
    assert np.isfinite(np.delete(lp_ckpt, 6)).all()
    np.testing.assert_array_equal(lp_ckpt, lp_full)
    for s in range(len(lengths)):
        if s != 6:
            np.testing.assert_array_equal(ckpt[1][offsets[s]:offsets[s + 1]],
                                          full[1][offsets[s]:offsets[s + 1]])


def test_bad_rows_and_offsets_are_reported_as_by_the_full_decoder():
    rng = np.random.default_rng(2)
    startprob, transmat, emissionprob = random_model(rng, 4, 5)
    chain = _kernel_inputs.chain(startprob, transmat)
    emission = _kernel_inputs.emission(log(emissionprob).T, False)
    rows = rng.integers(0, 5, size=100).astype(np.intp)
    rows[77] = 5
    with pytest.raises(hmmfast.HMMInputError) as full:
        _viterbi.viterbi(chain, emission, rows, None)
    with pytest.raises(hmmfast.HMMInputError) as ckpt:
        _checkpoint.viterbi_checkpoint(chain, emission, rows, None)
    assert str(ckpt.value) == str(full.value) and "X[77]" in str(ckpt.value)
    with pytest.raises(ValueError, match="offsets"):
        _checkpoint.viterbi_checkpoint(chain, emission, rows,
                                       np.array([0, 60, 50, 100], dtype=np.intp))


def test_sparse_chain_equals_dense():
    rng = np.random.default_rng(8)
    n_states = _chain.DENSE_LIMIT + 6
    transmat = np.zeros((n_states, n_states))
    for i in range(n_states):
        for j, w in ((i, 0.6), (i + 1, 0.3), (i + 2, 0.1)):
            transmat[i, min(j, n_states - 1)] += w
    startprob = np.zeros(n_states)
    startprob[:3] = [0.6, 0.3, 0.1]
    log_em = rng.normal(scale=3.0, size=(3000, n_states))
    sparse_chain = _chain.compile_chain(startprob, sparse.csr_matrix(transmat), 0.0)
    emission = _kernel_inputs.emission(log_em, False)
    dense = _viterbi.viterbi(_kernel_inputs.chain(startprob, transmat), emission, None, None)
    ckpt = _checkpoint.viterbi_checkpoint(sparse_chain, emission, None, None)
    assert ckpt[0] == dense[0]
    np.testing.assert_array_equal(ckpt[1], dense[1])


def test_scratch_is_order_sqrt_t_times_n():
    for n_states, width in ((64, 1), (300, 2), (70000, 4)):
        for big_t in (10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6, 10 ** 7):
            got = _checkpoint.checkpoint_scratch_bytes(n_states, big_t)
            full_table = big_t * n_states * width
            # K N b + (T / K) N 8 with K = sqrt(8 T / b): 2 N sqrt(8 b T), plus O(N)
            bound = 2 * n_states * math.sqrt(8 * width * big_t) + 64 * n_states + 1024
            assert got <= bound * 1.01, (n_states, big_t, got, bound)
            # the ratio to the full table, sqrt(b T / 32), grows as sqrt(T): 5.6 at T = 1e3
            # with uint8 backpointers, 177 at 1e6
            assert got < 1.5 * full_table / math.sqrt(width * big_t / 32)
    assert _checkpoint.checkpoint_scratch_bytes(64, 10 ** 6) < 400_000  # vs 64 MB
    assert _checkpoint.checkpoint_scratch_bytes(64, 10 ** 7) < 1_200_000  # vs 640 MB
    assert _checkpoint.checkpoint_segment_length(64, 1) == 1
    assert _checkpoint.full_table_bytes(64, 10 ** 6) == 64 * 10 ** 6
    assert _checkpoint.full_table_bytes(300, 10) == 6000
    # the automatic switch: T = 4.2 million frames at N = 64
    assert _checkpoint.AUTO_CHECKPOINT_BYTES == 256 * 2 ** 20
    assert _checkpoint.full_table_bytes(64, 4 * 2 ** 20) == _checkpoint.AUTO_CHECKPOINT_BYTES
    with pytest.raises(ValueError):
        _checkpoint.checkpoint_scratch_bytes(0, 10)


MEMORY_SCRIPT = textwrap.dedent("""
    import hashlib
    import sys
    import time
    import numpy as np
    from hmmfast import _checkpoint, _kernel_inputs, _viterbi

    def status_kib(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

    big_t, n, m = {big_t}, {n}, 16
    rng = np.random.default_rng(0)
    start = rng.dirichlet(np.ones(n))
    trans = rng.dirichlet(np.full(n, 0.3), size=n)
    table = np.log(rng.dirichlet(np.full(m, 0.3), size=n)).T.copy()
    rows = rng.integers(0, m, size=big_t).astype(np.intp)
    chain = _kernel_inputs.chain(start, trans)
    emission = _kernel_inputs.emission(table, False)
    decode = _checkpoint.viterbi_checkpoint if sys.argv[1] == "checkpoint" else _viterbi.viterbi
    decode(chain, emission, rows[:1000], None)  # warm up: code pages, thread pools
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
    before = status_kib("VmRSS")
    t0 = time.perf_counter()
    score, states = decode(chain, emission, rows, None)
    seconds = time.perf_counter() - t0
    peak = status_kib("VmHWM")
    print((peak - before) * 1024, score.hex(), hashlib.sha256(states.tobytes()).hexdigest(),
          seconds)
""")


def peak_growth(mode, big_t, n):
    """Peak RSS growth (bytes) during one decode in a fresh process, its score, a digest
    of its whole path and its time. (getrusage's ru_maxrss would carry this test
    process's peak over the exec.)"""
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT.format(big_t=big_t, n=n), mode],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        if "clear_refs" in out.stderr or "/proc/self/status" in out.stderr:
            pytest.skip("needs Linux /proc/self/status and clear_refs")
        raise AssertionError(out.stderr)
    growth, score, digest, seconds = out.stdout.split()
    return int(growth), score, digest, float(seconds)


@pytest.mark.slow
def test_long_sequence_same_path_bounded_memory():
    """T = 10**6, N = 32, each decoder in a fresh process (ru_maxrss sees C mallocs): the
    same score and path (a digest of all of it), the full table's 32 MB against
    O(sqrt(T) N) scratch beside the 8 MB path."""
    big_t, n = 10 ** 6, 32
    full_growth, full_score, full_digest, full_s = peak_growth("full", big_t, n)
    ckpt_growth, ckpt_score, ckpt_digest, ckpt_s = peak_growth("checkpoint", big_t, n)
    assert (ckpt_score, ckpt_digest) == (full_score, full_digest)
    states_bytes = big_t * np.dtype(np.intp).itemsize  # the returned path, in both
    table_bytes = big_t * n  # the full decoder's uint8 backpointers
    print(f"\nT={big_t} N={n}: full {full_s:.3f} s, checkpoint {ckpt_s:.3f} s "
          f"({ckpt_s / full_s:.2f}x); peak RSS growth: full {full_growth / 2**20:.1f} MiB, "
          f"checkpoint {ckpt_growth / 2**20:.1f} MiB (output {states_bytes / 2**20:.1f} MiB, "
          f"scratch {_checkpoint.checkpoint_scratch_bytes(n, big_t) / 2**20:.2f} MiB)")
    assert full_growth > 0.9 * table_bytes
    assert ckpt_growth < states_bytes + 4 * 2**20


@pytest.mark.parametrize("flag", [0, 1])
def test_both_vector_paths(flag):
    """SSE2 and AVX2 max-plus steps (each module has its own switch) give the same bits."""
    rng = np.random.default_rng(21)
    try:
        for n_states in (1, 3, 5, 8, 13, 33):
            startprob, transmat, log_em = random_case(rng, n_states, 500, zeros=True,
                                                      ties=n_states % 2 == 1)
            chain, emission = compile_model(startprob, transmat, log_em)
            _checkpoint._force_simd(flag)
            for viterbi_flag in (0, 1):
                _viterbi._force_simd(viterbi_flag)
                assert_same_as_full(chain, emission)
    finally:
        _checkpoint._force_simd(-1)
        _viterbi._force_simd(-1)


# ---------------------------------------------------------------- through the public API


@pytest.mark.parametrize("n_states", [3, 12])
def test_checkpoint_equals_full_through_every_entry(n_states):
    rng = np.random.default_rng(n_states)
    model = categorical(*random_model(rng, n_states, 5, zeros=True))
    X, _ = model.sample(3000, random_state=4)
    lengths = [1, 999, 2000]
    want = model.decode(X, lengths)
    got = model.decode(X, lengths, memory="checkpoint")
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    scores, paths = model.decode_batch([X[:1000], X[1000:]], memory="checkpoint")
    full_scores, full_paths = model.decode_batch([X[:1000], X[1000:]])
    np.testing.assert_array_equal(scores, full_scores)
    for a, b in zip(paths, full_paths, strict=True):
        np.testing.assert_array_equal(a, b)
    log_em = categorical_log_emissions(model.emissionprob_, X)
    f = hmmfast.viterbi(model.startprob_, model.transmat_, log_em, memory="checkpoint")
    g = hmmfast.viterbi(model.startprob_, model.transmat_, log_em)
    assert f[0] == g[0]
    np.testing.assert_array_equal(f[1], g[1])


def test_memory_option_validation():
    model = categorical(np.array([0.5, 0.5]), np.full((2, 2), 0.5), np.full((2, 2), 0.5))
    X = [0, 1, 1]
    for bad in ("half", None, 3, "FULL"):
        with pytest.raises(hmmfast.ParameterError, match="memory"):
            model.decode(X, memory=bad)
        with pytest.raises(hmmfast.ParameterError, match="memory"):
            model.decode_batch([X], memory=bad)
    with pytest.raises(hmmfast.ParameterError, match="viterbi"):
        model.decode(X, algorithm="map", memory="checkpoint")
    with pytest.raises(hmmfast.ParameterError, match="viterbi"):
        model.decode_batch([X], algorithm="map", memory="checkpoint")
    with pytest.raises(hmmfast.ParameterError, match="beam"):
        model.decode(X, beam=3.0, memory="checkpoint")
    with pytest.raises(hmmfast.ParameterError, match="memory"):
        hmmfast.viterbi([0.5, 0.5], np.full((2, 2), 0.5), np.zeros((3, 2)), memory="x")


BAD_OPTIONS = [
    ("map", {"beam": 2.0}), ("map", {"max_active": 1}), ("map", {"memory": "checkpoint"}),
    ("viterbi", {"beam": 1.0, "memory": "checkpoint"}), ("viterbi", {"beam": -1.0}),
    ("viterbi", {"min_active": 3, "max_active": 2}), ("viterbi", {"memory": "x"}),
    ("viterbi", {"max_active": 0}), ("bogus", {}), ("bogus", {"memory": "x"}),
]


@pytest.mark.parametrize(("algorithm", "options"), BAD_OPTIONS)
def test_every_decode_entry_refuses_the_same_options_alike(algorithm, options):
    """decode (a table-driven and a continuous family), decode_batch and the functional
    viterbi validate decode options in one place: the same error, word for word."""
    model = categorical(np.array([0.5, 0.5]), np.full((2, 2), 0.5), np.full((2, 2), 0.5))
    gauss = hmmfast.GaussianHMM(2)
    gauss.startprob_, gauss.transmat_ = model.startprob_, model.transmat_
    gauss.means_, gauss.covars_ = np.zeros((2, 1)), np.ones((2, 1))
    X = np.array([0, 1, 1])
    calls = [lambda: model.decode(X, algorithm=algorithm, **options),
             lambda: model.decode(X, [2, 1], algorithm=algorithm, **options),
             lambda: gauss.decode(X[:, None], algorithm=algorithm, **options),
             lambda: model.decode_batch([X], algorithm=algorithm, **options)]
    if algorithm == "viterbi":
        calls.append(lambda: hmmfast.viterbi(model.startprob_, model.transmat_,
                                             np.zeros((3, 2)), **options))
    messages = set()
    for call in calls:
        with pytest.raises((hmmfast.ParameterError, hmmfast.HMMTypeError)) as info:
            call()
        messages.add((type(info.value), str(info.value)))
    assert len(messages) == 1, messages


def test_automatic_switch_above_the_threshold(monkeypatch):
    """memory="full" hands long sequences to the checkpointed decoder by itself (the
    compiled fast entry of decode reads the same constant, csrc/_viterbi_table.pxd)."""
    rng = np.random.default_rng(9)
    model = categorical(*random_model(rng, 4, 3))
    X = model.sample(500, random_state=1)[0]
    calls = []
    real = _checkpoint.viterbi_checkpoint

    def spy(*args):
        calls.append(len(args))
        return real(*args)

    monkeypatch.setattr(_checkpoint, "viterbi_checkpoint", spy)
    want = model.decode(X, lengths=[500])
    assert not calls  # 500 x 8 bytes: far below the threshold
    monkeypatch.setattr(_checkpoint, "AUTO_CHECKPOINT_BYTES", 100)
    got = model.decode(X, lengths=[500])
    assert calls  # the same call now checkpoints, with the same result
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    assert _decoders.viterbi_kernel("full", 4, None, 12) is _viterbi.viterbi
    assert _decoders.viterbi_kernel("full", 4, None, 13) is spy
    assert _decoders.viterbi_kernel("checkpoint", 4, None, 1) is spy
    # several sequences: the longest one's table counts (one table per thread at a time)
    two = np.array([0, 12, 24], dtype=np.intp)
    assert _decoders.viterbi_kernel("full", 4, two, 24) is _viterbi.viterbi
    assert _decoders.viterbi_kernel("full", 4, np.array([0, 13, 25], dtype=np.intp), 25) is spy


def test_automatic_switch_counts_computed_emissions():
    """A continuous family's full decode also computes the (T, N) float64 log-emissions:
    at N = 8 the switch comes at 256 MiB / (8 + 64) bytes per frame."""
    limit = _checkpoint.AUTO_CHECKPOINT_BYTES // 72
    assert _decoders.viterbi_kernel("full", 8, None, limit, True) is _viterbi.viterbi
    assert _decoders.viterbi_kernel("full", 8, None, limit + 1, True) is (
        _checkpoint.viterbi_checkpoint)
    assert _decoders.viterbi_kernel("full", 8, None, limit + 1) is _viterbi.viterbi
