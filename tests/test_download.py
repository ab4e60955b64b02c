"""mnistlab.download against a real HTTP server on 127.0.0.1 whose mirrors misbehave on purpose.

The server serves `/<mode>/<file name>`; the mode says how: `good`, `corrupt` (right length,
wrong bytes), `truncated` (Content-Length larger than the body, then the connection closes),
`missing` (404), `error` (500), `stall` (half the body, then silence), `silent` (no answer at
all). The files are tiny generated IDX files with their own checksum table, so no real
dataset is needed.
"""
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import stat
import subprocess
import sys

import numpy as np
import pooch
import pytest

from hostile import loopback_server
from mnistlab import data_home, idx
from mnistlab import download as fetch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENDORED = os.path.join(ROOT, "data")
MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
TIMEOUT = 5
TRUNCATED = "truncated: the connection closed"


def make_idx_gz(shape, seed):
    """A gzipped IDX file of unsigned bytes with the given shape and random content."""
    header = bytes([0, 0, 0x08, len(shape)]) + np.array(shape, dtype=">u4").tobytes()
    body = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    return gzip.compress(header + body.tobytes(), mtime=0)


FILES = dict(zip(MNIST_NAMES, [make_idx_gz((6, 4, 3), 0), make_idx_gz((6,), 1),
                               make_idx_gz((2, 4, 3), 2), make_idx_gz((2,), 3)]))


def digest(body, algorithm="sha256"):
    return hashlib.new(algorithm, body).hexdigest()


def source_for(files, algorithm="sha256"):
    """A Source whose checksum and size tables accept exactly `files` (name -> bytes)."""
    return fetch.Source(mirrors=(), algorithm=algorithm,
                        checksums={name: (digest(body, algorithm),)
                                   for name, body in files.items()},
                        sizes={name: len(body) for name, body in files.items()})


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
        elif mode == "silent":
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
    with loopback_server(MirrorHandler, files=dict(FILES), requests=[]) as httpd:
        httpd.release = httpd.stop   # a stalled transfer waits on it
        yield httpd


def mirror(httpd, mode):
    host, port = httpd.server_address
    return f"http://{host}:{port}/{mode}/"


def closed_port_mirror():
    """A base URL on 127.0.0.1 where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


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


@pytest.fixture
def test_mnist(monkeypatch, tmp_path):
    """SOURCES['mnist'] checks the generated FILES; the cache is tmp_path/cache; no ./data
    nor checkout data/ comes before it in Solver's search. Returns the cache folder."""
    monkeypatch.setitem(fetch.SOURCES, "mnist", SOURCE)
    monkeypatch.setenv(data_home.ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setattr(data_home, "checkout_data_dir", lambda: None)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache" / "mnist"


def test_downloads_every_file_verified_and_parseable(server, tmp_path):
    paths = fetch.fetch(SOURCE, str(tmp_path), mirrors=[mirror(server, "good")],
                        timeout=TIMEOUT, log=lambda line: None)
    assert paths == [os.path.join(str(tmp_path), name) for name in MNIST_NAMES]
    assert_installed(tmp_path)
    assert idx.read_idx(paths[0], idx.IMAGES_MAGIC).shape == (6, 4, 3)
    assert idx.read_idx(paths[1], idx.LABELS_MAGIC).shape == (6,)
    assert len(server.requests) == 4
    if os.name == "posix":  # pooch's temporary file is private (0600); ours is readable
        assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o644 for p in paths)


def test_one_log_line_per_file_and_nothing_from_pooch(server, tmp_path, capfd):
    level = pooch.get_logger().level
    lines = run_fetch(server, tmp_path, "good")
    assert lines == [f"{name}: downloaded from {mirror(server, 'good')} (sha256 verified)"
                     for name in MNIST_NAMES]
    out, err = capfd.readouterr()
    assert "pooch" not in (out + err).lower() and "Downloading" not in out + err
    assert pooch.get_logger().level == level  # restored after the call


def test_dest_none_downloads_into_the_per_user_cache(server, test_mnist):
    lines = []
    paths = fetch.fetch(mirrors=[mirror(server, "good")], timeout=TIMEOUT, log=lines.append)
    assert paths == [os.path.join(str(test_mnist), name) for name in MNIST_NAMES]
    assert_installed(test_mnist)
    assert data_home.find_data_root() == str(test_mnist)  # where Solver looks


