"""Model selection: how many hidden states? ``hmmfast.select`` and its result.

For every candidate number of states n, ``make_model(n)`` builds an unfitted model; it
is fitted to all the data, and ranked by one criterion (k = free parameters in
``params``, ``model._n_parameters()``; T = frames; L = the fitted log-likelihood):

    "bic"   -2 L + k log T                    (lower is better; the default)
    "aic"   -2 L + 2 k
    "aicc"  AIC + 2 k (k + 1) / (T - k - 1)   (small-sample AIC; inf when T <= k + 1)
    "cv"    held-out log-likelihood, summed over ``folds`` folds of whole sequences:
            each fold is scored by a model fitted on the other folds (higher is better)

BIC is the default because it is consistent (it picks the true number of states as the
data grow, where AIC keeps adding states); cross-validation needs no parameter count
and ranks models by what they predict, at ``folds`` extra fits per candidate. Sequences
are assigned to folds at random (``random_state``); a candidate fitted on fewer data can
give a held-out sequence probability 0 (a symbol it never saw): its score is then -inf,
which ranks it last.
"""

import math

import numpy as np

from . import _validation as V
from ._base import BaseHMM
from ._errors import HMMInputError, HMMTypeError, ParameterError

CRITERIA = ("bic", "aic", "aicc", "cv")
_LOWER_IS_BETTER = {"bic": True, "aic": True, "aicc": True, "cv": False}
_INSTALL = 'pip install "hmmfast[plot]"'


