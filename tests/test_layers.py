"""Layers: gradients against centred differences, forward passes against naive loop
references, train/eval behaviour, buffers and dtype preservation."""
import numpy as np
import pytest

from mnistlab.gradcheck import gradcheck
from mnistlab.layers import (BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, Layer, Linear,
                    MaxPool2d, ReLU)


def away_from_zero(rng, shape):
    """Standard normal values pushed at least 0.1 away from 0, so no ReLU kink is within h."""
    x = rng.standard_normal(shape)
    return x + 0.1 * np.sign(x)


def randomize_parameters(layer, rng):
    """Move every parameter off its initial value (gamma = 1 and beta = 0 are special points)."""
    for _, param, _ in layer.named_parameters():
        param += 0.5 * rng.standard_normal(param.shape)


# The step h trades truncation error, O(h^2), against the rounding error of the O(10)
# objective, O(1e-16 / h) absolute, which the smallest gradient entries feel most: 1e-5
# balances them. Linear and Conv2d are affine in x, in W and in b separately, so centred
# differences are exact for any step there, and a large one makes rounding negligible.
STEP = 1e-5
AFFINE_STEP = 1.0


def check_gradients(layer, x, h=STEP, tol=1e-6):
    """Check dL/dx and every dL/dparam of `layer` for L = sum(forward(x) * G), G a fixed random
    upstream gradient (mnistlab.gradcheck), elementwise to `tol`."""
    errors = gradcheck(layer, x, h=h, tol=tol)
    assert set(errors) == {"x", *layer.param_names}


# --- Linear ----------------------------------------------------------------------------------

def test_linear_forward_is_affine_map_with_documented_shapes():
    rng = np.random.default_rng(0)
    layer = Linear(5, 3, rng=rng)
    randomize_parameters(layer, rng)
    x = rng.standard_normal((4, 5))
    assert layer.W.shape == (5, 3) and layer.b.shape == (1, 3)
    np.testing.assert_allclose(layer.forward(x), x @ layer.W + layer.b)


def test_linear_gradients():
    rng = np.random.default_rng(1)
    layer = Linear(5, 3, rng=rng)
    randomize_parameters(layer, rng)
    check_gradients(layer, rng.standard_normal((4, 5)), h=AFFINE_STEP)


def test_linear_init_is_he_normal():
    layer = Linear(1000, 200, rng=np.random.default_rng(0))
    assert abs(layer.W.mean()) < 0.003
    np.testing.assert_allclose(layer.W.std(), np.sqrt(2 / 1000), rtol=0.02)
    assert not layer.b.any()


def test_linear_rejects_wrong_input_width():
    with pytest.raises(ValueError, match="with 5 along axis 1, got shape \\(4, 6\\)"):
        Linear(5, 3).forward(np.zeros((4, 6)))


@pytest.mark.parametrize("args", [(0, 3), (5, -1), (2.5, 3)])
def test_linear_rejects_bad_sizes(args):
    with pytest.raises(ValueError, match="invalid num_"):
        Linear(*args)


# --- ReLU and Flatten ------------------------------------------------------------------------

def test_relu_forward_and_gradients():
    rng = np.random.default_rng(2)
    x = away_from_zero(rng, (3, 4, 5))
    np.testing.assert_array_equal(ReLU().forward(x), np.where(x > 0, x, 0))
    check_gradients(ReLU(), x)


def test_flatten_round_trip_and_gradients():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4, 5))
    layer = Flatten()
    out = layer.forward(x)
    assert out.shape == (2, 60)
    np.testing.assert_array_equal(out[1], x[1].ravel())
    assert layer.backward(out).shape == x.shape
    check_gradients(layer, x)


# --- BatchNorm -------------------------------------------------------------------------------

@pytest.mark.parametrize("layer_class, shape", [(BatchNorm1d, (6, 4)), (BatchNorm2d, (3, 4, 3, 2))])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(layer_class, shape, training):
    rng = np.random.default_rng(4)
    layer = layer_class(4)
    randomize_parameters(layer, rng)
    layer.running_mean += rng.standard_normal(layer.running_mean.shape)
    layer.running_var += rng.uniform(0.5, 2.0, layer.running_var.shape)
    layer.train(training)
    check_gradients(layer, 2 * rng.standard_normal(shape) + 1)


def test_batchnorm1d_training_output_is_normalised_per_feature():
    rng = np.random.default_rng(5)
    x = 3 * rng.standard_normal((50, 4)) + np.array([1.0, -2.0, 5.0, 0.0])
    out = BatchNorm1d(4).forward(x)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=0), 1, rtol=1e-4)   # eps = 1e-5 shrinks it a bit


