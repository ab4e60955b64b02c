"""The update rules of optimizer.py, as a specification.

Every rule is checked against its formula on three hand-computed steps (expected values written
out with plain Python floats), then on an ill-conditioned quadratic it must minimise; then the
shared behaviour: per-parameter state, dtypes, hyper-parameter checks, the learning-rate
setter, step-time errors, checkpoints and building by name.
"""
import io
import math
import re

import numpy as np
import pytest

from mnistlab import loss
from mnistlab import optimizer as O


class FakeModel:
    """The smallest model an optimizer accepts: named arrays and a gradient for each."""

    def __init__(self, **params):
        self.params = params
        self.grads = {name: None for name in params}

    def named_parameters(self):
        for name, param in self.params.items():
            yield name, param, self.grads[name]


P0 = [1.0, -2.0]
GRADS = ([0.5, -1.0], [0.25, 2.0], [-1.0, 0.5])


def three_steps(rule, **hyperparameters):
    """p after each of three steps of `rule` from P0 with the fixed GRADS."""
    model = FakeModel(p=np.array(P0))
    opt = rule(model, **hyperparameters)
    trajectory = []
    for grad in GRADS:
        model.grads["p"] = np.array(grad)
        opt.step()
        trajectory.append(model.params["p"].copy())
    return trajectory


def assert_trajectory(actual, expected):
    for step, (a, e) in enumerate(zip(actual, expected), start=1):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-15, err_msg=f"after step {step}")


# ---- each rule's arithmetic, three steps by hand ----------------------------------------------

def test_contract_sgd_momentum_arithmetic_on_the_softmax_layer():
    layer = loss.SoftmaxCrossEntropyLoss(2, 2)
    layer.W, layer.b = np.zeros((2, 2)), np.zeros((1, 2))
    opt = O.SGD(layer, learning_rate=0.1, momentum=0.9)
    layer.grad_W, layer.grad_b = np.ones((2, 2)), np.ones((1, 2))
    opt.step()
    np.testing.assert_allclose(layer.W, -0.1)          # v1 = -0.1 * 1
    layer.grad_W, layer.grad_b = np.ones((2, 2)), np.ones((1, 2))
    opt.step()
    np.testing.assert_allclose(layer.W, -0.29)         # v2 = 0.9 * -0.1 - 0.1 = -0.19
    np.testing.assert_allclose(layer.b, -0.29)


def test_sgd_without_momentum_is_p_minus_lr_g():
    assert_trajectory(three_steps(O.SGD, learning_rate=0.1), [
        [1.0 - 0.05, -2.0 + 0.1],                      # p - 0.1 * [0.5, -1]
        [0.95 - 0.025, -1.9 - 0.2],
        [0.925 + 0.1, -2.1 - 0.05],
    ])


def test_sgd_momentum_accumulates_a_velocity():
    # v = 0.9 v - 0.1 g ; p = p + v
    # v1 = [-0.05, 0.1]   v2 = [-0.045 - 0.025, 0.09 - 0.2] = [-0.07, -0.11]
    # v3 = [-0.063 + 0.1, -0.099 - 0.05] = [0.037, -0.149]
    assert_trajectory(three_steps(O.SGD, learning_rate=0.1, momentum=0.9), [
        [0.95, -1.9],
        [0.95 - 0.07, -1.9 - 0.11],
        [0.88 + 0.037, -2.01 - 0.149],
    ])


def test_nesterov_matches_torchs_buffer_form():
    # torch.optim.SGD(nesterov=True): buf = 0.9 buf + g ; p = p - 0.1 (g + 0.9 buf)
    # buf1 = [0.5, -1]   buf2 = [0.45 + 0.25, -0.9 + 2] = [0.7, 1.1]
    # buf3 = [0.63 - 1, 0.99 + 0.5] = [-0.37, 1.49]
    p1 = [1.0 - 0.1 * (0.5 + 0.45), -2.0 - 0.1 * (-1.0 - 0.9)]
    p2 = [p1[0] - 0.1 * (0.25 + 0.63), p1[1] - 0.1 * (2.0 + 0.99)]
    p3 = [p2[0] - 0.1 * (-1.0 - 0.333), p2[1] - 0.1 * (0.5 + 1.341)]
    assert_trajectory(three_steps(O.SGD, learning_rate=0.1, momentum=0.9, nesterov=True),
                      [p1, p2, p3])


