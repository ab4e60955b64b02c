"""What layers and models share, and the interface every model offers.

A `Module` holds named arrays: trainable parameters (named in `param_names`, each `p` with
its gradient `grad_p` after a backward pass) and buffers, state saved with it but never
trained (BatchNorm's running statistics, named in `buffer_names`). Optimizers see nothing but

    for name, param, grad in module.named_parameters():
        ...update `param` in place...

so any optimizer updates any layer or model. A module also has a train/eval mode, and copies
and restores its own arrays (early stopping keeps the best epoch's; checkpoints save them).

A `Model` is a classifier with its loss, the interface the Solver trains:

    loss, acc = model.forward(Input, labels)    # Input (N, D) rows, labels (N,) integers
    model.gradient_computing()                  # every parameter's gradient for that batch
    model.predict(Input)                        # (N,) predicted classes

A layer (layers.py) is a `Module` with `forward(x)` and `backward(dout)` instead.
"""
import numpy as np


class Module:
    """Named parameters and buffers, a train/eval mode, and copies of its state.

    Attributes:
        param_names: names of the trainable arrays, e.g. ('W', 'b').
        buffer_names: names of the non-trainable state arrays saved with the module.
        trainable: when False the module reports no parameters and is never updated.
        training: True in training mode, False in evaluation mode.
    """

    param_names = ()
    buffer_names = ()

    def __init__(self, trainable=True):
        self.trainable = trainable
        self.training = True

    def named_parameters(self):
        """Yield `(name, param, grad)` for every trainable array; grad is None before a
        backward pass."""
        if not self.trainable:
            return
        for name in self.param_names:
            yield name, getattr(self, name), getattr(self, "grad_" + name, None)

    def named_buffers(self):
        """Yield `(name, array)` for every buffer: state to save that no optimizer updates."""
        for name in self.buffer_names:
            yield name, getattr(self, name)

    def parameters_dict(self):
        """The trainable arrays by name: {name: array}."""
        return {name: param for name, param, _ in self.named_parameters()}

    def train(self, mode=True):
        """Switch to training (`mode=True`) or evaluation (`mode=False`) mode."""
        self.training = mode
        return self

    def eval(self):
        """Switch to evaluation mode."""
        return self.train(False)

    # ---- state copy and restore ----

    def arrays(self):
        """{'model/<name>': param, 'buffer/<name>': buffer}: every array of the module, by
        the names checkpoints use (references, not copies)."""
        arrays = {f"model/{name}": param for name, param, _ in self.named_parameters()}
        arrays.update({f"buffer/{name}": buffer for name, buffer in self.named_buffers()})
        return arrays

    def state_dict(self):
        """A copy of every array of the module, keyed as `arrays()`."""
        return {name: array.copy() for name, array in self.arrays().items()}

    def load_state_dict(self, state, what="state"):
        """Copy `state` (keyed as `arrays()`) into the module's arrays in place, all or nothing.

        Raises:
            ValueError: listing every name, shape or dtype that does not match.
        """
        targets = self.arrays()
        problems = state_mismatches(targets, state, what)
        if problems:
            raise ValueError(f"the {what} does not fit the model:\n  " + "\n  ".join(problems))
        for name, target in targets.items():
            target[...] = state[name]


def state_mismatches(expected, saved, what):
    """Every difference in names, shapes and dtypes between two {name: array} dicts."""
    problems = [f"{name}: missing from the {what}" for name in expected if name not in saved]
    problems += [f"{name}: in the {what} but not in the model" for name in saved
                 if name not in expected]
    for name in expected:
        if name in saved:
            want, got = expected[name], np.asarray(saved[name])
            if (got.shape, got.dtype) != (want.shape, want.dtype):
                problems.append(f"{name}: {what} has {got.dtype} {got.shape}, the model "
                                f"{want.dtype} {want.shape}")
    return problems


class Model(Module):
    """A classifier with its loss: computes class scores (`logits`) and its gradients; the
    loss at its top is the `head` (softmax cross-entropy, loss.py).

    A model implements `logits(Input)`, (N, D) -> (N, C), and `gradient_computing()`, which
    sends the head's dL/dlogits back and sets every parameter's gradient.
    """

    head = None

    def logits(self, Input):
        """Class scores: (N, D) -> (N, C), in the current mode."""
        raise NotImplementedError(f"{type(self).__name__} does not implement logits")

    def gradient_computing(self):
        """Set grad_<name> of every parameter for the batch of the last `forward`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement gradient_computing")

    def forward(self, Input, labels):
        """Loss and accuracy of a batch; keeps what `gradient_computing` needs.

        Args:
            Input: (N, D) inputs.
            labels: (N,) integer labels in [0, C).

        Returns:
            (loss, acc): the mean loss and the fraction of correct predictions.
        """
        return self.head.forward(self.logits(Input), labels)

    def predict(self, Input):
        """Predicted class of each row: (N, D) -> (N,) integers, in the current mode."""
        return np.argmax(self.logits(Input), axis=1)