def test_batchnorm_running_statistics_follow_the_momentum_rule():
    rng = np.random.default_rng(6)
    x = 3 * rng.standard_normal((20, 4)) + 2
    layer = BatchNorm1d(4, momentum=0.25)
    layer.forward(x)
    np.testing.assert_allclose(layer.running_mean, 0.75 * 0 + 0.25 * x.mean(axis=0, keepdims=True))
    np.testing.assert_allclose(layer.running_var,
                               0.75 * 1 + 0.25 * x.var(axis=0, ddof=1, keepdims=True))
    for _ in range(200):
        layer.forward(x)
    np.testing.assert_allclose(layer.running_mean[0], x.mean(axis=0))
    np.testing.assert_allclose(layer.running_var[0], x.var(axis=0, ddof=1))


def test_batchnorm_eval_uses_running_statistics_and_leaves_them_alone():
    rng = np.random.default_rng(7)
    layer = BatchNorm1d(3, eps=1e-3)
    randomize_parameters(layer, rng)
    layer.running_mean[:] = [[1.0, -1.0, 0.5]]
    layer.running_var[:] = [[4.0, 0.25, 1.0]]
    layer.eval()
    x = rng.standard_normal((5, 3))
    x_hat = (x - layer.running_mean) / np.sqrt(layer.running_var + 1e-3)
    expected = layer.gamma * x_hat + layer.beta
    np.testing.assert_allclose(layer.forward(x), expected)
    # A sample's output no longer depends on the rest of its batch; statistics are frozen.
    np.testing.assert_allclose(layer.forward(x[:1]), expected[:1])
    np.testing.assert_array_equal(layer.running_mean, [[1.0, -1.0, 0.5]])


def test_batchnorm_training_needs_two_values_per_feature():
    with pytest.raises(ValueError, match="more than one value per feature"):
        BatchNorm1d(3).forward(np.zeros((1, 3)))
    BatchNorm1d(3).eval().forward(np.zeros((1, 3)))   # fine in evaluation mode


