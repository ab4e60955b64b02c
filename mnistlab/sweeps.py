"""Hyper-parameter sweeps: train every combination of a grid of cfg values, tabulate the results.

    from .sweep import sweep
    base = {'data_root': 'data', 'max_epoch': 10, 'momentum': 0.9, 'display_freq': 50}
    result = sweep(base, {'learning_rate': [0.001, 0.01, 0.1], 'batch_size': [50, 100]},
                   n_jobs=2)
    result                     # an aligned table in a terminal, an HTML table in a notebook
    result.best()              # the run with the highest best_val_acc
    result.column('test_acc')  # one value per run, in grid order
    result.to_csv('runs/lr_batch.csv')     # the table
    result.to_json('runs/lr_batch.json')   # the table and every run's history
    SweepResult.from_json('runs/lr_batch.json')

A controlled comparison. Every run gets the same seed, the base cfg's (0 when it has none), so
runs share their initial weights and their shuffling order wherever the swept values allow
(a different batch size reads the same permutation in different chunks): the runs differ by
the swept values alone, not by luck. The seed is fixed in each run's cfg before the runs are
dispatched, and each run limits its BLAS library to the same number of threads (sums split
over more threads round differently), so a sweep gives the same numbers, wall times apart,
whatever `n_jobs` and wherever it runs. To measure
the run-to-run spread instead, sweep the seed itself: `grid={'seed': [0, 1, 2], ...}`.

Parallel and distributed runs. Runs are dispatched with joblib, so any joblib backend runs
them. Locally, `n_jobs=2` trains two at a time in worker processes. Each run keeps to one
core: `blas_threads=1` limits its BLAS library to one thread, and its batches are not
prefetched in a second thread (unless its cfg sets 'prefetch'), so that the sweep's own
processes are what uses the cores, and parallel runs do not fight over them.

On a cluster, every worker must be able to import this project (the same code, e.g.
installed with `pip install -e .`) and read `data_root` (a shared folder, or a copy at the
same path). On a Dask cluster (`pip install "dask[distributed]"`), connect a client and
choose the 'dask' backend, which spreads the runs over all the cluster's worker threads:

    import joblib
    from distributed import Client
    client = Client('tcp://scheduler-host:8786')   # or Client() for a cluster on this machine
    with joblib.parallel_config(backend='dask'):
        result = sweep(base, grid, n_jobs=-1)

On a Ray cluster (`pip install "ray[default]"`; plain `ray` is enough for a local instance,
which the tests use), register Ray's joblib backend first:

    import joblib
    import ray
    from ray.util.joblib import register_ray
    ray.init()                                      # or ray.init(address='auto')
    register_ray()
    with joblib.parallel_config(backend='ray'):
        result = sweep(base, grid, n_jobs=-1)
"""
import contextlib
import csv
import html
import io
import itertools
import json
import math
import numbers
import os

import joblib
import numpy as np
from threadpoolctl import threadpool_limits

from .config import ConfigError, validate_cfg
from .data_home import find_data_root
from .fileio import atomic_write, write_json
from .solver import Solver, TrainingDivergedError

# What every run reports, in table order; each row also keeps the run's history.
METRICS = ("final_val_acc", "best_val_acc", "best_epoch", "test_acc", "test_loss",
           "final_train_loss", "train_time", "epochs_to_threshold", "time_to_threshold",
           "diverged")
# Metrics where smaller is better, for SweepResult.best().
LOWER_IS_BETTER = frozenset({"test_loss", "final_train_loss", "train_time",
                             "epochs_to_threshold", "time_to_threshold"})
# Wall-clock measures: they vary from run to run and machine to machine.
WALL_TIMES = ("train_time", "time_to_threshold")
DEFAULT_SEED = 0


def _plain(value):
    """A numpy scalar as the Python number it holds (JSON and CSV want those); else as is."""
    return value.item() if isinstance(value, np.generic) else value


