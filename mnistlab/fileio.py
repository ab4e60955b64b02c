"""Files in and out: nothing a user saved is lost or half-written, and no read exceeds a budget.

Writes: everything is first written to a temporary file in the destination folder, then
renamed over the final name with os.replace, which is atomic: a reader (or a crash, or
Ctrl-C) sees either the old complete file or the new complete file, never a mixture. An
output folder is checked before a run starts (`prepare_output_dir`: a folder, writable,
with some free space), so that a run never trains for an hour and then fails to save.

Reads: `open_regular` opens only regular files (a FIFO would block, a device never end),
`read_at_most` never reads more than a budget, and `loads_json` refuses JSON nested deeper
than a limit before parsing it (Python's parser would recurse until a RecursionError).
"""
import contextlib
import errno
import json
import os
import re
import shutil
import stat
import tempfile


def _current_umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_write(path, mode="w", **open_kwargs):
    """Open a temporary file beside `path` for writing; rename it to `path` on success.

    On any exception (KeyboardInterrupt included) the temporary file is removed and `path`
    keeps its previous content.

    Example:
        >>> with atomic_write("results.json") as f:
        ...     json.dump(results, f)
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                    suffix=".tmp")
    try:
        os.chmod(tmp_path, 0o666 & ~_current_umask())  # mkstemp's 0600 would survive the rename
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise


def write_json(path, data):
    """Write `data` as indented JSON, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


# ---- output folders, checked before the work -------------------------------------------------

class OutputError(OSError):
    """An output folder or file cannot be written; the message names the path, the reason and
    what to do. An OSError, so that code catching OSError (the command line) catches it."""

    def __init__(self, message, errno_=None):
        super().__init__(message)
        self.errno = errno_


def _reason(exc):
    return exc.strerror or str(exc)


def prepare_output_dir(path, what, free_bytes=0):
    """Create folder `path` if needed and check that a run can write there: it is a folder,
    a file can be created in it, and its disk has at least `free_bytes` free.

    Args:
        path: the folder.
        what: how to name it in messages, e.g. "--out" or "cfg['checkpoint_dir']".
        free_bytes: the free space the run's outputs need.

    Returns:
        The path, as given.

    Raises:
        OutputError: naming `what`, the path, what is wrong and what to do.
    """
    folder = os.fspath(path)
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise OutputError(f"{what} {folder!r} is not a folder (a file of that name exists): "
                          "choose another path", errno.ENOTDIR)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what} {folder!r} cannot be created ({_reason(exc)}): choose a "
                          "folder you can write to", exc.errno) from None
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe-", suffix=".tmp")
        try:
            os.write(fd, b"probe")
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as exc:
        raise OutputError(f"{what} {folder!r} is not writable ({_reason(exc)}): choose a "
                          "folder you can write to", exc.errno) from None
    free = shutil.disk_usage(folder).free
    if free < free_bytes:
        raise OutputError(f"{what} {folder!r}: only {_megabytes(free)} free on its disk, and "
                          f"the run needs about {_megabytes(free_bytes)}: free some space or "
                          "choose another folder", errno.ENOSPC)
    return path


def _megabytes(count):
    return f"{count / 2**20:.1f} MiB"


def describe_write_error(path, exc, kept=True):
    """An OutputError for `exc`, an OSError met while writing `path` atomically."""
    keeps = (f"; the previous {os.path.basename(path)} is kept unchanged"
             if kept and os.path.exists(path) else "")
    advice = {errno.ENOSPC: "free some space on that disk",
              errno.EDQUOT: "free some space on that disk",
              errno.EROFS: "choose a writable folder",
              errno.EACCES: "choose a folder you can write to",
              errno.EPERM: "choose a folder you can write to"}.get(exc.errno,
                                                                   "check that folder")
    return OutputError(f"cannot write {path!r}: {_reason(exc)}{keeps}. To go on, {advice}.",
                       exc.errno)


# ---- reads within a budget ---------------------------------------------------------------------

class NotRegularFileError(OSError):
    """A path names a folder, a FIFO, a device or a socket where a regular file is expected."""


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def open_regular(path):
    """Open regular file `path` for binary reading, never blocking on a FIFO.

    Returns:
        (file object, size in bytes).

    Raises:
        FileNotFoundError: no such file.
        NotRegularFileError: naming what `path` is instead.
        OSError: the file cannot be opened.
    """
    nonblocking = getattr(os, "O_NONBLOCK", 0)  # POSIX: opening a FIFO does not wait
    fd = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a file")
            raise NotRegularFileError(errno.EINVAL, f"{kind}, not a regular file",
                                      os.fspath(path))
        if nonblocking:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), info.st_size
    except BaseException:
        os.close(fd)
        raise


def read_at_most(stream, limit):
    """The stream's next bytes, at most `limit` of them (read in chunks: a stream that never
    ends, like /dev/zero, costs `limit` bytes of memory at most)."""
    chunks, left = [], limit
    while left > 0:
        chunk = stream.read(min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


_SPECIAL = re.compile(r'[\[\]{}"]')
_STRING_REST = re.compile(r'(?:[^"\\]|\\.)*"')


def json_depth(text):
    """How deeply the arrays and objects of JSON `text` nest (0 for a bare number or string),
    in one linear pass; brackets inside strings do not count. For invalid JSON the count
    stops at an unterminated string, where the parser stops too."""
    depth = deepest = position = 0
    while True:
        match = _SPECIAL.search(text, position)
        if match is None:
            return deepest
        position = match.end()
        if match.group() == '"':
            rest = _STRING_REST.match(text, position)
            if rest is None:
                return deepest
            position = rest.end()
        elif match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1


def loads_json(text, max_depth):
    """Parse JSON `text` whose arrays and objects nest at most `max_depth` deep.

    Raises:
        ValueError: saying what is wrong (the position, for invalid JSON); never a
            RecursionError, whatever the text.
    """
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"JSON nested {depth} deep, more than the {max_depth} allowed")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of more than 4300 digits
        raise ValueError(f"invalid JSON: {exc}") from None
