"""The public gradient check: passes right gradients, and names the wrong one."""
import numpy as np
import pytest

from mnistlab.gradcheck import (GradientCheckError, gradcheck, normwise_relative_error,
                                numerical_gradient, relative_error)
from mnistlab.layers import Layer, Linear
from mnistlab.loss import SoftmaxCrossEntropyLoss
from mnistlab.model import Sequential


class Square(Layer):
    """y = a * x**2 with a trainable `a` (1, D); `wrong` plants a bug in one gradient."""

    param_names = ("a",)

    def __init__(self, dim, wrong=None):
        super().__init__()
        self.a = np.linspace(0.5, 1.5, dim).reshape(1, dim)
        self.wrong = wrong

    def forward(self, x):
        self.x = x
        return self.a * x ** 2

    def backward(self, dout):
        self.grad_a = np.sum(dout * self.x ** 2, axis=0, keepdims=True)
        dx = dout * 2 * self.a * self.x
        if self.wrong == "a":
            self.grad_a = self.grad_a * 1.01
        if self.wrong == "x":
            dx = dx + 1e-3
        return dx


def test_numerical_gradient_of_a_quadratic_is_exact_and_restores_the_input():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    before = x.copy()
    grad = numerical_gradient(lambda: float(np.sum(x ** 2)), x)
    np.testing.assert_allclose(grad, 2 * before, rtol=1e-9)
    assert np.array_equal(x, before)


def test_relative_errors_are_scale_free():
    a = np.array([1.0, 100.0])
    assert relative_error(a, a * (1 + 1e-8)) == pytest.approx(5e-9, rel=1e-3)
    assert normwise_relative_error(a, a) == 0.0 and normwise_relative_error(a, -a) == 1.0


def test_a_right_layer_passes_with_its_input_and_parameters_checked():
    x = np.random.default_rng(0).standard_normal((4, 3))
    errors = gradcheck(Square(3), x)
    assert set(errors) == {"x", "a"} and max(errors.values()) < 1e-8


@pytest.mark.parametrize("wrong", ["a", "x"])
def test_a_wrong_gradient_is_named(wrong):
    x = np.random.default_rng(0).standard_normal((4, 3))
    with pytest.raises(GradientCheckError, match=f"gradient of '{wrong}'"):
        gradcheck(Square(3, wrong=wrong), x)


def test_a_model_is_checked_through_its_loss():
    rng = np.random.default_rng(1)
    model = SoftmaxCrossEntropyLoss(5, 3)
    model.b = rng.standard_normal((1, 3))
    X, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    errors = gradcheck(model, X, y)
    assert set(errors) == {"W", "b"} and max(errors.values()) < 1e-8


def test_a_model_with_a_wrong_layer_names_that_parameter():
    rng = np.random.default_rng(2)
    model = Sequential([Linear(4, 3, rng=rng), Square(3, wrong="a"), Linear(3, 2, rng=rng)])
    with pytest.raises(GradientCheckError, match="gradient of '1.a'"):
        gradcheck(model, rng.standard_normal((5, 4)), rng.integers(0, 2, 5))


def test_max_entries_checks_a_spread_subset():
    model = Sequential([Linear(30, 20, rng=np.random.default_rng(3))])
    rng = np.random.default_rng(4)
    errors = gradcheck(model, rng.standard_normal((5, 30)), rng.integers(0, 20, 5), max_entries=7)
    assert max(errors.values()) < 1e-6


def test_float32_is_refused():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(Square(3), np.ones((2, 3), dtype=np.float32))
