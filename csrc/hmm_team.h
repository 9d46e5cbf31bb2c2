/* Thread teams that never make a call slower: who runs the tasks of a kernel call, and how
 * many threads it is worth.
 *
 *   hmm_team_size(request, n_tasks, work_ns)   threads worth starting for this call
 *   hmm_team_run(n_workers, n_tasks, fn, ctx)  fn(ctx, k, worker) for k = 0 .. n_tasks - 1
 *
 * Design note
 * -----------
 * Why not OpenMP: a libgomp team spins while it waits (OMP_WAIT_POLICY / GOMP_SPINCOUNT,
 * read once when the library loads, process-wide: setting them would change the user's
 * other OpenMP code behind their back), and its closing barrier waits for every thread of
 * the team. On a machine whose cores are all busy that barrier waits for a thread the
 * scheduler has not run yet, while the spinning threads take the CPU it needs: measured
 * 0.04x one thread on a small Gaussian fit with one CPU-bound process per core beside it.
 *
 * Here the calling thread is worker 0 and takes tasks like the others, from one shared
 * counter, in order. Helpers are plain detached POSIX threads made for the call; a
 * helper that starts late finds no task left and exits without touching the caller's
 * data, so the caller never waits for a thread that has not started work: it waits (on
 * a condition variable, passively, no spinning) only for tasks in flight. The team's
 * bookkeeping lives in a reference-counted block freed by whoever leaves last. Which
 * thread runs a task never changes what the task computes (callers fix their tasks and
 * the order of any reduction by the data alone), so results are bit-identical for every
 * team size. Helpers block all signals (the interpreter handles them on its own thread).
 *
 * How many: ``request`` > 0 is an explicit count (the Python layer has capped it at the
 * CPUs this process may use); ``request`` < 0 means "as many as help, up to -request".
 * Either way a team needs at least two tasks and HMM_TEAM_MIN_NS of estimated work per
 * thread (a helper costs 15-90 us to create and schedule: the margin is ~10x, so a helper
 * that never gets a CPU costs the call a few percent at most; HMMFAST_TEAM_MIN_NS in the
 * environment overrides it, for tests and tuning). An automatic request also
 * counts the threads running right now on the machine (field 4 of /proc/loadavg, which
 * includes the caller) and uses only CPUs no one else is running on: with one CPU-bound
 * process per core beside it, the call stays on its own thread.
 */
#ifndef HMMFAST_HMM_TEAM_H
#define HMMFAST_HMM_TEAM_H

#include <stddef.h>
#include <stdlib.h>

/* estimated work per thread below which a team is not worth it (ns); the environment
 * variable HMMFAST_TEAM_MIN_NS overrides it (tests use 0 to force teams on small data) */
#define HMM_TEAM_MIN_NS 500000.0

static double hmm_team_min_ns(void)
{
    const char *env = getenv("HMMFAST_TEAM_MIN_NS");
    if (env != NULL && *env != '\0') {
        char *end;
        const double v = strtod(env, &end);
        if (*end == '\0' && v >= 0.0)
            return v;
    }
    return HMM_TEAM_MIN_NS;
}

typedef void (*hmm_task_fn)(void *ctx, ptrdiff_t task, int worker);

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t finished;
    ptrdiff_t next;       /* next task to claim (atomic) */
    ptrdiff_t n_tasks;
    ptrdiff_t done;       /* tasks finished (atomic; the last one signals under lock) */
    int refs;             /* the caller and each live helper (under lock) */
    int next_worker;      /* helper numbers (atomic) */
    hmm_task_fn fn;
    void *ctx;
} hmm_team;

static void hmm_team_release(hmm_team *tm)
{
    pthread_mutex_lock(&tm->lock);
    const int left = --tm->refs;
    pthread_mutex_unlock(&tm->lock);
    if (left == 0) {
        pthread_cond_destroy(&tm->finished);
        pthread_mutex_destroy(&tm->lock);
        free(tm);
    }
}

static void hmm_team_work(hmm_team *tm, int worker)
{
    ptrdiff_t k;
    while ((k = __atomic_fetch_add(&tm->next, 1, __ATOMIC_RELAXED)) < tm->n_tasks) {
        tm->fn(tm->ctx, k, worker);
        if (__atomic_add_fetch(&tm->done, 1, __ATOMIC_ACQ_REL) == tm->n_tasks) {
            pthread_mutex_lock(&tm->lock);
            pthread_cond_signal(&tm->finished);
            pthread_mutex_unlock(&tm->lock);
        }
    }
}

