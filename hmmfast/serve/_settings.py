"""The service's settings: limits, monitors and threads, validated once at start-up."""

import dataclasses
import numbers
import re

#: Command-line option of each limit, named in the 413 error that refuses a request.
OPTION = {
    "max_body_bytes": "--max-body-bytes",
    "max_sessions": "--max-sessions",
    "max_observations": "--max-observations",
}


MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a running service is allowed to accept and how it watches its models.

    Parameters
    ----------
    threads : int or None
        Kernel threads per call (``n_threads`` of ``score_batch``/``decode_batch``),
        default 1; None: each model's own ``n_threads`` (None there: every core). One
        thread is the default because the kernels are ~10% of a request's server time
        (parsing and building JSON is the rest, and holds the GIL), and a thread team
        on cores the event loop or other processes also use waits for its descheduled
        member: measured here, a 1,000-session batch took 5-10 ms in the kernel with 2
        threads on a busy 2-core machine against 0.3 ms with 1. Concurrent large
        requests still run their kernels in parallel (worker threads, GIL released).
    max_body_bytes : int
        Largest request body (default 16 MiB); a larger one is refused with 413.
    max_sessions : int
        Most sessions in one request (default 10,000); more: 413.
    max_observations : int
        Most observations in one session (default 100,000); more: 413.
    drift_window : int
        Sessions in the likelihood-drift monitor's window (default 1,000).
    drift_quantile : float
        The drift alarm's quantile of the baseline's window means, a fraction in (0, 1)
        (default 0.01).
    collapse_fraction : float
        The occupancy monitor raises ``collapsed`` when one decoded state holds more than
        this fraction of the window's frames (default 0.8).
    occupancy_window : int
        Decoded sessions in the occupancy monitor's window (default 1,000).
    inline_bytes : int
        Requests with a body up to this size are computed on the event loop (no thread
        hop: the lowest latency for small requests); larger ones in a worker thread, so
        the server keeps answering while they run (default 64 KiB).
    keep_versions : int
        Model versions held in memory, the live one included, for rollback (default 3).
    log_paths : float
        Share of /v1/anomaly sessions whose Viterbi path is logged (id, score, level,
        reason, path) to ``log_paths_file`` as rotating JSON lines
        (:class:`hmmfast.monitor.PathLog`, seeded); default 0: off.
    log_paths_file : str
        The path log's file (default "hmmfast-paths.jsonl").
    log_io : str or None
        A file for the input/output log: every answered data request's body and reply as
        one JSON line, rotated by size (default None: off).
    drift_keep_anomalous : bool
        Feed /v1/anomaly sessions judged anomalous to the drift window too (default
        False: flagged attack traffic must not move the drift alarm).
    timeout_body : float
        Seconds a request body may take to arrive, from its head (default 30: a 16 MiB
        body at 0.5 MB/s); a slower one is answered 408 and its connection closed.
    load_timeout : float
        Seconds an admin call's model load may take (default 60); beyond, 504.
    model_name : str
        The model's name in the Open Inference Protocol's paths (/v2/models/<name>) and
        in the state file's name (default "hmmfast"); letters, digits, ``.``, ``_``,
        ``-``, at most 64.
    """

    threads: int | None = 1
    max_body_bytes: int = 16 * 1024 * 1024
    max_sessions: int = 10_000
    max_observations: int = 100_000
    drift_window: int = 1_000
    drift_quantile: float = 0.01
    collapse_fraction: float = 0.8
    occupancy_window: int = 1_000
    inline_bytes: int = 64 * 1024
    keep_versions: int = 3
    log_paths: float = 0.0
    log_paths_file: str = "hmmfast-paths.jsonl"
    log_io: str | None = None
    drift_keep_anomalous: bool = False
    timeout_body: float = 30.0
    load_timeout: float = 60.0
    model_name: str = "hmmfast"

    def __post_init__(self):
        for name in ("max_body_bytes", "max_sessions", "max_observations", "drift_window",
                     "occupancy_window", "keep_versions"):
            _positive_int(name, getattr(self, name))
        _positive_int("inline_bytes", self.inline_bytes, minimum=0)
        if self.threads is not None:
            _positive_int("threads", self.threads)
        if self.keep_versions < 2:
            raise ValueError(f"keep_versions must be >= 2 (the live model and one to roll "
                             f"back to), got {self.keep_versions}")
        rate = self.log_paths
        if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate <= 1:
            raise ValueError(f"log_paths must be a share of sessions in [0, 1], got {rate!r}")
        for name in ("timeout_body", "load_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                    not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
        if not isinstance(self.model_name, str) or not MODEL_NAME.fullmatch(self.model_name):
            raise ValueError("model_name must be 1 to 64 letters, digits, '.', '_' or '-' "
                             f"(it appears in URLs and a file name), got {self.model_name!r}")
        for name, high_open in (("drift_quantile", True), ("collapse_fraction", False)):
            value = getattr(self, name)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and \
                0 < value <= 1 and not (high_open and value == 1)
            if not ok:
                interval = "(0, 1)" if high_open else "(0, 1]"
                raise ValueError(f"{name} must be a fraction in {interval}, got {value!r}")


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
