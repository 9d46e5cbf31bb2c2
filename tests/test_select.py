"""hmmfast.select and ``hmmfast select``: the criteria from their formulas (free
parameters counted by hand), held-out log-likelihood from a fold loop written here, the
true number of states found on separated data."""

import json
import math
import warnings

import numpy as np
import pytest

import hmmfast
from hmmfast import HMMInputError, HMMTypeError, ParameterError
from hmmfast._cli import main

D = 2


@pytest.fixture(scope="module")
def data():
    truth = hmmfast.GaussianHMM(3, "diag")
    truth.startprob_ = [1 / 3] * 3
    truth.transmat_ = [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]]
    truth.means_ = [[0, 0], [5, 0], [0, 5]]
    truth.covars_ = np.ones((3, D))
    rng = np.random.default_rng(0)
    X = np.concatenate([truth.sample(60, random_state=rng)[0] for _ in range(15)])
    return X, [60] * 15


def make(n):
    return hmmfast.GaussianHMM(n, "diag", n_iter=100, random_state=0, n_init=2)


def free_parameters(n):
    return (n - 1) + n * (n - 1) + n * D + n * D  # start, transitions, means, variances


@pytest.mark.parametrize("criterion", ["bic", "aic", "aicc"])
def test_criteria_from_their_formulas(data, criterion):
    X, lengths = data
    result = hmmfast.select(make, X, lengths, range(1, 5), criterion)
    T = len(X)
    for row in result.table:
        n, L = row["n_components"], row["log_likelihood"]
        k = free_parameters(n)
        assert row["n_parameters"] == k
        assert L == pytest.approx(result.models[n].score(X, lengths), rel=1e-12)
        want = {"bic": -2 * L + k * math.log(T), "aic": -2 * L + 2 * k,
                "aicc": -2 * L + 2 * k + 2 * k * (k + 1) / (T - k - 1)}[criterion]
        assert row[criterion] == pytest.approx(want, rel=1e-12)
    assert result.best == 3
    assert result.best_model is result.models[3]
    assert set(result.table[0]) == {"n_components", "log_likelihood", "n_parameters",
                                    "converged", criterion}


def test_cross_validation_equals_a_fold_loop(data):
    X, lengths = data
    result = hmmfast.select(make, X, lengths, [2, 3], "cv", folds=3, random_state=7)
    order = np.random.RandomState(7).permutation(len(lengths))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    rows = [np.arange(offsets[s], offsets[s + 1]) for s in range(len(lengths))]
    for row in result.table:
        total = 0.0
        for k in range(3):
            test = set(order[k::3].tolist())
            train = [s for s in range(len(lengths)) if s not in test]
            model = make(row["n_components"])
            model.fit(X[np.concatenate([rows[s] for s in train])], [lengths[s] for s in train])
            test = sorted(test)
            total += model.score(X[np.concatenate([rows[s] for s in test])],
                                 [lengths[s] for s in test])
        assert row["cv"] == pytest.approx(total, rel=1e-9)
    assert result.best == 3


def test_aicc_infinite_without_enough_frames():
    X = np.random.default_rng(1).normal(size=(12, D))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        result = hmmfast.select(make, X, None, [1, 2], "aicc")
    assert math.isfinite(result.table[0]["aicc"])  # k = 4, T = 12
    assert result.table[1]["aicc"] == math.inf  # k = 11 >= T - 1
    assert result.best == 1


def test_categorical_folds_know_every_symbol():
    """A symbol only in one fold's test part must not be out of range for its model."""
    rng = np.random.default_rng(2)
    seqs = [rng.integers(0, 3, 30) for _ in range(6)]
    seqs[4][5] = 3  # the only 3
    X, lengths = np.concatenate(seqs), [30] * 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hmmfast.ConvergenceWarning)
        result = hmmfast.select(lambda n: hmmfast.CategoricalHMM(n, random_state=0), X,
                                lengths, [1, 2], "cv", folds=3)
    assert all(row["cv"] == -math.inf for row in result.table)  # P(3) = 0 once fitted


@pytest.mark.parametrize("kw, error, match", [
    ({"criterion": "hic"}, ParameterError, "criterion must be one of"),
    ({"n_components": []}, ParameterError, "n_components is empty"),
    ({"n_components": [2, 2]}, ParameterError, "repeats"),
    ({"n_components": [0]}, ParameterError, "n_components must be an integer >= 1"),
    ({"criterion": "cv", "folds": 20}, HMMInputError, "needs at least 20 sequences"),
    ({"criterion": "cv", "folds": 1}, ParameterError, "folds must be an integer >= 2"),
    ({"make_model": lambda n: hmmfast.GaussianHMM(n + 1)}, ParameterError,
     r"returned a model with n_components=3; expected 2"),
    ({"make_model": lambda n: "model"}, HMMTypeError, "must return an hmmfast model"),
    ({"make_model": 3}, HMMTypeError, "make_model must be callable"),
])
def test_bad_arguments(data, kw, error, match):
    X, lengths = data
    args = {"make_model": make, "n_components": [2], "criterion": "bic", **kw}
    with pytest.raises(error, match=match):
        hmmfast.select(args.pop("make_model"), X, lengths, **args)


def test_plot(data, tmp_path):
    pytest.importorskip("matplotlib")
    X, lengths = data
    result = hmmfast.select(make, X, lengths, [1, 2, 3], "bic")
    fig = result.plot(path=tmp_path / "bic.png")
    assert (tmp_path / "bic.png").stat().st_size > 1000
    line = fig.axes[0].lines[0]
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(line.get_ydata(), [r["bic"] for r in result.table])
    assert "*" in str(result).splitlines()[3]  # the best row, n_components = 3


def test_command_line(data, tmp_path, capsys):
    X, lengths = data
    path = tmp_path / "frames.npz"
    np.savez(path, X=X, lengths=np.array(lengths))
    best = tmp_path / "best.npz"
    assert main(["select", str(path), "--family", "gaussian", "--states", "1-4", "--seed",
                 "0", "--n-init", "2", "--json", "-o", str(best), "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    result = hmmfast.select(make, X, lengths, range(1, 5), "bic")
    assert printed["best"] == result.best == 3
    for got, want in zip(printed["table"], result.table, strict=True):
        assert got["bic"] == pytest.approx(want["bic"], rel=1e-9)
    assert hmmfast.load(best).fingerprint == result.best_model.fingerprint
    assert hmmfast.read_header(best)["metadata"]["selected_by"] == "bic"
    assert main(["select", str(path), "--family", "gaussian", "--states", "2,3",
                 "--criterion", "cv", "--folds", "3"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[0].split() == ["n_components", "log_likelihood",
                                               "n_parameters", "converged", "cv"]
    assert "best n_components=3 by cv" in out.err
    with pytest.raises(SystemExit) as stop:
        main(["select", str(path), "--states", "0-2"])
    assert stop.value.code == 2
