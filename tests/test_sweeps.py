"""Sweeps train every combination of a grid, give the same numbers on any backend, fail fast on
a bad cfg, and hand their results over as a pandas DataFrame, one row per run."""
import json
import os

import joblib
import numpy as np
import pandas as pd
import pytest
from joblib.parallel import ThreadingBackend

from mnistlab import sweeps as sweep_module
from conftest import tiny_cfg, write_dataset
from mnistlab.config import ConfigError
from mnistlab.solver import Solver
from mnistlab.sweeps import (METRICS, best_run, load_sweep, run_cfgs, save_sweep, sweep,
                             without_times)

GRID = {"learning_rate": [0.01, 0.1], "batch_size": [32, 100]}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    folder, _ = write_dataset(tmp_path_factory.mktemp("tiny"))
    return folder


@pytest.fixture(scope="module")
def base(data_root):
    """No seed: the sweep must fix one itself for its runs to be reproducible."""
    return tiny_cfg(data_root, max_epoch=2, seed=None)


@pytest.fixture(scope="module")
def serial(base):
    return sweep(base, GRID)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def ray_backend():
    """A local Ray instance of 2 worker processes, registered as joblib's 'ray' backend."""
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    register_ray()
    yield
    ray.shutdown()


@pytest.fixture
def no_training(monkeypatch):
    """Make any training attempt fail the test."""
    def train_and_measure(*args, **kwargs):
        raise AssertionError("a run was trained although the cfg was invalid")
    monkeypatch.setattr(sweep_module, "train_and_measure", train_and_measure)


# ---- what a sweep trains and measures ----

def missing_as_none(value):
    """A table cell as a comparable value: None for NaN and <NA> (a run without a value)."""
    return None if pd.isna(value) else value


def test_a_dataframe_with_one_row_per_combination_in_grid_order(serial, base):
    assert isinstance(serial, pd.DataFrame) and list(serial.index) == [0, 1, 2, 3]
    assert list(serial.columns) == ["learning_rate", "batch_size", *METRICS, "history"]
    assert list(zip(serial.learning_rate, serial.batch_size)) == [
        (0.01, 32), (0.01, 100), (0.1, 32), (0.1, 100)]
    assert serial.attrs == {"params": ["learning_rate", "batch_size"], "base_cfg": base,
                            "threshold": 0.9}
    assert {name: str(serial[name].dtype) for name in METRICS} == sweep_module.METRIC_DTYPES
    assert serial["history"].dtype == object
    for _, row in serial.iterrows():
        history = row["history"]
        assert len(history["val_acc"]) == 2 and not row["diverged"]
        assert row["final_val_acc"] == history["val_acc"][-1]
        assert row["best_val_acc"] == max(history["val_acc"])
        assert history["val_acc"][row["best_epoch"]] == row["best_val_acc"]
        assert row["final_train_loss"] == history["train_loss"][-1]
        assert row["train_time"] == pytest.approx(sum(history["epoch_time"]))
        assert row["train_time"] > 0
        assert 0 < row["test_loss"] and 0.5 < row["test_acc"] <= 1
        assert history["learning_rate"] == [row["learning_rate"]] * 2


def test_a_row_holds_what_the_solver_gives_for_that_cfg(serial, base):
    runner = Solver({**base, "learning_rate": 0.1, "batch_size": 32, "seed": 0})
    losses, _ = runner.train()
    row = serial.loc[2]
    assert row["final_train_loss"] == losses[-1]
    assert (row["test_loss"], row["test_acc"]) == runner.test()
    assert missing_as_none(row["epochs_to_threshold"]) == runner.history.epochs_to_reach(0.9)
    expected = runner.history.as_dict()
    history = serial.loc[2, "history"]
    assert list(history) == list(expected)
    for field in expected.keys() - {"epoch_time"}:
        assert history[field] == expected[field], field


