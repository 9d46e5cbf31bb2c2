"""EmissionDriftCheck for every family (issue 24): categorical emission rows from
posterior-weighted counts, frame shares and variances.

Oracles: posterior-weighted counts from ``predict_proba`` of each session; expected frame
shares from the chain's marginals pi A^t computed by plain matrix powers; traffic sampled
from the model itself must not be flagged (five seeds), drifted traffic must be.
"""

import json

import numpy as np
import pytest

import hmmfast
from hmmfast.monitor import EmissionDriftCheck


def categorical(seed=0, n=3, m=6):
    rng = np.random.default_rng(seed)
    model = hmmfast.CategoricalHMM(n)
    model.startprob_ = rng.dirichlet(np.ones(n))
    model.transmat_ = rng.dirichlet(np.ones(n), size=n) * 0.3 + np.eye(n) * 0.7
    model.emissionprob_ = rng.dirichlet(np.full(m, 2.0), size=n)
    return model


def draw(model, count, rng, lo=10, hi=40):
    return [model.sample(int(rng.integers(lo, hi)), random_state=rng)[0]
            for _ in range(count)]


def gaussian(means=((0.0,), (4.0,), (8.0,)), variances=(1.0, 1.0, 1.0)):
    model = hmmfast.GaussianHMM(3, covariance_type="diag")
    model.startprob_ = [1 / 3] * 3
    model.transmat_ = np.full((3, 3), 0.05) + np.eye(3) * 0.85
    model.means_ = np.array(means)
    model.covars_ = np.array(variances)[:, None]
    return model


def test_categorical_counts_are_posterior_weighted():
    model = categorical()
    rng = np.random.default_rng(1)
    prod = [x[:, 0] for x in draw(model, 50, rng)]
    check = EmissionDriftCheck(model).update(prod)
    counts = np.zeros((3, 6))
    for x in prod:
        post = model.predict_proba(x)
        for t, o in enumerate(x):
            counts[:, o] += post[t]
    np.testing.assert_allclose(check._counts, counts, rtol=1e-10)
    q = counts / counts.sum(axis=1, keepdims=True)
    kl = np.sum(q * np.log(q / model.emissionprob_), axis=1)
    np.testing.assert_allclose(check.divergence_, kl, rtol=1e-9)
    json.dumps(check.state())


@pytest.mark.parametrize("seed", range(5))
def test_categorical_traffic_sampled_from_the_model_is_not_flagged(seed):
    model = categorical(seed)
    rng = np.random.default_rng(100 + seed)
    check = EmissionDriftCheck(model).update([x[:, 0] for x in draw(model, 400, rng)])
    assert check.flagged_states.size == 0, (check.divergence_, check.frame_ratio_)


def test_a_drifted_categorical_emission_row_is_flagged():
    model = categorical(7)
    drifted = categorical(7)
    em = model.emissionprob_.copy()
    rare = int(np.argmin(em.max(axis=0)))  # a page no state emits often
    em[1] = em[1] * 0.7 + np.eye(6)[rare] * 0.3  # state 1 sends 30 % of its mass to it
    drifted.emissionprob_ = em
    rng = np.random.default_rng(8)
    check = EmissionDriftCheck(model).update([x[:, 0] for x in draw(drifted, 400, rng)])
    assert 1 in check.flagged_emission.nonzero()[0]
    assert check.flagged[1, 0] and 1 in check.flagged_states
    assert check.divergence_[1] == check.divergence_.max()


def test_expected_frame_shares_follow_the_chain():
    model = categorical(9)
    rng = np.random.default_rng(10)
    prod = [x[:, 0] for x in draw(model, 60, rng)]
    check = EmissionDriftCheck(model).update(prod)
    expected = np.zeros(3)
    for x in prod:
        marg = model.startprob_.copy()
        for _ in range(len(x)):
            expected += marg
            marg = marg @ model.transmat_
    post = np.concatenate([model.predict_proba(x) for x in prod]).sum(axis=0)
    np.testing.assert_allclose(check.frame_ratio_, post / expected, rtol=1e-9)


