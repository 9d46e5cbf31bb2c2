"""Durable state: what a restart restores (live version, held versions, the A/B split).

The state file ``<state dir>/hmmfast-serve-<model name>.json`` holds, as JSON::

    {"format": "hmmfast-serve-state", "format_version": 1, "model_name": "hmmfast",
     "saved_at": <unix time>, "startup": {"path", "fingerprint"},
     "versions": [{"path", "fingerprint"}, ...],        # live first, then held
     "split": null | {"path", "fingerprint", "fraction"}}

It is rewritten before every change takes effect (swap, rollback, split start, change or
end), atomically (a temporary file in the same directory, flushed to disk, renamed over
the old one), so a crash leaves the old state or the new one; if it cannot be written the
change is refused (503) and nothing changes. ``startup`` is the command line's model of
the run that wrote it. At start-up:

- the command line names the same model (fingerprint) as ``startup``: the same deploy;
  the saved state is restored as it was. Its live model and its A/B candidate must load
  and still have their fingerprints, else start-up fails naming the file (the instance
  would serve something else than the others). A held version (for rollback) whose file
  is missing or changed is dropped with a warning.
- the command line names another model: a new deploy, and the command line wins; its
  model goes live as a swap would make it, the saved live model and held versions are
  held for rollback (missing or changed ones dropped with a warning), the split carries
  on if its candidate accepts the new live model's sessions. The log says so.

``POST /v1/state/reload`` applies the file as a same-deploy restart would, for instances
that share one state directory.
"""

import json
import logging
import os
import stat
import tempfile
import threading
import time

from .._errors import ModelFileError
from ._errors import ServeError

FORMAT = "hmmfast-serve-state"
FORMAT_VERSION = 1

log = logging.getLogger("hmmfast.serve")


class StateError(ValueError):
    """A state file that cannot be read, or a saved state that cannot be restored."""


def state_path(state_dir, model_name):
    return os.path.join(state_dir, f"hmmfast-serve-{model_name}.json")


def _entry(version):
    return {"path": version.path, "fingerprint": version.fingerprint}


def record(snapshot, startup, model_name):
    """The JSON-safe state of a registry snapshot."""
    split = snapshot.split
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "model_name": model_name,
        "saved_at": time.time(), "startup": startup,
        "versions": [_entry(v) for v in snapshot.versions],
        "split": None if split is None else {**_entry(split.candidate),
                                             "fraction": split.fraction},
    }


def _check_entry(path, where, entry, fraction=False):
    keys = {"path", "fingerprint"} | ({"fraction"} if fraction else set())
    if type(entry) is not dict or set(entry) != keys or type(entry["path"]) is not str or \
            type(entry["fingerprint"]) is not str:
        raise StateError(f"state file {path}: {where} must be an object with keys "
                         f"{sorted(keys)}")
    if fraction and (type(entry["fraction"]) not in (int, float) or
                     not 0 < entry["fraction"] <= 1):
        raise StateError(f"state file {path}: split.fraction must be a number in (0, 1]")


class StateFile:
    """The state file of one service: read, validated, written atomically."""

    def __init__(self, path, model_name):
        self.path = os.path.abspath(path)
        self.model_name = model_name
        self._lock = threading.Lock()
        self._last = None  # the state last read or written (without saved_at)

    def read(self):
        """The saved state (validated), or None when there is no file."""
        try:
            mode = os.stat(self.path).st_mode
            if not stat.S_ISREG(mode):  # a FIFO would block the start-up
                raise StateError(f"state file {self.path} is not a regular file")
            with open(self.path, "rb") as f:
                data = f.read(1 << 20)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"state file {self.path}: cannot read it: "
                             f"{exc.strerror or exc}") from None
        try:
            state = json.loads(data)
        except ValueError as exc:
            raise StateError(f"state file {self.path} is not valid JSON ({exc}); remove it "
                             "to start afresh") from None
        if type(state) is not dict or state.get("format") != FORMAT:
            raise StateError(f"state file {self.path} is not an hmmfast serve state file")
        if state.get("format_version") != FORMAT_VERSION:
            raise StateError(f"state file {self.path} has format_version "
                             f"{state.get('format_version')!r}; this hmmfast reads "
                             f"{FORMAT_VERSION}")
        versions = state.get("versions")
        if type(versions) is not list or not versions:
            raise StateError(f"state file {self.path}: versions must be a non-empty list")
        for i, entry in enumerate(versions):
            _check_entry(self.path, f"versions[{i}]", entry)
        _check_entry(self.path, "startup", state.get("startup"))
        if state.get("split") is not None:
            _check_entry(self.path, "split", state["split"], fraction=True)
        self._last = _content(state)
        return state

    def write(self, snapshot, startup):
        """Replace the file with ``snapshot``'s state (atomic; OSError on failure); a
        state equal to the file's is not written again."""
        state = record(snapshot, startup, self.model_name)
        data = json.dumps(state, indent=1).encode()
        directory = os.path.dirname(self.path)
        with self._lock:
            if _content(state) == self._last:
                return
            fd, tmp = tempfile.mkstemp(prefix=".hmmfast-serve-", suffix=".tmp",
                                       dir=directory)
            try:
                os.fchmod(fd, 0o644)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            _fsync_directory(directory)
            self._last = _content(state)


