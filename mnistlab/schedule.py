"""Learning-rate schedules: the rate of every epoch as a pure function of the epoch number.

A schedule keeps no state, so training resumed at epoch k simply asks for `rate(k)`. The
trainer sets the optimizer's rate at the start of every epoch:

    schedule = make_schedule('cosine', base_rate=0.1, max_epoch=30, warmup_epochs=2)
    for epoch in range(30):
        optimizer.learning_rate = schedule.rate(epoch)
        ...train one epoch...

Epochs are counted from 0. Every schedule takes `warmup_epochs` W >= 0 (0: no warm-up). The
first W epochs ramp the rate up linearly,

    rate(e) = base_rate * (e + 1) / (W + 1)          for e < W,

so warm-up starts at base_rate / (W + 1) and climbs by that much each epoch; from epoch W on,
the main schedule runs on the epochs counted after warm-up, e' = e - W, and starts at
base_rate (its value at e' = 0).
"""
import math
from dataclasses import MISSING, dataclass, field

from .checks import (HyperparameterChecks, check_count, count, declared_hyperparameters,
                     hyperparameter, lookup, reject_unknown_keywords)

# The "default" of a keyword that must be given, in schedule_hyperparameters.
REQUIRED = MISSING


@dataclass(eq=False, repr=False)
class Schedule(HyperparameterChecks):
    """Base class: the warm-up ramp shared by every schedule, and the run's length.

    A schedule declares its hyper-parameters as dataclass fields (checked whenever set) and
    implements `_main_rate(epoch)`: its rate `epoch` epochs after the warm-up ended.

    Args:
        base_rate: the rate the main schedule starts from, >= 0.
        total_epochs: epochs of the whole run, warm-up included (None: open-ended); the
            warm-up must leave at least one epoch of it.
        warmup_epochs: number of warm-up epochs W, >= 0 (default 0).
    """

    base_rate: float = hyperparameter()
    total_epochs: int = field(default=None, kw_only=True)
    warmup_epochs: int = field(default=0, kw_only=True, metadata=count(0).metadata)

    def __post_init__(self):
        if self.total_epochs is not None and self.warmup_epochs >= self.total_epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs} leaves no epoch of the "
                             f"{self.total_epochs}-epoch run for the schedule; use "
                             "warmup_epochs < the number of epochs")

    def rate(self, epoch):
        """The learning rate of `epoch` (0-based), a float.

        Raises:
            ValueError: `epoch` is not a whole number >= 0.
        """
        epoch = check_count("epoch", epoch, 0)
        if epoch < self.warmup_epochs:
            return self.base_rate * (epoch + 1) / (self.warmup_epochs + 1)
        return float(self._main_rate(epoch - self.warmup_epochs))

    def _main_rate(self, epoch):
        raise NotImplementedError(f"{type(self).__name__} does not implement _main_rate")


@dataclass(eq=False, repr=False)
class ConstantLR(Schedule):
    """The same rate every epoch after warm-up.

        rate(e') = base_rate

    Args:
        base_rate: >= 0.
        warmup_epochs: >= 0 (default 0).

    Example:
        >>> ConstantLR(0.1, warmup_epochs=1).rate(0), ConstantLR(0.1).rate(7)
        (0.05, 0.1)
    """

    def _main_rate(self, epoch):
        return self.base_rate


