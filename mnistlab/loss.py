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
from .module import Model


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
    return np.count_nonzero(np.argmax(logits, axis=1) == labels) / len(labels)


class SoftmaxCrossEntropyHead:
    """The loss at the top of every model: softmax cross-entropy on logits, and its gradient.

    `forward(logits, labels)` returns (loss, accuracy) and keeps what `backward()` needs;
    `backward()` returns dL/dlogits, (N, C).
    """

    def __init__(self):
        self.probs = self.labels = None

    def forward(self, logits, labels):
        """(loss, acc) of (N, C) logits against (N,) integer labels in [0, C)."""
        labels = np.asarray(labels)
        if labels.shape != (len(logits),) or labels.dtype.kind not in "iu":
            raise ValueError(f"labels must be ({len(logits)},) integers to match the batch, got "
                             f"shape {labels.shape} and dtype {labels.dtype}")
        if not len(labels):
            raise ValueError("the batch is empty: Input and labels need at least one sample")
        if labels.min() < 0 or labels.max() >= logits.shape[1]:
            raise ValueError(f"labels must lie in [0, {logits.shape[1]}), got values from "
                             f"{labels.min()} to {labels.max()}")
        loss, self.probs = fast.softmax_cross_entropy(logits, labels)
        self.labels = labels
        return loss, accuracy(logits, labels)

    def backward(self):
        """dL/dlogits, (N, C), for the last `forward`."""
        if self.probs is None:
            raise RuntimeError("call forward(Input, labels) before gradient_computing()")
        return softmax_cross_entropy_backward(self.probs, self.labels)


class SoftmaxCrossEntropyLoss(Model):
    """Softmax regression with its loss: y = softmax(W^T x + b), L = CrossEntropy(y, label).

    Args:
        num_input: D, the length of an input vector (784 for MNIST).
        num_output: C, the number of classes.
        trainable: whether optimizers update W and b.
        rng: numpy Generator for the initial weights (a fresh one if None).
        dtype: float dtype of the parameters.

    Attributes:
        W: (D, C) weights.  b: (1, C) biases.
        grad_W: (D, C) and grad_b: (1, C), set by `gradient_computing()`.
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
        self.W = self.rng.uniform(-limit, limit, size=shape).astype(self.dtype)
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
        self.grad_W = self.Input.T @ grad_logits
        self.grad_b = grad_logits.sum(axis=0, keepdims=True)

    def __repr__(self):
        return (f"SoftmaxCrossEntropyLoss(num_input={self.num_input}, "
                f"num_output={self.num_output}, dtype={self.dtype.name})")
