"""Update rules: how a model's parameters move, given their gradients.

Every optimizer updates the parameters a model reports through `model.named_parameters()`
(see layers.py), in place, and keeps its own state per parameter name, so one optimizer serves
any layer or model and two parameters never share a velocity or a moment. The interface,
the same for every rule:

    opt = make_optimizer('adam', model, learning_rate=0.001)   # or Adam(model, 0.001)
    loss, acc = model.forward(x, y)
    model.gradient_computing()        # the model's backward pass fills every gradient
    opt.step()                        # one update of every parameter, in place

    opt.learning_rate                 read or set between steps (a schedule sets it each epoch)
    opt.step_count                    the number of steps taken so far
    opt.state                         {parameter name: {state name: array}}
    opt.state_dict()                  a flat {key: numpy array} for np.savez(allow_pickle=False)
    opt.load_state_dict(saved)        continue exactly where a saved optimizer stopped

Notation of the formulas in the docstrings: p is a parameter array, g its gradient, lr the
learning rate, t the step count (1 at the first step); every operation is elementwise, and
every state array (v, m, ...) starts at 0 and has p's shape and dtype.
"""
import numpy as np

from .checks import (check_range, format_call, keyword_defaults, lookup,
                    reject_unknown_keywords)


# ---- the shared machinery of every rule ---------------------------------------------------------

