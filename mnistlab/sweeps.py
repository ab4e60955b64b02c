"""Hyper-parameter sweeps: train every combination of a grid of cfg values, one table row per run.

    from mnistlab.sweeps import best_run, load_sweep, save_sweep, sweep
    base = {'data_root': 'data', 'max_epoch': 10, 'momentum': 0.9, 'display_freq': 50}
    df = sweep(base, {'learning_rate': [0.001, 0.01, 0.1], 'batch_size': [50, 100]},
               n_jobs=2)
    df.drop(columns='history')            # the table, in a notebook or a terminal
    df.sort_values('best_val_acc', ascending=False)
    df[df.batch_size == 100]              # the runs of one batch size
    best_run(df)                          # the row of the highest best_val_acc (validation)
    df.loc[0, 'history']['val_acc']       # run 0's validation accuracy, epoch by epoch
    df.drop(columns='history').to_csv('runs/lr_batch.csv', index=False)
    save_sweep(df, 'runs/lr_batch.json'); load_sweep('runs/lr_batch.json')

A list of grids trains each grid's combinations in turn (as scikit-learn's ParameterGrid
does), for runs that a single product cannot describe, here six batch sizes and one longer
run; test=False leaves the test set alone while hyper-parameters are chosen, and progress
shows a bar of finished runs:

    df = sweep(base, [{'batch_size': [20, 100, 200]},
                      {'batch_size': [200], 'max_epoch': [30]}],
               n_jobs=2, test=False, progress='Batch sizes')

With keep_models=True each row also holds its trained model, to test the run chosen on
validation once the choice is made (with a 'patience' as long as the runs, which stops none,
the kept weights are those of the run's best validation epoch):

    Solver({'data_root': 'data', 'model': best_run(df)['trained_model']}).test()

The result is a pandas DataFrame, one row per run in grid order: the swept cfg keys, then
METRICS, then 'history', each run's dict of per-epoch lists (history.FIELDS). Curves for
plot_loss_and_acc:

    plot_loss_and_acc({f'lr={run.learning_rate}': [run.history['train_loss'],
                                                   run.history['train_acc']]
                       for run in df.itertuples()})

df.attrs holds the sweep's context: 'params' (the swept keys), 'base_cfg' and 'threshold'.
Beyond pandas, three helpers: best_run (the best row by a metric, lower is better for
losses, times and epoch counts), without_times (for comparing two sweeps exactly:
`without_times(a).equals(without_times(b))`), and save_sweep/load_sweep (JSON keeping the
histories, attrs, dtypes and every digit, which df.to_json's 10 digits do not).

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
        df = sweep(base, grid, n_jobs=-1)

On a Ray cluster (`pip install "ray[default]"`; plain `ray` is enough for a local instance,
which the tests use), register Ray's joblib backend first:

    import joblib
    import ray
    from ray.util.joblib import register_ray
    ray.init()                                      # or ray.init(address='auto')
    register_ray()
    with joblib.parallel_config(backend='ray'):
        df = sweep(base, grid, n_jobs=-1)
"""
import contextlib
import copy
import io
import itertools
import json
import numbers
import os
import warnings

import joblib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .checks import check_count
from .config import ConfigError, defaults, validate_cfg
from .data_home import find_data_root
from .fileio import write_json
from .solver import Solver, TrainingDivergedError

# What every run reports, in column order, with the column's dtype whatever the runs gave:
# NaN where a run has no value (a diverged run's test_acc), <NA> for a count it never
# reached. Each row also keeps the run's history, in the column 'history'.
METRIC_DTYPES = {"final_val_acc": "float64", "best_val_acc": "float64", "best_epoch": "Int64",
                 "test_acc": "float64", "test_loss": "float64", "final_train_loss": "float64",
                 "train_time": "float64", "epochs_to_threshold": "Int64",
                 "time_to_threshold": "float64", "diverged": "bool"}
