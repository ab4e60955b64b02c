"""The Solver end to end on a small generated dataset: it learns, logs, and reproduces itself."""
import re

import numpy as np
import pytest

from conftest import tiny_cfg
from config import ConfigError
from history import FIELDS
from solver import Solver


def numbers_of(history):
    """Everything in a history except the wall times, which vary run to run."""
    return {field: values for field, values in history.as_dict().items() if field != "epoch_time"}


def test_learns_a_separable_dataset(tiny_data, capsys):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=4))
    losses, accs = runner.train()
    assert len(losses) == len(accs) == 4
    assert losses[-1] < 0.5 * losses[0]
    assert runner.validate()[1] > 0.9 and runner.test()[1] > 0.9


def test_logs_in_the_assignments_format(tiny_data, capsys):
    Solver(tiny_cfg(tiny_data, max_epoch=2, batch_size=100, display_freq=2)).train()
    lines = capsys.readouterr().out.splitlines()
    batch = r"Epoch \[(\d)\]\[2\]\t Batch \[(\d)\]\[5\]\t Training Loss \d+\.\d{4}\t Accuracy \d\.\d{4}"
    train = r"Epoch \[\d\]\t Average training loss \d+\.\d{4}\t Average training accuracy \d\.\d{4}"
    val = r"Epoch \[\d\]\t Average validation loss \d+\.\d{4}\t Average validation accuracy \d\.\d{4}"
    pattern = [batch] * 3 + [train, val]
    assert len(lines) == 10
    for line, expected in zip(lines, pattern * 2):
        assert re.fullmatch(expected, line), line
    assert [re.match(batch, line).group(2) for line in lines[:3]] == ["0", "2", "4"]


def test_same_seed_same_numbers_different_seed_different(tiny_data):
    runs = [Solver(tiny_cfg(tiny_data, seed=seed)) for seed in (5, 5, 6)]
    for runner in runs:
        runner.train()
    assert numbers_of(runs[0].history) == numbers_of(runs[1].history)
    np.testing.assert_array_equal(runs[0].model.W, runs[1].model.W)
    assert numbers_of(runs[0].history) != numbers_of(runs[2].history)


def test_randomness_does_not_touch_numpys_global_state(tiny_data):
    np.random.seed(0)
    expected = np.random.random()
    np.random.seed(0)
    Solver(tiny_cfg(tiny_data, max_epoch=1)).train()
    assert np.random.random() == expected


@pytest.mark.parametrize("batch_size", [7, 64, 1000])
def test_evaluation_is_exact_over_the_whole_set_for_any_batch_size(tiny_data, batch_size):
    runner = Solver(tiny_cfg(tiny_data, batch_size=batch_size))
    images, labels = runner.test_loader.dataset[np.arange(len(runner.test_loader.dataset))]
    loss, acc = runner.test()
    assert acc == np.mean(runner.model.predict(images) == labels)
    assert loss == pytest.approx(runner.model.forward(images, labels)[0], rel=1e-12)


def test_epoch_average_is_weighted_by_batch_size(tiny_data, capsys):
    runner = Solver(tiny_cfg(tiny_data, batch_size=200, max_epoch=1, learning_rate=1e-9,
                             momentum=0.0))
    images, labels = runner.train_loader.dataset[np.arange(500)]
    before = runner.model.forward(images, labels)
    losses, accs = runner.train()  # batches of 200, 200, 100; the weights barely move
    assert losses[0] == pytest.approx(before[0], rel=1e-6) and accs[0] == before[1]


def test_float32_runs_in_float32_and_learns(tiny_data):
    runner = Solver(tiny_cfg(tiny_data, dtype="float32"))
    runner.train()
    assert runner.model.W.dtype == np.float32
    assert runner.test()[1] > 0.9


def test_history_has_every_field_per_epoch(tiny_data):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=2))
    runner.train()
    assert all(len(getattr(runner.history, field)) == 2 for field in FIELDS)
    assert runner.history.learning_rate == [0.01, 0.01]
    assert all(t > 0 for t in runner.history.epoch_time)


def test_train_twice_does_not_repeat_finished_epochs(tiny_data):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=2))
    first = runner.train()
    assert runner.train() == first and runner.epoch == 2


def test_bad_cfg_fails_before_any_data_is_read(tmp_path):
    with pytest.raises(ConfigError, match="learning_rat"):
        Solver({"data_root": str(tmp_path / "missing"), "learning_rat": 0.1})


def test_static_builders(tiny_data):
    cfg = tiny_cfg(tiny_data)
    train, val, test = Solver.build_loader(cfg)
    assert (len(train.dataset), len(val.dataset), len(test.dataset)) == (500, 100, 200)
    assert train.sampler.shuffle and not val.sampler.shuffle and not test.sampler.shuffle
    runner = Solver(cfg)
    optimizer = Solver.build_optimizer(runner.model, cfg)
    assert optimizer.learning_rate == 0.01 and optimizer.momentum == 0.9
