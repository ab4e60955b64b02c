"""The bare producer and the bare and inline consumers of bench/bench_softmax_pipeline.py
do the framework's work: a comparison with other work would measure nothing. (The bench is
a script of the checkout, loaded here by its path; the Solver comes from the installed
package.)"""
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "bench_softmax_pipeline.py"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH.parent))   # it imports bench_floor from its folder
    try:
        spec = importlib.util.spec_from_file_location("bench_softmax_pipeline", BENCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH.parent))
    return module


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_bare_producer_prepares_the_datasets_images(bench, tiny_data, dtype):
    runner = bench.make_runner(dtype, data_root=tiny_data, val_size=100)
    dataset = runner.train_loader.dataset
    batches = list(bench.bare_batches(dataset, np.random.default_rng(3)))
    order = np.random.default_rng(3).permutation(len(dataset))
    images, labels = dataset[order]
    assert [len(y) for _, y in batches] == [100] * 5
    np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), images)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), labels)
    assert batches[0][0].dtype == dtype


# the bare consumer computes the softmax in other passes (to rounding); the inline one
# calls the framework's functions in the framework's order (bitwise)
@pytest.mark.parametrize("consumer, tolerance", [("bare_consumer", 1e-12),
                                                 ("inline_consumer", 0.0)])
def test_the_consumers_take_the_frameworks_steps(bench, tiny_data, consumer, tolerance):
    runner = bench.make_runner("float64", data_root=tiny_data, val_size=100)
    batches, initial_w = list(runner.train_loader), runner.model.W.copy()
    w, b = getattr(bench, consumer)(runner)(batches)
    bench.framework_consumer(runner)(batches)
    assert not np.allclose(w, initial_w)
    np.testing.assert_allclose(w, runner.model.W, rtol=0, atol=tolerance * np.abs(w).max())
    np.testing.assert_allclose(b, runner.model.b, rtol=0, atol=tolerance * np.abs(b).max())


def test_the_inline_consumer_refuses_what_the_framework_refuses(bench, tiny_data):
    runner = bench.make_runner("float64", data_root=tiny_data, val_size=100)
    images, labels = next(iter(runner.train_loader))
    consume = bench.inline_consumer(runner)
    with pytest.raises(ValueError, match="labels must lie in"):
        consume([(images, labels + 10)])
    with pytest.raises(FloatingPointError, match="the loss is nan"):
        consume([(np.full_like(images, np.nan), labels)])
