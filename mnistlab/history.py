"""What a training run records, epoch by epoch, and the convergence measures a report quotes."""
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
