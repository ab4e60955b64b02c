"""Hostile checkpoints: whatever the bytes, loading gives the checkpoint or a CheckpointError
naming the file (and the entry), leaves the solver untouched, and reads no more than the
model needs; decompression bombs and headers claiming 10^12 elements cost their header.

Peak memory is measured with tracemalloc (Python and NumPy allocations), never time.
"""
import errno
import json
import os
import shutil
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import tiny_cfg, write_dataset
from hostile import (MIB, deflate_bomb, npy_header, npz_entries, peak_memory,
                     replace_entries, stored, write_zip)
from mnistlab import checkpoint
from mnistlab.checkpoint import CheckpointError, read_checkpoint
from mnistlab.fileio import OutputError
from mnistlab.solver import Solver

BUDGET = 4 * MIB  # extra memory any refusal may take (the model itself is 62 KB)
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    folder, _ = write_dataset(tmp_path_factory.mktemp("tiny"))
    return folder


@pytest.fixture(scope="module")
def good(data_root, tmp_path_factory):
    """A checkpoint after one epoch of SGD with momentum (so with optimizer state)."""
    folder = tmp_path_factory.mktemp("good")
    runner = Solver(tiny_cfg(data_root, max_epoch=1, display_freq=1000))
    runner.train()
    path = str(folder / "last.npz")
    runner.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def solver(data_root):
    """A fresh solver of the checkpoint's cfg; tests check it is never changed."""
    return Solver(tiny_cfg(data_root, max_epoch=1, display_freq=1000))


def snapshot(runner):
    return ({k: v.copy() for k, v in runner.model.arrays().items()}, runner.epoch,
            runner.optimizer.step_count, len(runner.history), runner.rng.bit_generator.state)


def assert_unchanged(runner, before):
    arrays, epoch, steps, epochs, rng = before
    for name, array in runner.model.arrays().items():
        np.testing.assert_array_equal(array, arrays[name])
    assert (runner.epoch, runner.optimizer.step_count, len(runner.history)) == \
        (epoch, steps, epochs)
    assert runner.rng.bit_generator.state == rng


def refused(runner, path, *fragments):
    """Load `path` into `runner`: a CheckpointError naming the file and `fragments`, within
    the memory budget, the runner untouched. Returns the message."""
    before = snapshot(runner)
    with peak_memory() as peak:
        with pytest.raises(CheckpointError) as info:
            runner.load_checkpoint(path)
    message = str(info.value)
    assert repr(path) in message
    for fragment in fragments:
        assert fragment in message, message
    assert peak() < BUDGET, f"{peak() / MIB:.1f} MiB to refuse {message}"
    assert_unchanged(runner, before)
    return message


