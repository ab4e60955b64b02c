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


def full(**changes):
    records = {field: [0.5, 0.6] for field in FIELDS}
    records.update(changes)
    return records


@pytest.mark.parametrize("records, message", [
    (full(val_acc=[0.5, 0.6, 0.7]), "different lengths"),
    ({"train_loss": [1.0]}, "missing: train_acc"),
    (full(extra=[1.0, 2.0]), "unknown: extra"),
    (full(train_loss=[1.0, float("nan")]), "'train_loss' holds a value that is not a finite"),
    (full(val_acc=[0.5, 1.5]), "'val_acc' holds an accuracy outside"),
    (full(epoch_time=[-1.0, 1.0]), "'epoch_time' holds a negative value"),
    (full(learning_rate="0.1"), "'learning_rate' must be a list of numbers"),
    (full(l2_penalty=[True, False]), "'l2_penalty' holds a value that is not a finite"),
    ([1, 2], "a history is a dict"),
])
def test_a_history_that_cannot_be_is_refused_naming_the_field(records, message):
    with pytest.raises(ValueError, match=message):
        History(records)


def test_a_valid_history_from_arrays_or_lists_round_trips():
    import numpy as np
    records = {field: np.array([0.5, 0.25]) for field in FIELDS}
    assert History(records).as_dict() == {field: [0.5, 0.25] for field in FIELDS}
