"""The Solver end to end on a small generated dataset: it learns, logs, and reproduces itself."""
import os
import re

import numpy as np
import pytest

from conftest import CountingDataset, tiny_cfg
from mnistlab import dataloader, worker
from mnistlab.config import ConfigError
from mnistlab.history import FIELDS
from mnistlab.solver import Solver, TrainingDivergedError


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


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_prefetching_changes_no_number(tiny_data, worker):
    runs = [Solver(tiny_cfg(tiny_data, prefetch=depth, prefetch_worker=worker))
            for depth in (0, 3)]
    for runner in runs:
        runner.train()
    assert numbers_of(runs[0].history) == numbers_of(runs[1].history)
    np.testing.assert_array_equal(runs[0].model.W, runs[1].model.W)
    assert runs[0].test() == runs[1].test()


@pytest.mark.skipif(not worker.can_fork(), reason="the worker process needs Linux")
def test_train_stops_the_worker_process_it_started_when_it_returns(tiny_data, monkeypatch):
    started = []

    class RecordedWorker(worker.BatchWorker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self.pid)
    monkeypatch.setattr(dataloader, "BatchWorker", RecordedWorker)
    runner = Solver(tiny_cfg(tiny_data, max_epoch=2, prefetch=2, prefetch_worker="process"))
    for until_epoch in (1, 2):
        runner.train(until_epoch=until_epoch)
        assert len(started) == until_epoch and runner.train_loader._process is None
        with pytest.raises(ChildProcessError):   # waited for already
            os.waitpid(started[-1], os.WNOHANG)


def test_any_iterable_of_batches_can_stand_in_for_the_training_loader(tiny_data):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=2))
    runner.train_loader = [(images.copy(), labels) for images, labels in runner.train_loader]
    runner.train()
    assert len(runner.history) == 2


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


# ---- training control ----

def test_schedule_sets_the_rate_of_every_epoch(tiny_data, capsys):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=4, lr_schedule="step", lr_step_size=2,
                             lr_gamma=0.5, learning_rate=0.1))
    runner.train()
    assert runner.history.learning_rate == [0.1, 0.1, 0.05, 0.05]


def test_weight_decay_penalty_is_recorded_separately(tiny_data, capsys):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=1, weight_decay=0.01))
    runner.train()
    squares = sum(float(np.sum(p ** 2)) for _, p, _ in runner.model.named_parameters())
    assert runner.history.l2_penalty == [pytest.approx(0.005 * squares)]
    assert runner.history.train_loss_with_penalty[0] > runner.history.train_loss[0]


def test_early_stopping_stops_and_restores_the_best_weights(tiny_data, capsys, monkeypatch):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=10, patience=2))
    scripted = iter([(0.5, 0.80), (0.4, 0.90), (0.45, 0.85), (0.5, 0.88), (0.3, 0.95)])
    snapshots = []

    def fake_validate():
        snapshots.append(runner.model.W.copy())
        return next(scripted)
    monkeypatch.setattr(runner, "validate", fake_validate)
    runner.train()
    assert len(runner.history) == 4 and runner.history.best_epoch == 1
    np.testing.assert_array_equal(runner.model.W, snapshots[1])
    log = capsys.readouterr().out
    assert "Early stopping" in log
    # The restored epoch is named as the log names it: "Epoch [1]", counted from 0.
    assert "Epoch [1]\t Average validation loss 0.4000\t Average validation accuracy 0.9000" in log
    assert "Restored the weights of Epoch [1], the best by val_acc (0.9000)" in log


def test_early_stopping_can_monitor_the_loss(tiny_data, capsys, monkeypatch):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=10, patience=1, monitor="val_loss"))
    scripted = iter([(0.5, 0.80), (0.4, 0.70), (0.45, 0.99)])
    monkeypatch.setattr(runner, "validate", lambda: next(scripted))
    runner.train()
    assert len(runner.history) == 3 and runner.history.best_epoch == 1


def test_divergence_stops_with_a_clear_error_and_finite_weights(tiny_data, capsys):
    runner = Solver(tiny_cfg(tiny_data, model="mlp", learning_rate=1e3, max_epoch=5))
    with pytest.raises(TrainingDivergedError, match=r"epoch 0, batch \d+.*smaller one"):
        runner.train()
    assert all(np.isfinite(p).all() for _, p, _ in runner.model.named_parameters())


