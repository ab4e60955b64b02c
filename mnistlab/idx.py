"""Reading IDX files, the format MNIST ships in, and checking everything they claim.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the data:

    magic = 0x00 0x00 <type code> <number of dimensions>

MNIST uses type code 0x08 (unsigned bytes): labels have magic 2049 (one dimension, N) and
images magic 2051 (three dimensions, N x rows x cols). Files may be gzipped.

Every check of the header happens before the body is read, and the body is read into an
array of exactly the size the header declares, never more:

- a header declaring more than `max_bytes` (MAX_IDX_BYTES, 1 GiB, by default) is refused
  at once: MNIST's largest file holds 47 MB, and even EMNIST's largest 547 MB;
- a raw file's size is known before reading: a body shorter or longer than the header
  declares is refused without reading it;
- a gzipped stream is read up to the declared size plus one byte, so a file that inflates
  past its header (a decompression bomb) is refused after inflating at most that much;
- an images or labels file (expected_magic given) must hold at least one sample, and images
  of at least one pixel.

Whatever the bytes, the only error is IDXError, naming the file (FileNotFoundError for a
missing one).
"""
import gzip
import io
import math
import os
import zlib

import numpy as np

from .checks import array_can_have_shape
from .fileio import NotRegularFileError, open_regular

LABELS_MAGIC = 2049
IMAGES_MAGIC = 2051
_UNSIGNED_BYTE = 0x08
_MAX_NDIM = 32  # the fewest dimensions a NumPy array may have at most (32 before NumPy 2, 64 since)
_KINDS = {LABELS_MAGIC: "labels", IMAGES_MAGIC: "images"}


class IDXError(ValueError):
    """An IDX file is corrupt, truncated, or not what it was expected to be."""


_CHUNK_BYTES = 1 << 18  # the body is read 256 KiB at a time
MAX_IDX_BYTES = 1 << 30  # the largest body read_idx accepts by default


def read_idx_bytes(raw, name="<bytes>", expected_magic=None, max_bytes=MAX_IDX_BYTES):
    """Parse the bytes of an (uncompressed) IDX file of unsigned bytes.

    Args:
        raw: bytes of the whole file.
        name: how to name the file in error messages.
        expected_magic: LABELS_MAGIC or IMAGES_MAGIC to insist on that kind of file, or None.

    Returns:
        A read-only uint8 array of the shape the header declares.

    Raises:
        IDXError: the header is malformed or the body size does not match the header.
    """
    return read_idx_stream(io.BytesIO(raw), name, expected_magic, len(raw), max_bytes)


def read_idx_stream(stream, name, expected_magic=None, total_size=None,
                    max_bytes=MAX_IDX_BYTES):
    """Read an IDX file of unsigned bytes from a binary stream, checking it as it goes.

    The header is read and checked first; then the body is read into an array of the
    declared size, and never more than one byte past it. So a header that claims more than
    `max_bytes` is refused without reading on, one that disagrees with `total_size` (the
    stream's size, when known) is refused without reading the body, and a compressed file
    that inflates past its header is refused without inflating it all.

    Args:
        stream: a binary stream positioned at the start of the file.
        name: how to name the file in error messages.
        expected_magic: LABELS_MAGIC or IMAGES_MAGIC to insist on that kind of file, or None.
        total_size: the size of the whole file in bytes, if known (a raw file's size).
        max_bytes: the largest body accepted.

    Returns:
        A read-only uint8 array of the shape the header declares.

    Raises:
        IDXError: the header is malformed, of the wrong kind, or the body does not match it.
    """
    head = stream.read(4)
    if len(head) < 4:
        raise IDXError(f"{name}: only {len(head)} bytes, too short for an IDX header "
                       "(the file is truncated or not an IDX file)")
    magic = int.from_bytes(head, "big")
    if expected_magic is not None and magic != expected_magic:
        kind = _KINDS.get(expected_magic, f"{expected_magic & 0xFF}-dimensional")
        raise IDXError(f"{name}: magic number {magic}, expected {expected_magic} for an "
                       f"IDX {kind} file")
    ndim = _check_magic(head, name)
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise IDXError(f"{name}: the header declares {ndim} dimensions but the file ends "
                       f"after {4 + len(dims)} bytes (truncated)")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    _check_kind(shape, name, expected_magic)
    if not array_can_have_shape(shape):
        raise IDXError(f"{name}: header declares shape {shape}, too large for any array "
                       "(the header is corrupt)")
    size = math.prod(shape)
    header_bytes = 4 + 4 * ndim
    expected = header_bytes + size
    if total_size is not None and total_size != expected:
        problem = (f"the file has {total_size} bytes (truncated)" if total_size < expected
                   else "the file goes on past them (trailing bytes)")
        raise IDXError(f"{name}: header declares shape {shape}, i.e. {expected} bytes in all, "
                       f"but {problem}")
    if size > max_bytes:
        raise IDXError(f"{name}: header declares shape {shape}, i.e. {size} bytes of data, "
                       f"more than the {max_bytes} bytes read_idx accepts (max_bytes): the "
                       "header is corrupt, or pass a larger max_bytes for a dataset that big")
    array = np.empty(size, dtype=np.uint8)
    found = _read_into(stream, array)
    if found == size:
        found += len(stream.read(1))
    if found != size:
        problem = (f"the file has {header_bytes + found} bytes (truncated)" if found < size
                   else "the file goes on past them (trailing bytes)")
        raise IDXError(f"{name}: header declares shape {shape}, i.e. {expected} bytes in all, "
                       f"but {problem}")
    array = array.reshape(shape)
    array.flags.writeable = False
    return array


