"""Checkpoints: a whole training run in one `.npz` file, written atomically, read within a budget.

A checkpoint holds, as plain arrays (never pickles):

    format                       version of this layout
    model/<name>                 every parameter of the model
    buffer/<name>                every buffer (e.g. BatchNorm running statistics)
    optimizer/<key>              the optimizer's state_dict()
    best/<key>                   the early-stopping tracker (best weights, counters)
    history/<field>              the per-epoch History
    epoch                        epochs completed (the schedule's position)
    cfg, rng                     the cfg and the random generator's state, as JSON text

A checkpoint is data, never instructions, and a hostile one costs nothing to refuse. Reading
one (`open_checkpoint`) goes in this order, and anything wrong is a CheckpointError naming
the file and the entry:

1. the file: a regular file of at most MAX_CHECKPOINT_BYTES, a zip archive whose directory
   lists at most MAX_ENTRIES `.npy` entries, stored or deflated, none encrypted or repeated;
2. every entry's .npy header (a few hundred bytes each): a plain numeric or text dtype, and
   a declared size that agrees with the zip directory's;
3. the budget: each entry's dtype and shape against what the model needs (the exact shape
   and dtype of every parameter, buffer, best weight and optimizer state; a scalar for the
   counters; one value per epoch for the history; at most MAX_CONFIG_BYTES of cfg text).
   An entry that declares anything else, however large, is refused here, before a byte of
   its data is read: a decompression bomb or a header claiming 10^12 elements costs its
   header;
4. the values: epoch in [0, MAX_EPOCH], as many history values as epochs, counters in
   range, every weight and optimizer state finite, the rng state one the generator takes;
5. only then is anything restored, all at once: on any error the solver is untouched.

`Solver.resume(path, **overrides)` reads the file once. It takes the model, optimizer,
schedule position, history and random generator from the file, and the cfg keys that say
*how* to train (every key but `checkpoint_dir`); *where* the resumed run writes is the
caller's choice: `checkpoint_dir` from `overrides`, else the folder the checkpoint is in.
"""
import contextlib
import json
import math
import os
import zipfile

import numpy as np

from .checks import array_can_have_shape, check_range
from .config import (MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_EPOCH, OPTIONS, ConfigError,
                     validate_cfg)
from .fileio import (NotRegularFileError, OutputError, atomic_write, describe_write_error,
                     loads_json, open_regular, prepare_output_dir)
from .history import FIELDS as HISTORY_FIELDS
from .module import state_mismatches

FORMAT_VERSION = 1
MAX_CHECKPOINT_BYTES = 1 << 30   # a checkpoint file, and all its arrays together (read_checkpoint)
MAX_ENTRIES = 10_000             # arrays in one checkpoint (a CNN with Adam has under 100)
MAX_RNG_CHARS = 1 << 14          # the generator's state as JSON (PCG64's is ~200 characters)
MAX_NAME_CHARS = 200             # an optimizer's rule name, and similar short texts
_MAX_HEADER_BYTES = 10_000       # a .npy header (NumPy's own default limit)
# cfg keys a resumed run never takes from the checkpoint: where the run writes
NOT_CARRIED_OVER = ("checkpoint_dir",)

# Whatever zipfile, zlib and NumPy's header parser raise on hostile bytes (BadZipFile,
# zlib.error, EOFError, NotImplementedError, tokenize.TokenError, RecursionError, ...): the
# code inside these handlers only parses the file, so any such error means a corrupt file.
_ZIP_ERRORS = Exception


class CheckpointError(ValueError):
    """A checkpoint is unreadable, or does not fit the model it is loaded into."""


# ---- writing ---------------------------------------------------------------------------------

def _prefixed(prefix, arrays):
    return {f"{prefix}/{key}": np.asarray(value) for key, value in arrays.items()}


def _unprefixed(prefix, arrays):
    start = len(prefix) + 1
    return {key[start:]: value for key, value in arrays.items() if key.startswith(prefix + "/")}


