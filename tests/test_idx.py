"""The IDX reader accepts exactly what the format allows and names the file on every error."""
import gzip
import os
import signal
import tracemalloc

import numpy as np
import pytest

from conftest import idx_bytes, write_dataset, write_idx
from hostile import MIB, gzip_zeros, peak_memory
from mnistlab.dataloader import Dataset
from mnistlab.idx import IDXError, IMAGES_MAGIC, LABELS_MAGIC, read_idx, read_idx_bytes


def idx_header(shape):
    return bytes([0, 0, 0x08, len(shape)]) + b"".join(int(d).to_bytes(4, "big") for d in shape)


def test_reads_images_and_labels_raw_and_gzipped(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1], dtype=np.uint8)
    for suffix in ("", ".gz"):
        img_path = write_idx(str(tmp_path / f"i{suffix}"), images, IMAGES_MAGIC)
        lab_path = write_idx(str(tmp_path / f"l{suffix}"), labels, LABELS_MAGIC)
        np.testing.assert_array_equal(read_idx(img_path, IMAGES_MAGIC), images)
        np.testing.assert_array_equal(read_idx(lab_path, LABELS_MAGIC), labels)


def test_arrays_are_read_only():
    array = read_idx_bytes(idx_bytes(np.zeros(3), LABELS_MAGIC))
    with pytest.raises(ValueError):
        array[0] = 1


@pytest.mark.parametrize("mutate, message", [
    (lambda raw: raw[:2], "too short"),
    (lambda raw: b"\x01" + raw[1:], "not an IDX file"),
    (lambda raw: raw[:2] + b"\x0d" + raw[3:], "data type"),
    (lambda raw: raw[:3] + b"\x00" + raw[4:], "zero dimensions"),
    (lambda raw: raw[:6], "truncated"),
    (lambda raw: raw[:-1], "truncated"),
    (lambda raw: raw + b"\x00", "trailing bytes"),
])
def test_corrupt_bytes_raise_idx_error_naming_the_file(mutate, message):
    raw = idx_bytes(np.zeros((2, 3, 3)), IMAGES_MAGIC)
    with pytest.raises(IDXError, match=message) as info:
        read_idx_bytes(mutate(raw), name="some-file")
    assert "some-file" in str(info.value)


def test_wrong_kind_of_file_is_named(tmp_path):
    path = write_idx(str(tmp_path / "labels"), np.zeros(4), LABELS_MAGIC)
    with pytest.raises(IDXError, match=r"magic number 2049, expected 2051 for an IDX images"):
        read_idx(path, IMAGES_MAGIC)


def test_huge_header_is_rejected_without_allocating():
    raw = LABELS_MAGIC.to_bytes(4, "big") + (2**32 - 1).to_bytes(4, "big") + b"\x00" * 10
    with pytest.raises(IDXError, match="truncated"):
        read_idx_bytes(raw)