def test_divergence_keeps_the_last_good_checkpoint(tiny_data, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "checkpoints"
    cfg = tiny_cfg(tiny_data, model="mlp", max_epoch=3)
    runner = Solver({**cfg, "checkpoint_dir": str(folder)})
    original = runner._train_one_epoch

    def explode_in_epoch_2():
        if runner.epoch == 2:
            runner.optimizer.learning_rate = 1e3
        return original()
    monkeypatch.setattr(runner, "_train_one_epoch", explode_in_epoch_2)
    with pytest.raises(TrainingDivergedError, match="epoch 2"):
        runner.train()
    resumed = Solver(cfg)
    resumed.load_checkpoint(str(folder / "last.npz"))
    assert resumed.epoch == 2
    assert all(np.isfinite(p).all() for _, p, _ in resumed.model.named_parameters())


def test_ctrl_c_keeps_the_history_and_the_last_epoch_on_disk(tiny_data, tmp_path, capsys,
                                                            monkeypatch):
    folder = tmp_path / "checkpoints"
    runner = Solver(tiny_cfg(tiny_data, max_epoch=5, checkpoint_dir=str(folder)))
    original = runner.optimizer.step

    def step_until_epoch_2():
        if runner.epoch == 2:
            raise KeyboardInterrupt
        original()
    monkeypatch.setattr(runner.optimizer, "step", step_until_epoch_2)
    losses, accs = runner.train()
    assert runner.interrupted and len(losses) == len(runner.history) == 2
    assert "interrupted during epoch 2" in capsys.readouterr().out
    resumed = Solver.resume(str(folder / "last.npz"))
    assert resumed.epoch == 2


@pytest.mark.parametrize("progress", [False, True])
def test_progress_bar_leaves_the_log_unchanged(tiny_data, capsys, progress):
    Solver(tiny_cfg(tiny_data, max_epoch=1, progress=progress)).train()
    captured = capsys.readouterr()
    assert captured.out.count("Training Loss") == 2  # batches 0 and 10 of 16
    assert ("Epoch 0" in captured.err) == progress  # tqdm draws on stderr


@pytest.mark.parametrize("model", ["mlp", "mlp_bn", "cnn"])
def test_every_model_trains_through_the_same_solver(tiny_data, capsys, model):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=2, model=model, learning_rate=0.05))
    losses, _ = runner.train()
    assert losses[1] < losses[0] and runner.test()[1] > 0.5


def test_a_model_object_can_be_given(tiny_data, capsys):
    from mnistlab.model import build_model
    custom = build_model("mlp", rng=np.random.default_rng(0))
    runner = Solver(tiny_cfg(tiny_data, model=custom, max_epoch=1))
    assert runner.model is custom
    runner.train()


def test_every_optimizer_trains(tiny_data, capsys):
    from mnistlab.optimizer import OPTIMIZERS
    for name in OPTIMIZERS:
        momentum = 0.9 if name == "sgd" else None
        runner = Solver(tiny_cfg(tiny_data, max_epoch=2, optimizer=name, momentum=momentum,
                                 learning_rate=0.001 if name.startswith("adam") else 0.01))
        runner.train()
        assert runner.test()[1] > 0.8, name


def test_any_idx_dataset_with_its_own_number_of_classes(tmp_path, capsys):
    from conftest import write_dataset
    folder, _ = write_dataset(tmp_path / "three", num_train=400, num_test=90, num_classes=3,
                              side=12)
    runner = Solver(tiny_cfg(folder, max_epoch=2))
    assert runner.model.W.shape == (144, 3)
    runner.train()
    assert runner.test()[1] > 0.9


def test_a_nan_gradient_with_a_finite_loss_stops_before_the_update(tiny_data, capsys,
                                                                    monkeypatch):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=1))
    original = runner.model.gradient_computing
    calls = []

    def poison_batch_3():
        original()
        calls.append(1)
        if len(calls) == 4:
            runner.model.grad_W[0, 0] = np.nan
    monkeypatch.setattr(runner.model, "gradient_computing", poison_batch_3)
    before = {}

    def remember_weights():
        before.update(runner.model.state_dict())
    monkeypatch.setattr(runner.optimizer, "step", _spy(runner.optimizer.step, remember_weights))
    with pytest.raises(TrainingDivergedError, match=r"epoch 0, batch 3: the gradient of 'W'"):
        runner.train()
    for key, array in runner.model.arrays().items():   # the update of batch 3 never happened
        np.testing.assert_array_equal(array, before[key])
    assert all(np.isfinite(state).all() for slots in runner.optimizer.state.values()
               for state in slots.values())