def test_sgd_weight_decay_adds_wd_times_p_to_the_gradient():
    # g' = g + 0.5 p ; p = p - 0.1 g'
    # g'1 = [0.5 + 0.5, -1 - 1] = [1, -2]                      -> p1 = [0.9, -1.8]
    # g'2 = [0.25 + 0.45, 2 - 0.9] = [0.7, 1.1]                -> p2 = [0.83, -1.91]
    # g'3 = [-1 + 0.415, 0.5 - 0.955] = [-0.585, -0.455]       -> p3 = [0.8885, -1.8645]
    assert_trajectory(three_steps(O.SGD, learning_rate=0.1, weight_decay=0.5), [
        [0.9, -1.8], [0.83, -1.91], [0.8885, -1.8645],
    ])


def adam_like_trajectory(decoupled_decay=0.0):
    """Adam by hand with lr 0.1, betas 0.9 / 0.999, eps 0.01, from P0 with GRADS."""
    p, m, v = list(P0), [0.0, 0.0], [0.0, 0.0]
    trajectory = []
    for t, g in enumerate(GRADS, start=1):
        p = [x * (1.0 - 0.1 * decoupled_decay) for x in p]
        m = [0.9 * mi + 0.1 * gi for mi, gi in zip(m, g)]
        v = [0.999 * vi + 0.001 * gi * gi for vi, gi in zip(v, g)]
        p = [x - 0.1 * (mi / (1 - 0.9 ** t)) / (math.sqrt(vi / (1 - 0.999 ** t)) + 0.01)
             for x, mi, vi in zip(p, m, v)]
        trajectory.append(p)
    return trajectory


def test_adam_first_step_is_lr_times_g_over_abs_g_plus_eps():
    # Bias correction makes m_hat = g and v_hat = g^2 at t = 1.
    first = adam_like_trajectory()[0]
    assert first == pytest.approx([1.0 - 0.1 * 0.5 / 0.51, -2.0 + 0.1 * 1.0 / 1.01], rel=1e-12)


def test_adam_three_steps():
    assert_trajectory(three_steps(O.Adam, learning_rate=0.1, eps=0.01), adam_like_trajectory())


def test_adamw_shrinks_p_by_lr_times_wd_before_the_adam_step():
    assert_trajectory(three_steps(O.AdamW, learning_rate=0.1, eps=0.01, weight_decay=0.5),
                      adam_like_trajectory(decoupled_decay=0.5))


def test_adagrad_divides_by_the_root_of_the_summed_squares():
    # s = s + g^2 ; p = p - 0.1 g / (sqrt(s) + 0.01)
    # s1 = [0.25, 1]   s2 = [0.3125, 5]   s3 = [1.3125, 5.25]
    p1 = [1.0 - 0.1 * 0.5 / (0.5 + 0.01), -2.0 + 0.1 * 1.0 / (1.0 + 0.01)]
    p2 = [p1[0] - 0.1 * 0.25 / (math.sqrt(0.3125) + 0.01),
          p1[1] - 0.1 * 2.0 / (math.sqrt(5.0) + 0.01)]
    p3 = [p2[0] + 0.1 * 1.0 / (math.sqrt(1.3125) + 0.01),
          p2[1] - 0.1 * 0.5 / (math.sqrt(5.25) + 0.01)]
    assert_trajectory(three_steps(O.Adagrad, learning_rate=0.1, eps=0.01), [p1, p2, p3])


def test_rmsprop_divides_by_a_running_root_mean_square_with_eps_outside_the_root():
    # s = 0.99 s + 0.01 g^2 ; p = p - 0.1 g / (sqrt(s) + 0.01)
    # s1 = [0.0025, 0.01]
    # s2 = [0.002475 + 0.000625, 0.0099 + 0.04] = [0.0031, 0.0499]
    # s3 = [0.003069 + 0.01, 0.049401 + 0.0025] = [0.013069, 0.051901]
    p1 = [1.0 - 0.1 * 0.5 / (0.05 + 0.01), -2.0 + 0.1 * 1.0 / (0.1 + 0.01)]
    p2 = [p1[0] - 0.1 * 0.25 / (math.sqrt(0.0031) + 0.01),
          p1[1] - 0.1 * 2.0 / (math.sqrt(0.0499) + 0.01)]
    p3 = [p2[0] + 0.1 * 1.0 / (math.sqrt(0.013069) + 0.01),
          p2[1] - 0.1 * 0.5 / (math.sqrt(0.051901) + 0.01)]
    assert_trajectory(three_steps(O.RMSProp, learning_rate=0.1, eps=0.01), [p1, p2, p3])


