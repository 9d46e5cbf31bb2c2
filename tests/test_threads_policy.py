"""Thread teams that never make a call slower (issue 29): the policy (csrc/hmm_team.h,
hmmfast/_threads.py), the team runner, and results that are bit-identical whatever the
team. HMMFAST_TEAM_MIN_NS=0 forces teams on small data so the team paths really run."""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hmm_oracles import random_model

import hmmfast
from hmmfast import _densities, _emissions, _moments, _team, _threads


@pytest.fixture
def force_teams(monkeypatch):
    monkeypatch.setenv("HMMFAST_TEAM_MIN_NS", "0")


# ------------------------------------------------------------------ the runner

@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_team_runs_every_task_once(workers):
    owner = _team.run_team(workers, 500, spin=2000)
    assert (owner >= 0).all() and (owner < workers).all()  # each task ran, by a worker
    if workers == 1:
        assert (owner == 0).all()


def test_team_with_no_tasks_or_one_task():
    assert _team.run_team(4, 0).shape == (0,)
    assert _team.run_team(4, 1).tolist() == [0]  # one task: the caller, no team


def test_helpers_do_not_outlive_the_call():
    """Helpers are detached threads that exit once the tasks are gone: no pool is left
    behind (a libgomp team keeps its threads, spinning, after the region)."""
    base = len(os.listdir("/proc/self/task"))
    for _ in range(20):
        _team.run_team(3, 64, spin=1000)
    deadline = time.monotonic() + 10
    while len(os.listdir("/proc/self/task")) > base and time.monotonic() < deadline:
        time.sleep(0.01)
    # (<=: helpers of an earlier test may still have been leaving when base was read)
    assert len(os.listdir("/proc/self/task")) <= base


# ------------------------------------------------------------------ how many

def test_explicit_request_needs_tasks_and_work():
    big = 1e9
    assert _team.team_size(2, 10, big) == 2
    assert _team.team_size(4, 3, big) == 3        # never more threads than tasks
    assert _team.team_size(2, 1, big) == 1        # one task: no team
    assert _team.team_size(1, 10, big) == 1
    floor = _team.min_work_ns()
    assert floor > 0
    assert _team.team_size(2, 10, 1.9 * floor) == 1   # below the per-thread break-even
    assert _team.team_size(4, 10, 3.0 * floor) == 3


def test_break_even_override(monkeypatch):
    monkeypatch.setenv("HMMFAST_TEAM_MIN_NS", "0")
    assert _team.min_work_ns() == 0
    assert _team.team_size(2, 10, 1.0) == 2
    monkeypatch.setenv("HMMFAST_TEAM_MIN_NS", "junk")   # ignored, not a crash
    assert _team.min_work_ns() > 0


def test_running_threads_probe_counts_competitors():
    """The probe (field 4 of /proc/loadavg) sees CPU-bound processes beside us, and an
    automatic request then stays on one thread; an explicit one is honoured."""
    if _team.running_others() < 0:
        pytest.skip("no /proc/loadavg")
    cpus = _team.online_cpus()
    spin = "while True: pass"
    procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2 * cpus)]
    try:
        seen, deadline = [], time.monotonic() + 20
        while time.monotonic() < deadline:
            seen.append(_team.running_others())
            auto = _team.team_size(-cpus, 100, 1e12)
            if seen[-1] >= cpus:
                break
            time.sleep(0.05)
        assert max(seen) >= cpus, seen
        assert auto == 1
        assert _team.team_size(2, 100, 1e12) == 2
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


# ------------------------------------------------------------------ the budget

def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_tightest_ancestor(tmp_path):
    write(tmp_path / "proc", "0::/a/b\n")
    write(tmp_path / "cg" / "a" / "cpu.max", "150000 100000\n")
    write(tmp_path / "cg" / "a" / "b" / "cpu.max", "max 100000\n")
    assert _threads.cgroup_cpus(tmp_path / "proc", tmp_path / "cg") == 1.5
    write(tmp_path / "cg" / "a" / "b" / "cpu.max", "50000 100000\n")
    assert _threads.cgroup_cpus(tmp_path / "proc", tmp_path / "cg") == 0.5


