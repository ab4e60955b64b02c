"""Sweeps train every combination of a grid, give the same numbers on any backend, fail fast on
a bad cfg, and report their results as tables and files."""
import csv
import json
import os

import joblib
import numpy as np
import pytest

from mnistlab import sweeps as sweep_module
from conftest import tiny_cfg, write_dataset
from mnistlab.config import ConfigError
from mnistlab.solver import Solver
from mnistlab.sweeps import METRICS, SweepResult, run_cfgs, sweep

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

def test_one_row_per_combination_in_grid_order(serial):
    assert len(serial) == 4 and serial.params == ["learning_rate", "batch_size"]
    assert [(row["learning_rate"], row["batch_size"]) for row in serial] == [
        (0.01, 32), (0.01, 100), (0.1, 32), (0.1, 100)]
    for row in serial:
        assert set(METRICS) | {"history"} <= set(row)
        history = row["history"]
        assert len(history["val_acc"]) == 2 and row["diverged"] is False
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
    row = serial[2]
    assert row["final_train_loss"] == losses[-1]
    assert (row["test_loss"], row["test_acc"]) == runner.test()
    assert row["epochs_to_threshold"] == runner.history.epochs_to_reach(0.9)


def test_threshold_columns_follow_the_threshold(base):
    result = sweep(base, {"learning_rate": [0.1]}, threshold=1.0)
    history = result[0]["history"]
    reached = [i for i, acc in enumerate(history["val_acc"]) if acc >= 1.0]
    expected = reached[0] + 1 if reached else None
    assert result[0]["epochs_to_threshold"] == expected
    assert sweep(base, {"learning_rate": [0.1]}, threshold=0.0)[0]["epochs_to_threshold"] == 1


def test_every_run_gets_the_same_explicit_seed(base):
    _, cfgs = run_cfgs({**base, "seed": None}, GRID)
    assert [cfg["seed"] for cfg in cfgs] == [0] * 4
    _, cfgs = run_cfgs({**base, "seed": 7}, GRID)
    assert [cfg["seed"] for cfg in cfgs] == [7] * 4
    swept, cfgs = run_cfgs(base, {"seed": [1, 2]})
    assert swept == [{"seed": 1}, {"seed": 2}] and [cfg["seed"] for cfg in cfgs] == [1, 2]


def test_an_empty_grid_trains_the_base_cfg_once(base):
    result = sweep(base, {})
    assert len(result) == 1 and result.params == [] and result[0]["test_acc"] > 0.5


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_run_is_reported_not_raised(base):
    result = sweep(base, {"learning_rate": [0.1, 1e307]})
    assert [row["diverged"] for row in result] == [False, True]
    assert result[1]["test_acc"] is None and result[1]["final_val_acc"] is None
    assert result.best("test_acc") is result[0]


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

def test_two_workers_give_the_same_numbers(serial, base):
    assert sweep(base, GRID, n_jobs=2).without_times() == serial.without_times()


def test_a_dask_cluster_gives_the_same_numbers(serial, base, dask_client):
    from distributed import get_task_stream
    with get_task_stream(dask_client) as tasks, joblib.parallel_config(backend="dask"):
        result = sweep(base, GRID, n_jobs=-1)
    assert len(tasks.data) > 0, "the runs did not go through the Dask cluster"
    assert result.without_times() == serial.without_times()


def test_a_ray_cluster_gives_the_same_numbers(serial, base, ray_backend):
    with joblib.parallel_config(backend="ray"):
        workers = set(joblib.Parallel(n_jobs=2)(joblib.delayed(os.getpid)() for _ in range(4)))
        result = sweep(base, GRID, n_jobs=-1)
    assert os.getpid() not in workers, "the 'ray' backend ran the tasks in this process"
    assert result.without_times() == serial.without_times()


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
    rows = [{"learning_rate": 0.1, "batch_size": 32, "best_val_acc": 0.91, "test_loss": 0.30,
             "epochs_to_threshold": None, "history": {"val_acc": [0.91]}},
            {"learning_rate": 0.01, "batch_size": 32, "best_val_acc": 0.95, "test_loss": 0.25,
             "epochs_to_threshold": 3, "history": {"val_acc": [0.95]}},
            {"learning_rate": 0.001, "batch_size": 100, "best_val_acc": 0.95, "test_loss": 0.2,
             "epochs_to_threshold": 5, "history": {"val_acc": [0.95]}}]
    return SweepResult(rows, params=["learning_rate", "batch_size"])


