"""Threads: a model shared between threads (kernels release the GIL, keep no scratch on
the model, and a cache never outlives a parameter assignment), and ``n_threads`` (the
kernels' multi-sequence driver gives the same bits on any number of threads)."""

import itertools
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from factories import categorical, random_categorical
from hmm_oracles import random_model

import hmmfast
from hmmfast import _trellis, _viterbi

# -------------------------------------------------------- a model shared between threads


def test_thread_pool_matches_serial(make_model):
    rng = np.random.default_rng(0)
    model = make_model(*random_model(rng, 6, 8))
    sequences = [rng.integers(0, 8, size=(int(rng.integers(1, 3000)), 1)) for _ in range(60)]

    def work(X):
        return model.score(X), model.decode(X), model.predict_proba(X)

    serial = [work(X) for X in sequences]
    model._cache = None  # let the threads race to build the cache too
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(work, sequences))
    for (s1, (v1, p1), q1), (s2, (v2, p2), q2) in zip(serial, threaded, strict=True):
        assert s1 == s2 and v1 == v2
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(q1, q2)


def test_thread_pool_with_a_writer_sees_whole_parameter_sets():
    """4 threads decode with one shared model while a writer swaps its emission matrix
    between two values: every result equals a serial call under one of the two."""
    rng = np.random.default_rng(7)
    params = random_model(rng, 5, 8)
    b2 = rng.dirichlet(np.ones(8), size=5)
    model = categorical(*params)
    seqs = [rng.integers(0, 8, size=int(t)) for t in rng.integers(50, 3000, size=80)]
    expected = []
    for b in (params[2], b2):
        model.emissionprob_ = b
        expected.append([(model.decode(x), model.score(x)) for x in seqs])
    stop = threading.Event()

    def writer():
        k = 0
        while not stop.is_set():
            model.emissionprob_ = b2 if k % 2 else params[2]
            k += 1

    def work(i):
        (lp, path), score = model.decode(seqs[i]), model.score(seqs[i])
        matches = [
            lp == want[i][0][0] and np.array_equal(path, want[i][0][1]) for want in expected]
        return any(matches), score in (expected[0][i][1], expected[1][i][1])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(work, list(range(len(seqs))) * 3))
    finally:
        stop.set()
        thread.join()
    assert all(decoded for decoded, _ in results)
    assert all(scored for _, scored in results)


def test_cache_never_outlives_an_assignment(make_model):
    """Readers score while a writer alternates two emission matrices. Every score equals
    one of the two parameter sets' scores, and after the threads join the model scores
    with the parameters it holds.

    A 0.1 ms switch interval hands the GIL over often: a cache build that stores its
    result without the model's lock is caught in ~16 % of the trials (measured: 33 of
    200; at the default 5 ms 11 of 120, and a trial takes ~4x longer), so 32 trials
    miss it in ~0.3 % of runs (40 trials at 5 ms: ~2 %)."""
    rng = np.random.default_rng(3)
    # many symbols: building the kernel inputs takes long enough for writers to land
    # while a reader is building them
    startprob, transmat, b1 = random_model(rng, 4, 20_000)
    b2 = rng.dirichlet(np.ones(20_000), size=4)
    X = rng.integers(0, 20_000, size=200)
    scores = [make_model(startprob, transmat, b).score(X) for b in (b1, b2)]
    assert scores[0] != scores[1]
    model = make_model(startprob, transmat, b1)
    bad = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        run_trials(model, X, b1, b2, scores, bad)
    finally:
        sys.setswitchinterval(interval)
    assert bad == []


def run_trials(model, X, b1, b2, scores, bad, n_trials=32):
    for trial in range(n_trials):
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                s = model.score(X)
                if s not in scores:
                    bad.append(s)

        def writer(trial=trial):
            for k in range(8):
                model.emissionprob_ = b2 if (k + trial) % 2 else b1
                time.sleep(0.0005 * (k % 3))
            stop.set()

        threads = [threading.Thread(target=reader) for _ in range(3)]
        threads.append(threading.Thread(target=writer))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        held = 0 if np.allclose(model.emissionprob_, b1, rtol=1e-12) else 1
        np.testing.assert_allclose(model.emissionprob_, (b1, b2)[held], rtol=1e-12)
        assert model.score(X) == scores[held], f"trial {trial}: scores with stale parameters"


