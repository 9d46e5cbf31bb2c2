"""Readers of a model being fitted see whole iterates (issue 25, item 9).

Threads that score a model while ``fit`` runs on it must compute with one parameter
set EM produced: the start or the parameters after some M-step, never the new
transition matrix with the old covariances. Before, each M-step result was published
on its own (9 of 3,082 snapshots mixed two iterations); now an M-step publishes under
the model's lock, which the cache build takes too.

The oracle: the scores of every iterate, recomputed afterwards on fresh models.
"""

import threading
import time
import warnings

import numpy as np

import hmmfast


class SlowCovariances(hmmfast.GaussianHMM):
    """Records every iterate; its covariance update takes a little while, which widens
    the window in which a half-published M-step could be seen."""

    def _mstep_covars(self, stats, means):
        out = super()._mstep_covars(stats, means)
        time.sleep(0.003)
        return out

    def _do_mstep(self, stats):
        super()._do_mstep(stats)
        self.__dict__["_iterates"].append(parameters(self))


def parameters(model):
    return {name: np.array(getattr(model, name)) for name in
            ("startprob_", "transmat_", "means_", "covars_")}


def score_of(params, covariance_type, X):
    model = hmmfast.GaussianHMM(3, covariance_type=covariance_type)
    model.startprob_, model.transmat_, model.means_ = (
        params["startprob_"], params["transmat_"], params["means_"])
    model.covars_ = {"diag": lambda c: np.diagonal(c, axis1=1, axis2=2),
                     "full": lambda c: c}[covariance_type](params["covars_"])
    return model.score(X)


def test_readers_see_whole_iterates():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 1.0, size=(150, 2)) for c in ([0, 0], [4, 4], [8, 0])])
    probe = X[::7]
    for covariance_type in ("diag", "full"):
        model = SlowCovariances(3, covariance_type=covariance_type, init_params="",
                                n_iter=12, tol=-np.inf)
        model.startprob_ = [0.5, 0.3, 0.2]
        model.transmat_ = np.full((3, 3), 1 / 3)
        model.means_ = [[1.0, 1.0], [3.0, 3.0], [6.0, 1.0]]
        model.covars_ = {"diag": np.ones((3, 2)), "full": np.tile(np.eye(2), (3, 1, 1))}[
            covariance_type]
        object.__setattr__(model, "_iterates", [parameters(model)])
        seen, done = [], threading.Event()

        def reader():
            while not done.is_set():
                seen.append(model.score(probe))

        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
                model.fit(X)
        finally:
            done.set()
            for t in threads:
                t.join()
        valid = np.array([score_of(p, covariance_type, probe) for p in model._iterates])
        assert len(seen) > 50
        mixed = [s for s in seen if not np.any(np.isclose(s, valid, rtol=1e-12, atol=0))]
        assert not mixed, f"{len(mixed)} of {len(seen)} snapshots mixed two iterations"
