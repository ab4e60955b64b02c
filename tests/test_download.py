"""fetch.py against a real HTTP server on 127.0.0.1 whose mirrors misbehave on purpose.

The server serves `/<mode>/<file name>`; the mode says how: `good`, `corrupt` (right length,
wrong bytes), `truncated` (Content-Length larger than the body, then the connection closes),
`missing` (404), `error` (500), `stall` (half the body, then silence). The files are tiny
generated IDX files with their own checksum table, so no real dataset is needed.
"""
import gzip
import hashlib
import http.server
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from mnistlab import download as fetch
from mnistlab import idx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENDORED = os.path.join(ROOT, "data")
MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
TIMEOUT = 5


def make_idx_gz(shape, seed):
    """A gzipped IDX file of unsigned bytes with the given shape and random content."""
    header = bytes([0, 0, 0x08, len(shape)]) + np.array(shape, dtype=">u4").tobytes()
    body = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    return gzip.compress(header + body.tobytes(), mtime=0)


FILES = dict(zip(MNIST_NAMES, [make_idx_gz((6, 4, 3), 0), make_idx_gz((6,), 1),
                               make_idx_gz((2, 4, 3), 2), make_idx_gz((2,), 3)]))


def source_for(files, algorithm="sha256"):
    """A Source whose checksum table accepts exactly `files` (name -> bytes)."""
    return fetch.Source(mirrors=(), algorithm=algorithm,
                        checksums={name: (hashlib.new(algorithm, body).hexdigest(),)
                                   for name, body in files.items()})


