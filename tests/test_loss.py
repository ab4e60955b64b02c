"""Softmax cross-entropy: exact values, stable for huge logits, and gradients proven numerically."""
import numpy as np
import pytest

from mnistlab.gradcheck import numerical_gradient, relative_error
from mnistlab.loss import (SoftmaxCrossEntropyLoss, accuracy, softmax_cross_entropy,
                  softmax_cross_entropy_backward)


def reference_loss(x, W, b, labels):
    """Cross-entropy written the textbook way (fine for moderate logits)."""
    z = x @ W + b
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return -np.mean(np.log(p[np.arange(len(labels)), labels]))


@pytest.fixture
def layer_and_batch():
    rng = np.random.default_rng(0)
    layer = SoftmaxCrossEntropyLoss(12, 5, rng=rng)
    layer.W = rng.normal(size=(12, 5))
    layer.b = rng.normal(size=(1, 5))
    x = rng.normal(size=(9, 12))
    labels = rng.integers(0, 5, size=9)
    return layer, x, labels


def test_xavier_init_shapes_range_and_zero_bias():
    layer = SoftmaxCrossEntropyLoss(784, 10, rng=np.random.default_rng(0))
    limit = np.sqrt(6 / (784 + 10))
    assert layer.W.shape == (784, 10) and layer.b.shape == (1, 10)
    assert np.abs(layer.W).max() <= limit and np.abs(layer.W).max() > 0.9 * limit
    assert not layer.b.any()


def test_same_rng_seed_gives_same_weights():
    a = SoftmaxCrossEntropyLoss(5, 3, rng=np.random.default_rng(4))
    b = SoftmaxCrossEntropyLoss(5, 3, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a.W, b.W)


def test_forward_gives_mean_cross_entropy_and_accuracy(layer_and_batch):
    layer, x, labels = layer_and_batch
    loss, acc = layer.forward(x, labels)
    assert loss == pytest.approx(reference_loss(x, layer.W, layer.b, labels), rel=1e-12)
    assert acc == np.mean(np.argmax(x @ layer.W + layer.b, axis=1) == labels)


@pytest.mark.parametrize("name", ["W", "b"])
def test_gradients_match_centred_differences(layer_and_batch, name):
    layer, x, labels = layer_and_batch
    layer.forward(x, labels)
    layer.gradient_computing()
    numeric = numerical_gradient(lambda: layer.forward(x, labels)[0], getattr(layer, name))
    analytic = getattr(layer, "grad_" + name)
    assert analytic.shape == getattr(layer, name).shape
    assert relative_error(analytic, numeric) < 1e-7


def test_the_weight_gradient_is_the_plain_product_kept_in_the_weights_layout():
    """W and grad_W are stored column by column for faster products; grad_W is still x^T dL/dz."""
    rng = np.random.default_rng(1)
    layer = SoftmaxCrossEntropyLoss(784, 10, rng=rng)
    x, labels = rng.normal(size=(100, 784)), rng.integers(0, 10, size=100)
    layer.forward(x, labels)
    layer.gradient_computing()
    _, probs = softmax_cross_entropy(x @ layer.W + layer.b, labels)
    plain = x.T @ softmax_cross_entropy_backward(probs, labels)
    np.testing.assert_allclose(layer.grad_W, plain, rtol=0, atol=1e-14 * np.abs(plain).max())
    assert layer.W.flags.f_contiguous and layer.grad_W.flags.f_contiguous


def test_huge_logits_give_finite_loss_and_gradient():
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 1e4]])
    labels = np.array([1, 2])
    loss, probs = softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(5e3)
    grad = softmax_cross_entropy_backward(probs, labels)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-12)


def test_gradient_rows_sum_to_zero():
    rng = np.random.default_rng(1)
    _, probs = softmax_cross_entropy(rng.normal(size=(6, 4)), np.array([0, 1, 2, 3, 0, 1]))
    grad = softmax_cross_entropy_backward(probs, np.array([0, 1, 2, 3, 0, 1]))
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-15)


def test_float32_stays_float32():
    layer = SoftmaxCrossEntropyLoss(6, 3, rng=np.random.default_rng(0), dtype=np.float32)
    x = np.ones((4, 6), dtype=np.float32)
    layer.forward(x, np.array([0, 1, 2, 0]))
    layer.gradient_computing()
    assert layer.W.dtype == layer.grad_W.dtype == layer.grad_b.dtype == np.float32


def test_accuracy_and_predict():
    assert accuracy(np.array([[0, 1.0], [2.0, 1], [0, 3.0]]), np.array([1, 1, 1])) == 2 / 3
    layer = SoftmaxCrossEntropyLoss(2, 2)
    layer.W, layer.b = np.eye(2), np.zeros((1, 2))
    np.testing.assert_array_equal(layer.predict(np.array([[0, 1.0], [3.0, 1]])), [1, 0])