METRICS = tuple(METRIC_DTYPES)
# Metrics where smaller is better, for best_run().
LOWER_IS_BETTER = frozenset({"test_loss", "final_train_loss", "train_time",
                             "epochs_to_threshold", "time_to_threshold"})
# Wall-clock measures: they vary from run to run and machine to machine.
WALL_TIMES = ("train_time", "time_to_threshold")
# The column of the trained models, with keep_models=True.
MODEL_COLUMN = "trained_model"
DEFAULT_SEED = 0


def _plain(value):
    """A numpy scalar as the Python number it holds (JSON wants those); else as is."""
    return value.item() if isinstance(value, np.generic) else value


def grid_values(grid):
    """The grid checked and normalised: {cfg key: list of values}, in the grid's key order.

    Raises:
        ConfigError: the grid is not a dict, or a value is not a non-empty list of values.
    """
    if not isinstance(grid, dict):
        raise ConfigError(f"grid must be a dict of cfg key -> list of values (or a list of "
                          f"such dicts), got {type(grid).__name__}")
    values = {}
    for key, options in grid.items():
        if isinstance(options, (str, bytes, dict)) or not hasattr(options, "__iter__"):
            raise ConfigError(f"grid[{key!r}] = {options!r} must be a list of values to try, "
                              f"e.g. [{options!r}]")
        values[key] = [_plain(value) for value in options]
        if not values[key]:
            raise ConfigError(f"grid[{key!r}] is empty: give at least one value to try")
    return values


def grid_list(grid):
    """The grid as a list of grids, each checked by grid_values: a dict gives [that dict], a
    list of dicts gives them all (an empty dict in it stands for the base cfg alone).

    Raises:
        ConfigError: neither a dict nor a non-empty list of dicts, or a bad grid in it.
    """
    if isinstance(grid, (list, tuple)):
        if not grid or not all(isinstance(part, dict) for part in grid):
            raise ConfigError("a list of grids must hold at least one grid, each a dict of cfg "
                              f"key -> list of values; got {grid!r}")
        return [grid_values(part) for part in grid]
    return [grid_values(grid)]


def swept_keys(grid):
    """The keys a grid (or list of grids) sweeps, in order of first appearance."""
    return list(dict.fromkeys(key for part in grid_list(grid) for key in part))


def run_cfgs(base_cfg, grid):
    """The cfg of every run: base_cfg updated with each combination of the grid's values.

    Combinations follow itertools.product in the grid's key order (the last key varies
    fastest). With a list of grids, the runs of each grid follow those of the one before,
    and a run's swept values include the keys that only other grids sweep, at the value
    the run uses (its base cfg's, or the default). Every cfg is validated here, before
    anything is trained, and gets an explicit seed: its own if the grid sets one, else the
    base cfg's, else DEFAULT_SEED. base_cfg is only checked as part of each combination: it
    may hold keys that need a swept value, e.g. beta1 for a grid over optimizer
    ['adam', 'adamax'].

    Returns:
        (swept, cfgs): swept[i] is {swept key: value} of run i, cfgs[i] its whole cfg.

    Raises:
        ConfigError: an unknown key or impossible value in base_cfg or the grid, or a cfg a
            sweep cannot run (a model object, which every run would share and train in turn,
            or a checkpoint_dir, whose files every run would overwrite).
    """
    if not isinstance(base_cfg, dict):
        raise ConfigError(f"base_cfg must be a cfg dict, got {type(base_cfg).__name__}")
    keys = swept_keys(grid)
    combinations = [dict(zip(values, combination)) for values in grid_list(grid)
                    for combination in itertools.product(*values.values())]
    swept, cfgs = [], []
    for changes in combinations:
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
        swept.append({key: changes[key] if key in changes else _plain(cfg.get(key, full[key]))
                      for key in keys})
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