def test_threshold_columns_follow_the_threshold(base):
    result = sweep(base, {"learning_rate": [0.1]}, threshold=1.0)
    history = result.loc[0, "history"]
    reached = [i for i, acc in enumerate(history["val_acc"]) if acc >= 1.0]
    expected = reached[0] + 1 if reached else None
    assert missing_as_none(result.loc[0, "epochs_to_threshold"]) == expected
    assert result.attrs["threshold"] == 1.0
    result = sweep(base, {"learning_rate": [0.1]}, threshold=0.0)
    assert result.loc[0, "epochs_to_threshold"] == 1


def test_every_run_gets_the_same_explicit_seed(base):
    _, cfgs = run_cfgs({**base, "seed": None}, GRID)
    assert [cfg["seed"] for cfg in cfgs] == [0] * 4
    _, cfgs = run_cfgs({**base, "seed": 7}, GRID)
    assert [cfg["seed"] for cfg in cfgs] == [7] * 4
    swept, cfgs = run_cfgs(base, {"seed": [1, 2]})
    assert swept == [{"seed": 1}, {"seed": 2}] and [cfg["seed"] for cfg in cfgs] == [1, 2]


def test_an_empty_grid_trains_the_base_cfg_once(base):
    result = sweep(base, {})
    assert len(result) == 1 and result.attrs["params"] == []
    assert list(result.columns) == [*METRICS, "history"] and result.loc[0, "test_acc"] > 0.5


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_run_is_reported_not_raised(base):
    result = sweep(base, {"learning_rate": [0.1, 1e307]})
    assert result["diverged"].tolist() == [False, True]
    assert result["test_acc"].isna().tolist() == [False, True]
    assert result["final_val_acc"].isna().tolist() == [False, True]
    assert result.loc[1, "best_epoch"] is pd.NA and result.loc[1, "history"]["val_acc"] == []
    assert best_run(result, "test_acc").name == 0


def test_ctrl_c_stops_the_whole_sweep(base, monkeypatch):
    class InterruptedSolver(Solver):
        def train(self):
            self.interrupted = True
            return [], []
    monkeypatch.setattr(sweep_module, "Solver", InterruptedSolver)
    with pytest.raises(KeyboardInterrupt):
        sweep(base, GRID)


def test_runs_are_silent_unless_verbose(base, capsys):
    sweep(base, {"learning_rate": [0.1]})
    assert capsys.readouterr().out == ""
    sweep(base, {"learning_rate": [0.1]}, verbose=True)
    assert "Average validation accuracy" in capsys.readouterr().out


def test_each_run_limits_its_blas_threads(base, monkeypatch):
    from threadpoolctl import threadpool_info
    seen = []

    class RecordingSolver(Solver):
        def train(self):
            seen.extend(pool["num_threads"] for pool in threadpool_info())
            return super().train()
    monkeypatch.setattr(sweep_module, "Solver", RecordingSolver)
    sweep(base, {"learning_rate": [0.1]}, blas_threads=1)
    assert seen and set(seen) == {1}


def test_runs_do_not_prefetch_unless_their_cfg_says_so(base, monkeypatch):
    seen = []

    class RecordingSolver(Solver):
        def train(self):
            seen.append(self.cfg["prefetch"])
            return super().train()
    monkeypatch.setattr(sweep_module, "Solver", RecordingSolver)
    with joblib.parallel_config(backend="threading"):  # the runs stay in this process
        sweep(base, {"learning_rate": [0.1]}, n_jobs=1)
        sweep(base, {"learning_rate": [0.1, 0.2]}, n_jobs=2)
        sweep(base, {"learning_rate": [0.1], "prefetch": [3]}, n_jobs=2)
    assert seen == [0, 0, 0, 3]


# ---- the same numbers anywhere ----

def assert_same_numbers(result, serial):
    """Equal tables, wall-clock measures apart, and equal attrs; exact (DataFrame.equals)."""
    pd.testing.assert_frame_equal(without_times(result), without_times(serial))
    assert without_times(result).equals(without_times(serial))
    assert result.attrs == serial.attrs


