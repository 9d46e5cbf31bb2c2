# The thread-team policy of csrc/hmm_team.h, seen from Python (tests, diagnostics).
#
# Design note
# -----------
# Kernels call hmm_team_size / hmm_team_run directly; this module only exposes the same
# functions so that the policy and the runner can be tested on their own: the team size a
# request gets for a given amount of work, the machine's running threads as the probe
# reads them, and a team that runs trivial tasks (each task writes which worker ran it).

cimport numpy as cnp
from _common cimport hmm_team_run, hmm_team_size, hmm_running_others, hmm_online_cpus

import numpy as np

cnp.import_array()

cdef extern from "hmm_team.h" nogil:
    double hmm_team_min_ns()


def team_size(int request, Py_ssize_t n_tasks, double work_ns):
    """Threads a kernel call would use: request > 0 explicit, < 0 automatic (up to
    -request); n_tasks independent tasks of work_ns estimated nanoseconds in all."""
    return hmm_team_size(request, n_tasks, work_ns)


def running_others():
    """Threads running on the machine now besides the caller (/proc/loadavg), -1 if
    unknown."""
    return hmm_running_others()


def online_cpus():
    return hmm_online_cpus()


def min_work_ns():
    """Estimated work per thread below which no team is started (ns; the environment's
    HMMFAST_TEAM_MIN_NS when set)."""
    return hmm_team_min_ns()


cdef struct SpinRun:
    long* worker_of
    Py_ssize_t spin


cdef void record_task(void* ctx, Py_ssize_t k, int worker) noexcept nogil:
    cdef SpinRun* r = <SpinRun*> ctx
    cdef Py_ssize_t _i
    cdef volatile double x = 0.0
    for _i in range(r.spin):  # a little work, so that helpers get a share
        x = x + 1.0
    r.worker_of[k] = worker


def run_team(int n_workers, Py_ssize_t n_tasks, Py_ssize_t spin=0):
    """Run n_tasks trivial tasks on a team of n_workers; returns the worker of each."""
    out = np.full(n_tasks, -1, dtype=np.int_)
    cdef SpinRun r
    r.worker_of = <long*> cnp.PyArray_DATA(out)
    r.spin = spin
    with nogil:
        hmm_team_run(n_workers, n_tasks, record_task, &r)
    return out