def test_corrupt_and_truncated_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.zeros(100), LABELS_MAGIC))
    for name, data in (("bad.gz", b"this is not gzip"), ("cut.gz", good[: len(good) // 2])):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(IDXError, match="corrupt or truncated") as info:
            read_idx(str(path))
        assert name in str(info.value)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(str(tmp_path / "nothing"))


def test_a_gzip_bomb_is_refused_without_being_inflated(tmp_path):
    # the header declares 10 labels; the stream inflates to 64 MiB
    bomb = gzip.compress(idx_bytes(np.zeros(10), LABELS_MAGIC) + bytes(64 * 2**20), 9)
    path = tmp_path / "bomb-labels-idx1-ubyte.gz"
    path.write_bytes(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(IDXError, match="goes on past them \\(trailing bytes\\)"):
            read_idx(str(path), LABELS_MAGIC)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20


def test_the_expected_kind_is_checked_on_bytes_too():
    raw = idx_bytes(np.zeros(4), LABELS_MAGIC)
    assert read_idx_bytes(raw, expected_magic=LABELS_MAGIC).shape == (4,)
    with pytest.raises(IDXError, match="magic number 2049, expected 2051"):
        read_idx_bytes(raw, expected_magic=IMAGES_MAGIC)


# ---- every read within a budget: bombs, sparse files, and files that are not files ----------

def test_a_gzip_bomb_claiming_2_31_images_is_refused_by_its_header(tmp_path):
    # 4 MB of gzip declaring 2**31 images, followed by zeros inflating to 1 GiB and beyond
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_zeros(1 << 30, idx_header((2**31, 28, 28))))
    with peak_memory() as peak:
        with pytest.raises(IDXError, match="more than the 1073741824 bytes read_idx accepts") \
                as info:
            read_idx(str(path), IMAGES_MAGIC)
    assert str(path) in str(info.value) and peak() < MIB


def test_a_gzip_stream_is_cut_one_byte_past_its_declared_size(tmp_path):
    # declares 1000 images (784 KB); inflates to 64 MiB: read to 784 KB + 1 byte, no further
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip_zeros(64 * MIB, idx_header((1000, 28, 28))))
    with peak_memory() as peak:
        with pytest.raises(IDXError, match="goes on past them"):
            read_idx(str(path), IMAGES_MAGIC)
    assert peak() < 2 * MIB


def test_a_raw_file_whose_size_disagrees_with_its_header_is_refused_unread(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    with open(path, "wb") as f:
        f.write(idx_header((2**20, 28, 28)))  # 822 MB declared, under the 1 GiB limit
        f.truncate(100 * MIB)                # 100 MB of holes: costs no disk
    with peak_memory() as peak:
        with pytest.raises(IDXError, match=r"the file has 104857600 bytes \(truncated\)"):
            read_idx(str(path), IMAGES_MAGIC)
    assert peak() < MIB
    with open(path, "wb") as f:               # a 3 GB sparse file
        f.write(idx_header((2**31, 28, 28)))
        f.truncate(3 << 30)
    with peak_memory() as peak:
        with pytest.raises(IDXError, match="truncated"):
            read_idx(str(path), IMAGES_MAGIC)
    assert peak() < MIB


def test_max_bytes_bounds_what_a_header_may_declare(tmp_path):
    path = write_idx(str(tmp_path / "labels"), np.zeros(100), LABELS_MAGIC)
    assert read_idx(path, max_bytes=100).shape == (100,)
    with pytest.raises(IDXError, match=r"100 bytes of data, more than the 99 bytes"):
        read_idx(path, max_bytes=99)


@pytest.mark.parametrize("shape, magic, message", [
    ((0, 28, 28), IMAGES_MAGIC, r"shape \(0, 28, 28\): no images at all"),
    ((5, 0, 28), IMAGES_MAGIC, r"images of 0 x 28 pixels hold nothing"),
    ((5, 28, 0), IMAGES_MAGIC, r"images of 28 x 0 pixels"),
    ((0,), LABELS_MAGIC, r"no labels at all"),
])
def test_an_images_or_labels_file_with_a_zero_dimension_is_refused(tmp_path, shape, magic,
                                                                    message):
    path = write_idx(str(tmp_path / "f-ubyte.gz"), np.zeros(shape), magic)
    with pytest.raises(IDXError, match=message) as info:
        read_idx(path, magic)
    assert path in str(info.value)
    assert read_idx(path).shape == shape  # as a plain IDX file, it is valid


def test_a_dataset_with_empty_images_names_the_file(tmp_path):
    folder, _ = write_dataset(tmp_path / "data")
    path = write_idx(os.path.join(folder, "train-images-idx3-ubyte.gz"),
                     np.zeros((600, 0, 28)), IMAGES_MAGIC)
    with pytest.raises(IDXError, match="0 x 28 pixels") as info:
        Dataset(folder, "train", val_size=100)
    assert path in str(info.value)


def test_a_label_out_of_range_names_the_labels_file(tmp_path):
    folder, _ = write_dataset(tmp_path / "data")
    path = write_idx(os.path.join(folder, "train-labels-idx1-ubyte.gz"),
                     np.arange(600) % 13, LABELS_MAGIC)
    with pytest.raises(IDXError, match="go up to 12, outside \\[0, 10\\): set num_classes to "
                                       "at least 13") as info:
        Dataset(folder, "train", num_classes=10, val_size=100)
    assert str(info.value).startswith(path)


def test_a_fifo_or_a_folder_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "train-labels-idx1-ubyte.gz"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    previous = signal.signal(signal.SIGALRM, lambda *args: pytest.fail("read_idx blocked"))
    signal.alarm(20)  # a guard against hanging the suite, not a timing assertion
    try:
        with pytest.raises(IDXError, match="FIFO"):
            read_idx(str(fifo), LABELS_MAGIC)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    with pytest.raises(IDXError, match="a folder"):
        read_idx(str(tmp_path))
