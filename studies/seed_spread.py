"""Study A's Net_1 and Net_2 over many seeds: how one run's test accuracy spreads.

    python studies/seed_spread.py                 # seeds 0 to 24, 2 workers (about 9 minutes)
    python studies/seed_spread.py --grid          # Net_1's published grid cells, seeds 0 to 24
    python studies/seed_spread.py --seeds 10 --n-jobs 1

The recipe of fc_nets.ipynb's first table (inputs in [-1, 1], PyTorch-style initial weights,
plain SGD, batch 128, learning rate 0.03, 15 epochs, float32), one run per seed, each
reported with its last epoch's weights, as the study did. Prints every run's test accuracy
and, per net, the spread and how many runs reach the project's target for this recipe
(0.920 and 0.970) and the study's own single run.

With --grid, Net_1 on the rows of the study's grid that it published (batch 128 at learning
rates 0.01, 0.02 and 0.03, batch 256 at 0.01), each run tested after 3, 5, 7, 10 and 15
epochs (with a constant learning rate, the 3-epoch model of a 15-epoch run is that of a
3-epoch run). For every published cell: our runs' median and range, the study's number,
and the share of our runs below it (where the study's one run falls among ours).
"""
import argparse
import time

import pandas as pd

import study_a
from mnistlab import sweep

RECIPE = {"preprocessing": "normalize", "init": "uniform", "batch_size": 128,
          "learning_rate": 0.03, "max_epoch": 15, "dtype": "float32", "display_freq": 10**9}
NETS = {  # model: (name, the project's target for this recipe)
    "mlp_linear": ("Net_1 (linear)", 0.920),
    "mlp": ("Net_2 (ReLU)", 0.970),
}


def spread(runs):
    """One row per net: the test accuracy's spread over seeds, and the runs reaching each mark."""
    rows = []
    for model, (name, target) in NETS.items():
        acc, study = runs.loc[runs["model"] == model, "test_acc"], study_a.NETS[model][0]
        rows.append({"net": name, "runs": len(acc), "mean": acc.mean(), "sd": acc.std(),
                     "median": acc.median(), "min": acc.min(), "max": acc.max(),
                     "reach the target": f"{(acc >= target).sum()} (>= {target})",
                     "reach the study": f"{(acc >= study).sum()} (>= {study})"})
    return rows


def grid_spread(runs):
    """One row per published grid cell: our runs' test accuracy there, the study's number,
    and the share of our runs below it. `runs` is a sweep with eval_epochs."""
    rows = []
    for (batch, rate), published in study_a.GRID.items():
        for epochs, study in zip(study_a.GRID_EPOCHS, published):
            cell = runs[(runs["batch_size"] == batch) & (runs["learning_rate"] == rate)
                        & (runs["epoch"] == epochs)]
            if cell.empty:
                continue
            acc = cell["test_acc"]
            rows.append({"batch": batch, "lr": rate, "epochs": epochs, "runs": len(acc),
                         "median": acc.median(), "min": acc.min(), "max": acc.max(),
                         "study": study, "ours below the study": (acc < study).mean()})
    return rows


def run_nets(args):
    runs = sweep({**RECIPE, "max_epoch": args.epochs, "val_size": args.val_size},
                 {"model": list(NETS), "seed": list(range(args.seeds))}, n_jobs=args.n_jobs)
    print(runs.pivot_table(index="seed", columns="model", values="test_acc").round(4)
          .to_string())
    return pd.DataFrame(spread(runs)).round(4)


def run_grid(args):
    epochs = [count for count in study_a.GRID_EPOCHS if count <= args.epochs]
    runs = sweep({**RECIPE, "model": "mlp_linear", "max_epoch": max(epochs),
                  "val_size": args.val_size},
                 [{"batch_size": [batch], "learning_rate": [rate], "seed": list(range(args.seeds))}
                  for batch, rate in study_a.GRID], eval_epochs=epochs, n_jobs=args.n_jobs)
    return pd.DataFrame(grid_spread(runs)).round(4)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", action="store_true",
                        help="Net_1 on the study's published grid cells instead")
    parser.add_argument("--seeds", type=int, default=25, help="seeds 0 to N - 1")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=RECIPE["max_epoch"])
    parser.add_argument("--val-size", type=int, default=5000,
                        help="validation images (55000 trains on 5,000 only: a quick check)")
    args = parser.parse_args(argv)
    if args.grid and args.epochs < min(study_a.GRID_EPOCHS):
        parser.error(f"--grid tests after {', '.join(map(str, study_a.GRID_EPOCHS))} epochs: "
                     f"give --epochs {min(study_a.GRID_EPOCHS)} or more")
    start = time.perf_counter()
    table = run_grid(args) if args.grid else run_nets(args)
    minutes = (time.perf_counter() - start) / 60
    print(f"\n{args.seeds} seeds, {args.epochs} epochs, {minutes:.1f} min with "
          f"{args.n_jobs} workers\n")
    print(table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