def grid_values(grid):
    """The grid checked and normalised: {cfg key: list of values}, in the grid's key order.

    Raises:
        ConfigError: the grid is not a dict, or a value is not a non-empty list of values.
    """
    if not isinstance(grid, dict):
        raise ConfigError(f"grid must be a dict of cfg key -> list of values, got "
                          f"{type(grid).__name__}")
    values = {}
    for key, options in grid.items():
        if isinstance(options, (str, bytes, dict)) or not hasattr(options, "__iter__"):
            raise ConfigError(f"grid[{key!r}] = {options!r} must be a list of values to try, "
                              f"e.g. [{options!r}]")
        values[key] = [_plain(value) for value in options]
        if not values[key]:
            raise ConfigError(f"grid[{key!r}] is empty: give at least one value to try")
    return values


def run_cfgs(base_cfg, grid):
    """The cfg of every run: base_cfg updated with each combination of the grid's values.

    Combinations follow itertools.product in the grid's key order (the last key varies
    fastest). Every cfg is validated here, before anything is trained, and gets an explicit
    seed: its own if the grid sets one, else the base cfg's, else DEFAULT_SEED. base_cfg is
    only checked as part of each combination: it may hold keys that need a swept value,
    e.g. beta1 for a grid over optimizer ['adam', 'adamax'].

    Returns:
        (swept, cfgs): swept[i] is {grid key: value} of run i, cfgs[i] its whole cfg.

    Raises:
        ConfigError: an unknown key or impossible value in base_cfg or the grid, or a cfg a
            sweep cannot run (a model object, which every run would share and train in turn,
            or a checkpoint_dir, whose files every run would overwrite).
    """
    if not isinstance(base_cfg, dict):
        raise ConfigError(f"base_cfg must be a cfg dict, got {type(base_cfg).__name__}")
    values = grid_values(grid)
    swept = [dict(zip(values, combination)) for combination in itertools.product(*values.values())]
    cfgs = []
    for changes in swept:
        cfg = {**base_cfg, **changes}
        full = validate_cfg(cfg)
        if not isinstance(full["model"], str):
            raise ConfigError("a sweep builds a fresh model for every run: give cfg['model'] by "
                              "name (e.g. 'softmax', 'mlp'), not as a model object")
        if full["checkpoint_dir"] is not None:
            raise ConfigError(f"cfg['checkpoint_dir'] = {full['checkpoint_dir']!r}: every run "
                              "of a sweep would overwrite the same checkpoint files; remove it")
        if full["seed"] is None:
            cfg["seed"] = DEFAULT_SEED
        # Workers may start in another folder: point them at the same data.
        cfg["data_root"] = (find_data_root() if full["data_root"] is None
                            else os.path.abspath(full["data_root"]))
        cfgs.append(cfg)
    return swept, cfgs


def measures(history, test_loss, test_acc, threshold, diverged):
    """A run's row of METRICS (None where the run has no such value) and its history."""
    trained = len(history) > 0
    return {
        "final_val_acc": history.val_acc[-1] if trained else None,
        "best_val_acc": max(history.val_acc) if trained else None,
        "best_epoch": history.best_epoch,
        "test_acc": test_acc,
        "test_loss": test_loss,
        "final_train_loss": history.train_loss[-1] if trained else None,
        "train_time": history.total_time,
        "epochs_to_threshold": history.epochs_to_reach(threshold),
        "time_to_threshold": history.time_to_reach(threshold),
        "diverged": diverged,
        "history": history.as_dict(),
    }


def train_and_measure(cfg, threshold=0.9, verbose=False, blas_threads=1):
    """Train one run of `cfg`, test it, and return its measures (see `measures`).

    A run whose training diverges is not an error of the sweep: it is reported with
    diverged=True, the epochs it completed, and no test measures (None).

    Raises:
        KeyboardInterrupt: training was interrupted (Solver.train() itself returns normally
            on Ctrl-C; a sweep must stop altogether instead).
    """
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with threadpool_limits(limits=blas_threads), quiet:
        runner = Solver(cfg)
        diverged = False
        try:
            runner.train()
        except TrainingDivergedError:
            diverged = True
        if runner.interrupted:
            raise KeyboardInterrupt
        test_loss, test_acc = (None, None) if diverged else runner.test()
    return measures(runner.history, test_loss, test_acc, threshold, diverged)


