"""Multi-layer models: a `Sequential` stack of layers topped by a softmax cross-entropy head,
and `build_model`, which makes any model of the registry `MODELS` by name.

Every model here is a `module.Model`, as the assignment's `loss.SoftmaxCrossEntropyLoss` is,
so the solver and the optimizers treat softmax regression and a deep network alike:

    loss, acc = model.forward(Input, labels)    # Input (N, D) rows, labels (N,)
    model.gradient_computing()                  # sets every parameter's gradient
    for name, param, grad in model.named_parameters(): ...

The head's maths (softmax, cross-entropy and its gradient) is the one in loss.py. The zoo
builds its convolutional net from fast.py's Conv2d, BatchNorm2d, ReLU (in place) and
MaxPool2d, each proven equal to its plain twin in tests/test_fast.py.
"""
import math

import numpy as np

from . import fast
from .checks import check_count, lookup
from .layers import BatchNorm1d, Flatten, Layer, Linear, ReLU
from .loss import (AMSoftmaxHead, RealAMSoftmaxHead, SoftmaxCrossEntropyHead,
                   SoftmaxCrossEntropyLoss)
from .module import Model


class Sequential(Model):
    """Layers applied in order, then softmax cross-entropy on the last layer's output.

    For input rows x (N, D) and labels y (N,):

        z = layer_K(... layer_1(x))                 logits, (N, C)
        L = mean_n -log softmax(z_n)[y_n]           (loss.softmax_cross_entropy)

    and `gradient_computing` sends dL/dz = (softmax(z) - one_hot(y)) / N back through the
    layers in reverse order, each setting its parameters' gradients.

    A Sequential may be one of the layers of another: it then acts as the block of its own
    layers (`forward_layers`, `backward`), its head unused, and its parameters are named
    '<index>.<its own name>', e.g. '0.2.W'.

    Args:
        layers: the layers, e.g. [Linear(784, 128), ReLU(), Linear(128, 10)]; each a
            layers.Layer or a Sequential.
        input_shape: shape of one sample as the first layer wants it, e.g. (1, 28, 28) for a
            convolutional net; each (N, D) batch is then reshaped (as a view) to
            (N,) + input_shape, and D must equal prod(input_shape). None keeps (N, D) rows.
        head: the loss on the last layer's output: loss.SoftmaxCrossEntropyHead (default) on
            logits, or a margin head (loss.AMSoftmaxHead, RealAMSoftmaxHead) on an embedding;
            its parameters are named 'head.<name>'.

    Attributes:
        layers: the list of layers.
        trainable: when False the model reports no parameters and is never updated.
        training: the mode last set by `train()` / `eval()` (the layers follow it).
        dtype: the parameters' dtype; inputs are converted to it (no copy when it already
            matches), so a float32 model computes in float32 whatever the data's dtype.
    """

    def __init__(self, layers, input_shape=None, head=None):
        super().__init__()
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("Sequential needs at least one layer, got an empty list")
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, (Layer, Sequential)):
                raise ValueError(f"layer {index} of Sequential is {layer!r}: every layer must be"
                                 " a layers.Layer (forward(x), backward(dout)) or a Sequential")
            layer.needs_input_grad = index > 0  # the data's gradient is never used
        self.input_shape = None
        if input_shape is not None:
            self.input_shape = tuple(check_count("input_shape entry", size, 1)
                                     for size in input_shape)
        self.head = SoftmaxCrossEntropyHead() if head is None else head
        self.dtype = next((param.dtype for _, param, _ in self.named_parameters()), None)

    @property
    def needs_input_grad(self):
        """Whether `backward` returns dL/dx, as a layer's flag (that of the first layer)."""
        return self.layers[0].needs_input_grad

    @needs_input_grad.setter
    def needs_input_grad(self, value):
        self.layers[0].needs_input_grad = value

    def _prepare(self, Input):
        """(N, D) rows -> the first layer's input: converted to `dtype`, reshaped to input_shape."""
        Input = np.asarray(Input)
        if Input.ndim != 2:
            raise ValueError(f"Input must be a 2-D (N, D) array of rows, got shape {Input.shape}")
        if self.dtype is not None:
            Input = Input.astype(self.dtype, copy=False)
        if self.input_shape is None:
            return Input
        if Input.shape[1] != math.prod(self.input_shape):
            raise ValueError(f"Input rows have {Input.shape[1]} values but input_shape "
                             f"{self.input_shape} needs {math.prod(self.input_shape)}")
        return Input.reshape((len(Input),) + self.input_shape)

    def features(self, Input):
        """The last layer's output for (N, D) rows, in the current mode: the logits under the
        softmax cross-entropy head, the embedding under a margin head."""
        return self.forward_layers(self._prepare(Input))

    def logits(self, Input):
        """Class scores: (N, D) -> (N, C), computed in the current mode (train or eval)."""
        return self.head.scores(self.features(Input))

    def forward(self, Input, labels):
        """(loss, acc) of a batch, Input (N, D) and labels (N,)."""
        return self.head.forward(self.features(Input), labels)

    def forward_layers(self, x):
        """x through every layer in order (a nested Sequential through its own layers)."""
        for layer in self.layers:
            x = layer.forward_layers(x) if isinstance(layer, Sequential) else layer.forward(x)
        return x

    def backward(self, dout):
        """dout = dL/d(last layer's output) back through every layer; returns dL/dx (None when
        the first layer skips it). Every layer sets grad_<name> of its parameters."""
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def gradient_computing(self):
        """Backpropagate the last `forward`'s loss: every layer sets grad_<name> for its params."""
        self.backward(self.head.backward())

    def named_parameters(self):
        """Yield `(name, param, grad)` for every layer's parameters, named '<index>.<name>'."""
        if not self.trainable:
            return
        for index, layer in enumerate(self.layers):
            for name, param, grad in layer.named_parameters():
                yield f"{index}.{name}", param, grad
        for name, param, grad in self.head.named_parameters():
            yield f"head.{name}", param, grad

    def named_buffers(self):
        """Yield `(name, array)` for every layer's buffers, named '<index>.<name>'."""
        for index, layer in enumerate(self.layers):
            for name, buffer in layer.named_buffers():
                yield f"{index}.{name}", buffer

    def train(self, mode=True):
        """Set training (`mode=True`) or evaluation mode on the model and every layer."""
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __repr__(self):
        lines = [f"  ({index}): {layer!r}".replace("\n", "\n  ")
                 for index, layer in enumerate(self.layers)]
        head = self.head
        lines.append("  (head): " + ("softmax cross-entropy"
                                    if isinstance(head, SoftmaxCrossEntropyHead) else repr(head)))
        shape = "" if self.input_shape is None else f"input_shape={self.input_shape}"
        return f"Sequential({shape}\n" + "\n".join(lines) + "\n)"


