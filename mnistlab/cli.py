"""The command line: `mnistlab [--config cfg.json] [--<cfg key> VALUE ...] [--out DIR]`.

The same command runs as `mnistlab` (installed), `python -m mnistlab`, and `python solver.py`
from the repository's folder. Every key of config.OPTIONS is a flag, with its default in
`--help`. Flag values are read as JSON when they parse (0.1, 100, null) and as text otherwise
(data/); a True/False key also takes true/false, yes/no and 1/0, in any case. A JSON cfg file
gives the base cfg; flags override it. The run prints the assignment's log lines, then writes
to the output folder:

    metrics.json                       cfg, final metrics and the whole history
    curves_loss.png, curves_acc.png    training curves

The output folder (and cfg['checkpoint_dir']) is created and probed before training: a
folder, writable, with some free space; a run never trains for an hour to fail at the end.
metrics.json is written before the pictures.

Exit status: 0 done, 1 an output cannot be written (or another error of the system: a full
disk, no memory), 2 bad input (cfg, data, checkpoint), 3 training diverged, 130 interrupted
by Ctrl-C (after writing what the completed epochs give). Every error is one line on stderr,
never a traceback.
"""
import argparse
import contextlib
import os
import sys
import time

from .checks import did_you_mean
from .config import (MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, OPTIONS, ConfigError, takes_boolean,
                     validate_cfg)
from .fileio import (OutputError, describe_write_error, loads_json, prepare_output_dir,
                     read_at_most, write_json)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command ended by Ctrl-C
BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
OUT_FREE_BYTES = 4 << 20  # metrics.json and two PNG figures take a few hundred KB


def parse_value(text):
    """A flag's value: JSON if it parses (numbers, true/false, null), else the text itself."""
    if text.lower() == "none":
        return None
    try:
        return loads_json(text, MAX_CONFIG_DEPTH)
    except ValueError:  # not JSON, too deep, an integer of thousands of digits: the text
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
    """The cfg dict held by the JSON file at `path`: at most MAX_CONFIG_BYTES, nested at most
    MAX_CONFIG_DEPTH deep (config.py). A pipe works too (`--config <(...)`).

    Raises:
        ConfigError: naming the file, and what is wrong (the line and column of invalid JSON).
        OSError: the file cannot be opened.
    """
    with open(path, "rb") as f:
        data = read_at_most(f, MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"--config {path}: larger than {MAX_CONFIG_BYTES} bytes; a cfg file "
                          "holds a JSON object of a few dozen keys")
    try:
        cfg = loads_json(data.decode("utf-8"), MAX_CONFIG_DEPTH)
    except UnicodeDecodeError:
        raise ConfigError(f"--config {path}: not a UTF-8 text file") from None
    except ValueError as exc:
        raise ConfigError(f"--config {path}: {exc}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"--config {path} must hold a JSON object of cfg keys, not "
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
    _written(write_json, os.path.join(out, "metrics.json"), metrics)
    if not len(history):
        return
    loss_fig, acc_fig = plot_loss_and_acc({"train": [history.train_loss, history.train_acc],
                                           "validation": [history.val_loss, history.val_acc]})
    _written(save_figure, loss_fig, os.path.join(out, "curves_loss.png"))
    _written(save_figure, acc_fig, os.path.join(out, "curves_acc.png"))


def _written(write, *args):
    """Call write(*args), which writes the path among args atomically; an OSError becomes an
    OutputError naming that path."""
    path = next(arg for arg in args if isinstance(arg, str))
    try:
        write(*args)
    except OutputError:
        raise
    except OSError as exc:
        raise describe_write_error(path, exc) from None


def main(argv=None, prog="mnistlab"):
    """Run the command line; returns the process exit code (0 on success)."""
    try:
        return _run(argv, prog)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print("error: out of memory: choose a smaller model, batch_size or prefetch",
              file=sys.stderr)
        return EXIT_FAILED


def missing_folders(path):
    """The folders of `path` that do not exist yet, innermost first: those that making
    `path` would create (e.g. ['runs/20260101-120000', 'runs'] in a folder without runs/)."""
    missing = []
    path = os.path.normpath(path)
    while path not in ("", os.curdir) and not os.path.lexists(path):   # the root always exists
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def _error(exc):
    """Print `exc` as one line on stderr."""
    print(f"error: {exc}", file=sys.stderr)


def _write_completed(out, runner, why):
    """Write the completed epochs' outputs after training stopped early, if possible."""
    try:
        write_outputs(out, runner, (None, None))
    except OSError as exc:
        _error(exc)
    else:
        print(f"The {len(runner.history)} completed epochs are written to {out}/ ({why}, not "
              "tested).", file=sys.stderr)


def _run(argv, prog):
    from .data_home import DataNotFoundError
    from .idx import IDXError
    from .solver import Solver, TrainingDivergedError

    parser = build_parser(prog)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(unknown_flag_message(unknown[0]))
    out = args.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    created = missing_folders(out)
    try:
        cfg = validate_cfg(read_cfg(args))
        prepare_output_dir(out, "--out", OUT_FREE_BYTES)
        runner = Solver(cfg)
    except (ValueError, DataNotFoundError, IDXError, OSError) as exc:
        for folder in created:  # leave no empty output folder behind
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        _error(exc)
        bad_input = (isinstance(exc, (ValueError, DataNotFoundError, IDXError))
                     and not isinstance(exc, OutputError))
        return EXIT_BAD_INPUT if bad_input else EXIT_FAILED
    try:
        runner.train()
    except TrainingDivergedError as exc:
        _error(exc)
        return EXIT_DIVERGED
    except OSError as exc:  # a checkpoint could not be written: the last good one is kept
        _error(exc)
        _write_completed(out, runner, "training stopped")
        return EXIT_FAILED
    if runner.interrupted:
        _write_completed(out, runner, "interrupted")
        return EXIT_INTERRUPTED
    test_loss, test_acc = runner.test()
    print("Final test accuracy {:.4f}".format(test_acc))
    try:
        write_outputs(out, runner, (test_loss, test_acc))
    except OSError as exc:
        _error(exc)
        return EXIT_FAILED
    print(f"Curves and metrics written to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m mnistlab.cli"))