class Optimizer:
    """Base class of every update rule: parameter access, weight decay, state and checkpoints.

    A rule subclasses it, validates its own hyper-parameters in `__init__`, names its state
    arrays in `state_names()` and implements `_update(name, param, grad)`: the update of one
    parameter array, in place. `step()` does the rest, identically for every rule.

    Args:
        model: anything with `named_parameters()` yielding (name, param, grad), see layers.py.
        learning_rate: step size, >= 0; settable between steps.
        weight_decay: >= 0. Added to the gradient as L2 regularisation, g = g + wd * p, or,
            for a rule with `decoupled_weight_decay = True`, applied to the parameter before
            its update, p = p - lr * wd * p (Loshchilov & Hutter 2019).

    Attributes:
        state: {parameter name: {state name: array of the parameter's shape and dtype}}.
        step_count: number of steps taken (the t of the bias corrections).
    """

    decoupled_weight_decay = False

    def __init__(self, model, learning_rate, weight_decay=0.0):
        if not callable(getattr(model, "named_parameters", None)):
            raise TypeError(f"model {model!r} has no named_parameters() method; pass a layer or "
                            "model whose named_parameters() yields (name, param, grad)")
        self.model = model
        self.learning_rate = learning_rate
        self.weight_decay = check_range("weight_decay", weight_decay, 0.0)
        self.state = {}
        self.step_count = 0

    @property
    def learning_rate(self):
        """The step size of the next update, >= 0."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = check_range("learning_rate", value, 0.0)

    def hyperparameters(self):
        """{name: value} of the keyword hyper-parameters this rule was built with."""
        names = keyword_defaults(type(self), skip=("model", "learning_rate"))
        return {name: getattr(self, name) for name in names}

    def state_names(self):
        """Names of the state arrays kept per parameter, e.g. ('velocity',)."""
        return ()

    def step(self):
        """Update every parameter of the model in place from its current gradient.

        Every gradient is checked before any parameter changes, so a bad gradient leaves the
        model and the optimizer as they were.

        Raises:
            ValueError: a parameter has no gradient, its gradient has another shape, or two
                parameters share a name.
        """
        parameters = self._parameters_with_gradients()
        self.step_count += 1
        for name, param, grad in parameters:
            if self.weight_decay and self.decoupled_weight_decay:
                param *= 1.0 - self.learning_rate * self.weight_decay
            elif self.weight_decay:
                grad = grad + self.weight_decay * param
            self._update(name, param, grad)

    def _update(self, name, param, grad):
        """Update the array `param` in place from `grad` (same shape and dtype)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _update")

    def _parameters_with_gradients(self):
        """[(name, param, grad)] of the model, grad as an array of param's dtype; checked."""
        checked, seen = [], set()
        for name, param, grad in self.model.named_parameters():
            if name in seen:
                raise ValueError(f"the model reports two parameters named {name!r}; optimizer "
                                 "state is kept per name, so parameter names must be unique")
            seen.add(name)
            if not isinstance(param, np.ndarray) or param.dtype.kind != "f":
                raise TypeError(f"parameter {name!r} must be a float numpy array to be updated "
                                f"in place, got {type(param).__name__}")
            if grad is None:
                raise ValueError(f"parameter {name!r} has no gradient; run the model's backward "
                                 "pass before step()")
            grad = np.asarray(grad)
            if grad.shape != param.shape:
                raise ValueError(f"the gradient of {name!r} has shape {grad.shape} but the "
                                 f"parameter has shape {param.shape}; they must be equal")
            checked.append((name, param, grad.astype(param.dtype, copy=False)))
        return checked

    def _state_array(self, name, key, param):
        """The state array `key` of parameter `name`, created as zeros like `param` if new."""
        slots = self.state.setdefault(name, {})
        if key not in slots:
            slots[key] = np.zeros_like(param)
        elif slots[key].shape != param.shape:
            raise ValueError(f"parameter {name!r} changed shape from {slots[key].shape} to "
                             f"{param.shape}; build a new optimizer for the new parameters")
        return slots[key]

    def _moving_average(self, name, key, param, value, decay):
        """Update the state array `key` in place to decay * average + (1 - decay) * value."""
        average = self._state_array(name, key, param)
        average *= decay
        average += (1.0 - decay) * value
        return average

    # ---- checkpoints ----

    def state_dict(self):
        """Everything needed to continue this optimizer later, as a flat {key: numpy array}.

        Keys: 'rule' (the class name), 'step_count', 'learning_rate', 'hyperparameters/<name>'
        (0-d arrays) and 'state/<parameter name>/<state name>' (copies of the state arrays).
        Every value is a plain numpy array, so `np.savez(file, **opt.state_dict())` works with
        allow_pickle=False.
        """
        saved = {"rule": np.array(type(self).__name__),
                 "step_count": np.array(self.step_count, dtype=np.int64),
                 "learning_rate": np.array(self.learning_rate, dtype=np.float64)}
        for key, value in self.hyperparameters().items():
            saved[f"hyperparameters/{key}"] = np.array(value)
        for name, slots in self.state.items():
            for key, array in slots.items():
                saved[f"state/{name}/{key}"] = array.copy()
        return saved

    def load_state_dict(self, saved):
        """Continue from `saved`, a `state_dict()` of an optimizer of the same rule and model.

        The step count, the learning rate and the state arrays are taken from `saved`; the
        other hyper-parameters must equal this optimizer's. Nothing is loaded unless
        everything matches.

        Args:
            saved: a mapping of key to array, e.g. a dict or the result of np.load(file).

        Raises:
            ValueError: listing every mismatch (rule, missing or unexpected keys, a
                hyper-parameter, a state array's shape or dtype).
        """
        saved = {key: np.asarray(saved[key]) for key in saved}
        problems = self._state_dict_problems(saved)
        if problems:
            raise ValueError("cannot load the optimizer state:\n  " + "\n  ".join(problems))
        self.step_count = int(saved["step_count"])
        self.learning_rate = float(saved["learning_rate"])
        self.state = {}
        for key in self._expected_state_keys(self.step_count):
            _, name, slot = key.split("/")
            self.state.setdefault(name, {})[slot] = saved[key].copy()

    def _expected_state_keys(self, step_count):
        """{'state/<name>/<slot>': parameter} that a state_dict after `step_count` steps holds."""
        if step_count == 0:
            return {}
        return {f"state/{name}/{slot}": param
                for name, param, _ in self.model.named_parameters()
                for slot in self.state_names()}

    def _state_dict_problems(self, saved):
        """Every way `saved` fails to match this optimizer and its model, as phrases."""
        rule = str(saved.get("rule", ""))
        if rule != type(self).__name__:
            return [f"it was saved by {rule or 'an unknown rule'!r}, this optimizer is "
                    f"{type(self).__name__}"]
        step = saved.get("step_count")
        if (step is None or step.shape != () or not np.issubdtype(step.dtype, np.integer)
                or step < 0):
            return [f"step_count must be a non-negative integer scalar, got {step!r}"]
        problems = []
        hyper = {f"hyperparameters/{k}": v for k, v in self.hyperparameters().items()}
        states = self._expected_state_keys(int(step))
        expected = {"rule", "step_count", "learning_rate", *hyper, *states}
        for key in sorted(expected - set(saved)):
            problems.append(f"{key}: missing")
        for key in sorted(set(saved) - expected):
            problems.append(f"{key}: unexpected (this optimizer and model have no such entry)")
        if "learning_rate" in saved:
            try:
                check_range("learning_rate", _scalar(saved["learning_rate"]), 0.0)
            except ValueError as error:
                problems.append(str(error))
        for key, value in hyper.items():
            if key in saved and _scalar(saved[key]) != value:
                problems.append(f"{key}: {_scalar(saved[key])!r} in the saved state, {value!r} "
                                "in this optimizer")
        for key, param in states.items():
            if key in saved and (saved[key].shape, saved[key].dtype) != (param.shape, param.dtype):
                problems.append(f"{key}: saved as {saved[key].dtype} {saved[key].shape}, the "
                                f"parameter is {param.dtype} {param.shape}")
        return problems

    def __repr__(self):
        return format_call(self, ["learning_rate", *self.hyperparameters()])


