"""The command line: `python solver.py [--config cfg.json] [--<cfg key> VALUE ...] [--out DIR]`.

Every key of config.OPTIONS is a flag, with its default in `--help`. Flag values are read as
JSON when they parse (0.1, 100, true, null) and as text otherwise (data/). A JSON cfg file
gives the base cfg; flags override it. The run prints the assignment's log lines, then writes
to the output folder:

    curves_loss.png, curves_acc.png    training curves
    metrics.json                       cfg, final metrics and the whole history
"""
import argparse
import json
import os
import sys
import time

from .checks import did_you_mean
from .config import OPTIONS
from .fileio import atomic_write, write_json

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


def parse_value(text):
    """A flag's value: JSON if it parses (numbers, true/false, null), else the text itself."""
    if text.lower() == "none":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python solver.py", allow_abbrev=False,
        description="Train and test a classifier on an IDX dataset (MNIST by default), "
                    "printing the assignment's log lines.")
    parser.add_argument("--config", metavar="FILE", help="JSON file holding a cfg dict; "
                        "flags given as well override its values")
    parser.add_argument("--out", metavar="DIR", help="output folder for curves and metrics "
                        "(default: runs/<date>-<time>)")
    keys = parser.add_argument_group("cfg keys (default in brackets)")
    for key, option in OPTIONS.items():
        keys.add_argument(f"--{key}", type=parse_value, default=argparse.SUPPRESS,
                          metavar="VALUE", help=f"{option.help} [{option.default!r}]")
    return parser


def unknown_flag_message(flag):
    """'unknown flag --learning_rat; did you mean --learning_rate?'"""
    hint = did_you_mean(flag.lstrip("-").split("=")[0], OPTIONS).replace("'", "")
    hint = hint.replace("mean ", "mean --") if hint else "; see --help for every flag"
    return f"unknown flag {flag}{hint}"


def read_cfg(args):
    """The cfg of the command line: the --config file's dict, updated with every flag given."""
    cfg = {}
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            cfg = json.load(f)
        if not isinstance(cfg, dict):
            raise ValueError(f"{args.config} must hold a JSON object of cfg keys, not "
                             f"{type(cfg).__name__}")
    cfg.update({key: value for key, value in vars(args).items() if key in OPTIONS})
    return cfg


def save_figure(figure, path):
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=100)


def write_outputs(out, runner, test_metrics):
    """The curves as PNG and the metrics and history as JSON, in folder `out`."""
    import matplotlib
    matplotlib.use("Agg")
    from .visualize import plot_loss_and_acc

    history = runner.history
    loss_fig, acc_fig = plot_loss_and_acc({"train": [history.train_loss, history.train_acc],
                                           "validation": [history.val_loss, history.val_acc]})
    save_figure(loss_fig, os.path.join(out, "curves_loss.png"))
    save_figure(acc_fig, os.path.join(out, "curves_acc.png"))
    metrics = {"test_loss": test_metrics[0], "test_acc": test_metrics[1],
               "final_val_acc": history.val_acc[-1] if len(history) else None,
               "best_epoch": history.best_epoch, "epochs": len(history),
               "train_time": history.total_time, "interrupted": runner.interrupted,
               "cfg": {k: (v if isinstance(v, (str, int, float, bool, type(None))) else repr(v))
                       for k, v in runner.cfg.items()},
               "history": history.as_dict()}
    write_json(os.path.join(out, "metrics.json"), metrics)


def main(argv=None):
    """Run the command line; returns the process exit code (0 on success)."""
    from .dataloader import DataNotFoundError
    from .idx import IDXError
    from .solver import Solver, TrainingDivergedError

    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(unknown_flag_message(unknown[0]))
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    try:
        runner = Solver(read_cfg(args))
    except (ValueError, DataNotFoundError, IDXError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        runner.train()
    except TrainingDivergedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    test_loss, test_acc = runner.test()
    print("Final test accuracy {:.4f}".format(test_acc))
    write_outputs(out, runner, (test_loss, test_acc))
    print(f"Curves and metrics written to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