# --- the model zoo ---------------------------------------------------------------------------

def _dense_stack(sizes, batch_norm, rng, dtype, activation=True, init="he"):
    """Linear layers sizes[0] -> sizes[1] -> ... -> sizes[-1], each hidden one followed by
    [BatchNorm1d and] ReLU (nothing when not `activation`); the last Linear gives the logits."""
    layers = []
    for num_input, num_output in zip(sizes[:-2], sizes[1:-1]):
        layers.append(Linear(num_input, num_output, rng=rng, dtype=dtype, init=init))
        if batch_norm:
            layers.append(BatchNorm1d(num_output, dtype=dtype))
        if activation:
            layers.append(ReLU())
    layers.append(Linear(sizes[-2], sizes[-1], rng=rng, dtype=dtype, init=init))
    return layers


def build_mlp(num_input=784, num_classes=10, hidden=(512, 128), batch_norm=False, rng=None,
              dtype=np.float64, activation=True, init="he"):
    """Fully connected net num_input -> hidden... -> num_classes, ReLU after every hidden
    Linear, with BatchNorm1d between the Linear and its ReLU when `batch_norm`. With
    `activation=False` no ReLU at all: a product of linear maps, itself a linear model."""
    sizes = (num_input,) + tuple(hidden) + (num_classes,)
    return Sequential(_dense_stack(sizes, batch_norm, rng, dtype, activation, init))


def build_cnn(input_shape=(1, 28, 28), num_classes=10, channels=(16, 32), hidden=(392, 196),
              rng=None, dtype=np.float64, init="he"):
    """Convolutional net: for each entry c of `channels`, conv3x3-c (padding 1), BatchNorm2d,
    ReLU, 2x2 max pooling; then Flatten and the fully connected layers
    flat -> hidden... -> num_classes with ReLUs. With the defaults on (1, 28, 28) images:
    16 x 14 x 14, then 32 x 7 x 7 = 1568 features, then 392 -> 196 -> 10."""
    in_channels, height, width = input_shape
    layers = []
    for out_channels in channels:
        layers += [fast.Conv2d(in_channels, out_channels, 3, padding=1, rng=rng, dtype=dtype,
                               init=init),
                   fast.BatchNorm2d(out_channels, dtype=dtype), fast.ReLU(),
                   fast.MaxPool2d(2, 2)]
        in_channels, height, width = out_channels, height // 2, width // 2
    if height < 1 or width < 1:
        raise ValueError(f"input_shape {tuple(input_shape)} is too small for "
                         f"{len(channels)} poolings by 2")
    sizes = (in_channels * height * width,) + tuple(hidden) + (num_classes,)
    layers += [Flatten()] + _dense_stack(sizes, False, rng, dtype, init=init)
    return Sequential(layers, input_shape=input_shape)


