"""Shared test helpers: small IDX datasets written on the fly, and the repository's folders.

The tests import the installed package (`pip install -e ".[dev]"`), never the checkout by path."""
import gzip
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST_ROOT = os.path.join(ROOT, "data")


def idx_bytes(array, magic):
    """The bytes of an IDX file of unsigned bytes holding `array` (magic 2049 or 2051)."""
    array = np.asarray(array, dtype=np.uint8)
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path, array, magic, compress=None):
    """Write `array` as an IDX file at `path`, gzipped when the name ends in .gz."""
    data = idx_bytes(array, magic)
    compress = path.endswith(".gz") if compress is None else compress
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
        f.write(data)
    return path


def make_separable_images(rng, labels, templates, noise=40):
    """Images (N, side, side) uint8: the template of each label plus pixel noise, easy to
    tell apart for a linear model."""
    noisy = templates[labels] + rng.normal(0, noise, size=(len(labels),) + templates.shape[1:])
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_dataset(folder, num_train=600, num_test=200, num_classes=10, side=28, seed=0,
                  gz=True, dotted=False):
    """A small IDX dataset in MNIST's file layout; returns (folder, arrays dict)."""
    rng = np.random.default_rng(seed)
    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    arrays = {}
    templates = rng.integers(0, 256, size=(num_classes, side, side))
    for prefix, n in (("train", num_train), ("t10k", num_test)):
        labels = rng.integers(0, num_classes, size=n).astype(np.uint8)
        images = make_separable_images(rng, labels, templates)
        arrays[prefix] = (images, labels)
        sep = "." if dotted else "-"
        suffix = ".gz" if gz else ""
        write_idx(os.path.join(folder, f"{prefix}-images{sep}idx3-ubyte{suffix}"), images, 2051)
        write_idx(os.path.join(folder, f"{prefix}-labels{sep}idx1-ubyte{suffix}"), labels, 2049)
    return folder, arrays


@pytest.fixture
def tiny_data(tmp_path):
    """Folder of a small, learnable 10-class dataset: 600 training and 200 test images."""
    folder, _ = write_dataset(tmp_path / "tiny")
    return folder


def tiny_cfg(data_root, **overrides):
    """A cfg for quick runs on `tiny_data` (100 validation samples)."""
    cfg = {"data_root": data_root, "max_epoch": 3, "batch_size": 32, "learning_rate": 0.01,
           "momentum": 0.9, "display_freq": 10, "val_size": 100, "seed": 0}
    cfg.update(overrides)
    return cfg


class CountingDataset:
    """Wraps a loader's dataset and counts the images it prepares."""

    def __init__(self, dataset):
        self.dataset, self.prepared = dataset, 0

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, indices):
        self.prepared += len(indices)
        return self.dataset[indices]