def rewritten(good, tmp_path, change, name="bad.npz"):
    """A copy of `good` whose arrays `change` edited (written by np.savez, honestly)."""
    with np.load(good, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    change(arrays)
    path = str(tmp_path / name)
    np.savez(path, **arrays)
    return path


def edited_cfg(**changes):
    def change(arrays):
        arrays["cfg"] = np.array(json.dumps({**json.loads(str(arrays["cfg"])), **changes}))
    return change


# ---- decompression bombs and headers that claim too much ------------------------------------

def test_a_deflate_bomb_is_refused_by_its_header_without_being_inflated(good, solver, tmp_path):
    # model/W declares 16 Mi float64 (128 MiB), honestly: the zip directory agrees, and the
    # deflated zeros really inflate that far. Only the header may be read.
    path = str(tmp_path / "bomb.npz")
    replace_entries(good, path, {"model/W.npy": deflate_bomb("model/W.npy", (16 * MIB,))})
    assert os.path.getsize(path) < 2 * MIB
    refused(solver, path, "model/W: checkpoint has float64 (16777216,), the model float64")


@pytest.mark.parametrize("entry", ["model/W", "history/val_acc", "optimizer/state/W/velocity",
                                   "best/weights/model/W", "epoch", "unexpected/extra"])
def test_a_bomb_in_any_entry_is_refused_before_it_is_read(good, solver, tmp_path, entry):
    path = str(tmp_path / "bomb.npz")
    replace_entries(good, path, {f"{entry}.npy": deflate_bomb(f"{entry}.npy", (8 * MIB,))})
    refused(solver, path, entry)


def test_a_bomb_is_refused_by_resume_too_and_by_read_checkpoint(good, tmp_path):
    path = str(tmp_path / "last.npz")
    replace_entries(good, path, {"model/W.npy": deflate_bomb("model/W.npy", (16 * MIB,))})
    with peak_memory() as peak:
        with pytest.raises(CheckpointError, match="model/W: checkpoint has float64"):
            Solver.resume(path)
        with pytest.raises(CheckpointError, match="more than the 1048576 allowed"):
            read_checkpoint(path, max_bytes=MIB)
    assert peak() < BUDGET + 2 * MIB  # resume also reads the (small) dataset


@pytest.mark.parametrize("shape", [(10**12,), (2**40, 2**40), (0, 10**15)])
def test_a_header_claiming_an_impossible_size_is_refused(good, solver, tmp_path, shape):
    header = npy_header(shape)
    path = str(tmp_path / "huge.npz")
    replace_entries(good, path, {"model/W.npy": stored("model/W.npy", header)})
    refused(solver, path, "model/W")


@pytest.mark.parametrize("descr, why", [("|O", "never pickled objects"),
                                        ([("a", "<f8")], "numbers and text only"),
                                        ("<c16", "numbers and text only"),
                                        ("<U3.5", "not a readable checkpoint")])
def test_entries_of_objects_or_records_are_refused_unread(good, solver, tmp_path, descr, why):
    header = npy_header((784, 10), descr)
    path = str(tmp_path / "objects.npz")
    replace_entries(good, path, {"model/W.npy": stored("model/W.npy", header + bytes(64))})
    refused(solver, path, "'model/W'", why)


# ---- the zip archive itself ------------------------------------------------------------------

def test_a_zip_directory_claiming_a_huge_size_is_refused(good, solver, tmp_path):
    raw = bytearray(open(good, "rb").read())
    end = raw.rfind(b"PK\x05\x06")
    raw[end + 12:end + 16] = (2**31).to_bytes(4, "little")  # size of the central directory
    path = tmp_path / "directory.npz"
    path.write_bytes(bytes(raw))
    refused(solver, str(path))


@pytest.mark.parametrize("edit, fragment", [
    (lambda e: e + [stored("notes.txt", b"hi")], "not an array (.npy)"),
    (lambda e: e + [e[0]], "appears twice"),
    (lambda e: [(e[0][0], e[0][1], 12, e[0][3], e[0][4])] + e[1:],
     "compressed with method 12"),
])
def test_archives_a_checkpoint_never_is_are_refused(good, solver, tmp_path, edit, fragment):
    entries = [stored(name, data) for name, data in npz_entries(good)]
    path = str(tmp_path / "odd.npz")
    write_zip(path, edit(entries))
    refused(solver, path, fragment)


def test_an_encrypted_entry_is_refused(good, solver, tmp_path):
    raw = bytearray(open(good, "rb").read())
    central = raw.find(b"PK\x01\x02")
    raw[central + 8] |= 0x01  # general purpose flags: encrypted
    path = tmp_path / "encrypted.npz"
    path.write_bytes(bytes(raw))
    refused(solver, str(path), "encrypted")


def test_a_fifo_a_folder_and_a_huge_sparse_file_are_refused_at_once(solver, tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    refused(solver, str(fifo), "FIFO")
    refused(solver, str(tmp_path), "a folder")
    sparse = tmp_path / "sparse.npz"
    with open(sparse, "wb") as f:
        f.truncate(checkpoint.MAX_CHECKPOINT_BYTES + 1)  # no disk space: a hole
    refused(solver, str(sparse), "more than the")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        solver.load_checkpoint(str(tmp_path / "missing.npz"))


# ---- contents: every value range-checked before anything is restored ------------------------

CONTENTS = [
    ("no cfg", lambda a: a.pop("cfg"), "entry 'cfg': missing"),
    ("epoch -7", lambda a: a.__setitem__("epoch", np.array(-7)), "-7 epochs completed"),
    ("epoch huge", lambda a: a.__setitem__("epoch", np.array(10**12)), "it must be in [0,"),
    ("epoch text", lambda a: a.__setitem__("epoch", np.array("1")), "must be an integer"),
    ("ragged history", lambda a: a.__setitem__("history/val_acc", np.arange(3.0)),
     "history/val_acc: must be one number per epoch, 1 of them"),
    ("NaN in the history", lambda a: a.__setitem__("history/train_loss", np.array([np.nan])),
     "'train_loss' holds a value that is not a finite number"),
    ("accuracy 2", lambda a: a.__setitem__("history/val_acc", np.array([2.0])),
     "accuracy outside [0, 1]"),
    ("history field missing", lambda a: a.pop("history/l2_penalty"),
     "history/l2_penalty: missing"),
    ("NaN weights", lambda a: a.__setitem__("model/W", np.full_like(a["model/W"], np.nan)),
     "model/W: holds NaN or infinity"),
    ("NaN velocity", lambda a: a.__setitem__(
        "optimizer/state/W/velocity", np.full_like(a["optimizer/state/W/velocity"], np.inf)),
     "optimizer/state/W/velocity: holds NaN or infinity"),
    ("velocity of another shape", lambda a: a.__setitem__(
        "optimizer/state/W/velocity", np.zeros((3, 3))),
     "optimizer/state/W/velocity: checkpoint has float64 (3, 3), the model float64 (784, 10)"),
    ("another rule", lambda a: a.__setitem__("optimizer/rule", np.array("Adam")),
     "saved by 'Adam', this optimizer is SGD"),
    ("best epoch after the last", lambda a: a.__setitem__("best/best_epoch", np.array(5)),
     "best/best_epoch: 5, outside [-1, 0]"),
    ("negative bad epochs", lambda a: a.__setitem__("best/bad_epochs", np.array(-1)),
     "best/bad_epochs: -1"),
    ("rng nested", lambda a: a.__setitem__("rng", np.array("[" * 5000 + "]" * 5000)),
     "entry 'rng': not a state of the PCG64 generator (JSON nested 5000 deep"),
    ("rng of another generator", lambda a: a.__setitem__(
        "rng", np.array(json.dumps(np.random.MT19937(0).state, default=lambda a: a.tolist()))),
     "entry 'rng'"),
    ("rng huge", lambda a: a.__setitem__("rng", np.array("x" * 100_000)),
     "rng: must be a text of at most"),
    ("cfg not JSON", lambda a: a.__setitem__("cfg", np.array("{not json")),
     "entry 'cfg': invalid JSON at line 1, column 2"),
    ("cfg a list", lambda a: a.__setitem__("cfg", np.array("[1, 2]")),
     "entry 'cfg': must hold a JSON object of cfg keys, not list"),
    ("cfg nested", lambda a: a.__setitem__("cfg", np.array('{"a": ' + "[" * 10**4 + "]" * 10**4
                                                           + "}")),
     "entry 'cfg': JSON nested 10001 deep"),
    ("format 2", lambda a: a.__setitem__("format", np.array(2)), "format 2"),
    ("no format", lambda a: a.pop("format"), "not a checkpoint"),
]


@pytest.mark.parametrize("what, change, fragment", CONTENTS, ids=[c[0] for c in CONTENTS])
def test_impossible_contents_are_refused_before_anything_is_restored(good, solver, tmp_path,
                                                                     what, change, fragment):
    refused(solver, rewritten(good, tmp_path, change), fragment)


@pytest.mark.parametrize("change, fragment", [
    (edited_cfg(batch_size=-3), "entry 'cfg': cfg['batch_size'] = -3 is impossible"),
    (edited_cfg(num_classes=10**6), "cfg['num_classes'] = 1000000 is impossible"),
    (edited_cfg(no_such_key=1), "unknown cfg key 'no_such_key'"),
    (edited_cfg(model="<a model object>"), "pass model=... to resume"),
    (lambda a: a.__setitem__("cfg", np.array("{not json")), "entry 'cfg': invalid JSON"),
    (lambda a: a.pop("cfg"), "entry 'cfg': missing"),
    (lambda a: a.__setitem__("epoch", np.array(-7)), "-7 epochs completed"),
])
def test_resume_refuses_what_load_refuses_and_a_bad_saved_cfg(good, tmp_path, change, fragment):
    path = rewritten(good, tmp_path, change, name="last.npz")
    with pytest.raises(CheckpointError) as info:
        Solver.resume(path)
    assert fragment in str(info.value) and repr(path) in str(info.value)


def test_a_bad_override_is_a_config_error_not_the_checkpoints(good, tmp_path):
    from mnistlab.config import ConfigError
    shutil.copy(good, tmp_path / "last.npz")
    with pytest.raises(ConfigError, match="batch_size"):
        Solver.resume(str(tmp_path / "last.npz"), batch_size=0)


# ---- a checkpoint is data, not instructions -------------------------------------------------

def test_resume_writes_where_the_caller_says_never_where_the_checkpoint_says(good, tmp_path,
                                                                             capsys):
    elsewhere = tmp_path / "elsewhere"
    path = rewritten(good, tmp_path, edited_cfg(checkpoint_dir=str(elsewhere), max_epoch=2),
                     name="last.npz")
    resumed = Solver.resume(path)
    assert resumed.cfg["checkpoint_dir"] == str(tmp_path)  # the checkpoint's own folder
    resumed.train()
    assert not elsewhere.exists()
    assert sorted(os.listdir(tmp_path)) == ["last.npz"]
    assert int(read_checkpoint(path)["epoch"]) == 2
    chosen = tmp_path / "chosen"
    Solver.resume(path, checkpoint_dir=str(chosen), max_epoch=3).train()
    assert sorted(os.listdir(chosen)) == ["last.npz"] and not elsewhere.exists()
    Solver.resume(path, checkpoint_dir=None, max_epoch=4).train()  # writes nothing
    assert sorted(os.listdir(tmp_path)) == ["chosen", "last.npz"]
    capsys.readouterr()


def test_resume_opens_the_file_once(good, tmp_path, monkeypatch):
    opened = []
    original = checkpoint.CheckpointArchive.__init__

    def spy(self, path):
        opened.append(path)
        original(self, path)
    monkeypatch.setattr(checkpoint.CheckpointArchive, "__init__", spy)
    shutil.copy(good, tmp_path / "last.npz")
    resumed = Solver.resume(str(tmp_path / "last.npz"))
    assert opened == [str(tmp_path / "last.npz")] and resumed.epoch == 1


# ---- fuzzing: any damage gives the checkpoint or a CheckpointError --------------------------

def load_or_refuse(runner, raw, folder):
    """Load the bytes `raw` as a checkpoint into `runner`: it loads, or a CheckpointError
    naming the file leaves the runner untouched; within the memory budget either way."""
    path = os.path.join(folder, "fuzzed.npz")
    with open(path, "wb") as f:
        f.write(raw)
    before = snapshot(runner)
    with peak_memory() as peak:
        try:
            runner.load_checkpoint(path)
        except CheckpointError as exc:
            assert repr(path) in str(exc)
            assert_unchanged(runner, before)
        else:  # restore the fresh state for the next example
            runner.epoch, runner.optimizer.step_count = before[1], before[2]
            runner.model.load_state_dict(before[0])
            runner.history = type(runner.history)(monitor=runner.history.monitor)
            runner.optimizer.state = {}
            runner.rng.bit_generator.state = before[4]
    assert peak() < BUDGET


@FUZZ
@given(data=st.data())
def test_flipped_bytes_in_the_zip_directory_give_the_checkpoint_or_checkpoint_error(
        good, solver, tmp_path, data):
    raw = bytearray(open(good, "rb").read())
    start = raw.find(b"PK\x01\x02")  # the central directory and its end record
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(start, len(raw) - 1))
        raw[position] ^= data.draw(st.integers(1, 255))
    load_or_refuse(solver, bytes(raw), str(tmp_path))


@FUZZ
@given(data=st.data())
def test_flipped_bytes_anywhere_give_the_checkpoint_or_checkpoint_error(good, solver, tmp_path,
                                                                        data):
    raw = bytearray(open(good, "rb").read())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(raw))))
    load_or_refuse(solver, bytes(raw[:cut]), str(tmp_path))


