"""How many threads the matrix products may use, so that a run does not fight itself for cores.

A run of this framework keeps up to three kinds of threads busy: the BLAS library's threads
for the matrix products, the batch-prefetching worker of its training loader (cfg
'prefetch' > 0; a thread or a process, cfg 'prefetch_worker'), and, in a sweep, one worker
process per parallel run. OpenBLAS threads
spin while they wait for work, so when these together outnumber the cores the process may
use, every thread keeps being preempted and an epoch can take several times longer
(measured here, a 2-core machine: an MLP epoch with 2 BLAS threads beside the prefetching
thread and one other busy process took 2.7-3.0 s, against 1.2 s with 1 BLAS thread).

    from mnistlab.threads import available_cores, blas_threads, limit_blas_threads
    available_cores()                      # cores this process may run on
    blas_threads(busy_threads=1)           # one run that prefetches: cores - 1 (at least 1)
    blas_threads(workers=2)                # each of 2 parallel runs: cores // 2
    with limit_blas_threads(busy_threads=1):
        ...                                # products here use at most that many threads

The count depends only on the cores and the framework's own threads, never on the
machine's momentary load: the number of BLAS threads changes how sums are split, hence
the last digits of results, and the same cfg must give the same numbers on the same
machine.
"""
import math
import os

from threadpoolctl import threadpool_info, threadpool_limits


def _cgroup_cpu_limit():
    """The CPU quota of this process's cgroup in cores (rounded up), or None if unlimited.

    Containers often get a quota (e.g. `docker run --cpus=2`) while seeing every core of the
    host in their affinity mask. cgroup v2 keeps it in cpu.max ("quota period" or "max
    period"), v1 in cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us.
    """
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else math.ceil(int(quota) / int(period))
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", encoding="ascii") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us", encoding="ascii") as f:
            period = int(f.read())
        return None if quota <= 0 or period <= 0 else math.ceil(quota / period)
    except (OSError, ValueError):
        return None


def available_cores():
    """Cores this process may run on: its CPU affinity (os.sched_getaffinity), capped by a
    cgroup CPU quota if it has one; os.cpu_count() where affinity is unknown. At least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no sched_getaffinity
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, quota)
    return max(1, cores)


def blas_threads(busy_threads=0, workers=1, cores=None):
    """BLAS threads for each of `workers` runs, so that all the framework's threads fit.

    Each worker gets an equal share of the cores, cores // workers, and leaves
    `busy_threads` of its share to its other busy threads (1 for a prefetching loader).
    Never less than 1: on a single core a prefetching run still needs one thread to compute.

    Args:
        busy_threads: threads of each run, besides BLAS, that keep a core busy.
        workers: runs trained at the same time (a sweep's n_jobs).
        cores: the cores to share (None: available_cores()).

    Returns:
        max(1, cores // workers - busy_threads).

    Examples (2 cores): one run that prefetches, 1; one run without prefetching, 2; each of
    two parallel runs without prefetching, 1. (8 cores: 7, 8 and 4.)
    """
    for name, value in (("busy_threads", busy_threads), ("workers", workers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (name == "workers"):
            raise ValueError(f"{name}={value!r}; it must be a whole number >= "
                             f"{int(name == 'workers')}")
    cores = available_cores() if cores is None else cores
    return max(1, cores // workers - busy_threads)


def current_blas_threads():
    """The largest thread count among the BLAS libraries loaded now (None if none is)."""
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(counts) if counts else None


def limit_blas_threads(busy_threads=0, workers=1, cores=None):
    """A context manager limiting BLAS to blas_threads(busy_threads, workers, cores) threads,
    or to the limit already in force if that is lower (a sweep's worker that was given one
    thread keeps one).
    """
    threads = blas_threads(busy_threads, workers, cores)
    current = current_blas_threads()
    if current is not None:
        threads = min(threads, current)
    return threadpool_limits(limits=threads, user_api="blas")
