"""The shared checks: ranges, name suggestions, signatures."""
import dataclasses

import numpy as np
import pytest

from mnistlab.checks import (HyperparameterChecks, array_can_have_shape, check_choice,
                             check_range, count, declared_hyperparameters, did_you_mean,
                             hyperparameter, lookup, switch)


def test_did_you_mean_suggests_only_close_names():
    assert did_you_mean("learning_rat", ["learning_rate", "momentum"]) == "; did you mean 'learning_rate'?"
    assert did_you_mean("colour", ["learning_rate", "momentum"]) == ""


@pytest.mark.parametrize("value", [-0.1, 1.0, float("nan"), float("inf"), True, "0.5"])
def test_check_range_refuses_values_outside_the_interval(value):
    with pytest.raises(ValueError, match=r"invalid momentum: .*it must be"):
        check_range("momentum", value, 0.0, 1.0)


def test_check_range_returns_a_float_inside():
    assert check_range("momentum", 0, 0.0, 1.0) == 0.0
    assert check_range("eps", 1.0, 0.0, 1.0, low_inclusive=False, high_inclusive=True) == 1.0


def test_lookup_suggests_the_closest_name():
    registry = {"rule": object}
    assert lookup(registry, "rule", "optimizer") is object
    with pytest.raises(ValueError, match="unknown optimizer 'rul'; did you mean 'rule'"):
        lookup(registry, "rul", "optimizer")


def test_check_choice_lists_the_choices_and_suggests_one():
    assert check_choice("mode", "val", ("train", "val", "test")) == "val"
    with pytest.raises(ValueError, match="invalid mode: 'trian'; did you mean 'train'"):
        check_choice("mode", "trian", ("train", "val", "test"))
    with pytest.raises(ValueError, match="invalid mode: 3; it must be one of 'train'"):
        check_choice("mode", 3, ("train", "val", "test"))


@dataclasses.dataclass(eq=False, repr=False)
class Rule(HyperparameterChecks):
    rate: float = hyperparameter()
    beta: float = hyperparameter(0.9, low=0.0, high=1.0)
    steps: int = count(3, low=1)
    flag: bool = switch(False)
    other: str = "not a hyper-parameter"


def test_declared_hyperparameters_give_defaults_in_order():
    assert declared_hyperparameters(Rule) == {"rate": dataclasses.MISSING, "beta": 0.9,
                                              "steps": 3, "flag": False}
    assert declared_hyperparameters(Rule, skip=("rate",)) == {"beta": 0.9, "steps": 3,
                                                             "flag": False}
    assert repr(Rule(0.5)) == "Rule(rate=0.5, beta=0.9, steps=3, flag=False)"


@pytest.mark.parametrize("kwargs, message", [
    ({"rate": -1.0}, "invalid rate: -1.0; it must be >= 0"),
    ({"rate": 0.1, "beta": 1.0}, "invalid beta: 1.0; it must be >= 0 and < 1"),
    ({"rate": 0.1, "steps": 0}, "invalid steps: 0; it must be a whole number >= 1"),
    ({"rate": 0.1, "flag": 1}, "invalid flag: 1; it must be True or False"),
])
def test_declared_values_are_checked_when_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Rule(**kwargs)


def test_declared_values_are_checked_whenever_set():
    rule = Rule(0.1)
    rule.rate = 0.2
    with pytest.raises(ValueError, match="invalid rate: -0.5"):
        rule.rate = -0.5
    assert rule.rate == 0.2
    rule.other = 42   # not declared: not checked


SHAPES = [(0, 2**30, 2**30), (0, 2**30, 2**29), (0, 2**31, 2**29), (2**40,), (0, 2**60),
          (0, 2**59), (3, 0, 2**60), (0, 2**40, 2**20), (2**62,), (), (0,), (5, 7)]


@pytest.mark.parametrize("dtype", ["<f8", "|u1", "<U10"])
@pytest.mark.parametrize("shape", SHAPES)
def test_array_can_have_shape_agrees_with_numpy(shape, dtype):
    # np.broadcast_to makes a view of the shape without memory: it fails exactly where NumPy
    # cannot describe such an array, empty or not
    try:
        np.broadcast_to(np.zeros((), dtype), shape)
        numpy_can = True
    except ValueError:
        numpy_can = False
    assert array_can_have_shape(shape, np.dtype(dtype).itemsize) == numpy_can


def test_array_can_have_shape_refuses_negative_or_non_integer_extents():
    assert not array_can_have_shape((3, -1))
    assert not array_can_have_shape((3, 2.0))
