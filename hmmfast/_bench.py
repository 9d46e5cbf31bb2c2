"""``hmmfast bench``: a built-in benchmark against hmmlearn, when it is installed.

A CategoricalHMM with N = 5 states and M = 10 symbols (a service session model), the
same parameters in both libraries. Rows:

- latency of one ``score`` and one ``decode`` call on a T = 100 sequence (median of
  per-call timings, microseconds);
- batch throughput, sequences per second: ``score_batch`` and ``decode_batch`` over
  10,000 sequences of T = 100 against hmmlearn's ``score``/``decode`` called per
  sequence (its batch calls loop over sequences in Python too).

Before timing, both libraries' log-likelihoods and Viterbi scores are checked to agree
(to 1e-9 relative), so the rows compare the same work. The full comparison scripts live
in the repository's ``bench/``; this one ships with the package so an installed
copy can be measured where it runs. hmmlearn is never imported by the library itself.
"""

import os
import platform
import sys
import time

import numpy as np

from . import CategoricalHMM, __version__

N_STATES, N_SYMBOLS, T = 5, 10, 100


def _median_us(fn, calls):
    for _ in range(min(50, calls)):
        fn()
    times = np.empty(calls)
    clock = time.perf_counter_ns
    for k in range(calls):
        t0 = clock()
        fn()
        times[k] = clock() - t0
    return float(np.median(times)) / 1e3


def _best_seconds(fn, repeats):
    fn()
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _models(seed=0):
    rng = np.random.default_rng(seed)
    start = rng.dirichlet(np.ones(N_STATES))
    trans = rng.dirichlet(np.ones(N_STATES), size=N_STATES)
    emit = rng.dirichlet(np.ones(N_SYMBOLS), size=N_STATES)
    ours = CategoricalHMM(N_STATES)
    ours.startprob_, ours.transmat_, ours.emissionprob_ = start, trans, emit
    try:
        from hmmlearn import hmm
    except ImportError:
        return ours, None
    peer = hmm.CategoricalHMM(N_STATES, n_features=N_SYMBOLS, implementation="scaling")
    peer.startprob_, peer.transmat_, peer.emissionprob_ = start, trans, emit
    return ours, peer


def _check_agreement(ours, peer, X):
    a, b = ours.score(X), peer.score(X)
    c, d = ours.decode(X)[0], peer.decode(X)[0]
    for name, x, y in (("score", a, b), ("Viterbi log-probability", c, d)):
        if not np.isclose(x, y, rtol=1e-9, atol=0):
            raise RuntimeError(f"hmmfast and hmmlearn disagree on the {name}: {x!r} vs {y!r}")


def run(quick=False, n_threads=None):
    """Measure; returns (rows, notes). A row: (operation, unit, ours, peer or None)."""
    from ._base import resolve_threads

    threads = resolve_threads(n_threads)
    ours, peer = _models()
    rng = np.random.default_rng(1)
    n_batch = 2_000 if quick else 10_000
    calls = 300 if quick else 3_000
    X = rng.integers(0, N_SYMBOLS, (T, 1))
    batch = [rng.integers(0, N_SYMBOLS, (T, 1)) for _ in range(n_batch)]
    if peer is not None:
        _check_agreement(ours, peer, X)
    rows = []
    for op in ("score", "decode"):
        mine = _median_us(lambda op=op: getattr(ours, op)(X), calls)
        theirs = None if peer is None else _median_us(lambda op=op: getattr(peer, op)(X),
                                                      calls // 3)
        rows.append((f"{op}, one sequence (T={T})", "µs per call", mine, theirs))
    repeats = 2 if quick else 5
    for op, ours_fn in (("score", lambda: ours.score_batch(batch, threads)),
                        ("decode", lambda: ours.decode_batch(batch, threads))):
        mine = n_batch / _best_seconds(ours_fn, repeats)
        theirs = None
        if peer is not None:
            sub = batch[: n_batch // 4]
            fn = getattr(peer, op)
            theirs = len(sub) / _best_seconds(lambda fn=fn, sub=sub: [fn(x) for x in sub], 1)
        rows.append((f"{op}, {n_batch:,} sequences (T={T}), {threads} thread"
                     f"{'s' if threads > 1 else ''}", "sequences per second", mine, theirs))
    notes = [
        f"hmmfast {__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs",
        f"CategoricalHMM N={N_STATES}, M={N_SYMBOLS}; "
        + ("hmmlearn " + _peer_version() + " (implementation='scaling'), per-sequence calls"
           if peer is not None else "hmmlearn not installed: no peer column"),
    ]
    return rows, notes


def _peer_version():
    try:
        from importlib.metadata import version

        return version("hmmlearn")
    except Exception:  # pragma: no cover - metadata missing
        return "?"


def _fmt(value, unit):
    if value is None:
        return "—"
    return f"{value:,.1f}" if unit.startswith("µs") else f"{value:,.0f}"


def table(rows, notes):
    """The markdown table (with notes) for ``run``'s results."""
    lines = ["| operation | unit | hmmfast | hmmlearn | hmmfast speed-up |",
             "|---|---|---:|---:|---:|"]
    for op, unit, mine, theirs in rows:
        if theirs is None:
            ratio = "—"
        else:
            ratio = theirs / mine if unit.startswith("µs") else mine / theirs
            ratio = f"{ratio:,.1f}x"
        lines.append(f"| {op} | {unit} | {_fmt(mine, unit)} | {_fmt(theirs, unit)} | {ratio} |")
    lines.append("")
    lines.extend(f"- {note}" for note in notes)
    return "\n".join(lines) + "\n"


def chart(rows, path):
    """Two panels, latency and throughput: hmmfast's bars beside hmmlearn's (when
    installed), each pair labelled with the speed-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for ax, unit, title in ((axes[0], "µs per call", "latency, one call (lower is better)"),
                            (axes[1], "sequences per second",
                             "batch throughput (higher is better)")):
        part = [r for r in rows if r[1] == unit]
        x = np.arange(len(part))
        ax.bar(x - 0.2, [r[2] for r in part], 0.4, label="hmmfast", color="#3b6ea5")
        if all(r[3] is not None for r in part):
            ax.bar(x + 0.2, [r[3] for r in part], 0.4, label="hmmlearn", color="#c8863b")
            for k, (_, _, mine, theirs) in enumerate(part):
                ratio = theirs / mine if unit.startswith("µs") else mine / theirs
                ax.annotate(f"{ratio:,.0f}x", (k, max(mine, theirs)), ha="center",
                            va="bottom", fontsize=9)
        ax.set_yscale("log")
        ax.set_xticks(x, [r[0].split(",")[0] for r in part])
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=9)
        ax.margins(y=0.25)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper right", fontsize=8)
    fig.suptitle(f"hmmfast {__version__}: CategoricalHMM N={N_STATES}, M={N_SYMBOLS}, "
                 f"T={T}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def main(out=None, png=None, quick=False, n_threads=None):
    """Run the benchmark, write the table and the chart.

    ``out``: a binary file for the markdown table (None: standard output); ``png``: a
    binary file, or a path, for the chart (None: no chart). The command line opens both
    before the benchmark runs (hmmfast._cli_commands.open_output), so an unwritable
    path fails at once.
    """
    if png is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError('--png needs matplotlib: pip install "hmmfast[plot]"') from None
    rows, notes = run(quick=quick, n_threads=n_threads)
    text = table(rows, notes)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write(text.encode("utf-8"))
    if png is not None:
        chart(rows, png)
    return 0
