"""BLAS threads are chosen so that the framework's own threads fit the cores it may use."""
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from mnistlab import threads
from mnistlab.threads import available_cores, blas_threads, current_blas_threads, limit_blas_threads


def test_available_cores_are_those_this_process_may_run_on():
    cores = available_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert cores <= len(os.sched_getaffinity(0))


def test_a_cgroup_quota_caps_the_cores(monkeypatch):
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: 1)
    assert available_cores() == 1


@pytest.mark.parametrize("busy, workers, cores, expected", [
    (1, 1, 2, 1),   # one run that prefetches, 2 cores
    (0, 1, 2, 2),   # one run without prefetching
    (0, 2, 2, 1),   # each of two parallel runs
    (1, 1, 8, 7), (0, 1, 8, 8), (0, 2, 8, 4),
    (1, 1, 1, 1),   # never less than one thread
    (0, 4, 2, 1),   # more workers than cores
])
def test_blas_threads_leave_room_for_the_other_busy_threads(busy, workers, cores, expected):
    assert blas_threads(busy_threads=busy, workers=workers, cores=cores) == expected


@pytest.mark.parametrize("kwargs", [{"busy_threads": -1}, {"workers": 0}, {"workers": 1.5},
                                    {"busy_threads": True}])
def test_blas_threads_refuse_impossible_counts(kwargs):
    with pytest.raises(ValueError, match="whole number"):
        blas_threads(**kwargs)


def test_limit_blas_threads_limits_and_never_raises_a_lower_limit():
    np.ones((2, 2)) @ np.ones((2, 2))  # make sure the BLAS library is loaded
    if current_blas_threads() is None:
        pytest.skip("no BLAS library that threadpoolctl can see")
    with limit_blas_threads(busy_threads=0, cores=1):
        assert current_blas_threads() == 1
    with threadpool_limits(limits=1, user_api="blas"), limit_blas_threads(busy_threads=0, cores=8):
        assert current_blas_threads() == 1  # a sweep worker's one thread stays one
