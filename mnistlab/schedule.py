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
import inspect
import math

from .checks import (check_count, check_range, format_call, keyword_defaults, lookup,
                    reject_unknown_keywords)

# The "default" of a keyword that must be given, in schedule_hyperparameters.
REQUIRED = inspect.Parameter.empty


class Schedule:
    """Base class: the warm-up ramp and argument checks shared by every schedule.

    A schedule subclasses it and implements `_main_rate(epoch)`: its rate `epoch` epochs after
    the warm-up ended.

    Args:
        base_rate: the rate the main schedule starts from, >= 0.
        warmup_epochs: number of warm-up epochs W, >= 0 (default 0).
    """

    def __init__(self, base_rate, warmup_epochs=0):
        self.base_rate = check_range("base_rate", base_rate, 0.0)
        self.warmup_epochs = check_count("warmup_epochs", warmup_epochs, 0)

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

    def __repr__(self):
        return format_call(self, keyword_defaults(type(self)))


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

    def __init__(self, base_rate, step_size, gamma=0.1, warmup_epochs=0):
        super().__init__(base_rate, warmup_epochs)
        self.step_size = check_count("step_size", step_size, 1)
        self.gamma = check_range("gamma", gamma, 0.0, low_inclusive=False)

    def _main_rate(self, epoch):
        return self.base_rate * self.gamma ** (epoch // self.step_size)


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

    def __init__(self, base_rate, total_epochs, min_rate=0.0, warmup_epochs=0):
        super().__init__(base_rate, warmup_epochs)
        self.total_epochs = check_count("total_epochs", total_epochs, 1)
        if self.warmup_epochs >= self.total_epochs:
            raise ValueError(f"warmup_epochs={warmup_epochs} leaves no epoch of total_epochs="
                             f"{total_epochs} for the cosine; use warmup_epochs < total_epochs")
        self.min_rate = check_range("min_rate", min_rate, 0.0, self.base_rate,
                                    high_inclusive=True)

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
    return keyword_defaults(lookup(SCHEDULES, name, "schedule"), skip=_FILLED_IN)


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
    cls = SCHEDULES[name]
    if "total_epochs" in keyword_defaults(cls):
        kwargs["total_epochs"] = max_epoch
    schedule = cls(base_rate, **kwargs)
    if schedule.warmup_epochs >= max_epoch:
        raise ValueError(f"warmup_epochs={schedule.warmup_epochs} leaves no epoch of the "
                         f"{max_epoch}-epoch run for the {name!r} schedule; use "
                         "warmup_epochs < max_epoch")
    return schedule
