"""Epoch time and throughput of every model, in float32 and float64, on MNIST.

    python bench/bench_models.py                 # every model, a few hundred batches each
    python bench/bench_models.py --models mlp    # one model

Each measurement trains `--batches` batches of the real training set (forward, backward and
the optimizer step; no validation) and extrapolates to the 55,000-sample epoch. Batch sizes
are the documented ones: 100 for softmax, 128 for the MLPs, 64 for the CNN.
"""
import argparse
import itertools
import time

import numpy as np
from threadpoolctl import threadpool_limits


BATCH_SIZES = {"softmax": 100, "mlp": 128, "mlp_bn": 128, "cnn": 64}


def seconds_per_batch(model_name, dtype, batches):
    """Median wall time of one training step (forward, backward, update) of the model."""
    from mnistlab import Solver
    runner = Solver({"model": model_name,
                     "dtype": dtype, "batch_size": BATCH_SIZES[model_name], "seed": 0,
                     "optimizer": "sgd", "momentum": 0.9})
    threads = 1 if model_name == "softmax" else None
    times = []
    with threadpool_limits(limits=threads, user_api="blas"):
        for images, labels in itertools.islice(runner.train_loader, batches + 3):
            start = time.perf_counter()
            runner.model.forward(images, labels)
            runner.model.gradient_computing()
            runner.optimizer.step()
            times.append(time.perf_counter() - start)
    return float(np.median(times[3:]))  # the first steps warm caches up


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(BATCH_SIZES), choices=BATCH_SIZES)
    parser.add_argument("--batches", type=int, default=200, help="batches timed per model")
    args = parser.parse_args()
    print("| model | batch | dtype | s / batch | s / epoch (55,000) | samples / s |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        for dtype in ("float32", "float64"):
            step = seconds_per_batch(name, dtype, args.batches)
            batch = BATCH_SIZES[name]
            epoch = step * -(-55000 // batch)
            print(f"| {name} | {batch} | {dtype} | {step:.4f} | {epoch:.1f} | {batch / step:,.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
