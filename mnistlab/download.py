"""Download MNIST (or another dataset in its IDX layout) safely, using only the standard library.

    python fetch.py [--dataset mnist|fashion-mnist] [--dest data] [--force] [--mirror URL ...]

For each of the four gzipped IDX files, every mirror is tried in turn until one delivers
a file whose checksum is in the table below:

    for each mirror:
        stream  mirror + file name  into a temporary file in `dest`, hashing as it arrives
        reject it if the HTTP status is an error, the body is shorter than Content-Length,
            the checksum is unknown, or the file does not parse as IDX
        otherwise rename the temporary file to its final name (os.replace, atomic)

So a file under its final name is always complete and verified: a failure, or Ctrl-C, at
any point removes the temporary file. A file already present with a known checksum is kept
(unless `force`). When every mirror fails, `FetchError` lists each one and why.

Checksums: the hash the dataset's publishers give, of the .gz file itself, with the
algorithm they use: SHA-256 for MNIST; MD5 for Fashion-MNIST, whose project publishes only
MD5 (enough to catch corruption in transit, though not tampering). The MNIST copies vendored
in data/ were recompressed, so their .gz bytes differ from the mirrors' while their
decompressed content is identical (see data/README.md): both .gz hashes are accepted.

Another dataset in the same layout is one more `Source` entry in `SOURCES`.
"""
import argparse
import contextlib
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass

from . import idx

_CHUNK_BYTES = 1 << 16
_USER_AGENT = "idx-fetch/1.0 (Python urllib)"


@dataclass(frozen=True)
class Source:
    """Where a dataset in MNIST's IDX layout is published and how to check its files.

    Attributes:
        mirrors: base URLs tried in order; a file's URL is the base URL plus its name.
        algorithm: the hashlib name of the checksums, e.g. 'sha256' or 'md5'.
        checksums: file name -> tuple of accepted hex digests of that (gzipped) file.
    """
    mirrors: tuple
    algorithm: str
    checksums: dict


SOURCES = {
    "mnist": Source(
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        algorithm="sha256",
        # (the file as the mirrors serve it, the recompressed copy vendored in data/)
        checksums={
            "train-images-idx3-ubyte.gz": (
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971"),
            "train-labels-idx1-ubyte.gz": (
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203"),
            "t10k-images-idx3-ubyte.gz": (
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be"),
            "t10k-labels-idx1-ubyte.gz": (
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b"),
        }),
    "fashion-mnist": Source(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        algorithm="md5",
        checksums={
            "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",),
            "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe",),
            "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79",),
            "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310",),
        }),
}


class FetchError(RuntimeError):
    """No mirror delivered a verified copy of a file.

    Attributes:
        failures: list of (url, reason), one per mirror tried, in order.
    """

    def __init__(self, message, failures):
        super().__init__(message)
        self.failures = failures


class _MirrorFailed(Exception):
    """One mirror could not deliver one file; the message says why."""


def fetch(dataset="mnist", dest="data", mirrors=None, force=False, timeout=30, log=print):
    """Download the files of `dataset` into `dest`, verified, skipping those already there.

    Args:
        dataset: a name in SOURCES, or a Source.
        dest: destination folder, created if missing.
        mirrors: base URLs to try instead of the source's own, in order.
        force: download even the files already present with a known checksum.
        timeout: seconds a connection or a read may stall before that mirror is abandoned.
        log: called with one line of text per event (a file kept, fetched, a mirror failing).

    Returns:
        The paths of the dataset's files in `dest`, in the order of the source's table.

    Raises:
        FetchError: every mirror failed for some file (files fetched before it are kept).
        ValueError: unknown dataset, unsupported hash algorithm, no mirror, or bad timeout.
    """
    source = _resolve_source(dataset)
    mirrors = tuple(source.mirrors if mirrors is None else mirrors)
    if not mirrors:
        raise ValueError("no mirror to download from: pass at least one base URL in mirrors")
    if not timeout > 0:
        raise ValueError(f"timeout={timeout!r}: it must be a positive number of seconds")
    os.makedirs(dest, exist_ok=True)
    paths = []
    for name, accepted in source.checksums.items():
        path = os.path.join(dest, name)
        if not force and _is_verified(path, source.algorithm, accepted, log):
            log(f"{name}: already present with a known {source.algorithm} checksum, kept")
        else:
            _fetch_file(name, dest, mirrors, source.algorithm, accepted, timeout, log)
        paths.append(path)
    return paths


def _resolve_source(dataset):
    """The Source for a dataset name (or the Source itself), its hash algorithm checked."""
    if isinstance(dataset, Source):
        source = dataset
    elif dataset in SOURCES:
        source = SOURCES[dataset]
    else:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(SOURCES)} "
                         "or pass a fetch.Source")
    if source.algorithm not in hashlib.algorithms_available:
        raise ValueError(f"hash algorithm {source.algorithm!r} is not available in hashlib; "
                         "use e.g. 'sha256' or 'md5'")
    return source