class SelectionResult:
    """What :func:`select` found.

    Attributes
    ----------
    best : int
        The chosen number of states.
    criterion : str
    table : list of dict
        One row per candidate, in the order tried: ``n_components``,
        ``log_likelihood`` (of the model fitted to all the data), ``n_parameters``
        (free scalars), ``converged``, and the criterion's value under its name
        ("bic", "aic", "aicc" or "cv", the held-out log-likelihood).
    models : dict
        {n_components: the model fitted to all the data}.
    """

    def __init__(self, criterion, table, models):
        self.criterion = criterion
        self.table = table
        self.models = models
        values = [row[criterion] for row in table]
        order = np.argmin(values) if _LOWER_IS_BETTER[criterion] else np.argmax(values)
        self.best = table[int(order)]["n_components"]

    @property
    def best_model(self):
        """The model with ``best`` states, fitted to all the data."""
        return self.models[self.best]

    @property
    def columns(self):
        return ["n_components", "log_likelihood", "n_parameters", "converged",
                self.criterion]

    def __str__(self):
        """The table as aligned text, the best row marked with '*'."""
        head = self.columns
        rows = [[str(r["n_components"]), f"{r['log_likelihood']:.6g}", str(r["n_parameters"]),
                 "yes" if r["converged"] else "no", f"{r[self.criterion]:.6g}"]
                for r in self.table]
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
        for r, row in zip(self.table, rows, strict=True):
            mark = " *" if r["n_components"] == self.best else ""
            lines.append("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) + mark)
        return "\n".join(lines)

    def __repr__(self):
        return (f"SelectionResult(criterion={self.criterion!r}, best={self.best}, "
                f"candidates={[r['n_components'] for r in self.table]})")

    def plot(self, ax=None, path=None):
        """The criterion against n_components, the best marked (needs matplotlib).

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Draw into it (default: a new figure).
        path : str, optional
            Also write the figure there (PNG by the suffix).

        Returns
        -------
        matplotlib.figure.Figure
        """
        try:
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise ImportError(f"SelectionResult.plot needs matplotlib: {_INSTALL} "
                              f"({exc})") from exc
        own = ax is None
        if own:
            fig = Figure(figsize=(5.0, 3.2))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        ns = [r["n_components"] for r in self.table]
        values = [r[self.criterion] for r in self.table]
        ax.plot(ns, values, marker="o")
        best = ns.index(self.best)
        ax.plot([self.best], [values[best]], marker="*", markersize=14, color="C3",
                label=f"best: {self.best} states")
        ax.set_xlabel("n_components")
        ax.set_ylabel({"cv": "held-out log-likelihood"}.get(self.criterion,
                                                             self.criterion.upper()))
        ax.set_xticks(ns)
        ax.legend()
        if own:
            fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig


def _offsets(X, lengths):
    """Sequence boundaries (n_seq + 1,) of X's rows."""
    if not hasattr(X, "__len__"):
        raise HMMTypeError(f"X must be an array of observations, got {type(X).__name__}")
    n = len(X)
    return np.array([0, n], dtype=np.intp) if lengths is None else \
        V.lengths_to_offsets(lengths, n)


def _candidates(n_components):
    try:
        values = [V.check_n("n_components", n) for n in n_components]
    except TypeError:
        raise HMMTypeError(f"n_components must be an iterable of state counts, got "
                           f"{n_components!r}") from None
    if not values:
        raise ParameterError("n_components is empty: give at least one candidate")
    if len(set(values)) != len(values):
        raise ParameterError(f"n_components repeats a candidate: {values}")
    return values


def _new_model(make_model, n):
    model = make_model(n)
    if not isinstance(model, BaseHMM):
        raise HMMTypeError(f"make_model({n}) must return an hmmfast model, got "
                           f"{type(model).__name__}")
    if model.n_components != n:
        raise ParameterError(f"make_model({n}) returned a model with n_components="
                             f"{model.n_components}; expected {n}")
    return model


def _folds(offsets, folds, random_state):
    n_seq = len(offsets) - 1
    folds = V.check_n("folds", folds, minimum=2)
    if n_seq < folds:
        raise HMMInputError(f"criterion='cv' with folds={folds} needs at least {folds} "
                            f"sequences (give lengths), got {n_seq}")
    rng = V.check_random_state(random_state)
    order = rng.permutation(n_seq)
    return [np.sort(order[k::folds]) for k in range(folds)]


def _take(X, offsets, seqs):
    parts = [np.arange(offsets[s], offsets[s + 1]) for s in seqs]
    return np.asarray(X)[np.concatenate(parts)], np.diff(offsets)[seqs]


def _held_out(make_model, n, X, offsets, fold_seqs, all_X):
    total = 0.0
    n_seq = len(offsets) - 1
    for test in fold_seqs:
        train = np.setdiff1d(np.arange(n_seq), test)
        model = _new_model(make_model, n)
        if model._observation_kind() == "symbols" and getattr(model, "n_features",
                                                              None) is None:
            model._check_and_set_n_features(all_X)  # every fold knows every symbol
        model.fit(*_take(X, offsets, train))
        total += model.score(*_take(X, offsets, test))
    return total


def select(make_model, X, lengths=None, n_components=range(1, 6), criterion="bic", folds=5,
           *, random_state=0):
    """Choose the number of hidden states by an information criterion or cross-validation.

    Parameters
    ----------
    make_model : callable
        ``make_model(n)`` returns a new, unfitted model with ``n`` states (any family,
        its options and ``random_state`` set as for a single fit; ``n_init`` restarts
        make each candidate's fit more reliable).
    X : array-like of shape (n_samples, n_features)
        Observations, as ``fit`` takes them.
    lengths : array-like of int, optional
        Sequence lengths; "cv" folds whole sequences, so it needs at least ``folds``.
    n_components : iterable of int
        The candidates (default 1 to 5).
    criterion : {"bic", "aic", "aicc", "cv"}
        See the module notes; BIC by default.
    folds : int >= 2
        Folds of "cv".
    random_state : int, RandomState or Generator
        Assignment of sequences to folds ("cv" only).

    Returns
    -------
    SelectionResult
        ``.best`` (n_components chosen), ``.table`` (one row per candidate),
        ``.models`` (each candidate fitted to all the data), ``.plot()``.
    """
    if criterion not in CRITERIA:
        raise ParameterError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if not callable(make_model):
        raise HMMTypeError(f"make_model must be callable (n -> model), got "
                           f"{type(make_model).__name__}")
    candidates = _candidates(n_components)
    offsets = _offsets(X, lengths)
    fold_seqs = _folds(offsets, folds, random_state) if criterion == "cv" else None
    table, models = [], {}
    for n in candidates:
        model = _new_model(make_model, n).fit(X, lengths)
        log_likelihood = model.score(X, lengths)
        k = model._n_parameters()
        row = {"n_components": n, "log_likelihood": float(log_likelihood),
               "n_parameters": int(k), "converged": bool(model.monitor_.converged)}
        if criterion == "bic":
            row["bic"] = float(model.bic(X, lengths))
        elif criterion == "aic":
            row["aic"] = float(model.aic(X, lengths))
        elif criterion == "aicc":
            frames = model._frames(model._cache or model._prepare(), X)[2]
            row["aicc"] = (float(model.aic(X, lengths)) + 2.0 * k * (k + 1) / (frames - k - 1)
                           if frames > k + 1 else math.inf)
        else:
            row["cv"] = float(_held_out(make_model, n, X, offsets, fold_seqs, X))
        table.append(row)
        models[n] = model
    return SelectionResult(criterion, table, models)