def test_observations_mutated_during_calls_never_read_out_of_bounds(make_model):
    """Another thread flips X between valid and invalid symbols while score_samples and
    decode run without the GIL: every call returns a sane result or a library error."""
    rng = np.random.default_rng(6)
    model = make_model(*random_model(rng, 5, 4))
    X = rng.integers(0, 4, size=20_000).astype(np.intp)
    stop = threading.Event()

    def flipper():  # a few positions toggle between a valid and an invalid symbol
        while not stop.is_set():
            for i in (3, 9_999, 19_000):
                X[i] = -1
                X[i] = 1

    thread = threading.Thread(target=flipper)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # hand the GIL back to the caller quickly
    thread.start()
    try:
        for _ in range(300):
            try:
                _, post = model.score_samples(X)
                assert np.all(np.isfinite(post))
                np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-9)
                logprob, states = model.decode(X, algorithm="map")
                assert not np.isnan(logprob) and states.min() >= 0 and states.max() < 5
            except (hmmfast.HMMInputError, hmmfast.ImpossibleSequenceError):
                pass
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)


# ----------------------------------------------------------------------------- n_threads


def test_multi_sequence_calls_use_the_models_threads():
    rng = np.random.default_rng(6)
    one = random_categorical(rng, 4, 6)
    two = random_categorical(np.random.default_rng(6), 4, 6)
    one.n_threads, two.n_threads = 1, 2
    X = one.sample(60_000, random_state=2)[0]
    lengths = [100] * 600
    assert one.score(X, lengths) == two.score(X, lengths)
    np.testing.assert_array_equal(one.predict_proba(X, lengths), two.predict_proba(X, lengths))
    np.testing.assert_array_equal(one.decode(X, lengths)[1], two.decode(X, lengths)[1])


@pytest.mark.parametrize("n_threads", [1, 2])
def test_kernels_over_sequences_per_thread_count(make_model, implementation, n_threads):
    """The kernels' multi-sequence driver gives identical per-sequence results on 1 or 2
    threads (the OpenMP path), equal to one call per sequence."""
    model = make_model(*random_model(np.random.default_rng(7), 4, 5), implementation)
    c = model._cache or model._prepare()
    rng = np.random.default_rng(4)
    lengths = rng.integers(1, 50, size=4000)  # enough cells to start a thread team
    rows = rng.integers(0, 5, size=lengths.sum()).astype(np.intp)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.intp)
    per_seq = np.empty(len(lengths))
    total = _trellis.forward(c.chain, c.emission, rows, offsets, c.scaling, per_seq, n_threads)
    singles = [_trellis.forward(c.chain, c.emission, rows[a:b], None, c.scaling)
               for a, b in itertools.pairwise(offsets)]
    np.testing.assert_array_equal(per_seq, singles)
    assert total == pytest.approx(sum(singles), rel=1e-13)
    vit_per_seq = np.empty(len(lengths))
    _, path = _viterbi.viterbi(c.chain, c.emission, rows, offsets, vit_per_seq, n_threads)
    for s, (a, b) in enumerate(itertools.pairwise(offsets)):
        lp, p = _viterbi.viterbi(c.chain, c.emission, rows[a:b], None)
        np.testing.assert_array_equal(path[a:b], p)
        assert vit_per_seq[s] == lp
    _, post = _trellis.forward_backward(c.chain, c.emission, rows, offsets, c.scaling, None,
                                        n_threads)
    _, post1 = _trellis.forward_backward(c.chain, c.emission, rows, offsets, c.scaling, None, 1)
    np.testing.assert_array_equal(post, post1)
