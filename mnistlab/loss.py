"""Softmax cross-entropy: the maths once, and the assignment's softmax regression model.

For a batch of N logit rows z_i (C classes) and integer labels y_i:

    p_ij = exp(z_ij) / sum_k exp(z_ik)                      (softmax)
    L    = -1/N sum_i log p_{i, y_i}                          (mean cross-entropy)
    dL/dz_ij = (p_ij - [j == y_i]) / N                        (its gradient)

`log p` is computed as z - max(z) - log(sum exp(z - max(z))) (log-sum-exp), so logits of any
size give a finite loss. Every model's loss in this project goes through these functions;
training uses fast.softmax_cross_entropy, the same loss on a faster memory layout.
"""
import numpy as np

from . import fast
from .checks import check_range
from .module import Model, Module


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer labels, and the probabilities.

    Args:
        logits: (N, C) array.
        labels: (N,) integers in [0, C).

    Returns:
        loss: float, the mean cross-entropy.
        probs: (N, C) softmax probabilities, kept for `softmax_cross_entropy_backward`.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(labels)), labels].mean()
    return float(loss), np.exp(log_probs)


def softmax_cross_entropy_backward(probs, labels):
    """Gradient of the mean cross-entropy with respect to the logits.

    Args:
        probs: (N, C) probabilities from `softmax_cross_entropy`.
        labels: (N,) integer labels.

    Returns:
        (N, C) array dL/dz = (probs - one_hot(labels)) / N.
    """
    grad = probs.copy(order="K")
    grad[np.arange(len(labels)), labels] -= 1
    grad /= len(labels)
    return grad


def accuracy(logits, labels):
    """Fraction of rows whose largest logit is at the label: float in [0, 1]."""
    return np.count_nonzero(logits.argmax(axis=1) == labels) / len(labels)


def check_labels(labels, num_samples, num_classes):
    """`labels` as an array, or a ValueError unless they are (N,) integers in [0, C)."""
    labels = np.asarray(labels)
    if labels.shape != (num_samples,) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be ({num_samples},) integers to match the batch, got "
                         f"shape {labels.shape} and dtype {labels.dtype}")
    if not len(labels):
        raise ValueError("the batch is empty: Input and labels need at least one sample")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got values from "
                         f"{labels.min()} to {labels.max()}")
    return labels


class SoftmaxCrossEntropyHead(Module):
    """The loss at the top of a model: softmax cross-entropy on its logits, and the gradient.

    `forward(logits, labels)` returns (loss, accuracy) and keeps what `backward()` needs;
    `backward()` returns dL/dlogits, (N, C); `scores(logits)` are the logits themselves.
    """

    def __init__(self):
        super().__init__()
        self.probs = self.labels = None

    def scores(self, logits):
        """The class scores whose argmax is the prediction: here the logits, (N, C)."""
        return logits

    def forward(self, logits, labels):
        """(loss, acc) of (N, C) logits against (N,) integer labels in [0, C)."""
        labels = check_labels(labels, len(logits), logits.shape[1])
        loss, self.probs = fast.softmax_cross_entropy(logits, labels)
        self.labels = labels
        return loss, accuracy(logits, labels)

    def backward(self):
        """dL/dlogits, (N, C), for the last `forward`."""
        if self.probs is None:
            raise RuntimeError("call forward(Input, labels) before gradient_computing()")
        return softmax_cross_entropy_backward(self.probs, self.labels)


# ---- margin losses on cosine scores -------------------------------------------------------------

def l2_normalise(x, axis):
    """u = x / ||x|| along `axis` (1: each row of an (N, E) batch; 0: each column of W), and
    the norms ||x|| (kept for the backward pass; floored at 1e-12 so a zero vector stays 0)."""
    norms = np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)
    return x / norms, norms


def l2_normalise_backward(d_unit, unit, norms, axis):
    """dL/dx from dL/du for u = l2_normalise(x, axis): (du - u (u . du)) / ||x||, the dot
    product taken along `axis`."""
    return (d_unit - unit * np.sum(unit * d_unit, axis=axis, keepdims=True)) / norms


