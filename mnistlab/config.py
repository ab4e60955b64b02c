"""The cfg dict: every key the Solver understands, its default, and what values it accepts.

`OPTIONS` is the single source of truth: `validate_cfg` checks a user's cfg against it, the
command line builds its flags from it, and the README's table lists it.

Keys of an update rule's or a schedule's hyper-parameters default to None, meaning "that
rule's own default"; giving one the chosen rule does not take (say `beta1` with 'sgd') is an
error, so a cfg never silently ignores a value.
"""
import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .checks import check_bool, did_you_mean
from .dataloader import PREPROCESSING, VAL_SPLITS, WORKERS
from .model import LOSSES, MODELS
from .optimizer import OPTIMIZERS, make_optimizer, optimizer_hyperparameters
from .schedule import SCHEDULES, make_schedule, schedule_hyperparameters


class ConfigError(ValueError):
    """A cfg key is unknown or its value impossible."""


# Limits: every bound on a cfg, and on the JSON a cfg is read from, in one place.
MAX_NUM_CLASSES = 256      # IDX labels are unsigned bytes: at most 256 classes can occur
MAX_EPOCH = 1_000_000      # also bounds the history a checkpoint may hold
MAX_PREFETCH = 64          # chunks prepared ahead (about 6 MiB each): memory grows with it
MAX_BLAS_THREADS = 1024
MAX_TEXT_LENGTH = 4096     # a path (data_root, checkpoint_dir)
MAX_CONFIG_BYTES = 1 << 16  # a --config file or a checkpoint's cfg (a whole cfg is ~2 KB)
MAX_CONFIG_DEPTH = 4       # nesting of a cfg's JSON; its values are scalars, depth 1 suffices


@dataclass(frozen=True)
class Option:
    """One cfg key: its default, a one-line description, and a check of its values.

    `check(value)` returns None when the value is fine, or a phrase saying what it must be.
    """
    default: Any
    help: str
    check: Optional[Callable[[Any], Optional[str]]] = None


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def integer(minimum, maximum=None):
    """Check: a whole number >= minimum (and <= maximum, if given)."""
    if maximum is None:
        return lambda v: None if _is_int(v) and v >= minimum else f"a whole number >= {minimum}"
    return lambda v: (None if _is_int(v) and minimum <= v <= maximum
                      else f"a whole number >= {minimum} and <= {maximum}")


def real(low, high=None, low_open=False, high_open=True):
    """Check: a real number in the interval between low and high (open or closed ends)."""
    left, right = ("(" if low_open else "["), (")" if high_open else "]")
    interval = f"{left}{low}, {'inf' if high is None else high}{right}"

    def check(v):
        if not _is_real(v) or v != v:
            return f"a number in {interval}"
        ok_low = v > low if low_open else v >= low
        ok_high = high is None or (v < high if high_open else v <= high)
        return None if ok_low and ok_high else f"a number in {interval}"
    return check


def one_of(*choices):
    """Check: one of the given values (suggesting the closest for a misspelt name)."""
    def check(v):
        if v in choices:
            return None
        hint = did_you_mean(v, choices) if isinstance(v, str) else ""
        return f"one of {', '.join(map(repr, choices))}{hint}"
    return check


def optional(check):
    """Check: None, or a value `check` accepts."""
    return lambda v: None if v is None else check(v)


def text(v):
    """Check: a string that can name a file (no NUL character, at most MAX_TEXT_LENGTH)."""
    if not isinstance(v, str) or "\0" in v or len(v) > MAX_TEXT_LENGTH:
        return f"a string of at most {MAX_TEXT_LENGTH} characters, without NUL characters"
    return None


def boolean(v):
    return None if isinstance(v, bool) else "True or False"


def model_choice(v):
    """Check: a name of model.MODELS, or a model object with the Solver's model interface."""
    if isinstance(v, str):
        problem = one_of(*MODELS)(v)
        return problem and f"a model object or {problem}"
    needed = ("forward", "gradient_computing", "named_parameters", "train")
    missing = [name for name in needed if not callable(getattr(v, name, None))]
    return f"a model with {', '.join(missing)} methods (see model.Sequential)" if missing else None


