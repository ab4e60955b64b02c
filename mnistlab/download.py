"""Download MNIST (or another dataset in its IDX layout) through pooch, verified by checksum.

    python -m mnistlab.download [--dataset mnist|fashion-mnist] [--dest DIR] [--force]
                                [--mirror URL ...] [--timeout S] [--deadline S]

For each of the four gzipped IDX files (by default into the per-user cache,
`data_home.cache_dir(dataset)`, where `Solver` looks when no data_root is given):

    if the file is present (a regular file) and its checksum is an accepted one: keep it
    else, for each mirror in turn, in a fresh hidden folder inside `dest`:
        pooch.retrieve(mirror + name, known_hash=<the mirrors' checksum>,
                       downloader=LimitedDownloader(<the file's size>, timeout, deadline))
            (streams over HTTP into a temporary file, checks the hash, then renames it)
        the file must parse as IDX; then os.replace it to its final name (atomic)
    the hidden folder is removed on every exit, even Ctrl-C (and SIGTERM, from the
    command line)

Every download has a budget: the file's size, stored beside its checksum, and a deadline.
`LimitedDownloader` refuses a Content-Length other than that size (or not a number) before
reading the body, stops reading one byte past the size (a body without Content-Length that
never ends costs size + 1 bytes on disk), gives up when the server sends nothing for
`timeout` seconds, and abandons the file when the whole download takes longer than
`deadline` seconds (however slowly a server trickles bytes; checked between reads, so the
download stops at most `timeout` seconds late). Each refusal is that mirror's failure, and
the next mirror is tried.

So a file under its final name is always complete and verified, and a failed or forced
download never damages the copy already there. When every mirror fails, `FetchError` lists
each one and why (a checksum mismatch as such; only connection failures suggest checking
the connection).

Checksums: the dataset publishers' hash of the .gz file, with their algorithm: SHA-256 for
MNIST; MD5 for Fashion-MNIST, whose project publishes only MD5 (enough to catch corruption
in transit, not tampering). Each file's first checksum is the one its mirrors serve, and a
download must match it; the others are only accepted for files already present: the MNIST
copies vendored in data/ were recompressed (same decompressed bytes, see data/README.md).

Another dataset in the same layout is one more `Source` entry in `SOURCES`.
"""
import argparse
import contextlib
import hashlib
import http.client
import os
import re
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass

import pooch
import requests
import urllib3

from . import data_home
from .idx import IMAGES_MAGIC, LABELS_MAGIC, IDXError, read_idx


@dataclass(frozen=True)
class Source:
    """Where a dataset in MNIST's IDX layout is published and how to check its files.

    Attributes:
        mirrors: base URLs tried in order; a file's URL is the base URL plus its name.
        algorithm: the hashlib name of the checksums, e.g. 'sha256' or 'md5'.
        checksums: file name -> tuple of accepted hex digests of that (gzipped) file; the
            first is the mirrors' copy, the only one a download may have.
        sizes: file name -> size in bytes of the mirrors' copy: a download is cut there.
    """
    mirrors: tuple
    algorithm: str
    checksums: dict
    sizes: dict

    def __post_init__(self):
        for name in self.checksums:
            size = self.sizes.get(name)
            if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
                raise ValueError(f"Source: sizes[{name!r}] = {size!r}; every file needs its "
                                 "size in bytes (a positive integer) beside its checksum")


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
        },
        sizes={"train-images-idx3-ubyte.gz": 9912422, "train-labels-idx1-ubyte.gz": 28881,
               "t10k-images-idx3-ubyte.gz": 1648877, "t10k-labels-idx1-ubyte.gz": 4542}),
    "fashion-mnist": Source(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        algorithm="md5",
        checksums={
            "train-images-idx3-ubyte.gz": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",),
            "train-labels-idx1-ubyte.gz": ("25c81989df183df01b3e8a0aad5dffbe",),
            "t10k-images-idx3-ubyte.gz": ("bef4ecab320f06d8554ea6380940ec79",),
            "t10k-labels-idx1-ubyte.gz": ("bb300cfdad3c16e7a12a480ee83cd310",),
        },
        sizes={"train-images-idx3-ubyte.gz": 26421880, "train-labels-idx1-ubyte.gz": 29515,
               "t10k-images-idx3-ubyte.gz": 4422102, "t10k-labels-idx1-ubyte.gz": 5148}),
}
DEFAULT_TIMEOUT = 30    # seconds without data before a mirror is abandoned
DEFAULT_DEADLINE = 600  # seconds one file's download may take in all