class AMSoftmaxHead(Module):
    """Additive-margin softmax: a cosine classifier whose target score must win by a margin.

    On features f (N, E) (the last hidden layer of a network, an embedding) and class weights
    W (E, C), both L2-normalised (f per row, W per column):

        cos_ij = f_i . W_j / (||f_i|| ||W_j||)                  (N, C), in [-1, 1]
        z_ij   = s * (cos_ij - m [j == y_i])                     margin on the target only
        L      = mean_i -log softmax(z_i)[y_i]                   (loss.softmax_cross_entropy)

    The margin m is a training device only: a sample is predicted by its largest cosine,
    `scores(f) = s * cos`. Wang, Cheng, Liu & Liu, "Additive Margin Softmax for Face
    Verification", IEEE Signal Processing Letters 2018 (also CosFace).

    Args:
        num_features: E.  num_classes: C.
        margin: m >= 0 (the study used 0.2).  scale: s > 0 (the study used 30).
        rng: numpy Generator for W (Xavier uniform; its norm does not matter).
        dtype: float dtype of W.
    """

    param_names = ("W",)

    def __init__(self, num_features, num_classes, margin=0.2, scale=30.0, rng=None,
                 dtype=np.float64):
        super().__init__()
        self.margin = check_range("margin", margin, 0.0)
        self.scale = check_range("scale", scale, 0.0, low_inclusive=False)
        limit = np.sqrt(6.0 / (num_features + num_classes))
        rng = np.random.default_rng(rng)
        self.W = rng.uniform(-limit, limit, size=(num_features, num_classes)).astype(dtype)
        self.cache = None

    def cosines(self, features):
        """cos (N, C) of every feature row with every class column of W."""
        unit_f, norm_f = l2_normalise(features, axis=1)
        unit_w, norm_w = l2_normalise(self.W, axis=0)
        self.cache = (unit_f, norm_f, unit_w, norm_w)
        return unit_f @ unit_w

    def scores(self, features):
        """s * cos (N, C): the prediction is the class of the largest cosine."""
        return self.scale * self.cosines(features)

    def margin_logits(self, cos, labels):
        """z = s * (cos - m * one_hot(labels)), the logits of the loss."""
        z = self.scale * cos
        z[np.arange(len(labels)), labels] -= self.scale * self.margin
        return z

    def cosine_gradient(self, grad_z):
        """dL/dcos from dL/dz."""
        return self.scale * grad_z

    def forward(self, features, labels):
        """(loss, acc) of features (N, E) against (N,) labels; acc by the largest cosine."""
        labels = check_labels(labels, len(features), self.W.shape[1])
        cos = self.cosines(features)
        self.z = self.margin_logits(cos, labels)
        self.cos = cos
        loss, self.probs = fast.softmax_cross_entropy(self.z, labels)
        self.labels = labels
        return loss, accuracy(cos, labels)

    def backward(self):
        """dL/dfeatures (N, E) for the last `forward`; sets grad_W (E, C)."""
        if self.cache is None:
            raise RuntimeError("call forward(Input, labels) before gradient_computing()")
        unit_f, norm_f, unit_w, norm_w = self.cache
        grad_cos = self.cosine_gradient(softmax_cross_entropy_backward(self.probs, self.labels))
        self.grad_W = l2_normalise_backward(unit_f.T @ grad_cos, unit_w, norm_w, axis=0)
        return l2_normalise_backward(grad_cos @ unit_w.T, unit_f, norm_f, axis=1)

    def __repr__(self):
        return (f"{type(self).__name__}(features={self.W.shape[0]}, classes={self.W.shape[1]},"
                f" margin={self.margin}, scale={self.scale})")


