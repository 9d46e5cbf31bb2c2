"""Baum-Welch (issue 12): brute-force E-steps, monotone objective, hmmlearn's iterates,
recovery, supervised and semi-supervised fits, weights, threads, rollback, bad input."""

import itertools
import warnings

import numpy as np
import pytest
from factories import categorical, needs_hmmlearn
from hmm_oracles import enumerate_paths, log, random_model
from scipy.special import logsumexp

import hmmfast
from hmmfast import _reference

# ------------------------------------------------------------------ oracles


def brute_force_stats(startprob, transmat, emissionprob, X, lengths, weights=None,
                      labels=None):
    """Expected counts by enumerating every state path of every sequence.

    Returns (start (N,), trans (N, N), obs (N, M), objective) with each sequence's counts
    scaled by its weight; with labels (-1 unknown) only paths through the labels count,
    and the objective is sum_s w_s log P(X_s, labels_s).
    """
    n, m = np.shape(emissionprob)
    start, trans, obs = np.zeros(n), np.zeros((n, n)), np.zeros((n, m))
    total = 0.0
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for s in range(len(lengths)):
        x = np.asarray(X).reshape(-1)[offsets[s]:offsets[s + 1]]
        w = 1.0 if weights is None else weights[s]
        paths, logp = enumerate_paths(startprob, transmat, log(emissionprob).T[x])
        if labels is not None:
            lab = labels[offsets[s]:offsets[s + 1]]
            ok = np.all((paths == lab) | (lab < 0), axis=1)
            logp = np.where(ok, logp, -np.inf)
        ll = logsumexp(logp)
        total += w * ll
        post = np.exp(logp - ll)
        for path, p in zip(paths, post, strict=True):
            if p == 0:
                continue
            start[path[0]] += w * p
            for t in range(len(x) - 1):
                trans[path[t], path[t + 1]] += w * p
            for t in range(len(x)):
                obs[path[t], x[t]] += w * p
    return start, trans, obs, total


def mstep(counts):
    return counts / counts.sum(axis=-1, keepdims=True)


def model_with(params, implementation="scaling", **kw):
    """A CategoricalHMM holding ``params`` that trains from them (init_params="")."""
    return categorical(*params, implementation, init_params="", **kw)


# ------------------------------------------------------------------ one iteration


