"""Numerical gradient checks: is a layer's `backward`, or a model's `gradient_computing`, right?

    from mnistlab import gradcheck
    gradcheck(layer, x)                 # a layer: forward(x) / backward(dout)
    gradcheck(model, Input, labels)     # a model: forward(Input, labels) / gradient_computing()

Each analytic gradient is compared with centred differences of the loss,

    dL/dx_i ~= (L(x + h e_i) - L(x - h e_i)) / (2 h),

in float64, where the truncation error, O(h^2), and the rounding error, O(eps / h), both
stay far below the tolerance. For a layer the loss is L = sum(forward(x) * G), with G a fixed
random upstream gradient (a uniform G would hide errors in BatchNorm, whose output sums to a
constant along the batch), and dL/dx is checked too. For a model the loss is the mean loss
that `forward` returns.

A stochastic layer (Dropout in training mode) draws a new mask at every forward pass: check
it in evaluation mode, or with a fixed mask. Keep inputs away from kinks (ReLU at 0, max
pooling ties): centred differences straddling a kink measure neither side's slope.
"""
import numpy as np


class GradientCheckError(AssertionError):
    """An analytic gradient disagrees with its numerical estimate beyond the tolerance."""


def numerical_gradient(f, x, h=1e-6):
    """Gradient of the scalar function `f()` with respect to the array `x`, perturbed in place.

    Args:
        f: callable with no arguments returning a float; it must read `x`.
        x: float64 array (or a view into one), restored to its original values on return.
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


def spread_entries(array, count):
    """A view of at most `count` entries spread evenly over `array` (writing to it writes to
    the array), or `array` itself when `count` is None."""
    if count is None:
        return array
    flat = array.reshape(-1)
    return flat[::max(1, flat.size // count)][:count]


def gradcheck(obj, *inputs, tol=1e-6, h=1e-5, max_entries=None, seed=0):
    """Check every analytic gradient of a layer or a model against centred differences.

    Args:
        obj: a layer (`forward(x)`, `backward(dout)`, `named_parameters()`), or a model
            (`forward(Input, labels) -> (loss, acc)`, `gradient_computing()`,
            `named_parameters()`).
        *inputs: `x` for a layer; `Input, labels` for a model. Float arrays must be float64.
        tol: largest relative error accepted: elementwise for a layer (each entry of each
            gradient), normwise per parameter array for a model, whose many tiny entries
            feel the loss's rounding noise. A gradient that is zero up to 1e-10 on both
            sides counts as agreeing.
        h: the step of the centred differences.
        max_entries: check at most this many entries of each array, spread over it (None:
            all), to keep big layers quick.
        seed: seed of the random upstream gradient G of a layer.

    Returns:
        {name: relative error}: 'x' for a layer's input, then each parameter's name.

    Raises:
        GradientCheckError: naming the parameter whose error is largest, when above `tol`.
        TypeError: an input or parameter is not float64.
    """
    for array in (*inputs, *(param for _, param, _ in obj.named_parameters())):
        array = np.asarray(array)
        if array.dtype.kind == "f" and array.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 arrays (got {array.dtype}): float32 "
                            "rounding is larger than any tolerance worth checking")
    is_model = len(inputs) == 2 and callable(getattr(obj, "gradient_computing", None))
    if is_model:
        errors = _check_model(obj, *inputs, h, max_entries)
        compare = normwise_relative_error
    elif len(inputs) == 1:
        errors = _check_layer(obj, inputs[0], h, max_entries, seed)
        compare = relative_error
    else:
        raise TypeError("gradcheck(layer, x) or gradcheck(model, Input, labels): got "
                        f"{len(inputs)} inputs for a {type(obj).__name__}")
    errors = {name: (0.0 if np.abs(a).max(initial=0) < 1e-10 and np.abs(n).max(initial=0) < 1e-10
                     else compare(a, n)) for name, (a, n) in errors.items()}
    worst = max(errors, key=errors.get, default=None)
    if worst is not None and errors[worst] > tol:
        raise GradientCheckError(
            f"{type(obj).__name__}: the gradient of {worst!r} is off by a relative error of "
            f"{errors[worst]:.2e} (tolerance {tol:g}); all errors: "
            + ", ".join(f"{name} {error:.1e}" for name, error in errors.items()))
    return errors


def _check_layer(layer, x, h, max_entries, seed):
    """{name: (analytic, numeric)} for L = sum(layer.forward(x) * G)."""
    x = np.array(x, dtype=np.float64)
    upstream = np.random.default_rng(seed).standard_normal(layer.forward(x).shape)
    analytic = {"x": layer.backward(upstream).copy()}
    analytic.update({name: grad.copy() for name, _, grad in layer.named_parameters()})

    def loss():
        return float(np.sum(layer.forward(x) * upstream))

    arrays = {"x": x, **{name: param for name, param, _ in layer.named_parameters()}}
    return {name: (spread_entries(analytic[name], max_entries),
                   numerical_gradient(loss, spread_entries(array, max_entries), h))
            for name, array in arrays.items()}


def _check_model(model, Input, labels, h, max_entries):
    """{name: (analytic, numeric)} for L = model.forward(Input, labels)[0]."""
    model.forward(Input, labels)
    model.gradient_computing()
    analytic = {name: grad.copy() for name, _, grad in model.named_parameters()}

    def loss():
        return float(model.forward(Input, labels)[0])

    return {name: (spread_entries(analytic[name], max_entries),
                   numerical_gradient(loss, spread_entries(param, max_entries), h))
            for name, param, _ in model.named_parameters()}