def _scalar(array):
    """The Python value of a 0-d array, or a phrase describing an array that is not 0-d."""
    return array.item() if array.shape == () else f"an array of shape {array.shape}"


# ---- the rules ----------------------------------------------------------------------------------

def _normalised(numerator, mean_square, eps):
    """numerator / (sqrt(mean_square) + eps): a step scaled by the gradient's recent size."""
    return numerator / (np.sqrt(mean_square) + eps)


class SGD(Optimizer):
    """Mini-batch stochastic gradient descent with momentum, Nesterov momentum, L2 decay.

        g = g + weight_decay * p                      (when weight_decay > 0)
        if momentum == 0:
            p = p - lr * g
        else:
            v = momentum * v - lr * g                 (v starts at 0)
            if nesterov:  p = p + momentum * v - lr * g
            else:         p = p + v

    With momentum = 0 this is plain SGD. The Nesterov step is torch.optim.SGD's with the
    velocity written as v = -lr * buffer (the two agree exactly while lr stays constant).

    Args:
        model: anything with `named_parameters()` yielding (name, param, grad).
        learning_rate: step size, >= 0.
        momentum: in [0, 1); 0 disables momentum (default 0.0).
        nesterov: use Nesterov's look-ahead momentum; needs momentum > 0 (default False).
        weight_decay: L2 coefficient, >= 0 (default 0.0).

    References:
        Robbins & Monro, "A Stochastic Approximation Method", Ann. Math. Stat. 1951.
        Polyak, "Some methods of speeding up the convergence of iteration methods", 1964.
        Sutskever, Martens, Dahl & Hinton, "On the importance of initialization and momentum
        in deep learning", ICML 2013 (Nesterov momentum for deep learning).

    Example:
        >>> opt = SGD(model, learning_rate=0.01, momentum=0.9)
        >>> loss, acc = model.forward(x, y); model.gradient_computing(); opt.step()
    """

    def __init__(self, model, learning_rate, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(model, learning_rate, weight_decay)
        self.momentum = check_range("momentum", momentum, 0.0, 1.0)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise ValueError(f"invalid nesterov: {nesterov!r}; it must be True or False")
        if nesterov and self.momentum == 0.0:
            raise ValueError(f"nesterov=True needs momentum > 0, got momentum={momentum!r}")
        self.nesterov = bool(nesterov)

    def state_names(self):
        return ("velocity",) if self.momentum else ()

    def _update(self, name, param, grad):
        if not self.momentum:
            param -= self.learning_rate * grad
            return
        velocity = self._state_array(name, "velocity", param)
        velocity *= self.momentum
        velocity -= self.learning_rate * grad
        if self.nesterov:
            param += self.momentum * velocity - self.learning_rate * grad
        else:
            param += velocity


class Adam(Optimizer):
    """Adam: steps scaled by running estimates of the gradient's first and second moments.

        g = g + weight_decay * p                      (L2, as torch.optim.Adam)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        m_hat = m / (1 - beta1^t)                     (bias corrections: m, v start at 0)
        v_hat = v / (1 - beta2^t)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)

    Args:
        model: anything with `named_parameters()` yielding (name, param, grad).
        learning_rate: step size, >= 0 (default 0.001).
        beta1: decay of the first-moment average, in [0, 1) (default 0.9).
        beta2: decay of the second-moment average, in [0, 1) (default 0.999).
        eps: >= 0, keeps the division finite (default 1e-8).
        weight_decay: L2 coefficient, >= 0 (default 0.0).

    Reference:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, Algorithm 1.

    Example:
        >>> opt = Adam(model, learning_rate=0.001)
    """

    def __init__(self, model, learning_rate=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
                 weight_decay=0.0):
        super().__init__(model, learning_rate, weight_decay)
        self.beta1 = check_range("beta1", beta1, 0.0, 1.0)
        self.beta2 = check_range("beta2", beta2, 0.0, 1.0)
        self.eps = check_range("eps", eps, 0.0)

    def state_names(self):
        return ("m", "v")

    def _update(self, name, param, grad):
        m = self._moving_average(name, "m", param, grad, self.beta1)
        v = self._moving_average(name, "v", param, grad * grad, self.beta2)
        m_hat = m / (1.0 - self.beta1 ** self.step_count)
        v_hat = v / (1.0 - self.beta2 ** self.step_count)
        param -= self.learning_rate * _normalised(m_hat, v_hat, self.eps)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay, applied to the parameter, not the gradient.

        p = p - lr * weight_decay * p                 (decoupled, before the Adam step)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g^2
        m_hat = m / (1 - beta1^t)
        v_hat = v / (1 - beta2^t)
        p = p - lr * m_hat / (sqrt(v_hat) + eps)

    As torch.optim.AdamW: the decay is scaled by lr, so a schedule scales both together.

    Args:
        model: anything with `named_parameters()` yielding (name, param, grad).
        learning_rate: step size, >= 0 (default 0.001).
        beta1, beta2, eps: as Adam (defaults 0.9, 0.999, 1e-8).
        weight_decay: decoupled decay coefficient, >= 0 (default 0.01).

    Reference:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019, Algorithm 2.

    Example:
        >>> opt = AdamW(model, learning_rate=0.001, weight_decay=0.01)
    """

    decoupled_weight_decay = True

    def __init__(self, model, learning_rate=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
                 weight_decay=0.01):
        super().__init__(model, learning_rate, beta1, beta2, eps, weight_decay)


class Adamax(Adam):
    """Adamax: Adam with the second moment replaced by an exponentially weighted infinity norm.

        g = g + weight_decay * p                      (L2, as torch.optim.Adamax)
        m = beta1 * m + (1 - beta1) * g
        u = max(beta2 * u, |g| + eps)                 (elementwise; u starts at 0)
        p = p - lr / (1 - beta1^t) * m / u

    eps is added inside the max, as torch.optim.Adamax does, so u > 0 even for a zero gradient.

    Args:
        model: anything with `named_parameters()` yielding (name, param, grad).
        learning_rate: step size, >= 0 (default 0.002).
        beta1: decay of the first-moment average, in [0, 1) (default 0.9).
        beta2: decay of the infinity norm, in [0, 1) (default 0.999).
        eps: >= 0 (default 1e-8).
        weight_decay: L2 coefficient, >= 0 (default 0.0).

    Reference:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, section 7.1
        (Algorithm 2).

    Example:
        >>> opt = Adamax(model, learning_rate=0.002)
    """

    def __init__(self, model, learning_rate=0.002, beta1=0.9, beta2=0.999, eps=1e-8,
                 weight_decay=0.0):
        super().__init__(model, learning_rate, beta1, beta2, eps, weight_decay)

    def state_names(self):
        return ("m", "u")

    def _update(self, name, param, grad):
        m = self._moving_average(name, "m", param, grad, self.beta1)
        u = self._state_array(name, "u", param)
        np.maximum(self.beta2 * u, np.abs(grad) + self.eps, out=u)
        param -= (self.learning_rate / (1.0 - self.beta1 ** self.step_count)) * m / u


class Adagrad(Optimizer):
    """Adagrad: each coordinate's step shrinks with the sum of its squared gradients so far.

        g = g + weight_decay * p                      (L2, as torch.optim.Adagrad)
        s = s + g^2                                   (s starts at 0)
        p = p - lr * g / (sqrt(s) + eps)

    Args:
        model: anything with `named_parameters()` yielding (name, param, grad).
        learning_rate: step size, >= 0 (default 0.01).
        eps: >= 0, keeps the division finite (default 1e-10).
        weight_decay: L2 coefficient, >= 0 (default 0.0).

    Reference:
        Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
        Stochastic Optimization", JMLR 12, 2011.

    Example:
        >>> opt = Adagrad(model, learning_rate=0.01)
    """

    def __init__(self, model, learning_rate=0.01, eps=1e-10, weight_decay=0.0):
        super().__init__(model, learning_rate, weight_decay)
        self.eps = check_range("eps", eps, 0.0)

    def state_names(self):
        return ("sum_sq",)

    def _update(self, name, param, grad):
        sum_sq = self._state_array(name, "sum_sq", param)
        sum_sq += grad * grad
        param -= self.learning_rate * _normalised(grad, sum_sq, self.eps)


class RMSProp(Optimizer):
    """RMSProp: steps divided by a running root-mean-square of recent gradients.

        g = g + weight_decay * p                      (L2, as torch.optim.RMSprop)
        s = alpha * s + (1 - alpha) * g^2             (s starts at 0)
        if momentum == 0:
            p = p - lr * g / (sqrt(s) + eps)
        else:
            b = momentum * b + g / (sqrt(s) + eps)    (b starts at 0)
            p = p - lr * b

    eps is added outside the square root, as torch.optim.RMSprop does.

    Args:
        model: anything with `named_parameters()` yielding (name, param, grad).
        learning_rate: step size, >= 0 (default 0.01).
        alpha: decay of the mean square, in [0, 1) (default 0.99).
        eps: >= 0, keeps the division finite (default 1e-8).
        momentum: in [0, 1); 0 disables momentum (default 0.0).
        weight_decay: L2 coefficient, >= 0 (default 0.0).

    Reference:
        Tieleman & Hinton, "Lecture 6.5 - rmsprop: Divide the gradient by a running average of
        its recent magnitude", COURSERA: Neural Networks for Machine Learning, 2012.

    Example:
        >>> opt = RMSProp(model, learning_rate=0.01, alpha=0.99)
    """

    def __init__(self, model, learning_rate=0.01, alpha=0.99, eps=1e-8, momentum=0.0,
                 weight_decay=0.0):
        super().__init__(model, learning_rate, weight_decay)
        self.alpha = check_range("alpha", alpha, 0.0, 1.0)
        self.eps = check_range("eps", eps, 0.0)
        self.momentum = check_range("momentum", momentum, 0.0, 1.0)

    def state_names(self):
        return ("mean_sq", "buffer") if self.momentum else ("mean_sq",)

    def _update(self, name, param, grad):
        mean_sq = self._moving_average(name, "mean_sq", param, grad * grad, self.alpha)
        scaled = _normalised(grad, mean_sq, self.eps)
        if self.momentum:
            buffer = self._state_array(name, "buffer", param)
            buffer *= self.momentum
            buffer += scaled
            scaled = buffer
        param -= self.learning_rate * scaled


# ---- building a rule by name --------------------------------------------------------------------

OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "adagrad": Adagrad,
              "rmsprop": RMSProp, "adamax": Adamax}


def optimizer_hyperparameters(name):
    """{hyper-parameter: default} that the rule `name` takes after `learning_rate`.

    Read from the rule's signature, so a config layer can check its keys against it:

        >>> optimizer_hyperparameters('sgd')
        {'momentum': 0.0, 'nesterov': False, 'weight_decay': 0.0}

    Raises:
        ValueError: `name` is not a key of OPTIMIZERS.
    """
    return keyword_defaults(lookup(OPTIMIZERS, name, "optimizer"),
                            skip=("model", "learning_rate"))


def make_optimizer(name, model, learning_rate, **hyperparameters):
    """Build the rule `name` of OPTIMIZERS for `model`.

    Args:
        name: 'sgd', 'adam', 'adamw', 'adagrad', 'rmsprop' or 'adamax'.
        model: anything with `named_parameters()` yielding (name, param, grad).
        learning_rate: step size, >= 0.
        **hyperparameters: keywords of that rule (see `optimizer_hyperparameters(name)`).

    Raises:
        ValueError: an unknown name or hyper-parameter (suggesting the closest valid one),
            or an invalid hyper-parameter value.

    Example:
        >>> opt = make_optimizer('sgd', model, 0.01, momentum=0.9)
    """
    accepted = optimizer_hyperparameters(name)
    reject_unknown_keywords(hyperparameters, accepted, context=f" for optimizer {name!r}")
    return OPTIMIZERS[name](model, learning_rate, **hyperparameters)
