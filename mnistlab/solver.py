"""The Solver: builds data loaders, model and optimizer from a cfg dict, then trains,
validates and tests, printing the assignment's log lines.

    runner = Solver({'data_root': 'data', 'max_epoch': 10, 'batch_size': 100,
                     'learning_rate': 0.01, 'momentum': 0.9, 'display_freq': 50, 'seed': 0})
    loss_list, acc_list = runner.train()
    test_loss, test_acc = runner.test()

From a terminal, `mnistlab --help` (or `python solver.py --help` in the repository) lists
every cfg key (see cli.py).
"""
import math
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from . import checkpoint, model as models
from .checks import check_count
from .config import loss_kwargs, optimizer_from_cfg, schedule_from_cfg, validate_cfg
from .data_home import find_data_root
from .dataloader import build_dataloader
from .early_stopping import EarlyStopping
from .history import History
from .loss import SoftmaxCrossEntropyLoss
from .optimizer import NonFiniteGradientError
from .threads import limit_blas_threads


# The validation batches are the same every epoch, so the loader keeps them once prepared,
# up to this many bytes of images (MNIST's 5,000 take 31 MB in float64); the test set is
# read once and not kept.
VALIDATION_CACHE_BYTES = 64 * 2**20


class TrainingDivergedError(FloatingPointError):
    """The loss or a gradient or parameter became NaN or infinite during training."""


class _RunningTotals:
    """Size-weighted totals of a pass over a loader, so that its means are exact for any
    batch size: the loss is averaged per sample, and accuracy counts correct predictions."""

    def __init__(self):
        self.loss_sum, self.correct, self.samples = 0.0, 0, 0

    def add(self, loss, acc, size):
        """Count a batch of `size` samples with mean loss `loss` and accuracy `acc`."""
        self.loss_sum += float(loss) * size
        self.correct += round(acc * size)  # a whole number, so accuracy stays exact
        self.samples += size

    def means(self):
        """(mean loss, accuracy) over every sample counted so far."""
        return self.loss_sum / self.samples, self.correct / self.samples


def _all_finite(arrays):
    return all(np.isfinite(array).all() for array in arrays)


