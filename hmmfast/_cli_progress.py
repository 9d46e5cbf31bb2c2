"""Progress reports of the command line, on stderr.

Shown when stderr is a terminal (one line, redrawn in place) or with ``--progress``
(one line per report, for logs); never with ``--quiet``.

``fit`` reports through the model's own convergence monitor: the command gives the model
a :class:`ProgressMonitor` before fitting, and the EM loop, which builds each run's
monitor from the model's (same class, same attributes), calls its ``report`` once per
iteration with the objective. ``score`` and ``decode`` report sequences per second
through a :class:`Meter`, at most a few times a second.
"""

import sys
import time

from ._fit import ConvergenceMonitor


class Reporter:
    """Writes progress lines: redrawn in place on a terminal, else one per report."""

    def __init__(self, stream, enabled, tty):
        self.stream = stream
        self.enabled = enabled
        self.tty = tty
        self._width = 0

    @classmethod
    def for_options(cls, progress, quiet, stream=None, results_on_stdout=False):
        """Enabled with ``progress``, or when ``stream`` is a terminal (unless the results
        go to the same terminal: stdout); never with ``quiet``."""
        stream = sys.stderr if stream is None else stream
        tty = _isatty(stream)
        auto = tty and not (results_on_stdout and _isatty(sys.stdout))
        return cls(stream, (auto or progress) and not quiet, tty)

    def show(self, text):
        if not self.enabled:
            return
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self):
        """End a line redrawn in place (before any other output on stderr)."""
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class FitProgress:
    """Formats one line per EM iteration: run, iteration, log-likelihood, gain, time."""

    def __init__(self, reporter, n_iter, n_init):
        self.reporter = reporter
        self.n_iter = n_iter
        self.n_init = n_init
        self.run = 0
        self.started = time.perf_counter()

    def start_run(self):
        self.run += 1

    def iteration(self, k, objective, gain):
        if not self.reporter.enabled:
            return
        bar = ""
        if self.reporter.tty and self.n_iter:
            filled = min(20, round(20 * k / self.n_iter))
            bar = "[" + "#" * filled + "-" * (20 - filled) + "] "
        run = f"run {self.run}/{self.n_init}  " if self.n_init > 1 else ""
        gain_text = "" if gain != gain else f"  gain {gain:+.4g}"  # NaN at the first record
        self.reporter.show(
            f"hmmfast fit: {bar}{run}iteration {k:>{len(str(self.n_iter))}d}/{self.n_iter}  "
            f"log-likelihood {objective:.10g}{gain_text}  "
            f"{time.perf_counter() - self.started:.1f} s")


class ProgressMonitor(ConvergenceMonitor):
    """A ConvergenceMonitor that also reports each record to a :class:`FitProgress`."""

    def __init__(self, tol, n_iter, verbose, progress):
        super().__init__(tol, n_iter, verbose)
        self._progress = progress

    def _reset(self):
        super()._reset()
        self._progress.start_run()

    def report(self, objective):
        super().report(objective)
        self._progress.iteration(len(self.history) - 1, objective, self.gain)


class Meter:
    """Sequences per second for score and decode, reported at most every ``every`` s."""

    def __init__(self, reporter, command, total_bytes=None, every=0.5):
        self.reporter = reporter
        self.command = command
        self.total_bytes = total_bytes
        self.every = every
        self.started = self._last = time.perf_counter()
        self.sequences = 0
        self.shown = False

    def update(self, n_sequences, bytes_read=None, force=False):
        self.sequences += n_sequences
        now = time.perf_counter()
        if not self.reporter.enabled or (not force and now - self._last < self.every):
            return
        self._last = now
        self.shown = True
        rate = self.sequences / max(now - self.started, 1e-9)
        where = ""
        if self.total_bytes and bytes_read is not None:
            where = f", {min(100.0, 100.0 * bytes_read / self.total_bytes):.0f}% of the file"
        self.reporter.show(f"hmmfast {self.command}: {self.sequences:,} sequences, "
                           f"{rate:,.0f} per second{where}")

    def finish(self, bytes_read=None, always=False):
        """The final count (when a report was shown already, or ``always``)."""
        if self.reporter.enabled and (self.shown or always):
            self.update(0, bytes_read, force=True)
            self.reporter.done()
