"""Model and data builders shared by the tests, and marks for optional packages.

One place builds each kind of model, so every test file builds it the same way. Random
parameters come from ``hmm_oracles.random_model`` (no hmmfast code); the builders only put
them into a model. Importable as a plain module: pytest puts tests/ on ``sys.path``
(``pythonpath = tests``), here and in the copy of tests/ that CI runs outside the tree.
"""

import importlib.util

import numpy as np
import pytest
from hmm_oracles import random_model

import hmmfast

# ------------------------------------------------------------------ optional packages


def needs(*modules):
    """A mark that skips one test when any of ``modules`` is not installed.

    The ``[test]`` extra installs all of them, so nothing skips in CI; a user without,
    say, hmmlearn still runs every test that does not compare with it.
    """
    missing = [m for m in modules if not _installed(m)]
    return pytest.mark.skipif(bool(missing),
                              reason=f"needs {', '.join(missing)} (part of the [test] extra)")


def _installed(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing or broken
        return False


needs_hmmlearn = needs("hmmlearn")


# ------------------------------------------------------------------ chains


def left_to_right(n, stay=0.8, skip=0.0):
    """(startprob, transmat) starting in state 0: each state stays with ``stay`` (a number
    or one per state), moves on by one with the rest, or by two with ``skip``; the
    last state is absorbing."""
    stay = np.broadcast_to(np.asarray(stay, dtype=float), (n,))
    transmat = np.zeros((n, n))
    for i in range(n):
        if i + 2 < n:
            transmat[i, i], transmat[i, i + 1] = stay[i], 1 - stay[i] - skip
            transmat[i, i + 2] = skip
        elif i + 1 < n:
            transmat[i, i], transmat[i, i + 1] = stay[i], 1 - stay[i]
        else:
            transmat[i, i] = 1.0
    return np.eye(1, n)[0], transmat


def sparse_chain(rng, n, per_row=3):
    """(startprob, transmat): ``per_row`` successors per state at most (self-loop
    included), a quarter of the states possible at the start."""
    transmat = np.zeros((n, n))
    for i in range(n):
        succ = np.unique(np.concatenate([[i], rng.choice(n, per_row - 1)]))
        transmat[i, succ] = rng.dirichlet(np.ones(len(succ)))
    start = np.zeros(n)
    start[rng.choice(n, max(1, n // 4), replace=False)] = 1.0
    return start / start.sum(), transmat


# ------------------------------------------------------------------ models


def categorical(startprob, transmat, emissionprob, implementation="scaling", **kw):
    """A CategoricalHMM holding the given parameters (``kw``: constructor options)."""
    model = hmmfast.CategoricalHMM(len(startprob), implementation=implementation, **kw)
    model.startprob_ = startprob
    model.transmat_ = transmat
    model.emissionprob_ = emissionprob
    return model


def random_categorical(rng, n, m, zeros=False, concentration=1.0, stay=0.0, **kw):
    """A CategoricalHMM with random parameters (``hmm_oracles.random_model``).

    ``rng``: a seed or a Generator; ``concentration``: of the Dirichlet rows (below 1:
    peaked rows); ``stay``: weight moved onto the transition matrix's diagonal.
    """
    startprob, transmat, emissionprob = random_model(
        np.random.default_rng(rng), n, m, zeros=zeros, concentration=concentration)
    if stay:
        transmat = transmat * (1 - stay) + np.eye(n) * stay
    return categorical(startprob, transmat, emissionprob, **kw)


def random_covars(rng, covariance_type, n, d):
    """Random covariances in hmmlearn's compact form for ``covariance_type``."""
    if covariance_type == "spherical":
        return rng.uniform(0.5, 2.0, n)
    if covariance_type == "diag":
        return rng.uniform(0.5, 2.0, (n, d))
    mats = []
    for _ in range(n if covariance_type == "full" else 1):
        a = rng.normal(size=(d, d))
        mats.append(a @ a.T / d + np.eye(d) * 0.5)
    return np.array(mats) if covariance_type == "full" else mats[0]


def random_gaussian(rng, covariance_type="diag", n=3, d=4, offset=0.0, zeros=False, **kw):
    """A GaussianHMM with random parameters: a sticky chain (with ``zeros``, some
    off-diagonal transitions are structural zeros), means spread around ``offset``."""
    rng = np.random.default_rng(rng)
    model = hmmfast.GaussianHMM(n, covariance_type=covariance_type, **kw)
    model.startprob_ = rng.dirichlet(np.ones(n) * 3)
    transmat = rng.dirichlet(np.ones(n) * 3, size=n) * 0.5 + np.eye(n) * 0.5
    if zeros and n > 1:
        off = (rng.random((n, n)) < 0.3) & ~np.eye(n, dtype=bool)
        transmat[off] = 0.0
        transmat /= transmat.sum(axis=1, keepdims=True)
    model.transmat_ = transmat
    model.means_ = rng.normal(size=(n, d)) * 3 + offset
    model.covars_ = random_covars(rng, covariance_type, n, d)
    return model


# ------------------------------------------------------------------ data


def sessions(model, count, rng, low=5, high=30, flat=False):
    """``count`` sequences sampled from ``model``, lengths uniform in [low, high).

    ``rng``: a seed or a Generator (drawn from, so successive calls differ); ``flat``:
    1-D arrays of symbols instead of (T, 1) columns.
    """
    rng = np.random.default_rng(rng)
    out = [model.sample(int(rng.integers(low, high)), random_state=rng)[0]
           for _ in range(count)]
    return [x[:, 0] for x in out] if flat else out
