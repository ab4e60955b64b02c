"""The command line: `mnistlab [--config cfg.json] [--<cfg key> VALUE ...] [--out DIR]`.

The same command runs as `mnistlab` (installed), `python -m mnistlab`, and `python solver.py`
from the repository's folder. Every key of config.OPTIONS is a flag, with its default in
`--help`. Flag values are read as JSON when they parse (0.1, 100, null) and as text otherwise
(data/); a True/False key also takes true/false, yes/no and 1/0, in any case. A JSON cfg file
gives the base cfg; flags override it. The run prints the assignment's log lines, then writes
to the output folder:

    metrics.json                       cfg, final metrics and the whole history
    curves_loss.png, curves_acc.png    training curves

Exit status: 0 done, 2 bad input (cfg, data), 3 training diverged, 130 interrupted by Ctrl-C
(after writing what the completed epochs give).
"""
import argparse
import json
import os
import sys
import time

from .checks import did_you_mean
from .config import OPTIONS, takes_boolean
from .fileio import write_json

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C
BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def parse_value(text):
    """A flag's value: JSON if it parses (numbers, true/false, null), else the text itself."""
    if text.lower() == "none":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_flag(key, text):
    """The value of flag `--key TEXT`: a boolean word for True/False keys, else parse_value."""
    if takes_boolean(key) and text.lower() in BOOLEAN_WORDS:
        return BOOLEAN_WORDS[text.lower()]
    return parse_value(text)


def build_parser(prog="mnistlab"):
    parser = argparse.ArgumentParser(
        prog=prog, allow_abbrev=False,
        description="Train and test a classifier on an IDX dataset (MNIST by default), "
                    "printing the assignment's log lines. Also runs as `python -m mnistlab` "
                    "and, from the repository's folder, `python solver.py`.")
    parser.add_argument("--config", metavar="FILE", help="JSON file holding a cfg dict; "
                        "flags given as well override its values")
    parser.add_argument("--out", metavar="DIR", help="output folder for curves and metrics "
                        "(default: runs/<date>-<time>)")
    keys = parser.add_argument_group("cfg keys (default in brackets)")
    for key, option in OPTIONS.items():
        keys.add_argument(f"--{key}", type=str, default=argparse.SUPPRESS,
                          metavar="BOOL" if takes_boolean(key) else "VALUE",
                          help=f"{option.help} [{option.default!r}]")
    return parser


def unknown_flag_message(flag):
    """'unknown flag --learning_rat; did you mean --learning_rate?'"""
    hint = did_you_mean(flag.lstrip("-").split("=")[0], OPTIONS).replace("'", "")
    hint = hint.replace("mean ", "mean --") if hint else "; see --help for every flag"
    return f"unknown flag {flag}{hint}"


def read_config_file(path):
    """The cfg dict held by the JSON file at `path`.

    Raises:
        ValueError: naming the file, and the line and column of invalid JSON.
        OSError: the file cannot be read.
    """
    with open(path, encoding="utf-8") as f:
        try:
            cfg = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--config {path}: invalid JSON at line {exc.lineno}, column "
                             f"{exc.colno}: {exc.msg}") from None
        except UnicodeDecodeError:
            raise ValueError(f"--config {path}: not a UTF-8 text file") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"--config {path} must hold a JSON object of cfg keys, not "
                         f"{type(cfg).__name__}")
    return cfg


def read_cfg(args):
    """The cfg of the command line: the --config file's dict, updated with every flag given."""
    cfg = read_config_file(args.config) if args.config else {}
    cfg.update({key: parse_flag(key, text) for key, text in vars(args).items() if key in OPTIONS})
    return cfg


def write_outputs(out, runner, test_metrics):
    """The metrics and history as JSON, then the curves as PNG, in folder `out`."""
    import matplotlib
    matplotlib.use("Agg")
    from .visualize import plot_loss_and_acc, save_figure

    history = runner.history
    metrics = {"test_loss": test_metrics[0], "test_acc": test_metrics[1],
               "final_val_acc": history.val_acc[-1] if len(history) else None,
               "best_epoch": history.best_epoch, "epochs": len(history),
               "train_time": history.total_time, "interrupted": runner.interrupted,
               "cfg": {k: (v if isinstance(v, (str, int, float, bool, type(None))) else repr(v))
                       for k, v in runner.cfg.items()},
               "history": history.as_dict()}
    write_json(os.path.join(out, "metrics.json"), metrics)
    if not len(history):
        return
    loss_fig, acc_fig = plot_loss_and_acc({"train": [history.train_loss, history.train_acc],
                                           "validation": [history.val_loss, history.val_acc]})
    save_figure(loss_fig, os.path.join(out, "curves_loss.png"))
    save_figure(acc_fig, os.path.join(out, "curves_acc.png"))


def main(argv=None, prog="mnistlab"):
    """Run the command line; returns the process exit code (0 on success)."""
    try:
        return _run(argv, prog)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(argv, prog):
    from .data_home import DataNotFoundError
    from .idx import IDXError
    from .solver import Solver, TrainingDivergedError

    parser = build_parser(prog)
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
    if runner.interrupted:
        write_outputs(out, runner, (None, None))
        print(f"The {len(runner.history)} completed epochs are written to {out}/ (not tested).",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    test_loss, test_acc = runner.test()
    print("Final test accuracy {:.4f}".format(test_acc))
    write_outputs(out, runner, (test_loss, test_acc))
    print(f"Curves and metrics written to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m mnistlab.cli"))
