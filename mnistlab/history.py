"""What a training run records, epoch by epoch, and the convergence measures a report quotes."""
import math
import numbers

import numpy as np

FIELDS = ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_time", "learning_rate",
          "l2_penalty")


class History:
    """Per-epoch records of a run: one list per field of FIELDS, all of the same length.

    Attributes:
        train_loss, train_acc: averages over the epoch's training batches (weighted by size);
            train_loss is the cross-entropy alone, without any weight-decay penalty.
        val_loss, val_acc: on the validation set after the epoch.
        epoch_time: wall seconds of the epoch, its validation included.
        learning_rate: the rate the optimizer used during the epoch.
        l2_penalty: 0.5 * weight_decay * sum of squared parameters at the epoch's end (0 without
            weight decay); train_loss + l2_penalty is the regularised objective.
        monitor: the validation metric that decides the best epoch, 'val_acc' or 'val_loss'.
    """

    def __init__(self, records=None, monitor="val_acc"):
        self.monitor = monitor
        records = check_records(records) if records else {}
        for field in FIELDS:
            setattr(self, field, list(records.get(field, [])))

    def append(self, **record):
        """Add one epoch: a value for every field of FIELDS."""
        missing = set(FIELDS) - set(record)
        if missing:
            raise ValueError(f"an epoch record needs {sorted(missing)} too")
        for field in FIELDS:
            getattr(self, field).append(float(record[field]))

    def __len__(self):
        return len(self.train_loss)

    @property
    def total_time(self):
        """Wall seconds of all epochs together."""
        return float(sum(self.epoch_time))

    @property
    def best_epoch(self):
        """0-based epoch of the best `monitor` value (the first, on ties), or None if empty."""
        if not len(self):
            return None
        if self.monitor == "val_loss":
            return int(np.argmin(self.val_loss))
        return int(np.argmax(self.val_acc))

    @property
    def train_loss_with_penalty(self):
        """Per epoch: the regularised objective, train_loss + l2_penalty."""
        return [loss + penalty for loss, penalty in zip(self.train_loss, self.l2_penalty)]

    def epochs_to_reach(self, val_acc):
        """Number of epochs until validation accuracy first reached `val_acc`, or None if never."""
        reached = np.flatnonzero(np.asarray(self.val_acc) >= val_acc)
        return int(reached[0]) + 1 if reached.size else None

    def time_to_reach(self, val_acc):
        """Wall seconds until validation accuracy first reached `val_acc`, or None if never."""
        epochs = self.epochs_to_reach(val_acc)
        return float(sum(self.epoch_time[:epochs])) if epochs else None

    def as_dict(self):
        """{field: list of floats}, ready for JSON."""
        return {field: list(getattr(self, field)) for field in FIELDS}

    def __repr__(self):
        if not len(self):
            return "History(no epochs)"
        return (f"History({len(self)} epochs, last val_acc={self.val_acc[-1]:.4f}, "
                f"best epoch {self.best_epoch}, {self.total_time:.1f} s)")


_FRACTIONS = ("train_acc", "val_acc")
_NON_NEGATIVE = ("epoch_time", "learning_rate", "l2_penalty")


def check_records(records):
    """`records` ({field: sequence of numbers}, as `as_dict()` gives) as {field: list of
    floats}, after checking that it describes a history: every field of FIELDS and no other,
    all of one length, every value a finite number, accuracies in [0, 1], times, rates and
    penalties >= 0.

    Raises:
        ValueError: naming the field and what is wrong with it.
    """
    if not isinstance(records, dict):
        raise ValueError(f"a history is a dict of per-epoch lists, got {type(records).__name__}")
    unknown = sorted(map(str, set(records) - set(FIELDS)))
    missing = [field for field in FIELDS if field not in records]
    if unknown or missing:
        raise ValueError(f"a history has the fields {', '.join(FIELDS)}; "
                         + "; ".join(filter(None, [unknown and f"unknown: {', '.join(unknown)}",
                                                   missing and f"missing: {', '.join(missing)}"])))
    checked = {}
    for field in FIELDS:
        values = records[field]
        if isinstance(values, np.ndarray):
            values = values.tolist() if values.ndim == 1 else None
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"history field {field!r} must be a list of numbers, one per epoch")
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                   for v in values):
            raise ValueError(f"history field {field!r} holds a value that is not a finite number")
        values = [float(v) for v in values]
        if field in _FRACTIONS and any(not 0 <= v <= 1 for v in values):
            raise ValueError(f"history field {field!r} holds an accuracy outside [0, 1]")
        if field in _NON_NEGATIVE and any(v < 0 for v in values):
            raise ValueError(f"history field {field!r} holds a negative value")
        checked[field] = values
    lengths = {field: len(values) for field, values in checked.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("the history's fields have different lengths (one value per epoch "
                         f"each): {', '.join(f'{k} {v}' for k, v in lengths.items())}")
    return checked