def _content(state):
    return {k: v for k, v in state.items() if k != "saved_at"}


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def saver(state_file, startup):
    """A registry hook that writes the new state before a change takes effect; a write
    that fails refuses the change (503)."""

    def save(old, new):
        try:
            state_file.write(new, startup)
        except OSError as exc:
            log.error("hmmfast serve: cannot write the state file %s: %s", state_file.path,
                      exc)
            raise ServeError(503, "state_not_saved", "the change was not made: the state "
                             f"file cannot be written ({exc.strerror or exc}); see the "
                             "server log") from None

    return save


def _load(load, entry):
    """The version of a saved entry, or (None, why)."""
    try:
        version = load(entry["path"])
    except ServeError as exc:
        return None, exc.message
    except (OSError, ModelFileError, ValueError) as exc:
        return None, " ".join(str(exc).split())[:300]
    if version.fingerprint != entry["fingerprint"]:
        return None, (f"the file changed since the state was saved (fingerprint "
                      f"{entry['fingerprint'][:12]} then, {version.fingerprint[:12]} now)")
    return version, None


def _required(load, state_file, entry, role):
    version, why = _load(load, entry)
    if version is None:
        raise StateError(f"model file {entry['path']} ({role} in the saved state "
                         f"{state_file.path}) cannot be restored: {why}. Restore the file, "
                         "name the model to serve on the command line (a new deploy), or "
                         "remove the state file")
    return version


def restore(state, state_file, startup, load, keep, same_deploy, known=()):
    """(versions, split candidate, fraction) to serve from a saved ``state``.

    Parameters
    ----------
    state : dict
        From :meth:`StateFile.read`.
    startup : ModelVersion
        The command line's model (already loaded).
    load : callable(path) -> ModelVersion
    keep : int
        Versions held at most.
    same_deploy : bool
        Restore the saved live model and split (errors naming a missing or changed file);
        False: the command line's model goes live, the saved versions are held.
    known : iterable of ModelVersion
        Versions already in memory (reused, not loaded again).
    """
    have = {v.fingerprint: v for v in known}
    have[startup.fingerprint] = startup

    def get(entry, role, required):
        if entry["fingerprint"] in have:
            return have[entry["fingerprint"]]
        if required:
            version = _required(load, state_file, entry, role)
        else:
            version, why = _load(load, entry)
            if version is None:
                log.warning("hmmfast serve: model file %s (%s, %s in the saved state) is "
                            "dropped: %s", entry["path"], entry["fingerprint"][:12], role, why)
                return None
        have[version.fingerprint] = version
        return version

    saved = state["versions"]
    live = get(saved[0], "the live model", True) if same_deploy else startup
    versions = [live]
    for entry in saved[0 if not same_deploy else 1:]:
        version = get(entry, "held", False)
        if version is not None and version not in versions:
            versions.append(version)
    candidate, fraction = None, 0.0
    if state.get("split") is not None:
        candidate = get(state["split"], "the A/B candidate", same_deploy)
        fraction = float(state["split"]["fraction"])
    return versions[:keep], candidate, fraction
