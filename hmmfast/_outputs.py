"""Writing a file safely: atomically onto regular files, in place onto anything else.

:class:`Output` opens its target *before* the work that produces the bytes, so a path
that cannot be written fails at once (a fit does not run for an hour and then lose the
model), and commits after it:

- a **regular file** (or a new path): a temporary file ``.hmmfast-<name>.<random>.tmp``
  is created at open, in the directory of the final file -- symlinks followed, so a
  link keeps pointing at the replaced file -- then written, flushed, fsynced, given the
  mode a plain ``open`` would give (the existing file's, else 0o666 minus the umask) and
  renamed onto the final file, and the directory fsynced. Until the rename the previous
  file is untouched; on any exception (SIGINT, SIGTERM under the command line) the
  temporary file is removed. Temporary files of ours older than a day, left by a
  ``kill -9``, are removed from the directory when a new one is created there (at most
  once a minute per directory).
- **anything else** (a character device such as ``/dev/null`` or ``/dev/full``, a FIFO,
  ``/dev/fd/N`` from a shell's ``>(...)``, a socket): opened once, for writing, and
  written in place; never replaced.

Errors are OSErrors naming the target path (never the temporary file), with the
operating system's reason: "model.npz: No space left on device".
"""

import contextlib
import errno
import os
import stat
import tempfile
import time

TEMP_PREFIX = ".hmmfast-"
TEMP_SUFFIX = ".tmp"
STALE_SECONDS = 24 * 3600   # a temporary file older than this is a crash's leftover
SWEEP_EVERY = 60.0          # seconds between two sweeps of one directory
_last_sweep: dict[str, float] = {}  # directory -> time.monotonic() of its last sweep


class Output:
    """A file being written: opened at construction, committed or aborted after.

    Parameters
    ----------
    path : str or os.PathLike
        The target, written exactly as given (no extension appended).

    Use as a context manager: ``with Output(path) as f: f.write(...)`` commits when the
    block ends normally and aborts (removes the temporary file) when it raises.
    """

    def __init__(self, path):
        self.path = os.fsdecode(os.fspath(path))
        self.file = None
        self._tmp = None      # the temporary file (regular targets)
        self._final = None    # the file the rename replaces (symlinks resolved)
        self._mode = None
        self._open()

    # ------------------------------------------------------------------ opening

    def _open(self):
        try:
            st = os.stat(self.path)  # follows symlinks
        except FileNotFoundError:
            st = None
        except OSError as exc:  # a parent that is a file, a loop of links, no permission
            raise self._error(exc) from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", self.path)
        if st is not None and not stat.S_ISREG(st.st_mode):
            try:
                self.file = open(self.path, "wb")
            except OSError as exc:
                raise self._error(exc) from None
            return
        final = os.path.realpath(self.path)
        directory = os.path.dirname(final)
        sweep(directory)
        try:
            fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + os.path.basename(final)[:60] + ".",
                                       suffix=TEMP_SUFFIX, dir=directory)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, f"directory {directory} does not exist",
                                    self.path) from None
        except OSError as exc:  # names the temporary file it tried
            raise self._error(exc, always=True) from None
        self._tmp, self._final = tmp, final
        self._mode = st.st_mode & 0o7777 if st is not None else new_file_mode()
        self.file = open(fd, "wb")

    # ------------------------------------------------------------------ closing

    def commit(self):
        """Flush and close; for a regular target, fsync and rename into place."""
        f, self.file = self.file, None
        if f is None:
            return
        try:
            try:
                f.flush()
                if self._tmp is not None:
                    os.fsync(f.fileno())
                    os.fchmod(f.fileno(), self._mode)
            finally:
                f.close()
            if self._tmp is not None:
                os.replace(self._tmp, self._final)
                self._tmp = None
        except BaseException as exc:
            self._remove_tmp()
            if isinstance(exc, OSError):
                raise self._error(exc) from None
            raise
        if self._final is not None:
            fsync_directory(os.path.dirname(self._final))

    def abort(self):
        """Close and remove the temporary file (the target is left as it was)."""
        f, self.file = self.file, None
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()
        self._remove_tmp()

    def _remove_tmp(self):
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            self._tmp = None

    def __enter__(self):
        return self.file

    def __exit__(self, kind, exc, tb):
        if exc is None:
            self.commit()
            return False
        self.abort()
        if isinstance(exc, OSError) and exc.filename is None \
                and not isinstance(exc, BrokenPipeError):
            raise self._error(exc) from None  # a write to this file failed
        return False

    def _error(self, exc, always=False):
        """``exc`` as an OSError naming the target: a write error names no file, a rename
        names the temporary file. An error about another file (unless ``always``), and a
        closed pipe (BrokenPipeError), stay as they are."""
        if isinstance(exc, BrokenPipeError) or (
                not always and exc.filename not in (None, self._tmp)):
            return exc
        reason = exc.strerror or str(exc) or type(exc).__name__
        return OSError(exc.errno, reason, self.path)  # errno picks the subclass


def new_file_mode():
    """The mode a plain open() gives a new file: 0o666 minus the umask."""
    try:
        with open("/proc/self/status") as status:  # Linux: the umask without changing it
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it (not thread-safe, brief)
    os.umask(mask)
    return 0o666 & ~mask


def sweep(directory, now=None):
    """Remove our temporary files older than STALE_SECONDS from ``directory``: regular
    files named ``.hmmfast-*.tmp``, owned by this user. Errors are ignored."""
    clock = time.monotonic()
    last = _last_sweep.get(directory)
    if last is not None and clock - last < SWEEP_EVERY:
        return
    _last_sweep[directory] = clock
    now = time.time() if now is None else now
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
                    continue
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    if (stat.S_ISREG(st.st_mode) and (uid is None or st.st_uid == uid)
                            and now - st.st_mtime > STALE_SECONDS):
                        os.unlink(entry.path)
    except OSError:
        pass


def fsync_directory(directory):
    """Make a rename durable (POSIX); a file system that cannot fsync a directory is
    skipped, as is Windows."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