def test_rmsprop_momentum_accumulates_the_scaled_gradients():
    # b = 0.5 b + g / (sqrt(s) + 0.01) ; p = p - 0.1 b, with s as in the test above
    b1 = [0.5 / 0.06, -1.0 / 0.11]
    b2 = [0.5 * b1[0] + 0.25 / (math.sqrt(0.0031) + 0.01),
          0.5 * b1[1] + 2.0 / (math.sqrt(0.0499) + 0.01)]
    b3 = [0.5 * b2[0] - 1.0 / (math.sqrt(0.013069) + 0.01),
          0.5 * b2[1] + 0.5 / (math.sqrt(0.051901) + 0.01)]
    p1 = [1.0 - 0.1 * b1[0], -2.0 - 0.1 * b1[1]]
    p2 = [p1[0] - 0.1 * b2[0], p1[1] - 0.1 * b2[1]]
    p3 = [p2[0] - 0.1 * b3[0], p2[1] - 0.1 * b3[1]]
    assert_trajectory(three_steps(O.RMSProp, learning_rate=0.1, eps=0.01, momentum=0.5),
                      [p1, p2, p3])


def test_adamax_divides_by_an_elementwise_decaying_max_of_abs_g():
    # m = 0.9 m + 0.1 g ; u = max(0.999 u, |g| + 0.01) ; p = p - 0.1 / (1 - 0.9^t) * m / u
    # m1 = [0.05, -0.1]     u1 = [0.51, 1.01]
    # m2 = [0.07, 0.11]     u2 = [max(0.50949, 0.26), max(1.00899, 2.01)] = [0.50949, 2.01]
    # m3 = [-0.037, 0.149]  u3 = [max(0.50898051, 1.01), max(2.00799, 0.51)] = [1.01, 2.00799]
    # (each entry of u switches between its decayed and fresh value: the max is elementwise)
    p1 = [1.0 - 0.1 / 0.1 * 0.05 / 0.51, -2.0 + 0.1 / 0.1 * 0.1 / 1.01]
    p2 = [p1[0] - 0.1 / 0.19 * 0.07 / 0.50949, p1[1] - 0.1 / 0.19 * 0.11 / 2.01]
    p3 = [p2[0] + 0.1 / 0.271 * 0.037 / 1.01, p2[1] - 0.1 / 0.271 * 0.149 / 2.00799]
    assert_trajectory(three_steps(O.Adamax, learning_rate=0.1, eps=0.01), [p1, p2, p3])


# ---- subnormal moments and parameters are flushed to 0 --------------------------------------

def count_subnormal(array):
    return np.count_nonzero((array != 0) & (np.abs(array) < np.finfo(array.dtype).tiny))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flush_subnormals_zeroes_only_what_lies_below_the_smallest_normal_float(dtype):
    tiny = np.finfo(dtype).tiny
    a = np.array([tiny / 4, -tiny / 1000, tiny, -tiny, 0.0, 1e-3, -2.0], dtype=dtype)
    b = np.array([tiny / 2, 3 * tiny], dtype=dtype)
    O.flush_subnormals(a, b)
    np.testing.assert_array_equal(a, np.array([0, 0, tiny, -tiny, 0, 1e-3, -2], dtype=dtype))
    np.testing.assert_array_equal(b, np.array([0, 3 * tiny], dtype=dtype))


def test_a_moment_decayed_by_a_factor_gets_stuck_among_the_subnormals():
    # Why the flush exists: 0.9 * m rounds back to m a few units above 0, so it never gets there.
    m = np.array([1e-3], dtype=np.float32)
    for _ in range(2000):
        m *= np.float32(0.9)
    assert count_subnormal(m) == 1


SILENT_AFTER_ONE_STEP = [(O.Adam, {}), (O.AdamW, {}), (O.Adamax, {}),
                         (O.RMSProp, {"alpha": 0.9}), (O.RMSProp, {"alpha": 0.9, "momentum": 0.9})]


