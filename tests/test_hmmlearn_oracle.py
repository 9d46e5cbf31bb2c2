"""Agreement with hmmlearn (an independent implementation) on random models."""

import numpy as np
import pytest
from hmm_oracles import random_model

hmmlearn_hmm = pytest.importorskip("hmmlearn.hmm")


def pair(rng, n, m, implementation, make_model, zeros=False):
    startprob, transmat, emissionprob = random_model(rng, n, m, zeros=zeros)
    ours = make_model(startprob, transmat, emissionprob, implementation)
    theirs = hmmlearn_hmm.CategoricalHMM(n_components=n, n_features=m, implementation="log")
    theirs.startprob_ = startprob
    theirs.transmat_ = transmat
    theirs.emissionprob_ = emissionprob
    return ours, theirs


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n,m", [(2, 3), (5, 10), (10, 50)])
def test_score_posteriors_viterbi_agree(seed, n, m, implementation, make_model):
    rng = np.random.default_rng(seed)
    ours, theirs = pair(rng, n, m, implementation, make_model)
    lengths = rng.integers(1, 120, size=5)
    X = rng.integers(0, m, size=(lengths.sum(), 1))
    np.testing.assert_allclose(ours.score(X, lengths), theirs.score(X, lengths), rtol=1e-9)
    ll, post = ours.score_samples(X, lengths)
    ll_h, post_h = theirs.score_samples(X, lengths)
    np.testing.assert_allclose(ll, ll_h, rtol=1e-9)
    np.testing.assert_allclose(post, post_h, rtol=1e-9, atol=1e-12)
    # compare Viterbi scores, not paths: hmmlearn breaks ties differently
    np.testing.assert_allclose(ours.decode(X, lengths)[0], theirs.decode(X, lengths)[0],
                               rtol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_structural_zeros_agree(seed, make_model):
    rng = np.random.default_rng(50 + seed)
    ours, theirs = pair(rng, 4, 6, "scaling", make_model, zeros=True)
    X, _ = ours.sample(300, random_state=seed)  # a sequence the model can produce
    np.testing.assert_allclose(ours.score(X), theirs.score(X), rtol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.decode(X)[0], theirs.decode(X)[0], rtol=1e-9)


def test_stationary_distribution_agrees(make_model):
    rng = np.random.default_rng(3)
    ours, theirs = pair(rng, 6, 3, "scaling", make_model)
    np.testing.assert_allclose(ours.get_stationary_distribution(),
                               theirs.get_stationary_distribution(), rtol=1e-9)
