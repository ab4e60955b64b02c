"""A sweep hands its workers absolute data paths: a worker process may start in another
folder (joblib's loky workers, a Dask or Ray worker on another machine's checkout), where a
relative data_root would name nothing, or the wrong data."""
import os

from conftest import tiny_cfg, write_dataset
from mnistlab.solver import Solver
from mnistlab.sweeps import run_cfgs


def test_run_cfgs_makes_a_relative_data_root_absolute(tmp_path, monkeypatch):
    write_dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    _, cfgs = run_cfgs(tiny_cfg("data", max_epoch=1), {"learning_rate": [0.01, 0.1]})
    assert [cfg["data_root"] for cfg in cfgs] == [str(tmp_path / "data")] * 2
    assert all(os.path.isabs(cfg["data_root"]) for cfg in cfgs)


def test_a_worker_in_another_folder_trains_on_the_sweeps_data(tmp_path, monkeypatch):
    write_dataset(tmp_path / "sweep" / "data", seed=1)
    write_dataset(tmp_path / "worker" / "data", seed=2)  # other data where the worker runs
    monkeypatch.chdir(tmp_path / "sweep")
    _, (cfg,) = run_cfgs(tiny_cfg("data", max_epoch=1), {"learning_rate": [0.01]})
    monkeypatch.chdir(tmp_path / "worker")
    dataset = Solver(cfg).train_loader.dataset
    assert dataset.data_root == str(tmp_path / "sweep" / "data")
    expected = Solver(tiny_cfg(str(tmp_path / "sweep" / "data"))).train_loader.dataset
    assert (dataset.images == expected.images).all()
