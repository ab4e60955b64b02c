"""Study A's Net_1 and Net_2 over many seeds: how one run's test accuracy spreads.

    python studies/seed_spread.py                 # seeds 0 to 24, 2 workers (about 9 minutes)
    python studies/seed_spread.py --seeds 10 --n-jobs 1

The recipe of fc_nets.ipynb's first table (inputs in [-1, 1], PyTorch-style initial weights,
plain SGD, batch 128, learning rate 0.03, 15 epochs, float32), one run per seed, each
reported with its last epoch's weights, as the study did. Prints every run's test accuracy
and, per net, the spread and how many runs reach the project's target for this recipe
(0.920 and 0.970) and the study's own single run.
"""
import argparse
import time

import pandas as pd

from mnistlab import sweep

RECIPE = {"preprocessing": "normalize", "init": "uniform", "batch_size": 128,
          "learning_rate": 0.03, "max_epoch": 15, "dtype": "float32", "display_freq": 10**9}
NETS = {  # model: (name, the project's target, the study's single run)
    "mlp_linear": ("Net_1 (linear)", 0.920, 0.9225),
    "mlp": ("Net_2 (ReLU)", 0.970, 0.9714),
}


def spread(runs):
    """One row per net: the test accuracy's spread over seeds, and the runs reaching each mark."""
    rows = []
    for model, (name, target, study) in NETS.items():
        acc = runs.loc[runs["model"] == model, "test_acc"]
        rows.append({"net": name, "runs": len(acc), "mean": acc.mean(), "sd": acc.std(),
                     "median": acc.median(), "min": acc.min(), "max": acc.max(),
                     "reach the target": f"{(acc >= target).sum()} (>= {target})",
                     "reach the study": f"{(acc >= study).sum()} (>= {study})"})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=25, help="seeds 0 to N - 1")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=RECIPE["max_epoch"])
    parser.add_argument("--val-size", type=int, default=5000,
                        help="validation images (55000 trains on 5,000 only: a quick check)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    runs = sweep({**RECIPE, "max_epoch": args.epochs, "val_size": args.val_size},
                 {"model": list(NETS), "seed": list(range(args.seeds))}, n_jobs=args.n_jobs)
    minutes = (time.perf_counter() - start) / 60
    print(runs.pivot_table(index="seed", columns="model", values="test_acc").round(4)
          .to_string())
    table = pd.DataFrame(spread(runs)).round(4)
    print(f"\n{args.seeds} seeds, {args.epochs} epochs, {minutes:.1f} min with "
          f"{args.n_jobs} workers\n")
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
