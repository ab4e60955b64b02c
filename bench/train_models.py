"""Train every model with its documented cfg on MNIST and report test accuracy and time.

    python bench/train_models.py                  # all four models, full length
    python bench/train_models.py --models cnn     # one of them

These are the cfgs behind the accuracy table in README.md. Each run restores the weights
of its best validation epoch at the end (early stopping's patience is longer than the run
for the MLPs, so they train every epoch).
"""
import argparse
import contextlib
import io

import numpy as np


from mnistlab import Solver

COMMON = {"seed": 0, "dtype": "float32",
          "display_freq": 10**9}
DOCUMENTED_CFGS = {
    "softmax": {"model": "softmax", "max_epoch": 10, "batch_size": 100, "learning_rate": 0.01,
                "momentum": 0.9},
    "mlp": {"model": "mlp", "max_epoch": 15, "batch_size": 128, "learning_rate": 0.03,
            "momentum": 0.9, "lr_schedule": "cosine", "patience": 15},
    "mlp_bn": {"model": "mlp_bn", "max_epoch": 15, "batch_size": 128, "learning_rate": 0.03,
               "momentum": 0.9, "lr_schedule": "cosine", "patience": 15},
    "cnn": {"model": "cnn", "max_epoch": 8, "batch_size": 64, "optimizer": "adam",
            "learning_rate": 0.001, "lr_schedule": "cosine", "patience": 8},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DOCUMENTED_CFGS),
                        choices=DOCUMENTED_CFGS)
    args = parser.parse_args()
    print("| model | cfg | epochs | s / epoch (median) | first, slowest epoch (s) | best val acc "
          "| test acc |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        cfg = {**COMMON, **DOCUMENTED_CFGS[name]}
        runner = Solver(cfg)
        with contextlib.redirect_stdout(io.StringIO()):
            runner.train()
        history = runner.history
        shown = ", ".join(f"{k}={v}" for k, v in DOCUMENTED_CFGS[name].items() if k != "model")
        times = history.epoch_time
        print(f"| {name} | {shown} | {len(history)} | {np.median(times):.1f} | "
              f"{times[0]:.1f}, {max(times):.1f} | {max(history.val_acc):.4f} | "
              f"{runner.test()[1]:.4f} |", flush=True)


if __name__ == "__main__":
    main()