def test_cgroup_v2_unlimited_and_hidden_path(tmp_path):
    write(tmp_path / "proc", "0::/not/visible\n")
    write(tmp_path / "cg" / "cpu.max", "max 100000\n")
    assert _threads.cgroup_cpus(tmp_path / "proc", tmp_path / "cg") is None
    write(tmp_path / "cg" / "cpu.max", "300000 100000\n")   # a container's own root
    assert _threads.cgroup_cpus(tmp_path / "proc", tmp_path / "cg") == 3.0


def test_cgroup_v1_quota(tmp_path):
    write(tmp_path / "proc", "4:memory:/x\n3:cpu,cpuacct:/job\n")
    base = tmp_path / "cg" / "cpu,cpuacct"
    write(base / "cpu.cfs_quota_us", "-1\n")
    write(base / "cpu.cfs_period_us", "100000\n")
    write(base / "job" / "cpu.cfs_quota_us", "250000\n")
    write(base / "job" / "cpu.cfs_period_us", "100000\n")
    assert _threads.cgroup_cpus(tmp_path / "proc", tmp_path / "cg") == 2.5
    write(base / "job" / "cpu.cfs_quota_us", "-1\n")
    assert _threads.cgroup_cpus(tmp_path / "proc", tmp_path / "cg") is None


def test_budget_and_requests():
    budget = _threads.cpu_budget()
    assert 1 <= budget <= len(os.sched_getaffinity(0))
    assert _threads.resolve_threads(None) == budget
    assert _threads.resolve_threads(10**6) == budget   # capped at the CPUs we may use
    assert _threads.resolve_threads(1) == 1
    assert _threads.team_request(None) == -budget
    assert _threads.team_request(1) == 1
    with pytest.raises(hmmfast.ParameterError, match="n_threads"):
        _threads.team_request(0)