@dataclass(eq=False, repr=False)
class StepLR(Schedule):
    """The rate multiplied by `gamma` every `step_size` epochs.

        rate(e') = base_rate * gamma ^ floor(e' / step_size)

    Args:
        base_rate: >= 0.
        step_size: epochs between two decays, >= 1.
        gamma: the factor of each decay, > 0 (default 0.1).
        warmup_epochs: >= 0 (default 0).

    Example:
        >>> StepLR(0.1, step_size=10).rate(25)        # 0.1 * 0.1^2
        0.0010000000000000002
    """

    step_size: int = count(low=1)
    gamma: float = hyperparameter(0.1, low=0.0, low_inclusive=False)

    def _main_rate(self, epoch):
        return self.base_rate * self.gamma ** (epoch // self.step_size)


@dataclass(eq=False, repr=False)
class CosineLR(Schedule):
    """Cosine annealing from base_rate down to min_rate over the epochs after warm-up.

        N = total_epochs - warmup_epochs
        rate(e') = min_rate + (base_rate - min_rate) * (1 + cos(pi * e' / N)) / 2   for e' < N
        rate(e') = min_rate                                                            for e' >= N

    As torch.optim.lr_scheduler.CosineAnnealingLR: the last epoch, e' = N - 1, is one step
    short of min_rate, so no epoch of the run trains at min_rate = 0.

    Args:
        base_rate: >= 0.
        total_epochs: epochs of the whole run, warm-up included; > warmup_epochs.
        min_rate: the rate the cosine ends at, in [0, base_rate] (default 0.0).
        warmup_epochs: >= 0 (default 0).

    Reference:
        Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
        ICLR 2017, equation 5 (one cycle, no restarts).

    Example:
        >>> CosineLR(0.1, total_epochs=10).rate(5)   # half-way: (0.1 + 0) / 2
        0.05
    """

    total_epochs: int = count(low=1)
    min_rate: float = hyperparameter(0.0)

    def __post_init__(self):
        super().__post_init__()
        if self.min_rate > self.base_rate:
            raise ValueError(f"invalid min_rate: {self.min_rate!r}; it must be >= 0 and <= "
                             f"{self.base_rate:g}, the base rate")

    def _main_rate(self, epoch):
        span = self.total_epochs - self.warmup_epochs
        if epoch >= span:
            return self.min_rate
        cosine = (1.0 + math.cos(math.pi * epoch / span)) / 2.0
        return self.min_rate + (self.base_rate - self.min_rate) * cosine


SCHEDULES = {"constant": ConstantLR, "step": StepLR, "cosine": CosineLR}

# Arguments that make_schedule fills in itself rather than taking as keywords.
_FILLED_IN = ("base_rate", "total_epochs")


def schedule_hyperparameters(name):
    """{keyword: default} that make_schedule accepts for the schedule `name`.

    A keyword without a default (it must be given) maps to REQUIRED:

        >>> schedule_hyperparameters('step') == {'step_size': REQUIRED, 'gamma': 0.1,
        ...                                      'warmup_epochs': 0}
        True

    Raises:
        ValueError: `name` is not a key of SCHEDULES.
    """
    return declared_hyperparameters(lookup(SCHEDULES, name, "schedule"), skip=_FILLED_IN)


def make_schedule(name, base_rate, max_epoch, **kwargs):
    """Build the schedule `name` of SCHEDULES for a run of `max_epoch` epochs.

    Args:
        name: 'constant', 'step' or 'cosine'.
        base_rate: the rate after warm-up, >= 0 (the cfg's learning_rate).
        max_epoch: number of epochs of the run, >= 1; the cosine spans it.
        **kwargs: keywords of that schedule (see `schedule_hyperparameters(name)`).

    Raises:
        ValueError: an unknown name or keyword (suggesting the closest valid one), a missing
            required keyword, an invalid value, or a warm-up as long as the run.

    Example:
        >>> make_schedule('step', 0.1, max_epoch=30, step_size=10, warmup_epochs=2)
        StepLR(base_rate=0.1, step_size=10, gamma=0.1, warmup_epochs=2)
    """
    accepted = schedule_hyperparameters(name)
    reject_unknown_keywords(kwargs, accepted, context=f" for schedule {name!r}")
    missing = [key for key, default in accepted.items()
               if default is REQUIRED and key not in kwargs]
    if missing:
        raise ValueError(f"schedule {name!r} needs {', '.join(missing)}; pass it as a keyword")
    max_epoch = check_count("max_epoch", max_epoch, 1)
    return SCHEDULES[name](base_rate, total_epochs=max_epoch, **kwargs)