class FetchError(RuntimeError):
    """No mirror delivered a verified copy of a file.

    Attributes:
        failures: list of (url, reason), one per mirror tried, in order.
    """

    def __init__(self, message, failures):
        super().__init__(message)
        self.failures = failures


class _MirrorFailed(Exception):
    """One mirror could not deliver one file; the message says why, `network` whether the
    connection itself failed (the only case where checking it is worth suggesting)."""

    def __init__(self, reason, network=False):
        super().__init__(reason)
        self.network = network


def fetch(dataset="mnist", dest=None, mirrors=None, force=False, timeout=DEFAULT_TIMEOUT,
          log=print, deadline=DEFAULT_DEADLINE):
    """Download the files of `dataset` into `dest`, verified, skipping those already there.

    Args:
        dataset: a name in SOURCES, or a Source.
        dest: destination folder, created if missing; None: the per-user cache folder
            `data_home.cache_dir(dataset)` (a dataset name is then required).
        mirrors: base URLs to try instead of the source's own, in order.
        force: download even the files already present with a known checksum (the copy
            there is replaced only by a verified one).
        timeout: seconds a connection or a read may stall before that mirror is abandoned.
        log: called with one line of text per file (kept, downloaded, a mirror failing).
        deadline: seconds one file's download from one mirror may take in all.

    Returns:
        The paths of the dataset's files in `dest`, in the order of the source's table.

    Raises:
        FetchError: every mirror failed for some file (files fetched before it are kept),
            or the file could not be written into `dest`.
        ValueError: unknown dataset, unsupported hash algorithm, no mirror, bad timeout or
            deadline, or dest=None with a custom Source.
    """
    source = _resolve_source(dataset)
    if dest is None:
        if isinstance(dataset, Source):
            raise ValueError("dest=None puts a built-in dataset in its cache folder: pass "
                             "dest for a custom Source")
        dest = data_home.cache_dir(dataset)
    mirrors = tuple(source.mirrors if mirrors is None else mirrors)
    if not mirrors:
        raise ValueError("no mirror to download from: pass at least one base URL in mirrors")
    for name, value in (("timeout", timeout), ("deadline", deadline)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name}={value!r}: it must be a positive number of seconds")
    os.makedirs(dest, exist_ok=True)
    paths = []
    for name, accepted in source.checksums.items():
        path = os.path.join(dest, name)
        if not force and _is_verified(path, source.algorithm, accepted, log):
            log(f"{name}: already present with a known {source.algorithm} checksum, kept")
        else:
            _fetch_file(name, dest, mirrors, source.algorithm, accepted[0],
                        LimitedDownloader(source.sizes[name], timeout, deadline), log)
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
                         "or pass a download.Source")
    if source.algorithm not in hashlib.algorithms_available:
        raise ValueError(f"hash algorithm {source.algorithm!r} is not available in hashlib; "
                         "use e.g. 'sha256' or 'md5'")
    return source


