"""The command line: help, cfg from file and flags, output files, clear errors."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from mnistlab.cli import (EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, main, parse_flag,
                          parse_value)
from mnistlab.config import OPTIONS
from mnistlab.solver import Solver
from conftest import ROOT, tiny_cfg


def console_script():
    """The installed `mnistlab` command, beside this Python's executable."""
    return shutil.which("mnistlab") or os.path.join(os.path.dirname(sys.executable), "mnistlab")


@pytest.mark.parametrize("command", [
    lambda: [sys.executable, os.path.join(ROOT, "solver.py")],   # the assignment's face
    lambda: [sys.executable, "-m", "mnistlab"],
    lambda: [console_script()],
], ids=["solver.py", "python -m mnistlab", "mnistlab"])
def test_help_lists_every_cfg_key_with_its_default(command, tmp_path):
    out = subprocess.run([*command(), "--help"], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout
    for key, option in OPTIONS.items():
        assert f"--{key}" in out
    assert "[0.01]" in out and "--nesterov BOOL" in out


def test_flag_values_are_read_as_json_or_text():
    assert parse_value("0.1") == 0.1 and parse_value("100") == 100
    assert parse_value("true") is True and parse_value("None") is None
    assert parse_value("data/fashion") == "data/fashion"


@pytest.mark.parametrize("text, value", [("true", True), ("True", True), ("1", True),
                                         ("yes", True), ("YES", True), ("false", False),
                                         ("False", False), ("0", False), ("no", False)])
def test_boolean_flags_take_the_usual_words(text, value):
    assert parse_flag("nesterov", text) is value and parse_flag("progress", text) is value


def test_boolean_words_stay_numbers_for_other_keys():
    assert parse_flag("momentum", "1") == 1 and parse_flag("momentum", "0") == 0
    assert parse_flag("data_root", "yes") == "yes"


def test_a_boolean_flag_reaches_the_cfg(tiny_data, tmp_path):
    code = main(["--data_root", tiny_data, "--max_epoch", "1", "--val_size", "100",
                 "--nesterov", "True", "--momentum", "0.9", "--out", str(tmp_path)])
    assert code == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["cfg"]["nesterov"] is True


def test_a_run_prints_the_logs_and_writes_curves_and_metrics(tiny_data, tmp_path, capsys):
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps(tiny_cfg(tiny_data, max_epoch=1, batch_size=50)))
    out = tmp_path / "out"
    code = main(["--config", str(config), "--max_epoch", "2", "--learning_rate", "0.05",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Epoch [1]\t Average validation loss" in printed and "Final test accuracy" in printed
    assert sorted(os.listdir(out)) == ["curves_acc.png", "curves_loss.png", "metrics.json"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["cfg"]["max_epoch"] == 2 and metrics["cfg"]["batch_size"] == 50
    assert metrics["cfg"]["learning_rate"] == 0.05 and len(metrics["history"]["val_acc"]) == 2
    assert 0 < metrics["test_acc"] <= 1
    assert all(os.path.getsize(out / name) > 1000 for name in ("curves_acc.png", "curves_loss.png"))


@pytest.mark.parametrize("argv, message", [
    (["--batch_size", "0"], "cfg['batch_size'] = 0 is impossible"),
    (["--optimizer", "adamm"], "did you mean 'adam'?"),
    (["--model", "mpl"], "did you mean 'mlp'?"),
    (["--nesterov", "maybe"], "invalid nesterov: 'maybe'"),
    (["--data_root", "/no/such/folder"], f"MNIST is in {os.path.join(ROOT, 'data')}"),
])
def test_bad_values_exit_with_a_message(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "runs" / "out")]) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == [], "a failed start leaves no output folder behind"


def test_a_failed_start_removes_every_folder_it_created_and_no_other(tmp_path, capsys):
    kept = tmp_path / "kept"
    kept.mkdir()
    out = kept / "new" / "deeper" / "out"
    assert main(["--data_root", "/no/such/folder", "--out", str(out)]) == EXIT_BAD_INPUT
    assert "MNIST is in" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["kept"] and os.listdir(kept) == []


def test_invalid_json_config_names_the_file_and_the_position(tmp_path, capsys):
    config = tmp_path / "cfg.json"
    config.write_text('{"max_epoch": 2,\n "batch_size" 50}')
    assert main(["--config", str(config)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert str(config) in err and "line 2, column 15" in err and "Traceback" not in err


@pytest.mark.parametrize("content, message", [("[1, 2]", "must hold a JSON object"),
                                              (b"\xff\xfe{}", "not a UTF-8 text file")])
def test_a_config_that_is_not_a_cfg_dict_is_refused(tmp_path, capsys, content, message):
    config = tmp_path / "cfg.json"
    config.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["--config", str(config)]) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def test_interrupted_run_writes_completed_epochs_and_exits_130(tiny_data, tmp_path, monkeypatch,
                                                               capsys):
    original = Solver._train_one_epoch

    def interrupt_in_epoch_1(self):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Solver, "_train_one_epoch", interrupt_in_epoch_1)
    code = main(["--data_root", tiny_data, "--max_epoch", "3", "--val_size", "100",
                 "--out", str(tmp_path)])
    assert code == EXIT_INTERRUPTED
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["epochs"] == 1
    assert metrics["test_acc"] is None
    assert "Final test accuracy" not in capsys.readouterr().out


# A process started as a background job of a non-interactive shell (`cmd &`) starts with
# SIGINT ignored, and Python then leaves it ignored; a terminal's foreground command never
# does. So the command runs as it would in a terminal: Python's own SIGINT handler first.
AS_FROM_A_TERMINAL = ("import runpy, signal; "
                      "signal.signal(signal.SIGINT, signal.default_int_handler); "
                      "runpy.run_module('mnistlab', run_name='__main__', alter_sys=True)")


def test_ctrl_c_in_a_terminal_ends_the_command_with_status_130(tiny_data, tmp_path):
    command = [sys.executable, "-c", AS_FROM_A_TERMINAL, "--data_root", tiny_data,
               "--max_epoch", "100000", "--val_size", "100", "--display_freq", "1000",
               "--out", str(tmp_path / "out")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=tmp_path)
    try:
        for line in process.stdout:  # wait until training is under way
            if "Average validation" in line:
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["interrupted"] is True


def test_a_typo_in_a_flag_suggests_the_flag_meant(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--learning_rat", "0.1"])
    assert info.value.code == 2
    assert "did you mean --learning_rate?" in capsys.readouterr().err


# ---- outputs are checked before the work; an OSError is one line and exit status 1 ----------

def run_cli(argv, capsys, max_lines=2):
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err and len(err.strip().splitlines()) <= max_lines, err
    return code, out, err


def test_an_out_that_is_a_file_fails_before_training(tiny_data, tmp_path, capsys):
    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0\n")
    code, out, err = run_cli(["--data_root", tiny_data, "--val_size", "100", "--out",
                              str(a_file)], capsys)
    assert code == EXIT_FAILED and "Epoch" not in out
    assert f"--out {str(a_file)!r} is not a folder" in err
    assert a_file.read_text() == "root:x:0:0\n"


def test_an_unwritable_or_full_out_fails_before_training(tiny_data, tmp_path, capsys,
                                                         monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr("tempfile.mkstemp", denied)  # as root, a read-only mode does not stop
    code, out, err = run_cli(["--data_root", tiny_data, "--val_size", "100", "--out",
                              str(tmp_path / "ro")], capsys)
    assert code == EXIT_FAILED and "Epoch" not in out and "is not writable" in err
    monkeypatch.undo()

    class Full:
        free = 100_000
    monkeypatch.setattr("shutil.disk_usage", lambda path: Full)
    code, out, err = run_cli(["--data_root", tiny_data, "--val_size", "100", "--out",
                              str(tmp_path / "full")], capsys)
    assert code == EXIT_FAILED and "Epoch" not in out and "free some space" in err


def test_a_bad_cfg_leaves_no_empty_output_folder(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(["--data_root", str(tmp_path / "nothing"), "--out", str(out)],
                           capsys, max_lines=10)  # the message lists the paths looked at
    assert code == EXIT_BAD_INPUT and not out.exists()


def test_a_full_disk_at_the_end_names_the_path_and_writes_no_pictures(tiny_data, tmp_path,
                                                                      capsys, monkeypatch):
    from mnistlab import cli

    def disk_full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(cli, "write_json", disk_full)
    out = tmp_path / "out"
    code, printed, err = run_cli(["--data_root", tiny_data, "--val_size", "100", "--max_epoch",
                                  "1", "--out", str(out)], capsys)
    assert code == EXIT_FAILED and "Final test accuracy" in printed  # the result is on screen
    assert f"cannot write {str(out / 'metrics.json')!r}: No space left on device" in err
    assert os.listdir(out) == []  # no picture without its metrics.json


def test_a_full_disk_for_checkpoints_mid_run_is_one_line_and_keeps_the_epochs(
        tiny_data, tmp_path, capsys, monkeypatch):
    import numpy as np
    savez, calls = np.savez, []

    def full_at_epoch_2(file, **arrays):
        calls.append(1)
        if len(calls) > 2:  # last.npz and best.npz of epoch 0 fit; then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        savez(file, **arrays)
    monkeypatch.setattr(np, "savez", full_at_epoch_2)
    folder, out = tmp_path / "ck", tmp_path / "out"
    code, printed, err = run_cli(["--data_root", tiny_data, "--val_size", "100", "--max_epoch",
                                  "3", "--checkpoint_dir", str(folder), "--out", str(out)],
                                 capsys)
    assert code == EXIT_FAILED
    assert f"cannot write {str(folder / 'last.npz')!r}: No space left on device; the previous " \
           "last.npz is kept unchanged" in err
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2
    assert sorted(os.listdir(folder)) == ["best.npz", "last.npz"]