def train_and_measure(cfg, threshold=0.9, verbose=False, blas_threads=1, test=True,
                      keep_model=False, eval_epochs=None):
    """Train one run of `cfg`, test it (unless `test` is False), and return its measures
    (see `measures`), with the trained model under 'trained_model' if `keep_model`.

    With `eval_epochs` (epoch counts, e.g. [3, 5, 10]) the run is measured after each of
    them instead, as if it had stopped there, and a list of measures is returned, each with
    its 'epoch'. (A constant learning rate makes the model after 3 epochs of a 10-epoch run
    the model of a 3-epoch run; sweep() checks that the schedule is constant.)

    A run whose training diverges is not an error of the sweep: it is reported with
    diverged=True, the epochs it completed, and no test measures (None). Without `test`,
    the test measures are None too, and the test set is never read.

    Raises:
        KeyboardInterrupt: training was interrupted (Solver.train() itself returns normally
            on Ctrl-C; a sweep must stop altogether instead).
    """
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    results = []
    with threadpool_limits(limits=blas_threads), quiet:
        runner = Solver(cfg)
        diverged = False
        for epoch in eval_epochs or [None]:
            try:
                runner.train() if epoch is None else runner.train(until_epoch=epoch)
            except TrainingDivergedError:
                diverged = True
            if runner.interrupted:
                raise KeyboardInterrupt
            test_loss, test_acc = (None, None) if diverged or not test else runner.test()
            result = measures(runner.history, test_loss, test_acc, threshold, diverged)
            if keep_model:  # a copy per measured epoch: training goes on changing the model
                result[MODEL_COLUMN] = copy.deepcopy(runner.model) if eval_epochs else runner.model
            results.append(result if epoch is None else {"epoch": epoch, **result})
            if diverged:
                break
    return results if eval_epochs else results[0]


def _check_eval_epochs(eval_epochs, cfgs):
    """eval_epochs sorted, or a ValueError unless they are epoch counts every run reaches
    with a constant learning rate. `cfgs` are run_cfgs' cfgs, already validated."""
    if eval_epochs is None:
        return None
    epochs = sorted({check_count("eval_epochs entry", epoch, 1) for epoch in eval_epochs})
    for cfg in cfgs:
        full = {**defaults(), **cfg}
        if full["lr_schedule"] != "constant" or full["patience"] is not None:
            raise ValueError("eval_epochs measures one run at several epochs, which stands for "
                             "shorter runs only with a constant learning rate and no early "
                             f"stopping; this run has lr_schedule {full['lr_schedule']!r} and "
                             f"patience {full['patience']!r}")
        if epochs and epochs[-1] > full["max_epoch"]:
            raise ValueError(f"eval_epochs goes up to {epochs[-1]} but a run has max_epoch "
                             f"{full['max_epoch']}; raise max_epoch")
    return epochs or None


def _indexed_run(index, *args):
    """(index, train_and_measure(*args)): runs may finish in any order."""
    return index, train_and_measure(*args)


def _check_sweep_options(threshold, blas_threads):
    if not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1:
        raise ValueError(f"threshold={threshold!r}; it must be a validation accuracy in [0, 1]")
    if blas_threads is not None and (not isinstance(blas_threads, numbers.Integral)
                                     or blas_threads < 1):
        raise ValueError(f"blas_threads={blas_threads!r}; it must be a whole number >= 1, or "
                         "None to leave the BLAS library's threads alone")


