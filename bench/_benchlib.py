"""Helpers the comparison benchmarks share: timing, peers, tables and charts."""

import time
from pathlib import Path

import numpy as np


def median_seconds(fn, repeats, warmup=1):
    """Median wall time of fn() over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def hmmlearn_or_none():
    """hmmlearn's hmm module, or None when the peer is not installed."""
    try:
        from hmmlearn import hmm
    except ImportError:
        return None
    return hmm


def write_table(lines, out, chart=None):
    """Print a markdown table; with ``out`` also write it (and ``chart(path)`` a PNG when
    matplotlib is installed)."""
    table = "\n".join(lines)
    print(table)
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(table + "\n")
        if chart is not None:
            try:
                import matplotlib

                matplotlib.use("Agg")
            except ImportError:
                return
            chart(path.with_suffix(".png"))


def bar_chart(path, labels, series, ylabel, log=True):
    """Grouped bars: ``series`` maps a legend name to one value per label."""
    import matplotlib.pyplot as plt

    x = np.arange(len(labels))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(labels)), 4))
    for k, (name, values) in enumerate(series.items()):
        ax.bar(x - 0.4 + width * (k + 0.5), values, width, label=name)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_xticks(x, labels, fontsize=8)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
