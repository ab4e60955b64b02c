"""The learning-rate schedules of schedule.py, as a specification.

Rates at chosen epochs for each schedule, with and without warm-up (expected values written
out by hand), that a schedule is a pure function of the epoch, building by name, and the
errors for impossible values.
"""
import math
import re

import pytest
from hypothesis import given, strategies as st

from mnistlab import schedule as S


def rates(schedule, epochs):
    return [schedule.rate(e) for e in range(epochs)]


# ---- rates at chosen epochs -------------------------------------------------------------------

def test_constant_rate():
    assert rates(S.ConstantLR(0.1), 4) == [0.1, 0.1, 0.1, 0.1]


def test_warmup_ramps_linearly_up_to_the_base_rate():
    # e < W: base * (e + 1) / (W + 1), then the main schedule from its start
    assert rates(S.ConstantLR(0.1, warmup_epochs=3), 6) == pytest.approx(
        [0.025, 0.05, 0.075, 0.1, 0.1, 0.1], rel=1e-12)


def test_step_rate_is_multiplied_by_gamma_every_step_size_epochs():
    assert rates(S.StepLR(0.1, step_size=2, gamma=0.5), 6) == pytest.approx(
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.025], rel=1e-12)


def test_step_decays_count_epochs_after_warmup():
    assert rates(S.StepLR(0.1, step_size=2, gamma=0.5, warmup_epochs=2), 7) == pytest.approx(
        [0.1 / 3, 0.2 / 3, 0.1, 0.1, 0.05, 0.05, 0.025], rel=1e-12)


def test_step_default_gamma_is_one_tenth():
    assert S.StepLR(1.0, step_size=3).rate(7) == pytest.approx(0.01, rel=1e-12)


COSINE_4 = [0.1,                                        # (1 + cos 0) / 2 = 1
            0.1 * (1 + math.sqrt(0.5)) / 2,             # cos(pi / 4) = sqrt(1/2)
            0.05,                                       # cos(pi / 2) = 0
            0.1 * (1 - math.sqrt(0.5)) / 2]             # cos(3 pi / 4) = -sqrt(1/2)


def test_cosine_anneals_from_base_towards_zero_over_total_epochs():
    assert rates(S.CosineLR(0.1, total_epochs=4), 4) == pytest.approx(COSINE_4, rel=1e-12)


def test_cosine_stays_at_min_rate_after_total_epochs():
    schedule = S.CosineLR(0.1, total_epochs=4, min_rate=0.02)
    assert schedule.rate(4) == schedule.rate(100) == 0.02