def _check_kind(shape, name, expected_magic):
    """An images or labels file holds at least one sample, and images at least one pixel."""
    if expected_magic not in _KINDS or 0 not in shape:
        return
    kind = _KINDS[expected_magic]
    if shape[0] == 0:
        raise IDXError(f"{name}: header declares shape {shape}: no {kind} at all (the file is "
                       f"empty or corrupt; replace it)")
    raise IDXError(f"{name}: header declares shape {shape}: images of "
                   f"{' x '.join(map(str, shape[1:]))} pixels hold nothing to learn from (the "
                   "header is corrupt; replace the file)")


def _check_magic(head, name):
    """Check the 4 magic bytes: 0x00 0x00, unsigned bytes, a sane number of dimensions.

    Returns:
        The number of dimensions.
    """
    if head[0] != 0 or head[1] != 0:
        raise IDXError(f"{name}: magic number starts with {head[0]:#04x} {head[1]:#04x}, "
                       "expected 0x00 0x00: this is not an IDX file")
    if head[2] != _UNSIGNED_BYTE:
        raise IDXError(f"{name}: data type code {head[2]:#04x}; only unsigned bytes (0x08), "
                       "as MNIST uses, are supported")
    ndim = head[3]
    if ndim == 0:
        raise IDXError(f"{name}: the header declares zero dimensions")
    if ndim > _MAX_NDIM:
        raise IDXError(f"{name}: the header declares {ndim} dimensions, more than the "
                       f"{_MAX_NDIM} an array can have (the header is corrupt)")
    return ndim


def _read_into(stream, array):
    """Fill `array` (uint8, 1-D) from the stream, 256 KiB at a time; returns the number of
    bytes read (fewer than array.size when the stream ends first)."""
    view = memoryview(array)
    filled = 0
    while filled < array.size:
        count = stream.readinto(view[filled:filled + _CHUNK_BYTES])
        if not count:
            break
        filled += count
    return filled


def read_idx(path, expected_magic=None, max_bytes=MAX_IDX_BYTES):
    """Read an IDX file, raw or gzipped (by its `.gz` suffix), and check everything it claims.

    Args:
        path: the file.
        expected_magic: LABELS_MAGIC or IMAGES_MAGIC to insist on that kind of file, or None.
        max_bytes: the largest body accepted (see the module docstring).

    Returns:
        A read-only uint8 array: (N,) for labels, (N, rows, cols) for images.

    Raises:
        IDXError: the file is corrupt, truncated, of the wrong kind, too large, or not a
            regular file.
        FileNotFoundError: the file does not exist.
    """
    name = os.fspath(path)
    try:
        raw, size = open_regular(name)
    except NotRegularFileError as exc:
        raise IDXError(f"{name}: is {exc.strerror}: point data_root at a folder of IDX "
                       "files") from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise IDXError(f"{name}: cannot be opened ({exc.strerror or exc})") from None
    try:
        with raw:
            if name.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return read_idx_stream(stream, name, expected_magic, None, max_bytes)
            return read_idx_stream(raw, name, expected_magic, size, max_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        raise IDXError(f"{name}: cannot be decompressed or read ({exc}); the file is "
                       "corrupt or truncated, replace it with a fresh copy") from None