OPTIONS = {
    # The assignment's keys.
    "data_root": Option(None, "folder holding the IDX files, raw or .gz (None: the first of "
                        "./data, the checkout's data/ and the per-user cache that holds them)",
                        optional(text)),
    "max_epoch": Option(10, "number of passes over the training set",
                        integer(1, MAX_EPOCH)),
    "batch_size": Option(100, "samples per mini-batch", integer(1)),
    "learning_rate": Option(0.01, "step size of the optimizer", real(0, low_open=True, high=None)),
    "momentum": Option(None, "momentum of 'sgd' or 'rmsprop' (None: the rule's default, 0)"),
    "display_freq": Option(50, "print the training loss every this many batches", integer(1)),
    # Beyond the assignment.
    "seed": Option(None, "seed of the run's random generator (None: a fresh one each run)",
                   optional(integer(0))),
    "dtype": Option("float64", "float precision of data and parameters",
                    one_of("float64", "float32")),
    "num_classes": Option(None, "number of classes (None: read from the training labels, "
                          "largest label + 1)", optional(integer(2, MAX_NUM_CLASSES))),
    "val_size": Option(5000, "samples at the end of the training file kept for validation",
                       integer(1)),
    "preprocessing": Option("center", "'center': pixels/255 minus the image's mean "
                            "(the assignment's); 'scale': pixels/255; 'normalize': "
                            "(pixels/255 - 0.5) / 0.5, in [-1, 1]", one_of(*PREPROCESSING)),
    "val_split": Option("last", "'last': the training file's last val_size samples validate; "
                        "'random': val_size samples drawn with the seed", one_of(*VAL_SPLITS)),
    "drop_last": Option(False, "leave out the last training batch when it is smaller than "
                        "batch_size", boolean),
    "model": Option("softmax", "'softmax' (the assignment's), " + ", ".join(
                    repr(name) for name in MODELS if name != "softmax") + ", or a model object",
                    model_choice),
    "init": Option("he", "initial weights of the Linear and Conv2d layers: 'he' (N(0, 2/fan_in), "
                   "biases 0) or 'uniform' (PyTorch's default, U(+-1/sqrt(fan_in)))",
                   one_of("he", "uniform")),
    "loss": Option("cross_entropy", "the loss: 'cross_entropy' on logits, or a margin loss on "
                   "the last hidden layer's features: " + ", ".join(
                       repr(name) for name in LOSSES if name != "cross_entropy"),
                   one_of(*LOSSES)),
    "margin": Option(None, "margin m of a margin loss (None: 0.2)", optional(real(0))),
    "scale": Option(None, "scale s of a margin loss (None: 30)",
                    optional(real(0, low_open=True))),
    # The update rule and its hyper-parameters (None: the rule's own default); the rule
    # checks their values.
    "optimizer": Option("sgd", "update rule: " + ", ".join(OPTIMIZERS), one_of(*OPTIMIZERS)),
    "weight_decay": Option(None, "L2 weight decay (decoupled for 'adamw')"),
    "nesterov": Option(None, "Nesterov momentum for 'sgd'"),
    "beta1": Option(None, "first-moment decay of 'adam', 'adamw', 'adamax'"),
    "beta2": Option(None, "second-moment decay of 'adam', 'adamw', 'adamax'"),
    "alpha": Option(None, "square-average decay of 'rmsprop'; step-decay power of 'asgd'"),
    "eps": Option(None, "denominator term of the adaptive rules"),
    "lambd": Option(None, "decay term of 'asgd'"),
    "t0": Option(None, "step from which 'asgd' averages"),
    "eta_minus": Option(None, "step-size factor of 'rprop' after a sign change"),
    "eta_plus": Option(None, "step-size factor of 'rprop' while the sign holds"),
    "step_size_min": Option(None, "smallest step size of 'rprop'"),
    "step_size_max": Option(None, "largest step size of 'rprop'"),
    # The learning-rate schedule, applied per epoch.
    "lr_schedule": Option("constant", "learning-rate schedule: " + ", ".join(SCHEDULES),
                          one_of(*SCHEDULES)),
    "lr_step_size": Option(None, "epochs between decays of the 'step' schedule"),
    "lr_gamma": Option(None, "decay factor of the 'step' schedule"),
    "lr_min": Option(None, "final rate of the 'cosine' schedule"),
    "warmup_epochs": Option(0, "epochs of linear learning-rate warm-up"),
    # Training control.
    "patience": Option(None, "stop after this many epochs without improvement of `monitor`, "
                       "then restore the best epoch's weights (None: never stop early)",
                       optional(integer(1))),
    "monitor": Option("val_acc", "validation metric for early stopping and the best checkpoint",
                      one_of("val_acc", "val_loss")),
    "checkpoint_dir": Option(None, "folder for last.npz (every epoch) and best.npz checkpoints",
                             optional(text)),
    "blas_threads": Option(None, "threads of the BLAS matrix products (None: one for 'softmax', "
                           "whose tiny products lose more to thread hand-offs than they gain; "
                           "for bigger models as many as fit beside the prefetching worker on "
                           "the cores this process may use)",
                           optional(integer(1, MAX_BLAS_THREADS))),
    "prefetch": Option(2, "chunks of batches (about 6 MiB of images each) that a background "
                       "worker prepares ahead of training on them (0: none); the results are "
                       "the same either way",
                       integer(0, MAX_PREFETCH)),
    "prefetch_worker": Option("process", "what prepares the training batches ahead: 'process', "
                              "a worker process sharing memory with this one (Linux; elsewhere "
                              "it runs as 'thread'), or 'thread', a thread of this process, "
                              "slower as it shares Python's lock with training; the validation "
                              "and test batches are prepared by a thread",
                              one_of(*WORKERS)),
    "progress": Option(False, "show a progress bar (the assignment's log lines are unchanged)",
                       boolean),
}