def test_named_parameters_follow_reassignment():
    layer = SoftmaxCrossEntropyLoss(3, 2)
    layer.W = np.full((3, 2), 7.0)
    names = [name for name, _, _ in layer.named_parameters()]
    assert names == ["W", "b"]
    assert layer.parameters_dict()["W"] is layer.W
    layer.trainable = False
    assert list(layer.named_parameters()) == []


# --- margin losses ---------------------------------------------------------------------------

from mnistlab.gradcheck import gradcheck  # noqa: E402
from mnistlab.layers import Linear  # noqa: E402
from mnistlab.loss import (AMSoftmaxHead, RealAMSoftmaxHead, l2_normalise,  # noqa: E402
                           l2_normalise_backward)
from mnistlab.model import Sequential  # noqa: E402


def cosines(features, W):
    f = features / np.linalg.norm(features, axis=1, keepdims=True)
    w = W / np.linalg.norm(W, axis=0, keepdims=True)
    return f @ w


def margin_batch(seed=0, n=9, features=6, classes=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)), rng.integers(0, classes, n)


def test_am_softmax_is_cross_entropy_with_the_margin_on_the_target_cosine():
    features, labels = margin_batch()
    head = AMSoftmaxHead(6, 4, margin=0.3, scale=5.0, rng=np.random.default_rng(1))
    loss, acc = head.forward(features, labels)
    cos = cosines(features, head.W)
    rows = np.arange(len(labels))
    target = np.exp(5.0 * (cos[rows, labels] - 0.3))
    others = np.exp(5.0 * cos).sum(axis=1) - np.exp(5.0 * cos[rows, labels])
    assert loss == pytest.approx(np.mean(-np.log(target / (target + others))), rel=1e-12)
    assert acc == np.mean(cos.argmax(axis=1) == labels)


def test_real_am_softmax_penalises_only_the_classes_inside_the_margin():
    features, labels = margin_batch(seed=2)
    head = RealAMSoftmaxHead(6, 4, margin=0.3, scale=5.0, rng=np.random.default_rng(3))
    loss, _ = head.forward(features, labels)
    cos = cosines(features, head.W)
    rows = np.arange(len(labels))
    gaps = np.maximum(cos - cos[rows, labels][:, None] + 0.3, 0.0)
    gaps[rows, labels] = -np.inf   # the sum runs over j != y
    assert loss == pytest.approx(np.mean(np.log1p(np.exp(5.0 * gaps).sum(axis=1))), rel=1e-12)


def test_a_sample_past_the_margin_for_every_class_gets_no_real_am_gradient():
    head = RealAMSoftmaxHead(2, 3, margin=0.2, scale=10.0)
    head.W = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
    features, labels = np.array([[3.0, 0.1]]), np.array([0])   # cos 0.999 vs -0.999 and 0.03
    head.forward(features, labels)
    assert np.all(head.backward() == 0) and np.all(head.grad_W == 0)
    am = AMSoftmaxHead(2, 3, margin=0.2, scale=10.0)
    am.W = head.W.copy()
    am.forward(features, labels)
    assert np.abs(am.backward()).max() > 0   # AM-Softmax keeps pulling


@pytest.mark.parametrize("axis", [0, 1])
def test_l2_normalise_gives_unit_vectors_and_its_backward_matches_centred_differences(axis):
    rng = np.random.default_rng(6)
    x, d_unit = rng.standard_normal((2, 5, 3))
    unit, norms = l2_normalise(x, axis)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=axis), 1.0, rtol=1e-12)
    numeric = numerical_gradient(lambda: np.sum(d_unit * l2_normalise(x, axis)[0]), x)
    analytic = l2_normalise_backward(d_unit, unit, norms, axis)
    assert relative_error(analytic, numeric) < 1e-8


@pytest.mark.parametrize("head_class", [AMSoftmaxHead, RealAMSoftmaxHead])
def test_margin_heads_pass_the_gradient_check(head_class):
    rng = np.random.default_rng(4)
    model = Sequential([Linear(5, 6, rng=rng)],
                       head=head_class(6, 4, margin=0.25, scale=4.0, rng=rng))
    model.layers[0].needs_input_grad = True
    errors = gradcheck(model, rng.standard_normal((8, 5)), rng.integers(0, 4, 8))
    assert set(errors) == {"0.W", "0.b", "head.W"}


def test_margin_models_predict_by_the_cosine_without_the_margin():
    rng = np.random.default_rng(5)
    head = AMSoftmaxHead(6, 4, margin=0.9, scale=3.0, rng=rng)
    model = Sequential([Linear(5, 6, rng=rng)], head=head)
    X = rng.standard_normal((10, 5))
    cos = cosines(model.features(X), head.W)
    np.testing.assert_array_equal(model.predict(X), cos.argmax(axis=1))
    np.testing.assert_allclose(model.logits(X), 3.0 * cos, rtol=1e-12)


@pytest.mark.parametrize("kwargs, message", [({"margin": -0.1}, "invalid margin"),
                                             ({"scale": 0}, "invalid scale")])
def test_impossible_margins_and_scales_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AMSoftmaxHead(3, 2, **kwargs)
