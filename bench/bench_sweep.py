"""Time a learning-rate sweep of softmax regression on MNIST, serially and with 2 workers.

    python bench/bench_sweep.py                 # 4 runs x 10 epochs, n_jobs=1 then n_jobs=2
    python bench/bench_sweep.py --epochs 1      # quicker

The sweep: learning_rate in [0.005, 0.01, 0.05, 0.1], momentum 0.9, batch 100. Both sweeps
must give the same numbers (wall times apart), or the script exits with status 1. The target
is 2 workers taking at most 0.6x the serial time; their start-up and their own reading of the
data are part of the measured time, as they are for a user. The load average is printed
before and after: other processes on the machine slow the parallel sweep most.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sweep import sweep  # noqa: E402

GRID = {"learning_rate": [0.005, 0.01, 0.05, 0.1]}
TARGET_RATIO = 0.6


def timed_sweep(base, n_jobs):
    """(wall seconds, SweepResult) of the GRID sweep with n_jobs workers."""
    start = time.perf_counter()
    result = sweep(base, GRID, n_jobs=n_jobs)
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run")
    parser.add_argument("--jobs", type=int, default=2, help="workers of the parallel sweep")
    args = parser.parse_args()
    base = {"data_root": os.path.join(ROOT, "data"), "max_epoch": args.epochs,
            "batch_size": 100, "momentum": 0.9, "display_freq": 10**9, "seed": 0}
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    serial_time, serial = timed_sweep(base, 1)
    parallel_time, parallel = timed_sweep(base, args.jobs)
    ratio = parallel_time / serial_time
    identical = serial.without_times() == parallel.without_times()
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print(serial, "\n")
    print(f"| sweep | wall time (s) |\n|---|---|\n| n_jobs=1 | {serial_time:.1f} |\n"
          f"| n_jobs={args.jobs} | {parallel_time:.1f} |")
    print(f"\nratio n_jobs={args.jobs} / n_jobs=1: {ratio:.2f} (target <= {TARGET_RATIO}: "
          f"{'met' if ratio <= TARGET_RATIO else 'not met'})")
    print(f"identical results: {'yes' if identical else 'NO'}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
