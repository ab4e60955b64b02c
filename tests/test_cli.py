"""The command line: help, cfg from file and flags, output files, clear errors."""
import json
import os
import subprocess
import sys

import pytest

from mnistlab.cli import EXIT_BAD_INPUT, main, parse_value
from mnistlab.config import OPTIONS
from conftest import ROOT, tiny_cfg


def test_help_lists_every_cfg_key_with_its_default():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "solver.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    for key, option in OPTIONS.items():
        assert f"--{key}" in out
    assert "[0.01]" in out and "['data']" in out


def test_flag_values_are_read_as_json_or_text():
    assert parse_value("0.1") == 0.1 and parse_value("100") == 100
    assert parse_value("true") is True and parse_value("None") is None
    assert parse_value("data/fashion") == "data/fashion"


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
    (["--optimizer", "adamm"], "cfg['optimizer'] = 'adamm' is impossible"),
    (["--data_root", "/no/such/folder"], "python fetch.py"),
])
def test_bad_values_exit_with_a_message(argv, message, capsys):
    assert main(argv) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def test_a_typo_in_a_flag_suggests_the_flag_meant(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--learning_rat", "0.1"])
    assert info.value.code == 2
    assert "did you mean --learning_rate?" in capsys.readouterr().err