class Solver:
    """Trains a model on the splits of an IDX dataset as `cfg` describes (see config.OPTIONS).

    Attributes:
        cfg: the validated cfg, every key present.
        rng: the run's numpy Generator; all randomness (initial weights, shuffling, dropout)
            draws from it, so the same cfg and seed give bit-identical runs.
        train_loader (shuffled), val_loader, test_loader: Dataloaders.
        model: the trainable model, `SoftmaxCrossEntropyLoss` by default.
        optimizer: updates the model's parameters.
        schedule: gives the learning rate of every epoch.
        early_stopping: tracks the best epoch and its weights, and when to stop.
        history: a History of every epoch trained so far.
        epoch: number of epochs trained so far.
        interrupted: True if the last train() was stopped by Ctrl-C.
    """

    def __init__(self, cfg):
        self.cfg = validate_cfg(cfg)
        if self.cfg["data_root"] is None:
            self.cfg["data_root"] = find_data_root()
        self.rng = np.random.default_rng(self.cfg["seed"])
        self.train_loader, self.val_loader, self.test_loader = self.build_loader(self.cfg, self.rng)
        self.model = self.build_model(self.cfg, self.train_loader.dataset, self.rng)
        self.optimizer = self.build_optimizer(self.model, self.cfg)
        self.schedule = schedule_from_cfg(self.cfg)
        self.early_stopping = EarlyStopping(self.cfg["monitor"], self.cfg["patience"])
        self.history = History(monitor=self.cfg["monitor"])
        self.epoch = 0
        self.interrupted = False
        checkpoint.check_checkpoint_dir(self)  # a folder, writable, with room: before any epoch

    @staticmethod
    def build_loader(cfg, rng=None):
        """The (train, val, test) Dataloaders of cfg; only 'train' is shuffled, with `rng`,
        only 'train' drops a last, smaller batch when cfg['drop_last'] says so, only 'train'
        prepares its batches ahead in cfg['prefetch_worker'] (read every epoch in a new
        order, it is the hot path; the others use a thread), and only 'val' keeps its
        prepared batches (up to VALIDATION_CACHE_BYTES)."""
        cfg = validate_cfg(cfg)  # returns a cfg the Solver validated as it is
        data_root = find_data_root() if cfg["data_root"] is None else cfg["data_root"]
        # A random validation split is drawn from the seed itself, not from `rng`, so that
        # choosing it leaves the initial weights and the shuffling as they were.
        split_seed = (cfg["seed"] if cfg["seed"] is not None
                      else np.random.SeedSequence().entropy)
        options = dict(dtype=cfg["dtype"], preprocessing=cfg["preprocessing"],
                       val_size=cfg["val_size"], prefetch=cfg["prefetch"],
                       val_split=cfg["val_split"], split_seed=split_seed)
        train = build_dataloader(data_root, cfg["max_epoch"], cfg["batch_size"],
                                 shuffle=True, mode="train", rng=rng, drop_last=cfg["drop_last"],
                                 worker=cfg["prefetch_worker"], num_classes=cfg["num_classes"],
                                 **options)
        num_classes = train.dataset.num_classes  # read from the labels when cfg leaves it None
        val, test = (build_dataloader(data_root, cfg["max_epoch"], cfg["batch_size"],
                                      mode=mode, num_classes=num_classes, cache_bytes=cache,
                                      **options)
                     for mode, cache in (("val", VALIDATION_CACHE_BYTES), ("test", 0)))
        return train, val, test

    @staticmethod
    def build_model(cfg, dataset, rng=None):
        """The model of cfg, sized for `dataset`'s images; a model object in cfg is used as is."""
        cfg = validate_cfg(cfg)
        if not isinstance(cfg["model"], str):
            return cfg["model"]
        return models.build_model(cfg["model"], num_input=dataset.num_features,
                                  num_classes=dataset.num_classes, rng=rng, dtype=cfg["dtype"],
                                  input_shape=(1, *dataset.image_shape), loss=cfg["loss"],
                                  init=cfg["init"], **loss_kwargs(cfg))

    @staticmethod
    def build_optimizer(model, cfg):
        """The update rule of cfg for `model`, with the hyper-parameters cfg sets."""
        return optimizer_from_cfg(validate_cfg(cfg), model)

    # ---- training ----

    def train(self, until_epoch=None):
        """Train until `max_epoch` epochs are done (or early stopping), validating after each.

        Ctrl-C stops training cleanly: the epochs completed so far stay in the history (and,
        with `checkpoint_dir`, on disk), and train() returns normally.

        Args:
            until_epoch: stop once this many epochs are done (at most max_epoch), to look at
                the model part-way; a later train() continues exactly where it stopped.

        Returns:
            (loss_list, acc_list): the average training loss and accuracy of every epoch.

        Raises:
            TrainingDivergedError: the loss, a gradient or a parameter became NaN or infinite.
        """
        self.interrupted = False
        checkpoint.check_checkpoint_dir(self)
        last_epoch = self.cfg["max_epoch"]
        if until_epoch is not None:
            last_epoch = min(check_count("until_epoch", until_epoch, 0), last_epoch)
        try:
            # Overflow shows up as NaN/inf, which _step turns into a clear error.
            with self._blas_threads(), np.errstate(over="ignore", invalid="ignore"):
                while self.epoch < last_epoch and not self.early_stopping.should_stop:
                    self._run_epoch()
        except KeyboardInterrupt:
            self.interrupted = True
            print(f"Training interrupted during epoch {self.epoch}: the history keeps the "
                  f"{len(self.history)} completed epochs.")
        finally:
            # the loader's worker process, if any: a later train() forks a new one (a loader
            # put in its place, any iterable of batches, may have nothing to close)
            getattr(self.train_loader, "close", lambda: None)()
        finished = (self.epoch >= self.cfg["max_epoch"] or self.early_stopping.should_stop
                    or self.interrupted)
        if (finished and self.cfg["patience"] is not None
                and self.early_stopping.best_epoch is not None):
            self.early_stopping.restore_best(self.model)
            print(f"Restored the weights of Epoch [{self.early_stopping.best_epoch}], the best by "
                  f"{self.cfg['monitor']} ({self.early_stopping.best_value:.4f}).")
        return list(self.history.train_loss), list(self.history.train_acc)

    def _run_epoch(self):
        """Train one epoch, validate, record, log, and save checkpoints."""
        self.optimizer.learning_rate = self.schedule.rate(self.epoch)
        start = time.perf_counter()
        train_loss, train_acc = self._train_one_epoch()
        val_loss, val_acc = self.validate()
        self.history.append(train_loss=train_loss, train_acc=train_acc, val_loss=val_loss,
                            val_acc=val_acc, epoch_time=time.perf_counter() - start,
                            learning_rate=self.optimizer.learning_rate,
                            l2_penalty=self.l2_penalty())
        print(f"Epoch [{self.epoch}]\t Average training loss {train_loss:.4f}\t "
              f"Average training accuracy {train_acc:.4f}")
        print(f"Epoch [{self.epoch}]\t Average validation loss {val_loss:.4f}\t "
              f"Average validation accuracy {val_acc:.4f}")
        improved = self.early_stopping.update(self.epoch, {"val_acc": val_acc, "val_loss": val_loss},
                                              self.model)
        self.epoch += 1
        if self.cfg["checkpoint_dir"]:
            self.save_checkpoint(os.path.join(self.cfg["checkpoint_dir"], "last.npz"))
            if improved:
                self.save_checkpoint(os.path.join(self.cfg["checkpoint_dir"], "best.npz"))
        if self.early_stopping.should_stop:
            print(f"Early stopping: no improvement of {self.cfg['monitor']} for "
                  f"{self.cfg['patience']} epochs.")

    def _train_one_epoch(self):
        """One pass over the training set; returns the size-weighted mean (loss, accuracy)."""
        self.model.train()
        epoch_start_weights = self.model.state_dict()
        totals = _RunningTotals()
        num_batches = len(self.train_loader)
        batches = self._progress(self.train_loader, num_batches)
        for iteration, (images, labels) in enumerate(batches):
            loss, acc = self.model.forward(images, labels)
            self.model.gradient_computing()
            self._step(loss, iteration, epoch_start_weights)
            totals.add(loss, acc, len(labels))
            if iteration % self.cfg["display_freq"] == 0:
                print(f"Epoch [{self.epoch}][{self.cfg['max_epoch']}]\t Batch [{iteration}]"
                      f"[{num_batches}]\t Training Loss {loss:.4f}\t Accuracy {acc:.4f}")
                if hasattr(batches, "set_postfix"):
                    mean_loss, mean_acc = totals.means()
                    batches.set_postfix(loss=f"{mean_loss:.4f}", acc=f"{mean_acc:.4f}",
                                        refresh=False)
        self._check_parameters_finite(num_batches - 1, epoch_start_weights)
        return totals.means()

    def _blas_threads(self):
        """Limit BLAS to cfg['blas_threads'] threads. By default: one for the softmax model,
        whose small matrix products lose more to thread hand-offs than they gain; for other
        models as many as fit beside the run's prefetching worker on the cores the process
        may use (threads.blas_threads), never more than a limit already in force (a sweep
        worker's one thread)."""
        threads = self.cfg["blas_threads"]
        if threads is None and isinstance(self.model, SoftmaxCrossEntropyLoss):
            threads = 1
        if threads is None:
            return limit_blas_threads(busy_threads=1 if self.cfg["prefetch"] else 0)
        return threadpool_limits(limits=threads, user_api="blas")

    def _progress(self, loader, total):
        """`loader` itself, or wrapped in a progress bar when cfg['progress'] is on."""
        if not self.cfg["progress"]:
            return loader
        from tqdm.auto import tqdm
        return tqdm(loader, total=total, desc=f"Epoch {self.epoch}", leave=False)

    def _step(self, loss, iteration, epoch_start_weights):
        """The optimizer's update, unless the loss or a gradient is NaN/inf: the optimizer
        refuses such a gradient before it changes anything."""
        try:
            if not math.isfinite(loss):
                raise NonFiniteGradientError(f"the loss is {loss}")
            self.optimizer.step()
        except NonFiniteGradientError as exc:
            # A non-finite loss may come from parameters an update already spoilt.
            self._check_parameters_finite(iteration, epoch_start_weights)
            raise TrainingDivergedError(
                f"training diverged at epoch {self.epoch}, batch {iteration}: {exc}. The "
                f"learning rate {self.optimizer.learning_rate} is probably too large: try a "
                "smaller one (e.g. 10x smaller). The model keeps its last finite weights.") \
                from None

    def _check_parameters_finite(self, iteration, epoch_start_weights):
        """If an update made a parameter NaN/inf, restore the epoch's starting weights and stop."""
        if _all_finite(self.model.arrays().values()):
            return
        self.model.load_state_dict(epoch_start_weights, "epoch start")
        raise TrainingDivergedError(
            f"training diverged at epoch {self.epoch}, batch {iteration}: an update made the "
            f"parameters NaN or infinite. The learning rate {self.optimizer.learning_rate} is "
            "probably too large: try a smaller one (e.g. 10x smaller). The model was reset "
            f"to its finite weights from the start of epoch {self.epoch}.")

    def l2_penalty(self):
        """0.5 * weight_decay * sum of squared parameters (0 without weight decay)."""
        decay = getattr(self.optimizer, "weight_decay", 0.0)
        if not decay:
            return 0.0
        return 0.5 * decay * sum(float(np.sum(np.square(param)))
                                 for _, param, _ in self.model.named_parameters())

    # ---- evaluation ----

    def evaluate(self, loader):
        """Mean loss and accuracy over every sample of `loader`, in evaluation mode.

        Batches are weighted by their size, so the result is exact for any batch size.
        """
        self.model.eval()
        totals = _RunningTotals()
        with self._blas_threads():
            for images, labels in loader:
                loss, acc = self.model.forward(images, labels)
                totals.add(loss, acc, len(labels))
        self.model.train()
        return totals.means()

    def validate(self):
        """(loss, accuracy) on the validation set."""
        return self.evaluate(self.val_loader)

    def test(self):
        """(loss, accuracy) on the test set."""
        return self.evaluate(self.test_loader)

    def predict(self, loader):
        """(labels, predictions) over every sample of `loader`, in evaluation mode."""
        self.model.eval()
        pairs = [(labels, self.model.predict(images)) for images, labels in loader]
        self.model.train()
        return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])

    # ---- checkpoints ----

    def save_checkpoint(self, path):
        """Save the whole run (model, optimizer, schedule position, history, rng) to `path`."""
        checkpoint.save_checkpoint(path, self)

    def load_checkpoint(self, path):
        """Continue from a checkpoint saved by a Solver of the same cfg; train() then resumes."""
        checkpoint.load_checkpoint(path, self)

    @classmethod
    def resume(cls, path, **cfg_overrides):
        """A Solver rebuilt from the cfg saved in checkpoint `path`, restored to its state.

        `cfg_overrides` change cfg keys first, e.g. `max_epoch=20` to train longer. The
        checkpoint's own `checkpoint_dir` is never used: the resumed run writes to
        `cfg_overrides['checkpoint_dir']` if given, else to the folder `path` is in.
        """
        return checkpoint.resume(cls, path, cfg_overrides)

    def __repr__(self):
        return (f"Solver(model={self.model!r}, optimizer={self.optimizer!r}, "
                f"epochs done={self.epoch}/{self.cfg['max_epoch']})")

