"""Models: whole-model gradients, parameter and buffer names, train/eval, the registry, the
interface shared with the softmax regression, and learning a toy problem."""
import numpy as np
import pytest

from mnistlab.gradcheck import gradcheck
from mnistlab.layers import BatchNorm1d, BatchNorm2d, Dropout, Flatten, Layer, Linear, ReLU
from mnistlab.loss import SoftmaxCrossEntropyLoss
from mnistlab.model import MODELS, Sequential, build_cnn, build_mlp, build_model
from mnistlab.optimizer import SGD
from test_layers import randomize_parameters

# Whole-model checks differentiate the O(1) loss itself, whose rounding error (about 1e-16 / h
# absolute) swamps the smallest entries of an elementwise comparison, so each parameter array
# is compared as a whole (normwise relative error); a wrong gradient gives errors near 1.
STEP = 1e-5
TOL = 1e-6

# The architectures of the registry at toy widths, built by the same functions.
SMALL_MODELS = {
    "mlp": lambda rng: build_mlp(6, 3, hidden=(5, 4), rng=rng),
    "mlp_bn": lambda rng: build_mlp(6, 3, hidden=(5, 4), batch_norm=True, rng=rng),
    "cnn": lambda rng: build_cnn((1, 8, 8), 3, channels=(2, 3), hidden=(5, 4), rng=rng),
}


def biases_feeding_batchnorm(model):
    """Names of the biases added just before a BatchNorm. BatchNorm subtracts the batch mean,
    and with it any constant added before it, so the loss cannot depend on these biases."""
    return {f"{index}.b" for index, (layer, following) in
            enumerate(zip(model.layers, model.layers[1:]))
            if isinstance(following, (BatchNorm1d, BatchNorm2d)) and "b" in layer.param_names}


def check_model_gradients(model, X, y, count=None):
    """Compare gradient_computing() with centred differences of forward(X, y)'s loss for every
    parameter (all entries, or `count` spread entries of each), normwise (mnistlab.gradcheck);
    a bias feeding a BatchNorm must have a zero gradient on both sides."""
    errors = gradcheck(model, X, y, h=STEP, tol=TOL, max_entries=count)
    assert set(errors) == {name for name, _, _ in model.named_parameters()}
    for name in biases_feeding_batchnorm(model):
        grad = dict((n, g) for n, _, g in model.named_parameters())[name]
        assert np.abs(grad).max() < 1e-12 and errors[name] == 0.0, name


def batch(rng, n, num_input, num_classes):
    return rng.standard_normal((n, num_input)), rng.integers(0, num_classes, n)


# --- gradients -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SMALL_MODELS))
def test_every_parameter_gradient_of_small_models(name):
    rng = np.random.default_rng(0)
    model = SMALL_MODELS[name](rng)
    randomize_parameters(model, rng)   # no zero biases: keeps every ReLU input off its kink
    num_input = 64 if name == "cnn" else 6
    check_model_gradients(model, *batch(rng, 4, num_input, 3))


@pytest.mark.parametrize("name, n", [("mlp", 3), ("mlp_bn", 3), ("cnn", 2)])
def test_gradients_of_the_registered_architectures(name, n):
    rng = np.random.default_rng(1)
    model = build_model(name, rng=rng)
    check_model_gradients(model, *batch(rng, n, 784, 10), count=4)


def test_biases_feeding_batchnorm_get_zero_gradient():
    rng = np.random.default_rng(2)
    model = build_model("cnn", rng=rng)
    assert biases_feeding_batchnorm(model) == {"0.b", "4.b"}
    model.forward(*batch(rng, 2, 784, 10))
    model.gradient_computing()
    grads = {name: grad for name, _, grad in model.named_parameters()}
    assert np.abs(grads["0.b"]).max() < 1e-12 and np.abs(grads["4.b"]).max() < 1e-12
    assert np.abs(grads["0.W"]).max() > 1e-6


# --- the interface of loss.SoftmaxCrossEntropyLoss -------------------------------------------

def test_one_linear_layer_is_the_softmax_regression():
    """Same maths as the assignment's model: equal loss, accuracy and gradients."""
    rng = np.random.default_rng(3)
    reference = SoftmaxCrossEntropyLoss(5, 4, rng=rng)
    model = Sequential([Linear(5, 4, rng=rng)])
    model[0].W[:], model[0].b[:] = reference.W, rng.standard_normal((1, 4))
    reference.b[:] = model[0].b
    X, y = batch(rng, 7, 5, 4)
    assert model.forward(X, y) == pytest.approx(reference.forward(X, y), rel=1e-12)
    model.gradient_computing()
    reference.gradient_computing()
    np.testing.assert_allclose(model[0].grad_W, reference.grad_W, rtol=1e-12)
    np.testing.assert_allclose(model[0].grad_b, reference.grad_b, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), reference.predict(X))