def save_checkpoint(path, solver):
    """Write everything needed to continue `solver`'s run to `path` (.npz), atomically.

    Raises:
        OutputError: the file cannot be written (full disk, read-only folder, ...), naming
            the path; a previous file at `path` is kept unchanged.
    """
    arrays = {"format": np.array(FORMAT_VERSION),
              "epoch": np.array(solver.epoch, dtype=np.int64),
              "cfg": np.array(json.dumps(solver.cfg, default=repr)),
              "rng": np.array(json.dumps(solver.rng.bit_generator.state))}
    arrays.update(solver.model.state_dict())
    arrays.update(_prefixed("optimizer", solver.optimizer.state_dict()))
    arrays.update(_prefixed("best", solver.early_stopping.state_dict()))
    arrays.update(_prefixed("history", solver.history.as_dict()))
    try:
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays)
    except OutputError:
        raise
    except OSError as exc:
        raise describe_write_error(path, exc) from None


def checkpoint_bytes(solver, epochs=1000):
    """An upper estimate of the size of `solver`'s checkpoint after `epochs` epochs (at most
    max_epoch): the model twice (its best weights too), the optimizer's state, the history."""
    model = solver.model
    arrays = (model.arrays().values() if hasattr(model, "arrays")
              else [param for _, param, _ in model.named_parameters()])
    model_bytes = sum(np.asarray(array).nbytes for array in arrays)
    slots = len(solver.optimizer.state_names())
    history = 8 * len(HISTORY_FIELDS) * min(epochs, solver.cfg["max_epoch"])
    return model_bytes * (2 + slots) + history + (64 << 10)


def check_checkpoint_dir(solver):
    """Create and probe `solver.cfg['checkpoint_dir']`, if set: a folder, writable, with room
    for a checkpoint being written beside the last one. Called before the first epoch.

    Raises:
        OutputError: naming the folder and what is wrong.
    """
    folder = solver.cfg["checkpoint_dir"]
    if folder:
        prepare_output_dir(folder, "cfg['checkpoint_dir']", 2 * checkpoint_bytes(solver))


# ---- reading: the archive, within a budget ---------------------------------------------------

class _Header:
    """What an entry's .npy header declares: dtype, shape, memory order, sizes."""

    def __init__(self, dtype, shape, fortran_order, header_bytes):
        self.dtype, self.shape, self.fortran_order = dtype, shape, fortran_order
        self.header_bytes = header_bytes
        self.nbytes = math.prod(shape) * dtype.itemsize

    def shadow(self):
        """An array of this dtype and shape that takes no memory (for shape checks)."""
        return np.broadcast_to(np.zeros((), self.dtype), self.shape)

    def describe(self):
        return f"{self.dtype} {self.shape}"


class _Counting:
    """A read-only stream that counts the bytes read from it (to find a header's length)."""

    def __init__(self, stream):
        self.stream, self.count = stream, 0

    def read(self, size=-1):
        data = self.stream.read(size)
        self.count += len(data)
        return data


