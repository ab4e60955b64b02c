"""The IDX reader accepts exactly what the format allows and names the file on every error."""
import gzip
import tracemalloc

import numpy as np
import pytest

from conftest import idx_bytes, write_idx
from mnistlab.idx import IDXError, IMAGES_MAGIC, LABELS_MAGIC, read_idx, read_idx_bytes


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
