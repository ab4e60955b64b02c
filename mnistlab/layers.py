"""Layers: the building blocks of every model, each a forward/backward pair.

Every layer follows one pattern, in the style of the cs231n layers:

    out = layer.forward(x)      # keeps what backward needs
    dx = layer.backward(dout)   # dout = dL/dout; sets layer.grad_<p> = dL/dp; returns dL/dx

A layer is a `module.Module`: it names its parameters in `param_names` (each `p` held as
`self.p`, its gradient as `self.grad_p`) and its buffers in `buffer_names`, and has a
train/eval mode, which is all an optimizer or a checkpoint needs to know.

The layers below (Linear, ReLU, BatchNorm1d, BatchNorm2d, Dropout, Conv2d, MaxPool2d,
Flatten) are the plain versions, written as their formulas; fast.py holds the optimised
Conv2d and MaxPool2d that the model zoo uses, each proven equal to its plain twin. Every
layer keeps the dtype of its input (float32 in, float32 out) and creates its parameters in
the dtype it is given. Parameters have the shape that broadcasts against the layer's output:
Linear's b is (1, M), Conv2d's b and BatchNorm2d's gamma are (1, C, 1, 1).
"""
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .checks import check_choice, check_count, check_range
from .module import Module


class Layer(Module):
    """Base class of every layer: `forward(x)` and `backward(dout)`, and the Module state.

    Attributes:
        needs_input_grad: when False, `backward` may skip dx and return None; a model
            sets it on its first layer, whose input gradient nobody uses.
    """

    def __init__(self, trainable=True):
        super().__init__(trainable)
        self.needs_input_grad = True

    def forward(self, x):
        """The layer's output for input x; keeps what `backward` needs."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, dout):
        """dL/dx for dout = dL/dout of the last `forward`; sets grad_<p> of every parameter."""
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __repr__(self):
        shapes = ", ".join(f"{name}={getattr(self, name).shape}" for name in self.param_names)
        return f"{type(self).__name__}({shapes})"


# --- argument checks and initialisation, shared by the layers below -------------------------

def _pair(value, name, minimum):
    """(a, b) from an int or a pair of ints, each >= minimum, e.g. kernel_size 3 -> (3, 3)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"invalid {name}: {value!r}; it must be an integer or a pair of them")
    return tuple(check_count(name, v, minimum) for v in pair)


