"""Reading IDX files, the format MNIST ships in, and checking everything they claim.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the data:

    magic = 0x00 0x00 <type code> <number of dimensions>

MNIST uses type code 0x08 (unsigned bytes): labels have magic 2049 (one dimension, N) and
images magic 2051 (three dimensions, N x rows x cols). Files may be gzipped.

Every check happens before any array is built, so a header that merely *claims* a huge size
is rejected without allocating memory for it.
"""
import gzip
import math
import os
import zlib

import numpy as np

LABELS_MAGIC = 2049
IMAGES_MAGIC = 2051
_UNSIGNED_BYTE = 0x08
_MAX_NDIM = 32  # the fewest dimensions a NumPy array may have at most (32 before NumPy 2, 64 since)
_KINDS = {LABELS_MAGIC: "labels", IMAGES_MAGIC: "images"}


class IDXError(ValueError):
    """An IDX file is corrupt, truncated, or not what it was expected to be."""


def read_idx_bytes(raw, name="<bytes>"):
    """Parse the bytes of an (uncompressed) IDX file of unsigned bytes.

    Args:
        raw: bytes of the whole file.
        name: how to name the file in error messages.

    Returns:
        A read-only uint8 array of the shape the header declares; it shares memory with
        `raw` (no copy is made).

    Raises:
        IDXError: the header is malformed or the body size does not match the header.
    """
    if len(raw) < 4:
        raise IDXError(f"{name}: only {len(raw)} bytes, too short for an IDX header "
                       "(the file is truncated or not an IDX file)")
    if raw[0] != 0 or raw[1] != 0:
        raise IDXError(f"{name}: magic number starts with {raw[0]:#04x} {raw[1]:#04x}, "
                       "expected 0x00 0x00: this is not an IDX file")
    if raw[2] != _UNSIGNED_BYTE:
        raise IDXError(f"{name}: data type code {raw[2]:#04x}; only unsigned bytes (0x08), "
                       "as MNIST uses, are supported")
    ndim = raw[3]
    if ndim == 0:
        raise IDXError(f"{name}: the header declares zero dimensions")
    if ndim > _MAX_NDIM:
        raise IDXError(f"{name}: the header declares {ndim} dimensions, more than the "
                       f"{_MAX_NDIM} an array can have (the header is corrupt)")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise IDXError(f"{name}: the header declares {ndim} dimensions but the file ends "
                       f"after {len(raw)} bytes (truncated)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if math.prod(d for d in shape if d) > np.iinfo(np.intp).max:
        raise IDXError(f"{name}: header declares shape {shape}, too large for any array "
                       "(the header is corrupt)")
    expected = header_size + math.prod(shape)
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise IDXError(f"{name}: header declares shape {shape}, i.e. {expected} bytes in all, "
                       f"but the file has {len(raw)} bytes ({problem})")
    array = np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)
    array.flags.writeable = False
    return array


def read_idx(path, expected_magic=None):
    """Read an IDX file, raw or gzipped (by its `.gz` suffix), and check its header.

    Args:
        path: the file.
        expected_magic: LABELS_MAGIC or IMAGES_MAGIC to insist on that kind of file, or None.

    Returns:
        A read-only uint8 array: (N,) for labels, (N, rows, cols) for images.

    Raises:
        IDXError: the file is corrupt, truncated, or of the wrong kind.
        FileNotFoundError: the file does not exist.
    """
    name = os.fspath(path)
    try:
        if name.endswith(".gz"):
            with gzip.open(name, "rb") as f:
                raw = f.read()
        else:
            with open(name, "rb") as f:
                raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise IDXError(f"{name}: cannot be decompressed or read ({exc}); the file is "
                       "corrupt or truncated, replace it with a fresh copy") from None
    if expected_magic is not None and len(raw) >= 4:
        magic = int.from_bytes(raw[:4], "big")
        if magic != expected_magic:
            kind = _KINDS.get(expected_magic, f"{expected_magic & 0xFF}-dimensional")
            raise IDXError(f"{name}: magic number {magic}, expected {expected_magic} for an "
                           f"IDX {kind} file")
    return read_idx_bytes(raw, name)