def test_affinity_caps_the_budget():
    """A process pinned to one CPU gets a budget of one (run in a child: affinity is
    per process)."""
    code = textwrap.dedent("""
        import os
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        from hmmfast import _threads
        print(_threads.cpu_budget(), _threads.team_request(None), _threads.resolve_threads(8))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.split() == ["1", "-1", "1"]


def test_small_fit_starts_no_thread():
    """The busy-machine regression of issue 29: a small Gaussian fit (OpenMP teams in
    the density and emission kernels, kept alive and spinning) now stays on the caller:
    no thread is left behind, with the default n_threads."""
    code = textwrap.dedent("""
        import os, numpy as np, hmmfast
        rng = np.random.default_rng(0)
        lengths = rng.integers(15, 28, 239)
        X = rng.normal(size=(lengths.sum(), 13))
        model = hmmfast.GaussianHMM(5, n_iter=1, random_state=0)
        model.fit(X[:50])
        before = len(os.listdir("/proc/self/task"))
        model.n_iter = 5
        model.fit(X, lengths)
        print(before, len(os.listdir("/proc/self/task")))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    before, after = map(int, out.stdout.split())
    assert after == before


# ------------------------------------------------------------------ same bits, any team

def test_densities_same_bits_any_team(force_teams):
    rng = np.random.default_rng(1)
    T, D, N = 9000, 5, 4
    X = rng.normal(size=(T, D)) + 1e3
    means_t = rng.normal(size=(D, N)) + 1e3
    prec = rng.uniform(0.5, 2, (D, N))
    norm = rng.normal(size=N)
    one = _densities.gaussian_diag(X, means_t, prec, norm, 1)
    for k in (2, 3):
        np.testing.assert_array_equal(_densities.gaussian_diag(X, means_t, prec, norm, k), one)
        np.testing.assert_array_equal(
            _densities.gaussian_diag(X, means_t, prec, norm, -k), one)
    L = np.tril(rng.normal(size=(N, D, D)) * 0.1) + 2 * np.eye(D)
    args = (X, np.ascontiguousarray(means_t.T), L, 1 / np.einsum("jdd->jd", L), norm)
    one = _densities.gaussian_cholesky(*args, 1)
    np.testing.assert_array_equal(_densities.gaussian_cholesky(*args, 3), one)
    counts = rng.poisson(3, (T, D)).astype(float)
    lam = rng.uniform(1, 5, (D, N))
    one = _densities.poisson(counts, np.log(lam), lam.sum(0), 1)
    np.testing.assert_array_equal(_densities.poisson(counts, np.log(lam), lam.sum(0), 2), one)


def test_scaled_rows_and_scatter_same_bits_any_team(force_teams):
    rng = np.random.default_rng(2)
    table = rng.normal(size=(20000, 6))
    one = _emissions.scaled_rows(table, 1)
    for k in (2, 4):
        for a, b in zip(_emissions.scaled_rows(table, k), one, strict=True):
            np.testing.assert_array_equal(a, b)
    X = rng.normal(size=(30000, 3))
    w = rng.random((30000, 4))
    means = rng.normal(size=(4, 3))
    one = _moments.weighted_scatter(X, w, means, 1)
    np.testing.assert_array_equal(_moments.weighted_scatter(X, w, means, 3), one)


@pytest.mark.parametrize("n_threads", [2, None])
def test_batches_same_bits_any_team(force_teams, make_model, n_threads):
    rng = np.random.default_rng(3)
    model = make_model(*random_model(rng, 5, 7), n_threads=1)
    seqs = [rng.integers(0, 7, (int(rng.integers(1, 80)), 1)) for _ in range(300)]
    scores = model.score_batch(seqs)
    logprob, paths = model.decode_batch(seqs)
    X, lengths = np.concatenate(seqs), [len(s) for s in seqs]
    post = model.predict_proba(X, lengths)
    model.n_threads = n_threads
    model._cache = None
    np.testing.assert_array_equal(model.score_batch(seqs), scores)
    lp2, paths2 = model.decode_batch(seqs)
    np.testing.assert_array_equal(lp2, logprob)
    for a, b in zip(paths2, paths, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict_proba(X, lengths), post)


def _fit_params(make, n_threads):
    model = make(n_threads)
    rng = np.random.default_rng(4)
    lengths = rng.integers(20, 60, 120)
    X = model.sample(int(lengths.sum()), random_state=5)[0]
    fitted = make(n_threads).fit(X, lengths)
    return {k: v for k, v in vars(fitted).items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("family", ["categorical", "diag", "full", "gmm", "poisson"])
def test_fits_same_bits_any_team(force_teams, family):
    def make(n_threads):
        kw = dict(n_iter=4, tol=-np.inf, random_state=0, n_threads=n_threads)
        if family == "categorical":
            m = hmmfast.CategoricalHMM(4, **kw)
            m.startprob_ = np.full(4, 0.25)
            m.transmat_ = np.full((4, 4), 0.1) + np.eye(4) * 0.6
            m.emissionprob_ = np.random.default_rng(0).dirichlet(np.ones(6), 4)
            m.init_params = ""
            return m
        if family == "poisson":
            m = hmmfast.PoissonHMM(3, **kw)
            m.startprob_ = np.full(3, 1 / 3)
            m.transmat_ = np.full((3, 3), 0.1) + np.eye(3) * 0.7
            m.lambdas_ = np.array([[1.0, 4.0], [6.0, 2.0], [9.0, 9.0]])
            m.init_params = ""
            return m
        if family == "gmm":
            m = hmmfast.GMMHMM(3, n_mix=2, covariance_type="diag", **kw)
        else:
            m = hmmfast.GaussianHMM(3, covariance_type=family, **kw)
        m.startprob_ = np.full(3, 1 / 3)
        m.transmat_ = np.full((3, 3), 0.1) + np.eye(3) * 0.7
        means = np.array([[0.0, 0.0], [5.0, 1.0], [-4.0, 3.0]])
        if family == "gmm":
            m.means_ = np.stack([means, means + 0.5], axis=1)
            m.covars_ = np.ones((3, 2, 2))
            m.weights_ = np.full((3, 2), 0.5)
        else:
            m.means_ = means
            m.covars_ = np.ones((3, 2)) if family == "diag" else np.stack([np.eye(2)] * 3)
        m.init_params = ""
        return m

    one = _fit_params(make, 1)
    for n_threads in (2, None):
        other = _fit_params(make, n_threads)
        assert one.keys() == other.keys()
        for k in one:
            np.testing.assert_array_equal(other[k], one[k], err_msg=k)