def test_two_workers_give_the_same_numbers(serial, base):
    assert_same_numbers(sweep(base, GRID, n_jobs=2), serial)


def test_a_dask_cluster_gives_the_same_numbers(serial, base, dask_client):
    from distributed import get_task_stream
    with get_task_stream(dask_client) as tasks, joblib.parallel_config(backend="dask"):
        result = sweep(base, GRID, n_jobs=-1)
    assert len(tasks.data) > 0, "the runs did not go through the Dask cluster"
    assert_same_numbers(result, serial)


def test_a_ray_cluster_gives_the_same_numbers(serial, base, ray_backend):
    with joblib.parallel_config(backend="ray"):
        workers = set(joblib.Parallel(n_jobs=2)(joblib.delayed(os.getpid)() for _ in range(4)))
        result = sweep(base, GRID, n_jobs=-1)
    assert os.getpid() not in workers, "the 'ray' backend ran the tasks in this process"
    assert_same_numbers(result, serial)


# ---- bad input fails before any training ----

@pytest.mark.parametrize("grid, message", [
    ({"learning_rat": [0.1]}, "unknown cfg key 'learning_rat'; did you mean 'learning_rate'"),
    ({"learning_rate": [0.1, -1.0]}, r"cfg\['learning_rate'\] = -1.0 is impossible"),
    ({"batch_size": 32}, r"grid\['batch_size'\] = 32 must be a list"),
    ({"batch_size": []}, r"grid\['batch_size'\] is empty"),
    ({"beta1": [0.9]}, "does not apply to optimizer 'sgd'"),
    ({"checkpoint_dir": ["runs/x"]}, "overwrite the same checkpoint files"),
])
def test_a_bad_grid_fails_before_training(base, no_training, grid, message):
    with pytest.raises(ConfigError, match=message):
        sweep(base, grid)


def test_a_bad_base_cfg_fails_before_training(base, no_training):
    with pytest.raises(ConfigError, match="did you mean 'max_epoch'"):
        sweep({**base, "max_epochs": 2}, GRID)


def test_the_base_cfg_may_need_a_swept_value(base):
    adam_base = {**base, "momentum": None, "beta1": 0.8}
    _, cfgs = run_cfgs(adam_base, {"optimizer": ["adam", "adamax"]})
    assert [(cfg["optimizer"], cfg["beta1"]) for cfg in cfgs] == [("adam", 0.8), ("adamax", 0.8)]
    with pytest.raises(ConfigError, match="does not apply to optimizer 'sgd'"):
        run_cfgs(adam_base, {"optimizer": ["adam", "sgd"]})


def test_a_model_object_is_refused(base, no_training):
    from mnistlab.loss import SoftmaxCrossEntropyLoss
    with pytest.raises(ConfigError, match="fresh model for every run"):
        sweep({**base, "model": SoftmaxCrossEntropyLoss(784, 10)}, GRID)


@pytest.mark.parametrize("options, message", [({"threshold": 90}, "threshold=90"),
                                              ({"blas_threads": 0}, "blas_threads=0")])
def test_bad_sweep_options_are_refused(base, no_training, options, message):
    with pytest.raises(ValueError, match=message):
        sweep(base, GRID, **options)


# ---- the results table ----

@pytest.fixture
def made_up():
    """A table as a user may hold one: plain pandas, a count column with a missing value."""
    return pd.DataFrame({
        "learning_rate": [0.1, 0.01, 0.001], "batch_size": [32, 32, 100],
        "best_val_acc": [0.91, 0.95, 0.95], "test_loss": [0.30, 0.25, 0.2],
        "epochs_to_threshold": pd.array([None, 3, 5], dtype="Int64"),
        "history": [{"val_acc": [0.91]}, {"val_acc": [0.95]}, {"val_acc": [0.95]}]})


