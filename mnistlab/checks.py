"""Small checks shared across the project: value ranges, names with a suggestion for typos,
keyword defaults read from signatures, and how objects print.
"""
import difflib
import inspect
import math
import numbers

import numpy as np


def did_you_mean(name, valid):
    """"; did you mean 'x'?" for the valid name closest to `name`, or "" if none is close."""
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_range(name, value, low, high=None, *, low_inclusive=True, high_inclusive=False):
    """Return `value` as a float if it is a finite number in the interval, else raise.

    The interval is [low, high) by default; the keywords close or open either end, and
    `high=None` means no upper bound.

    Raises:
        ValueError: naming `name` and `value`, e.g.
            "invalid momentum: 1.5; it must be >= 0 and < 1".
    """
    bounds = (">= " if low_inclusive else "> ") + f"{low:g}"
    if high is not None:
        bounds += (" and <= " if high_inclusive else " and < ") + f"{high:g}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"invalid {name}: {value!r}; it must be a number {bounds}")
    above = value >= low if low_inclusive else value > low
    below = high is None or (value <= high if high_inclusive else value < high)
    if not (above and below and math.isfinite(value)):
        raise ValueError(f"invalid {name}: {value!r}; it must be {bounds}")
    return float(value)


def check_count(name, value, low):
    """Return `value` as an int if it is a whole number >= low, else raise a ValueError
    naming it, e.g. "invalid batch_size: 0; it must be a whole number >= 1"."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"invalid {name}: {value!r}; it must be a whole number >= {low}")
    return int(value)


def unknown_name_error(kind, name, valid, context=""):
    """A ValueError for `name` not among `valid`, listing them and suggesting the closest.

    Example message: "unknown optimizer 'adma'; did you mean 'adam'? Valid: adagrad, adam, ..."
    """
    valid = sorted(valid)
    hint = did_you_mean(name, valid) or "."
    return ValueError(f"unknown {kind} {name!r}{context}{hint} Valid: {', '.join(valid)}")


def lookup(registry, name, kind):
    """`registry[name]`, or a ValueError listing the valid names and suggesting the closest."""
    if not isinstance(name, str) or name not in registry:
        raise unknown_name_error(kind, name, registry)
    return registry[name]


def reject_unknown_keywords(given, accepted, context):
    """Raise a ValueError for the first key of `given` that is not in `accepted`."""
    for key in given:
        if key not in accepted:
            raise unknown_name_error("hyper-parameter", key, accepted, context)


def keyword_defaults(cls, skip=()):
    """{argument: default} of `cls.__init__`, leaving out `self` and the names in `skip`.

    An argument without a default maps to `inspect.Parameter.empty`.
    """
    parameters = inspect.signature(cls.__init__).parameters
    return {name: p.default for name, p in parameters.items() if name not in ("self", *skip)}


def format_call(obj, names):
    """'ClassName(a=1, b=2)' from the attributes `names` of `obj`: how objects print here."""
    arguments = ", ".join(f"{name}={getattr(obj, name)!r}" for name in names)
    return f"{type(obj).__name__}({arguments})"
