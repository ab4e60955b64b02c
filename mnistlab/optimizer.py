"""Update rules: how a model's parameters move, given their gradients.

Every rule updates the parameters a model reports through `model.named_parameters()`, in
place, and keeps its own state per parameter name, so one optimizer serves any layer or
model and two parameters never share a velocity or a moment:

    opt = SGD(model, learning_rate=0.01, momentum=0.9)   # or make_optimizer('sgd', ...)
    loss, acc = model.forward(x, y)
    model.gradient_computing()        # the model's backward pass fills every gradient
    opt.step()                        # one update of every parameter, in place

    opt.learning_rate                 read or set between steps (a schedule sets it each epoch)
    opt.step_count                    the number of steps taken so far, t
    opt.state                         {parameter name: {state name: array}}
    opt.state_dict()                  a flat {key: numpy array} for np.savez(allow_pickle=False)
    opt.load_state_dict(saved)        continue where a saved optimizer stopped

A rule is a dataclass: its hyper-parameters are declared once, as fields with their default
and allowed values, and each is checked whenever it is set. Its `update(p, g, state)` is its
formula, one parameter array at a time.

Notation of the formulas: p is a parameter array, g its gradient, lr the learning rate, t the
step count (1 at the first step); every operation is elementwise, and every state array
(v, m, ...) starts at 0 and has p's shape and dtype.
"""
from dataclasses import dataclass, field

import numpy as np

from .checks import (HyperparameterChecks, declared_hyperparameters, hyperparameter, lookup,
                     reject_unknown_keywords, switch)


FLUSH_PERIOD = 32   # steps between two flushes of subnormals (see flush_subnormals)


class NonFiniteGradientError(FloatingPointError):
    """A gradient holds NaN or infinity; no parameter was changed."""