def _softmax(num_input, num_classes, rng, dtype, input_shape, init):
    return SoftmaxCrossEntropyLoss(num_input, num_classes, rng=rng, dtype=dtype)


def _mlp(num_input, num_classes, rng, dtype, input_shape, init):
    return build_mlp(num_input, num_classes, rng=rng, dtype=dtype, init=init)


def _mlp_bn(num_input, num_classes, rng, dtype, input_shape, init):
    return build_mlp(num_input, num_classes, batch_norm=True, rng=rng, dtype=dtype, init=init)


def _mlp_linear(num_input, num_classes, rng, dtype, input_shape, init):
    return build_mlp(num_input, num_classes, activation=False, rng=rng, dtype=dtype, init=init)


def _cnn(num_input, num_classes, rng, dtype, input_shape, init):
    if math.prod(input_shape) != num_input:
        raise ValueError(f"input_shape {tuple(input_shape)} holds {math.prod(input_shape)} "
                         f"values but num_input is {num_input}; make them agree")
    return build_cnn(input_shape, num_classes, rng=rng, dtype=dtype, init=init)


MODELS = {
    "softmax": _softmax,         # the assignment's softmax regression, SoftmaxCrossEntropyLoss
    "mlp": _mlp,                 # 784-512-128-10, ReLU
    "mlp_bn": _mlp_bn,           # the same with BatchNorm1d before each ReLU
    "mlp_linear": _mlp_linear,   # 784-512-128-10 with no activation: a deep *linear* model
    "cnn": _cnn,                 # (conv3x3, BN, ReLU, maxpool) x 2 (16, 32 channels), 1568-392-196-10
}
# The loss at the top of a model: cross-entropy on logits, or a margin head on an embedding.
LOSSES = {"cross_entropy": None, "am_softmax": AMSoftmaxHead,
          "real_am_softmax": RealAMSoftmaxHead}


def build_model(name, num_input=784, num_classes=10, rng=None, dtype=np.float64,
                input_shape=(1, 28, 28), loss="cross_entropy", margin=0.2, scale=30.0,
                init="he"):
    """The model registered in `MODELS` under `name`, freshly initialised.

    Args:
        name: one of MODELS: 'softmax', 'mlp', 'mlp_bn', 'mlp_linear', 'cnn'.
        num_input: D, the length of an input row.
        num_classes: C.
        rng: numpy Generator drawing every initial weight (a fresh one if None).
        dtype: float dtype of the parameters (and of the computation).
        input_shape: (C, H, W) of one image, used by 'cnn' only; prod must equal num_input.
        loss: 'cross_entropy', or a margin loss of LOSSES, 'am_softmax' or 'real_am_softmax':
            the margin head then replaces the last Linear layer and classifies the features
            of the layer before it (the embedding: 128 values for the MLPs, 196 for the
            CNN, the pixels themselves for 'softmax').
        margin, scale: m and s of a margin loss.
        init: the initial weights of the Linear and Conv2d layers: 'he' (this framework's)
            or 'uniform' (PyTorch's default, layers.initial_weights); the softmax model keeps
            the assignment's Xavier initialisation.

    Returns:
        A module.Model.

    Raises:
        ValueError: unknown name or loss, suggesting the closest valid one.
    """
    builder = lookup(MODELS, name, "model name")
    head_class = lookup(LOSSES, loss, "loss")
    rng = np.random.default_rng(rng)
    model = builder(num_input, num_classes, rng, dtype, input_shape, init)
    if head_class is None:
        return model
    if isinstance(model, SoftmaxCrossEntropyLoss):   # the pixels are the embedding
        layers, num_features, shape = [Flatten()], num_input, None
    else:
        layers, num_features, shape = model.layers[:-1], model.layers[-1].W.shape[0], \
            model.input_shape
    head = head_class(num_features, num_classes, margin, scale, rng=rng, dtype=dtype)
    return Sequential(layers, input_shape=shape, head=head)
