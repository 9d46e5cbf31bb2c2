"""fit_distributed's checkpoints record their data; resuming checks it and continues a
finished, unconverged fit to a larger n_iter; timeout bounds every wait (issue 28, items 6
and 10).

Oracles: the uninterrupted fit (same partitions: bit for bit), the sessions' true counts,
and the digest's definition (a sum over sessions) for its invariances.
"""

import os
import time
import warnings

import numpy as np
import pytest

import hmmfast
from hmmfast import HMMInputError

# the [dask] extra (part of the [test] extra); without it this module skips
pytest.importorskip("dask.dataframe", reason="needs the [dask] extra")
pytest.importorskip("distributed", reason="needs the [dask] extra")
pytest.importorskip("pyarrow", reason="needs the [dask] extra")
import dask.bag as db
from dask_data import N, M, categorical, cluster_client, frame, sessions

from hmmfast.distributed import _checkpoint as C
from hmmfast.distributed import fit_distributed

KEY = "hmmfast.distributed"
pytestmark = pytest.mark.skipif(
    not (hasattr(hmmfast, "load") and hasattr(hmmfast, "read_header")),
    reason="model files are not in this build")


@pytest.fixture(scope="module")
def client():
    with cluster_client() as c:
        yield c


def make(n_iter, tol=-np.inf):
    return hmmfast.CategoricalHMM(N, n_features=M, random_state=5, n_iter=n_iter, tol=tol)


def quiet_fit(model, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        return fit_distributed(model, data, **kw)


@pytest.fixture(scope="module")
def seqs():
    return sessions(categorical(16), 40, seed=17)


def test_checkpoint_records_the_data(client, tmp_path, seqs):
    path = tmp_path / "fit.npz"
    quiet_fit(make(2), db.from_sequence(seqs, npartitions=3), checkpoint=path)
    record = hmmfast.read_header(path)["metadata"][KEY]["data"]
    assert record["n_sessions"] == len(seqs)
    assert record["n_frames"] == sum(len(s) for s in seqs)
    assert len(record["digest"]) == 16


@pytest.mark.parametrize("change", ["drop a session", "change one symbol"])
def test_resume_on_other_data_is_an_error(client, tmp_path, seqs, change):
    path = tmp_path / "fit.npz"
    quiet_fit(make(2), db.from_sequence(seqs, npartitions=3), checkpoint=path)
    other = [s.copy() for s in seqs]
    if change == "drop a session":
        other = other[1:]
    else:
        other[7][3] = (other[7][3] + 1) % M
    n_frames = sum(len(s) for s in other)
    model = make(4)
    with pytest.raises(HMMInputError, match=rf"checkpoint .* was written for other data: it "
                                            rf"records {len(seqs)} sessions, .* the data has "
                                            rf"{len(other)} sessions, {n_frames} frames"):
        fit_distributed(model, db.from_sequence(other, npartitions=3), checkpoint=path,
                        resume=True)
    assert not hasattr(model, "transmat_")


def test_resume_on_the_same_sessions_partitioned_otherwise(client, tmp_path, seqs):
    """The digest is a sum over sessions: repartitioning (a DataFrame now) is the same
    data, and the resumed fit ends where the uninterrupted one does (to rounding: the
    statistics are summed in another order)."""
    path = tmp_path / "fit.npz"

    def crash(monitor):
        if len(monitor.history) == 3:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_distributed(make(6), db.from_sequence(seqs, npartitions=3), checkpoint=path,
                        callback=crash)
    resumed = quiet_fit(make(6), frame(seqs, np.arange(len(seqs)), cuts=[5, 11, 30]),
                        checkpoint=path, resume=True)
    full = quiet_fit(make(6), db.from_sequence(seqs, npartitions=3))
    np.testing.assert_allclose(resumed.transmat_, full.transmat_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(resumed.monitor_.history, full.monitor_.history, rtol=1e-12)


def test_resume_a_finished_fit_with_a_larger_n_iter(client, tmp_path, seqs):
    bag = db.from_sequence(seqs, npartitions=3)
    path = tmp_path / "fit.npz"
    first = quiet_fit(make(3), bag, checkpoint=path)
    assert not first.monitor_.converged and first.monitor_.iter == 3
    continued = quiet_fit(make(7), bag, checkpoint=path, resume=True)
    full = quiet_fit(make(7), bag)
    for name in ("startprob_", "transmat_", "emissionprob_"):
        assert np.array_equal(getattr(continued, name), getattr(full, name))
    assert continued.monitor_.history == full.monitor_.history
    assert continued.monitor_.iter == 7
    progress = hmmfast.read_header(path)["metadata"][KEY]
    assert progress["done"] and progress["iter"] == 7


def test_resume_a_converged_fit_runs_nothing_more(client, tmp_path, seqs):
    bag = db.from_sequence(seqs, npartitions=3)
    path = tmp_path / "fit.npz"
    first = quiet_fit(make(200, tol=0.5), bag, checkpoint=path)
    assert first.monitor_.converged
    again = quiet_fit(make(400, tol=0.5), bag, checkpoint=path, resume=True)
    assert again.monitor_.history == first.monitor_.history
    assert np.array_equal(again.transmat_, first.transmat_)


# ---------------------------------------------------------------------- timeout


def hanging_class():
    """A CategoricalHMM whose E-step waits while the file ``hang`` exists in its marker
    folder, until ``release`` appears (at most a minute). A local class: it travels by
    value to the workers."""

    class Hangs(hmmfast.CategoricalHMM):
        def _accumulate_fast(self, stats, data, row_counts, posteriors):
            folder = self.__dict__["_marker_dir"]
            deadline = time.monotonic() + 60
            while (os.path.exists(os.path.join(folder, "hang"))
                   and not os.path.exists(os.path.join(folder, "release"))
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            super()._accumulate_fast(stats, data, row_counts, posteriors)

    return Hangs


def test_timeout_bounds_a_hung_iteration(client, tmp_path, seqs):
    model = hanging_class()(N, n_features=M, random_state=5, n_iter=5, tol=-np.inf)
    object.__setattr__(model, "_marker_dir", str(tmp_path))

    def hang_next(monitor):  # after the second objective: the next E-step hangs
        if len(monitor.history) == 2:
            (tmp_path / "hang").touch()

    try:
        with pytest.raises(TimeoutError, match=r"did not finish the E-step of round 3 .* "
                                               r"within timeout=2 s"):
            fit_distributed(model, db.from_sequence(seqs, npartitions=2), timeout=2,
                            callback=hang_next)
    finally:
        (tmp_path / "release").touch()
    assert not hasattr(model, "transmat_")  # rolled back
    with pytest.raises(hmmfast.ParameterError, match="timeout must be"):
        fit_distributed(make(2), db.from_sequence(seqs, npartitions=2), timeout=0)


# ---------------------------------------------------------------------- the digest


def test_digest_is_a_sum_over_sessions():
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(int(rng.integers(1, 9)), 2)) for _ in range(12)]
    w = rng.uniform(0.5, 2, size=12)

    def of(chosen, weights=None):
        X = np.concatenate([seqs[i] for i in chosen])
        offsets = np.cumsum([0] + [len(seqs[i]) for i in chosen])
        return C.digest(X, offsets, None if weights is None else weights[chosen])

    whole = of(list(range(12)))
    halves = (of(list(range(5))) + of(list(range(5, 12)))) % (1 << 64)
    assert whole == halves == of(list(range(12))[::-1])
    assert of(list(range(12)), w) != whole
    seqs[4] = seqs[4][::-1].copy()  # the same frames in another order
    assert of(list(range(12))) != whole
