"""The best-epoch tracker: improvement, patience, best weights and its saved state."""
import numpy as np
import pytest

from mnistlab.early_stopping import EarlyStopping
from mnistlab.loss import SoftmaxCrossEntropyLoss


@pytest.fixture
def model():
    return SoftmaxCrossEntropyLoss(3, 2, rng=np.random.default_rng(0))


def test_patience_counts_epochs_without_improvement(model):
    tracker = EarlyStopping("val_acc", patience=2)
    improved = [tracker.update(e, {"val_acc": acc, "val_loss": 0}, model)
                for e, acc in enumerate([0.5, 0.7, 0.7, 0.6])]
    assert improved == [True, True, False, False]
    assert tracker.best_epoch == 1 and tracker.best_value == 0.7 and tracker.should_stop


def test_loss_is_better_when_lower_and_no_patience_never_stops(model):
    tracker = EarlyStopping("val_loss")
    for epoch, loss in enumerate([0.5, 0.6, 0.4, 0.9, 0.9, 0.9]):
        tracker.update(epoch, {"val_acc": 0, "val_loss": loss}, model)
    assert tracker.best_epoch == 2 and not tracker.should_stop


def test_restore_best_copies_back_the_weights_of_the_best_epoch(model):
    tracker = EarlyStopping()
    tracker.update(0, {"val_acc": 0.9, "val_loss": 0}, model)
    best = model.W.copy()
    model.W += 1.0
    tracker.update(1, {"val_acc": 0.5, "val_loss": 0}, model)
    tracker.restore_best(model)
    np.testing.assert_array_equal(model.W, best)


def test_state_dict_round_trip(model):
    tracker = EarlyStopping("val_acc", patience=3)
    tracker.update(0, {"val_acc": 0.9, "val_loss": 0}, model)
    tracker.update(1, {"val_acc": 0.8, "val_loss": 0}, model)
    again = EarlyStopping("val_acc", patience=3)
    again.load_state_dict(tracker.state_dict())
    assert (again.best_epoch, again.best_value, again.bad_epochs) == (0, 0.9, 1)
    np.testing.assert_array_equal(again.best_weights["model/W"], tracker.best_weights["model/W"])


def test_unknown_monitor_is_refused():
    with pytest.raises(ValueError, match="invalid monitor: 'accuracy'"):
        EarlyStopping("accuracy")