def _check_sweep_options(threshold, blas_threads):
    if not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold={threshold!r}; it must be a validation accuracy in [0, 1]")
    if blas_threads is not None and (not isinstance(blas_threads, numbers.Integral)
                                     or blas_threads < 1):
        raise ValueError(f"blas_threads={blas_threads!r}; it must be a whole number >= 1, or "
                         "None to leave the BLAS library's threads alone")


def sweep(base_cfg, grid, n_jobs=1, threshold=0.9, verbose=False, blas_threads=1):
    """Train a run for every combination of the grid's values; collect one row per run.

    Args:
        base_cfg: cfg dict shared by every run (see config.OPTIONS).
        grid: {cfg key: list of values}; the runs are itertools.product of the lists, in the
            grid's key order. An empty grid trains base_cfg once.
        n_jobs: runs trained at the same time (joblib's n_jobs: -1 for one per core). Inside
            `joblib.parallel_config(backend=...)` the chosen backend runs them (module doc).
        threshold: validation accuracy for the epochs_to_threshold and time_to_threshold
            columns.
        verbose: let every run print the Solver's log lines (silenced by default).
        blas_threads: BLAS threads per run (None: the library's default). With n_jobs
            workers, n_jobs * blas_threads should not exceed the cores. A cfg that sets its
            own 'blas_threads' key keeps that value while it trains and tests. For the same
            reason, runs prefetch no batches unless their cfg sets 'prefetch'.

    Returns:
        A SweepResult: per run, the swept values, METRICS and the history.

    Raises:
        ConfigError: a bad key or value in base_cfg or the grid, found before any training.
    """
    _check_sweep_options(threshold, blas_threads)
    swept, cfgs = run_cfgs(base_cfg, grid)
    cfgs = [{"prefetch": 0, **cfg} for cfg in cfgs]  # one core per run (module doc)
    results = joblib.Parallel(n_jobs=n_jobs)(
        joblib.delayed(train_and_measure)(cfg, threshold, verbose, blas_threads) for cfg in cfgs)
    rows = [{**changes, **result} for changes, result in zip(swept, results)]
    base = {key: _plain(value) for key, value in base_cfg.items()}
    return SweepResult(rows, params=list(grid), base_cfg=base, threshold=threshold)


# ---- the results table ----

def _format(value):
    """A table cell: 4 significant digits for reals, '-' for a missing value."""
    if value is None:
        return "-"
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return f"{value:.4g}"
    return str(value)


def _is_number(value):
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