@pytest.mark.parametrize("mode, reason", [
    ("corrupt", "sha256 checksum mismatch"),
    ("truncated", TRUNCATED),
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


@pytest.mark.parametrize("mode", ["stall", "silent"])
def test_a_stalled_mirror_times_out_and_the_next_one_is_used(server, tmp_path, mode):
    one_file = {MNIST_NAMES[0]: FILES[MNIST_NAMES[0]]}  # one stall of `timeout`, not four
    lines = run_fetch(server, tmp_path, mode, "good", source=source_for(one_file),
                      timeout=0.25)
    assert_installed(tmp_path, one_file)
    assert lines[0] == f"{MNIST_NAMES[0]}: mirror {mirror(server, mode)} failed: timed out " \
                       "(no data for 0.25 s)"
    assert lines[1].startswith(f"{MNIST_NAMES[0]}: downloaded from {mirror(server, 'good')}")


def test_all_mirrors_failing_raises_naming_each_and_leaves_nothing(server, tmp_path):
    modes = ("corrupt", "truncated", "missing", "error")
    with pytest.raises(fetch.FetchError) as info:
        run_fetch(server, tmp_path, *modes)
    message = str(info.value)
    assert MNIST_NAMES[0] in message
    reasons = ("checksum mismatch", TRUNCATED, "HTTP error 404", "HTTP error 500")
    assert len(info.value.failures) == len(modes)
    for mode, reason, (url, why) in zip(modes, reasons, info.value.failures):
        assert url == mirror(server, mode) + MNIST_NAMES[0]
        assert reason in why
        assert f"{url}: {why}" in message
    # a broken transfer may be the network's fault
    assert "internet connection" in message
    assert os.listdir(tmp_path) == []


def test_a_checksum_mismatch_says_so_with_both_digests(server, tmp_path):
    with pytest.raises(fetch.FetchError) as info:
        run_fetch(server, tmp_path, "corrupt")
    name = MNIST_NAMES[0]
    corrupt = bytes(b ^ 0xFF for b in FILES[name])
    (_, why), = info.value.failures
    assert why == (f"sha256 checksum mismatch: expected {digest(FILES[name])}, "
                   f"got {digest(corrupt)}")
    assert "checksum mismatch" in str(info.value)
    assert "internet connection" not in str(info.value)  # not a connection problem
    assert os.listdir(tmp_path) == []


def test_a_refused_connection_suggests_checking_the_connection(tmp_path):
    url = closed_port_mirror()
    with pytest.raises(fetch.FetchError) as info:
        fetch.fetch(SOURCE, str(tmp_path), mirrors=[url], timeout=TIMEOUT,
                    log=lambda line: None)
    (_, why), = info.value.failures
    assert why.startswith("cannot connect") and "refused" in why.lower()
    assert "Check the internet connection" in str(info.value)


def test_http_errors_do_not_blame_the_connection(server, tmp_path):
    with pytest.raises(fetch.FetchError) as info:
        run_fetch(server, tmp_path, "missing", "error")
    assert "internet connection" not in str(info.value)
    assert "other mirrors" in str(info.value)


def test_a_checksum_valid_file_that_is_not_idx_is_refused(server, tmp_path):
    files = {"train-labels-idx1-ubyte.gz": gzip.compress(b"no IDX header here", mtime=0)}
    server.files.update(files)
    with pytest.raises(fetch.FetchError, match="not valid IDX"):
        run_fetch(server, tmp_path, "good", source=source_for(files))
    assert os.listdir(tmp_path) == []


def test_only_the_first_checksum_is_accepted_for_a_download(server, tmp_path):
    """The other checksums (data/'s recompressed copies) count for files already present."""
    name = MNIST_NAMES[1]
    other = make_idx_gz((6,), 99)
    source = fetch.Source((), "sha256", {name: (digest(other), digest(FILES[name]))},
                          {name: len(FILES[name])})
    with pytest.raises(fetch.FetchError, match=f"expected {digest(other)}, got "
                                                f"{digest(FILES[name])}"):
        run_fetch(server, tmp_path, "good", source=source)
    assert os.listdir(tmp_path) == []
    (tmp_path / name).write_bytes(FILES[name])
    lines = run_fetch(server, tmp_path, "good", source=source)
    assert lines == [f"{name}: already present with a known sha256 checksum, kept"]
    assert len(server.requests) == 1


def test_interrupt_during_the_download_leaves_nothing(server, tmp_path, monkeypatch):
    def interrupted(self, url, output_file, pooch_instance, check_only=False):
        with open(output_file, "wb") as f:
            f.write(FILES[MNIST_NAMES[0]][:10])  # a partial file...
        raise KeyboardInterrupt                   # ...then Ctrl-C

    monkeypatch.setattr(fetch.LimitedDownloader, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_fetch(server, tmp_path, "good")
    assert os.listdir(tmp_path) == []


def test_interrupt_after_the_checksum_before_the_rename_leaves_nothing(server, tmp_path,
                                                                       monkeypatch):
    seen = []

    def interrupt(path, expected_magic=None):
        seen.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch, "read_idx", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_fetch(server, tmp_path, "good")
    staging = os.path.dirname(seen[0])  # the verified file, in a hidden folder of dest
    assert os.path.dirname(staging) == str(tmp_path)
    assert os.path.basename(staging).startswith(".") and seen[0].endswith(MNIST_NAMES[0])
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


def test_a_failed_forced_download_keeps_the_present_files(server, tmp_path):
    run_fetch(server, tmp_path, "good")
    with pytest.raises(fetch.FetchError):
        run_fetch(server, tmp_path, "corrupt", force=True)
    assert_installed(tmp_path)


@pytest.mark.parametrize("damage", [b"junk", FILES[MNIST_NAMES[0]][:50]],
                         ids=["corrupt", "partial"])
def test_a_present_but_damaged_file_is_replaced(server, tmp_path, damage):
    run_fetch(server, tmp_path, "good")
    (tmp_path / MNIST_NAMES[0]).write_bytes(damage)
    lines = run_fetch(server, tmp_path, "good")
    assert server.requests[4:] == [f"/good/{MNIST_NAMES[0]}"]
    assert any(MNIST_NAMES[0] in line and digest(damage) in line
               and "downloading it again" in line for line in lines)
    assert_installed(tmp_path)


def test_md5_checksum_tables_are_supported(server, tmp_path):
    lines = run_fetch(server, tmp_path, "corrupt", "good", source=source_for(FILES, "md5"))
    assert_installed(tmp_path)
    corrupt = bytes(b ^ 0xFF for b in FILES[MNIST_NAMES[0]])
    assert any(f"md5 checksum mismatch: expected {digest(FILES[MNIST_NAMES[0]], 'md5')}, "
               f"got {digest(corrupt, 'md5')}" in line for line in lines)
    assert sum("(md5 verified)" in line for line in lines) == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"dataset": "cifar"}, "unknown dataset 'cifar'"),
    ({"mirrors": []}, "no mirror"),
    ({"timeout": 0}, "timeout=0"),
    ({"deadline": -1}, "deadline=-1"),
    ({"dataset": fetch.Source(("http://127.0.0.1/",), "sha0", {}, {})}, "'sha0'"),
    ({"dataset": SOURCE, "dest": None}, "dest=None"),
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
    assert source.algorithm == {"mnist": "sha256", "fashion-mnist": "md5"}[name]
    assert set(source.sizes) == set(MNIST_NAMES) and all(s > 1000 for s in source.sizes.values())


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


def test_main_downloads_into_the_cache_and_says_solver_finds_it(server, test_mnist, capsys):
    assert fetch.main(["--mirror", mirror(server, "good")]) == 0
    assert_installed(test_mnist)
    out = capsys.readouterr().out
    assert f"the four files are in {test_mnist}" in out
    assert "Solver finds them there with no data_root" in out


def test_main_names_data_root_when_solver_would_not_find_the_files(server, test_mnist,
                                                                   tmp_path, capsys):
    assert fetch.main(["--dest", str(tmp_path / "elsewhere"),
                       "--mirror", mirror(server, "good")]) == 0
    assert f"cfg['data_root'] = {str(tmp_path / 'elsewhere')!r}" in capsys.readouterr().out


def test_main_refuses_a_bad_timeout_with_a_usage_error(test_mnist, capsys):
    with pytest.raises(SystemExit) as info:
        fetch.main(["--timeout", "0", "--mirror", "http://127.0.0.1:9/"])
    assert info.value.code == 2
    assert "timeout=0" in capsys.readouterr().err


def fetch_command(*args, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "mnistlab.download", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd, check=False,
                          env={**os.environ, **(env or {})})


def test_command_line_help():
    result = fetch_command("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m mnistlab.download")
    for option in ("--dataset", "fashion-mnist", "--dest", "--force", "--mirror", "--timeout",
                   "--deadline"):
        assert option in result.stdout


def test_command_line_keeps_intact_files_in_the_cache_by_default(server, tmp_path):
    """No --dest: the cache ($MNISTLAB_DATA/mnist), here already holding data/'s copies."""
    vendored_mnist()
    cache = tmp_path / "cache" / "mnist"
    shutil.copytree(VENDORED, cache, ignore=shutil.ignore_patterns("*.md"))
    result = fetch_command("--mirror", mirror(server, "missing"), cwd=str(tmp_path),
                           env={data_home.ENV_VAR: str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already present") == 4 and server.requests == []
    assert f"the four files are in {cache}" in result.stdout
    if data_home.checkout_data_dir():   # an editable install: the checkout's data/ comes first
        assert f"Solver with no data_root uses {VENDORED}" in result.stdout
    else:                                # installed: the cache is the only place with MNIST
        assert "Solver finds them there with no data_root" in result.stdout


def test_command_line_failure_exits_1_naming_every_mirror(server, tmp_path):
    """The mirrors serve data/'s recompressed copies: not the mirrors' size, refused before
    their body is read."""
    server.files = vendored_mnist()
    result = fetch_command("--dest", str(tmp_path), "--mirror", mirror(server, "missing"),
                           "--mirror", mirror(server, "good"), "--timeout", str(TIMEOUT))
    assert result.returncode == 1
    assert mirror(server, "missing") + MNIST_NAMES[0] in result.stderr
    assert "HTTP error 404" in result.stderr
    assert mirror(server, "good") + MNIST_NAMES[0] in result.stderr
    assert "(Content-Length), the file has 9912422: not the expected file" in result.stderr
    assert "Traceback" not in result.stderr and "internet connection" not in result.stderr
    assert os.listdir(tmp_path) == []