def silent_gradient_run(rule, hyperparameters):
    """(p, state) after one float32 step with a gradient, then zero gradients up to step
    100 * FLUSH_PERIOD (3,200 steps), which flushes."""
    model = FakeModel(p=np.array([0.3, 0.7], dtype=np.float32))
    opt = rule(model, learning_rate=0.001, **hyperparameters)
    silent = [np.zeros(2, np.float32)] * (100 * O.FLUSH_PERIOD - 1)
    for g in [np.array([1.0, -0.5], np.float32)] + silent:
        model.grads["p"] = g
        opt.step()
    return model.params["p"], opt.state["p"]


def test_the_flush_comes_every_flush_period_steps(monkeypatch):
    flushed_at = []
    monkeypatch.setattr(O, "flush_subnormals", lambda *states: flushed_at.append(opt.step_count))
    model = FakeModel(p=np.zeros(2))
    opt = O.Adam(model)
    model.grads["p"] = np.ones(2)
    for _ in range(3 * O.FLUSH_PERIOD):
        opt.step()
    assert flushed_at == [O.FLUSH_PERIOD, 2 * O.FLUSH_PERIOD, 3 * O.FLUSH_PERIOD]


@pytest.mark.parametrize("rule, hyperparameters", SILENT_AFTER_ONE_STEP)
def test_moments_of_a_gradient_gone_silent_reach_zero_and_the_steps_are_unchanged(
        rule, hyperparameters, monkeypatch):
    # Without the flush the decayed moments stay subnormal; with it they are 0 after a flushing
    # step, and p follows the formula computed without any flush, bit for bit.
    p, state = silent_gradient_run(rule, hyperparameters)
    monkeypatch.setattr(O, "flush_subnormals", lambda *states: None)
    p_unflushed, state_unflushed = silent_gradient_run(rule, hyperparameters)
    assert sum(count_subnormal(a) for a in state.values()) == 0
    assert sum(count_subnormal(a) for a in state_unflushed.values()) > 0
    np.testing.assert_array_equal(p, p_unflushed)


def decayed_parameter_run(rule):
    """p after 100 * FLUSH_PERIOD float32 steps whose only gradient is L2 decay, wd * p. Once
    |wd * p| is far below eps the step is about lr * wd * p / eps = 0.3 p: p decays
    geometrically."""
    model = FakeModel(p=np.array([-0.02], dtype=np.float32))
    opt = rule(model, learning_rate=3e-4, weight_decay=1e-5)
    model.grads["p"] = np.zeros(1, np.float32)
    for _ in range(100 * O.FLUSH_PERIOD):
        opt.step()
    return model.params["p"]


@pytest.mark.parametrize("rule", [O.Adam, O.RMSProp])
def test_a_parameter_decayed_by_l2_under_an_adaptive_rule_is_flushed_to_zero(rule, monkeypatch):
    # Adam with weight decay on a weight whose input is always 0 (a dead ReLU) drives it into
    # the subnormals, where every product that reads it is slow; the flush makes it 0.
    p = decayed_parameter_run(rule)
    monkeypatch.setattr(O, "flush_subnormals", lambda *states: None)
    p_unflushed = decayed_parameter_run(rule)
    assert count_subnormal(p_unflushed) == 1
    np.testing.assert_array_equal(p, [0.0])


# With eps = 0 the first step of these rules is lr * sign(gradient), which makes the two kinds
# of weight decay easy to tell apart: the gradient [-0.1, 0.1] alone would move p = [1, -2]
# outwards, but 0.5 * p added to it (L2) points the other way.
@pytest.mark.parametrize("rule", [O.Adam, O.Adamax, O.Adagrad])
def test_l2_weight_decay_enters_the_gradient_of_the_adaptive_rules(rule):
    model = FakeModel(p=np.array(P0))
    model.grads["p"] = np.array([-0.1, 0.1])           # g' = [-0.1 + 0.5, 0.1 - 1] = [0.4, -0.9]
    rule(model, learning_rate=0.1, eps=0.0, weight_decay=0.5).step()
    np.testing.assert_allclose(model.params["p"], [0.9, -1.9], rtol=1e-12)


def test_adamw_decay_is_decoupled_from_the_gradient():
    model = FakeModel(p=np.array(P0))
    model.grads["p"] = np.array([-0.1, 0.1])
    O.AdamW(model, learning_rate=0.1, eps=0.0, weight_decay=0.5).step()
    # p * (1 - 0.1 * 0.5) - 0.1 * sign(g) = [0.95 + 0.1, -1.9 - 0.1]
    np.testing.assert_allclose(model.params["p"], [1.05, -2.0], rtol=1e-12)