# cfg key -> keyword of the update rule, and of the schedule.
OPTIMIZER_KEYS = {key: key for key in
                  ("momentum", "weight_decay", "nesterov", "beta1", "beta2", "alpha", "eps",
                   "lambd", "t0", "eta_minus", "eta_plus", "step_size_min", "step_size_max")}
SCHEDULE_KEYS = {"lr_step_size": "step_size", "lr_gamma": "gamma", "lr_min": "min_rate",
                 "warmup_epochs": "warmup_epochs"}


def takes_boolean(key):
    """True when cfg key `key` holds True or False (the command line then reads yes/no/1/0):
    by its own check, or, for an update rule's key, by the rules' declarations."""
    check = OPTIONS[key].check
    if check is not None:
        return check(True) is None
    keyword = OPTIMIZER_KEYS.get(key)
    return any(field.name == keyword and field.metadata.get("check") is check_bool
               for rule in OPTIMIZERS.values() for field in dataclasses.fields(rule))


def defaults():
    """A fresh dict of every key's default value."""
    return {key: option.default for key, option in OPTIONS.items()}


class Cfg(dict):
    """A cfg that `validate_cfg` has checked and completed: validating it again returns it as
    it is, so a Solver validates its cfg once, however many builders read it."""


class _NoParameters:
    """A stand-in model with no parameters, to build an update rule just to check its values."""

    def named_parameters(self):
        return iter(())