class SweepResult:
    """The rows of a sweep, one dict per run, with ways to look at them and save them.

    Attributes:
        rows: list of dicts: the swept cfg values, then METRICS, then 'history' (a dict of
            per-epoch lists, see history.History.as_dict).
        params: the swept cfg keys, in the grid's order.
        base_cfg: the cfg every run started from (None if unknown).
        threshold: the validation accuracy the *_to_threshold columns refer to.
    """

    def __init__(self, rows, params=(), base_cfg=None, threshold=None):
        self.rows = list(rows)
        self.params = list(params)
        self.base_cfg = base_cfg
        self.threshold = threshold

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, index):
        """A row (dict) for an int index; a SweepResult of those rows for a slice."""
        if isinstance(index, slice):
            return self._with_rows(self.rows[index])
        return self.rows[index]

    def _with_rows(self, rows):
        return SweepResult(rows, self.params, self.base_cfg, self.threshold)

    @property
    def columns(self):
        """Every column name but 'history': the swept keys first, then the others by first
        appearance."""
        names = dict.fromkeys(self.params)
        for row in self.rows:
            names.update(dict.fromkeys(key for key in row if key != "history"))
        return list(names)

    def column(self, name):
        """The values of column `name`, one per run (None where a run lacks it)."""
        if name != "history" and name not in self.columns:
            raise KeyError(f"no column {name!r}; the columns are {', '.join(self.columns)}")
        return [row.get(name) for row in self.rows]

    def where(self, **values):
        """The runs whose columns equal every given value, e.g. where(batch_size=100)."""
        for name in values:
            self.column(name)
        return self._with_rows(row for row in self.rows
                               if all(row.get(name) == value for name, value in values.items()))

    def best(self, metric="best_val_acc", higher_is_better=None):
        """The row with the best value of `metric` (the first, on ties).

        Higher is better unless the metric is a loss, a time or an epoch count
        (LOWER_IS_BETTER); `higher_is_better` overrides that. Runs without a value (e.g.
        never reached the threshold) are skipped. Choose by a validation metric: choosing
        the model by test accuracy would make the test accuracy an optimistic estimate.
        """
        values = self.column(metric)
        if higher_is_better is None:
            higher_is_better = metric not in LOWER_IS_BETTER
        known = [i for i, value in enumerate(values)
                 if value is not None and not (isinstance(value, float) and math.isnan(value))]
        if not known:
            raise ValueError(f"no run has a value for {metric!r}")
        sign = 1 if higher_is_better else -1
        return self.rows[max(known, key=lambda i: (sign * values[i], -i))]

    def without_times(self):
        """The rows without their wall-clock measures (WALL_TIMES and the histories'
        epoch_time): what two runs of the same sweep must agree on exactly."""
        rows = []
        for row in self.rows:
            row = {key: value for key, value in row.items() if key not in WALL_TIMES}
            if "history" in row:
                row["history"] = {field: values for field, values in row["history"].items()
                                  if field != "epoch_time"}
            rows.append(row)
        return rows

    # ---- rendering ----

    def _cells(self):
        """(header, rows of cell strings, which columns are numeric)."""
        columns = self.columns
        cells = [[_format(row.get(name)) for name in columns] for row in self.rows]
        numeric = [all(_is_number(v) or v is None for v in self.column(name)) for name in columns]
        return columns, cells, numeric

    def to_text(self):
        """An aligned plain-text table, one line per run (numbers right-aligned)."""
        columns, cells, numeric = self._cells()
        widths = [max(len(text) for text in column) for column in zip(columns, *cells)]

        def line(texts):
            return "  ".join(text.rjust(width) if right else text.ljust(width)
                             for text, width, right in zip(texts, widths, numeric)).rstrip()
        rule = "  ".join("-" * width for width in widths)
        return "\n".join([line(columns), rule] + [line(row) for row in cells])

    def __repr__(self):
        return self.to_text() if self.rows else "SweepResult(no runs)"

    __str__ = __repr__

    def _repr_html_(self):
        """An HTML table, as a notebook shows it."""
        columns, cells, numeric = self._cells()
        align = ['style="text-align: right"' if right else 'style="text-align: left"'
                 for right in numeric]
        head = "".join(f"<th {a}>{html.escape(name)}</th>" for name, a in zip(columns, align))
        body = "".join("<tr>" + "".join(f"<td {a}>{html.escape(text)}</td>"
                                        for text, a in zip(row, align)) + "</tr>"
                       for row in cells)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    # ---- files ----

    def to_csv(self, path):
        """Write the table (every column but the histories) as CSV, atomically."""
        columns = self.columns
        with atomic_write(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows([["" if row.get(name) is None else row.get(name) for name in columns]
                              for row in self.rows])

    def to_json(self, path):
        """Write everything, histories included, as JSON, atomically; see from_json."""
        write_json(path, {"params": self.params, "base_cfg": self.base_cfg,
                          "threshold": self.threshold, "rows": self.rows})

    @classmethod
    def from_json(cls, path):
        """Load a SweepResult written by to_json."""
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise ValueError(f"{path} is not a sweep written by SweepResult.to_json (it has no "
                             "'rows' list)")
        return cls(data["rows"], data.get("params", ()), data.get("base_cfg"),
                   data.get("threshold"))
