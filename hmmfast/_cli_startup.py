"""Ctrl-C while the command line is still importing hmmfast: exit 130, no traceback.

``hmmfast ...`` and ``python -m hmmfast ...`` import the whole package (NumPy, SciPy,
the kernels: a second or more on a busy machine) before ``hmmfast._cli.main`` runs and
can catch KeyboardInterrupt; a Ctrl-C in that window used to print an import traceback
and kill the process by SIGINT. hmmfast/__init__.py imports this module first thing,
which calls :func:`install`:
when this process is the command line, SIGINT exits 130 at once until ``main`` puts
Python's KeyboardInterrupt back (nothing needs cleaning up before ``main``: no file is
open yet). In any other process (a library import) nothing changes.
"""

import os
import signal
import sys
import threading


def exit_130(signum, frame):
    """The SIGINT handler while the command line starts: exit as ``main`` would."""
    os._exit(130)


def is_command_line():
    """True in ``hmmfast ...`` (the console script) and ``python -m hmmfast[.serve] ...``."""
    argv = getattr(sys, "orig_argv", None) or []
    if "-m" in argv:
        target = argv[argv.index("-m") + 1:argv.index("-m") + 2]
        return target in (["hmmfast"], ["hmmfast.serve"])
    return bool(sys.argv) and os.path.basename(sys.argv[0]) == "hmmfast"


def install():
    """Make SIGINT exit 130 while a command line process imports hmmfast (only when
    SIGINT has Python's default handler, in the main thread)."""
    if (threading.current_thread() is threading.main_thread() and is_command_line()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        signal.signal(signal.SIGINT, exit_130)


install()