def _is_verified(path, algorithm, accepted, log):
    """True when `path` exists and its checksum is one of `accepted`; says so when it is not.
    Only a regular file is read (a FIFO there would block the checksum forever)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        raise FetchError(f"cannot fetch into {path!r}: a folder of that name is in the way; "
                         "move it or choose another dest", [])
    if not stat.S_ISREG(mode):
        log(f"{os.path.basename(path)}: present but not a regular file; downloading it and "
            "putting the file in its place")
        return False
    try:
        digest = pooch.file_hash(path, alg=algorithm)
    except OSError as exc:
        log(f"{os.path.basename(path)}: present but unreadable ({exc.strerror or exc}); "
            "downloading it again")
        return False
    if digest in accepted:
        return True
    log(f"{os.path.basename(path)}: present but its {algorithm} checksum {digest} is not a "
        "known one (corrupt or partial copy); downloading it again")
    return False


def _fetch_file(name, dest, mirrors, algorithm, expected, downloader, log):
    """Install `dest/name` from the first mirror that delivers a verified copy."""
    failures, network = [], False
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        try:
            _download_verified(url, dest, name, f"{algorithm}:{expected}", downloader)
        except _MirrorFailed as exc:
            log(f"{name}: mirror {mirror} failed: {exc}")
            failures.append((url, str(exc)))
            network = network or exc.network
        else:
            log(f"{name}: downloaded from {mirror} ({algorithm} verified)")
            return
    tried = "\n".join(f"  {url}: {reason}" for url, reason in failures)
    advice = ("Check the internet connection, or pass other mirrors" if network
              else "Pass other mirrors")
    raise FetchError(f"could not fetch {name} into {dest!r}: every mirror failed:\n{tried}\n"
                     f"{advice} (fetch(mirrors=[...]) or --mirror URL).", failures)


def _download_verified(url, dest, name, known_hash, downloader):
    """Download `url` with pooch into a fresh hidden folder in `dest`, check that it parses
    as IDX, then move it to `dest/name`. The folder goes on every exit (even Ctrl-C).

    Raises:
        _MirrorFailed: the download failed or the file is not the expected one.
        FetchError: the file cannot be written into `dest`.
    """
    try:
        staging_folder = tempfile.TemporaryDirectory(dir=dest, prefix=f".{name}.")
    except OSError as exc:
        raise FetchError(f"cannot fetch {url} into {dest!r}: {exc.strerror or exc}", []) \
            from None
    with staging_folder as staging:
        try:
            with _quiet_pooch():
                path = pooch.retrieve(url, known_hash, fname=name, path=staging,
                                      downloader=downloader)
        except requests.RequestException as exc:
            raise _describe_request_error(exc, downloader.timeout) from None
        except ValueError as exc:  # pooch's hash check (the downloader raises no ValueError)
            raise _MirrorFailed(_mismatch(known_hash, str(exc))) from None
        except OSError as exc:  # the downloader's own failures are _MirrorFailed
            raise FetchError(f"cannot fetch {url} into {dest!r}: {exc.strerror or exc}", []) \
                from None
        kinds = {"-images-": IMAGES_MAGIC, "-labels-": LABELS_MAGIC}
        try:
            read_idx(path, expected_magic=next((m for k, m in kinds.items() if k in name),
                                               None))
        except IDXError as exc:
            raise _MirrorFailed(f"checksum matches but the file is not valid IDX ({exc})") \
                from None
        try:
            os.chmod(path, 0o644)  # pooch's temporary file is private; a data file is not
            with open(path, "r+b") as f:
                os.fsync(f.fileno())  # its bytes on disk before the name points at them
            os.replace(path, os.path.join(dest, name))
        except OSError as exc:
            raise FetchError(f"cannot fetch {url} into {dest!r}: {exc.strerror or exc}", []) \
                from None


class LimitedDownloader:
    """A pooch downloader (requests, streamed) that keeps a download within its budget.

    Args:
        size: the file's size in bytes: a Content-Length announcing anything else is refused
            before the body is read, and a body is never read past size + 1 bytes.
        timeout: seconds to connect, and seconds a read may wait for data.
        deadline: seconds the whole download may take (checked between reads).

    Every failure, whatever requests, urllib3 or the socket raise, is a _MirrorFailed
    saying why in a few words; a failure to write the local file is an OSError.
    """

    chunk_bytes = 1 << 16

    def __init__(self, size, timeout=DEFAULT_TIMEOUT, deadline=DEFAULT_DEADLINE):
        self.size, self.timeout, self.deadline = size, timeout, deadline

    def __call__(self, url, output_file, pooch_instance=None, check_only=False):
        if check_only:
            return True
        end = time.monotonic() + self.deadline
        try:
            response = requests.get(url, stream=True, headers={"Accept-Encoding": "identity"},
                                    timeout=(self.timeout, min(self.timeout, self.deadline)))
        except requests.RequestException as exc:
            raise _describe_request_error(exc, self.timeout) from None
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, ValueError,
                UnicodeError) as exc:
            raise _MirrorFailed(f"{type(exc).__name__}: {exc}") from None
        with response:
            try:
                response.raise_for_status()
            except requests.HTTPError as exc:
                raise _describe_request_error(exc, self.timeout) from None
            self._check_length(response)
            with open(output_file, "wb") as out:
                written = 0
                for chunk in self._chunks(response, end):
                    written += len(chunk)
                    if written > self.size:
                        raise _MirrorFailed(f"sent more than the expected {self.size} bytes "
                                            "(the wrong file, or a body that never ends)")
                    out.write(chunk)
        if written < self.size:
            raise _MirrorFailed(f"truncated: the connection closed after {written} of the "
                                f"expected {self.size} bytes", network=True)

    def _check_length(self, response):
        """Refuse a Content-Length that is not a number or not the expected size."""
        length = response.headers.get("Content-Length")  # of the body as sent: read raw
        if length is None:
            return
        if not re.fullmatch(r"[0-9]{1,20}", length.strip()):  # not str.isdigit: '²' is one
            raise _MirrorFailed(f"invalid Content-Length {length[:40]!r}")
        if int(length) != self.size:
            raise _MirrorFailed(f"announces {int(length)} bytes (Content-Length), the file has "
                                f"{self.size}: not the expected file")

    def _chunks(self, response, end):
        """The body as sent (never decoded: a Content-Encoding cannot inflate it), read one
        system call at a time (a server trickling a byte a second cannot hold one read for
        long), until the deadline."""
        raw = response.raw
        if hasattr(raw, "read1"):  # urllib3 >= 2
            def read(size):
                return raw.read1(size, decode_content=False)
        else:  # urllib3 1: whole chunks, so the deadline is checked less often
            chunks = raw.stream(self.chunk_bytes, decode_content=False)

            def read(size):
                return next(chunks, b"")
        while True:
            if time.monotonic() > end:
                raise _MirrorFailed(f"too slow: not done after the deadline of {self.deadline} s",
                                    network=True)
            try:
                chunk = read(self.chunk_bytes)
            except requests.RequestException as exc:
                raise _describe_request_error(exc, self.timeout) from None
            except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
                raise _describe_stream_error(exc, self.timeout) from None
            if not chunk:
                return
            yield chunk


def _describe_stream_error(exc, timeout):
    """A _MirrorFailed for an error urllib3 or the socket raised while reading the body."""
    causes = _nested(exc)
    if any(isinstance(e, (urllib3.exceptions.ReadTimeoutError, TimeoutError))
           for e in causes):
        return _MirrorFailed(f"timed out (no data for {timeout} s)", network=True)
    if any(isinstance(e, (urllib3.exceptions.ProtocolError, http.client.IncompleteRead))
           for e in causes):
        return _MirrorFailed(f"truncated: the connection closed before the end of the file "
                             f"({causes[-1]})", network=True)
    return _MirrorFailed(f"the connection failed ({causes[-1]})", network=True)


@contextlib.contextmanager
def _quiet_pooch():
    """Silence pooch's own log lines ("Downloading data from ...") for the duration: fetch
    logs one line per file itself."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        yield
    finally:
        logger.setLevel(level)