@pytest.mark.parametrize("seed", range(12))
def test_one_iteration_equals_brute_force_em(seed, implementation):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(2, 4)), int(rng.integers(2, 5))
    params = random_model(rng, n, m, zeros=seed % 3 == 0)
    lengths = [int(v) for v in rng.integers(1, 6, size=3)]
    truth = model_with(params)
    X = np.concatenate([truth.sample(t, random_state=seed * 10 + k)[0]
                        for k, t in enumerate(lengths)])
    weights = rng.uniform(0.2, 3.0, size=3) if seed % 2 else None
    labels = None
    if seed % 4 == 1:
        _, paths = truth.decode(X, lengths)
        labels = np.where(rng.random(len(X)) < 0.4, paths, -1)
    start, trans, obs, objective = brute_force_stats(*params, X, lengths, weights, labels)
    model = model_with(params, implementation, n_iter=1, tol=-np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.fit(X, lengths, sample_weight=weights, states=labels)
    np.testing.assert_allclose(model.monitor_.history[0], objective, rtol=1e-10)
    np.testing.assert_allclose(model.startprob_, mstep(start), atol=1e-10)
    visited = trans.sum(axis=1) > 0  # unvisited rows keep their previous values
    np.testing.assert_allclose(model.transmat_[visited], mstep(trans[visited]), atol=1e-10)
    np.testing.assert_allclose(model.transmat_[~visited], params[1][~visited], atol=1e-12)
    seen = obs.sum(axis=1) > 0
    np.testing.assert_allclose(model.emissionprob_[seen], mstep(obs[seen]), atol=1e-10)


# ------------------------------------------------------------------ monotone objective


def objective_by_reference(model, X, lengths, weights, labels, priors):
    """sum_s w_s log P(X_s [, labels]) + log prior, from the NumPy reference."""
    log_em = _reference.categorical_log_emissions(model.emissionprob_, X)
    if labels is not None:
        known = labels >= 0
        keep = log_em[known, labels[known]]
        log_em[known] = -np.inf
        log_em[known, labels[known]] = keep
    ll = _reference.forward(model.startprob_, model.transmat_, log_em, lengths)
    total = float(np.sum(ll if weights is None else weights * ll))
    for prob, alpha in zip((model.startprob_, model.transmat_, model.emissionprob_), priors,
                           strict=True):
        nz = prob > 0
        total += float(np.sum((np.broadcast_to(alpha, prob.shape)[nz] - 1) * np.log(prob[nz])))
    return total


@pytest.mark.parametrize("seed", range(16))
def test_objective_never_decreases(seed, implementation):
    rng = np.random.default_rng(100 + seed)
    n, m = int(rng.integers(2, 6)), int(rng.integers(2, 8))
    truth = model_with(random_model(rng, n, m, zeros=seed % 4 == 0))
    lengths = [int(v) for v in rng.integers(5, 60, size=6)]
    X = np.concatenate([truth.sample(t, random_state=seed * 7 + k)[0]
                        for k, t in enumerate(lengths)])
    weights = rng.uniform(0.0, 2.0, size=6) if seed % 2 else None
    labels = None
    if seed % 3 == 1:
        _, paths = truth.decode(X, lengths)
        labels = np.where(rng.random(len(X)) < 0.2, paths, -1)
    priors = (1.0, 1.0, 1.0)
    if seed % 4 == 2:
        priors = (rng.uniform(1, 3, size=n), rng.uniform(1, 3, size=(n, n)), 1.5)
    model = hmmfast.CategoricalHMM(
        n, n_features=m, n_iter=40, tol=-np.inf, random_state=seed,
        implementation=implementation, startprob_prior=priors[0], transmat_prior=priors[1],
        emissionprob_prior=priors[2])
    if seed % 4 == 0:  # warm start with structural zeros
        model.startprob_, model.transmat_, model.emissionprob_ = (
            truth.startprob_, truth.transmat_, truth.emissionprob_)
        model.init_params = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.fit(X, lengths, sample_weight=weights, states=labels)
    history = np.array(model.monitor_.history)
    assert len(history) == 41 and model.monitor_.iter == 40
    gains = np.diff(history)
    assert np.all(gains >= -1e-8 * np.abs(history[1:])), gains.min()
    # the last entry is the objective of the returned parameters (independent oracle)
    np.testing.assert_allclose(
        history[-1], objective_by_reference(model, X, lengths, weights, labels, priors),
        rtol=1e-10)
    if seed % 4 == 0:
        for name in ("startprob_", "transmat_", "emissionprob_"):
            zeros = getattr(truth, name) == 0
            assert np.all(getattr(model, name)[zeros] == 0), name


# ------------------------------------------------------------------ hmmlearn's iterates


@needs_hmmlearn
@pytest.mark.parametrize("implementation", ["scaling", "log"])
@pytest.mark.parametrize("priors", [False, True])
def test_k_iterations_match_hmmlearn(implementation, priors):
    from hmmlearn import hmm

    rng = np.random.default_rng(7)
    params = random_model(rng, 4, 6)
    X = model_with(params).sample(400, random_state=3)[0]
    lengths = [100, 50, 250]
    kw = {}
    if priors:
        kw = {"startprob_prior": rng.uniform(1, 2, 4), "transmat_prior": rng.uniform(1, 2, (4, 4)),
              "emissionprob_prior": 1.3}
    ours = model_with(params, implementation, n_iter=7, tol=-np.inf, **kw)
    theirs = hmm.CategoricalHMM(4, n_features=6, n_iter=7, tol=-np.inf, init_params="",
                                implementation=implementation, **kw)
    theirs.startprob_, theirs.transmat_, theirs.emissionprob_ = params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.fit(X, lengths)
        theirs.fit(X, lengths)
    for name in ("startprob_", "transmat_", "emissionprob_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6,
                                   atol=1e-10, err_msg=name)
    # hmmlearn's history[k] is the log-likelihood before M-step k; ours is the objective
    # EM maximises, which adds the log prior density (0 with the default priors)
    log_prior = 0.0
    if priors:
        for prob, alpha in zip(params, (kw["startprob_prior"], kw["transmat_prior"],
                                        kw["emissionprob_prior"]), strict=True):
            log_prior += np.sum((np.broadcast_to(alpha, prob.shape) - 1) * np.log(prob))
        np.testing.assert_allclose(ours.monitor_.history[0],
                                   theirs.monitor_.history[0] + log_prior, rtol=1e-9)
    else:
        np.testing.assert_allclose(ours.monitor_.history[:7], list(theirs.monitor_.history),
                                   rtol=1e-9)


# ------------------------------------------------------------------ recovery


def match_states(fitted, true):
    """The permutation of fitted states that best matches the true emission rows."""
    n = len(true)
    best = min(itertools.permutations(range(n)),
               key=lambda p: np.abs(fitted[list(p)] - true).sum())
    return list(best)


@pytest.mark.slow
def test_recovers_a_known_model():
    """30,000 observations (300 sessions): every fitted entry within 0.05 of the truth
    (measured: 0.010; 0.008 from 100,000). The restarts matter more than the data:
    with random_state=2 all four land in one local optimum at either size."""
    n, m = 5, 10
    startprob = np.full(n, 0.2)
    transmat = np.full((n, n), 0.05) + np.eye(n) * 0.75
    emissionprob = np.full((n, m), 0.02)
    for j in range(n):
        emissionprob[j, 2 * j:2 * j + 2] = 0.42
    truth = model_with((startprob, transmat, emissionprob))
    X = np.concatenate([truth.sample(100, random_state=k)[0] for k in range(300)])
    lengths = [100] * 300
    model = hmmfast.CategoricalHMM(n, n_iter=300, tol=1e-4, n_init=4, random_state=0)
    model.fit(X, lengths)
    per_obs = (model.score(X, lengths) - truth.score(X, lengths)) / len(X)
    assert abs(per_obs) < 0.01, per_obs
    perm = match_states(model.emissionprob_, emissionprob)
    np.testing.assert_allclose(model.emissionprob_[perm], emissionprob, atol=0.05)
    np.testing.assert_allclose(model.transmat_[np.ix_(perm, perm)], transmat, atol=0.05)


# ------------------------------------------------------------------ supervised


def test_fit_supervised_equals_hand_counts():
    X = np.array([0, 1, 1, 2, 0, 0, 2, 2, 1, 0])
    states = np.array([0, 0, 1, 1, 0, 1, 1, 1, 0, 0])
    lengths = [4, 6]
    model = hmmfast.CategoricalHMM(2, n_features=3).fit_supervised(X, states, lengths)
    # by hand: sequence starts 0, 0; transitions within sequences only
    np.testing.assert_allclose(model.startprob_, [1.0, 0.0])
    pairs = [(0, 0), (0, 1), (1, 1), (0, 1), (1, 1), (1, 1), (1, 0), (0, 0)]
    counts = np.zeros((2, 2))
    for i, j in pairs:
        counts[i, j] += 1
    np.testing.assert_allclose(model.transmat_, counts / counts.sum(1, keepdims=True))
    emit = np.zeros((2, 3))
    for s, x in zip(states, X, strict=True):
        emit[s, x] += 1
    np.testing.assert_allclose(model.emissionprob_, emit / emit.sum(1, keepdims=True))
    # priors are pseudocounts: counts + alpha - 1
    smoothed = hmmfast.CategoricalHMM(2, n_features=3, emissionprob_prior=2.0)
    smoothed.fit_supervised(X, states, lengths)
    np.testing.assert_allclose(smoothed.emissionprob_, (emit + 1) / (emit + 1).sum(1, keepdims=True))


def test_fully_labelled_fit_equals_fit_supervised_and_unlabelled_equals_fit():
    rng = np.random.default_rng(4)
    truth = model_with(random_model(rng, 3, 5))
    X, states = truth.sample(600, random_state=1)
    lengths = [200, 150, 250]
    sup = hmmfast.CategoricalHMM(3, n_features=5, random_state=0).fit_supervised(X, states, lengths)
    semi = hmmfast.CategoricalHMM(3, n_features=5, random_state=0, n_iter=5)
    semi.fit(X, lengths, states=states)
    for name in ("startprob_", "transmat_", "emissionprob_"):
        np.testing.assert_allclose(getattr(semi, name), getattr(sup, name), atol=1e-12)
    plain = hmmfast.CategoricalHMM(3, random_state=5, n_iter=20, tol=1.0).fit(X, lengths)
    unknown = hmmfast.CategoricalHMM(3, random_state=5, n_iter=20, tol=1.0)
    unknown.fit(X, lengths, states=np.full(len(X), -1))
    for name in ("startprob_", "transmat_", "emissionprob_"):
        np.testing.assert_array_equal(getattr(unknown, name), getattr(plain, name))


def test_sample_weight_two_equals_sequence_twice():
    rng = np.random.default_rng(9)
    params = random_model(rng, 3, 4)
    X = model_with(params).sample(90, random_state=2)[0]
    a = model_with(params, n_iter=5, tol=-np.inf)
    b = model_with(params, n_iter=5, tol=-np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        a.fit(X, [30, 60], sample_weight=[2.0, 1.0])
        b.fit(np.concatenate([X[:30], X]), [30, 30, 60])
    for name in ("startprob_", "transmat_", "emissionprob_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12)
    np.testing.assert_allclose(a.monitor_.history, b.monitor_.history, rtol=1e-12)


@pytest.mark.parametrize("implementation", ["scaling", "log"])
def test_threads_do_not_change_the_result(implementation):
    rng = np.random.default_rng(10)
    params = random_model(rng, 4, 6)
    X = model_with(params).sample(20000, random_state=4)[0]  # enough to start threads
    lengths = list(rng.multinomial(20000 - 30, np.ones(30) / 30) + 1)
    fits = []
    for n_threads in (1, 2, 3):
        model = model_with(params, implementation, n_iter=8, tol=-np.inf, n_threads=n_threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            fits.append(model.fit(X, lengths))
    for other in fits[1:]:  # chunked reductions: bit for bit, whatever the thread count
        for name in ("startprob_", "transmat_", "emissionprob_"):
            np.testing.assert_array_equal(getattr(other, name), getattr(fits[0], name))


# ------------------------------------------------------------------ behaviour


def test_structural_zeros_and_unvisited_states_survive():
    startprob = [1.0, 0.0, 0.0]
    transmat = [[0.7, 0.3, 0.0], [0.0, 0.8, 0.2], [0.0, 0.0, 1.0]]
    emissionprob = [[0.6, 0.4, 0.0], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4]]
    model = model_with((startprob, transmat, emissionprob), n_iter=20)
    model.fit(np.array([0, 0, 1, 2, 1]))
    assert model.startprob_[1] == 0 and model.startprob_[2] == 0
    assert model.transmat_[0, 2] == 0 and model.transmat_[1, 0] == 0
    assert np.all(np.isfinite(model.emissionprob_))
    # a state no path can visit keeps its parameters instead of becoming NaN
    isolated = model_with(([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.9, 0.1]]),
                          n_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        isolated.fit(np.array([0, 1, 1, 0]))
    np.testing.assert_array_equal(isolated.emissionprob_[1], [0.9, 0.1])
    np.testing.assert_array_equal(isolated.transmat_[1], [0.0, 1.0])


def test_warm_start_keeps_parameters_outside_init_params():
    rng = np.random.default_rng(12)
    params = random_model(rng, 3, 4)
    X = model_with(params).sample(200, random_state=1)[0]
    model = hmmfast.CategoricalHMM(3, init_params="e", params="e", n_iter=3, random_state=0)
    model.startprob_, model.transmat_ = params[0], params[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        model.fit(X)
    np.testing.assert_array_equal(model.startprob_, params[0])
    np.testing.assert_array_equal(model.transmat_, params[1])
    assert model.n_features == 4


def test_restarts_keep_the_best_and_are_reproducible():
    rng = np.random.default_rng(13)
    X = model_with(random_model(rng, 3, 6)).sample(500, random_state=2)[0]
    singles = []
    for seed in range(3):
        m = hmmfast.CategoricalHMM(3, n_iter=30, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
            singles.append(m.fit(X).monitor_.history[-1])
    multi = hmmfast.CategoricalHMM(3, n_iter=30, n_init=5, random_state=0)
    again = hmmfast.CategoricalHMM(3, n_iter=30, n_init=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        multi.fit(X)
        again.fit(X)
    np.testing.assert_array_equal(multi.emissionprob_, again.emissionprob_)
    assert multi.monitor_.history[-1] >= singles[0] - 1e-9
    np.testing.assert_allclose(multi.score(X), multi.monitor_.history[-1], rtol=1e-12)


def test_convergence_warning_and_verbose(capsys):
    rng = np.random.default_rng(14)
    X = model_with(random_model(rng, 3, 5)).sample(300, random_state=1)[0]
    with pytest.warns(hmmfast.ConvergenceWarning, match="n_iter=2"):
        hmmfast.CategoricalHMM(3, n_iter=2, tol=1e-12, random_state=0).fit(X)
    model = hmmfast.CategoricalHMM(3, n_iter=500, tol=1e-3, random_state=0, verbose=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", hmmfast.ConvergenceWarning)
        model.fit(X)
    assert model.monitor_.converged and model.monitor_.iter < 500
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(model.monitor_.history)
    assert "log-likelihood" in err[-1] and "gain" in err[-1] and " s" in err[-1]


# ------------------------------------------------------------------ bad input loses nothing


@pytest.mark.parametrize("kwargs,error,match", [
    ({"X": np.zeros((0, 1), int)}, hmmfast.HMMInputError, "X is empty"),
    ({"lengths": [3, 3]}, hmmfast.HMMInputError, "lengths sum to 6"),
    ({"states": [0, 1, 2, 0, 0, 0, 0, 0, 0, 0]}, hmmfast.HMMInputError, r"states\[2\] = 2"),
    ({"states": [0, 1]}, hmmfast.HMMInputError, "one entry per sample"),
    ({"sample_weight": [1.0, -1.0]}, hmmfast.HMMInputError, r"sample_weight\[1\] = -1.0"),
    ({"sample_weight": [1.0, np.nan]}, hmmfast.ParameterError, "sample_weight must be finite"),
    ({"sample_weight": [1.0]}, hmmfast.ParameterError, "one weight per sequence"),
    ({"sample_weight": [0.0, 0.0]}, hmmfast.HMMInputError, "zero for every sequence"),
    ({"X": np.array([0, 1, 5, 0, 1, 0, 1, 0, 1, 0])}, hmmfast.HMMInputError,
     r"X\[2\].*n_features=3"),
])
def test_bad_fit_input_is_refused_and_loses_nothing(kwargs, error, match):
    params = ([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    model = model_with(params)
    args = {"X": np.array([0, 1, 2, 0, 1, 0, 1, 0, 1, 0]), "lengths": [4, 6], **kwargs}
    X = args.pop("X")
    with pytest.raises(error, match=match):
        model.fit(X, **args)
    for got, want in zip((model.startprob_, model.transmat_, model.emissionprob_), params,
                         strict=True):
        np.testing.assert_allclose(got, want)


def test_n_init_must_be_positive():
    with pytest.raises(hmmfast.ParameterError, match="n_init must be an integer >= 1"):
        hmmfast.CategoricalHMM(2, n_init=0).fit([0, 1, 0])


def test_interrupt_between_iterations_restores_parameters():
    class Interrupted(hmmfast.CategoricalHMM):
        calls = 0

        def _do_mstep(self, stats):
            Interrupted.calls += 1
            if Interrupted.calls == 3:
                raise KeyboardInterrupt
            super()._do_mstep(stats)

    params = ([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    model = Interrupted(2, n_iter=10, tol=-np.inf, init_params="")
    model.startprob_, model.transmat_, model.emissionprob_ = params
    monitor = model.monitor_
    with pytest.raises(KeyboardInterrupt):
        model.fit(np.array([0, 1, 2, 0, 1, 0, 1, 0, 1, 0]))
    for got, want in zip((model.startprob_, model.transmat_, model.emissionprob_), params,
                         strict=True):
        np.testing.assert_allclose(got, want)
    assert model.monitor_ is monitor
    fresh = Interrupted(2, n_iter=10, tol=-np.inf, random_state=0)
    Interrupted.calls = 0
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(np.array([0, 1, 2, 0, 1, 0, 1, 0, 1, 0]))
    assert not hasattr(fresh, "startprob_") and fresh.n_features is None


def test_impossible_training_sequence_names_it():
    params = ([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]])
    model = model_with(params)
    with pytest.raises(hmmfast.ImpossibleSequenceError, match="sequence 1 .*EM cannot use it"):
        model.fit(np.array([0, 0, 0, 1]), [2, 2])
    model.fit(np.array([0, 0, 0, 1]), [2, 2], sample_weight=[1.0, 0.0])  # left out: fine


# ------------------------------------------------------------------ hmmlearn's recipe


class PoissonEmissions:
    """A custom emission written the way hmmlearn's documentation shows (overriding its
    extension points), mixed into hmmlearn's BaseHMM and into hmmfast's."""

    def _init(self, X, lengths=None):
        super()._init(X, lengths)
        if "l" in self.init_params or not hasattr(self, "lambdas_"):
            self.lambdas_ = np.linspace(0.5, 4.0, self.n_components)

    def _check(self):
        super()._check()
        assert np.all(np.asarray(self.lambdas_) > 0)

    def _compute_log_likelihood(self, X):
        from scipy.stats import poisson

        return poisson.logpmf(np.asarray(X)[:, :1], self.lambdas_[None, :])

    def _initialize_sufficient_statistics(self):
        stats = super()._initialize_sufficient_statistics()
        stats["post"] = np.zeros(self.n_components)
        stats["obs"] = np.zeros(self.n_components)
        return stats

    def _accumulate_sufficient_statistics(self, stats, X, lattice, posteriors, fwdlattice,
                                          bwdlattice):
        super()._accumulate_sufficient_statistics(stats, X, lattice, posteriors, fwdlattice,
                                                  bwdlattice)
        stats["post"] += posteriors.sum(axis=0)
        stats["obs"] += posteriors.T @ np.asarray(X)[:, 0]

    def _do_mstep(self, stats):
        super()._do_mstep(stats)
        if "l" in self.params:
            self.lambdas_ = stats["obs"] / stats["post"]

    def _get_n_fit_scalars_per_param(self):
        return {"s": self.n_components - 1, "t": self.n_components * (self.n_components - 1),
                "l": self.n_components}


@needs_hmmlearn
@pytest.mark.parametrize("implementation", ["scaling", "log"])
def test_hmmlearn_custom_emission_recipe_trains_unchanged(implementation):
    from hmmlearn import base

    class Theirs(PoissonEmissions, base.BaseHMM):
        pass

    class Ours(PoissonEmissions, hmmfast.BaseHMM):
        pass

    rng = np.random.default_rng(5)
    states = np.repeat(rng.integers(0, 3, 40), 10)
    X = rng.poisson(np.array([0.7, 2.0, 5.0])[states])[:, None]
    lengths = [150, 250]
    models = []
    for cls in (Theirs, Ours):
        m = cls(3, n_iter=6, tol=-np.inf, init_params="l", params="stl",
                implementation=implementation)
        m.startprob_ = np.full(3, 1 / 3)
        m.transmat_ = np.full((3, 3), 0.1) + np.eye(3) * 0.7
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models.append(m.fit(X, lengths))
    theirs, ours = models
    for name in ("startprob_", "transmat_", "lambdas_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6,
                                   err_msg=name)
    np.testing.assert_allclose(ours.score(X, lengths), theirs.score(X, lengths), rtol=1e-9)
    assert ours.bic(X, lengths) == pytest.approx(theirs.bic(X, lengths), rel=1e-9)


def test_hooks_get_everything_as_arguments():
    """The generic E-step hands hmmlearn's hooks what they need as arguments: the model
    carries no per-sequence state while ``_accumulate_sufficient_statistics`` runs, and
    the chain's statistics are counted once (the sequences' start posteriors, as
    hmmlearn's base hook adds them)."""
    seen = []

    class Recording(PoissonEmissions, hmmfast.BaseHMM):
        def _accumulate_sufficient_statistics(self, stats, X, lattice, posteriors,
                                              fwdlattice, bwdlattice):
            seen.append(("hook", frozenset(vars(self)), posteriors[0].copy()))
            super()._accumulate_sufficient_statistics(stats, X, lattice, posteriors,
                                                      fwdlattice, bwdlattice)

        def _do_mstep(self, stats):
            seen.append(("mstep", frozenset(vars(self)), stats["start"].copy()))
            assert stats["nobs"] == 2
            super()._do_mstep(stats)

    rng = np.random.default_rng(6)
    X = rng.poisson(2.0, size=(60, 1))
    model = Recording(2, n_iter=1, tol=-np.inf, init_params="l", params="stl")
    model.startprob_, model.transmat_ = np.full(2, 0.5), np.full((2, 2), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, [25, 35], sample_weight=[1.0, 3.0])
    (_, first, post_a), (_, second, post_b), (step, at_mstep, start) = seen
    assert step == "mstep" and first == second
    assert not first - at_mstep  # nothing set for the hooks alone
    np.testing.assert_allclose(start, post_a + post_b, rtol=1e-12)
