"""Hostile mirrors on 127.0.0.1: whatever a server answers (any status, any Content-Length,
a body too short, too long, endless, trickling, gzip-encoded), fetch() installs the verified
file or raises FetchError naming each URL; nothing partial is left in dest, a body is never
read past the file's size + 1 byte, and memory stays small. Peak memory by tracemalloc; the
deadline tests assert which error, never how long it took.
"""
import http.server
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile import MIB, gzip_zeros, loopback_server, peak_memory
from mnistlab import download as fetch
from test_download import FILES, MNIST_NAMES, ROOT, assert_installed, source_for

NAME = MNIST_NAMES[1]
BODY = FILES[NAME]
ONE = source_for({NAME: BODY})
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


class HostileHandler(http.server.BaseHTTPRequestHandler):
    """GET /<mode>/<name>; the 'scripted' mode answers as server.script says."""
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes

    def do_GET(self):
        _, mode, name = self.path.split("/", 2)
        self.server.requests.append(mode)
        try:
            getattr(self, "mode_" + mode)(FILES[name])
        except (BrokenPipeError, ConnectionResetError):
            pass

    def start(self, status=200, headers=()):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()

    def mode_good(self, body):
        self.start(headers=[("Content-Length", str(len(body)))])
        self.wfile.write(body)

    def mode_endless(self, body):  # no Content-Length, zeros until the client hangs up
        self.start()
        while not self.server.stop.is_set():
            self.wfile.write(bytes(1 << 16))

    def mode_trickle(self, body):  # the right Content-Length, then a byte at a time
        self.start(headers=[("Content-Length", str(len(body)))])
        for byte in body:
            if self.server.stop.wait(0.02):
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()

    def mode_scripted(self, body):
        status, headers, payload = self.server.script
        self.start(status, headers)
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    with loopback_server(HostileHandler, requests=[], script=None) as httpd:
        yield httpd


def url(httpd, mode):
    host, port = httpd.server_address
    return f"http://{host}:{port}/{mode}/"


def run(httpd, dest, *modes, **kwargs):
    lines = []
    kwargs.setdefault("timeout", 5)
    fetch.fetch(ONE, str(dest), mirrors=[url(httpd, m) for m in modes], log=lines.append,
                **kwargs)
    return lines


def test_an_endless_body_is_cut_at_the_files_size(server, tmp_path):
    with peak_memory() as peak:
        lines = run(server, tmp_path, "endless", "good", deadline=30)
    assert f"sent more than the expected {len(BODY)} bytes" in lines[0]
    assert_installed(tmp_path, {NAME: BODY}) and peak() < 4 * MIB


def test_a_trickling_mirror_is_abandoned_at_the_deadline(server, tmp_path):
    lines = run(server, tmp_path, "trickle", "good", timeout=5, deadline=0.3)
    assert lines[0].endswith("too slow: not done after the deadline of 0.3 s")
    assert_installed(tmp_path, {NAME: BODY})


@pytest.mark.parametrize("length, reason", [
    ("abc", "invalid Content-Length 'abc'"), ("-1", "invalid Content-Length '-1'"),
    ("1e3", "invalid Content-Length '1e3'"), ("²", "invalid Content-Length '²'"),
    (str(10**30), "invalid Content-Length"), (str(10**15), f"announces {10**15} bytes"),
    (str(len(BODY) + 1), f"announces {len(BODY) + 1} bytes (Content-Length), the file has "
                         f"{len(BODY)}"),
])
def test_a_bad_content_length_fails_that_mirror_and_the_next_is_tried(server, tmp_path,
                                                                       length, reason):
    server.script = (200, [("Content-Length", length)], BODY)
    lines = run(server, tmp_path, "scripted", "good")
    assert reason in lines[0] and url(server, "scripted") in lines[0]
    assert server.requests == ["scripted", "good"]
    assert_installed(tmp_path, {NAME: BODY})


def test_a_content_encoding_cannot_inflate_a_download(server, tmp_path):
    bomb = gzip_zeros(64 * MIB)
    server.script = (200, [("Content-Encoding", "gzip"), ("Content-Length", str(len(bomb)))],
                     bomb)
    with peak_memory() as peak:
        with pytest.raises(fetch.FetchError, match="not the expected file"):
            run(server, tmp_path, "scripted")
    assert os.listdir(tmp_path) == [] and peak() < 4 * MIB


def test_a_fifo_at_the_destination_is_replaced_without_being_read(server, tmp_path):
    os.mkfifo(tmp_path / NAME)  # reading it for its checksum would block forever
    lines = run(server, tmp_path, "good")
    assert "not a regular file" in lines[0]
    assert_installed(tmp_path, {NAME: BODY})


def test_a_folder_at_the_destination_is_an_error_naming_it(server, tmp_path):
    os.mkdir(tmp_path / NAME)
    with pytest.raises(fetch.FetchError, match="a folder of that name is in the way"):
        run(server, tmp_path, "good")


def test_sigterm_during_a_download_leaves_nothing_behind(server, tmp_path):
    """The command line turns SIGTERM into the clean-up Ctrl-C gets (exit status 143)."""
    code = ("import sys; from mnistlab import download as d; sys.path.insert(0, %r); "
            "from test_fuzz_download import ONE; d.SOURCES['mnist'] = ONE; "
            "sys.exit(d.main(sys.argv[1:]))" % os.path.join(ROOT, "tests"))
    process = subprocess.Popen([sys.executable, "-c", code, "--dest", str(tmp_path),
                                "--mirror", url(server, "trickle")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while "trickle" not in server.requests and process.poll() is None:
            time.sleep(0.05)  # wait until the download is under way
        while (process.poll() is None
               and not any(name.startswith(".") for name in os.listdir(tmp_path))):
            time.sleep(0.01)  # ... and its partial file exists
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err and "removed" in err
    assert os.listdir(tmp_path) == []


STATUSES = st.sampled_from([200, 200, 200, 204, 206, 301, 404, 500])
LENGTHS = st.one_of(st.none(), st.sampled_from(["", " ", "abc", "-5", "0x10", "1,1", "²", "1" * 40]),
                    st.integers(0, 2 * len(BODY)).map(str), st.just(str(len(BODY))))


@FUZZ
@given(status=STATUSES, length=LENGTHS, cut=st.integers(0, 2 * len(BODY)),
       junk=st.binary(max_size=64), encoding=st.sampled_from([None, "gzip", "br", "x"]))
def test_any_answer_gives_the_verified_file_or_a_fetch_error(server, tmp_path, status, length,
                                                            cut, junk, encoding):
    body = (BODY + junk)[:cut]
    headers = [("Content-Length", length)] if length is not None else []
    headers += [("Content-Encoding", encoding)] if encoding else []
    server.script = (status, headers, body)
    dest = tmp_path / f"dest{len(os.listdir(tmp_path))}"
    with peak_memory() as peak:
        try:
            run(server, dest, "scripted")
        except fetch.FetchError as exc:
            assert url(server, "scripted") + NAME in str(exc)
            assert os.listdir(dest) == []
        else:
            # any non-error status whose body (up to Content-Length) is the verified file
            assert status < 400 and body.startswith(BODY)
            assert_installed(dest, {NAME: BODY})
    assert peak() < 4 * MIB