# ---- every rule minimises an ill-conditioned quadratic ----------------------------------------

CURVATURE = np.array([1.0, 50.0])                      # f(p) = 0.5 p^T diag(1, 50) p

QUADRATIC_RUNS = [
    ("sgd", 0.035, {}),
    ("sgd", 0.02, {"momentum": 0.9}),
    ("sgd", 0.02, {"momentum": 0.9, "nesterov": True}),
    ("adam", 0.1, {}),
    ("adamw", 0.1, {}),
    ("adagrad", 0.5, {}),
    ("rmsprop", 0.01, {}),
    ("rmsprop", 0.003, {"momentum": 0.9}),
    ("adamax", 0.1, {}),
]


@pytest.mark.parametrize("name, learning_rate, hyperparameters", QUADRATIC_RUNS)
def test_every_rule_minimises_an_ill_conditioned_quadratic(name, learning_rate, hyperparameters):
    model = FakeModel(p=np.array([1.0, 1.0]))          # f = 25.5 at the start
    opt = O.make_optimizer(name, model, learning_rate, **hyperparameters)
    for _ in range(300):
        model.grads["p"] = CURVATURE * model.params["p"]
        opt.step()
    p = model.params["p"]
    assert 0.5 * np.sum(CURVATURE * p * p) < 1e-8, p


# ---- behaviour every rule shares --------------------------------------------------------------

# Hyper-parameters under which every rule keeps state.
STATEFUL = [("sgd", {"momentum": 0.9}), ("sgd", {"momentum": 0.9, "nesterov": True}),
            ("adam", {}), ("adamw", {}), ("adagrad", {}), ("rmsprop", {"momentum": 0.5}),
            ("adamax", {}), ("asgd", {"t0": 2}), ("rprop", {})]


@pytest.mark.parametrize("name, hyperparameters", STATEFUL)
def test_state_is_kept_per_parameter_name_never_shared(name, hyperparameters):
    grads_a = [np.array([1.0, -2.0]), np.array([0.5, 0.5])]
    grads_b = [np.array([-3.0, 0.25]), np.array([2.0, -1.0])]
    both = FakeModel(a=np.array([1.0, 2.0]), b=np.array([1.0, 2.0]))
    alone_a, alone_b = FakeModel(a=np.array([1.0, 2.0])), FakeModel(b=np.array([1.0, 2.0]))
    opts = [O.make_optimizer(name, m, 0.1, **hyperparameters) for m in (both, alone_a, alone_b)]
    for ga, gb in zip(grads_a, grads_b):
        both.grads.update(a=ga, b=gb)
        alone_a.grads["a"], alone_b.grads["b"] = ga, gb
        for opt in opts:
            opt.step()
    np.testing.assert_array_equal(both.params["a"], alone_a.params["a"])
    np.testing.assert_array_equal(both.params["b"], alone_b.params["b"])
    shared, separate = opts[0].state, {**opts[1].state, **opts[2].state}
    assert set(shared) == {"a", "b"}
    for key in shared["a"]:
        assert shared["a"][key] is not shared["b"][key]
        np.testing.assert_array_equal(shared["a"][key], separate["a"][key])


@pytest.mark.parametrize("name, hyperparameters", STATEFUL + [("sgd", {})])
def test_float32_parameters_and_state_stay_float32(name, hyperparameters):
    p32 = FakeModel(p=np.array(P0, dtype=np.float32))
    p64 = FakeModel(p=np.array(P0))
    decay = {"weight_decay": 0.01} if "weight_decay" in O.optimizer_hyperparameters(name) else {}
    opt32 = O.make_optimizer(name, p32, 0.1, **decay, **hyperparameters)
    opt64 = O.make_optimizer(name, p64, 0.1, **decay, **hyperparameters)
    for grad in GRADS:
        p32.grads["p"] = np.array(grad)                # a float64 gradient
        p64.grads["p"] = np.array(grad)
        opt32.step()
        opt64.step()
    assert p32.params["p"].dtype == np.float32
    assert all(a.dtype == np.float32 for a in opt32.state.get("p", {}).values())
    np.testing.assert_allclose(p32.params["p"], p64.params["p"], rtol=1e-5)