def test_without_times_drops_exactly_the_wall_clock_measures(serial):
    kept = without_times(serial)
    assert set(serial.columns) - set(kept.columns) == {"train_time", "time_to_threshold"}
    for i in serial.index:
        row, kept_row = serial.loc[i], kept.loc[i]
        assert set(row["history"]) - set(kept_row["history"]) == {"epoch_time"}
        assert kept_row["test_acc"] == row["test_acc"]
        assert kept_row["history"]["val_acc"] == row["history"]["val_acc"]
    assert "train_time" in serial and "epoch_time" in serial.loc[0, "history"]  # untouched


def test_without_times_still_tells_different_histories_apart(serial):
    changed = serial.copy()
    changed["history"] = [{**history, "val_loss": [0.0] * len(history["val_loss"])} if i == 3
                          else history for i, history in enumerate(serial["history"])]
    assert not without_times(changed).equals(without_times(serial))
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(without_times(changed), without_times(serial))


def test_best_run_picks_the_highest_accuracy_or_the_lowest_loss_and_time(made_up):
    assert best_run(made_up).name == 1  # first of the tied 0.95s
    assert best_run(made_up, "test_loss").name == 2
    assert best_run(made_up, "epochs_to_threshold").name == 1  # <NA>: never reached, skipped
    assert best_run(made_up, "test_loss", higher_is_better=True).name == 0
    assert best_run(made_up)["history"] == {"val_acc": [0.95]}
    with pytest.raises(KeyError, match="test_acc"):
        best_run(made_up, "test_acc")


def test_best_run_works_on_a_selection_and_repeated_labels(made_up):
    assert best_run(made_up[made_up.learning_rate < 0.1], "test_loss").name == 2
    assert best_run(made_up[made_up.learning_rate > 0.001], "test_loss").name == 1
    both = pd.concat([made_up.iloc[::-1], made_up])  # labels 2, 1, 0, 0, 1, 2
    best = best_run(both, "epochs_to_threshold")
    assert isinstance(best, pd.Series) and best["learning_rate"] == 0.01


def test_best_run_needs_a_value(made_up):
    with pytest.raises(ValueError, match="no run has a value for 'epochs_to_threshold'"):
        best_run(made_up[made_up.learning_rate == 0.1], "epochs_to_threshold")


def test_the_table_without_histories_goes_to_csv(serial, tmp_path):
    path = tmp_path / "sweep.csv"
    serial.drop(columns="history").to_csv(path, index=False)  # as the module doc shows
    loaded = pd.read_csv(path)
    assert list(loaded.columns) == ["learning_rate", "batch_size", *METRICS]
    assert loaded["test_acc"].tolist() == serial["test_acc"].tolist()
    assert loaded["batch_size"].tolist() == serial["batch_size"].tolist()


def test_save_and_load_keep_everything(serial, tmp_path):
    path = tmp_path / "out" / "sweep.json"
    save_sweep(serial, str(path))
    loaded = load_sweep(str(path))
    pd.testing.assert_frame_equal(loaded, serial, check_exact=True)
    assert loaded.equals(serial) and loaded.attrs == serial.attrs
    assert loaded.loc[3, "history"] == serial.loc[3, "history"]  # every digit
    assert json.load(open(path))["rows"][0]["history"]["val_acc"] == \
        serial.loc[0, "history"]["val_acc"]
    assert os.listdir(path.parent) == ["sweep.json"]  # no temporary file left


def refuse_nan(name):
    raise ValueError(f"{name} is not JSON")


def test_save_and_load_keep_missing_values_and_a_selection(made_up, tmp_path):
    path = tmp_path / "selection.json"
    made_up["test_loss"] = [np.nan, 0.25, 0.2]  # a run without a value, as a diverged one
    selection = made_up[made_up.learning_rate > 0.001]  # labels 0 and 1
    save_sweep(selection.iloc[::-1], str(path))
    loaded = load_sweep(str(path))
    assert list(loaded.index) == [1, 0] and loaded.loc[0, "epochs_to_threshold"] is pd.NA
    assert np.isnan(loaded.loc[0, "test_loss"])
    pd.testing.assert_frame_equal(loaded, selection.iloc[::-1], check_exact=True)
    json.loads(path.read_text(), parse_constant=refuse_nan)  # null, not NaN: strict JSON