def test_batchnorm2d_is_batchnorm1d_over_pixels():
    """Per-channel statistics over (N, H, W): the same as BatchNorm1d on (N*H*W, C) rows."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 4, 5, 2)) * 2 + 1
    G = rng.standard_normal(x.shape)
    bn2, bn1 = BatchNorm2d(4), BatchNorm1d(4)
    randomize_parameters(bn2, rng)
    bn1.gamma[:], bn1.beta[:] = bn2.gamma.reshape(1, 4), bn2.beta.reshape(1, 4)

    def to_rows(a):
        return a.transpose(0, 2, 3, 1).reshape(-1, 4)

    np.testing.assert_allclose(to_rows(bn2.forward(x)), bn1.forward(to_rows(x)))
    np.testing.assert_allclose(to_rows(bn2.backward(G)), bn1.backward(to_rows(G)))
    for name in ("grad_gamma", "grad_beta", "running_mean", "running_var"):
        np.testing.assert_allclose(getattr(bn2, name).reshape(1, 4), getattr(bn1, name))


def test_batchnorm_exposes_running_statistics_as_buffers_not_parameters():
    layer = BatchNorm2d(3)
    assert [name for name, _, _ in layer.named_parameters()] == ["gamma", "beta"]
    buffers = dict(layer.named_buffers())
    assert list(buffers) == ["running_mean", "running_var"]
    assert buffers["running_mean"] is layer.running_mean
    assert buffers["running_var"].shape == (1, 3, 1, 1)
    layer.forward(np.random.default_rng(0).standard_normal((2, 3, 2, 2)) + 5)
    assert buffers["running_mean"] is layer.running_mean      # updated in place
    assert (layer.running_mean > 0).all()
    assert list(Linear(2, 2).named_buffers()) == []


def test_batchnorm_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm1d(3, eps=0)
    with pytest.raises(ValueError, match="BatchNorm2d expects input of shape \\(N, C, H, W\\)"):
        BatchNorm2d(3).forward(np.zeros((4, 3)))


# --- Dropout ---------------------------------------------------------------------------------

def test_dropout_is_identity_in_eval_mode():
    x = np.random.default_rng(9).standard_normal((4, 5))
    layer = Dropout(0.5).eval()
    assert layer.forward(x) is x
    dout = np.ones_like(x)
    assert layer.backward(dout) is dout


def test_dropout_training_zeroes_about_p_and_scales_the_rest():
    x = np.random.default_rng(10).uniform(1, 2, (200, 100))
    layer = Dropout(0.3, rng=np.random.default_rng(0))
    out = layer.forward(x)
    dropped = out == 0
    assert abs(dropped.mean() - 0.3) < 0.01
    np.testing.assert_allclose(out[~dropped], x[~dropped] / 0.7)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx == 0, dropped)   # the same mask routes the gradient
    np.testing.assert_allclose(dx[~dropped], 1 / 0.7)


def test_dropout_masks_are_reproducible_with_a_seeded_rng_and_fresh_per_batch():
    x = np.ones((8, 16))
    first = Dropout(0.5, rng=np.random.default_rng(42))
    second = Dropout(0.5, rng=np.random.default_rng(42))
    out1, out2 = first.forward(x), second.forward(x)
    np.testing.assert_array_equal(out1, out2)
    assert not np.array_equal(first.forward(x), out1)


class FixedMaskDropout(Dropout):
    """Dropout drawing the same mask at every call, so centred differences see one function."""

    def forward(self, x):
        self.rng = np.random.default_rng(3)
        return super().forward(x)


def test_dropout_gradients_with_a_fixed_mask():
    x = np.random.default_rng(11).standard_normal((5, 6))
    layer = FixedMaskDropout(0.4)
    assert (layer.forward(x) == 0).any()
    check_gradients(layer, x)


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_dropout_rejects_bad_probability(p):
    with pytest.raises(ValueError, match="invalid p: "):
        Dropout(p)


# --- Conv2d ----------------------------------------------------------------------------------

def naive_conv2d(x, W, b, stride, padding):
    """out[n, f, i, j] = b[f] + sum_{c,u,v} W[f, c, u, v] * xp[n, c, i*sh + u, j*sw + v], by loops.

    stride and padding are ints or (rows, columns) pairs.
    """
    (sh, sw), (ph, pw) = np.broadcast_to(stride, 2), np.broadcast_to(padding, 2)
    n, _, height, width = x.shape
    filters, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out_h, out_w = (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    out = np.zeros((n, filters, out_h, out_w))
    for sample in range(n):
        for f in range(filters):
            for i in range(out_h):
                for j in range(out_w):
                    window = xp[sample, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    out[sample, f, i, j] = np.sum(window * W[f]) + b[0, f, 0, 0]
    return out


# Square kernels 3 and 5 with every stride and padding, and one case with a different value
# along rows and columns for each, which catches swapped axes.
CONV_CASES = ([(k, s, p) for k in (3, 5) for s in (1, 2) for p in (0, 1, 2)]
              + [((3, 2), (1, 2), (2, 1))])


@pytest.mark.parametrize("kernel, stride, padding", CONV_CASES)
def test_conv2d_forward_matches_naive_loops(kernel, stride, padding):
    rng = np.random.default_rng(12)
    layer = Conv2d(2, 3, kernel, stride=stride, padding=padding, rng=rng)
    randomize_parameters(layer, rng)
    x = rng.standard_normal((2, 2, 7, 6))   # not square: catches swapped height and width
    out = layer.forward(x)
    np.testing.assert_allclose(out, naive_conv2d(x, layer.W, layer.b, stride, padding),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel, stride, padding", CONV_CASES)
def test_conv2d_gradients(kernel, stride, padding):
    rng = np.random.default_rng(13)
    layer = Conv2d(2, 3, kernel, stride=stride, padding=padding, rng=rng)
    randomize_parameters(layer, rng)
    check_gradients(layer, rng.standard_normal((2, 2, 7, 6)), h=AFFINE_STEP)


def test_conv2d_shapes_and_he_init():
    layer = Conv2d(8, 64, 3, rng=np.random.default_rng(0))
    assert layer.W.shape == (64, 8, 3, 3) and layer.b.shape == (1, 64, 1, 1)
    np.testing.assert_allclose(layer.W.std(), np.sqrt(2 / 72), rtol=0.05)
    assert layer.forward(np.zeros((2, 8, 10, 9))).shape == (2, 64, 8, 7)


def test_conv2d_rejects_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2d(1, 2, 0)
    with pytest.raises(ValueError, match="padding"):
        Conv2d(1, 2, 3, padding=-1)
    with pytest.raises(ValueError, match="with 3 along axis 1"):
        Conv2d(3, 2, 3).forward(np.zeros((1, 1, 5, 5)))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        Conv2d(1, 2, 5).forward(np.zeros((1, 1, 4, 8)))


# --- MaxPool2d -------------------------------------------------------------------------------

def naive_maxpool(x, kernel, stride):
    n, c, height, width = x.shape
    out_h, out_w = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    out = np.zeros((n, c, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, :, i * stride:i * stride + kernel, j * stride:j * stride + kernel]
            out[:, :, i, j] = window.max(axis=(2, 3))
    return out


# (kernel, stride, input size): tiles exactly, overlapping windows, leftover rows and columns.
POOL_CASES = [(2, 2, (6, 8)), (3, 2, (7, 6)), (2, 2, (7, 5)), (3, 1, (5, 5))]


@pytest.mark.parametrize("kernel, stride, size", POOL_CASES)
def test_maxpool_forward_matches_naive_loops(kernel, stride, size):
    x = np.random.default_rng(15).standard_normal((2, 3) + size)
    np.testing.assert_array_equal(MaxPool2d(kernel, stride).forward(x),
                                  naive_maxpool(x, kernel, stride))


@pytest.mark.parametrize("kernel, stride, size", POOL_CASES)
def test_maxpool_gradients(kernel, stride, size):
    check_gradients(MaxPool2d(kernel, stride),
                    np.random.default_rng(16).standard_normal((2, 3) + size))


def test_maxpool_routes_a_tie_to_the_first_maximum_only():
    x = np.array([[[[1.0, 3.0], [3.0, 0.0]]]])
    layer = MaxPool2d(2, 2)
    assert layer.forward(x).item() == 3.0
    np.testing.assert_array_equal(layer.backward(np.array([[[[5.0]]]])),
                                  [[[[0.0, 5.0], [0.0, 0.0]]]])


def test_maxpool_rejects_small_or_flat_inputs():
    with pytest.raises(ValueError, match="smaller than the kernel"):
        MaxPool2d(3, 3).forward(np.zeros((1, 1, 2, 5)))
    with pytest.raises(ValueError, match="\\(N, C, H, W\\)"):
        MaxPool2d().forward(np.zeros((4, 4)))


# --- every layer: modes and dtypes -----------------------------------------------------------

def all_layers(dtype):
    rng = np.random.default_rng(17)
    return [(Linear(12, 5, rng=rng, dtype=dtype), (4, 12)), (ReLU(), (4, 3, 2)),
            (BatchNorm1d(5, dtype=dtype), (4, 5)), (BatchNorm2d(3, dtype=dtype), (2, 3, 4, 4)),
            (Dropout(0.5, rng=rng), (4, 6)), (Conv2d(3, 4, 3, padding=1, rng=rng, dtype=dtype),
                                               (2, 3, 5, 5)),
            (MaxPool2d(2, 2), (2, 3, 4, 4)), (MaxPool2d(3, 2), (2, 3, 5, 5)),
            (Flatten(), (2, 3, 2, 2))]


@pytest.mark.parametrize("training", [True, False])
def test_every_layer_preserves_float32(training):
    rng = np.random.default_rng(18)
    for layer, shape in all_layers(np.float32):
        layer.train(training)
        for _, param, _ in layer.named_parameters():
            assert param.dtype == np.float32, layer
        x = rng.standard_normal(shape).astype(np.float32)
        out = layer.forward(x)
        assert out.dtype == np.float32, layer
        assert layer.backward(np.ones_like(out)).dtype == np.float32, layer
        for name, param, grad in layer.named_parameters():
            assert grad.dtype == np.float32 and grad.shape == param.shape, (layer, name)
        for name, buffer in layer.named_buffers():
            assert buffer.dtype == np.float32, (layer, name)


def test_every_layer_follows_the_train_eval_switch():
    for layer, _ in all_layers(np.float64):
        assert isinstance(layer, Layer) and layer.training
        assert layer.eval() is layer and not layer.training
        assert layer.train() is layer and layer.training


def test_layers_reject_non_float_dtypes():
    with pytest.raises(ValueError, match="invalid dtype: int64"):
        Linear(2, 2, dtype=np.int64)


@pytest.mark.parametrize("make", [lambda init, rng: Linear(400, 30, rng=rng, init=init),
                                  lambda init, rng: Conv2d(16, 8, 3, rng=rng, init=init)])
def test_pytorchs_uniform_initialisation_is_bounded_by_one_over_root_fan_in(make):
    layer = make("uniform", np.random.default_rng(0))
    fan_in = layer.W.size // layer.W.shape[-1 if isinstance(layer, Linear) else 0]
    bound = 1 / np.sqrt(fan_in)
    for array in (layer.W, layer.b):
        assert np.abs(array).max() <= bound and np.abs(array).max() > 0.9 * bound
    he = make("he", np.random.default_rng(0))
    assert np.all(he.b == 0) and he.W.std() > 2 * layer.W.std()
    with pytest.raises(ValueError, match="invalid init: 'xavier'"):
        make("xavier", np.random.default_rng(0))