def test_without_times_drops_exactly_the_wall_clock_measures(serial):
    for row, kept in zip(serial, serial.without_times()):
        assert set(row) - set(kept) == {"train_time", "time_to_threshold"}
        assert set(row["history"]) - set(kept["history"]) == {"epoch_time"}
        assert kept["test_acc"] == row["test_acc"]
        assert kept["history"]["val_acc"] == row["history"]["val_acc"]
    assert "train_time" in serial[0] and "epoch_time" in serial[0]["history"]  # rows untouched


def test_best_picks_the_highest_accuracy_or_the_lowest_loss_and_time(made_up):
    assert made_up.best() is made_up[1]  # first of the tied 0.95s
    assert made_up.best("test_loss") is made_up[2]
    assert made_up.best("epochs_to_threshold") is made_up[1]  # None: never reached, skipped
    assert made_up.best("test_loss", higher_is_better=True) is made_up[0]
    with pytest.raises(KeyError, match="no column 'test_acc'"):
        made_up.best("test_acc")


def test_columns_rows_and_slices(made_up):
    assert made_up.columns == ["learning_rate", "batch_size", "best_val_acc", "test_loss",
                               "epochs_to_threshold"]
    assert made_up.column("batch_size") == [32, 32, 100]
    assert made_up.where(batch_size=32).column("learning_rate") == [0.1, 0.01]
    assert isinstance(made_up[1:], SweepResult) and len(made_up[1:]) == 2
    assert list(made_up) == made_up.rows


def test_text_table_is_aligned_and_holds_the_values(made_up):
    text = made_up.to_text()
    assert repr(made_up) == str(made_up) == text
    header, rule, *lines = text.splitlines()
    assert header.split() == made_up.columns and "history" not in text
    assert len(lines) == 3 and set(rule) == {"-", " "}
    end = header.index("test_loss") + len("test_loss")
    assert [line[end - 4:end] for line in lines] == [" 0.3", "0.25", " 0.2"]
    assert lines[0].split() == ["0.1", "32", "0.91", "0.3", "-"]


def test_text_and_html_of_a_real_sweep_hold_its_values(serial):
    text, page = serial.to_text(), serial._repr_html_()
    for row in serial:
        assert f"{row['test_acc']:.4g}" in text and f"{row['test_loss']:.4g}" in page
    assert page.startswith("<table>") and page.count("<tr>") == 1 + len(serial)
    assert ">learning_rate</th>" in page and ">0.01</td>" in page and "history" not in page


def test_csv_holds_the_table(serial, tmp_path):
    path = tmp_path / "out" / "sweep.csv"
    serial.to_csv(str(path))
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == serial.columns
    for written, row in zip(rows, serial):
        assert float(written["test_acc"]) == row["test_acc"]
        assert int(written["batch_size"]) == row["batch_size"]
    assert os.listdir(path.parent) == ["sweep.csv"]  # no temporary file left


def test_json_round_trip_keeps_everything(serial, tmp_path):
    path = str(tmp_path / "sweep.json")
    serial.to_json(path)
    loaded = SweepResult.from_json(path)
    assert loaded.rows == serial.rows and loaded.params == serial.params
    assert loaded.threshold == 0.9 and loaded.base_cfg == serial.base_cfg
    assert json.load(open(path))["rows"][0]["history"]["val_acc"] == serial[0]["history"]["val_acc"]


def test_from_json_refuses_another_file(tmp_path):
    path = tmp_path / "other.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a sweep"):
        SweepResult.from_json(str(path))


def test_numpy_values_in_the_grid_are_saved_as_plain_numbers(base, tmp_path):
    result = sweep(base, {"learning_rate": np.array([0.1]), "batch_size": np.array([50])})
    assert type(result[0]["learning_rate"]) is float and type(result[0]["batch_size"]) is int
    result.to_json(str(tmp_path / "numpy.json"))