def test_parameters_are_updated_in_place_and_fetched_at_every_step():
    layer = loss.SoftmaxCrossEntropyLoss(2, 2)
    opt = O.SGD(layer, learning_rate=1.0)
    layer.W, layer.grad_W, layer.grad_b = np.zeros((2, 2)), np.ones((2, 2)), np.ones((1, 2))
    kept = layer.W                                      # replaced after the optimizer was built
    opt.step()
    assert layer.W is kept
    np.testing.assert_array_equal(kept, -np.ones((2, 2)))


INVALID = [
    (O.SGD, {"learning_rate": -0.1}, "learning_rate: -0.1"),
    (O.SGD, {"learning_rate": 0.1, "momentum": 1.5}, "momentum: 1.5; it must be >= 0 and < 1"),
    (O.SGD, {"learning_rate": 0.1, "momentum": -0.1}, "momentum: -0.1"),
    (O.SGD, {"learning_rate": 0.1, "nesterov": True}, "nesterov=True needs momentum > 0"),
    (O.SGD, {"learning_rate": 0.1, "nesterov": "yes"}, "nesterov: 'yes'"),
    (O.SGD, {"learning_rate": 0.1, "weight_decay": -1.0}, "weight_decay: -1.0"),
    (O.SGD, {"learning_rate": float("nan")}, "learning_rate: nan"),
    (O.SGD, {"learning_rate": "0.1"}, "learning_rate: '0.1'"),
    (O.Adam, {"beta1": 1.0}, "beta1: 1.0"),
    (O.Adam, {"beta2": -0.5}, "beta2: -0.5"),
    (O.Adam, {"eps": -1e-8}, "eps: -1e-08"),
    (O.AdamW, {"weight_decay": float("inf")}, "weight_decay: inf"),
    (O.Adagrad, {"eps": -1.0}, "eps: -1.0"),
    (O.RMSProp, {"alpha": 1.2}, "alpha: 1.2"),
    (O.RMSProp, {"momentum": 1.0}, "momentum: 1.0"),
    (O.Adamax, {"beta1": True}, "beta1: True"),
]