def _float_dtype(dtype):
    """np.dtype(dtype), or ValueError unless it is a floating-point type."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"invalid dtype: {dtype}; use a float type such as np.float32 or "
                         "np.float64")
    return dtype


def _check_input(x, ndim, channels, layer):
    """Raise ValueError unless x has `ndim` dimensions and `channels` entries along axis 1."""
    if x.ndim != ndim or x.shape[1] != channels:
        layout = "(N, D)" if ndim == 2 else "(N, C, H, W)"
        raise ValueError(f"{layer} expects input of shape {layout} with {channels} along axis 1,"
                         f" got shape {x.shape}")


def he_normal(rng, shape, fan_in, dtype):
    """He/Kaiming normal initialisation: an array of `shape` drawn from N(0, 2 / fan_in).

    He et al., "Delving Deep into Rectifiers", ICCV 2015. A ReLU zeroes half of its inputs,
    which halves the second moment of the signal; the factor 2 (where Xavier's scale is about
    1 / fan_in) compensates, so activations keep their variance through a deep ReLU network
    instead of shrinking by half at every layer. Drawn in float64 and then cast, so a float32
    model starts from the rounded weights of the float64 model with the same seed.
    """
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


INITS = ("he", "uniform")


def initial_weights(rng, w_shape, b_shape, fan_in, dtype, init="he"):
    """(W, b) of a Linear or Conv2d layer, initialised by `init`:

        'he':      W ~ N(0, 2 / fan_in) (`he_normal`), b = 0: this framework's default;
        'uniform': W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for
                   nn.Linear and nn.Conv2d (kaiming_uniform_ with a = sqrt(5)), whose
                   weights are sqrt(6) times smaller in spread, for reproducing its results.
    """
    if init == "he":
        return he_normal(rng, w_shape, fan_in, dtype), np.zeros(b_shape, dtype=dtype)
    bound = 1.0 / math.sqrt(fan_in)
    weights = rng.uniform(-bound, bound, size=w_shape).astype(dtype)
    return weights, rng.uniform(-bound, bound, size=b_shape).astype(dtype)


# --- fully connected -------------------------------------------------------------------------

class Linear(Layer):
    """Fully connected layer: out = x W + b.

    Shapes: x (N, D), W (D, M), b (1, M), out (N, M). For dout = dL/dout (N, M):

        dL/dW = x^T dout  (D, M)     dL/db = sum_n dout_n  (1, M)     dL/dx = dout W^T  (N, D)

    W is He-initialised (`he_normal`, fan_in = D) because in these models every hidden Linear
    feeds a ReLU (or a BatchNorm and then a ReLU); b starts at 0. init='uniform' draws
    PyTorch's default instead (`initial_weights`).

    Args:
        num_input: D.  num_output: M.
        rng: numpy Generator for the initial weights (a fresh one if None).
        dtype: float dtype of W and b.
        init: 'he' (default) or 'uniform'.
    """

    param_names = ("W", "b")

    def __init__(self, num_input, num_output, rng=None, dtype=np.float64, init="he"):
        super().__init__()
        self.num_input = check_count("num_input", num_input, 1)
        self.num_output = check_count("num_output", num_output, 1)
        self.W, self.b = initial_weights(
            np.random.default_rng(rng), (self.num_input, self.num_output),
            (1, self.num_output), self.num_input, _float_dtype(dtype),
            check_choice("init", init, INITS))

    def forward(self, x):
        """(N, D) -> (N, M)."""
        _check_input(x, 2, self.num_input, "Linear")
        self.x = x
        out = x @ self.W
        out += self.b
        return out

    def backward(self, dout):
        """dout (N, M) -> dx (N, D); sets grad_W (D, M) and grad_b (1, M)."""
        self.grad_W = self.x.T @ dout
        self.grad_b = dout.sum(axis=0, keepdims=True)
        return dout @ self.W.T if self.needs_input_grad else None

    def __repr__(self):
        return f"Linear({self.num_input} -> {self.num_output}, dtype={self.W.dtype.name})"


class ReLU(Layer):
    """Rectified linear unit, elementwise: out = max(x, 0); dL/dx = dout * [x > 0]. Any shape."""

    def forward(self, x):
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout * self.mask

    def __repr__(self):
        return "ReLU()"


# --- batch normalisation ---------------------------------------------------------------------

class _BatchNorm(Layer):
    """Batch normalisation (Ioffe & Szegedy, ICML 2015), the maths shared by BatchNorm1d/2d.

    Each feature (axis 1 of the input) is normalised over the set S of all its other positions
    (the batch, and also height and width for images); m = |S|. In training mode:

        mu = mean_S x        var = mean_S (x - mu)^2        x_hat = (x - mu) / sqrt(var + eps)
        out = gamma * x_hat + beta
        running_mean = (1 - momentum) * running_mean + momentum * mu
        running_var  = (1 - momentum) * running_var  + momentum * var * m / (m - 1)

    (the running variance is the unbiased estimate, as PyTorch keeps it). In evaluation mode
    mu and var are replaced by running_mean and running_var, so the output of a sample no
    longer depends on the rest of its batch. Backward, with dbeta = sum_S dout and
    dgamma = sum_S dout * x_hat (the parameter gradients):

        training:    dL/dx = gamma / sqrt(var + eps) * (dout - dbeta / m - x_hat * dgamma / m)
        evaluation:  dL/dx = gamma / sqrt(var + eps) * dout

    Subclasses only set `input_ndim`: the statistics are taken over every axis but axis 1.
    gamma, beta and the running statistics have the input's shape with 1 on those axes.
    """

    param_names = ("gamma", "beta")
    buffer_names = ("running_mean", "running_var")
    input_ndim = None

    def __init__(self, num_features, momentum=0.1, eps=1e-5, dtype=np.float64):
        super().__init__()
        self.num_features = check_count("num_features", num_features, 1)
        self.momentum = check_range("momentum", momentum, 0.0, 1.0, high_inclusive=True)
        self.eps = check_range("eps", eps, 0.0, low_inclusive=False)
        dtype = _float_dtype(dtype)
        shape = (1, self.num_features) + (1,) * (self.input_ndim - 2)
        self.axes = (0,) + tuple(range(2, self.input_ndim))
        self.gamma = np.ones(shape, dtype=dtype)
        self.beta = np.zeros(shape, dtype=dtype)
        self.running_mean = np.zeros(shape, dtype=dtype)
        self.running_var = np.ones(shape, dtype=dtype)

    def forward(self, x):
        """x -> out of the same shape; see the class docstring for the formulas."""
        _check_input(x, self.input_ndim, self.num_features, type(self).__name__)
        self.normalized_by_batch = self.training
        if self.training:
            count = x.size // self.num_features
            if count < 2:
                raise ValueError(f"{type(self).__name__} needs more than one value per feature "
                                 f"in training mode, got input of shape {x.shape}; use a larger"
                                 " batch or call eval()")
            mean = x.mean(axis=self.axes, keepdims=True)
            x_hat = x - mean
            var = np.mean(np.square(x_hat), axis=self.axes, keepdims=True)
            self._update_running_stats(mean, var * (count / (count - 1)))
        else:
            mean, var = self.running_mean, self.running_var
            x_hat = x - mean
        self.inv_std = 1 / np.sqrt(var + self.eps)
        x_hat *= self.inv_std
        self.x_hat = x_hat
        out = x_hat * self.gamma
        out += self.beta
        return out

    def _update_running_stats(self, mean, unbiased_var):
        """Exponential moving averages, updated in place (a checkpoint may hold the arrays)."""
        for running, batch_value in ((self.running_mean, mean), (self.running_var, unbiased_var)):
            running *= 1 - self.momentum
            running += self.momentum * batch_value

    def backward(self, dout):
        """dout -> dx, both of the input's shape; sets grad_gamma and grad_beta."""
        self.grad_beta = dout.sum(axis=self.axes, keepdims=True)
        self.grad_gamma = (dout * self.x_hat).sum(axis=self.axes, keepdims=True)
        scale = self.gamma * self.inv_std
        if not self.normalized_by_batch:
            return dout * scale
        count = dout.size // self.num_features
        dx = self.x_hat * (self.grad_gamma / -count)
        dx += dout
        dx -= self.grad_beta / count
        dx *= scale
        return dx

    def __repr__(self):
        return (f"{type(self).__name__}({self.num_features}, momentum={self.momentum}, "
                f"eps={self.eps})")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, D) inputs: per-feature statistics over the batch.

    gamma, beta, running_mean, running_var: (1, D). Formulas in `_BatchNorm`.

    Args:
        num_features: D.
        momentum: weight of the current batch in the running statistics, in [0, 1].
        eps: added to the variance for numerical safety, > 0.
        dtype: float dtype of the parameters and buffers.
    """

    input_ndim = 2


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs: per-channel statistics over N, H and W.

    gamma, beta, running_mean, running_var: (1, C, 1, 1). Same maths and arguments as
    BatchNorm1d (see `_BatchNorm`), with num_features = C.
    """

    input_ndim = 4


