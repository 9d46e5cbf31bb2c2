"""A model shared between threads: kernels release the GIL and keep no scratch on the model."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from hmm_oracles import random_model


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
