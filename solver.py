"""The Solver: builds data loaders, model and optimizer from a cfg dict, then trains,
validates and tests, printing the assignment's log lines.

    runner = Solver({'data_root': 'data', 'max_epoch': 10, 'batch_size': 100,
                     'learning_rate': 0.01, 'momentum': 0.9, 'display_freq': 50, 'seed': 0})
    loss_list, acc_list = runner.train()
    test_loss, test_acc = runner.test()
"""
import time

import numpy as np

from config import validate_cfg
from dataloader import build_dataloader
from history import History
from loss import SoftmaxCrossEntropyLoss
from optimizer import SGD


def _weighted(loss, acc, size):
    """A batch's contribution to epoch totals: (loss * size, correct predictions, size).

    The count of correct predictions is rounded to a whole number, so that accuracy over a
    dataset is exact whatever the batch size.
    """
    return loss * size, round(acc * size), size


class Solver:
    """Trains a model on the splits of an IDX dataset as `cfg` describes (see config.OPTIONS).

    Attributes:
        cfg: the validated cfg, every key present.
        rng: the run's numpy Generator; all randomness (initial weights, shuffling) draws
            from it, so the same cfg and seed give bit-identical runs.
        train_loader (shuffled), val_loader, test_loader: Dataloaders.
        model: the trainable model, `SoftmaxCrossEntropyLoss` by default.
        optimizer: updates the model's parameters.
        history: a History of every epoch trained so far.
        epoch: number of epochs trained so far.
    """

    def __init__(self, cfg):
        self.cfg = validate_cfg(cfg)
        self.rng = np.random.default_rng(self.cfg["seed"])
        self.train_loader, self.val_loader, self.test_loader = self.build_loader(self.cfg, self.rng)
        num_input = self.train_loader.dataset.images.shape[1]
        self.model = SoftmaxCrossEntropyLoss(num_input, self.cfg["num_classes"], rng=self.rng,
                                             dtype=self.cfg["dtype"])
        self.optimizer = self.build_optimizer(self.model, self.cfg)
        self.history = History()
        self.epoch = 0

    @staticmethod
    def build_loader(cfg, rng=None):
        """The (train, val, test) Dataloaders of cfg; only 'train' is shuffled, with `rng`."""
        cfg = validate_cfg(cfg)
        options = dict(num_classes=cfg["num_classes"], dtype=cfg["dtype"],
                       preprocessing=cfg["preprocessing"], val_size=cfg["val_size"])
        loaders = [build_dataloader(cfg["data_root"], cfg["max_epoch"], cfg["batch_size"],
                                    shuffle=(mode == "train"), mode=mode, rng=rng, **options)
                   for mode in ("train", "val", "test")]
        return tuple(loaders)

    @staticmethod
    def build_optimizer(model, cfg):
        """The optimizer of cfg for `model`."""
        cfg = validate_cfg(cfg)
        return SGD(model, cfg["learning_rate"], cfg["momentum"])

    def train(self):
        """Train until `max_epoch` epochs are done, validating after each.

        Returns:
            (loss_list, acc_list): the average training loss and accuracy of every epoch.
        """
        while self.epoch < self.cfg["max_epoch"]:
            start = time.perf_counter()
            train_loss, train_acc = self._train_one_epoch()
            val_loss, val_acc = self.validate()
            self.history.append(train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                                val_acc=val_acc, epoch_time=time.perf_counter() - start,
                                learning_rate=self.optimizer.learning_rate)
            print(f"Epoch [{self.epoch}]\t Average training loss {train_loss:.4f}\t "
                  f"Average training accuracy {train_acc:.4f}")
            print(f"Epoch [{self.epoch}]\t Average validation loss {val_loss:.4f}\t "
                  f"Average validation accuracy {val_acc:.4f}")
            self.epoch += 1
        return list(self.history.train_loss), list(self.history.train_acc)

    def _train_one_epoch(self):
        """One pass over the training set; returns the size-weighted mean (loss, accuracy)."""
        self.model.train()
        totals = np.zeros(3)  # sum of loss * size, sum of acc * size, samples
        num_batches = len(self.train_loader)
        for iteration, (images, labels) in enumerate(self.train_loader):
            loss, acc = self.model.forward(images, labels)
            self.model.gradient_computing()
            self.optimizer.step()
            totals += _weighted(loss, acc, len(labels))
            if iteration % self.cfg["display_freq"] == 0:
                print(f"Epoch [{self.epoch}][{self.cfg['max_epoch']}]\t Batch [{iteration}]"
                      f"[{num_batches}]\t Training Loss {loss:.4f}\t Accuracy {acc:.4f}")
        return totals[0] / totals[2], totals[1] / totals[2]

    def evaluate(self, loader):
        """Mean loss and accuracy over every sample of `loader`, in evaluation mode.

        Batches are weighted by their size, so the result is exact for any batch size.
        """
        self.model.eval()
        totals = np.zeros(3)
        for images, labels in loader:
            loss, acc = self.model.forward(images, labels)
            totals += _weighted(loss, acc, len(labels))
        self.model.train()
        return float(totals[0] / totals[2]), float(totals[1] / totals[2])

    def validate(self):
        """(loss, accuracy) on the validation set."""
        return self.evaluate(self.val_loader)

    def test(self):
        """(loss, accuracy) on the test set."""
        return self.evaluate(self.test_loader)

    def __repr__(self):
        return (f"Solver(model={self.model!r}, optimizer={self.optimizer!r}, "
                f"epochs done={self.epoch}/{self.cfg['max_epoch']})")