class RealAMSoftmaxHead(AMSoftmaxHead):
    """Real additive-margin softmax: only the classes that break the margin are penalised.

    AM-Softmax's loss is log(1 + sum_{j != y} exp(s (cos_j - cos_y + m))): every class adds
    to it, even one that already trails the target by more than the margin, so training
    never stops pulling. The real version puts the margin term through a hinge,

        L_i = log(1 + sum_{j != y_i} exp(s * max(0, cos_ij - cos_iy + m)))

    so a class beyond the margin adds a constant and no gradient. Written as softmax
    cross-entropy on z with z_iy = 0 and z_ij = s * max(0, cos_ij - cos_iy + m).
    Li, Nai & Wang, "Real Additive Margin Softmax for Speaker Verification", ICASSP 2022.
    """

    def margin_logits(self, cos, labels):
        rows = np.arange(len(labels))
        self.gap = cos - cos[rows, labels][:, None] + self.margin    # cos_j - cos_y + m
        self.gap[rows, labels] = 0.0
        return self.scale * np.maximum(self.gap, 0.0)

    def cosine_gradient(self, grad_z):
        grad_cos = self.scale * grad_z * (self.gap > 0)   # the hinge passes where gap > 0
        rows = np.arange(len(self.labels))
        grad_cos[rows, self.labels] = -grad_cos.sum(axis=1)   # cos_y enters every gap with -1
        return grad_cos


class SoftmaxCrossEntropyLoss(Model):
    """Softmax regression with its loss: y = softmax(W^T x + b), L = CrossEntropy(y, label).

    Args:
        num_input: D, the length of an input vector (784 for MNIST).
        num_output: C, the number of classes.
        trainable: whether optimizers update W and b.
        rng: numpy Generator for the initial weights (a fresh one if None).
        dtype: float dtype of the parameters.

    Attributes:
        W: (D, C) weights, stored column by column (see XavierInit).  b: (1, C) biases.
        grad_W: (D, C), in W's layout, and grad_b: (1, C), set by `gradient_computing()`.
    """

    param_names = ("W", "b")

    def __init__(self, num_input, num_output, trainable=True, rng=None, dtype=np.float64):
        super().__init__(trainable)
        self.num_input = num_input
        self.num_output = num_output
        self.dtype = np.dtype(dtype)
        self.rng = np.random.default_rng(rng)
        self.head = SoftmaxCrossEntropyHead()
        self.XavierInit()

    def XavierInit(self):
        """Glorot/Xavier uniform initialisation: W ~ U(-a, a), a = sqrt(6 / (D + C)); b = 0.

        Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
        networks", AISTATS 2010.
        """
        limit = np.sqrt(6.0 / (self.num_input + self.num_output))
        shape = (self.num_input, self.num_output)
        # Stored column by column (W^T, (C, D), is the contiguous array), and grad_W alike:
        # with C = 10 classes BLAS runs the two products of a batch, x W and x^T dL/dz, about
        # a quarter faster in float32 in that layout (the same speed in float64).
        self.W = np.asfortranarray(self.rng.uniform(-limit, limit, size=shape).astype(self.dtype))
        self.b = np.zeros((1, self.num_output), dtype=self.dtype)
        self.grad_W = np.zeros_like(self.W)
        self.grad_b = np.zeros_like(self.b)

    def logits(self, Input):
        """Class scores z = x W + b: (N, D) -> (N, C); keeps x for `gradient_computing`."""
        self.Input = Input
        scores = Input @ self.W
        scores += self.b
        return scores

    def gradient_computing(self):
        """Set grad_W = x^T dL/dz, (D, C), and grad_b = sum_i dL/dz_i, (1, C), for the last batch."""
        grad_logits = self.head.backward()
        # x^T dL/dz, computed as its transpose (dL/dz)^T x, (C, N) . (N, D), in W's layout
        self.grad_W = (grad_logits.T @ self.Input).T
        self.grad_b = grad_logits.sum(axis=0, keepdims=True)

    def __repr__(self):
        return (f"SoftmaxCrossEntropyLoss(num_input={self.num_input}, "
                f"num_output={self.num_output}, dtype={self.dtype.name})")