@dataclass(eq=False, repr=False)
class Optimizer(HyperparameterChecks):
    """Base of every update rule: a rule declares its hyper-parameters as fields (weight_decay
    among them), names its state arrays in `state_names()` and writes `update(p, g, state)`.
    Weight decay wd enters the gradient, g = g + wd * p, or with `decoupled_weight_decay` the
    parameter, p = p - lr * wd * p, before the update (Loshchilov & Hutter 2019). A rule
    whose state arrays decay into subnormal floats names them in `flushed_states`; every
    FLUSH_PERIOD steps they and the parameter are flushed (see flush_subnormals)."""

    model: object = field(repr=False)
    learning_rate: float = hyperparameter()
    decoupled_weight_decay = False
    flushed_states = ()               # the state arrays decaying into subnormals, flushed with p
    not_listed = ("learning_rate",)   # hyperparameters() are the rule's others

    def __post_init__(self):
        if not callable(getattr(self.model, "named_parameters", None)):
            raise TypeError(f"{self.model!r} has no named_parameters(): pass a layer or model")
        self.state = {}
        self.step_count = 0

    def state_names(self):
        """Names of the state arrays kept per parameter, e.g. ('velocity',)."""
        return ()

    def update(self, p, g, state):
        """Update the array p in place from its gradient g; `state` holds p's state arrays."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update")

    def step(self):
        """Update every parameter in place; a bad gradient is refused before anything changes."""
        parameters = self._parameters_and_gradients()
        self.step_count += 1
        for name, p, g in parameters:
            if self.weight_decay and self.decoupled_weight_decay:
                p *= 1.0 - self.learning_rate * self.weight_decay
            elif self.weight_decay:
                g = g + self.weight_decay * p
            if name not in self.state:   # the state arrays start at 0
                self.state[name] = {key: np.zeros_like(p) for key in self.state_names()}
            self.update(p, g, self.state[name])
            if self.flushed_states and self.step_count % FLUSH_PERIOD == 0:
                self._flush_subnormals(p, self.state[name])

    def _flush_subnormals(self, p, state):
        """flush_subnormals of p and of its state arrays named in `flushed_states` (for speed
        only: see flush_subnormals)."""
        flush_subnormals(p, *(state[key] for key in self.flushed_states if key in state))

    def _parameters_and_gradients(self):
        """[(name, param, grad)] of the model, grad in param's dtype, or raise naming the
        parameter whose gradient is missing, of the wrong shape, NaN or infinite."""
        checked, seen = [], set()
        for name, p, g in self.model.named_parameters():
            if name in seen:
                raise ValueError(f"two parameters named {name!r}: the state is kept per name")
            if g is None:
                raise ValueError(f"parameter {name!r} has no gradient: run the backward pass first")
            g = np.asarray(g)
            if g.shape != p.shape:
                raise ValueError(f"the gradient of {name!r} has shape {g.shape} but the "
                                 f"parameter has shape {p.shape}")
            if not np.isfinite(g).all():
                raise NonFiniteGradientError(f"the gradient of {name!r} holds NaN or infinity")
            seen.add(name)
            checked.append((name, p, g.astype(p.dtype, copy=False)))
        return checked

    def state_dict(self):
        """A flat {key: numpy array} for np.savez(allow_pickle=False): 'rule', 'step_count',
        'learning_rate', 'hyperparameters/<name>', 'state/<parameter>/<state name>' (copies)."""
        saved = {"rule": np.array(type(self).__name__),
                 "step_count": np.array(self.step_count, dtype=np.int64),
                 "learning_rate": np.array(self.learning_rate, dtype=np.float64)}
        saved.update({f"hyperparameters/{key}": np.array(value)
                      for key, value in self.hyperparameters().items()})
        saved.update({f"state/{name}/{key}": array.copy()
                      for name, slots in self.state.items() for key, array in slots.items()})
        return saved

    def load_state_dict(self, saved):
        """Continue from `saved`, a state_dict() of this rule for this model (checkpoint.py
        checks that it fits before it calls this)."""
        self.step_count = int(saved["step_count"])
        self.learning_rate = float(saved["learning_rate"])
        self.state = {}
        for key in (key for key in saved if key.startswith("state/")):
            name, slot = key[len("state/"):].rsplit("/", 1)   # state/<parameter>/<slot>
            self.state.setdefault(name, {})[slot] = np.array(saved[key])


def flush_subnormals(*states):
    """Set to 0, in place, every entry of the arrays whose magnitude is below the smallest
    normal float of their dtype (np.finfo(dtype).tiny: 1.2e-38 in float32, 2.2e-308 in float64).

    Why: arithmetic on subnormal floats is tens of times slower on x86 CPUs, and two things
    decay into them and get stuck there, slowing every later step:
    - a moment average m = beta * m + (1 - beta) * g whose gradient stays 0 decays by the factor
      beta each step. Rounding beta * m to the nearest subnormal gives m back once m is a few
      units of the last place (0.9 * 4 units = 3.6 units, rounded to 4). On the CNN, whose first
      fully-connected layer reads sparse features (ReLU, then max-pooling), over a quarter of
      that layer's Adam m was subnormal after one epoch;
    - a weight whose input is always 0, under an adaptive rule with L2 decay: its gradient is
      wd * p, and once that is far below eps the step is about lr * wd * p / eps (0.3 p in the
      CNN study's Adam, lr 3e-4, wd 1e-5). After six epochs of that recipe, 22,887 weights of
      the first fully-connected layer were subnormal, and each epoch was slower than the last.

    Every value it changes is below `tiny`, far below the eps (1e-8 by default) that the
    adaptive rules add to a root of their moments and far below any weight that matters, so a
    step changes by a rounding error at most (often not at all), though a long float32 run can
    amplify that like any other rounding difference. Decaying that far takes hundreds of steps
    (0.9^750 takes 1e-4 below float32's `tiny`), so the rules that declare `flushed_states`
    flush those and their parameters every FLUSH_PERIOD steps, not every step: that keeps nearly
    all subnormals away for a small fraction of the passes. The other rules skip it: no
    subnormal appeared in SGD's velocity on these models, Adagrad's sum of squares only grows,
    and ASGD and Rprop were not examined.
    """
    for state in states:
        state[np.abs(state) < np.finfo(state.dtype).tiny] = 0


# ---- the rules ----------------------------------------------------------------------------------

@dataclass(eq=False, repr=False)
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

    momentum: float = hyperparameter(0.0, low=0.0, high=1.0)
    nesterov: bool = switch(False)
    weight_decay: float = hyperparameter(0.0)

    def __post_init__(self):
        super().__post_init__()
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0.0")

    def state_names(self):
        return ("velocity",) if self.momentum else ()

    def update(self, p, g, state):
        if not self.momentum:
            p -= self.learning_rate * g
            return
        v = state["velocity"]
        v *= self.momentum                            # v = momentum * v - lr * g
        v -= self.learning_rate * g
        if self.nesterov:
            p += self.momentum * v - self.learning_rate * g
        else:
            p += v


@dataclass(eq=False, repr=False)
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

    learning_rate: float = hyperparameter(0.001)
    beta1: float = hyperparameter(0.9, low=0.0, high=1.0)
    beta2: float = hyperparameter(0.999, low=0.0, high=1.0)
    eps: float = hyperparameter(1e-8)
    weight_decay: float = hyperparameter(0.0)

    flushed_states = ("m", "v")

    def state_names(self):
        return ("m", "v")

    def update(self, p, g, state):
        m, v, t = state["m"], state["v"], self.step_count
        m *= self.beta1                               # m = beta1 * m + (1 - beta1) * g
        m += (1.0 - self.beta1) * g
        v *= self.beta2                               # v = beta2 * v + (1 - beta2) * g^2
        v += (1.0 - self.beta2) * (g * g)
        m_hat = m / (1.0 - self.beta1 ** t)
        v_hat = v / (1.0 - self.beta2 ** t)
        p -= self.learning_rate * (m_hat / (np.sqrt(v_hat) + self.eps))


@dataclass(eq=False, repr=False)
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

    weight_decay: float = hyperparameter(0.01)
    decoupled_weight_decay = True


@dataclass(eq=False, repr=False)
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

    learning_rate: float = hyperparameter(0.002)

    flushed_states = ("m",)   # not u: with eps = 0 a flushed u would divide 0 by 0

    def state_names(self):
        return ("m", "u")

    def update(self, p, g, state):
        m, u = state["m"], state["u"]
        m *= self.beta1                               # m = beta1 * m + (1 - beta1) * g
        m += (1.0 - self.beta1) * g
        np.maximum(self.beta2 * u, np.abs(g) + self.eps, out=u)
        p -= (self.learning_rate / (1.0 - self.beta1 ** self.step_count)) * m / u


@dataclass(eq=False, repr=False)
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

    learning_rate: float = hyperparameter(0.01)
    eps: float = hyperparameter(1e-10)
    weight_decay: float = hyperparameter(0.0)

    def state_names(self):
        return ("sum_sq",)

    def update(self, p, g, state):
        s = state["sum_sq"]
        s += g * g                                    # s = s + g^2
        p -= self.learning_rate * (g / (np.sqrt(s) + self.eps))


@dataclass(eq=False, repr=False)
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

    learning_rate: float = hyperparameter(0.01)
    alpha: float = hyperparameter(0.99, low=0.0, high=1.0)
    eps: float = hyperparameter(1e-8)
    momentum: float = hyperparameter(0.0, low=0.0, high=1.0)
    weight_decay: float = hyperparameter(0.0)

    flushed_states = ("mean_sq", "buffer")

    def state_names(self):
        return ("mean_sq", "buffer") if self.momentum else ("mean_sq",)

    def update(self, p, g, state):
        s = state["mean_sq"]
        s *= self.alpha                               # s = alpha * s + (1 - alpha) * g^2
        s += (1.0 - self.alpha) * (g * g)
        step = g / (np.sqrt(s) + self.eps)
        if self.momentum:
            b = state["buffer"]
            b *= self.momentum                        # b = momentum * b + g / (sqrt(s) + eps)
            b += step
            step = b
        p -= self.learning_rate * step


@dataclass(eq=False, repr=False)
class ASGD(Optimizer):
    """Averaged SGD, as torch.optim.ASGD: SGD with a decaying step and a running average of
    the iterates.

        g = g + weight_decay * p                      (L2)
        eta = lr / (1 + lambd * lr * (t - 1))^alpha   (the step size of step t; eta_1 = lr)
        mu = 1 / max(1, t - 1 - t0)                   (the averaging weight of step t)
        p = p * (1 - lambd * eta)
        p = p - eta * g
        ax = ax + mu * (p - ax)                       (ax = p while mu = 1, i.e. until t0)

    The average `ax` is kept in the state, and, as in PyTorch, the model trains and is
    evaluated with p itself; `averaged_parameters()` gives ax for evaluating with the
    average instead. With the default t0 = 1e6 the averaging starts after a million steps,
    so on MNIST this is SGD with the slowly decaying step eta and a decay lambd * eta of p.
    eta and mu are functions of t, so a resumed run continues exactly.

    Args:
        model: anything with `named_parameters()` yielding (name, param, grad).
        learning_rate: lr, >= 0 (default 0.01).
        lambd: decay term, >= 0 (default 1e-4).
        alpha: power of the step-size decay, >= 0 (default 0.75).
        t0: the step from which the average starts, >= 0 (default 1e6).
        weight_decay: L2 coefficient, >= 0 (default 0.0).

    Reference:
        Polyak & Juditsky, "Acceleration of stochastic approximation by averaging", SIAM J.
        Control Optim. 30(4), 1992.
    """

    learning_rate: float = hyperparameter(0.01)
    lambd: float = hyperparameter(1e-4)
    alpha: float = hyperparameter(0.75)
    t0: float = hyperparameter(1e6)
    weight_decay: float = hyperparameter(0.0)

    def state_names(self):
        return ("ax",)

    def update(self, p, g, state):
        t, lr = self.step_count, self.learning_rate
        eta = lr / (1.0 + self.lambd * lr * (t - 1)) ** self.alpha
        mu = 1.0 / max(1.0, t - 1 - self.t0)
        p *= 1.0 - self.lambd * eta
        p -= eta * g
        ax = state["ax"]
        ax += mu * (p - ax)

    def averaged_parameters(self):
        """{parameter name: ax}, the running averages (copies), to evaluate a model with."""
        return {name: slots["ax"].copy() for name, slots in self.state.items()}


@dataclass(eq=False, repr=False)
class Rprop(Optimizer):
    """Rprop, as torch.optim.Rprop: each weight moves by its own step size, against the sign
    of its gradient; the step grows while the sign holds and shrinks when it flips.

        step starts at lr; g_prev starts at 0
        if g * g_prev > 0:  step = min(step * eta_plus, step_size_max)
        if g * g_prev < 0:  step = max(step * eta_minus, step_size_min); g = 0 (no move)
        p = p - sign(g) * step
        g_prev = g

    PyTorch's etas = (eta_minus, eta_plus) and step_sizes = (step_size_min, step_size_max).
    The gradient's size is ignored, only its sign counts, which suits full batches: on small
    mini-batches the signs are noisy and Rprop hardly converges.

    Args:
        model: anything with `named_parameters()` yielding (name, param, grad).
        learning_rate: the initial step size, >= 0 (default 0.01).
        eta_minus: factor after a sign change, in (0, 1] (default 0.5).
        eta_plus: factor while the sign holds, >= 1 (default 1.2).
        step_size_min, step_size_max: bounds of the step size (defaults 1e-6, 50).

    Reference:
        Riedmiller & Braun, "A direct adaptive method for faster backpropagation learning:
        the RPROP algorithm", IEEE ICNN 1993.
    """

    learning_rate: float = hyperparameter(0.01)
    eta_minus: float = hyperparameter(0.5, low=0.0, high=1.0, low_inclusive=False,
                                      high_inclusive=True)
    eta_plus: float = hyperparameter(1.2, low=1.0)
    step_size_min: float = hyperparameter(1e-6)
    step_size_max: float = hyperparameter(50.0)
    weight_decay = 0.0   # PyTorch's Rprop has none

    def state_names(self):
        return ("step_size", "prev_grad")

    def update(self, p, g, state):
        step, prev = state["step_size"], state["prev_grad"]
        if self.step_count == 1:
            step[...] = self.learning_rate
        agree = g * prev
        step[agree > 0] *= self.eta_plus
        step[agree < 0] *= self.eta_minus
        np.clip(step, self.step_size_min, self.step_size_max, out=step)
        g = np.where(agree < 0, 0.0, g).astype(p.dtype, copy=False)
        p -= np.sign(g) * step
        prev[...] = g


# ---- building a rule by name --------------------------------------------------------------------

OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "adagrad": Adagrad,
              "rmsprop": RMSProp, "adamax": Adamax, "asgd": ASGD, "rprop": Rprop}


def optimizer_hyperparameters(name):
    """{hyper-parameter: default} that the rule `name` declares beside the learning rate:

        >>> optimizer_hyperparameters('sgd')
        {'momentum': 0.0, 'nesterov': False, 'weight_decay': 0.0}

    Raises:
        ValueError: `name` is not a key of OPTIMIZERS.
    """
    return declared_hyperparameters(lookup(OPTIMIZERS, name, "optimizer"),
                                    skip=("learning_rate",))


def make_optimizer(name, model, learning_rate, **hyperparameters):
    """Build the rule `name` of OPTIMIZERS for `model`.

    Args:
        name: a key of OPTIMIZERS: 'sgd', 'adam', 'adamw', 'adagrad', 'rmsprop', 'adamax',
            'asgd' or 'rprop'.
        model: anything with `named_parameters()` yielding (name, param, grad).
        learning_rate: step size, >= 0.
        **hyperparameters: keywords of that rule (see `optimizer_hyperparameters(name)`).

    Raises:
        ValueError: an unknown name or hyper-parameter (suggesting the closest valid one),
            or an invalid hyper-parameter value.

    Example:
        >>> opt = make_optimizer('sgd', model, 0.01, momentum=0.9)
    """
    reject_unknown_keywords(hyperparameters, optimizer_hyperparameters(name),
                            context=f" for optimizer {name!r}")
    return OPTIMIZERS[name](model, learning_rate, **hyperparameters)