def test_predict_is_the_argmax_of_the_logits():
    rng = np.random.default_rng(4)
    model = SMALL_MODELS["mlp"](rng)
    X, _ = batch(rng, 9, 6, 3)
    logits = model.logits(X)
    assert logits.shape == (9, 3)
    np.testing.assert_array_equal(model.predict(X), logits.argmax(axis=1))


class Probe(Layer):
    """Identity layer remembering its last input."""

    def forward(self, x):
        self.seen = x
        return x

    def backward(self, dout):
        return dout


def test_input_shape_reshapes_each_batch_as_a_view():
    probe = Probe()
    model = Sequential([probe, Flatten(), Linear(16, 3)], input_shape=(1, 4, 4))
    X = np.random.default_rng(5).standard_normal((2, 16))
    model.forward(X, np.array([0, 2]))
    assert probe.seen.shape == (2, 1, 4, 4)
    assert np.shares_memory(probe.seen, X)
    np.testing.assert_array_equal(probe.seen[1, 0, 2], X[1, 8:12])


def test_inputs_are_converted_to_the_parameters_dtype():
    probe = Probe()
    model = Sequential([probe, Linear(6, 3, dtype=np.float32)])
    model.forward(np.ones((2, 6)), np.array([0, 1]))
    assert probe.seen.dtype == np.float32
    assert model.logits(np.ones((2, 6))).dtype == np.float32


@pytest.mark.parametrize("name", ["mlp_bn", "cnn"])
def test_float32_models_compute_in_float32(name):
    rng = np.random.default_rng(6)
    model = build_model(name, rng=rng, dtype=np.float32)
    X, y = batch(rng, 3, 784, 10)
    loss, acc = model.forward(X.astype(np.float32), y)
    model.gradient_computing()
    assert np.isfinite(loss) and 0 <= acc <= 1
    for name_, param, grad in model.named_parameters():
        assert param.dtype == grad.dtype == np.float32, name_
    for name_, buffer in model.named_buffers():
        assert buffer.dtype == np.float32, name_


