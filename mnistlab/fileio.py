"""Writing files so that nothing a user saved is ever lost or half-written.

Everything is first written to a temporary file in the destination folder, then renamed
over the final name with os.replace, which is atomic: a reader (or a crash, or Ctrl-C) sees
either the old complete file or the new complete file, never a mixture.
"""
import contextlib
import json
import os
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