ENTRIES = ["model/W", "model/b", "optimizer/state/W/velocity", "history/val_acc", "epoch",
           "cfg", "rng", "best/best_epoch", "optimizer/step_count", "format"]
DESCRS = ["<f8", "<f4", ">f8", "<i8", "|u1", "|b1", "<U10", "<U100000", "|O", "<c8"]


@FUZZ
@given(entry=st.sampled_from(ENTRIES), descr=st.sampled_from(DESCRS),
       shape=st.lists(st.one_of(st.integers(0, 12), st.integers(0, 2**40)), max_size=3),
       deflated=st.booleans(), body=st.integers(0, 3 * MIB), lie=st.integers(-2, 2))
# An empty shape whose other extents NumPy cannot address: 0 bytes, yet no array has it.
@example(entry="model/W", descr="<f8", shape=[0, 2**30, 2**30], deflated=False, body=0, lie=0)
def test_an_entry_of_any_declared_type_and_size_costs_no_more_than_its_budget(
        good, solver, tmp_path, entry, descr, shape, deflated, body, lie):
    """Replace one entry by a header of any dtype and shape, followed by `body` zero bytes,
    deflated (a bomb) or stored, the zip directory telling the truth or lying by `lie`."""
    header = npy_header(shape, descr)
    if deflated:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = compressor.compress(header + bytes(body)) + compressor.flush()
    else:
        payload = header + bytes(body)
    replacement = (f"{entry}.npy", payload, 8 if deflated else 0,
                   zlib.crc32(header + bytes(body)), max(0, len(header) + body + lie))
    path = str(tmp_path / "entry.npz")
    replace_entries(good, path, {f"{entry}.npy": replacement})
    load_or_refuse(solver, open(path, "rb").read(), str(tmp_path))