def _mismatch(known_hash, pooch_message):
    """The reason for a download whose checksum is not `known_hash` ('alg:hex')."""
    algorithm, expected = known_hash.split(":")
    got = re.search(r"but got (\w+)", pooch_message)
    if got is None:  # pooch reworded its message: pass it on
        return f"{algorithm} checksum mismatch: expected {expected} ({pooch_message})"
    return f"{algorithm} checksum mismatch: expected {expected}, got {got.group(1)}"


def _describe_request_error(exc, timeout):
    """A _MirrorFailed saying in a few words why requests failed."""
    if isinstance(exc, requests.HTTPError):
        response = exc.response
        return _MirrorFailed(f"HTTP error {response.status_code} {response.reason}")
    causes = _nested(exc)
    # A stall in the body surfaces as a ConnectionError wrapping urllib3's ReadTimeoutError.
    # (Not urllib3's TimeoutError: its NewConnectionError, a refused connection, is one.)
    if isinstance(exc, requests.Timeout) or any(
            isinstance(e, urllib3.exceptions.ReadTimeoutError) for e in causes):
        return _MirrorFailed(f"timed out (no data for {timeout} s)", network=True)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return _MirrorFailed(f"truncated: the connection closed before the end of the file "
                             f"({causes[-1]})", network=True)
    if isinstance(exc, requests.ConnectionError):
        return _MirrorFailed(f"cannot connect ({causes[-1]})", network=True)
    return _MirrorFailed(f"{type(exc).__name__}: {exc}")


