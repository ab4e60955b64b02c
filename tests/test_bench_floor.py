"""The bare NumPy CNN step of bench/bench_floor.py computes what the model computes: a bound
measured on other arithmetic would bound nothing. (The bench is a script of the checkout,
loaded here by its path; the model comes from the installed package.)"""
import importlib.util
import pathlib

import numpy as np
import pytest

from mnistlab import build_model

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench_floor.py"
MODEL_NAMES = {  # bench_floor.CNN_SHAPES key -> the zoo CNN's parameter name
    "conv1.W": "0.W", "conv1.b": "0.b", "bn1.gamma": "1.gamma", "bn1.beta": "1.beta",
    "conv2.W": "4.W", "conv2.b": "4.b", "bn2.gamma": "5.gamma", "bn2.beta": "5.beta",
    "fc1.W": "9.W", "fc1.b": "9.b", "fc2.W": "11.W", "fc2.b": "11.b",
    "fc3.W": "13.W", "fc3.b": "13.b"}


@pytest.fixture(scope="module")
def bench_floor():
    spec = importlib.util.spec_from_file_location("bench_floor", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bare_cnn_step_gives_the_models_loss_accuracy_and_gradients(bench_floor):
    rng = np.random.default_rng(5)
    model = build_model("cnn", rng=rng, dtype=np.float64).train()
    for _, param, _ in model.named_parameters():   # away from the initial 0 biases, 1 gammas
        param += 0.3 * rng.standard_normal(param.shape)
    images, labels = rng.random((6, 784)), rng.integers(0, 10, 6)
    loss, accuracy = model.forward(images, labels)
    model.gradient_computing()
    params = {name: param for name, param, _ in model.named_parameters()}
    grads = {name: grad for name, _, grad in model.named_parameters()}

    bare_params = {key: params[MODEL_NAMES[key]].reshape(shape).copy()
                   for key, shape in bench_floor.CNN_SHAPES.items()}
    bare_loss, correct, bare_grads = bench_floor.bare_cnn_gradients(
        bare_params, images.reshape(6, 28, 28), labels)

    assert bare_loss == pytest.approx(loss, rel=1e-12)
    assert correct / 6 == accuracy
    assert set(bare_grads) == set(bench_floor.CNN_SHAPES)
    for key, name in MODEL_NAMES.items():
        expected = grads[name].ravel()
        # a convolution's bias feeds a BatchNorm, so its true gradient is 0: both sides hold
        # rounding noise there, compared on the scale of the layer's weight gradient
        scale = np.abs(grads[name.replace(".b", ".W")]).max() if key.startswith("conv") \
            else np.abs(expected).max()
        np.testing.assert_allclose(bare_grads[key].ravel(), expected, rtol=0,
                                   atol=1e-12 * scale, err_msg=key)


def test_the_bare_cnn_epoch_runs_and_gives_seconds(bench_floor):
    seconds = bench_floor.cnn_bare_numpy(batch=4, steps=1, dtype=np.float64)
    assert np.isfinite(seconds) and seconds > 0


def test_the_softmax_epoch_is_the_median_after_the_first_which_is_reported_apart(
        bench_floor, monkeypatch):
    class Run:   # a Solver whose training recorded these epoch times
        history = type("History", (), {"epoch_time": [0.9, 0.2, 0.4, 0.3, 0.1]})()

        def train(self):
            pass
    monkeypatch.setattr(bench_floor, "_quiet_solver", lambda cfg: Run())
    assert bench_floor.softmax_epoch("float64", 5) == (0.25, 0.9)
    rounds = [{"current": {"softmax_float64": 0.25, "softmax_float64_first": 0.9,
                           "softmax_float64_floor": 0.1}}]
    monkeypatch.setattr(bench_floor, "KEYS", ["softmax_float64"])
    row, = bench_floor.summarise(rounds, has_baseline=False, has_busy=False)
    assert row["ratio_floor"][0] == pytest.approx(2.5)
    assert row["first_floor"][0] == pytest.approx(9.0)
