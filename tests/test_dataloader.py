"""The data pipeline: MNIST's splits, every sample once per epoch, batch shapes, preprocessing,
(prefetching is tested beside its plain twin, in test_fast.py)."""
import numpy as np
import pytest

from mnistlab import data_home
from conftest import MNIST_ROOT, ROOT, CountingDataset, write_dataset
from mnistlab.dataloader import (DataNotFoundError, Dataloader, Dataset, IterationBatchSampler,
                                 build_dataloader, preprocess)
from mnistlab.idx import IDXError


def test_mnist_split_sizes():
    sizes = {mode: len(Dataset(MNIST_ROOT, mode)) for mode in ("train", "val", "test")}
    assert sizes == {"train": 55000, "val": 5000, "test": 10000}


def test_train_and_val_are_the_two_ends_of_the_training_file(tmp_path):
    folder, arrays = write_dataset(tmp_path, num_train=50)
    images, labels = arrays["train"]
    train, val = Dataset(folder, "train", val_size=10), Dataset(folder, "val", val_size=10)
    np.testing.assert_array_equal(train.images, images[:40].reshape(40, -1))
    np.testing.assert_array_equal(val.images, images[40:].reshape(10, -1))
    np.testing.assert_array_equal(np.concatenate([train.labels, val.labels]), labels)


def test_test_split_is_the_t10k_file(tmp_path):
    folder, arrays = write_dataset(tmp_path, num_test=30)
    test = Dataset(folder, "test")
    np.testing.assert_array_equal(test.labels, arrays["t10k"][1])


@pytest.mark.parametrize("gz, dotted", [(False, False), (True, False), (False, True), (True, True)])
def test_every_file_spelling_is_accepted(tmp_path, gz, dotted):
    folder, arrays = write_dataset(tmp_path, num_train=20, gz=gz, dotted=dotted)
    assert len(Dataset(folder, "val", val_size=5)) == 5


def test_items_are_preprocessed_the_assignments_way(tmp_path):
    folder, arrays = write_dataset(tmp_path, num_train=20)
    ds = Dataset(folder, "train", val_size=5)
    image, label = ds[3]
    pixels = arrays["train"][0][3].reshape(-1) / 255.0
    assert image.shape == (784,) and isinstance(label, int)
    np.testing.assert_allclose(image, pixels - pixels.mean(), atol=1e-12)
    assert label == arrays["train"][1][3]


def test_a_batch_of_indices_equals_the_items_one_by_one(tmp_path):
    folder, _ = write_dataset(tmp_path, num_train=20)
    ds = Dataset(folder, "train", val_size=5)
    indices = np.array([4, 0, 9, 4])
    images, labels = ds[indices]
    assert images.shape == (4, 784) and labels.shape == (4,)
    for row, i in enumerate(indices):
        np.testing.assert_array_equal(images[row], ds[i][0])
        assert labels[row] == ds[i][1]


def test_preprocessing_options_and_dtype():
    pixels = np.array([[0, 255, 51, 102]], dtype=np.uint8)
    np.testing.assert_allclose(preprocess(pixels, np.float64, "scale"), [[0, 1, 0.2, 0.4]])
    centred = preprocess(pixels, np.float32, "center")
    assert centred.dtype == np.float32
    np.testing.assert_allclose(centred, [[-0.4, 0.6, -0.2, 0.0]], atol=1e-6)


@pytest.mark.parametrize("n, batch_size", [(100, 10), (103, 10), (7, 7), (5, 8), (9, 1)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_sampler_covers_every_index_once_per_epoch(n, batch_size, shuffle):
    sampler = IterationBatchSampler(range(n), 2, batch_size, shuffle, rng=np.random.default_rng(0))
    for _ in range(2):
        sampler.prepare_epoch_indices()
        batches = list(sampler)
        assert len(batches) == len(sampler) == -(-n // batch_size)
        assert all(len(b) == batch_size for b in batches[:-1])
        np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(n))
        if not shuffle:
            np.testing.assert_array_equal(np.concatenate(batches), np.arange(n))


def test_shuffling_differs_between_epochs_and_follows_the_rng():
    def two_epochs(seed):
        sampler = IterationBatchSampler(range(50), 2, 50, rng=np.random.default_rng(seed))
        orders = []
        for _ in range(2):
            sampler.prepare_epoch_indices()
            orders.append(next(iter(sampler)).copy())
        return orders
    first, second = two_epochs(3)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(two_epochs(3)[1], second)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "8", True])