def test_load_reads_a_file_of_the_former_sweep_result(serial, tmp_path):
    path = tmp_path / "former.json"
    rows = [{**row, "epochs_to_threshold": None} if i == 0 else row
            for i, row in enumerate(serial.to_dict(orient="records"))]
    path.write_text(json.dumps({"params": ["learning_rate", "batch_size"], "base_cfg": {},
                                "threshold": 0.9, "rows": rows}))
    loaded = load_sweep(str(path))
    assert list(loaded.columns) == list(serial.columns) and list(loaded.index) == [0, 1, 2, 3]
    assert loaded.dtypes.equals(serial.dtypes) and loaded.loc[0, "epochs_to_threshold"] is pd.NA
    assert loaded.loc[3, "history"] == serial.loc[3, "history"]


def test_load_refuses_another_file(tmp_path):
    path = tmp_path / "other.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a sweep"):
        load_sweep(str(path))


def test_numpy_values_in_the_grid_are_saved_as_plain_numbers(base, tmp_path):
    result = sweep(base, {"learning_rate": np.array([0.1]), "batch_size": np.array([50])})
    assert (result["learning_rate"].dtype, result["batch_size"].dtype) == (np.float64, np.int64)
    path = tmp_path / "numpy.json"
    save_sweep(result, str(path))
    row = json.load(open(path))["rows"][0]
    assert type(row["learning_rate"]) is float and type(row["batch_size"]) is int
    assert load_sweep(str(path)).equals(result)


# ---- lists of grids, keeping the test set out, trained models, progress ----

def test_a_list_of_grids_trains_each_grid_in_turn(base, serial):
    result = sweep(base, [{"learning_rate": [0.01, 0.1], "batch_size": [32]},
                          {"batch_size": [100], "max_epoch": [3]}])
    assert result.attrs["params"] == ["learning_rate", "batch_size", "max_epoch"]
    assert list(zip(result.learning_rate, result.batch_size, result.max_epoch)) == [
        (0.01, 32, 2), (0.1, 32, 2), (0.01, 100, 3)]  # base's values where a grid sets none
    assert [len(h["val_acc"]) for h in result.history] == [2, 2, 3]
    assert result.loc[1, "history"]["val_acc"] == serial.loc[2, "history"]["val_acc"]


def test_run_cfgs_fills_the_keys_other_grids_sweep_with_the_runs_own_values(base):
    swept, cfgs = run_cfgs({**base, "momentum": None},
                           [{"optimizer": ["sgd"], "momentum": [0.9]}, {"optimizer": ["adam"]}])
    assert swept == [{"optimizer": "sgd", "momentum": 0.9}, {"optimizer": "adam", "momentum": None}]
    assert [cfg["optimizer"] for cfg in cfgs] == ["sgd", "adam"]


@pytest.mark.parametrize("grid, message", [([], "at least one grid"),
                                           ([{"batch_size": [32]}, [1]], "each a dict"),
                                           ([{"batch_size": 32}], r"grid\['batch_size'\] = 32")])
def test_a_bad_list_of_grids_fails_before_training(base, no_training, grid, message):
    with pytest.raises(ConfigError, match=message):
        sweep(base, grid)


def test_without_test_the_test_set_is_never_read(base, monkeypatch):
    def refuse(self):
        raise AssertionError("the test set was read")
    monkeypatch.setattr(Solver, "test", refuse)
    result = sweep(base, {"learning_rate": [0.1]}, test=False)
    assert result["test_acc"].isna().all() and result["test_loss"].isna().all()
    assert result.loc[0, "best_val_acc"] > 0.5