def test_cosine_anneals_towards_min_rate():
    expected = [0.02 + 0.08 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert rates(S.CosineLR(0.1, total_epochs=4, min_rate=0.02), 4) == pytest.approx(
        expected, rel=1e-12)
    assert expected[2] == pytest.approx(0.06)           # half-way between 0.1 and 0.02


def test_cosine_spans_the_epochs_left_after_warmup():
    # 6 epochs: 2 of warm-up, then the 4-epoch cosine of the tests above
    assert rates(S.CosineLR(0.1, total_epochs=6, warmup_epochs=2), 6) == pytest.approx(
        [0.1 / 3, 0.2 / 3] + COSINE_4, rel=1e-12)


def test_a_schedule_is_a_pure_function_of_the_epoch():
    schedule = S.CosineLR(0.1, total_epochs=10, warmup_epochs=3)
    forwards = rates(schedule, 12)
    backwards = [schedule.rate(e) for e in reversed(range(12))]
    assert backwards[::-1] == forwards
    assert schedule.rate(7) == forwards[7]              # resuming at epoch 7


def test_rates_are_python_floats():
    assert all(type(r) is float for r in rates(S.StepLR(1, step_size=1), 3))


@given(base=st.floats(1e-4, 10.0), min_fraction=st.floats(0.0, 1.0),
       warmup=st.integers(0, 5), decay_epochs=st.integers(1, 30))
def test_cosine_rises_during_warmup_then_never_rises_and_stays_in_range(
        base, min_fraction, warmup, decay_epochs):
    schedule = S.CosineLR(base, total_epochs=warmup + decay_epochs,
                          min_rate=base * min_fraction, warmup_epochs=warmup)
    ramp, rest = rates(schedule, warmup), [schedule.rate(e) for e in
                                           range(warmup, warmup + decay_epochs + 2)]
    assert all(a < b for a, b in zip(ramp, ramp[1:] + [rest[0]]))
    assert all(a >= b for a, b in zip(rest, rest[1:]))
    assert rest[0] == pytest.approx(base, rel=1e-12) and rest[-1] == schedule.min_rate
    slack = 1e-12 * base                                # rounding of min + (base - min) * c
    assert all(schedule.min_rate - slack <= r <= base + slack for r in rest)


# ---- building by name -------------------------------------------------------------------------

def test_make_schedule_builds_each_schedule():
    assert isinstance(S.make_schedule("constant", 0.1, 10), S.ConstantLR)
    step = S.make_schedule("step", 0.1, 10, step_size=3, gamma=0.5, warmup_epochs=1)
    assert (type(step), step.step_size, step.gamma, step.warmup_epochs) == (S.StepLR, 3, 0.5, 1)


def test_make_schedule_spans_the_cosine_over_max_epoch():
    cosine = S.make_schedule("cosine", 0.1, 4)
    assert cosine.total_epochs == 4
    assert rates(cosine, 4) == pytest.approx(COSINE_4, rel=1e-12)


def test_schedule_hyperparameters_come_from_the_signature():
    assert S.schedule_hyperparameters("constant") == {"warmup_epochs": 0}
    assert S.schedule_hyperparameters("step") == {
        "step_size": S.REQUIRED, "gamma": 0.1, "warmup_epochs": 0}
    assert S.schedule_hyperparameters("cosine") == {"min_rate": 0.0, "warmup_epochs": 0}


def test_repr_prints_the_arguments():
    assert repr(S.StepLR(0.1, step_size=5)) == (
        "StepLR(base_rate=0.1, step_size=5, gamma=0.1, warmup_epochs=0)")


# ---- errors -----------------------------------------------------------------------------------

INVALID = [
    (lambda: S.ConstantLR(-0.1), "invalid base_rate: -0.1"),
    (lambda: S.ConstantLR(0.1, warmup_epochs=-1), "invalid warmup_epochs: -1"),
    (lambda: S.ConstantLR(0.1, warmup_epochs=1.5), "invalid warmup_epochs: 1.5"),
    (lambda: S.StepLR(0.1, step_size=0), "invalid step_size: 0; it must be a whole number >= 1"),
    (lambda: S.StepLR(0.1, step_size=2.5), "invalid step_size: 2.5"),
    (lambda: S.StepLR(0.1, step_size=2, gamma=0), "invalid gamma: 0; it must be > 0"),
    (lambda: S.StepLR(0.1, step_size=2, gamma=-0.5), "invalid gamma: -0.5"),
    (lambda: S.CosineLR(0.1, total_epochs=0), "invalid total_epochs: 0"),
    (lambda: S.CosineLR(0.1, total_epochs=5, min_rate=0.2),
     "invalid min_rate: 0.2; it must be >= 0 and <= 0.1"),
    (lambda: S.CosineLR(0.1, total_epochs=5, warmup_epochs=5),
     "warmup_epochs=5 leaves no epoch of the 5-epoch run"),
    (lambda: S.ConstantLR(0.1).rate(-1), "invalid epoch: -1"),
    (lambda: S.ConstantLR(0.1).rate(2.0), "invalid epoch: 2.0"),
    (lambda: S.make_schedule("constant", 0.1, 0), "invalid max_epoch: 0"),
    (lambda: S.make_schedule("constant", 0.1, 3, warmup_epochs=3),
     "warmup_epochs=3 leaves no epoch of the 3-epoch run"),
    (lambda: S.make_schedule("step", 0.1, 10), "schedule 'step' needs step_size"),
    (lambda: S.make_schedule("cosine", 0.1, 10, total_epochs=5),
     "unknown hyper-parameter 'total_epochs' for schedule 'cosine'"),
    (lambda: S.make_schedule("step", 0.1, 10, step_size=2, gama=0.5), "did you mean 'gamma'?"),
    (lambda: S.make_schedule("cosin", 0.1, 10),
     "unknown schedule 'cosin'; did you mean 'cosine'? Valid: constant, cosine, step"),
]


@pytest.mark.parametrize("build, message", INVALID, ids=[m for _, m in INVALID])
def test_impossible_values_are_refused_naming_the_value(build, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build()