# ---- writing: checked before the first epoch, a full disk keeps the last good file -----------

def test_a_checkpoint_dir_that_cannot_be_used_fails_before_the_first_epoch(data_root, tmp_path,
                                                                          monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for folder, fragment in ((a_file, "is not a folder"),
                             (a_file / "sub", "cannot be created (Not a directory)")):
        with pytest.raises(OutputError) as info:
            Solver(tiny_cfg(data_root, checkpoint_dir=str(folder)))
        assert f"cfg['checkpoint_dir'] {str(folder)!r}" in str(info.value)
        assert fragment in str(info.value)

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr("tempfile.mkstemp", read_only)  # root ignores a read-only mode
    with pytest.raises(OutputError, match=r"is not writable \(Permission denied\)"):
        Solver(tiny_cfg(data_root, checkpoint_dir=str(tmp_path / "ro")))
    monkeypatch.undo()

    class Full:
        free = 1000
    monkeypatch.setattr("shutil.disk_usage", lambda path: Full)
    with pytest.raises(OutputError, match=r"only 0.0 MiB free on its disk, and the run needs"):
        Solver(tiny_cfg(data_root, checkpoint_dir=str(tmp_path / "full")))


def test_a_full_disk_mid_run_names_the_path_and_keeps_the_last_good_checkpoint(
        data_root, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "ck"
    runner = Solver(tiny_cfg(data_root, max_epoch=1, checkpoint_dir=str(folder)))
    runner.train()
    runner.cfg["max_epoch"] = 3  # the run goes on, and the disk fills up
    last = (folder / "last.npz").read_bytes()
    savez = np.savez

    def disk_full(file, **arrays):
        file.write(b"PK" + bytes(1000))  # some bytes reach the disk, then it is full
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(OutputError) as info:
        runner.train()
    message = str(info.value)
    assert repr(str(folder / "last.npz")) in message and "No space left on device" in message
    assert "the previous last.npz is kept unchanged" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert (folder / "last.npz").read_bytes() == last  # byte-identical
    assert sorted(os.listdir(folder)) == ["best.npz", "last.npz"]  # no temporary left
    monkeypatch.setattr(np, "savez", savez)
    resumed = Solver.resume(str(folder / "last.npz"))
    assert resumed.epoch == 1
    capsys.readouterr()


def test_read_checkpoint_reads_a_real_checkpoint(good):
    arrays = read_checkpoint(good)
    assert int(arrays["epoch"]) == 1 and arrays["model/W"].shape == (784, 10)
    with zipfile.ZipFile(good) as archive:
        assert {name[:-4] for name in archive.namelist()} == set(arrays)