class CheckpointArchive:
    """An open checkpoint file: its zip directory checked; entries read one at a time, each
    only after its declared dtype and shape passed a check. Use `open_checkpoint`."""

    def __init__(self, path):
        self.path = os.fspath(path)
        try:
            self._file, size = open_regular(self.path)
        except FileNotFoundError:
            raise CheckpointError(f"no checkpoint at {self.path!r}") from None
        except NotRegularFileError as exc:
            raise CheckpointError(f"{self.path!r} is {exc.strerror}: pass a checkpoint file "
                                  "(.npz)") from None
        except OSError as exc:
            raise CheckpointError(f"{self.path!r}: cannot be opened ({exc.strerror or exc})") \
                from None
        try:
            if size > MAX_CHECKPOINT_BYTES:
                raise self.error(f"{size} bytes, more than the {MAX_CHECKPOINT_BYTES} a "
                                 "checkpoint may have: this is not a checkpoint")
            self._check_directory_size()
            self._zip = zipfile.ZipFile(self._file)
            self._infos = self._check_entries(self._zip.infolist())
            self.headers = {}
            for key in self._infos:
                try:
                    self.headers[key] = self._read_header(key)
                except CheckpointError:
                    raise
                except _ZIP_ERRORS as exc:
                    raise self.corrupt(exc, key) from None
        except CheckpointError:
            self.close()
            raise
        except _ZIP_ERRORS as exc:
            self.close()
            raise self.corrupt(exc) from None

    # -- messages

    def error(self, message, entry=None):
        where = f"{self.path!r}" if entry is None else f"{self.path!r}, entry {entry!r}"
        return CheckpointError(f"{where}: {message}")

    def corrupt(self, exc, entry=None):
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return self.error(f"not a readable checkpoint ({reason}); it is truncated or corrupt: "
                          "use another checkpoint, e.g. best.npz or last.npz", entry)

    # -- the zip directory

    def _check_directory_size(self):
        """Refuse a zip directory larger than MAX_ENTRIES entries can take, before zipfile
        reads it whole into memory."""
        end_record = getattr(zipfile, "_EndRecData", None)
        record = end_record(self._file) if end_record is not None else None
        if record is None:
            return  # zipfile itself refuses the file
        directory = record[zipfile._ECD_SIZE]
        if directory > MAX_ENTRIES * 1024:
            raise self.error(f"its zip directory declares {directory} bytes, more than "
                             f"{MAX_ENTRIES} entries take: the file is corrupt")

    def _check_entries(self, infos):
        if len(infos) > MAX_ENTRIES:
            raise self.error(f"{len(infos)} entries, more than the {MAX_ENTRIES} a checkpoint "
                             "may have")
        entries = {}
        for info in infos:
            name = info.filename
            if not name.endswith(".npy"):
                raise self.error("not an array (.npy): a checkpoint holds nothing else", name)
            if info.flag_bits & 0x1:
                raise self.error("encrypted: a checkpoint never is", name[:-4])
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise self.error(f"compressed with method {info.compress_type}; a checkpoint "
                                 "is stored or deflated", name[:-4])
            if name[:-4] in entries:
                raise self.error("appears twice in the zip directory", name[:-4])
            entries[name[:-4]] = info
        return entries

    def _read_header(self, key):
        info = self._infos[key]
        with self._zip.open(info) as raw:
            stream = _Counting(raw)
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(
                    stream, max_header_size=_MAX_HEADER_BYTES)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(
                    stream, max_header_size=_MAX_HEADER_BYTES)
            else:
                raise self.error(f".npy format version {version} is not supported", key)
        if not array_can_have_shape(shape, dtype.itemsize):
            raise self.error(f"its header declares the impossible shape {shape}", key)
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biufU":
            raise self.error(f"holds {dtype} values; a checkpoint holds numbers and text only "
                             "(never pickled objects)", key)
        header = _Header(dtype, tuple(shape), fortran_order, stream.count)
        if header.header_bytes + header.nbytes != info.file_size:
            raise self.error(f"its header declares {header.describe()}, {header.nbytes} bytes "
                             f"of data, but the zip directory gives the entry "
                             f"{info.file_size - header.header_bytes}: the file is corrupt", key)
        return header

    # -- entries

    def keys(self):
        return self.headers.keys()

    def read(self, key):
        """The array of entry `key`; its header must have passed the caller's checks."""
        header = self.headers[key]
        try:
            with self._zip.open(self._infos[key]) as stream:
                _read_exactly(stream, header.header_bytes)
                array = np.empty(header.shape[::-1] if header.fortran_order else header.shape,
                                 dtype=header.dtype)
                buffer = memoryview(array.reshape(-1).view(np.uint8))
                filled = 0
                while filled < header.nbytes:
                    chunk = stream.read(min(1 << 20, header.nbytes - filled))
                    if not chunk:
                        raise EOFError("the entry ends before its data")
                    buffer[filled:filled + len(chunk)] = chunk
                    filled += len(chunk)
                if stream.read(1):  # also makes zipfile check the entry's CRC
                    raise ValueError("the entry goes on past its data")
        except CheckpointError:
            raise
        except _ZIP_ERRORS as exc:
            raise self.corrupt(exc, key) from None
        return array.T if header.fortran_order else array

    def close(self):
        with contextlib.suppress(Exception):
            if getattr(self, "_zip", None) is not None:
                self._zip.close()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _read_exactly(stream, count):
    data = stream.read(count)
    if len(data) != count:
        raise EOFError("the entry ends inside its header")
    return data