# --- dropout ---------------------------------------------------------------------------------

class Dropout(Layer):
    """Inverted dropout (Srivastava et al., JMLR 2014). Any input shape.

    Training: out = x * mask, mask = keep / (1 - p) with keep ~ Bernoulli(1 - p) drawn afresh
    for every element of every batch, so E[out] = x; dL/dx = dout * mask.
    Evaluation: out = x (the 1 / (1 - p) scaling during training is what makes this right).

    Args:
        p: probability of zeroing an element, in [0, 1).
        rng: numpy Generator for the masks (a fresh one if None); seed it to reproduce them.
    """

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = check_range("p", p, 0.0, 1.0)
        self.rng = np.random.default_rng(rng)
        self.mask = None

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self.mask = None
            return x
        self.mask = (self.rng.random(x.shape) >= self.p).astype(x.dtype)
        self.mask /= 1 - self.p
        return x * self.mask

    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask

    def __repr__(self):
        return f"Dropout(p={self.p})"


# --- convolution and pooling -----------------------------------------------------------------

class Conv2d(Layer):
    """2-D convolution (a cross-correlation, as in every deep-learning library).

    Shapes: x (N, C, H, W), W (F, C, kh, kw), b (1, F, 1, 1), out (N, F, Ho, Wo) with
    Ho = (H + 2 ph - kh) // sh + 1 and Wo = (W + 2 pw - kw) // sw + 1. With xp the input
    zero-padded by ph rows and pw columns on each side:

        out[n, f, i, j] = b[f] + sum_{c, u, v} W[f, c, u, v] * xp[n, c, i*sh + u, j*sw + v]

    Written here as that sum, a loop over the kh*kw kernel offsets (u, v), each one product
    over the channels for every sample and position at once; fast.Conv2d computes the same as
    one matrix product (im2col). With dout = dL/dout:

        dL/dW[f, c, u, v] = sum_{n, i, j} dout[n, f, i, j] * xp[n, c, i*sh + u, j*sw + v]
        dL/db[f]          = sum_{n, i, j} dout[n, f, i, j]
        dL/dxp[n, c, i*sh + u, j*sw + v] += sum_f dout[n, f, i, j] * W[f, c, u, v]

    W is He-initialised (fan_in = C*kh*kw) for the ReLU that follows; b starts at 0 (init='uniform':
    PyTorch's default, see `initial_weights`).

    Args:
        in_channels: C.  out_channels: F.
        kernel_size: kh = kw, or a pair (kh, kw).
        stride: >= 1, an int or a pair (sh, sw).
        padding: zeros added on each side, >= 0, an int or a pair (ph, pw).
        rng: numpy Generator for the initial weights (a fresh one if None).
        dtype: float dtype of W and b.
    """

    param_names = ("W", "b")

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, rng=None,
                 dtype=np.float64, init="he"):
        super().__init__()
        self.in_channels = check_count("in_channels", in_channels, 1)
        self.out_channels = check_count("out_channels", out_channels, 1)
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        shape = (self.out_channels, self.in_channels) + self.kernel_size
        self.W, self.b = initial_weights(np.random.default_rng(rng), shape,
                                         (1, self.out_channels, 1, 1), fan_in,
                                         _float_dtype(dtype), check_choice("init", init, INITS))

    def _padded(self, x):
        """x (N, C, H, W) checked and zero-padded by (ph, pw) on each side."""
        _check_input(x, 4, self.in_channels, "Conv2d")
        (ph, pw), (kh, kw) = self.padding, self.kernel_size
        if x.shape[2] + 2 * ph < kh or x.shape[3] + 2 * pw < kw:
            raise ValueError(f"Conv2d input of spatial size {x.shape[2:]} with padding "
                             f"{self.padding} is smaller than the kernel {self.kernel_size}")
        return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x

    def _unpadded(self, dxp):
        """dL/dxp (N, C, H + 2 ph, W + 2 pw) -> dL/dx (N, C, H, W): the padding cut off."""
        (ph, pw), (height, width) = self.padding, dxp.shape[2:]
        return dxp[:, :, ph:height - ph, pw:width - pw]

    def _window_offsets(self, out_h, out_w):
        """[(u, v, rows, cols)]: for each kernel offset, the slices of xp it meets."""
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        return [(u, v, slice(u, u + sh * out_h, sh), slice(v, v + sw * out_w, sw))
                for u in range(kh) for v in range(kw)]

    def forward(self, x):
        """(N, C, H, W) -> (N, F, Ho, Wo)."""
        self.xp = xp = self._padded(x)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        out_h, out_w = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
        out = np.zeros((len(x), self.out_channels, out_h, out_w), dtype=x.dtype)
        for u, v, rows, cols in self._window_offsets(out_h, out_w):
            out += np.einsum("nchw,fc->nfhw", xp[:, :, rows, cols], self.W[:, :, u, v])
        return out + self.b

    def backward(self, dout):
        """dout (N, F, Ho, Wo) -> dx (N, C, H, W); sets grad_W (F, C, kh, kw) and grad_b."""
        xp = self.xp
        self.grad_W = np.zeros_like(self.W)
        self.grad_b = dout.sum(axis=(0, 2, 3)).reshape(self.b.shape)
        dxp = np.zeros_like(xp)
        for u, v, rows, cols in self._window_offsets(*dout.shape[2:]):
            self.grad_W[:, :, u, v] = np.einsum("nfhw,nchw->fc", dout, xp[:, :, rows, cols])
            dxp[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", dout, self.W[:, :, u, v])
        return self._unpadded(dxp) if self.needs_input_grad else None

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size},"
                f" stride={self.stride}, padding={self.padding}, dtype={self.W.dtype.name})")