def test_sampler_rejects_impossible_batch_sizes(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        IterationBatchSampler(range(5), 1, batch_size)


def test_loader_yields_batches_and_prepares_every_epoch(tmp_path):
    folder, _ = write_dataset(tmp_path, num_train=45)
    loader = build_dataloader(folder, 2, 8, shuffle=True, mode="train", val_size=5,
                              rng=np.random.default_rng(0))
    assert isinstance(loader, Dataloader) and len(loader) == 5
    for _ in range(2):
        batches = list(loader)
        assert [x.shape for x, _ in batches] == [(8, 784)] * 5
        assert sum(len(y) for _, y in batches) == 40
    shapes = [x.shape for x, _ in build_dataloader(folder, 1, 16, mode="train", val_size=5)]
    assert shapes == [(16, 784), (16, 784), (8, 784)]


def test_missing_folder_lists_every_path_and_points_at_the_data_found(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # whose ./data holds MNIST
    with pytest.raises(DataNotFoundError) as info:
        Dataset(str(tmp_path / "nowhere"))
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "train-images.idx3-ubyte" in message
    assert "does not exist" in message and f"MNIST is in {MNIST_ROOT}" in message


def test_missing_folder_with_no_data_anywhere_gives_the_download_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNISTLAB_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(data_home, "checkout_data_dir", lambda: None)
    with pytest.raises(DataNotFoundError, match="python -m mnistlab.download"):
        Dataset(str(tmp_path / "nowhere"))


def test_no_data_root_finds_the_data(monkeypatch):
    monkeypatch.chdir(ROOT)  # whose ./data holds MNIST
    dataset = Dataset(None, "val")
    assert dataset.data_root == MNIST_ROOT and len(dataset) == 5000


def test_images_and_labels_of_different_counts(tmp_path):
    folder, _ = write_dataset(tmp_path, num_train=20)
    other, _ = write_dataset(tmp_path / "other", num_train=21)
    import shutil
    shutil.copy(f"{other}/train-labels-idx1-ubyte.gz", f"{folder}/train-labels-idx1-ubyte.gz")
    with pytest.raises(IDXError, match="20 images but .* 21 labels"):
        Dataset(folder, val_size=5)


def test_labels_outside_num_classes(tmp_path):
    folder, _ = write_dataset(tmp_path, num_train=40, num_classes=10)
    with pytest.raises(IDXError, match="num_classes"):
        Dataset(folder, "train", num_classes=3, val_size=5)


def test_impossible_mode_and_val_size(tmp_path):
    folder, _ = write_dataset(tmp_path, num_train=20)
    with pytest.raises(ValueError, match="invalid mode: 'valid'"):
        Dataset(folder, "valid")
    with pytest.raises(ValueError, match="val_size=20"):
        Dataset(folder, "train", val_size=20)


def test_num_classes_can_be_read_from_the_labels(tmp_path):
    folder, arrays = write_dataset(tmp_path, num_train=60, num_classes=4)
    assert Dataset(folder, "train", num_classes=None, val_size=5).num_classes == 4


@pytest.mark.parametrize("prefetch", [-1, 1.5, True, "2"])
def test_impossible_prefetch_depths(tmp_path, prefetch):
    folder, _ = write_dataset(tmp_path, num_train=20)
    with pytest.raises(ValueError, match="invalid prefetch: .* whole number >= 0"):
        build_dataloader(folder, 1, 4, mode="train", val_size=5, prefetch=prefetch)


# --- beyond the assignment: [-1, 1] inputs, a random validation split, dropping the last batch

def test_normalize_maps_pixels_to_minus_one_to_one():
    images = np.array([[0, 255, 51]], dtype=np.uint8)
    np.testing.assert_allclose(preprocess(images, method="normalize"), [[-1.0, 1.0, -0.6]],
                               rtol=1e-12)


def test_a_random_validation_split_is_disjoint_complete_and_fixed_by_its_seed(tmp_path):
    folder, arrays = write_dataset(tmp_path, num_train=60)

    def split(mode, seed):
        return Dataset(folder, mode, val_size=15, val_split="random", split_seed=seed,
                       preprocessing="scale")
    train, val = split("train", 7), split("val", 7)
    assert (len(train), len(val)) == (45, 15)
    rows = {tuple(row) for row in train.images} | {tuple(row) for row in val.images}
    all_rows = {tuple(row) for row in arrays["train"][0].reshape(60, -1)}
    assert rows == all_rows and len(all_rows) == 60        # every image, once
    np.testing.assert_array_equal(split("val", 7).images, val.images)
    assert not np.array_equal(split("val", 8).images, val.images)
    assert not np.array_equal(val.images, Dataset(folder, "val", val_size=15).images)


def test_a_random_split_needs_its_seed(tmp_path):
    folder, _ = write_dataset(tmp_path, num_train=20)
    with pytest.raises(ValueError, match="needs a split_seed"):
        Dataset(folder, "val", val_size=5, val_split="random")


@pytest.mark.parametrize("drop_last, lengths", [(False, [16, 16, 8]), (True, [16, 16])])
def test_drop_last_leaves_out_the_smaller_last_batch(tmp_path, drop_last, lengths):
    folder, _ = write_dataset(tmp_path, num_train=45)
    loader = build_dataloader(folder, 1, 16, shuffle=True, mode="train", val_size=5,
                              rng=np.random.default_rng(0), drop_last=drop_last)
    assert [len(labels) for _, labels in loader] == lengths and len(loader) == len(lengths)


@pytest.mark.parametrize("val_split", ["last", "random"])
def test_no_split_copies_the_training_images(tmp_path, val_split):
    """Both splits read the one cached array of the training file: 'last' as slices of it,
    'random' through row indices; every batch is the split's own rows, preprocessed."""
    folder, arrays = write_dataset(tmp_path, num_train=60)
    file_rows = arrays["train"][0].reshape(60, -1)
    train, val = (Dataset(folder, mode, val_size=15, val_split=val_split, split_seed=3)
                  for mode in ("train", "val"))
    from mnistlab.dataloader import load_idx_split
    cached = load_idx_split(folder, "train")[0]
    for dataset in (train, val):
        assert np.shares_memory(dataset._source, cached)
        assert dataset.num_features == 784
        indices = np.array([4, 0, 9, 4])
        images, labels = dataset[indices]
        split_rows = dataset.images[indices]
        np.testing.assert_array_equal(images, preprocess(split_rows, np.float64, "center"))
        assert all(any((row == file_row).all() for file_row in file_rows) for row in split_rows)
        np.testing.assert_array_equal(labels, dataset.labels[indices])


def kept_loader(tmp_path, cache_bytes, prefetch=0):
    folder, _ = write_dataset(tmp_path, num_train=45)
    dataset = CountingDataset(Dataset(folder, "train", val_size=5))
    sampler = IterationBatchSampler(dataset, 1, 16, shuffle=False)
    return Dataloader(dataset, sampler, prefetch=prefetch, cache_bytes=cache_bytes), dataset


@pytest.mark.parametrize("prefetch", [0, 2])
def test_an_unshuffled_loader_keeps_its_batches_within_cache_bytes(tmp_path, prefetch):
    loader, dataset = kept_loader(tmp_path, cache_bytes=40 * 784 * 8, prefetch=prefetch)
    first = [(x.copy(), y.copy()) for x, y in loader]
    assert dataset.prepared == 40
    for _ in range(2):
        again = list(loader)
        assert dataset.prepared == 40   # nothing prepared anew
        for (x, y), (kept_x, kept_y) in zip(first, again, strict=True):
            np.testing.assert_array_equal(kept_x, x)
            np.testing.assert_array_equal(kept_y, y)
            assert not kept_x.flags.writeable and not kept_y.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        again[0][0][0, 0] = 1.0   # a change would reach every later pass


def test_batches_beyond_cache_bytes_are_prepared_every_pass(tmp_path):
    loader, dataset = kept_loader(tmp_path, cache_bytes=40 * 784 * 8 - 1)
    list(loader)
    batches = list(loader)
    assert dataset.prepared == 80 and all(x.flags.writeable for x, _ in batches)


def test_a_pass_stopped_early_or_new_indices_are_not_served_from_the_kept_batches(tmp_path):
    loader, dataset = kept_loader(tmp_path, cache_bytes=10**9)
    for _ in zip(range(2), loader):   # stopped after 2 of 3 batches: nothing kept
        pass
    assert loader._kept is None
    list(loader)
    assert dataset.prepared == 32 + 40
    loader.sampler.batch_size = 8      # the sampler now gives other batches
    assert [len(y) for _, y in loader] == [8] * 5 and dataset.prepared == 32 + 80


def test_a_shuffled_loader_cannot_keep_its_batches(tmp_path):
    folder, _ = write_dataset(tmp_path, num_train=20)
    dataset = Dataset(folder, "train", val_size=5)
    with pytest.raises(ValueError, match="cache_bytes needs an unshuffled sampler"):
        Dataloader(dataset, IterationBatchSampler(dataset, 1, 4, shuffle=True), cache_bytes=1)
