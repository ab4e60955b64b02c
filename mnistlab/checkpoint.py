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

from .checks import check_range
from .fileio import atomic_write
from .module import state_mismatches

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is unreadable, or does not fit the model it is loaded into."""


def optimizer_state_problems(optimizer, saved):
    """Every way `saved`, an optimizer state_dict(), fails to fit `optimizer` and its model:
    the rule, the step count, the learning rate, each hyper-parameter, and the name, shape
    and dtype of every state array. An empty list means it loads."""
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
    return problems


def _scalar(array):
    """The Python value of a 0-d array, or a phrase describing an array that is not 0-d."""
    return array.item() if array.shape == () else f"an array of shape {array.shape}"


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
    arrays.update(solver.model.state_dict())
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
    expected = solver.model.arrays()
    problems = state_mismatches(expected, model_part, "checkpoint")
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
        problems += state_mismatches(expected, tracker.best_weights, "checkpoint's best weights")
    if problems:
        raise CheckpointError(f"{path!r} does not fit the model:\n  " + "\n  ".join(problems))
    optimizer_state = {key: np.asarray(value)
                       for key, value in _unprefixed("optimizer", arrays).items()}
    problems = optimizer_state_problems(solver.optimizer, optimizer_state)
    if problems:
        raise CheckpointError(f"{path!r}: cannot load the optimizer state:\n  "
                              + "\n  ".join(problems))
    solver.optimizer.load_state_dict(optimizer_state)
    solver.model.load_state_dict(model_part, "checkpoint")
    solver.early_stopping, solver.history, solver.epoch = tracker, history, epoch
    solver.rng.bit_generator.state = rng_state
