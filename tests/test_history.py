"""History records epochs and answers the convergence questions a report asks."""
import pytest

from mnistlab.history import FIELDS, History


def make_history(val_accs, times):
    history = History()
    for acc, seconds in zip(val_accs, times):
        history.append(train_loss=1 - acc, train_acc=acc, val_loss=1 - acc, val_acc=acc,
                       epoch_time=seconds, learning_rate=0.1, l2_penalty=0.01)
    return history


def test_convergence_measures():
    history = make_history([0.5, 0.85, 0.91, 0.95, 0.93], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert len(history) == 5 and history.total_time == 15.0
    assert history.epochs_to_reach(0.9) == 3
    assert history.time_to_reach(0.9) == 6.0
    assert history.epochs_to_reach(0.99) is None and history.time_to_reach(0.99) is None
    assert history.best_epoch == 3


def test_best_epoch_takes_the_first_of_ties_and_none_when_empty():
    assert make_history([0.9, 0.95, 0.95], [1, 1, 1]).best_epoch == 1
    assert History().best_epoch is None


def test_round_trip_through_a_dict():
    history = make_history([0.5, 0.6], [1.0, 1.5])
    again = History(history.as_dict())
    assert again.as_dict() == history.as_dict() and set(history.as_dict()) == set(FIELDS)


def test_an_incomplete_record_is_refused():
    with pytest.raises(ValueError, match="epoch_time"):
        History().append(train_loss=1, train_acc=0, val_loss=1, val_acc=0, learning_rate=0.1)
