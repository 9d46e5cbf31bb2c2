"""Which model files an admin call may load, and how it loads one.

An admin call (swap, A/B candidate) names a model file by path. The server may run as a
privileged user, so a path is checked before anything is opened:

- it is taken relative to the model directory (``--model-dir``, default: the startup
  model's directory) and resolved (symbolic links followed, ``..`` removed);
- the resolved path must lie inside the model directory and be a regular file (not a
  FIFO, a device or a directory: opening a FIFO blocks until a writer comes).

Every refusal, including a path that does not exist, is the same 403 with the same
message, so the answers do not tell which files exist outside (or inside) the directory.

Loads run in a pool of their own (``LOADERS`` threads, not the request threads) with a
timeout (``--load-timeout``): a load stuck on slow storage answers 504 and keeps at most
its thread; while ``LOADERS`` loads are unfinished, more are refused with 503.
"""

import asyncio
import concurrent.futures
import os
import stat
import threading

from ._errors import ServeError
from ._json import quote
from ._registry import load_version

#: Model loads that may run (or hang) at once.
LOADERS = 2


class ModelPaths:
    """The model directory and the loader of admin calls.

    Parameters
    ----------
    model_dir : str
        Directory the admin calls may load model files from.
    timeout : float
        Seconds a load may take.
    settings : Settings
    """

    def __init__(self, model_dir, timeout, settings):
        self.root = os.path.realpath(model_dir)
        self.timeout = timeout
        self.settings = settings
        self._pool = concurrent.futures.ThreadPoolExecutor(LOADERS, "hmmfast-load")
        self._lock = threading.Lock()
        self._running = 0

    def refused(self, path):
        return ServeError(403, "model_path_refused", f"model path {quote(path)} refused: an "
                          "admin call loads only regular files inside the model directory "
                          f"{self.root} (--model-dir), by a path relative to it or absolute")

    def resolve(self, path):
        """The real path of ``path`` if an admin call may load it, else a 403 (the same
        for a path outside the directory, missing, or not a regular file)."""
        full = os.path.realpath(os.path.join(self.root, path))
        inside = full == self.root or full.startswith(self.root.rstrip(os.sep) + os.sep)
        if not inside:
            raise self.refused(path)
        try:
            mode = os.stat(full).st_mode
        except (OSError, ValueError):
            raise self.refused(path) from None
        if not stat.S_ISREG(mode):
            raise self.refused(path)
        return full

    def load_now(self, path):
        """Load ``path`` (checked by :meth:`resolve`) in the calling thread."""
        return load_version(self.resolve(path), self.settings)

    async def load(self, path):
        """Load ``path`` (checked by :meth:`resolve`) in the loader pool, with the
        timeout; a file that does not load is a 422 naming what is wrong."""
        full = self.resolve(path)
        with self._lock:
            if self._running >= LOADERS:
                raise ServeError(503, "loader_busy", f"{self._running} model loads have not "
                                 "finished (slow storage?); try again later")
            self._running += 1
        future = self._pool.submit(load_version, full, self.settings)
        future.add_done_callback(self._done)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise ServeError(504, "load_timeout", f"loading {quote(path)} took more than "
                             f"{self.timeout:g} s (--load-timeout); the load is abandoned"
                             ) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ServeError(422, "model_file", f"cannot open model file {quote(path)}: "
                             f"{reason}"[:400]) from None
        except ValueError as exc:  # ModelFileError
            raise ServeError(422, "model_file", " ".join(str(exc).split())[:600]) from None

    def _done(self, _future):
        with self._lock:
            self._running -= 1

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