def _is_verified(path, algorithm, accepted, log):
    """True when `path` exists and its checksum is one of `accepted`; says so when it is not."""
    if not os.path.exists(path):
        return False
    digest = _file_digest(path, algorithm)
    if digest in accepted:
        return True
    log(f"{os.path.basename(path)}: present but its {algorithm} checksum {digest} is not a "
        "known one (corrupt or partial copy); downloading it again")
    return False


def _file_digest(path, algorithm):
    """Hex digest of the file at `path`."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def _fetch_file(name, dest, mirrors, algorithm, accepted, timeout, log):
    """Install `dest/name` from the first mirror that delivers a verified copy."""
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        try:
            size = _download_verified(url, os.path.join(dest, name), algorithm, accepted,
                                      timeout)
        except _MirrorFailed as exc:
            log(f"{name}: mirror {mirror} failed: {exc}")
            failures.append((url, str(exc)))
        else:
            log(f"{name}: downloaded from {mirror} ({size} bytes, {algorithm} verified)")
            return
    tried = "\n".join(f"  {url}: {reason}" for url, reason in failures)
    raise FetchError(f"could not fetch {name} into {dest!r}: every mirror failed:\n{tried}\n"
                     "Check the internet connection, or pass other mirrors "
                     "(fetch(mirrors=[...]) or --mirror URL).", failures)


def _download_verified(url, path, algorithm, accepted, timeout):
    """Download `url` to a temporary file beside `path`, verify it, then rename it to `path`.

    Returns:
        The number of bytes downloaded.

    Raises:
        _MirrorFailed: the download failed or the file is not the expected one. The
            temporary file is removed on this and on every other exit (even Ctrl-C).
    """
    name = os.path.basename(path)
    # The .gz suffix lets idx.read_idx decompress it; the leading dot hides it.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=f".{name}.",
                               suffix=".part.gz")
    try:
        with open(fd, "wb") as f:
            digest, size = _stream(url, f, algorithm, timeout)
            f.flush()
            os.fsync(f.fileno())
        if digest not in accepted:
            raise _MirrorFailed(f"{algorithm} checksum mismatch: got {digest}, expected "
                                f"{' or '.join(accepted)}")
        _check_idx(tmp, name)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a data file is readable by all
        os.replace(tmp, path)
        return size
    finally:
        # After a successful rename there is nothing left to remove.
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _stream(url, out, algorithm, timeout):
    """Copy the body at `url` into the open binary file `out`, hashing it on the way.

    Returns:
        (hex digest, number of bytes).

    Raises:
        _MirrorFailed: connection or HTTP error, stalled transfer, or a body shorter than
            its Content-Length (http.client then reports a clean end of file).
    """
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    hasher = hashlib.new(algorithm)
    size = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            while chunk := response.read(_CHUNK_BYTES):
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except urllib.error.HTTPError as exc:
        raise _MirrorFailed(f"HTTP error {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _MirrorFailed(f"cannot connect ({exc.reason})") from None
    except (http.client.HTTPException, OSError) as exc:
        raise _MirrorFailed(f"transfer broken after {size} bytes "
                            f"({type(exc).__name__}: {exc})") from None
    if declared is not None and size != int(declared):
        raise _MirrorFailed(f"truncated: received {size} of the {declared} bytes announced "
                            "by Content-Length")
    return hasher.hexdigest(), size


def _check_idx(path, name):
    """Parse the downloaded file as IDX, as images or labels by its name.

    Raises:
        _MirrorFailed: it does not parse (so the checksum table names a non-IDX file).
    """
    kinds = {"-images-": idx.IMAGES_MAGIC, "-labels-": idx.LABELS_MAGIC}
    magic = next((m for key, m in kinds.items() if key in name), None)
    try:
        idx.read_idx(path, expected_magic=magic)
    except idx.IDXError as exc:
        raise _MirrorFailed(f"checksum matches but the file is not valid IDX ({exc})") \
            from None


def main(argv=None):
    """Command line entry point; returns the exit status (0 done, 1 a file failed)."""
    parser = argparse.ArgumentParser(
        description="Download the four gzipped IDX files of a dataset, verifying each "
                    "checksum, trying mirrors in order; files already present and intact "
                    "are kept.")
    parser.add_argument("--dataset", choices=sorted(SOURCES), default="mnist",
                        help="which dataset (default: mnist)")
    parser.add_argument("--dest", default="data",
                        help="folder to put the files in (default: data)")
    parser.add_argument("--force", action="store_true",
                        help="download again even the files already present and intact")
    parser.add_argument("--mirror", action="append", metavar="URL",
                        help="base URL to try instead of the built-in mirrors (repeatable, "
                             "tried in order)")
    parser.add_argument("--timeout", type=float, default=30,
                        help="seconds a connection may stall before trying the next mirror "
                             "(default: 30)")
    args = parser.parse_args(argv)
    try:
        fetch(args.dataset, args.dest, mirrors=args.mirror, force=args.force,
              timeout=args.timeout)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