def validate_cfg(cfg):
    """Check a user's cfg and complete it with defaults.

    Each key's value is checked against OPTIONS; then the update rule and the schedule are
    built once on a stand-in, so that settings which do not fit together (nesterov without
    momentum, a warm-up as long as the run) fail here, before any data is read, with the
    message of the one place that checks them.

    Args:
        cfg: dict of cfg keys to values (a Cfg is returned as it is).

    Returns:
        A Cfg holding every key of OPTIONS.

    Raises:
        ConfigError: for an unknown key (suggesting the key probably meant) or an impossible
            value (naming the key, the value and what it must be).
    """
    if isinstance(cfg, Cfg):
        return cfg
    if not isinstance(cfg, dict):
        raise ConfigError(f"cfg must be a dict, got {type(cfg).__name__}")
    for key, value in cfg.items():
        if key not in OPTIONS:
            hint = did_you_mean(key, OPTIONS)
            raise ConfigError(f"unknown cfg key {key!r}{hint} Valid keys: {', '.join(OPTIONS)}")
        problem = OPTIONS[key].check(value) if OPTIONS[key].check else None
        if problem:
            raise ConfigError(f"cfg[{key!r}] = {value!r} is impossible: it must be {problem}")
    full = Cfg({**defaults(), **cfg})
    optimizer_from_cfg(full, _NoParameters())
    schedule_from_cfg(full)
    loss_kwargs(full)
    return full


def optimizer_from_cfg(cfg, model):
    """The update rule of a validated cfg for `model`; a value it refuses is a ConfigError."""
    try:
        return make_optimizer(cfg["optimizer"], model, cfg["learning_rate"],
                              **optimizer_kwargs(cfg))
    except ValueError as exc:
        raise ConfigError(f"cfg: {exc}") from None


def schedule_from_cfg(cfg):
    """The learning-rate schedule of a validated cfg; a value it refuses is a ConfigError
    naming the cfg key."""
    try:
        return make_schedule(cfg["lr_schedule"], cfg["learning_rate"], cfg["max_epoch"],
                             **schedule_kwargs(cfg))
    except ValueError as exc:
        message = str(exc)
        for key, keyword in SCHEDULE_KEYS.items():
            message = message.replace(f"invalid {keyword}:", f"invalid {key}:")
        raise ConfigError(f"cfg: {message}") from None


def loss_kwargs(cfg):
    """{margin, scale} of a margin loss (their defaults where cfg leaves them None), or {} for
    cross-entropy, which takes neither."""
    if cfg["loss"] == "cross_entropy":
        for key in ("margin", "scale"):
            if cfg[key] is not None:
                raise ConfigError(f"cfg[{key!r}] = {cfg[key]!r} does not apply to the "
                                  "'cross_entropy' loss; choose a margin loss or remove it")
        return {}
    if not isinstance(cfg["model"], str):
        raise ConfigError(f"cfg['loss'] = {cfg['loss']!r} builds its model by name: give "
                          "cfg['model'] as a name, or put the margin head in your model object")
    return {"margin": 0.2 if cfg["margin"] is None else cfg["margin"],
            "scale": 30.0 if cfg["scale"] is None else cfg["scale"]}


def _keywords_for(cfg, keys, accepted, what):
    """{keyword: value} of the cfg keys in `keys` that are set (not None).

    Raises:
        ConfigError: a key is set that `what` does not take.
    """
    chosen = {}
    for key, keyword in keys.items():
        if cfg.get(key) is None:
            continue
        if keyword not in accepted:
            takes = [k for k, kw in keys.items() if kw in accepted]
            raise ConfigError(f"cfg[{key!r}] = {cfg[key]!r} does not apply to {what}, which takes "
                              f"{', '.join(takes) or 'none of these keys'}; remove it or choose "
                              "another rule")
        chosen[keyword] = cfg[key]
    return chosen


def optimizer_kwargs(cfg):
    """The hyper-parameters cfg gives its update rule: {keyword: value}."""
    name = cfg["optimizer"]
    return _keywords_for(cfg, OPTIMIZER_KEYS, optimizer_hyperparameters(name),
                         f"optimizer {name!r}")


def schedule_kwargs(cfg):
    """The keywords cfg gives its learning-rate schedule: {keyword: value}."""
    name = cfg["lr_schedule"]
    accepted = schedule_hyperparameters(name)
    chosen = _keywords_for(cfg, SCHEDULE_KEYS, accepted, f"lr_schedule {name!r}")
    if "step_size" in accepted and "step_size" not in chosen:
        raise ConfigError(f"lr_schedule {name!r} needs cfg['lr_step_size'], the number of epochs "
                          "between decays")
    return chosen
