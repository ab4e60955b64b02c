"""Where a softmax training pass spends its time beyond the bare loop, producer and consumer apart.

    python bench/bench_softmax_pipeline.py                     # float64, 7 rounds
    python bench/bench_softmax_pipeline.py --dtype float32 --rounds 9

One process, one BLAS thread, batch 100, SGD with momentum 0.9 on MNIST's 55,000 training
images. The training pass of one epoch (validation left out) is timed with each pairing of

- a consumer: the framework's (`model.forward`, `model.gradient_computing`, the Solver's
  checked optimizer step, the running totals); the same functions and checks written
  inline in one loop, with no model, optimizer or Solver around them (`inline`: what the
  framework's layers cost is its difference to the framework's); or the bare one
  (bench_floor's softmax in the fewest NumPy passes and the momentum update in place,
  with no checks);
- a producer: the framework's training loader with its worker process (the default), or
  with a thread in its place (`prefetch_worker='thread'`), or a bare thread preparing the
  same chunks of the same size (gather the rows, convert, centre, scale) and nothing else;

in alternating order within each round. Fed by the bare producer, the framework's consumer
also reports the time spent inside the optimizer's step, against inside the update formula
alone (`optimizer.update` called directly). The floor is bench_floor's two-product loop.
Medians over rounds after the first, with their range; read the ratios, not the seconds.
"""
import argparse
import contextlib
import io
import math
import os
import queue
import sys
import threading
import time

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_floor import bare_softmax_cross_entropy, bare_softmax_gradient, softmax_floor  # noqa: E402

from mnistlab import Solver  # noqa: E402
from mnistlab.fast import CHUNK_BYTES, softmax_cross_entropy  # noqa: E402
from mnistlab.loss import accuracy, check_labels, softmax_cross_entropy_backward  # noqa: E402
from mnistlab.solver import _RunningTotals  # noqa: E402

BATCH = 100


def make_runner(dtype, **cfg):
    """A quiet Solver of softmax regression, batch 100, SGD lr 0.01 with momentum 0.9."""
    with contextlib.redirect_stdout(io.StringIO()):
        return Solver({"display_freq": 10**9, "seed": 0, "batch_size": BATCH, "max_epoch": 1000,
                       "learning_rate": 0.01, "momentum": 0.9, "dtype": dtype, **cfg})