def sweep(base_cfg, grid, n_jobs=1, threshold=0.9, verbose=False, blas_threads=1, test=True,
          keep_models=False, progress=False, eval_epochs=None):
    """Train a run for every combination of the grid's values; tabulate one row per run.

    Args:
        base_cfg: cfg dict shared by every run (see config.OPTIONS).
        grid: {cfg key: list of values}; the runs are itertools.product of the lists, in the
            grid's key order. An empty grid trains base_cfg once. A list of such grids
            trains the runs of each in turn (see run_cfgs).
        n_jobs: runs trained at the same time (joblib's n_jobs: -1 for one per core). Inside
            `joblib.parallel_config(backend=...)` the chosen backend runs them (module doc).
        threshold: validation accuracy for the epochs_to_threshold and time_to_threshold
            columns.
        verbose: let every run print the Solver's log lines (silenced by default).
        blas_threads: BLAS threads per run (None: the library's default). With n_jobs
            workers, n_jobs * blas_threads should not exceed the cores (threads.blas_threads
            gives the largest count that fits). A cfg that sets its own 'blas_threads' key
            keeps that value while it trains and tests. For the same reason, runs prefetch
            no batches unless their cfg sets 'prefetch'.
        test: evaluate every run on the test set. False leaves test_loss and test_acc empty
            (NaN) and never reads the test set: for choosing hyper-parameters, which must not
            see test results; test the chosen run afterwards (keep_models).
        keep_models: add a column 'trained_model' holding each run's trained model, e.g. to
            test the chosen run once choices are made: Solver({'data_root': ..., 'model':
            df.loc[i, 'trained_model']}).test(). With a cfg 'patience' as long as the run,
            which stops nothing, the model holds the weights of its best validation epoch.
            save_sweep leaves this column out.
        progress: show a progress bar of finished runs (tqdm.auto: a widget in Jupyter, text
            in a terminal); a string is the bar's label. Backends that cannot report runs
            as they finish (Dask's) update the bar once, at the end.
        eval_epochs: epoch counts (e.g. [3, 5, 7, 10, 15]) after which each run is measured,
            validation and test, as if it had stopped there: one run gives the rows of
            several shorter ones. Needs a constant learning rate and no 'patience'; adds a
            column 'epoch' after the swept keys, one row per run and epoch.

    Returns:
        A pandas DataFrame, one row per run in grid order (index 0, 1, ...): the swept cfg
        keys, then METRICS, then 'history' (the run's dict of per-epoch lists); df.attrs
        holds 'params' (the swept keys), 'base_cfg' and 'threshold'. See the module doc.

    Raises:
        ConfigError: a bad key or value in base_cfg or the grid, found before any training.
    """
    _check_sweep_options(threshold, blas_threads)
    swept, cfgs = run_cfgs(base_cfg, grid)
    eval_epochs = _check_eval_epochs(eval_epochs, cfgs)
    cfgs = [{"prefetch": 0, **cfg} for cfg in cfgs]  # one core per run (module doc)
    tasks = [joblib.delayed(_indexed_run)(index, cfg, threshold, verbose, blas_threads, test,
                                          keep_models, eval_epochs)
             for index, cfg in enumerate(cfgs)]
    results = [None] * len(tasks)
    with _progress_bar(progress, len(tasks)) as bar:
        for index, result in _run_as_they_finish(tasks, n_jobs):
            results[index] = result
            if bar is not None:
                bar.set_postfix_str(_describe(swept[index]) or "base cfg", refresh=False)
                bar.update(1)
    if eval_epochs:   # each run gave a list of rows, one per epoch
        swept, results = zip(*[(changes, row) for changes, rows in zip(swept, results)
                               for row in rows])
    rows = [{**changes, **result} for changes, result in zip(swept, results)]
    base = {key: _plain(value) for key, value in base_cfg.items()}
    keys = swept_keys(grid)
    columns = [*keys, *(["epoch"] if eval_epochs else []), *METRICS, "history",
               *([MODEL_COLUMN] if keep_models else [])]
    return _table(rows, columns, params=keys, base_cfg=base, threshold=threshold)


def _run_as_they_finish(tasks, n_jobs):
    """Run joblib tasks; yield their results as they finish, where the backend can report
    that (joblib's return_as='generator_unordered'), else all of them at the end."""
    try:
        parallel = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")
    except ValueError:  # the backend cannot return a generator (e.g. Dask's)
        yield from joblib.Parallel(n_jobs=n_jobs)(tasks)
        return
    yield from parallel(tasks)


