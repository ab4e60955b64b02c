"""Property-based tests of the IDX reader: whatever the bytes, it returns the array the header
declares or raises IDXError, never another exception, and never allocates what a header
merely claims.
"""
import gzip
import math
import os
import tempfile
import tracemalloc

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from hostile import MIB, gzip_zeros
from mnistlab.idx import IMAGES_MAGIC, LABELS_MAGIC, IDXError, read_idx, read_idx_bytes

FAST = settings(max_examples=200, deadline=None)
WITH_FILES = settings(max_examples=60, deadline=None)
MAX_DIM = 2**32 - 1


def idx_header(shape):
    """The header of an IDX file of unsigned bytes: magic 0x00 0x00 0x08 ndim, then the dims."""
    return bytes([0, 0, 0x08, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


def declared_shape(raw):
    """The shape the header of `raw` declares (the header is assumed complete)."""
    return tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(raw[3]))


def assert_parsed_as_declared_or_refused(read, raw):
    """`read()` raises IDXError, or returns exactly the array the IDX bytes `raw` declare.

    Any other exception propagates and fails the test.
    """
    try:
        array = read()
    except IDXError:
        return
    assert raw[:3] == b"\x00\x00\x08"
    shape = declared_shape(raw)
    assert array.shape == shape and array.dtype == np.uint8
    assert array.tobytes() == raw[4 + 4 * len(shape):]


@st.composite
def idx_files(draw):
    """(shape, body, raw): a valid small IDX file, zero-length dimensions included."""
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=1, max_size=4)))
    size = math.prod(shape)
    body = draw(st.binary(min_size=size, max_size=size))
    return shape, body, idx_header(shape) + body


@st.composite
def mutated_idx_files(draw):
    """A valid IDX file after 1-3 edits: bit flips, truncation, extension, header overwrites."""
    raw = bytearray(draw(idx_files())[2])
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(st.sampled_from(["flip", "truncate", "extend", "overwrite header"]))
        if edit == "flip" and raw:
            raw[draw(st.integers(0, len(raw) - 1))] ^= 1 << draw(st.integers(0, 7))
        elif edit == "truncate":
            raw = raw[:draw(st.integers(0, max(len(raw) - 1, 0)))]
        elif edit == "extend":
            raw += draw(st.binary(min_size=1, max_size=16))
        elif edit == "overwrite header" and raw:
            header_end = min(len(raw), 4 + 4 * raw[3] if len(raw) > 3 else len(raw))
            raw[draw(st.integers(0, header_end - 1))] = draw(st.integers(0, 255))
    return bytes(raw)


def written(directory, name, data):
    """Write `data` to directory/name and return the path."""
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


# (a) valid files round-trip exactly

@FAST
@given(idx_files())
def test_valid_bytes_round_trip(file):
    shape, body, raw = file
    array = read_idx_bytes(raw)
    assert array.shape == shape and array.dtype == np.uint8
    assert array.tobytes() == body
    assert not array.flags.writeable


@WITH_FILES
@given(idx_files())
def test_valid_raw_and_gzipped_files_round_trip(file):
    shape, body, raw = file
    magic = int.from_bytes(raw[:4], "big")
    with tempfile.TemporaryDirectory() as folder:
        for path in (written(folder, "f-ubyte", raw),
                     written(folder, "f-ubyte.gz", gzip.compress(raw))):
            if 0 in shape and magic in (LABELS_MAGIC, IMAGES_MAGIC):
                # images or labels files must hold something; any other kind may be empty
                with pytest.raises(IDXError, match=r"no (labels|images) at all|pixels hold"):
                    read_idx(path, expected_magic=magic)
                array = read_idx(path)
            else:
                array = read_idx(path, expected_magic=magic)
            assert array.shape == shape and array.tobytes() == body


# (b) anything else: the declared array or IDXError, nothing else

@FAST
@given(st.one_of(st.binary(max_size=64),
                 st.binary(max_size=64).map(lambda rest: b"\x00\x00\x08" + rest)))
def test_arbitrary_bytes_parse_as_declared_or_raise_idxerror(raw):
    assert_parsed_as_declared_or_refused(lambda: read_idx_bytes(raw), raw)


@FAST
@given(mutated_idx_files())
def test_mutated_files_parse_as_declared_or_raise_idxerror(raw):
    assert_parsed_as_declared_or_refused(lambda: read_idx_bytes(raw), raw)


@WITH_FILES
@given(mutated_idx_files())
def test_mutated_files_on_disk_parse_as_declared_or_raise_idxerror(raw):
    with tempfile.TemporaryDirectory() as folder:
        for path in (written(folder, "f-ubyte", raw),
                     written(folder, "f-ubyte.gz", gzip.compress(raw))):
            assert_parsed_as_declared_or_refused(lambda: read_idx(path), raw)


@FAST
@given(idx_files(), st.data())
def test_truncated_or_extended_files_raise_idxerror(file, data):
    raw = file[2]
    cut = raw[:data.draw(st.integers(0, len(raw) - 1))]
    longer = raw + data.draw(st.binary(min_size=1, max_size=16))
    for damaged in (cut, longer):
        with pytest.raises(IDXError):
            read_idx_bytes(damaged)


