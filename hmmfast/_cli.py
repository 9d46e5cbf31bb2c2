"""The ``hmmfast`` command line (also ``python -m hmmfast``).

``main(argv) -> int`` builds one argparse tree (hmmfast._cli_parser) and runs one
command: demo, fit, select, score, decode, detect, sample, info, bench, serve (the HTTP service
of the [serve] extra, whose own parser hmmfast.serve provides). Exit status: 0 success,
1 failure (a bad data or model file, an error from the library, an I/O error naming the
file, a failed check), 2 usage (bad or conflicting options), 130 interrupted (SIGINT,
Ctrl-C, also while Python is still importing hmmfast: hmmfast._cli_startup), 141 when
the reader of the output went away (``| head``), 143 terminated (SIGTERM, handled like
SIGINT: a partial output's temporary file is removed). Every expected error is one line
on stderr, ``hmmfast: error: ...``, without a traceback; an unexpected one (a bug) keeps
its traceback. The commands live in hmmfast._cli_fit, hmmfast._cli_select, hmmfast._cli_commands (score,
decode, detect), hmmfast._cli_sample, hmmfast._cli_info, the data readers in
hmmfast._cli_data, progress reports in hmmfast._cli_progress, the benchmark in
hmmfast._bench.
"""

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``hmmfast: error: ...`` and exit status 2."""

    def error(self, message):
        command = self.prog.split(maxsplit=1)
        hint = f"see '{self.prog} --help'" if len(command) > 1 else "see 'hmmfast --help'"
        sys.stderr.write(f"hmmfast: error: {message} ({hint})\n")
        sys.exit(2)


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt for SIGINT (exit 143)."""


def _raise_terminated(signum, frame):
    raise Terminated()


class _Interrupt:
    """SIGINT under ``main``: remembers that it came, then raises KeyboardInterrupt."""

    received = False

    def __call__(self, signum, frame):
        self.received = True
        raise KeyboardInterrupt


@contextlib.contextmanager
def signals():
    """SIGTERM raises Terminated (so temporary files are removed as on Ctrl-C), and SIGINT
    raises KeyboardInterrupt through an :class:`_Interrupt`, yielded, which remembers the
    signal: a compiled module being imported (SciPy's) can turn the KeyboardInterrupt into
    another error. Both handlers are restored after (the quiet start-up one, or Python's
    own when tests call main() in-process). Only in the main thread."""
    interrupt = _Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return
    from . import _cli_startup

    previous_int = signal.getsignal(signal.SIGINT)
    quiet_or_default = (_cli_startup.exit_130, signal.default_int_handler)
    if previous_int in quiet_or_default:
        signal.signal(signal.SIGINT, interrupt)
    previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if previous_int in quiet_or_default:
            signal.signal(signal.SIGINT, previous_int)


def serve(argv):
    """``hmmfast serve ...``: the options are parsed (and --help answered) without the
    [serve] extra; running the service needs it."""
    from ._serve_args import add_arguments

    parser = Parser(prog="hmmfast serve", usage="hmmfast serve MODEL_FILE [options]",
                    description="Serve a model file over HTTP (POST /v1/score, /v1/decode, "
                    "/v1/anomaly; GET /metrics; the Open Inference Protocol under /v2).",
                    epilog='Needs the [serve] extra: pip install "hmmfast[serve]" '
                           "(starlette, uvicorn, prometheus-client).")
    try:
        args = add_arguments(parser).parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already reported)
        return exc.code
    try:
        service = importlib.import_module("hmmfast.serve")
    except ImportError as exc:
        sys.stderr.write(f"hmmfast: error: {_one_line(exc)}\n")
        return 1
    return service.run_args(args)


def _one_line(exc):
    text = " ".join(str(exc).split()) if str(exc) else type(exc).__name__
    return text


def _os_error(exc):
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return _one_line(exc)


def run(args, argv):
    if args.command == "demo":
        return _demo(args)
    if args.command == "fit":
        from ._cli_fit import fit

        return fit(args, argv)
    if args.command in ("score", "decode", "detect"):
        from . import _cli_commands as C

        return C.apply(args, args.command)
    if args.command == "select":
        from ._cli_select import run as select

        return select(args)
    if args.command == "sample":
        from ._cli_sample import sample

        return sample(args)
    if args.command == "info":
        from ._cli_info import info

        return info(args)
    if args.command == "bench":
        from ._bench import main as bench
        from ._cli_commands import open_output

        with open_output(args.out, []) as out, \
                open_output(args.png, [], default_stdout=False) as png:
            return bench(out=out, png=png, quick=args.quick, n_threads=args.threads)
    raise AssertionError(args.command)


def _demo(args):
    if args.case == "clickstream":
        from ._cli_commands import open_output
        from ._demo_clickstream import run as clickstream, write_plots

        if args.plot is not None:
            try:
                import matplotlib.figure  # noqa: F401
            except ImportError as exc:
                raise MissingExtra(f"demo clickstream --plot draws with matplotlib, which "
                                   f"cannot be imported ({exc}): pip install "
                                   '"hmmfast[plot]" (or leave out --plot)') from None
        with open_output(args.plot, [], default_stdout=False) as png:
            result = clickstream(n_train=args.train, seed=0 if args.seed is None
                                 else args.seed, plot=None)
            if png is not None:
                write_plots(result, png)
                print(f"  figures written to {args.plot}")
        return 0
    from ._demo import run as demo

    demo(n_rolls=args.rolls, seed=7 if args.seed is None else args.seed)
    return 0


class MissingExtra(Exception):
    """An optional package the command needs is not installed (exit status 1)."""


def main(argv=None):
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    with signals() as interrupt:
        try:
            if argv[:1] == ["serve"]:
                return serve(argv[1:])
            return _main(argv)
        except KeyboardInterrupt:
            return 130
        except Terminated:
            return 143
        except BaseException:
            if interrupt.received:  # Ctrl-C, turned into another error on its way up
                return 130
            raise


def _main(argv):
    from ._cli_data import UsageError
    from ._cli_parser import build_parser

    args = build_parser().parse_args(argv)
    try:
        return run(args, argv)
    except BrokenPipeError:
        # the reader of stdout went away (| head): no message, and none at exit either
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except UsageError as exc:
        sys.stderr.write(f"hmmfast: error: {_one_line(exc)} (see 'hmmfast {args.command} "
                         "--help')\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"hmmfast: error: {_os_error(exc)}\n")
        return 1
    except (ValueError, MemoryError, MissingExtra) as exc:
        if isinstance(exc, MemoryError):
            exc = "out of memory" + (f" ({exc})" if str(exc) else "")
        sys.stderr.write(f"hmmfast: error: {_one_line(exc)}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
