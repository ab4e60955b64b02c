"""ReLU's gradient at exactly 0 is 0 (the subgradient PyTorch and the assignment use).

The gradient checks elsewhere keep every input away from the kink (a finite difference
there is meaningless), so without these tests `mask = x >= 0` would pass them all. Exact
zeros are common in practice: He-initialised biases start at 0, so a blank input (or a
hidden unit fed only zeros) puts a ReLU exactly at its kink.
"""
import numpy as np

from mnistlab.layers import Linear, ReLU
from mnistlab.model import Sequential


def test_relu_passes_no_gradient_at_exactly_zero():
    x = np.array([[-1.0, -0.0, 0.0, 1e-300, 2.0]])
    relu = ReLU()
    np.testing.assert_array_equal(relu.forward(x), [[0, 0, 0, 1e-300, 2.0]])
    np.testing.assert_array_equal(relu.backward(np.full_like(x, 7.0)), [[0, 0, 0, 7.0, 7.0]])


def test_a_blank_input_trains_nothing_before_a_relu_at_its_kink():
    """Zero input and zero biases: every hidden pre-activation is exactly 0, so the first
    layer gets no gradient at all; with a gradient of 1 at the kink it would."""
    rng = np.random.default_rng(0)
    first = Linear(6, 5, rng=rng)
    model = Sequential([first, ReLU(), Linear(5, 3, rng=rng)])
    model.forward(np.zeros((4, 6)), np.array([0, 1, 2, 0]))
    model.gradient_computing()
    assert not first.b.any()  # He initialisation: biases start at 0
    np.testing.assert_array_equal(first.grad_W, 0)
    np.testing.assert_array_equal(first.grad_b, 0)