def _nested(exc):
    """`exc` and the exceptions it wraps, outermost first (requests wraps urllib3's, which
    wraps the socket's, in `args` or `reason`)."""
    chain = [exc]
    while True:
        inner = getattr(chain[-1], "reason", None) or (chain[-1].args or (None,))[-1]
        if not isinstance(inner, BaseException) or inner in chain:
            return chain
        chain.append(inner)


def _where(dataset, dest):
    """One line saying whether Solver, with no data_root, finds the files in `dest`."""
    if dataset == "mnist":
        try:
            found = data_home.find_data_root()
        except data_home.DataNotFoundError:
            found = None
        if found is not None and os.path.abspath(found) == os.path.abspath(dest):
            return "Solver finds them there with no data_root."
        if found is not None:
            return (f"Solver with no data_root uses {found} (earlier in its search order); to "
                    f"use these, set cfg['data_root'] = {dest!r}.")
    return f"Solver finds them with cfg['data_root'] = {dest!r}."


def main(argv=None):
    """Command line entry point; returns the exit status (0 done, 1 a file failed)."""
    parser = argparse.ArgumentParser(
        prog="python -m mnistlab.download",
        description="Download the four gzipped IDX files of a dataset, verifying each "
                    "checksum, trying mirrors in order; files already present and intact "
                    "are kept.")
    parser.add_argument("--dataset", choices=sorted(SOURCES), default="mnist",
                        help="which dataset (default: mnist)")
    parser.add_argument("--dest", default=None,
                        help="folder to put the files in (default: the per-user cache, "
                             f"{data_home.cache_dir('<dataset>')}, where Solver looks)")
    parser.add_argument("--force", action="store_true",
                        help="download again even the files already present and intact")
    parser.add_argument("--mirror", action="append", metavar="URL",
                        help="base URL to try instead of the built-in mirrors (repeatable, "
                             "tried in order)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds a connection may stall before trying the next mirror "
                             f"(default: {DEFAULT_TIMEOUT})")
    parser.add_argument("--deadline", type=float, default=DEFAULT_DEADLINE,
                        help="seconds one file's download from one mirror may take in all, "
                             f"however slowly the data comes (default: {DEFAULT_DEADLINE})")
    args = parser.parse_args(argv)
    dest = data_home.cache_dir(args.dataset) if args.dest is None else args.dest
    try:
        with _sigterm_as_interrupt():
            fetch(args.dataset, dest, mirrors=args.mirror, force=args.force,
                  timeout=args.timeout, deadline=args.deadline)
    except ValueError as exc:
        parser.error(str(exc))
    except (FetchError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print("interrupted: the files not yet complete were removed", file=sys.stderr)
        return 128 + getattr(exc, "signal", signal.SIGINT)
    print(f"{args.dataset}: the four files are in {os.path.abspath(dest)}")
    print(_where(args.dataset, dest))
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the partial download is removed."""
    signal = signal.SIGTERM


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Within the block, SIGTERM unwinds like Ctrl-C (removing partial files) instead of
    ending the process on the spot. Only in the main thread (where signals are delivered)."""
    def terminated(signum, frame):
        raise _Terminated()
    try:
        previous = signal.signal(signal.SIGTERM, terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
