"""Time a learning-rate sweep of softmax regression on MNIST, serially and with 2 workers.

    python bench/bench_sweep.py                        # 4 runs x 10 epochs, 3 rounds
    python bench/bench_sweep.py --epochs 1 --rounds 1  # quicker

The sweep: learning_rate in [0.005, 0.01, 0.05, 0.1], momentum 0.9, batch 100. Both sweeps
must give the same numbers (wall times apart), or the script exits with status 1. The target
is 2 workers taking at most 0.6x the serial time; their start-up and their own reading of the
data are part of the measured time, as they are for a user. A round times the serial sweep
then the parallel one; the ratio is that of the medians over rounds, since a shared machine
has slow spells. The load average is printed before and after: other processes on the
machine slow the parallel sweep most.
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mnistlab.sweeps import sweep, without_times  # noqa: E402

GRID = {"learning_rate": [0.005, 0.01, 0.05, 0.1]}
TARGET_RATIO = 0.6


def timed_sweep(base, n_jobs):
    """(wall seconds, DataFrame of the runs) of the GRID sweep with n_jobs workers."""
    start = time.perf_counter()
    result = sweep(base, GRID, n_jobs=n_jobs)
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run")
    parser.add_argument("--jobs", type=int, default=2, help="workers of the parallel sweep")
    parser.add_argument("--rounds", type=int, default=3, help="serial-then-parallel rounds")
    args = parser.parse_args()
    base = {"data_root": os.path.join(ROOT, "data"), "max_epoch": args.epochs,
            "batch_size": 100, "momentum": 0.9, "display_freq": 10**9, "seed": 0}
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    serial_times, parallel_times, identical = [], [], True
    for _ in range(args.rounds):
        serial_time, serial = timed_sweep(base, 1)
        parallel_time, parallel = timed_sweep(base, args.jobs)
        serial_times.append(serial_time)
        parallel_times.append(parallel_time)
        identical = identical and without_times(serial).equals(without_times(parallel))
    serial_median, parallel_median = map(statistics.median, (serial_times, parallel_times))
    ratio = parallel_median / serial_median
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print(serial.drop(columns="history").to_string(), "\n")
    rounds = ", ".join(f"{p / s:.2f}" for s, p in zip(serial_times, parallel_times))
    print(f"| sweep | median wall time (s) | range (s) |\n|---|---|---|\n"
          f"| n_jobs=1 | {serial_median:.1f} | {min(serial_times):.1f}-{max(serial_times):.1f} |\n"
          f"| n_jobs={args.jobs} | {parallel_median:.1f} | {min(parallel_times):.1f}-"
          f"{max(parallel_times):.1f} |")
    print(f"\nratio n_jobs={args.jobs} / n_jobs=1: {ratio:.2f} (rounds: {rounds}; target <= "
          f"{TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'not met'})")
    print(f"identical results: {'yes' if identical else 'NO'}")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
