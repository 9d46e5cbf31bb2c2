"""How many threads a call may use: the CPUs this process may run on, and the request.

``n_threads`` (DECISIONS, "For every issue"): a call's argument wins, ``None`` falls back
to the model's, and a model's ``None`` means "as many as help". The kernels get one
integer (``team_request``): a positive count is an explicit request, capped here at the
CPUs this process may use; a negative one, ``-budget``, is the automatic choice, and the
kernel (csrc/hmm_team.h) then starts a team only when the call's work is above the
measured break-even and only on CPUs that no other thread is running on at that moment,
so that ``n_threads=None`` is never slower than one thread, on a busy machine too.

The budget is the smaller of the affinity mask (``os.sched_getaffinity``) and the cgroup
CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, the
tightest of the process's cgroup and its ancestors), rounded up. The quota is re-read
at most every ten seconds.
"""

import math
import os
import time

from . import _validation as V

CGROUP_ROOT = "/sys/fs/cgroup"
_QUOTA_TTL = 10.0  # seconds a cgroup quota reading is reused
_quota_cache = [None, -math.inf]  # [cpus or None, monotonic time read]


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _ancestors(path):
    """path, its parent, ... up to the root ("/")."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:k]) for k in range(len(parts), -1, -1)]


def _quota_v2(root, rel):
    best = None
    for sub in _ancestors(rel):
        text = _read(os.path.join(root, sub.lstrip("/"), "cpu.max"))
        if not text:
            continue
        quota, _, period = text.partition(" ")
        if quota != "max" and period:
            cpus = int(quota) / int(period)
            best = cpus if best is None else min(best, cpus)
    return best


def _quota_v1(root, rel):
    best = None
    for sub in _ancestors(rel):
        base = os.path.join(root, sub.lstrip("/"))
        quota, period = _read(os.path.join(base, "cpu.cfs_quota_us")), _read(
            os.path.join(base, "cpu.cfs_period_us"))
        if quota and period and int(quota) > 0 and int(period) > 0:
            cpus = int(quota) / int(period)
            best = cpus if best is None else min(best, cpus)
    return best


def cgroup_cpus(proc_cgroup="/proc/self/cgroup", root=CGROUP_ROOT):
    """CPUs the cgroup quota allows this process (a float), or None when unlimited or
    unknown. A cgroup path that is not visible (a container's namespace) is read at
    the mount's root instead."""
    text = _read(proc_cgroup)
    if not text:
        return None
    found = []
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2
            where = path if os.path.isdir(os.path.join(root, path.lstrip("/"))) else "/"
            found.append(_quota_v2(root, where))
        elif "cpu" in controllers.split(","):
            mount = os.path.join(root, controllers)
            if not os.path.isdir(mount):
                mount = os.path.join(root, "cpu")
            where = path if os.path.isdir(os.path.join(mount, path.lstrip("/"))) else "/"
            found.append(_quota_v1(mount, where))
    found = [q for q in found if q is not None]
    return min(found) if found else None


def _quota_cpus():
    now = time.monotonic()
    if now - _quota_cache[1] > _QUOTA_TTL:
        try:
            _quota_cache[0] = cgroup_cpus()
        except (ValueError, OSError):  # an unreadable or unexpected file: no quota
            _quota_cache[0] = None
        _quota_cache[1] = now
    return _quota_cache[0]


def cpu_budget():
    """CPUs this process may use: its affinity mask, capped by its cgroup quota (>= 1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    quota = _quota_cpus()
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus)


def resolve_threads(n_threads):
    """The thread count a setting stands for: None means every CPU this process may
    use; an explicit count is honoured up to that number."""
    if n_threads is None:
        return cpu_budget()
    return min(V.check_n("n_threads", n_threads), cpu_budget())


def team_request(n_threads):
    """The kernels' thread argument for a setting: ``-cpu_budget()`` for None (automatic:
    a team only where it gains), else the explicit count capped at the budget."""
    if n_threads is None:
        return -cpu_budget()
    return resolve_threads(n_threads)


def thread_count(request):
    """The most threads a kernel argument from ``team_request`` may start (>= 1)."""
    return max(1, abs(int(request)))
