"""What a training run records, epoch by epoch, and the convergence measures a report quotes."""
import numpy as np

FIELDS = ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_time", "learning_rate")


class History:
    """Per-epoch records of a run: one list per field of FIELDS, all of the same length.

    Attributes:
        train_loss, train_acc: averages over the epoch's training batches (weighted by size).
        val_loss, val_acc: on the validation set after the epoch.
        epoch_time: wall seconds of the epoch, its validation included.
        learning_rate: the rate the optimizer used during the epoch.
    """

    def __init__(self, records=None):
        for field in FIELDS:
            setattr(self, field, list((records or {}).get(field, [])))

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
        """0-based epoch of the highest validation accuracy (the first, on ties), or None."""
        return int(np.argmax(self.val_acc)) if self.val_acc else None

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
