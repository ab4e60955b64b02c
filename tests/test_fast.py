"""Each optimised operation of fast.py equals its plain twin on random inputs: bitwise, or to
1e-12 in float64 where the order of the sums differs."""
import threading

import numpy as np
import pytest

from conftest import write_dataset
from mnistlab import fast, layers, loss
from mnistlab.dataloader import build_dataloader
from mnistlab.fast import col2im, im2col, prefetched


# --- softmax cross-entropy -------------------------------------------------------------------

@pytest.mark.parametrize("shape, scale", [((7, 3), 1.0), ((100, 10), 30.0), ((1, 5), 1e3)])
def test_class_major_softmax_equals_the_plain_one(shape, scale):
    rng = np.random.default_rng(shape[0])
    logits = scale * rng.standard_normal(shape)
    labels = rng.integers(0, shape[1], shape[0])
    plain_loss, plain_probs = loss.softmax_cross_entropy(logits, labels)
    fast_loss, fast_probs = fast.softmax_cross_entropy(logits, labels)
    assert fast_loss == pytest.approx(plain_loss, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(fast_probs, plain_probs, rtol=1e-12, atol=1e-15)


# --- convolution -----------------------------------------------------------------------------

CONVOLUTIONS = [  # (kernel_size, stride, padding, input shape)
    (3, 1, 1, (2, 3, 7, 6)), (3, 2, 0, (2, 2, 9, 8)), ((2, 3), (2, 1), (1, 0), (3, 2, 6, 7)),
    (1, 1, 0, (2, 4, 3, 3))]


@pytest.mark.parametrize("kernel_size, stride, padding, shape", CONVOLUTIONS)
@pytest.mark.parametrize("needs_input_grad", [True, False])
def test_im2col_convolution_equals_the_plain_one(kernel_size, stride, padding, shape,
                                                 needs_input_grad):
    rng = np.random.default_rng(3)
    plain, quick = (cls(shape[1], 4, kernel_size, stride, padding, rng=np.random.default_rng(1))
                    for cls in (layers.Conv2d, fast.Conv2d))
    plain.b[...] = quick.b[...] = rng.standard_normal(plain.b.shape)
    plain.needs_input_grad = quick.needs_input_grad = needs_input_grad
    x = rng.standard_normal(shape)
    out = plain.forward(x)
    np.testing.assert_allclose(quick.forward(x), out, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx_plain, dx_quick = plain.backward(dout), quick.backward(dout)
    if needs_input_grad:
        np.testing.assert_allclose(dx_quick, dx_plain, rtol=1e-12, atol=1e-12)
    else:
        assert dx_plain is None and dx_quick is None
    np.testing.assert_allclose(quick.grad_W, plain.grad_W, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(quick.grad_b, plain.grad_b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [(1, 1), (2, 3)])
def test_col2im_is_the_adjoint_of_im2col(stride):
    """<im2col(x), c> == <x, col2im(c)> for all x, c: col2im is exactly im2col transposed."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 3, 8, 9))
    cols = im2col(x, (3, 2), stride)
    c = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * col2im(c, x.shape, stride)))



# --- max pooling -----------------------------------------------------------------------------

@pytest.mark.parametrize("kernel_size, stride, shape", [
    (2, 2, (2, 3, 8, 8)), (2, 2, (2, 2, 7, 9)), (3, 2, (2, 3, 9, 7)), (2, 1, (2, 2, 5, 5)),
    ((2, 3), (1, 2), (1, 2, 6, 7))])
def test_block_max_pooling_equals_the_plain_one_ties_included(kernel_size, stride, shape):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, shape).astype(np.float64)   # few values: many ties within windows
    plain, quick = layers.MaxPool2d(kernel_size, stride), fast.MaxPool2d(kernel_size, stride)
    out = plain.forward(x)
    np.testing.assert_array_equal(quick.forward(x), out)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(quick.backward(dout), plain.backward(dout))


def _channel_major(array):
    """The same values as (N, C, H, W) array, laid out channel-major (C, N, H, W) in memory."""
    return np.ascontiguousarray(array.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


@pytest.mark.parametrize("kernel_size, stride, shape", [
    (2, 2, (2, 3, 8, 8)), (2, 2, (2, 2, 7, 9)), (3, 2, (2, 3, 9, 7)), (2, 1, (2, 2, 5, 5))])
def test_max_pooling_of_channel_major_input_equals_the_plain_one(kernel_size, stride, shape):
    rng = np.random.default_rng(6)
    x = _channel_major(rng.integers(0, 3, shape).astype(np.float32))
    plain, quick = layers.MaxPool2d(kernel_size, stride), fast.MaxPool2d(kernel_size, stride)
    out = plain.forward(x)
    np.testing.assert_array_equal(quick.forward(x), out)
    dout = _channel_major(rng.standard_normal(out.shape).astype(np.float32))
    np.testing.assert_array_equal(quick.backward(dout), plain.backward(dout))


# --- batch normalisation on channel-major rows, in-place ReLU ---------------------------------

def test_the_convolution_output_is_channel_major():
    conv = fast.Conv2d(3, 4, 3, padding=1, rng=np.random.default_rng(0))
    out = conv.forward(np.random.default_rng(1).standard_normal((2, 3, 5, 5)))
    assert out.shape == (2, 4, 5, 5) and fast._is_channel_major(out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [np.ascontiguousarray, _channel_major])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(16, 4, 7, 7), (3, 2, 1, 5), (64, 3, 14, 14)])
def test_channel_major_batch_norm_equals_the_plain_one_bitwise(dtype, layout, training, shape):
    rng = np.random.default_rng(9)
    plain, quick = layers.BatchNorm2d(shape[1], dtype=dtype), fast.BatchNorm2d(shape[1],
                                                                               dtype=dtype)
    for layer in (plain, quick):
        layer.gamma[...] = np.linspace(0.5, 2, shape[1]).reshape(layer.gamma.shape)
        layer.beta[...] = np.linspace(-1, 1, shape[1]).reshape(layer.beta.shape)
        layer.running_mean[...] = 0.3
        layer.running_var[...] = 1.7
        layer.train(training)
    for step in range(2):  # the second step sees updated running statistics
        x = layout((3 * rng.standard_normal(shape) + 1).astype(dtype))
        out = quick.forward(x)
        np.testing.assert_array_equal(out, plain.forward(x))
        assert out.dtype == dtype
        assert fast._is_channel_major(out) or layout is np.ascontiguousarray
        dout = layout(rng.standard_normal(shape).astype(dtype))
        np.testing.assert_array_equal(quick.backward(dout), plain.backward(dout))
        for name in ("grad_gamma", "grad_beta", "running_mean", "running_var"):
            np.testing.assert_array_equal(getattr(quick, name), getattr(plain, name))
            assert getattr(quick, name).shape == getattr(plain, name).shape


def test_in_place_relu_equals_the_plain_one_bitwise():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    x[0, 0, 0, :2] = [0.0, -0.0]
    dout = rng.standard_normal(x.shape).astype(np.float32)
    plain, quick = layers.ReLU(), fast.ReLU()
    expected_out, expected_dx = plain.forward(x), plain.backward(dout)
    np.testing.assert_array_equal(quick.forward(x.copy()), expected_out)
    np.testing.assert_array_equal(quick.backward(dout.copy()), expected_dx)


def test_the_fast_cnn_step_equals_the_one_of_plain_layers():
    """The zoo's CNN built of fast layers and the same net of plain layers: equal losses and
    gradients to 1e-12 in float64 (the sums of the products run in another order)."""
    from mnistlab.model import Sequential, build_cnn
    quick = build_cnn(rng=np.random.default_rng(0), dtype=np.float64, channels=(3, 4),
                      hidden=(10,))
    plain_layers = []
    for layer in quick.layers:
        twin = {fast.Conv2d: layers.Conv2d, fast.BatchNorm2d: layers.BatchNorm2d,
                fast.ReLU: layers.ReLU, fast.MaxPool2d: layers.MaxPool2d}.get(type(layer))
        if twin is None:
            plain_layers.append(layer.__class__.__new__(layer.__class__))
            plain_layers[-1].__dict__.update({k: (v.copy() if isinstance(v, np.ndarray) else v)
                                              for k, v in layer.__dict__.items()})
            continue
        copy = twin.__new__(twin)
        copy.__dict__.update({k: (v.copy() if isinstance(v, np.ndarray) else v)
                              for k, v in layer.__dict__.items()})
        plain_layers.append(copy)
    plain = Sequential(plain_layers, input_shape=quick.input_shape)
    rng = np.random.default_rng(1)
    for _ in range(2):
        images, labels = rng.standard_normal((6, 784)), rng.integers(0, 10, 6)
        loss_quick, _ = quick.forward(images, labels)
        loss_plain, _ = plain.forward(images, labels)
        assert loss_quick == pytest.approx(loss_plain, rel=1e-12)
        quick.gradient_computing()
        plain.gradient_computing()
        for (name, _, g_quick), (_, _, g_plain) in zip(quick.named_parameters(),
                                                       plain.named_parameters()):
            np.testing.assert_allclose(g_quick, g_plain, rtol=1e-12, atol=1e-12, err_msg=name)


# --- prefetched batches ----------------------------------------------------------------------

def _epochs(loader, count):
    return [[(x.copy(), y.copy()) for x, y in loader] for _ in range(count)]


@pytest.mark.parametrize("worker", ["thread", "process"])
@pytest.mark.parametrize("prefetch, batch_size, chunk_samples", [
    (1, 8, 512), (2, 8, 20), (5, 7, 16), (2, 30, 16), (2, 90, 512)])
def test_prefetching_yields_the_same_batches_in_the_same_order(tmp_path, monkeypatch, prefetch,
                                                               batch_size, chunk_samples, worker):
    monkeypatch.setattr(fast, "CHUNK_BYTES", 28 * 28 * 8 * chunk_samples)  # float64 images
    folder, _ = write_dataset(tmp_path, num_train=95)

    def loader(depth):
        return build_dataloader(folder, 3, batch_size, shuffle=True, mode="train",
                                val_size=5, rng=np.random.default_rng(7), prefetch=depth,
                                worker=worker)
    plain, ahead = _epochs(loader(0), 3), _epochs(loader(prefetch), 3)
    assert [len(epoch) for epoch in ahead] == [-(-90 // batch_size)] * 3
    for epoch_plain, epoch_ahead in zip(plain, ahead):
        for (x0, y0), (x1, y1) in zip(epoch_plain, epoch_ahead):
            np.testing.assert_array_equal(x0, x1)
            np.testing.assert_array_equal(y0, y1)


class _RecordingDataset:
    """Rows of 4 float64 values (32 bytes) holding their index; records each call's size."""

    def __init__(self):
        self.call_sizes = []

    def __getitem__(self, indices):
        self.call_sizes.append(len(indices))
        return np.repeat(indices[:, None], 4, axis=1).astype(np.float64), indices


def test_the_first_chunk_is_one_batch_and_later_chunks_hold_about_chunk_bytes(monkeypatch):
    monkeypatch.setattr(fast, "CHUNK_BYTES", 32 * 30)        # 30 samples: 3 batches of 10
    dataset = _RecordingDataset()
    batches = np.array_split(np.arange(95), range(10, 95, 10))  # 9 of 10, then 5
    served = list(fast.prefetched_batches(dataset, batches, depth=2))
    assert dataset.call_sizes == [10, 30, 30, 25]
    assert [labels.tolist() for _, labels in served] == [b.tolist() for b in batches]
    assert all((images == labels[:, None]).all() for images, labels in served)


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "batch-prefetch"]


def test_an_error_while_preparing_a_batch_is_raised_at_that_batch():
    def items():
        yield 0
        yield 1
        raise KeyError("sample 2 is broken")

    seen = []
    with pytest.raises(KeyError, match="sample 2 is broken"):
        for item in prefetched(items(), depth=2):
            seen.append(item)
    assert seen == [0, 1]
    assert not _prefetch_threads()


def test_stopping_early_stops_the_background_thread():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    batches = prefetched(items(), depth=2)
    assert [next(batches) for _ in range(3)] == [0, 1, 2]
    batches.close()
    assert not _prefetch_threads()
    assert len(produced) < 10  # it stopped instead of running through the 1000 items