def test_gaussian_state_drifting_toward_its_neighbour_loses_its_frames():
    model = gaussian()
    moved = gaussian(means=((0.0,), (7.5,), (8.0,)))  # state 1 drifts onto state 2
    rng = np.random.default_rng(11)
    prod = draw(moved, 200, rng)
    check = EmissionDriftCheck(model).update(prod)
    assert check.frame_ratio_[1] < 0.5 and check.flagged_frames[1]
    assert 1 in check.flagged_states
    same = EmissionDriftCheck(model).update(draw(model, 200, rng))
    assert same.flagged_states.size == 0
    assert np.all(np.abs(same.frame_ratio_ - 1) < 0.15)


@pytest.mark.parametrize("family", ["gaussian", "gmm", "poisson"])
def test_variance_change_is_flagged_and_model_traffic_is_not(family):
    rng = np.random.default_rng(12)
    if family == "gaussian":
        model = gaussian()
        prod = draw(gaussian(variances=(3.0, 1.0, 1.0)), 200, rng)
    elif family == "gmm":
        model = hmmfast.GMMHMM(2, n_mix=2, covariance_type="diag")
        model.startprob_ = [0.5, 0.5]
        model.transmat_ = [[0.9, 0.1], [0.1, 0.9]]
        model.weights_ = [[0.5, 0.5], [0.5, 0.5]]
        model.means_ = [[[-1.0], [1.0]], [[20.0], [22.0]]]
        model.covars_ = [[[1.0], [1.0]], [[1.0], [1.0]]]
        wide = hmmfast.GMMHMM(2, n_mix=2, covariance_type="diag")
        wide.startprob_, wide.transmat_ = model.startprob_, model.transmat_
        wide.weights_, wide.means_ = model.weights_, model.means_
        wide.covars_ = [[[5.0], [5.0]], [[1.0], [1.0]]]  # state 0: variance 2 -> 6
        prod = draw(wide, 200, rng)
    else:
        model = hmmfast.PoissonHMM(2)
        model.startprob_ = [0.5, 0.5]
        model.transmat_ = [[0.9, 0.1], [0.1, 0.9]]
        model.lambdas_ = [[3.0], [40.0]]
        # state 0 overdispersed: negative binomial with mean 3, variance 9
        prod = []
        for x, states in (model.sample(int(rng.integers(10, 40)), random_state=rng)
                          for _ in range(200)):
            x = x.copy()
            k = states == 0
            x[k, 0] = rng.negative_binomial(1.5, 1.5 / 4.5, size=int(k.sum()))
            prod.append(x)
    check = EmissionDriftCheck(model).update(prod)
    assert check.flagged_variance[0, 0], check.variance_ratio_
    assert 0 in check.flagged_states
    same = EmissionDriftCheck(model).update(draw(model, 200, rng))
    assert same.flagged_states.size == 0, (same.variance_ratio_, same.frame_ratio_)
    np.testing.assert_allclose(same.variance_ratio_, 1.0, atol=0.25)


def test_fit_baseline_and_bad_arguments():
    model = gaussian()
    rng = np.random.default_rng(13)
    train = draw(model, 100, rng)
    check = EmissionDriftCheck(model).fit(train)
    post = np.concatenate([model.predict_proba(x) for x in train]).sum(axis=0)
    np.testing.assert_allclose(check.baseline_share_, post / post.sum(), rtol=1e-9)
    check.update(draw(model, 100, rng))
    assert check.flagged_states.size == 0
    with pytest.raises(hmmfast.HMMInputError, match="share_ratio"):
        EmissionDriftCheck(model, share_ratio=1.0)
    with pytest.raises(hmmfast.ParameterError, match="alpha"):
        EmissionDriftCheck(model, alpha=2.0)
