"""Figures for people who would rather look than read: score histograms with the two
thresholds, a Viterbi state strip, occupancy bars.

matplotlib is an optional extra (``pip install "hmmfast[plot]"``), imported only when a
function here is called. Figures are built with ``matplotlib.figure.Figure`` (no pyplot,
no global state, no display needed); each function returns the figure and, given
``path``, also writes it (PNG by the suffix).
"""

import numpy as np

from .._errors import HMMInputError

_INSTALL = 'pip install "hmmfast[plot]"'


def _figure(**kw):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"hmmfast.monitor plots need matplotlib: {_INSTALL} "
                          f"({exc})") from exc
    return Figure(**kw)


def _axes(ax, figsize):
    """(figure, axes): the given axes (drawing into the caller's figure) or a new figure."""
    if ax is not None:
        return ax.figure, ax
    fig = _figure(figsize=figsize)
    return fig, fig.add_subplot()


def _save(fig, path, own):
    if own:
        fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_scores(scores, thresholds, path=None, *, bins=50, title=None, ax=None):
    """Histogram of session scores with the suspicious and anomalous thresholds.

    Parameters
    ----------
    scores : array-like of shape (n,), or dict {label: array-like}
        Scores (e.g. ``record.score``); a dict overlays one histogram per group (normal
        sessions, bots, ...). -inf scores (impossible sessions) are counted in the legend.
    thresholds : dict
        {"suspicious": float, "anomalous": float} (``detector.thresholds_``).
    path : str or path-like, optional
        Write the figure there.
    ax : matplotlib Axes, optional
        Draw into it (a panel of the caller's figure) instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = scores if isinstance(scores, dict) else {"sessions": scores}
    groups = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in groups.items()}
    finite = [v[np.isfinite(v)] for v in groups.values()]
    everything = np.concatenate(finite) if finite else np.empty(0)
    if everything.size == 0:
        raise HMMInputError("plot_scores needs at least one finite score")
    lo = min(everything.min(), thresholds["anomalous"])
    hi = max(everything.max(), thresholds["suspicious"])
    edges = np.linspace(lo, hi, bins + 1)
    own = ax is None
    fig, ax = _axes(ax, (7, 3.6))
    for (label, values), keep in zip(groups.items(), finite, strict=True):
        n_inf = int(np.sum(values == -np.inf))
        extra = f", {n_inf} impossible" if n_inf else ""
        ax.hist(keep, bins=edges, alpha=0.55, label=f"{label} ({values.size}{extra})")
    ax.axvline(thresholds["suspicious"], color="tab:orange", linestyle="--",
               label=f"suspicious < {thresholds['suspicious']:.3g}")
    ax.axvline(thresholds["anomalous"], color="tab:red", linestyle="-",
               label=f"anomalous < {thresholds['anomalous']:.3g}")
    ax.set_xlabel("score")
    ax.set_ylabel("sessions")
    ax.set_title(title or "session scores and thresholds")
    ax.legend(fontsize=8)
    return _save(fig, path, own)


def plot_state_strip(states, path=None, *, observations=None, n_states=None,
                     state_names=None, title=None, ax=None):
    """A session's Viterbi states as a coloured strip (and its observations above).

    Parameters
    ----------
    states : array-like of shape (T,), int
    observations : array-like of shape (T,), optional
        Symbols drawn as text on a second row (for short sessions) or a strip.
    n_states : int, optional
        Number of colours (default max(states) + 1).
    state_names : list of str, optional
        Legend labels per state.
    path, ax
        As for :func:`plot_scores`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    states = np.asarray(states).ravel()
    if states.size == 0:
        raise HMMInputError("plot_state_strip needs a non-empty state path")
    n = int(n_states if n_states is not None else states.max() + 1)
    rows = 1 if observations is None else 2
    own = ax is None
    fig, ax = _axes(ax, (min(12, 2 + 0.18 * states.size), 0.9 + 0.6 * rows))
    from matplotlib import colormaps

    cmap = colormaps["tab10"].resampled(max(n, 2))
    ax.imshow(states[None, :], aspect="auto", cmap=cmap, vmin=-0.5, vmax=max(n, 2) - 0.5,
              extent=(-0.5, states.size - 0.5, 0, 1))
    if observations is not None:
        obs = np.asarray(observations).ravel()
        if states.size <= 80:
            for t, o in enumerate(obs):
                ax.text(t, 0.5, str(o), ha="center", va="center", fontsize=7)
    ax.set_yticks([])
    ax.set_xlabel("step")
    handles = [_patch(cmap(j), state_names[j] if state_names else f"state {j}")
               for j in range(n)]
    ax.legend(handles=handles, fontsize=7, ncol=min(n, 6), loc="upper center",
              bbox_to_anchor=(0.5, -0.45), frameon=False)
    ax.set_title(title or "Viterbi states", fontsize=9)
    return _save(fig, path, own)


def _patch(color, label):
    from matplotlib.patches import Patch

    return Patch(color=color, label=label)


def plot_occupancy(occupancy, path=None, *, baseline=None, collapse_fraction=None,
                   state_names=None, title=None, ax=None):
    """Bars of the share of frames per decoded state.

    Parameters
    ----------
    occupancy : OccupancyMonitor or array-like of shape (n_components,)
        A monitor (its window's occupancy, baseline and collapse line are used) or shares.
    baseline : array-like of shape (n_components,), optional
        Training occupancy, drawn as outlines.
    collapse_fraction : float, optional
        Drawn as a horizontal line.
    path, ax
        As for :func:`plot_scores`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if hasattr(occupancy, "occupancy") and hasattr(occupancy, "collapse_fraction"):
        monitor = occupancy
        occupancy = monitor.occupancy
        baseline = monitor.baseline_occupancy_ if baseline is None else baseline
        collapse_fraction = (monitor.collapse_fraction if collapse_fraction is None
                             else collapse_fraction)
    occ = np.asarray(occupancy, dtype=np.float64).ravel()
    x = np.arange(occ.size)
    own = ax is None
    fig, ax = _axes(ax, (max(4, 0.7 * occ.size + 2), 3.2))
    ax.bar(x, occ, color="tab:blue", label="production")
    if baseline is not None:
        ax.bar(x, np.asarray(baseline, dtype=np.float64).ravel(), fill=False,
               edgecolor="black", linewidth=1.2, label="training")
    if collapse_fraction is not None:
        ax.axhline(collapse_fraction, color="tab:red", linestyle="--",
                   label=f"collapse > {collapse_fraction:g}")
    ax.set_xticks(x, state_names if state_names else [str(j) for j in x])
    ax.set_ylim(0, 1)
    ax.set_xlabel("state")
    ax.set_ylabel("share of frames")
    ax.set_title(title or "decoded-state occupancy")
    ax.legend(fontsize=8)
    return _save(fig, path, own)