class MaxPool2d(Layer):
    """Max pooling over kh x kw windows taken every (sh, sw) pixels, channel by channel.

    Shapes: x (N, C, H, W), out (N, C, Ho, Wo), Ho = (H - kh) // sh + 1, Wo likewise.

        out[n, c, i, j] = max_{u, v} x[n, c, i*sh + u, j*sw + v]

    dL/dx routes each dout[n, c, i, j] to the position of its window's maximum (the first one
    in row-major order on a tie, as PyTorch does), adding up where windows overlap.

    Written here with every window as a row of kh*kw entries (`sliding_window_view`), its
    argmax and a scatter back; fast.MaxPool2d does the same on contiguous window blocks.

    Args:
        kernel_size: kh = kw, or a pair (kh, kw).
        stride: an int or a pair (sh, sw).
    """

    def __init__(self, kernel_size=2, stride=2):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)

    def _output_shape(self, x):
        """(N, C, Ho, Wo) for input x, which is checked."""
        if x.ndim != 4:
            raise ValueError(f"MaxPool2d expects input of shape (N, C, H, W), got {x.shape}")
        (kh, kw), (sh, sw), (height, width) = self.kernel_size, self.stride, x.shape[2:]
        if height < kh or width < kw:
            raise ValueError(f"MaxPool2d input of spatial size {x.shape[2:]} is smaller than "
                             f"the kernel {self.kernel_size}")
        return x.shape[:2] + ((height - kh) // sh + 1, (width - kw) // sw + 1)

    def forward(self, x):
        """(N, C, H, W) -> (N, C, Ho, Wo)."""
        out_shape = self._output_shape(x)
        (sh, sw), window_size = self.stride, math.prod(self.kernel_size)
        windows = sliding_window_view(x, self.kernel_size, axis=(2, 3))[:, :, ::sh, ::sw]
        rows = windows.reshape(out_shape + (window_size,))      # (N, C, Ho, Wo, kh*kw)
        self.argmax = rows.argmax(axis=-1)                       # the first maximum on a tie
        self.x_shape = x.shape
        return np.take_along_axis(rows, self.argmax[..., None], axis=-1)[..., 0]

    def backward(self, dout):
        """dout (N, C, Ho, Wo) -> dx (N, C, H, W)."""
        (kh, kw), (sh, sw), (out_h, out_w) = self.kernel_size, self.stride, dout.shape[2:]
        rows = np.zeros(dout.shape + (kh * kw,), dtype=dout.dtype)
        np.put_along_axis(rows, self.argmax[..., None], dout[..., None], axis=-1)
        rows = rows.reshape(dout.shape + (kh, kw))
        dx = np.zeros(self.x_shape, dtype=dout.dtype)
        for u in range(kh):
            for v in range(kw):
                dx[:, :, u:u + sh * out_h:sh, v:v + sw * out_w:sw] += rows[..., u, v]
        return dx

    def __repr__(self):
        return f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride})"


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) (any (N, ...) -> (N, prod(...))); backward reshapes back."""

    def forward(self, x):
        self.x_shape = x.shape
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def backward(self, dout):
        return dout.reshape(self.x_shape)

    def __repr__(self):
        return "Flatten()"
