"""Tracking the best epoch of a run, keeping its weights, and deciding when to stop."""
import numpy as np

from .checks import check_choice


class EarlyStopping:
    """Remembers the best validation metric, the weights that reached it, and the epochs since.

    Args:
        monitor: 'val_acc' (higher is better) or 'val_loss' (lower is better).
        patience: stop after this many epochs in a row without improvement; None never stops.

    Attributes:
        best_value: best value of the metric so far (None before the first epoch).
        best_epoch: 0-based epoch that reached it.
        bad_epochs: epochs since the last improvement.
        best_weights: copies of the model's arrays at best_epoch.
    """

    def __init__(self, monitor="val_acc", patience=None):
        self.monitor = check_choice("monitor", monitor, ("val_acc", "val_loss"))
        self.patience = patience
        self.best_value = None
        self.best_epoch = None
        self.bad_epochs = 0
        self.best_weights = {}

    def _improves(self, value):
        if self.best_value is None:
            return True
        return value > self.best_value if self.monitor == "val_acc" else value < self.best_value

    def update(self, epoch, metrics, model):
        """Record epoch `epoch`'s metrics ({'val_acc': .., 'val_loss': ..}); True if it improved."""
        value = metrics[self.monitor]
        if not self._improves(value):
            self.bad_epochs += 1
            return False
        self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
        self.best_weights = model.state_dict()
        return True

    @property
    def should_stop(self):
        """True once `patience` epochs in a row brought no improvement."""
        return self.patience is not None and self.bad_epochs >= self.patience

    def restore_best(self, model):
        """Copy the best epoch's weights back into `model`."""
        if self.best_weights:
            model.load_state_dict(self.best_weights, "best weights")

    def state_dict(self):
        """{key: array} for a checkpoint: the counters and the best weights."""
        state = {"bad_epochs": np.array(self.bad_epochs),
                 "best_epoch": np.array(-1 if self.best_epoch is None else self.best_epoch),
                 "best_value": np.array(np.nan if self.best_value is None else self.best_value)}
        state.update({f"weights/{name}": array for name, array in self.best_weights.items()})
        return state

    def load_state_dict(self, state):
        """Continue from a `state_dict()`."""
        self.bad_epochs = int(state["bad_epochs"])
        best_epoch = int(state["best_epoch"])
        self.best_epoch = None if best_epoch < 0 else best_epoch
        self.best_value = None if self.best_epoch is None else float(state["best_value"])
        prefix = "weights/"
        self.best_weights = {key[len(prefix):]: np.array(value) for key, value in state.items()
                             if key.startswith(prefix)}

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"best_epoch={self.best_epoch}, best_value={self.best_value})")