SOURCE = source_for(FILES)


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    """Answers GET /<mode>/<name> with server.files[name], delivered as `mode` says."""

    def do_GET(self):
        self.server.requests.append(self.path)
        _, mode, name = self.path.split("/", 2)
        body = self.server.files.get(name)
        if mode == "missing" or body is None:
            self.send_error(404)
        elif mode == "error":
            self.send_error(500)
        elif mode == "good":
            self.send_body(body, body)
        elif mode == "corrupt":
            self.send_body(bytes(b ^ 0xFF for b in body), body)
        elif mode == "truncated":
            self.send_body(body[:len(body) // 2], body)
        elif mode == "stall":
            self.send_body(body[:len(body) // 2], body)
            self.wfile.flush()
            self.server.release.wait(10)

    def send_body(self, sent, announced):
        """Send `sent` with a Content-Length announcing len(announced) bytes."""
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(announced)))
        self.end_headers()
        self.wfile.write(sent)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A threaded HTTP server on an ephemeral port of 127.0.0.1, shut down afterwards."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MirrorHandler)
    httpd.files = dict(FILES)
    httpd.requests = []
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(TIMEOUT)


def mirror(httpd, mode):
    host, port = httpd.server_address
    return f"http://{host}:{port}/{mode}/"


def run_fetch(httpd, dest, *modes, source=SOURCE, **kwargs):
    """fetch() from the server's mirrors in the given modes; returns the lines logged."""
    lines = []
    kwargs.setdefault("timeout", TIMEOUT)
    fetch.fetch(source, str(dest), mirrors=[mirror(httpd, m) for m in modes],
                log=lines.append, **kwargs)
    return lines


def assert_installed(dest, files=FILES):
    """dest holds exactly `files`, byte for byte, and nothing else (no temporaries)."""
    assert sorted(os.listdir(dest)) == sorted(files)
    for name, body in files.items():
        with open(os.path.join(dest, name), "rb") as f:
            assert f.read() == body


def test_downloads_every_file_verified_and_parseable(server, tmp_path):
    paths = fetch.fetch(SOURCE, str(tmp_path), mirrors=[mirror(server, "good")],
                        timeout=TIMEOUT, log=lambda line: None)
    assert paths == [os.path.join(str(tmp_path), name) for name in MNIST_NAMES]
    assert_installed(tmp_path)
    assert idx.read_idx(paths[0], idx.IMAGES_MAGIC).shape == (6, 4, 3)
    assert idx.read_idx(paths[1], idx.LABELS_MAGIC).shape == (6,)
    assert len(server.requests) == 4


@pytest.mark.parametrize("mode, reason", [
    ("corrupt", "sha256 checksum mismatch"),
    ("truncated", "truncated: received"),
    ("missing", "HTTP error 404"),
    ("error", "HTTP error 500"),
])
def test_a_failing_mirror_is_reported_and_the_next_one_used(server, tmp_path, mode, reason):
    lines = run_fetch(server, tmp_path, mode, "good")
    assert_installed(tmp_path)
    for name in MNIST_NAMES:
        failed = [line for line in lines if line.startswith(f"{name}: mirror")]
        assert len(failed) == 1
        assert mirror(server, mode) in failed[0] and reason in failed[0]
        assert f"/{mode}/{name}" in server.requests and f"/good/{name}" in server.requests


def test_a_stalled_mirror_times_out_and_the_next_one_is_used(server, tmp_path):
    lines = run_fetch(server, tmp_path, "stall", "good", timeout=0.25)
    assert_installed(tmp_path)
    assert any(mirror(server, "stall") in line and "timed out" in line for line in lines)


def test_all_mirrors_failing_raises_naming_each_and_leaves_nothing(server, tmp_path):
    modes = ("corrupt", "truncated", "missing", "error")
    with pytest.raises(fetch.FetchError) as info:
        run_fetch(server, tmp_path, *modes)
    message = str(info.value)
    assert MNIST_NAMES[0] in message
    reasons = ("checksum mismatch", "truncated", "HTTP error 404", "HTTP error 500")
    for mode, reason, (url, why) in zip(modes, reasons, info.value.failures, strict=True):
        assert url == mirror(server, mode) + MNIST_NAMES[0]
        assert reason in why
        assert f"{url}: {why}" in message
    assert os.listdir(tmp_path) == []


def test_a_checksum_valid_file_that_is_not_idx_is_refused(server, tmp_path):
    files = {"train-labels-idx1-ubyte.gz": gzip.compress(b"no IDX header here", mtime=0)}
    server.files.update(files)
    with pytest.raises(fetch.FetchError, match="not valid IDX"):
        run_fetch(server, tmp_path, "good", source=source_for(files))
    assert os.listdir(tmp_path) == []


def test_interrupt_removes_the_temporary_file(server, tmp_path, monkeypatch):
    def interrupt(path, expected_magic=None):
        assert os.path.exists(path) and path.endswith(".part.gz")  # mid-download
        raise KeyboardInterrupt

    monkeypatch.setattr(idx, "read_idx", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_fetch(server, tmp_path, "good")
    assert os.listdir(tmp_path) == []


def test_files_already_present_and_intact_are_not_downloaded_again(server, tmp_path):
    run_fetch(server, tmp_path, "good")
    lines = run_fetch(server, tmp_path, "good")
    assert len(server.requests) == 4
    assert sum("already present" in line for line in lines) == 4
    assert_installed(tmp_path)


def test_force_downloads_present_files_again(server, tmp_path):
    run_fetch(server, tmp_path, "good")
    run_fetch(server, tmp_path, "good", force=True)
    assert len(server.requests) == 8
    assert_installed(tmp_path)


@pytest.mark.parametrize("damage", [b"junk", FILES[MNIST_NAMES[0]][:50]],
                         ids=["corrupt", "partial"])
def test_a_present_but_damaged_file_is_replaced(server, tmp_path, damage):
    run_fetch(server, tmp_path, "good")
    (tmp_path / MNIST_NAMES[0]).write_bytes(damage)
    lines = run_fetch(server, tmp_path, "good")
    assert server.requests[4:] == [f"/good/{MNIST_NAMES[0]}"]
    assert any(MNIST_NAMES[0] in line and "downloading it again" in line for line in lines)
    assert_installed(tmp_path)


def test_md5_checksum_tables_are_supported(server, tmp_path):
    lines = run_fetch(server, tmp_path, "corrupt", "good", source=source_for(FILES, "md5"))
    assert_installed(tmp_path)
    assert any("md5 checksum mismatch" in line for line in lines)


@pytest.mark.parametrize("kwargs, message", [
    ({"dataset": "cifar"}, "unknown dataset 'cifar'"),
    ({"mirrors": []}, "no mirror"),
    ({"timeout": 0}, "timeout=0"),
    ({"dataset": fetch.Source(("http://127.0.0.1/",), "sha0", {})}, "'sha0'"),
])
def test_bad_arguments_are_refused_clearly(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fetch.fetch(**{"dest": str(tmp_path), **kwargs})


@pytest.mark.parametrize("name", sorted(fetch.SOURCES))
def test_builtin_sources_are_well_formed(name):
    source = fetch.SOURCES[name]
    assert tuple(source.checksums) == MNIST_NAMES
    hex_length = 2 * hashlib.new(source.algorithm).digest_size
    for digests in source.checksums.values():
        assert digests and all(len(d) == hex_length and int(d, 16) >= 0 for d in digests)
    assert source.mirrors and all(m.startswith(("http://", "https://")) for m in source.mirrors)


def vendored_mnist():
    """name -> bytes of the MNIST files vendored in data/; skips the test if any is missing."""
    paths = {name: os.path.join(VENDORED, name) for name in MNIST_NAMES}
    if not all(os.path.exists(p) for p in paths.values()):
        pytest.skip("the vendored MNIST files are not in data/")
    return {name: open(path, "rb").read() for name, path in paths.items()}


def test_the_vendored_mnist_files_are_recognised_as_intact(server):
    vendored_mnist()
    lines = []
    fetch.fetch("mnist", VENDORED, mirrors=[mirror(server, "missing")], timeout=TIMEOUT,
                log=lines.append)
    assert server.requests == []
    assert len(lines) == 4 and all("already present" in line for line in lines)


def fetch_command(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "fetch.py"), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_command_line_help():
    result = fetch_command("--help")
    assert result.returncode == 0
    for option in ("--dataset", "fashion-mnist", "--dest", "--force", "--mirror"):
        assert option in result.stdout


def test_command_line_downloads_mnist_from_a_mirror(server, tmp_path):
    server.files = vendored_mnist()
    result = fetch_command("--dest", str(tmp_path), "--mirror", mirror(server, "good"))
    assert result.returncode == 0, result.stderr
    assert_installed(tmp_path, server.files)


def test_command_line_failure_exits_1_naming_the_mirror(server, tmp_path):
    result = fetch_command("--dest", str(tmp_path), "--mirror", mirror(server, "missing"),
                           "--timeout", str(TIMEOUT))
    assert result.returncode == 1
    assert mirror(server, "missing") + MNIST_NAMES[0] in result.stderr
    assert "HTTP error 404" in result.stderr
    assert os.listdir(tmp_path) == []