def open_checkpoint(path):
    """The checkpoint at `path`, open, its zip directory and every entry's header checked
    (a context manager: `with open_checkpoint(path) as archive: ...`).

    Raises:
        CheckpointError: missing, not a regular file, too large, or not a checkpoint archive.
    """
    archive = CheckpointArchive(path)
    try:
        _check_format(archive)
    except BaseException:
        archive.close()
        raise
    return archive


def _scalar_entry(archive, key, kinds, what):
    """The Python value of 0-d entry `key` whose dtype kind is in `kinds`."""
    header = archive.headers.get(key)
    if header is None:
        raise archive.error("missing", key)
    if header.shape != () or header.dtype.kind not in kinds:
        raise archive.error(f"must be {what}, got {header.describe()}", key)
    return archive.read(key).item()


def _text_entry(archive, key, max_chars):
    header = archive.headers.get(key)
    if header is None:
        raise archive.error("missing", key)
    if header.shape != () or header.dtype.kind != "U" or header.dtype.itemsize > 4 * max_chars:
        raise archive.error(f"must be a text of at most {max_chars} characters, got "
                            f"{header.describe()}", key)
    return str(archive.read(key))


def _check_format(archive):
    if "format" not in archive.headers:
        raise archive.error("not a checkpoint (it has no 'format' entry): pass a file that "
                            "Solver.save_checkpoint wrote")
    version = _scalar_entry(archive, "format", "iu", "an integer")
    if version != FORMAT_VERSION:
        raise archive.error(f"format {version}; this version of mnistlab reads format "
                            f"{FORMAT_VERSION} only", "format")


def _cfg_entry(archive):
    """The cfg dict stored in the checkpoint (not validated)."""
    try:
        cfg = loads_json(_text_entry(archive, "cfg", MAX_CONFIG_BYTES), MAX_CONFIG_DEPTH)
    except ValueError as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise archive.error(str(exc), "cfg") from None
    if not isinstance(cfg, dict):
        raise archive.error(f"must hold a JSON object of cfg keys, not {type(cfg).__name__}",
                            "cfg")
    return cfg


def read_checkpoint(path, max_bytes=MAX_CHECKPOINT_BYTES):
    """All arrays of a checkpoint file, {name: array}, whatever model they fit.

    The arrays' declared sizes together must stay within `max_bytes`; nothing is read
    before that is checked.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, not a checkpoint, or
            declares more than `max_bytes`.
    """
    with open_checkpoint(path) as archive:
        declared = sum(header.nbytes for header in archive.headers.values())
        if declared > max_bytes:
            biggest = max(archive.headers, key=lambda key: archive.headers[key].nbytes)
            raise archive.error(f"its arrays declare {declared} bytes in all, more than the "
                                f"{max_bytes} allowed (the largest: {biggest!r}, "
                                f"{archive.headers[biggest].describe()})")
        return {key: archive.read(key) for key in archive.keys()}


def checkpoint_cfg(path):
    """The cfg a checkpoint was saved with, as stored (a dict; not validated)."""
    with open_checkpoint(path) as archive:
        return _cfg_entry(archive)


# ---- loading into a solver -------------------------------------------------------------------

def _expected_arrays(solver):
    """{entry: array of the exact dtype and shape} for every model-sized entry a checkpoint
    of `solver` may hold (the optimizer's states only once it has stepped)."""
    model_arrays = solver.model.arrays()
    expected = dict(model_arrays)
    expected.update({f"best/weights/{key}": array for key, array in model_arrays.items()})
    expected.update({f"optimizer/state/{name}/{slot}": param
                     for name, param, _ in solver.model.named_parameters()
                     for slot in solver.optimizer.state_names()})
    return expected


