"""Peak memory of a one-epoch softmax run on an EMNIST-sized raw IDX training file.

    python bench/bench_memory.py                       # 835,000 images (659 MB raw IDX)
    python bench/bench_memory.py --samples 200000      # smaller
    python bench/bench_memory.py --baseline /tmp/baseline

Writes (once, into --folder) a raw training images file of `--samples` random 28 x 28
images and its labels, plus MNIST's own t10k files as the test split, then trains softmax
regression for one epoch (batch 100, float64, validation included) in a fresh process and
reports its peak resident memory (ru_maxrss), the time to build the Solver (reading the
file) and the epoch time. The training loader's worker process shares the training process's
memory (forked, copy-on-write); its own pages, private to it, are read at the end of the
epoch (/proc/<pid>/smaps_rollup) and added. Target: peak <= 1.2 x the file's size + 150 MB.
"""
import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_dataset(folder, samples, seed=0):
    """Raw IDX train images/labels of `samples` random images; MNIST's t10k files copied."""
    os.makedirs(folder, exist_ok=True)
    images_path = os.path.join(folder, "train-images-idx3-ubyte")
    if not (os.path.exists(images_path)
            and os.path.getsize(images_path) == 16 + samples * 784):
        rng = np.random.default_rng(seed)
        with open(images_path, "wb") as f:
            f.write(np.array([2051, samples, 28, 28], dtype=">u4").tobytes())
            for start in range(0, samples, 50000):
                count = min(50000, samples - start)
                f.write(rng.integers(0, 256, (count, 784), dtype=np.uint8).tobytes())
        with open(os.path.join(folder, "train-labels-idx1-ubyte"), "wb") as f:
            f.write(np.array([2049, samples], dtype=">u4").tobytes())
            f.write(rng.integers(0, 10, samples, dtype=np.uint8).tobytes())
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        target = os.path.join(folder, name)
        if not os.path.exists(target):
            shutil.copy(os.path.join(ROOT, "data", name), target)
    return images_path


def child(folder, dtype, val_split):
    from mnistlab import Solver
    worker_mb = watch_worker()
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        runner = Solver({"data_root": folder, "max_epoch": 1, "batch_size": 100,
                         "learning_rate": 0.01, "momentum": 0.9, "display_freq": 10**9,
                         "seed": 0, "dtype": dtype, "val_split": val_split})
        load = time.perf_counter() - start
        runner.train()
    own_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"load_s": load, "epoch_s": runner.history.epoch_time[0],
                      "worker_mb": sum(worker_mb), "peak_mb": own_mb + sum(worker_mb)}))


def watch_worker():
    """A list that receives the private memory (MB) of every worker process of the run, read
    as the worker is stopped (train() stops it when it returns); stays empty for code that
    has no worker process."""
    seen = []
    try:
        from mnistlab.worker import BatchWorker
    except ImportError:
        return seen
    close = BatchWorker.close

    def measured_close(worker):
        if worker.alive():
            seen.append(private_mb(worker.pid))
        close(worker)
    BatchWorker.close = measured_close
    return seen


def private_mb(pid):
    """The memory private to process `pid` (its pages shared with no other process), in MB."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        fields = dict(line.split(":", 1) for line in rollup if ":" in line)
    return sum(int(fields[key].split()[0]) for key in ("Private_Clean", "Private_Dirty")) / 1024


def run(folder, dtype, val_split, pythonpath):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", folder,
                          "--dtype", dtype, "--val-split", val_split], check=True, capture_output=True, text=True,
                         env=env, cwd="/tmp").stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=835000)
    parser.add_argument("--folder", default="/tmp/mnistlab-emnist-sized")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--val-split", default="last", choices=("last", "random"))
    parser.add_argument("--baseline", help="checkout of the code before the change")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dtype, args.val_split)
        return
    path = write_dataset(args.folder, args.samples)
    file_mb = os.path.getsize(path) / 2**20
    limit = 1.2 * file_mb + 150
    print(f"training file: {args.samples} images, {file_mb:.0f} MB; target peak <= "
          f"{limit:.0f} MB; val_split {args.val_split}; load average {os.getloadavg()[0]:.2f}\n")
    print("| code | round | load (s) | epoch (s) | peak (MB) | of which the worker's own | "
          "peak / file | target met |")
    print("|---|---|---|---|---|---|---|---|")
    for number in range(args.rounds):
        for name, pythonpath in (("current", None), ("baseline", args.baseline)):
            if name == "baseline" and not args.baseline:
                continue
            m = run(args.folder, args.dtype, args.val_split, pythonpath)
            print(f"| {name} | {number} | {m['load_s']:.2f} | {m['epoch_s']:.2f} | "
                  f"{m['peak_mb']:.0f} | {m.get('worker_mb', 0):.0f} | "
                  f"{m['peak_mb'] / file_mb:.2f} | "
                  f"{'yes' if m['peak_mb'] <= limit else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
