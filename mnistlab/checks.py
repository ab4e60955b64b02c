"""Small checks shared across the project: value ranges, names with a suggestion for typos,
hyper-parameters declared with their allowed values, and how objects print.
"""
import dataclasses
import difflib
import functools
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


def check_bool(name, value):
    """Return `value` as a bool if it is True or False, else raise a ValueError naming it."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"invalid {name}: {value!r}; it must be True or False")
    return bool(value)


def check_choice(name, value, choices):
    """Return `value` if it is one of `choices`, else raise a ValueError naming it, listing
    the choices and suggesting the closest, e.g. "invalid mode: 'trian'; did you mean 'train'?"."""
    if isinstance(value, str) and value in choices:
        return value
    hint = did_you_mean(value, choices) if isinstance(value, str) else ""
    raise ValueError(f"invalid {name}: {value!r}{hint or ';'} it must be one of "
                     f"{', '.join(map(repr, choices))}")


def unknown_name_error(kind, name, valid, context=""):
    """A ValueError for `name` not among `valid`, listing them and suggesting the closest.

    Example message: "unknown optimizer 'adma'; did you mean 'adam'? Valid: adagrad, adam, ..."
    """
    valid = sorted(valid)
    hint = did_you_mean(name, valid) or "."
    return ValueError(f"unknown {kind} {name!r}{context}{hint} Valid: {', '.join(valid)}")


def array_can_have_shape(shape, itemsize=1):
    """Whether NumPy can make an array of `shape` with items of `itemsize` bytes: whole
    extents >= 0, and, as NumPy requires even of an empty array (for its strides), the product
    of the non-zero extents times the item size within its largest index (np.intp). For the
    shapes that file headers declare."""
    if any(not isinstance(d, int) or d < 0 for d in shape):
        return False
    return math.prod(max(d, 1) for d in shape) * max(itemsize, 1) <= np.iinfo(np.intp).max


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


# ---- hyper-parameters declared once, with their allowed values --------------------------------

def hyperparameter(default=dataclasses.MISSING, low=0.0, high=None, *, low_inclusive=True,
                   high_inclusive=False):
    """A dataclass field for a real hyper-parameter: its default (none: it must be given) and
    its interval, [low, high) unless the keywords close or open an end; high=None: no bound.
    `HyperparameterChecks` checks its value whenever it is set."""
    check = functools.partial(check_range, low=low, high=high, low_inclusive=low_inclusive,
                              high_inclusive=high_inclusive)
    return dataclasses.field(default=default, metadata={"check": check})


def count(default=dataclasses.MISSING, low=0):
    """A dataclass field for a whole-number hyper-parameter >= low (see `hyperparameter`)."""
    return dataclasses.field(default=default,
                             metadata={"check": functools.partial(check_count, low=low)})


def switch(default=False):
    """A dataclass field for a True/False hyper-parameter (see `hyperparameter`)."""
    return dataclasses.field(default=default, metadata={"check": check_bool})


class HyperparameterChecks:
    """Base of a dataclass whose fields declare their allowed values (`hyperparameter`,
    `count`, `switch`): each such field is checked whenever it is set, in the constructor or
    later (a schedule sets an optimizer's learning_rate every epoch)."""

    def __setattr__(self, name, value):
        field = self.__dataclass_fields__.get(name)
        check = field.metadata.get("check") if field is not None else None
        super().__setattr__(name, value if check is None else check(name, value))

    not_listed = ()   # declared values that hyperparameters() leaves out

    def hyperparameters(self):
        """{name: value} of the declared hyper-parameters, in the constructor's order."""
        names = declared_hyperparameters(type(self), skip=self.not_listed)
        return {name: getattr(self, name) for name in names}

    def __repr__(self):
        return format_call(self, declared_hyperparameters(type(self)))


def declared_hyperparameters(cls, skip=()):
    """{name: default} of the fields of dataclass `cls` that declare their values; a field
    that must be given maps to dataclasses.MISSING."""
    fields = sorted(dataclasses.fields(cls), key=lambda field: field.kw_only is True)
    return {field.name: field.default for field in fields  # in the constructor's order
            if "check" in field.metadata and field.name not in skip}


def format_call(obj, names):
    """'ClassName(a=1, b=2)' from the attributes `names` of `obj`: how objects print here."""
    arguments = ", ".join(f"{name}={getattr(obj, name)!r}" for name in names)
    return f"{type(obj).__name__}({arguments})"