def _small_entry_problem(key, header, epoch):
    """Why entry `key`, not model-sized, has an impossible dtype or shape (None if fine)."""
    if key in ("epoch", "best/bad_epochs", "best/best_epoch", "optimizer/step_count"):
        ok, what = header.shape == () and header.dtype.kind in "iu", "an integer"
    elif key in ("best/best_value", "optimizer/learning_rate"):
        ok, what = header.shape == () and header.dtype.kind in "iuf", "a number"
    elif key.startswith("optimizer/hyperparameters/"):
        ok, what = header.shape == () and header.dtype.kind in "biuf", "a number or boolean"
    elif key in ("cfg", "optimizer/rule", "rng"):
        limit = {"cfg": MAX_CONFIG_BYTES, "rng": MAX_RNG_CHARS}.get(key, MAX_NAME_CHARS)
        ok = (header.shape == () and header.dtype.kind == "U"
              and header.dtype.itemsize <= 4 * limit)
        what = f"a text of at most {limit} characters"
    elif key.startswith("history/") and key[len("history/"):] in HISTORY_FIELDS:
        length = epoch if epoch is not None else 0
        ok = header.shape == (length,) and header.dtype.kind in "iuf"
        what = f"one number per epoch, {length} of them (the checkpoint's epoch)"
    else:
        return "unexpected: a checkpoint of this model has no such entry"
    return None if ok else f"must be {what}, got {header.describe()}"


def _check_declared(archive, solver, epoch):
    """Every entry's declared dtype and shape against what `solver` needs: all problems,
    before any data but the counters is read."""
    expected = _expected_arrays(solver)
    model_keys = [key for key in archive.keys() if key.startswith(("model/", "buffer/"))]
    shadows = {key: archive.headers[key].shadow() for key in model_keys}
    problems = state_mismatches(solver.model.arrays(), shadows, "checkpoint")
    best = [key for key in archive.keys() if key.startswith("best/weights/")]
    if best:
        problems += state_mismatches(
            {f"best/weights/{key}": array for key, array in solver.model.arrays().items()},
            {key: archive.headers[key].shadow() for key in best}, "checkpoint")
    rule = archive.headers.get("optimizer/rule")
    if rule is not None and _small_entry_problem("optimizer/rule", rule, epoch) is None:
        saved_rule = str(archive.read("optimizer/rule"))
        if saved_rule != type(solver.optimizer).__name__:
            problems.append(f"optimizer/rule: it was saved by {saved_rule!r}, this optimizer "
                            f"is {type(solver.optimizer).__name__}")
    for key, header in archive.headers.items():
        if key in ("format",) or key in model_keys or key in best:
            continue
        if key in expected:
            want = expected[key]
            if (header.shape, header.dtype) != (want.shape, want.dtype):
                problems.append(f"{key}: checkpoint has {header.describe()}, the model "
                                f"{want.dtype} {want.shape}")
            continue
        if key.startswith("optimizer/state/"):
            problems.append(f"{key}: unexpected (this optimizer and model have no such entry)")
            continue
        problem = _small_entry_problem(key, header, epoch)
        if problem:
            problems.append(f"{key}: {problem}")
    missing = [key for key in ("epoch", "cfg", "rng", "optimizer/rule", "optimizer/step_count",
                               "optimizer/learning_rate", "best/bad_epochs", "best/best_epoch",
                               "best/best_value",
                               *(f"history/{field}" for field in HISTORY_FIELDS))
               if key not in archive.headers]
    problems += [f"{key}: missing" for key in missing]
    return problems