def bare_batches(dataset, rng):
    """The batches of one shuffled epoch, prepared by a bare thread a chunk of about
    CHUNK_BYTES at a time (two chunks ahead), as (images, labels) pairs."""
    pixels, means, labels = dataset._source, dataset._pixel_means, dataset.labels
    dtype = np.dtype(dataset.dtype)
    rows = max(BATCH, CHUNK_BYTES // (pixels.shape[1] * dtype.itemsize) // BATCH * BATCH)
    order = rng.permutation(len(labels))
    ready = queue.Queue(maxsize=2)

    def produce():
        for start in range(0, len(order), rows):
            chosen = order[start:start + rows]
            x = pixels[chosen].astype(dtype)
            x -= means[chosen].astype(dtype)[:, None]
            x *= dtype.type(1 / 255)
            y = labels[chosen]
            ready.put([(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)])
        ready.put(None)

    threading.Thread(target=produce, daemon=True).start()
    while (chunk := ready.get()) is not None:
        yield from chunk


def momentum_step(p, velocity, g):
    """SGD with momentum 0.9 and learning rate 0.01 in place, as optimizer.SGD computes it:
    v = 0.9 v - 0.01 g, p = p + v."""
    velocity *= 0.9
    velocity -= 0.01 * g
    p += velocity


def bare_consumer(runner):
    """The bare loop's training pass, on its own copies of the model's parameters, which
    it returns (W, b)."""
    w, b = runner.model.W.copy(order="K"), runner.model.b.copy()
    velocity_w, velocity_b = np.zeros_like(w), np.zeros_like(b)

    def consume(batches):
        for x, y in batches:
            z = x @ w
            z += b
            _, _, sum_exp = bare_softmax_cross_entropy(z, y)   # z becomes exp(z - max z)
            grad_z = bare_softmax_gradient(z, sum_exp, y)
            momentum_step(w, velocity_w, (grad_z.T @ x).T)
            momentum_step(b, velocity_b, grad_z.sum(axis=0, keepdims=True))
        return w, b
    return consume


def inline_consumer(runner):
    """The framework's training pass written out in one loop: the same functions in the
    same order (so the same weights, bitwise), the labels checked, the loss and every
    gradient refused if not finite, the running totals; no model, optimizer or
    Solver method is called. Works on copies of the model's parameters, which it returns."""
    w, b = runner.model.W.copy(order="K"), runner.model.b.copy()
    velocity_w, velocity_b = np.zeros_like(w), np.zeros_like(b)

    def consume(batches):
        totals = _RunningTotals()
        for x, y in batches:
            y = check_labels(y, len(x), w.shape[1])
            z = x @ w
            z += b
            loss, probs = softmax_cross_entropy(z, y)
            acc = accuracy(z, y)
            if not math.isfinite(loss):
                raise FloatingPointError(f"the loss is {loss}")
            grad_z = softmax_cross_entropy_backward(probs, y)
            grad_w = (grad_z.T @ x).T
            grad_b = grad_z.sum(axis=0, keepdims=True)
            if not (np.isfinite(grad_w).all() and np.isfinite(grad_b).all()):
                raise FloatingPointError("a gradient holds NaN or infinity")
            momentum_step(w, velocity_w, grad_w)
            momentum_step(b, velocity_b, grad_b)
            totals.add(loss, acc, len(y))
        return w, b
    return consume


def framework_consumer(runner, step_seconds=None):
    """The Solver's training pass over `batches`; with `step_seconds` (a list), also the
    seconds spent inside the checked step, appended as (step, update formula alone)."""
    model, optimizer = runner.model, runner.optimizer

    def consume(batches):
        totals, inside_step = _RunningTotals(), [0.0, 0.0]
        for iteration, (images, labels) in enumerate(batches):
            loss, acc = model.forward(images, labels)
            model.gradient_computing()
            start = time.perf_counter()
            if step_seconds is None or iteration % 2 == 0:
                runner._step(loss, iteration, None)
                inside_step[0] += time.perf_counter() - start
            else:
                for name, param, grad in model.named_parameters():
                    optimizer.update(param, grad, optimizer.state[name])
                inside_step[1] += time.perf_counter() - start
            totals.add(loss, acc, len(labels))
        if step_seconds is not None:   # each measured on half the batches
            step_seconds.append((2 * inside_step[0], 2 * inside_step[1]))
    return consume


def measure(dtype, rounds):
    runner = make_runner(dtype)
    rng = np.random.default_rng(0)
    consumers = {"bare": bare_consumer(runner), "inline": inline_consumer(runner),
                 "framework": framework_consumer(runner)}
    thread_loader = make_runner(dtype, prefetch_worker="thread").train_loader
    producers = {"bare": lambda: bare_batches(runner.train_loader.dataset, rng),
                 "process": lambda: iter(runner.train_loader),
                 "thread": lambda: iter(thread_loader)}
    times, step_seconds = {}, []
    split_step = framework_consumer(runner, step_seconds)
    with threadpool_limits(limits=1, user_api="blas"):
        model, images, labels = runner.model, *next(iter(runner.train_loader))
        model.forward(images, labels)
        model.gradient_computing()
        runner._step(0.0, 0, None)     # the optimizer's state exists from here on
        floors = []
        for _ in range(rounds):
            floors.append(softmax_floor(dtype))
            for consumer_name, consume in consumers.items():
                for producer_name, batches in producers.items():
                    start = time.perf_counter()
                    consume(batches())
                    times.setdefault((consumer_name, producer_name), []).append(
                        time.perf_counter() - start)
            split_step(producers["bare"]())
    # the first round warms up: it is left out
    return ({key: values[1:] for key, values in times.items()}, step_seconds[1:], floors[1:])


def spread(seconds):
    milliseconds = np.asarray(seconds) * 1e3
    return f"{np.median(milliseconds):6.1f} ({milliseconds.min():.1f}-{milliseconds.max():.1f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--rounds", type=int, default=7, help="at least 2: the first warms up")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    times, step_seconds, floors = measure(args.dtype, args.rounds)
    floor = float(np.median(floors))
    print(f"{args.dtype}, {args.rounds} rounds, load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; floor (two products) {floor * 1e3:.1f} ms")
    print("consumer   producer   training pass, ms: median (range)   / floor")
    for (consumer, producer), values in times.items():
        print(f"{consumer:10s} {producer:10s} {spread(values)}   "
              f"{np.median(values) / floor:.2f}x")
    inside = np.array(step_seconds) * 1e3
    print(f"inside the framework's step (bare producer): checked step "
          f"{np.median(inside[:, 0]):.1f} ms an epoch, the update formula alone "
          f"{np.median(inside[:, 1]):.1f} ms")


if __name__ == "__main__":
    main()
