"""Checkpoints: round trip, bit-identical resume, and clear refusal of bad files."""
import os
import zipfile

import re

import numpy as np
import pytest

from mnistlab import optimizer as O
from mnistlab.checkpoint import CheckpointError, optimizer_state_problems, read_checkpoint
from test_optimizer import quadratic_model, quadratic_steps
from conftest import tiny_cfg
from mnistlab.solver import Solver


def quiet_train(runner, capsys):
    result = runner.train()
    capsys.readouterr()
    return result


def numbers_of(history):
    return {k: v for k, v in history.as_dict().items() if k != "epoch_time"}


def test_round_trip_restores_everything(tiny_data, tmp_path, capsys):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=2, optimizer="adam", momentum=None))
    quiet_train(runner, capsys)
    path = str(tmp_path / "run.npz")
    runner.save_checkpoint(path)
    other = Solver(tiny_cfg(tiny_data, max_epoch=2, optimizer="adam", momentum=None, seed=9))
    other.load_checkpoint(path)
    for name, array in runner.model.arrays().items():
        np.testing.assert_array_equal(other.model.arrays()[name], array)
    assert other.epoch == 2 and other.optimizer.step_count == runner.optimizer.step_count
    assert numbers_of(other.history) == numbers_of(runner.history)
    assert other.rng.bit_generator.state == runner.rng.bit_generator.state
    with np.load(path, allow_pickle=False) as data:
        assert "optimizer/state/W/exp_avg" in data.files or any(
            name.startswith("optimizer/state/W/") for name in data.files)


@pytest.mark.parametrize("extra", [{}, {"optimizer": "adam", "momentum": None, "lr_schedule": "cosine"},
                                   {"patience": 5, "model": "mlp_bn"}])
def test_resume_after_epoch_k_equals_the_uninterrupted_run(tiny_data, tmp_path, capsys, extra):
    cfg = tiny_cfg(tiny_data, max_epoch=4, **extra)
    straight = Solver(cfg)
    quiet_train(straight, capsys)

    first = Solver({**cfg, "checkpoint_dir": str(tmp_path)})
    first.cfg["max_epoch"] = 2  # stop after epoch 2 as if the run had been cut there
    quiet_train(first, capsys)
    resumed = Solver(cfg)
    resumed.load_checkpoint(str(tmp_path / "last.npz"))
    quiet_train(resumed, capsys)

    assert numbers_of(resumed.history) == numbers_of(straight.history)
    for name, array in straight.model.arrays().items():
        np.testing.assert_array_equal(resumed.model.arrays()[name], array)


def test_resume_classmethod_uses_the_saved_cfg(tiny_data, tmp_path, capsys):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=1, checkpoint_dir=str(tmp_path)))
    quiet_train(runner, capsys)
    resumed = Solver.resume(str(tmp_path / "last.npz"), max_epoch=2)
    assert resumed.epoch == 1 and resumed.cfg["batch_size"] == 32
    quiet_train(resumed, capsys)
    assert len(resumed.history) == 2


def test_best_and_last_checkpoints_are_written(tiny_data, tmp_path, capsys):
    folder = tmp_path / "checkpoints"
    runner = Solver(tiny_cfg(tiny_data, max_epoch=3, checkpoint_dir=str(folder)))
    quiet_train(runner, capsys)
    assert sorted(os.listdir(folder)) == ["best.npz", "last.npz"]
    best = read_checkpoint(str(folder / "best.npz"))
    assert int(best["epoch"]) - 1 == runner.history.best_epoch


@pytest.fixture
def saved(tiny_data, tmp_path, capsys):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=1))
    quiet_train(runner, capsys)
    path = str(tmp_path / "run.npz")
    runner.save_checkpoint(path)
    return path


def assert_untouched(runner, before):
    for name, array in runner.model.arrays().items():
        np.testing.assert_array_equal(array, before[name])
    assert runner.epoch == 0 and runner.optimizer.step_count == 0


def fresh_and_copy(cfg):
    runner = Solver(cfg)
    return runner, {name: array.copy() for name, array in runner.model.arrays().items()}


def test_truncated_file_gives_a_clear_error(tiny_data, saved):
    with open(saved, "rb") as f:
        data = f.read()
    with open(saved, "wb") as f:
        f.write(data[: len(data) // 2])
    runner, before = fresh_and_copy(tiny_cfg(tiny_data, max_epoch=1))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        runner.load_checkpoint(saved)
    assert_untouched(runner, before)


def rewrite(path, change):
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    change(arrays)
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.__setitem__("model/W", np.zeros((3, 3))), r"model/W: checkpoint has float64 \(3, 3\)"),
    (lambda a: a.__setitem__("model/b", a["model/b"].astype(np.float32)), "model/b: checkpoint has float32"),
    (lambda a: a.pop("model/b"), "model/b: missing"),
    (lambda a: a.__setitem__("model/extra", np.zeros(2)), "model/extra: in the checkpoint but not"),
    (lambda a: a.pop("optimizer/step_count"), "step_count"),
    (lambda a: a.pop("rng"), "rng: missing"),
])
def test_tampered_checkpoint_is_refused_and_nothing_is_loaded(tiny_data, saved, change, message):
    rewrite(saved, change)
    runner, before = fresh_and_copy(tiny_cfg(tiny_data, max_epoch=1))
    with pytest.raises(CheckpointError, match=message):
        runner.load_checkpoint(saved)
    assert_untouched(runner, before)