def test_kept_models_hold_the_best_epoch_when_patience_outlasts_the_run(base, serial):
    result = sweep({**base, "patience": 10}, {"learning_rate": [0.01, 0.1]}, n_jobs=2,
                   test=False, keep_models=True)
    assert list(result.columns)[-1] == "trained_model"
    for i, row in result.iterrows():
        assert row["history"]["val_acc"] == serial.loc[2 * i, "history"]["val_acc"]  # same runs
        tester = Solver({**base, "model": row["trained_model"]})
        assert tester.validate()[1] == row["best_val_acc"]
    assert without_times(result.drop(columns="trained_model")).shape[0] == 2


def test_save_sweep_leaves_the_trained_models_out(base, tmp_path):
    result = sweep(base, {"learning_rate": [0.1]}, keep_models=True)
    save_sweep(result, str(tmp_path / "s.json"))
    loaded = load_sweep(str(tmp_path / "s.json"))
    assert "trained_model" not in loaded and loaded.equals(result.drop(columns="trained_model"))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_progress_bar_counts_the_finished_runs(base, serial, capsys, n_jobs):
    result = sweep(base, GRID, n_jobs=n_jobs, progress="Grid")
    err = capsys.readouterr().err
    assert "Grid: 100%" in err and "4/4" in err
    assert_same_numbers(result, serial)  # and the rows stay in grid order


class ThreadsWithoutStreaming(ThreadingBackend):
    """joblib's threads, declaring (as Dask's backend does) that they cannot hand results
    back as they finish."""

    supports_return_generator = False


def test_a_backend_that_cannot_stream_results_still_shows_progress(base, serial, capsys):
    joblib.register_parallel_backend("threads-without-streaming", ThreadsWithoutStreaming)
    with joblib.parallel_config(backend="threads-without-streaming"):
        with pytest.raises(ValueError, match="does not support return_as"):
            joblib.Parallel(n_jobs=2, return_as="generator_unordered")
        result = sweep(base, GRID, n_jobs=2, progress=True)
    assert "4/4" in capsys.readouterr().err
    assert_same_numbers(result, serial)


# ---- several epochs of one run ----------------------------------------------------------------

def test_eval_epochs_give_the_rows_of_shorter_runs(tiny_data):
    base = tiny_cfg(tiny_data, max_epoch=3)
    grid = {"learning_rate": [0.01, 0.05]}
    measured = sweep(base, grid, eval_epochs=[3, 1])
    assert list(measured.columns[:2]) == ["learning_rate", "epoch"]
    assert list(measured["epoch"]) == [1, 3, 1, 3]
    for epochs in (1, 3):
        alone = sweep({**base, "max_epoch": epochs}, grid)
        rows = measured[measured["epoch"] == epochs].reset_index(drop=True)
        for column in ("final_val_acc", "test_acc", "test_loss", "final_train_loss"):
            assert list(rows[column]) == list(alone[column]), column
        assert [len(h["val_acc"]) for h in rows["history"]] == [epochs, epochs]


def test_eval_epochs_keep_the_model_of_each_measured_epoch(tiny_data):
    base = tiny_cfg(tiny_data, max_epoch=3)
    measured = sweep(base, {}, eval_epochs=[1, 3], keep_models=True, test=False)
    first, last = measured["trained_model"]
    assert first is not last
    for model, row in zip((first, last), measured.itertuples()):
        assert Solver({**base, "model": model}).validate()[1] == row.final_val_acc


@pytest.mark.parametrize("extra, eval_epochs, message", [
    ({"lr_schedule": "cosine"}, [1, 2], "constant learning rate"),
    ({"patience": 1}, [1, 2], "no early stopping"),
    ({}, [1, 5], "goes up to 5 but a run has max_epoch 3"),
    ({}, [0], "invalid eval_epochs entry: 0"),
])
def test_eval_epochs_that_cannot_stand_for_shorter_runs_are_refused(tiny_data, extra,
                                                                    eval_epochs, message):
    with pytest.raises(ValueError, match=message):
        sweep(tiny_cfg(tiny_data, max_epoch=3, **extra), {}, eval_epochs=eval_epochs)