@WITH_FILES
@given(idx_files(), st.sampled_from([LABELS_MAGIC, IMAGES_MAGIC]))
def test_a_file_of_another_kind_is_refused_when_a_kind_is_expected(file, expected):
    raw = file[2]
    assume(int.from_bytes(raw[:4], "big") != expected)
    with tempfile.TemporaryDirectory() as folder:
        with pytest.raises(IDXError, match="magic number"):
            read_idx(written(folder, "f-ubyte", raw), expected_magic=expected)


@st.composite
def headers_with_matching_body(draw):
    """Well-formed files whose shapes test NumPy's limits: up to 255 dimensions, or an empty
    array whose other dimensions are anything up to 2**32 - 1."""
    ndim = draw(st.integers(1, 255))
    if draw(st.booleans()):
        shape = draw(st.lists(st.integers(0, MAX_DIM), min_size=ndim, max_size=ndim))
        shape[draw(st.integers(0, ndim - 1))] = 0
    else:
        shape = [1] * ndim
        for position in draw(st.lists(st.integers(0, ndim - 1), max_size=4)):
            shape[position] = 3
    size = math.prod(shape)
    return idx_header(shape) + draw(st.binary(min_size=size, max_size=size))


@FAST
@example(raw=idx_header([0, MAX_DIM, MAX_DIM, MAX_DIM]))
@example(raw=idx_header([1] * 65) + b"\x07")
@given(headers_with_matching_body())
def test_shapes_numpy_cannot_build_raise_idxerror(raw):
    assert_parsed_as_declared_or_refused(lambda: read_idx_bytes(raw), raw)


# (c) a header that claims a huge size is refused before anything is allocated

HUGE_SHAPES = st.one_of(
    st.just([MAX_DIM]), st.just([MAX_DIM, 28, 28]),
    st.lists(st.integers(2**16, MAX_DIM), min_size=2, max_size=4))


def peak_bytes_while_refused(read):
    """Peak bytes allocated while `read()` raises IDXError (tracemalloc)."""
    tracemalloc.start()
    try:
        with pytest.raises(IDXError):
            read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@FAST
@given(HUGE_SHAPES, st.binary(max_size=1024))
def test_huge_claims_with_a_short_body_are_refused_without_allocating(shape, body):
    raw = idx_header(shape) + body
    assert peak_bytes_while_refused(lambda: read_idx_bytes(raw)) < 2**20


@WITH_FILES
@given(HUGE_SHAPES, st.binary(max_size=1024))
def test_huge_claims_in_a_file_are_refused_without_allocating(shape, body):
    with tempfile.TemporaryDirectory() as folder:
        path = written(folder, "huge-ubyte", idx_header(shape) + body)
        assert peak_bytes_while_refused(lambda: read_idx(path)) < 2**20


# (d) corrupt gzip streams

@WITH_FILES
@given(st.binary(max_size=256))
def test_random_bytes_named_gz_raise_idxerror(junk):
    with tempfile.TemporaryDirectory() as folder:
        with pytest.raises(IDXError):
            read_idx(written(folder, "junk-ubyte.gz", junk))


@WITH_FILES
@given(idx_files(), st.data())
def test_truncated_gzip_raises_idxerror(file, data):
    packed = gzip.compress(file[2])
    cut = packed[:data.draw(st.integers(0, len(packed) - 1))]
    with tempfile.TemporaryDirectory() as folder:
        with pytest.raises(IDXError):
            read_idx(written(folder, "cut-ubyte.gz", cut))


@WITH_FILES
@given(idx_files(), st.data())
def test_damaged_gzip_gives_the_file_or_idxerror(file, data):
    packed = bytearray(gzip.compress(file[2]))
    packed[data.draw(st.integers(0, len(packed) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    with tempfile.TemporaryDirectory() as folder:
        path = written(folder, "flipped-ubyte.gz", packed)
        try:
            array = read_idx(path)
        except IDXError:
            return
    # Only bytes the decompressor ignores (timestamp, OS code, ...) can be flipped harmlessly.
    assert array.shape == file[0] and array.tobytes() == file[1]


# (e) decompression bombs: a gzip stream of any length under any header costs at most the
#     declared array (never past max_bytes), and gives the declared array or IDXError

@st.composite
def gzip_bombs(draw):
    """(raw header, gzip bytes): a header of labels or images declaring anything from nothing
    to 2**32 - 1 samples, then zeros inflating to 0-16 MiB (of ~16 KB compressed)."""
    if draw(st.booleans()):
        shape = (draw(st.integers(0, MAX_DIM)),)
    else:
        shape = (draw(st.integers(0, MAX_DIM)), draw(st.integers(0, 64)),
                 draw(st.integers(0, 64)))
    header = idx_header(shape)
    return shape, gzip_zeros(draw(st.integers(0, 16 * MIB)), header)


@WITH_FILES
@example(bomb=((2**31, 28, 28), gzip_zeros(16 * MIB, idx_header((2**31, 28, 28)))))
@given(gzip_bombs())
def test_gzip_bombs_cost_at_most_their_declared_size(bomb):
    shape, packed = bomb
    declared = math.prod(shape)
    magic = IMAGES_MAGIC if len(shape) == 3 else LABELS_MAGIC
    with tempfile.TemporaryDirectory() as folder:
        path = written(folder, "bomb-ubyte.gz", packed)
        tracemalloc.start()
        try:
            try:
                array = read_idx(path, magic, max_bytes=8 * MIB)
            except IDXError as exc:
                assert path in str(exc)
            else:
                assert array.shape == shape and not array.any()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < min(declared, 8 * MIB) + MIB