def _memory_of(array):
    """The array that owns the memory `array` views (itself if it owns it)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def kept_bytes(module):
    """Bytes of the distinct memory held by `module`'s array attributes between its passes,
    its parameters, gradients and buffers aside (several views of one array count once)."""
    own = [array for _, param, grad in module.named_parameters() for array in (param, grad)
           if array is not None] + [buffer for _, buffer in module.named_buffers()]
    own_ids = {id(_memory_of(array)) for array in own}
    kept = {id(_memory_of(value)): _memory_of(value) for value in vars(module).values()
            if isinstance(value, np.ndarray)}
    return sum(array.nbytes for key, array in kept.items() if key not in own_ids)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_no_layer_keeps_more_than_two_copies_of_its_largest_activation(name):
    """What a layer keeps for its backward pass (inputs, masks, normalised activations, the
    convolution's padded input) is at most twice the larger of its input and output."""
    rng = np.random.default_rng(31)
    model = build_model(name, rng=rng, dtype=np.float32)
    X, y = batch(rng, 64, 784, 10)
    X = X.astype(np.float32)
    largest = {}

    def recording(index, forward):
        def forward_and_record(x):
            out = forward(x)
            largest[index] = max(x.nbytes, out.nbytes)
            return out
        return forward_and_record

    if isinstance(model, Sequential):
        layers = model.layers
        for index, layer in enumerate(layers):
            layer.forward = recording(index, layer.forward)
    else:   # softmax regression, a single layer: its largest activation is its input
        layers, largest[0] = [model], X.nbytes
    model.forward(X, y)
    after_forward = [kept_bytes(layer) for layer in layers]
    model.gradient_computing()
    after_backward = [kept_bytes(layer) for layer in layers]
    for index, layer in enumerate(layers):
        assert max(after_forward[index], after_backward[index]) <= 2 * largest[index], \
            (index, layer, after_forward[index], after_backward[index], largest[index])


def test_bad_inputs_are_refused_with_clear_errors():
    model = Sequential([Flatten(), Linear(16, 3)], input_shape=(1, 4, 4))
    good_X = np.zeros((2, 16))
    with pytest.raises(RuntimeError, match="call forward"):
        model.gradient_computing()
    with pytest.raises(ValueError, match="2-D \\(N, D\\)"):
        model.forward(np.zeros(16), np.array([0]))
    with pytest.raises(ValueError, match="15 values but input_shape \\(1, 4, 4\\) needs 16"):
        model.forward(np.zeros((2, 15)), np.array([0, 1]))
    with pytest.raises(ValueError, match="labels must be \\(2,\\) integers"):
        model.forward(good_X, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="labels must lie in \\[0, 3\\)"):
        model.forward(good_X, np.array([0, 3]))
    with pytest.raises(ValueError, match="labels must lie in \\[0, 3\\), got values from -1 to 0"):
        model.forward(good_X, np.array([-1, 0]))
    with pytest.raises(ValueError, match="labels must lie in \\[0, 3\\)"):
        model.forward(good_X, np.array([-128, 2], dtype=np.int8))
    with pytest.raises(ValueError, match="the batch is empty"):
        model.forward(np.zeros((0, 16)), np.array([], dtype=int))
    with pytest.raises(ValueError, match="at least one layer"):
        Sequential([])
    with pytest.raises(ValueError, match="layer 1 of Sequential"):
        Sequential([Linear(2, 2), np.tanh])


# --- parameters, buffers, optimizer ----------------------------------------------------------

EXPECTED_PARAMETERS = {
    "mlp": {"0.W": (784, 512), "0.b": (1, 512), "2.W": (512, 128), "2.b": (1, 128),
            "4.W": (128, 10), "4.b": (1, 10)},
    "mlp_bn": {"0.W": (784, 512), "0.b": (1, 512), "1.gamma": (1, 512), "1.beta": (1, 512),
               "3.W": (512, 128), "3.b": (1, 128), "4.gamma": (1, 128), "4.beta": (1, 128),
               "6.W": (128, 10), "6.b": (1, 10)},
    "cnn": {"0.W": (16, 1, 3, 3), "0.b": (1, 16, 1, 1), "1.gamma": (1, 16, 1, 1),
            "1.beta": (1, 16, 1, 1), "4.W": (32, 16, 3, 3), "4.b": (1, 32, 1, 1),
            "5.gamma": (1, 32, 1, 1), "5.beta": (1, 32, 1, 1), "9.W": (1568, 392),
            "9.b": (1, 392), "11.W": (392, 196), "11.b": (1, 196), "13.W": (196, 10),
            "13.b": (1, 10)},
}
EXPECTED_BUFFERS = {
    "mlp": [],
    "mlp_bn": ["1.running_mean", "1.running_var", "4.running_mean", "4.running_var"],
    "cnn": ["1.running_mean", "1.running_var", "5.running_mean", "5.running_var"],
}


@pytest.mark.parametrize("name", ["mlp", "mlp_bn", "cnn"])
def test_parameters_and_buffers_are_named_by_layer_index(name):
    model = build_model(name, rng=np.random.default_rng(7))
    shapes = {param_name: param.shape for param_name, param, _ in model.named_parameters()}
    assert shapes == EXPECTED_PARAMETERS[name]
    assert list(shapes) == list(EXPECTED_PARAMETERS[name])   # in layer order
    assert [buffer_name for buffer_name, _ in model.named_buffers()] == EXPECTED_BUFFERS[name]
    assert all(grad is None for _, _, grad in model.named_parameters())


@pytest.mark.parametrize("name", ["mlp", "mlp_bn", "cnn"])
def test_an_sgd_step_moves_every_parameter_the_loss_depends_on(name):
    rng = np.random.default_rng(8)
    model = build_model(name, rng=rng)
    before = {param_name: param.copy() for param_name, param, _ in model.named_parameters()}
    model.forward(*batch(rng, 4, 784, 10))
    model.gradient_computing()
    for param_name, param, grad in model.named_parameters():
        assert grad.shape == param.shape, param_name
    SGD(model, learning_rate=0.1).step()
    constant = biases_feeding_batchnorm(model)
    for param_name, param, grad in model.named_parameters():
        step = param - before[param_name]
        np.testing.assert_allclose(step, -0.1 * grad, atol=1e-15)
        if param_name not in constant:
            assert np.abs(step).max() > 0, param_name


def test_a_frozen_model_reports_no_parameters():
    model = build_model("mlp", rng=np.random.default_rng(9))
    model.trainable = False
    assert list(model.named_parameters()) == []
    assert model.parameters_dict() == {}


# --- train / eval ----------------------------------------------------------------------------

def test_train_and_eval_reach_every_layer():
    model = Sequential([Linear(4, 4), BatchNorm1d(4), ReLU(), Dropout(0.5), Linear(4, 2)])
    assert model.eval() is model
    assert not model.training and not any(layer.training for layer in model.layers)
    assert model.train() is model
    assert model.training and all(layer.training for layer in model.layers)
    model.train(False)
    assert not any(layer.training for layer in model.layers)


def test_eval_mode_makes_predictions_independent_of_the_batch():
    rng = np.random.default_rng(10)
    model = Sequential([Linear(6, 8, rng=rng), BatchNorm1d(8), ReLU(), Dropout(0.5, rng=rng),
                        Linear(8, 3, rng=rng)])
    X, y = batch(rng, 10, 6, 3)
    assert not np.allclose(model.logits(X)[:2], model.logits(X[:2]))   # training mode
    buffers = {name: buffer.copy() for name, buffer in model.named_buffers()}
    model.eval()
    np.testing.assert_allclose(model.logits(X)[:2], model.logits(X[:2]))
    np.testing.assert_array_equal(model.logits(X), model.logits(X))
    for name, buffer in model.named_buffers():
        np.testing.assert_array_equal(buffer, buffers[name])


# --- registry --------------------------------------------------------------------------------

def test_registry_names():
    assert set(MODELS) == {"softmax", "mlp", "mlp_bn", "mlp_linear", "cnn"}


def test_softmax_is_the_assignment_model():
    model = build_model("softmax", num_input=20, num_classes=4, dtype=np.float32)
    assert isinstance(model, SoftmaxCrossEntropyLoss)
    assert model.W.shape == (20, 4) and model.W.dtype == np.float32


@pytest.mark.parametrize("name, hint", [("mlp-bn", "did you mean 'mlp_bn'?"),
                                        ("cnns", "did you mean 'cnn'?"),
                                        ("resnet", "Valid: cnn, mlp, mlp_bn, mlp_linear, softmax")])
def test_unknown_model_name_suggests_the_closest(name, hint):
    with pytest.raises(ValueError, match=f"unknown model name '{name}'") as error:
        build_model(name)
    assert hint in str(error.value)


def test_cnn_input_shape_must_match_num_input():
    with pytest.raises(ValueError, match="input_shape \\(1, 28, 28\\) holds 784 values but "
                                         "num_input is 100"):
        build_model("cnn", num_input=100)


def test_repr_lists_the_layers():
    text = repr(build_model("cnn", rng=np.random.default_rng(11)))
    assert text.startswith("Sequential(input_shape=(1, 28, 28)")
    assert "(0): Conv2d(1, 16, kernel_size=(3, 3)" in text
    assert "(9): Linear(1568 -> 392" in text
    assert "(head): softmax cross-entropy" in text


# --- learning --------------------------------------------------------------------------------

def test_a_small_network_learns_a_separable_problem():
    rng = np.random.default_rng(12)
    centres = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    y = rng.integers(0, 3, 150)
    X = centres[y] + 0.5 * rng.standard_normal((150, 2))
    model = Sequential([Linear(2, 16, rng=rng), ReLU(), Linear(16, 3, rng=rng)])
    optimizer = SGD(model, learning_rate=0.1, momentum=0.9)
    first_loss, _ = model.forward(X, y)
    for _ in range(100):
        loss, acc = model.forward(X, y)
        model.gradient_computing()
        optimizer.step()
    assert loss < 0.05 * first_loss
    assert acc == 1.0


def test_the_first_layer_skips_the_input_gradient_nobody_uses():
    rng = np.random.default_rng(0)
    model = build_model("mlp", num_input=6, rng=rng)
    assert [layer.needs_input_grad for layer in model.layers] == [False] + [True] * 4
    x, y = rng.standard_normal((3, 6)), np.array([0, 1, 2])
    model.forward(x, y)
    model.gradient_computing()
    assert model.layers[0].backward(np.ones((3, 512))) is None


# --- nesting ---------------------------------------------------------------------------------

def nested_model(rng):
    block = Sequential([Linear(6, 5, rng=rng), ReLU()])
    inner = Sequential([Linear(5, 4, rng=rng), BatchNorm1d(4), ReLU()])
    return Sequential([block, inner, Linear(4, 3, rng=rng)])


def test_a_sequential_inside_a_sequential_is_a_block_of_layers():
    rng = np.random.default_rng(21)
    model = nested_model(rng)
    assert [name for name, _, _ in model.named_parameters()] == [
        "0.0.W", "0.0.b", "1.0.W", "1.0.b", "1.1.gamma", "1.1.beta", "2.W", "2.b"]
    assert [name for name, _ in model.named_buffers()] == ["1.1.running_mean",
                                                           "1.1.running_var"]
    # only the outermost first layer skips its input gradient; a nested block inside passes it on
    assert model.layers[0].layers[0].needs_input_grad is False
    assert model.layers[1].layers[0].needs_input_grad is True
    flat = Sequential([model.layers[0].layers[0], ReLU(), *model.layers[1].layers, model.layers[2]])
    X = rng.standard_normal((8, 6))
    np.testing.assert_array_equal(model.logits(X), flat.logits(X))
    model.eval()
    assert not model.layers[1].layers[1].training


def test_a_nested_sequential_passes_the_gradient_check():
    rng = np.random.default_rng(22)
    model = nested_model(rng)
    randomize_parameters(model, rng)
    check_model_gradients(model, *batch(rng, 8, 6, 3))


def test_a_nested_sequential_trains():
    rng = np.random.default_rng(23)
    centres = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    y = rng.integers(0, 3, 150)
    X = centres[y] + 0.5 * rng.standard_normal((150, 2))
    model = Sequential([Sequential([Linear(2, 16, rng=rng), ReLU()]), Linear(16, 3, rng=rng)])
    optimizer = SGD(model, learning_rate=0.1, momentum=0.9)
    for _ in range(100):
        loss, acc = model.forward(X, y)
        model.gradient_computing()
        optimizer.step()
    assert acc == 1.0


# --- state copy and restore ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["softmax", "mlp_bn"])
def test_a_model_copies_and_restores_its_own_state(name):
    rng = np.random.default_rng(24)
    model = build_model(name, num_input=12, num_classes=3, rng=rng)
    saved = model.state_dict()
    assert set(saved) == set(model.arrays())
    for key, array in model.arrays().items():
        assert saved[key] is not array
        array += 1.0
    model.load_state_dict(saved)
    for key, array in model.arrays().items():
        np.testing.assert_array_equal(array, saved[key])


def test_a_state_that_does_not_fit_is_refused_whole():
    model = build_model("mlp_bn", num_input=12, num_classes=3, rng=np.random.default_rng(25))
    saved = model.state_dict()
    before = model.state_dict()
    bad = {**{key: value + 1 for key, value in saved.items()},
           "model/0.W": np.zeros((2, 2)), "model/extra": np.zeros(1)}
    del bad["buffer/1.running_var"]
    with pytest.raises(ValueError) as info:
        model.load_state_dict(bad, "snapshot")
    message = str(info.value)
    assert "model/0.W: snapshot has float64 (2, 2)" in message
    assert "model/extra: in the snapshot but not in the model" in message
    assert "buffer/1.running_var: missing from the snapshot" in message
    for key, array in model.arrays().items():
        np.testing.assert_array_equal(array, before[key])


# --- the studies' models ---------------------------------------------------------------------

def test_the_deep_linear_net_has_three_linear_layers_and_nothing_else():
    model = build_model("mlp_linear", rng=np.random.default_rng(30))
    assert [type(layer).__name__ for layer in model.layers] == ["Linear"] * 3
    assert [layer.W.shape for layer in model.layers] == [(784, 512), (512, 128), (128, 10)]


@pytest.mark.parametrize("name, features", [("mlp_bn", 128), ("cnn", 196), ("softmax", 784)])
def test_a_margin_loss_replaces_the_last_linear_layer_by_a_cosine_head(name, features):
    model = build_model(name, rng=np.random.default_rng(31), loss="am_softmax", margin=0.3,
                        scale=20.0)
    assert model.head.W.shape == (features, 10)
    assert (model.head.margin, model.head.scale) == (0.3, 20.0)
    names = [param_name for param_name, _, _ in model.named_parameters()]
    assert names[-1] == "head.W" and names.count("head.W") == 1


def test_an_unknown_loss_suggests_the_closest():
    with pytest.raises(ValueError, match="unknown loss 'am_sofmax'; did you mean 'am_softmax'"):
        build_model("mlp", loss="am_sofmax")