@contextlib.contextmanager
def _progress_bar(progress, total):
    """A tqdm.auto bar of `total` runs (None when `progress` is off), closed on exit."""
    if not progress:
        yield None
        return
    with warnings.catch_warnings():  # Jupyter without ipywidgets: tqdm falls back to text
        warnings.filterwarnings("ignore", message=".*IProgress not found.*")
        from tqdm.auto import tqdm
    bar = tqdm(total=total, desc=progress if isinstance(progress, str) else "Sweep",
               unit="run")
    try:
        yield bar
    finally:
        bar.close()


def _describe(values):
    """A run's swept values as 'key=value, ...' (None values left out), for the progress bar."""
    return ", ".join(f"{key}={value}" for key, value in values.items() if value is not None)


# ---- the results table ----

def _table(rows, columns, params, base_cfg, threshold, index=None):
    """The DataFrame of `rows` (dicts), METRICS columns in their dtypes, context in attrs."""
    df = pd.DataFrame(rows, columns=columns, index=index)
    df = df.astype({name: dtype for name, dtype in METRIC_DTYPES.items() if name in df})
    df.attrs.update(params=list(params), base_cfg=base_cfg, threshold=threshold)
    return df


def best_run(df, metric="best_val_acc", higher_is_better=None):
    """The row (a Series; its .name is the index label) with the best `metric`, the first on
    ties; runs without a value (NaN, <NA>: e.g. diverged) are skipped.

    Higher is better unless the metric is a loss, a time or an epoch count
    (LOWER_IS_BETTER); `higher_is_better` overrides that. Choose by a validation metric:
    choosing the model by test accuracy would make its test accuracy an optimistic estimate.

    Raises:
        KeyError: df has no column `metric`.
        ValueError: no run has a value for it.
    """
    values = df[metric].reset_index(drop=True)
    if values.isna().all():
        raise ValueError(f"no run has a value for {metric!r}")
    if higher_is_better is None:
        higher_is_better = metric not in LOWER_IS_BETTER
    return df.iloc[values.idxmax() if higher_is_better else values.idxmin()]


def without_times(df):
    """A copy of df without its wall-clock measures (the WALL_TIMES columns and the
    histories' epoch_time): what two runs of the same sweep must agree on exactly, e.g.
    `without_times(a).equals(without_times(b))`."""
    kept = df.drop(columns=[name for name in WALL_TIMES if name in df])
    if "history" in kept:
        kept["history"] = kept["history"].map(
            lambda history: {field: values for field, values in history.items()
                             if field != "epoch_time"})
    return kept


def save_sweep(df, path):
    """Write a sweep's table, histories and attrs included, as JSON, atomically.

    Unlike df.to_json, which keeps 10 significant digits, this keeps every number exactly, and
    load_sweep gives back the same DataFrame: columns, dtypes, index and attrs. Trained models
    (keep_models) are not saved. For the table alone, as CSV:
    df.drop(columns='history').to_csv(path, index=False).
    """
    df = df.drop(columns=[MODEL_COLUMN], errors="ignore")
    cells = df.astype(object).where(df.notna(), None)  # NaN and <NA> as JSON's null
    write_json(path, {"params": df.attrs.get("params", []),
                      "base_cfg": df.attrs.get("base_cfg"),
                      "threshold": df.attrs.get("threshold"),
                      "columns": [str(name) for name in df.columns],
                      "index": df.index.tolist(),
                      "rows": cells.to_dict(orient="records")})


def load_sweep(path):
    """The DataFrame of a sweep written by save_sweep (or by the former SweepResult.to_json).

    Raises:
        ValueError: the file holds no sweep (no 'rows' list).
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise ValueError(f"{path} is not a sweep written by save_sweep (it has no 'rows' list)")
    return _table(data["rows"], data.get("columns"), params=data.get("params", []),
                  base_cfg=data.get("base_cfg"), threshold=data.get("threshold"),
                  index=data.get("index"))