def optimizer_state_problems(optimizer, saved):
    """Every way `saved`, an optimizer state_dict(), fails to fit `optimizer` and its model:
    the rule, the step count, the learning rate, each hyper-parameter, and the name, shape,
    dtype and finiteness of every state array. An empty list means it loads."""
    rule = str(saved.get("rule", ""))
    if rule != type(optimizer).__name__:
        return [f"it was saved by {rule or 'an unknown rule'!r}, this optimizer is "
                f"{type(optimizer).__name__}"]
    step = saved.get("step_count")
    if (step is None or step.shape != () or not np.issubdtype(step.dtype, np.integer)
            or step < 0):
        return [f"step_count must be a non-negative integer scalar, got {step!r}"]
    hyper = {f"hyperparameters/{k}": v for k, v in optimizer.hyperparameters().items()}
    states = ({} if int(step) == 0 else
              {f"state/{name}/{slot}": param
               for name, param, _ in optimizer.model.named_parameters()
               for slot in optimizer.state_names()})
    expected = {"rule", "step_count", "learning_rate", *hyper, *states}
    problems = [f"{key}: missing" for key in sorted(expected - set(saved))]
    problems += [f"{key}: unexpected (this optimizer and model have no such entry)"
                 for key in sorted(set(saved) - expected)]
    if "learning_rate" in saved:
        try:
            check_range("learning_rate", _scalar(saved["learning_rate"]), 0.0)
        except ValueError as error:
            problems.append(str(error))
    for key, value in hyper.items():
        if key in saved and _scalar(saved[key]) != value:
            problems.append(f"{key}: {_scalar(saved[key])!r} in the saved state, {value!r} "
                            "in this optimizer")
    for key, param in states.items():
        if key in saved and (saved[key].shape, saved[key].dtype) != (param.shape, param.dtype):
            problems.append(f"{key}: saved as {saved[key].dtype} {saved[key].shape}, the "
                            f"parameter is {param.dtype} {param.shape}")
        elif key in saved and not np.isfinite(saved[key]).all():
            problems.append(f"{key}: holds NaN or infinity")
    return problems


def _scalar(array):
    """The Python value of a 0-d array, or a phrase describing an array that is not 0-d."""
    return array.item() if array.shape == () else f"an array of shape {array.shape}"


def _read_state(archive, solver):
    """Everything a checkpoint restores into `solver`, read and checked; nothing applied.

    Returns:
        A dict: model, optimizer, tracker, history, epoch, rng.
    """
    epoch = None
    if "epoch" in archive.headers:
        epoch = _scalar_entry(archive, "epoch", "iu", "an integer")
        if not 0 <= epoch <= MAX_EPOCH:
            raise archive.error(f"{epoch} epochs completed; it must be in [0, {MAX_EPOCH}]",
                                "epoch")
    problems = _check_declared(archive, solver, epoch)
    if problems:
        raise archive.error("does not fit the model:\n  " + "\n  ".join(problems))
    # Every entry now declares what the model needs, or a scalar, or a bounded text.
    arrays = {key: archive.read(key) for key in archive.keys()}
    problems = []
    for key in (k for k in arrays if k.startswith(("model/", "buffer/", "best/weights/"))):
        if arrays[key].dtype.kind == "f" and not np.isfinite(arrays[key]).all():
            problems.append(f"{key}: holds NaN or infinity")
    optimizer_state = _unprefixed("optimizer", arrays)
    problems += [f"optimizer/{problem}" if problem.startswith(("state/", "hyper")) else
                 f"optimizer: {problem}"
                 for problem in optimizer_state_problems(solver.optimizer, optimizer_state)]
    try:
        history = type(solver.history)(
            {field: values.tolist() for field, values in _unprefixed("history", arrays).items()},
            monitor=solver.history.monitor)
    except ValueError as exc:
        problems.append(f"history: {exc}")
        history = None
    problems += _tracker_problems(arrays, epoch)
    if problems:
        raise archive.error("is inconsistent or tampered with:\n  " + "\n  ".join(problems))
    tracker = type(solver.early_stopping)(solver.early_stopping.monitor,
                                          solver.early_stopping.patience)
    tracker.load_state_dict(_unprefixed("best", arrays))
    return {"model": {k: v for k, v in arrays.items() if k.startswith(("model/", "buffer/"))},
            "optimizer": optimizer_state, "tracker": tracker, "history": history,
            "epoch": epoch, "rng": _rng_state(archive, solver)}