static void *hmm_team_helper(void *arg)
{
    hmm_team *tm = (hmm_team *)arg;
    hmm_team_work(tm, __atomic_add_fetch(&tm->next_worker, 1, __ATOMIC_RELAXED));
    hmm_team_release(tm);
    return NULL;
}

/* Run fn(ctx, k, worker) for every task k, on the caller (worker 0) and up to
 * n_workers - 1 helpers (worker 1 .. n_workers - 1; per-worker scratch may be indexed by
 * it). Returns when every task has finished. A helper that cannot be created is simply
 * absent: the others (at least the caller) run its share. */
static void hmm_team_run(int n_workers, ptrdiff_t n_tasks, hmm_task_fn fn, void *ctx)
{
    ptrdiff_t k;
    hmm_team *tm = NULL;
    if (n_workers > 1 && n_tasks > 1)
        tm = (hmm_team *)malloc(sizeof(hmm_team));
    if (tm == NULL) {
        for (k = 0; k < n_tasks; k++)
            fn(ctx, k, 0);
        return;
    }
    pthread_mutex_init(&tm->lock, NULL);
    pthread_cond_init(&tm->finished, NULL);
    tm->next = 0;
    tm->n_tasks = n_tasks;
    tm->done = 0;
    tm->refs = 1;
    tm->next_worker = 0;
    tm->fn = fn;
    tm->ctx = ctx;
    pthread_attr_t attr;
    sigset_t all, old;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  /* helpers inherit: no signals for them */
    for (int w = 1; w < n_workers; w++) {
        pthread_t thread;
        pthread_mutex_lock(&tm->lock);
        tm->refs++;
        pthread_mutex_unlock(&tm->lock);
        if (pthread_create(&thread, &attr, hmm_team_helper, tm) != 0) {
            pthread_mutex_lock(&tm->lock);
            tm->refs--;
            pthread_mutex_unlock(&tm->lock);
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    hmm_team_work(tm, 0);
    pthread_mutex_lock(&tm->lock);
    while (__atomic_load_n(&tm->done, __ATOMIC_ACQUIRE) < tm->n_tasks)
        pthread_cond_wait(&tm->finished, &tm->lock);
    pthread_mutex_unlock(&tm->lock);
    hmm_team_release(tm);
}

/* Threads running on the machine right now besides the caller, or -1 if unknown. */
static int hmm_running_others(void)
{
    char buf[160];
    const int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    const ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0)
        return -1;
    buf[got] = '\0';
    /* "0.52 0.58 0.59 3/467 12345": the fourth field's numerator */
    int field = 0;
    const char *p = buf;
    while (*p && field < 3) {
        if (*p == ' ')
            field++;
        p++;
    }
    if (field < 3 || *p < '0' || *p > '9')
        return -1;
    long running = 0;
    while (*p >= '0' && *p <= '9')
        running = 10 * running + (*p++ - '0');
    if (*p != '/')
        return -1;
    return running > 0 ? (int)(running - 1) : 0;
}

static int hmm_online_cpus(void)
{
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

#else /* no POSIX threads: every call runs on the caller */

static void hmm_team_run(int n_workers, ptrdiff_t n_tasks, hmm_task_fn fn, void *ctx)
{
    (void)n_workers;
    for (ptrdiff_t k = 0; k < n_tasks; k++)
        fn(ctx, k, 0);
}

static int hmm_running_others(void) { return -1; }
static int hmm_online_cpus(void) { return 1; }

#endif

/* Threads worth using: see the design note. */
static int hmm_team_size(int request, ptrdiff_t n_tasks, double work_ns)
{
    int limit = request < 0 ? -request : request;
    if (limit <= 1 || n_tasks <= 1)
        return 1;
    if ((ptrdiff_t)limit > n_tasks)
        limit = (int)n_tasks;
    const double min_ns = hmm_team_min_ns();
    if (min_ns > 0.0 && work_ns / min_ns < (double)limit)
        limit = (int)(work_ns / min_ns);
    if (limit <= 1)
        return 1;
    if (request < 0) {
        const int others = hmm_running_others();
        if (others >= 0) {
            const int idle = hmm_online_cpus() - others;
            if (idle < limit)
                limit = idle < 1 ? 1 : idle;
        }
    }
    return limit;
}

#endif
