"""Checkpoints: a whole training run in one `.npz` file, written atomically, read safely.

A checkpoint holds, as plain arrays (it is read with allow_pickle=False):

    format                       version of this layout
    model/<name>                 every parameter of the model
    buffer/<name>                every buffer (e.g. BatchNorm running statistics)
    optimizer/<key>              the optimizer's state_dict()
    best/<key>                   the early-stopping tracker (best weights, counters)
    history/<field>              the per-epoch History
    epoch                        epochs completed (the schedule's position)
    cfg, rng                     the cfg and the random generator's state, as JSON text

Loading checks every array's name, shape and dtype against the model before anything is
copied, and reports every mismatch at once: a model is never half-loaded.
"""
import json
import zipfile

import numpy as np

from .fileio import atomic_write

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is unreadable, or does not fit the model it is loaded into."""


def model_arrays(model):
    """{'model/<name>': param, 'buffer/<name>': buffer} of `model` (references, not copies)."""
    arrays = {f"model/{name}": param for name, param, _ in model.named_parameters()}
    buffers = getattr(model, "named_buffers", lambda: ())()
    arrays.update({f"buffer/{name}": buffer for name, buffer in buffers})
    return arrays


def mismatches(expected, saved, what):
    """Every difference in names, shapes and dtypes between two {name: array} dicts."""
    problems = [f"{name}: missing from the {what}" for name in expected if name not in saved]
    problems += [f"{name}: in the {what} but not in the model" for name in saved
                 if name not in expected]
    for name in expected:
        if name in saved:
            want, got = expected[name], saved[name]
            if (got.shape, got.dtype) != (want.shape, want.dtype):
                problems.append(f"{name}: {what} has {got.dtype} {got.shape}, the model "
                                f"{want.dtype} {want.shape}")
    return problems


def copy_into_model(model, arrays, what="checkpoint"):
    """Copy {'model/..', 'buffer/..': array} into the model's arrays in place, all or nothing.

    Raises:
        CheckpointError: listing every name, shape or dtype that does not match.
    """
    targets = model_arrays(model)
    problems = mismatches(targets, arrays, what)
    if problems:
        raise CheckpointError(f"the {what} does not fit the model:\n  " + "\n  ".join(problems))
    for name, target in targets.items():
        target[...] = arrays[name]


def _prefixed(prefix, arrays):
    return {f"{prefix}/{key}": np.asarray(value) for key, value in arrays.items()}


def _unprefixed(prefix, arrays):
    start = len(prefix) + 1
    return {key[start:]: value for key, value in arrays.items() if key.startswith(prefix + "/")}


def save_checkpoint(path, solver):
    """Write everything needed to continue `solver`'s run to `path` (.npz), atomically."""
    arrays = {"format": np.array(FORMAT_VERSION),
              "epoch": np.array(solver.epoch, dtype=np.int64),
              "cfg": np.array(json.dumps(solver.cfg, default=repr)),
              "rng": np.array(json.dumps(solver.rng.bit_generator.state))}
    arrays.update({key: np.array(value) for key, value in model_arrays(solver.model).items()})
    arrays.update(_prefixed("optimizer", solver.optimizer.state_dict()))
    arrays.update(_prefixed("best", solver.early_stopping.state_dict()))
    arrays.update(_prefixed("history", solver.history.as_dict()))
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def read_checkpoint(path):
    """All arrays of a checkpoint file: {name: array}.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt or not a checkpoint.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path!r}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path!r} is not a readable checkpoint ({exc}); it is truncated "
                              "or corrupt: use another checkpoint, e.g. best.npz or last.npz")
    not_arrays = [name for name, value in arrays.items() if not isinstance(value, np.ndarray)]
    if not_arrays:
        raise CheckpointError(f"{path!r} is corrupt: {', '.join(not_arrays)} are not arrays")
    version = arrays.get("format")
    if version is None or version.shape != () or version.item() != FORMAT_VERSION:
        raise CheckpointError(f"{path!r} is not a checkpoint of format {FORMAT_VERSION}")
    return arrays


def checkpoint_cfg(path):
    """The cfg a checkpoint was saved with."""
    return json.loads(str(read_checkpoint(path)["cfg"]))


def load_checkpoint(path, solver):
    """Restore `solver` (built from the same cfg) to the state saved at `path`.

    Everything is read and checked before anything changes: on error the solver is untouched.

    Raises:
        CheckpointError: unreadable file, or arrays that do not match the model or optimizer.
    """
    arrays = read_checkpoint(path)
    model_part = {k: v for k, v in arrays.items() if k.startswith(("model/", "buffer/"))}
    expected = model_arrays(solver.model)
    problems = mismatches(expected, model_part, "checkpoint")
    try:
        tracker = type(solver.early_stopping)(solver.early_stopping.monitor,
                                              solver.early_stopping.patience)
        tracker.load_state_dict(_unprefixed("best", arrays))
        history = type(solver.history)(
            {field: values.tolist() for field, values in _unprefixed("history", arrays).items()},
            monitor=solver.history.monitor)
        epoch = int(arrays["epoch"])
        rng_state = json.loads(str(arrays["rng"]))
        type(solver.rng.bit_generator)().state = rng_state  # validates the state
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path!r} is incomplete or tampered with ({exc!r})") from None
    if tracker.best_weights:
        problems += mismatches(expected, tracker.best_weights, "checkpoint's best weights")
    if problems:
        raise CheckpointError(f"{path!r} does not fit the model:\n  " + "\n  ".join(problems))
    try:
        solver.optimizer.load_state_dict(_unprefixed("optimizer", arrays))
    except ValueError as exc:
        raise CheckpointError(f"{path!r}: {exc}") from None
    copy_into_model(solver.model, model_part, "checkpoint")
    solver.early_stopping, solver.history, solver.epoch = tracker, history, epoch
    solver.rng.bit_generator.state = rng_state