@pytest.mark.parametrize("rule, kwargs, message", INVALID)
def test_invalid_hyperparameters_are_refused_naming_the_value(rule, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        rule(FakeModel(p=np.zeros(2)), **kwargs)


def test_a_model_without_named_parameters_is_refused():
    with pytest.raises(TypeError, match="named_parameters"):
        O.SGD(object(), 0.1)


def test_learning_rate_can_be_set_between_steps_and_is_checked():
    model = FakeModel(p=np.array([1.0]))
    opt = O.SGD(model, learning_rate=0.1)
    opt.learning_rate = 0.5
    model.grads["p"] = np.array([1.0])
    opt.step()
    np.testing.assert_allclose(model.params["p"], [0.5])
    with pytest.raises(ValueError, match="invalid learning_rate: -1"):
        opt.learning_rate = -1
    assert opt.learning_rate == 0.5


def test_step_count_counts_steps():
    model = FakeModel(p=np.array([1.0]))
    opt = O.Adam(model)
    model.grads["p"] = np.array([1.0])
    for _ in range(3):
        opt.step()
    assert opt.step_count == 3


def test_a_missing_gradient_is_refused_before_any_parameter_changes():
    model = FakeModel(a=np.array([1.0]), b=np.array([2.0]))
    model.grads["a"] = np.array([1.0])
    opt = O.SGD(model, 0.1, momentum=0.9)
    with pytest.raises(ValueError, match="'b' has no gradient"):
        opt.step()
    np.testing.assert_array_equal(model.params["a"], [1.0])
    assert opt.state == {} and opt.step_count == 0


def test_a_gradient_of_another_shape_is_refused():
    model = FakeModel(b=np.zeros((1, 3)))
    model.grads["b"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"shape \(3,\) but the parameter has shape \(1, 3\)"):
        O.SGD(model, 0.1).step()


def test_two_parameters_with_one_name_are_refused():
    class Twice(FakeModel):
        def named_parameters(self):
            yield "W", self.params["p"], np.ones(2)
            yield "W", self.params["q"], np.ones(2)

    with pytest.raises(ValueError, match="two parameters named 'W'"):
        O.Adam(Twice(p=np.zeros(2), q=np.zeros(2))).step()


def test_repr_prints_the_hyperparameters():
    model = FakeModel(p=np.zeros(1))
    assert repr(O.SGD(model, 0.01, momentum=0.9)) == (
        "SGD(learning_rate=0.01, momentum=0.9, nesterov=False, weight_decay=0.0)")
    assert repr(O.AdamW(model)) == (
        "AdamW(learning_rate=0.001, beta1=0.9, beta2=0.999, eps=1e-08, weight_decay=0.01)")


# ---- checkpoints ------------------------------------------------------------------------------

def quadratic_model():
    return FakeModel(W=np.array([[1.0, -1.0], [0.5, 2.0]]), b=np.array([0.3, -0.7]))


def quadratic_steps(model, opt, n):
    for _ in range(n):
        model.grads = {name: CURVATURE * p for name, p in model.params.items()}
        opt.step()


def through_npz(state):
    """The state as np.load gives it back after np.savez without pickling."""
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as loaded:
        return {key: loaded[key] for key in loaded.files}


@pytest.mark.parametrize("name, hyperparameters", STATEFUL + [("sgd", {})])
def test_a_loaded_optimizer_continues_bit_identically(name, hyperparameters):
    model_a = quadratic_model()
    opt_a = O.make_optimizer(name, model_a, 0.02, **hyperparameters)
    quadratic_steps(model_a, opt_a, 3)
    opt_a.learning_rate = 0.01                          # as a schedule would
    saved = through_npz(opt_a.state_dict())

    model_b = FakeModel(**{k: p.copy() for k, p in model_a.params.items()})
    opt_b = O.make_optimizer(name, model_b, 0.02, **hyperparameters)
    opt_b.load_state_dict(saved)
    assert opt_b.step_count == 3 and opt_b.learning_rate == 0.01
    quadratic_steps(model_a, opt_a, 4)
    quadratic_steps(model_b, opt_b, 4)
    for key in model_a.params:
        np.testing.assert_array_equal(model_a.params[key], model_b.params[key])


def test_state_dict_keys_and_copies():
    model = quadratic_model()
    opt = O.SGD(model, 0.1, momentum=0.9)
    quadratic_steps(model, opt, 1)
    saved = opt.state_dict()
    assert sorted(saved) == ["hyperparameters/momentum", "hyperparameters/nesterov",
                             "hyperparameters/weight_decay", "learning_rate", "rule",
                             "state/W/velocity", "state/b/velocity", "step_count"]
    assert saved["step_count"].shape == () and int(saved["step_count"]) == 1
    saved["state/W/velocity"][...] = 99.0
    assert not np.any(opt.state["W"]["velocity"] == 99.0)


def test_state_of_a_fresh_optimizer_loads_into_a_fresh_optimizer():
    saved = O.Adam(quadratic_model()).state_dict()
    opt = O.Adam(quadratic_model())
    opt.load_state_dict(saved)
    assert opt.state == {} and opt.step_count == 0


# ---- building a rule by name ------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(O.OPTIMIZERS))
def test_make_optimizer_builds_each_rule_with_its_defaults(name):
    defaults = O.optimizer_hyperparameters(name)
    opt = O.make_optimizer(name, FakeModel(p=np.zeros(2)), 0.05)
    assert type(opt) is O.OPTIMIZERS[name]
    assert opt.learning_rate == 0.05
    assert opt.hyperparameters() == defaults


def test_optimizer_hyperparameters_come_from_the_signature():
    assert O.optimizer_hyperparameters("sgd") == {
        "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
    assert O.optimizer_hyperparameters("adam") == {
        "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}
    assert O.optimizer_hyperparameters("adamw")["weight_decay"] == 0.01
    assert O.optimizer_hyperparameters("rmsprop") == {
        "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0}


def test_make_optimizer_passes_the_hyperparameters_on():
    opt = O.make_optimizer("rmsprop", FakeModel(p=np.zeros(2)), 0.01, alpha=0.9, momentum=0.5)
    assert (opt.alpha, opt.momentum) == (0.9, 0.5)


def test_an_unknown_optimizer_name_lists_the_valid_ones_and_suggests_one():
    with pytest.raises(ValueError) as error:
        O.make_optimizer("rmsprob", FakeModel(p=np.zeros(2)), 0.1)
    message = str(error.value)
    assert "unknown optimizer 'rmsprob'; did you mean 'rmsprop'?" in message
    assert "adagrad, adam, adamax, adamw, asgd, rmsprop, rprop, sgd" in message
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        O.optimizer_hyperparameters("lbfgs")


def test_a_hyperparameter_the_rule_does_not_take_is_refused():
    with pytest.raises(ValueError, match="unknown hyper-parameter 'beta1' for optimizer 'sgd'"):
        O.make_optimizer("sgd", FakeModel(p=np.zeros(2)), 0.1, beta1=0.9)
    with pytest.raises(ValueError, match="did you mean 'momentum'"):
        O.make_optimizer("sgd", FakeModel(p=np.zeros(2)), 0.1, momentun=0.9)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_gradient_is_refused_before_any_parameter_changes(bad):
    model = FakeModel(a=np.array([1.0, 2.0]), b=np.array([3.0]))
    opt = O.SGD(model, 0.1, momentum=0.9)
    model.grads.update(a=np.array([0.5, 0.5]), b=np.array([bad]))
    with pytest.raises(O.NonFiniteGradientError, match="gradient of 'b'"):
        opt.step()
    np.testing.assert_array_equal(model.params["a"], [1.0, 2.0])
    assert opt.step_count == 0 and opt.state == {}


def test_a_finite_gradient_whose_sum_overflows_is_accepted():
    # its sum is infinite: a finiteness test by the sum alone would refuse it
    model = FakeModel(a=np.array([1.0, 2.0]))
    opt = O.SGD(model, 1e-300)
    model.grads.update(a=np.array([1e308, 1e308]))
    opt.step()
    np.testing.assert_array_equal(model.params["a"], [1.0 - 1e8, 2.0 - 1e8])
    assert opt.step_count == 1


def test_a_rule_declares_its_hyperparameters_once_and_the_signature_follows():
    import inspect
    assert list(inspect.signature(O.SGD).parameters) == [
        "model", "learning_rate", "momentum", "nesterov", "weight_decay"]
    assert inspect.signature(O.SGD).parameters["learning_rate"].default is inspect.Parameter.empty
    assert inspect.signature(O.Adamax).parameters["learning_rate"].default == 0.002
    assert inspect.signature(O.AdamW).parameters["weight_decay"].default == 0.01


# ---- ASGD and Rprop, PyTorch's semantics ------------------------------------------------------

def test_asgd_decays_its_step_and_averages_after_t0():
    # eta_t = 0.1 / (1 + 0.1 * 0.1 * (t - 1))^0.5; p = p (1 - 0.1 eta) - eta g; t0 = 1:
    # mu_1 = mu_2 = 1 (ax = p), mu_3 = 1 / (3 - 1 - 1) = 1, mu_4 = 1/2
    etas = [0.1 / (1 + 0.01 * (t - 1)) ** 0.5 for t in (1, 2, 3, 4)]
    grads = [np.array(g) for g in GRADS] + [np.array([0.5, 0.5])]
    p = np.array(P0)
    expected = []
    for eta, g in zip(etas, grads):
        p = p * (1 - 0.1 * eta) - eta * g
        expected.append(p.copy())
    model = FakeModel(p=np.array(P0))
    opt = O.ASGD(model, learning_rate=0.1, lambd=0.1, alpha=0.5, t0=1)
    for step, g in enumerate(grads):
        model.grads["p"] = g
        opt.step()
        np.testing.assert_allclose(model.params["p"], expected[step], rtol=1e-13)
    np.testing.assert_allclose(opt.averaged_parameters()["p"],
                               expected[2] + 0.5 * (expected[3] - expected[2]), rtol=1e-13)


def test_rprop_grows_the_step_while_the_sign_holds_and_skips_a_flip():
    # step starts at 0.1; g1 moves by -sign(g1) * 0.1
    # g2 = [0.25, 2.0]: sign kept for p0 (step 0.12), flipped for p1 (step 0.05, no move)
    # g3 = [-1.0, 0.5]: flipped for p0 (step 0.06, no move); p1's previous g was zeroed,
    #                   so its step stays 0.05 and it moves by -0.05
    assert_trajectory(three_steps(O.Rprop, learning_rate=0.1), [
        [0.9, -1.9], [0.78, -1.9], [0.78, -1.95]])


def test_rprop_keeps_its_step_sizes_within_bounds():
    model = FakeModel(p=np.array([0.0]))
    opt = O.Rprop(model, learning_rate=1.0, step_size_max=1.5, step_size_min=0.4)
    for g in [1.0, 1.0, 1.0, -1.0, 1.0, -1.0]:
        model.grads["p"] = np.array([g])
        opt.step()
        assert 0.4 <= opt.state["p"]["step_size"][0] <= 1.5
