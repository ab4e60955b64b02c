"""Reading IDX files, the format MNIST ships in, and checking everything they claim.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the data:

    magic = 0x00 0x00 <type code> <number of dimensions>

MNIST uses type code 0x08 (unsigned bytes): labels have magic 2049 (one dimension, N) and
images magic 2051 (three dimensions, N x rows x cols). Files may be gzipped.

Every check of the header happens before the body is read, and the body is read in chunks up
to the size the header declares: a header that merely *claims* a huge size is rejected
without allocating memory for it, and a compressed file that inflates past its header is
rejected without inflating it all.
"""
import gzip
import io
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


_CHUNK_BYTES = 1 << 18  # the body is read 256 KiB at a time


def read_idx_bytes(raw, name="<bytes>", expected_magic=None):
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
    return read_idx_stream(io.BytesIO(raw), name, expected_magic)


def read_idx_stream(stream, name, expected_magic=None):
    """Read an IDX file of unsigned bytes from a binary stream, checking it as it goes.

    The header is read and checked first; then the body is read in chunks, and never more
    than the file holds nor more than one byte past the size the header declares. So a
    header that claims a huge size is refused (truncated) with only the real bytes read,
    and a compressed file that inflates past its header is refused without inflating it all.

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
    if math.prod(d for d in shape if d) > np.iinfo(np.intp).max:
        raise IDXError(f"{name}: header declares shape {shape}, too large for any array "
                       "(the header is corrupt)")
    size = math.prod(shape)
    chunks = _read_at_most(stream, size + 1)
    found = sum(len(chunk) for chunk in chunks)
    if found != size:
        expected = 4 + 4 * ndim + size
        problem = (f"the file has {4 + 4 * ndim + found} bytes (truncated)" if found < size
                   else "the file goes on past them (trailing bytes)")
        raise IDXError(f"{name}: header declares shape {shape}, i.e. {expected} bytes in all, "
                       f"but {problem}")
    array = _concatenate(chunks, size).reshape(shape)
    array.flags.writeable = False
    return array


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


def _read_at_most(stream, limit):
    """The stream's next bytes, up to `limit` of them, as a list of chunks."""
    chunks = []
    while limit:
        chunk = stream.read(min(limit, _CHUNK_BYTES))
        if not chunk:
            break
        chunks.append(chunk)
        limit -= len(chunk)
    return chunks


def _concatenate(chunks, size):
    """The chunks' bytes in one new uint8 array of `size` (NumPy-allocated, so that a large
    array gets the operating system's huge pages, which speed up random row gathers)."""
    array = np.empty(size, dtype=np.uint8)
    offset = 0
    for chunk in chunks:
        array[offset:offset + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
        offset += len(chunk)
    return array


def read_idx(path, expected_magic=None):
    """Read an IDX file, raw or gzipped (by its `.gz` suffix), and check everything it claims.

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
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(name, "rb") as stream:
            return read_idx_stream(stream, name, expected_magic)
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise IDXError(f"{name}: cannot be decompressed or read ({exc}); the file is "
                       "corrupt or truncated, replace it with a fresh copy") from None