def test_checkpoint_of_another_model_lists_every_mismatch(tiny_data, saved):
    runner, before = fresh_and_copy(tiny_cfg(tiny_data, max_epoch=1, model="mlp"))
    with pytest.raises(CheckpointError) as info:
        runner.load_checkpoint(saved)
    assert "model/0.W: missing" in str(info.value) and "model/W: in the checkpoint" in str(info.value)
    for name, array in runner.model.arrays().items():
        np.testing.assert_array_equal(array, before[name])


def test_missing_and_non_checkpoint_files(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_checkpoint(str(tmp_path / "none.npz"))
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        read_checkpoint(str(tmp_path / "other.npz"))
    with zipfile.ZipFile(tmp_path / "pickle.npz", "w") as z:
        z.writestr("format.npy", b"garbage")
    with pytest.raises(CheckpointError):
        read_checkpoint(str(tmp_path / "pickle.npz"))


def test_failed_write_keeps_the_previous_checkpoint(tiny_data, tmp_path, capsys, monkeypatch):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=1))
    quiet_train(runner, capsys)
    os.makedirs(tmp_path / "saved")
    path = str(tmp_path / "saved" / "run.npz")
    runner.save_checkpoint(path)
    with open(path, "rb") as f:
        before = f.read()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.save_checkpoint(path)
    with open(path, "rb") as f:
        assert f.read() == before
    assert os.listdir(tmp_path / "saved") == ["run.npz"]


# ---- an optimizer's saved state, checked against the optimizer and its model ----------------

def stepped_sgd(model, momentum=0.9):
    opt = O.SGD(model, 0.1, momentum=momentum)
    quadratic_steps(model, opt, 2)
    return opt


def with_key(state, key, value):
    return {**state, key: value}


def without_key(state, key):
    return {k: v for k, v in state.items() if k != key}


MISMATCHES = [
    ("another rule", lambda s: with_key(s, "rule", np.array("Adam")),
     "saved by 'Adam', this optimizer is SGD"),
    ("a missing state array", lambda s: without_key(s, "state/b/velocity"),
     "state/b/velocity: missing"),
    ("a parameter the model lacks", lambda s: with_key(s, "state/c/velocity", np.zeros(2)),
     "state/c/velocity: unexpected"),
    ("another shape", lambda s: with_key(s, "state/b/velocity", np.zeros(3)),
     r"state/b/velocity: saved as float64 \(3,\), the parameter is float64 \(2,\)"),
    ("another dtype", lambda s: with_key(s, "state/b/velocity", np.zeros(2, np.float32)),
     r"state/b/velocity: saved as float32 \(2,\), the parameter is float64 \(2,\)"),
    ("another momentum", lambda s: with_key(s, "hyperparameters/momentum", np.array(0.5)),
     "hyperparameters/momentum: 0.5 in the saved state, 0.9 in this optimizer"),
    ("a negative step count", lambda s: with_key(s, "step_count", np.array(-1)),
     "step_count must be a non-negative integer"),
    ("an invalid learning rate", lambda s: with_key(s, "learning_rate", np.array(-0.1)),
     "invalid learning_rate: -0.1"),
]


@pytest.mark.parametrize("what, corrupt, message", MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_a_mismatching_state_is_refused_and_nothing_is_loaded(what, corrupt, message):
    saved = corrupt(stepped_sgd(quadratic_model()).state_dict())
    model = quadratic_model()
    opt = O.SGD(model, 0.1, momentum=0.9)
    quadratic_steps(model, opt, 1)
    problems = optimizer_state_problems(opt, saved)
    assert any(re.search(message, problem) for problem in problems), problems


def test_every_mismatch_is_listed_at_once():
    saved = stepped_sgd(quadratic_model()).state_dict()
    saved = without_key(with_key(saved, "hyperparameters/momentum", np.array(0.5)),
                        "state/W/velocity")
    problems = "\n".join(optimizer_state_problems(O.SGD(quadratic_model(), 0.1, momentum=0.9),
                                                   saved))
    assert "state/W/velocity: missing" in problems
    assert "hyperparameters/momentum: 0.5" in problems


def test_a_fitting_state_has_no_problems():
    saved = stepped_sgd(quadratic_model()).state_dict()
    assert optimizer_state_problems(O.SGD(quadratic_model(), 0.1, momentum=0.9), saved) == []
