"""Numerical gradients by centred differences, shared by every gradient test.

    df/dx_i ~= (f(x + h e_i) - f(x - h e_i)) / (2 h)

Use float64 inputs: with h = 1e-6 the truncation error is O(h^2) and rounding error
O(eps / h), both far below the tolerances the tests use.
"""
import numpy as np


def numerical_gradient(f, x, h=1e-6):
    """Gradient of the scalar function `f()` with respect to the array `x`, perturbed in place.

    Args:
        f: callable with no arguments returning a float; it must read `x`.
        x: float64 array, restored to its original values on return.
        h: step.

    Returns:
        Array of x's shape.
    """
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        original = x[idx]
        x[idx] = original + h
        up = f()
        x[idx] = original - h
        down = f()
        x[idx] = original
        grad[idx] = (up - down) / (2 * h)
    return grad


def relative_error(analytic, numeric):
    """Largest elementwise |a - n| / max(|a| + |n|, 1e-8): a scale-free distance."""
    analytic, numeric = np.asarray(analytic), np.asarray(numeric)
    return float(np.max(np.abs(analytic - numeric)
                        / np.maximum(np.abs(analytic) + np.abs(numeric), 1e-8)))


def normwise_relative_error(analytic, numeric):
    """||a - n|| / max(||a|| + ||n||, 1e-12) over a whole array.

    For whole models, where the loss's own rounding noise (about 1e-16 / h) swamps the
    smallest entries of an elementwise comparison; a wrong gradient still gives about 1.
    """
    analytic, numeric = np.asarray(analytic), np.asarray(numeric)
    scale = max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-12)
    return float(np.linalg.norm(analytic - numeric) / scale)
