"""Time a softmax-regression training epoch on MNIST, and the peak memory of a whole run.

Compares the project's vectorised data path with a per-sample baseline that builds every
batch from one `dataset[i]` call per sample, as the original assignment skeleton did.

    python bench/bench_epoch.py                         # full measurement, a markdown table
    python bench/bench_epoch.py --epochs 2 --rounds 1   # quicker

Each measurement runs in a fresh process, so that peak memory (ru_maxrss) belongs to it alone.
A round measures the three data paths one after the other; the speed-up is taken within each
round (so that a slow spell of a shared machine slows both sides of the ratio) and the table
gives the median over rounds, with the range of the rounds' medians for the epoch times.
"""
import argparse
import contextlib
import io
import json
import resource
import subprocess
import sys
import time

import numpy as np



class PerSampleLoader:
    """The skeleton's loader: a Python loop of `dataset[i]` calls for every batch."""

    def __init__(self, loader):
        self.dataset, self.sampler = loader.dataset, loader.sampler

    def __iter__(self):
        self.sampler.prepare_epoch_indices()
        for indices in self.sampler:
            items = [self.dataset[i] for i in indices]
            yield np.stack([image for image, _ in items]), np.array([label for _, label in items])

    def __len__(self):
        return len(self.sampler)


def make_solver(dtype, epochs, per_sample):
    from mnistlab import Solver
    cfg = {"max_epoch": epochs, "batch_size": 100,
           "learning_rate": 0.01, "momentum": 0.9, "display_freq": 10**9, "seed": 0,
           "dtype": dtype}
    runner = Solver(cfg)
    if per_sample:
        runner.train_loader = PerSampleLoader(runner.train_loader)
        runner.val_loader = PerSampleLoader(runner.val_loader)
    return runner


def measure(dtype, epochs, per_sample):
    """One process's measurement: epoch times, data-path time, accuracy, peak memory."""
    runner = make_solver(dtype, epochs, per_sample)
    start = time.perf_counter()
    for _ in runner.train_loader:
        pass
    data_time = time.perf_counter() - start
    with contextlib.redirect_stdout(io.StringIO()):
        runner.train()
    return {"dtype": dtype, "per_sample": per_sample, "epoch_times": runner.history.epoch_time,
            "data_time": data_time, "test_acc": runner.test()[1],
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_in_subprocess(dtype, epochs, per_sample):
    args = [sys.executable, __file__, "--child", dtype, str(epochs), str(int(per_sample))]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


TARGETS = {"float64": 0.25, "float32": 0.15}  # seconds per epoch, validation included
TARGET_SPEEDUP = 8.0
TARGET_MEMORY_RATIO = 1.5
PATHS = (("float64", False), ("float32", False), ("float64", True))


def summarise(rounds):
    """Per data path: median epoch over all rounds, range of the rounds' medians, median
    speed-up over the baseline within a round, median data time, test acc, peak memory."""
    rows = []
    for column, (dtype, per_sample) in enumerate(PATHS):
        runs = [measured[column] for measured in rounds]
        medians = [np.median(run["epoch_times"]) for run in runs]
        speedups = [np.median(measured[2]["epoch_times"]) / median
                    for measured, median in zip(rounds, medians)]
        every_epoch = [seconds for run in runs for seconds in run["epoch_times"]]
        rows.append({"name": "per-sample baseline" if per_sample else "vectorised",
                     "dtype": dtype, "epoch": np.median(every_epoch),
                     "low": min(medians), "high": max(medians), "speedup": np.median(speedups),
                     "data": np.median([run["data_time"] for run in runs]),
                     "test_acc": runs[-1]["test_acc"],
                     "peak_mb": max(run["peak_mb"] for run in runs)})
    return rows


def print_report(rows, rounds, epochs):
    print(f"{rounds} rounds x {epochs} epochs per data path, one process each\n")
    print("| data path | dtype | median epoch (s), validation included | range of the rounds "
          "| data alone (s) | speed-up vs per-sample | test acc | peak memory (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['name']} | {row['dtype']} | {row['epoch']:.3f} | {row['low']:.3f}-"
              f"{row['high']:.3f} | {row['data']:.3f} | {row['speedup']:.1f}x | "
              f"{row['test_acc']:.4f} | {row['peak_mb']:.0f} |")
    baseline = rows[2]
    print()
    for row in rows[:2]:
        time_ok = row["epoch"] <= TARGETS[row["dtype"]]
        speed_ok = row["speedup"] >= TARGET_SPEEDUP
        memory_ratio = row["peak_mb"] / baseline["peak_mb"]
        print(f"{row['dtype']}: epoch {row['epoch']:.3f} s (target <= {TARGETS[row['dtype']]}: "
              f"{'met' if time_ok else 'not met'}), speed-up {row['speedup']:.1f}x (target >= "
              f"{TARGET_SPEEDUP:.0f}x: {'met' if speed_ok else 'not met'}), peak memory "
              f"{memory_ratio:.2f}x the baseline's (target <= {TARGET_MEMORY_RATIO}: "
              f"{'met' if memory_ratio <= TARGET_MEMORY_RATIO else 'not met'})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="epochs per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three data paths")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        dtype, epochs, per_sample = args.child
        print(json.dumps(measure(dtype, int(epochs), bool(int(per_sample)))))
        return
    rounds = [[run_in_subprocess(dtype, args.epochs, per_sample) for dtype, per_sample in PATHS]
              for _ in range(args.rounds)]
    print_report(summarise(rounds), args.rounds, args.epochs)


if __name__ == "__main__":
    main()
