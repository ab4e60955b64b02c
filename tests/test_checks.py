"""The shared checks: ranges, name suggestions, signatures."""
import pytest

from mnistlab.checks import check_range, did_you_mean, keyword_defaults, lookup


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


def test_lookup_and_keyword_defaults():
    class Rule:
        def __init__(self, model, learning_rate, beta=0.9):
            pass
    assert lookup({"rule": Rule}, "rule", "optimizer") is Rule
    with pytest.raises(ValueError, match="unknown optimizer 'rul'; did you mean 'rule'"):
        lookup({"rule": Rule}, "rul", "optimizer")
    assert keyword_defaults(Rule, skip=("model", "learning_rate")) == {"beta": 0.9}