def _spy(function, before_call):
    def spied(*args, **kwargs):
        before_call()
        return function(*args, **kwargs)
    return spied


def test_the_cfg_is_validated_once_per_solver(tiny_data, monkeypatch):
    from mnistlab import config
    checks = []
    original = config.schedule_from_cfg
    monkeypatch.setattr(config, "schedule_from_cfg",
                        lambda cfg: checks.append(1) or original(cfg))
    Solver(tiny_cfg(tiny_data))
    assert len(checks) == 1   # validate_cfg's one check; the Solver builds from the result


@pytest.mark.parametrize("loss", ["am_softmax", "real_am_softmax"])
def test_margin_losses_train_end_to_end(tiny_data, capsys, loss):
    runner = Solver(tiny_cfg(tiny_data, model="mlp", loss=loss, margin=0.2, scale=10.0,
                             max_epoch=4, learning_rate=0.05, preprocessing="normalize"))
    runner.train()
    assert runner.history.val_acc[-1] > 0.9
    assert runner.test()[1] > 0.9


def test_a_random_validation_split_is_drawn_from_the_seed_not_the_run_rng(tiny_data, capsys):
    last = Solver(tiny_cfg(tiny_data, seed=4))
    random = Solver(tiny_cfg(tiny_data, seed=4, val_split="random"))
    np.testing.assert_array_equal(last.model.W, random.model.W)   # same initial weights
    assert not np.array_equal(last.val_loader.dataset.images, random.val_loader.dataset.images)
    again = Solver(tiny_cfg(tiny_data, seed=4, val_split="random"))
    np.testing.assert_array_equal(again.val_loader.dataset.images,
                                  random.val_loader.dataset.images)


@pytest.mark.parametrize("optimizer", ["asgd", "rprop"])
def test_asgd_and_rprop_train_from_the_cfg(tiny_data, capsys, optimizer):
    runner = Solver(tiny_cfg(tiny_data, optimizer=optimizer, momentum=None,
                             learning_rate=0.01 if optimizer == "asgd" else 0.001))
    runner.train()
    assert runner.history.val_acc[-1] > 0.8


def test_training_in_parts_equals_training_at_once(tiny_data, capsys):
    whole = Solver(tiny_cfg(tiny_data, max_epoch=4))
    whole.train()
    parts = Solver(tiny_cfg(tiny_data, max_epoch=4))
    for until in (1, 3, 3, 9):
        parts.train(until_epoch=until)
        assert parts.epoch == min(until, 4)
    assert parts.history.val_acc == whole.history.val_acc
    np.testing.assert_array_equal(parts.model.W, whole.model.W)


def test_a_prefetching_model_run_leaves_a_core_to_the_prefetching_thread(tiny_data, capsys,
                                                                         monkeypatch):
    from threadpoolctl import threadpool_info

    from mnistlab import threads
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    runner = Solver(tiny_cfg(tiny_data, model="mlp", max_epoch=1, prefetch=2))
    seen = []
    original = runner._train_one_epoch

    def spy():
        seen.append([pool["num_threads"] for pool in threadpool_info()
                     if pool["user_api"] == "blas"])
        return original()
    monkeypatch.setattr(runner, "_train_one_epoch", spy)
    runner.train()
    assert seen and all(count == 1 for count in seen[0])


def test_validation_batches_are_prepared_once_and_the_test_set_every_time(tiny_data, capsys):
    runner = Solver(tiny_cfg(tiny_data, max_epoch=3))
    val = CountingDataset(runner.val_loader.dataset)
    test = CountingDataset(runner.test_loader.dataset)
    runner.val_loader.dataset, runner.test_loader.dataset = val, test
    runner.train()
    assert val.prepared == len(val)   # in the first epoch only
    assert runner.validate() == (runner.history.val_loss[-1], runner.history.val_acc[-1])
    runner.test(), runner.test()
    assert val.prepared == len(val) and test.prepared == 2 * len(test)