def _tracker_problems(arrays, epoch):
    """The early-stopping counters against the epochs completed."""
    bad, best = int(arrays["best/bad_epochs"]), int(arrays["best/best_epoch"])
    value = float(arrays["best/best_value"])
    has_weights = any(key.startswith("best/weights/") for key in arrays)
    problems = []
    if not 0 <= bad <= epoch:
        problems.append(f"best/bad_epochs: {bad}, outside [0, {epoch}] (the epochs completed)")
    if not -1 <= best < epoch:
        problems.append(f"best/best_epoch: {best}, outside [-1, {epoch - 1}]")
    elif best >= 0 and not math.isfinite(value):
        problems.append(f"best/best_value: {value} for best epoch {best}")
    elif (best >= 0) != has_weights:
        problems.append("best/weights: " + ("missing for best epoch " + str(best) if best >= 0
                                            else "present without a best epoch"))
    return problems


def _rng_state(archive, solver):
    """The saved random generator state, checked by a fresh generator of the solver's kind."""
    try:
        state = loads_json(str(archive.read("rng")), MAX_CONFIG_DEPTH)
        type(solver.rng.bit_generator)().state = state  # validates the state
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError, OverflowError, RuntimeError) as exc:
        raise archive.error(f"not a state of the {type(solver.rng.bit_generator).__name__} "
                            f"generator ({' '.join(str(exc).split())[:200]})", "rng") from None
    return state


def _apply(state, solver):
    solver.optimizer.load_state_dict(state["optimizer"])
    solver.model.load_state_dict(state["model"], "checkpoint")
    solver.early_stopping, solver.history = state["tracker"], state["history"]
    solver.epoch = state["epoch"]
    solver.rng.bit_generator.state = state["rng"]


def load_checkpoint(path, solver):
    """Restore `solver` (built from a cfg that fits the checkpoint) to the state saved at
    `path`.

    Everything is read and checked before anything changes: on error the solver is untouched.

    Raises:
        CheckpointError: unreadable file, or entries that do not fit the model, the optimizer,
            or each other.
    """
    with open_checkpoint(path) as archive:
        _cfg_entry(archive)  # a checkpoint whose cfg is not JSON is corrupt
        _apply(_read_state(archive, solver), solver)


def resumed_cfg(saved_cfg, path, overrides, entry_error):
    """The cfg a resumed run uses: the checkpoint's cfg but NOT_CARRIED_OVER keys, updated
    with `overrides`; checkpoint_dir is the overrides' if given, else the checkpoint's
    folder. A saved value that is not a valid cfg value is `entry_error(message)`."""
    carried = {key: value for key, value in saved_cfg.items()
               if key not in NOT_CARRIED_OVER and key not in overrides}
    for key, value in carried.items():
        if key not in OPTIONS:
            raise entry_error(f"unknown cfg key {key!r} (saved by another version of mnistlab?)"
                              f": pass {key}=... to resume only if it names a current key")
        problem = OPTIONS[key].check(value) if OPTIONS[key].check else None
        if problem:
            hint = (" (a model object is saved by its description only: pass model=... to "
                    "resume)" if key == "model" else f" (pass {key}=... to resume to replace it)")
            raise entry_error(f"cfg[{key!r}] = {value!r} is impossible: it must be "
                              f"{problem}{hint}")
    cfg = {**carried, **overrides}
    if "checkpoint_dir" not in overrides:
        cfg["checkpoint_dir"] = os.path.dirname(os.path.abspath(os.fspath(path)))
    return cfg


def resume(solver_class, path, overrides):
    """A `solver_class` rebuilt from checkpoint `path` and restored to its state, reading
    the file once (see the module docstring for which cfg keys carry over).

    Raises:
        CheckpointError: the file, or its cfg, is unreadable or does not fit.
        ConfigError: an override is invalid, or does not fit the saved cfg.
    """
    with open_checkpoint(path) as archive:
        saved = _cfg_entry(archive)
        cfg = resumed_cfg(saved, path, overrides,
                          lambda message: archive.error(message, "cfg"))
        try:
            validate_cfg(cfg)
        except ConfigError as exc:
            error = exc
            try:  # the checkpoint's own cfg, or the overrides?
                validate_cfg(resumed_cfg(saved, path, {}, lambda message: error))
            except ConfigError:
                raise archive.error(str(error), "cfg") from None
            raise
        solver = solver_class(cfg)
        _apply(_read_state(archive, solver), solver)
    return solver
