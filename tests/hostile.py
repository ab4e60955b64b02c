"""Hostile files for the fuzz tests: decompression bombs built in milliseconds, zip archives
written byte by byte (so that their directory can lie), and a peak-memory meter.

A bomb of N zero bytes is deflated once per MiB: after a full flush a deflate stream forgets
its history, so the compressed block of one MiB of zeros can simply be repeated.
"""
import contextlib
import http.server
import struct
import threading
import tracemalloc
import zlib

MIB = 1 << 20


def zeros_deflate(total, head=b""):
    """A raw deflate stream of `head` followed by `total` zero bytes (~1 KB per MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)]
    blocks, rest = divmod(total, MIB)
    if blocks:
        block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
        parts.append(block * blocks)
    if rest:
        parts.append(compressor.compress(bytes(rest)) + compressor.flush(zlib.Z_FULL_FLUSH))
    parts.append(compressor.flush(zlib.Z_FINISH))
    return b"".join(parts)


def gzip_zeros(total, head=b""):
    """A gzip file of `head` and `total` zeros. Its CRC is left 0 (computing it would cost a
    pass over all the bytes): a reader that inflates everything fails only at the very end."""
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return (header + zeros_deflate(total, head)
            + struct.pack("<II", 0, (len(head) + total) & 0xFFFFFFFF))


def npy_header(shape, descr="<f8"):
    """The bytes of a version 1.0 .npy header declaring `shape` of dtype `descr`."""
    text = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode()
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def write_zip(path, entries):
    """Write a zip archive of `entries`: (name, payload, method (0 stored, 8 deflated), crc,
    size declared in the directory). Nothing is checked: the directory may lie."""
    with open(path, "wb") as f:
        directory = []
        for name, payload, method, crc, size in entries:
            offset, encoded = f.tell(), name.encode()
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc,
                                len(payload), size, len(encoded), 0) + encoded + payload)
            directory.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method,
                                         0, 0, crc, len(payload), size, len(encoded), 0, 0, 0,
                                         0, 0, offset) + encoded)
        start, joined = f.tell(), b"".join(directory)
        f.write(joined + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries),
                                     len(entries), len(joined), start, 0))


def stored(name, data):
    """A zip entry (for write_zip) holding `data` as it is, honestly described."""
    return name, data, 0, zlib.crc32(data), len(data)


def npz_entries(path):
    """[(entry name, bytes)] of an .npz archive, in order (read with zipfile: a trusted file)."""
    import zipfile
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def replace_entries(source, target, replacements):
    """Copy .npz `source` to `target`, entry by entry, replacing (or adding) the entries of
    `replacements`: {entry name: write_zip entry tuple}."""
    entries = [replacements.pop(name, None) or stored(name, data)
               for name, data in npz_entries(source)]
    write_zip(target, entries + list(replacements.values()))


def deflate_bomb(name, shape, descr="<f8", itemsize=8):
    """A zip entry whose .npy header declares `shape` honestly (the directory agrees) and
    whose data, zeros, inflate from ~1 KB per MiB."""
    head = npy_header(shape, descr)
    data = itemsize
    for dim in shape:
        data *= dim
    return name, zeros_deflate(data, head), 8, 0, len(head) + data


@contextlib.contextmanager
def peak_memory():
    """Measure the peak bytes allocated (Python and NumPy) inside the block:
    `with peak_memory() as peak: ...; peak()`."""
    tracemalloc.start()
    result = []
    try:
        yield lambda: result[0]
    finally:
        result.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


@contextlib.contextmanager
def loopback_server(handler, **attributes):
    """A threaded HTTP server of `handler` on an ephemeral port of 127.0.0.1, with
    `attributes` set on it; `stop` (a threading.Event) is set, then the server shut down,
    on exit, so that a handler waiting on it returns."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.stop = threading.Event()
    for name, value in attributes.items():
        setattr(httpd, name, value)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
