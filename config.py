"""The cfg dict: every key the Solver understands, its default, and what values it accepts.

`OPTIONS` is the single source of truth: `validate_cfg` checks a user's cfg against it, the
command line builds its flags from it, and the README's table lists it.
"""
import difflib
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Optional


class ConfigError(ValueError):
    """A cfg key is unknown or its value impossible."""


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


def integer(minimum):
    """Check: a whole number >= minimum."""
    return lambda v: None if _is_int(v) and v >= minimum else f"a whole number >= {minimum}"


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
    """Check: one of the given values."""
    return lambda v: None if v in choices else f"one of {', '.join(map(repr, choices))}"


def optional(check):
    """Check: None, or a value `check` accepts."""
    return lambda v: None if v is None else check(v)


def text(v):
    return None if isinstance(v, str) else "a string"


OPTIONS = {
    # The assignment's keys.
    "data_root": Option("data", "folder holding the IDX files (raw or .gz)", text),
    "max_epoch": Option(10, "number of passes over the training set", integer(1)),
    "batch_size": Option(100, "samples per mini-batch", integer(1)),
    "learning_rate": Option(0.01, "step size of the optimizer", real(0, low_open=True, high=None)),
    "momentum": Option(0.9, "SGD momentum, 0 for plain SGD", real(0, 1)),
    "display_freq": Option(50, "print the training loss every this many batches", integer(1)),
    # Beyond the assignment.
    "seed": Option(None, "seed of the run's random generator (None: a fresh one each run)",
                   optional(integer(0))),
    "dtype": Option("float64", "float precision of data and parameters",
                    one_of("float64", "float32")),
    "num_classes": Option(10, "number of classes in the labels", integer(2)),
    "val_size": Option(5000, "samples at the end of the training file kept for validation",
                       integer(1)),
    "preprocessing": Option("center", "'center': pixels/255 minus the image's mean "
                            "(the assignment's); 'scale': pixels/255", one_of("center", "scale")),
}


def defaults():
    """A fresh dict of every key's default value."""
    return {key: option.default for key, option in OPTIONS.items()}


def validate_cfg(cfg):
    """Check a user's cfg and complete it with defaults.

    Args:
        cfg: dict of cfg keys to values.

    Returns:
        A new dict holding every key of OPTIONS.

    Raises:
        ConfigError: for an unknown key (suggesting the key probably meant) or an impossible
            value (naming the key, the value and what it must be).
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"cfg must be a dict, got {type(cfg).__name__}")
    for key, value in cfg.items():
        if key not in OPTIONS:
            close = difflib.get_close_matches(str(key), OPTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown cfg key {key!r}{hint} Valid keys: {', '.join(OPTIONS)}")
        problem = OPTIONS[key].check(value) if OPTIONS[key].check else None
        if problem:
            raise ConfigError(f"cfg[{key!r}] = {value!r} is impossible: it must be {problem}")
    return {**defaults(), **cfg}
