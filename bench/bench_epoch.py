"""Time a softmax-regression training epoch on MNIST, and the peak memory of a whole run.

Compares the project's vectorised data path with a per-sample baseline that builds every
batch from one `dataset[i]` call per sample, as the original assignment skeleton did.

    python bench/bench_epoch.py              # full measurement, prints a markdown table
    python bench/bench_epoch.py --epochs 2   # quicker

Each measurement runs in a fresh process, so that peak memory (ru_maxrss) belongs to it alone.
"""
import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


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
    from solver import Solver
    cfg = {"data_root": os.path.join(ROOT, "data"), "max_epoch": epochs, "batch_size": 100,
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs per measured run")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        dtype, epochs, per_sample = args.child
        print(json.dumps(measure(dtype, int(epochs), bool(int(per_sample)))))
        return
    rows = [run_in_subprocess(dtype, args.epochs, per_sample)
            for dtype, per_sample in (("float64", False), ("float32", False), ("float64", True))]
    baseline = np.median(rows[2]["epoch_times"])
    print(f"| data path | dtype | median epoch (s), validation included | data alone (s) "
          f"| speed-up vs per-sample | test acc | peak memory (MB) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        epoch = np.median(row["epoch_times"])
        name = "per-sample baseline" if row["per_sample"] else "vectorised"
        print(f"| {name} | {row['dtype']} | {epoch:.3f} | {row['data_time']:.3f} | "
              f"{baseline / epoch:.1f}x | {row['test_acc']:.4f} | {row['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
