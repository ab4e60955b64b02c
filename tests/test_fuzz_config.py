"""Hostile cfgs: whatever a --config file or a flag holds, the result is a cfg or a
ConfigError (naming the file, or the key), read within a bounded size and nesting depth.
Peak memory is measured with tracemalloc, never time.
"""
import json
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile import MIB, peak_memory
from mnistlab import config
from mnistlab.cli import EXIT_BAD_INPUT, main, parse_flag, parse_value, read_config_file
from mnistlab.config import (MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_NUM_CLASSES, OPTIONS,
                             ConfigError, validate_cfg)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-10**30, 10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["sgd", "adam", "mlp", "cnn", "cosine", "step", "float32", "val_loss",
                     "center", "random", "data", "\0", "x" * 5000]))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8)
CFGS = st.dictionaries(st.one_of(st.sampled_from(list(OPTIONS)), st.text(max_size=12)),
                       JSON_VALUES, max_size=6)


def written(tmp_path, data):
    path = tmp_path / "cfg.json"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def read_or_refused(path):
    """(the dict read_config_file(path) gives, None), or (None, the message of the
    ConfigError refusing it, which names the file); nothing else."""
    try:
        return read_config_file(path), None
    except ConfigError as exc:
        assert path in str(exc), str(exc)
        return None, str(exc)


def cfg_or_config_error(cfg):
    """validate_cfg(cfg): a cfg, or a ConfigError naming one of its keys; nothing else."""
    try:
        return validate_cfg(cfg)
    except ConfigError as exc:
        assert any(repr(key) in str(exc) or key in str(exc) for key in cfg), str(exc)


@FUZZ
@given(cfg=CFGS)
def test_any_cfg_dict_is_valid_or_a_config_error_naming_a_key(cfg):
    cfg_or_config_error(cfg)


@FUZZ
@given(cfg=CFGS)
def test_any_config_file_gives_a_cfg_or_a_config_error_naming_the_file(tmp_path, cfg):
    loaded, refusal = read_or_refused(written(tmp_path, json.dumps(cfg)))
    if refusal is not None:
        assert "nested" in refusal   # a JSON object of cfg values: only its depth is refused
        return
    cfg_or_config_error(loaded)


@FUZZ
@given(data=st.one_of(st.binary(max_size=200),
                      st.text(alphabet='{}[]":,0123456789.eE-+ntrufalsNIiy\\ ', max_size=200)))
def test_arbitrary_bytes_in_a_config_file_give_a_config_error(tmp_path, data):
    loaded, refusal = read_or_refused(written(tmp_path, data))
    if refusal is None:
        assert isinstance(loaded, dict)
        cfg_or_config_error(loaded)


@FUZZ
@given(text=st.text(max_size=300))
def test_a_flag_value_is_always_a_value(text):
    parse_value(text)
    for key in ("momentum", "nesterov", "max_epoch", "data_root"):
        parse_flag(key, text)


@pytest.mark.parametrize("depth", [MAX_CONFIG_DEPTH + 1, 1000, 30_000])
def test_deep_nesting_is_refused_before_parsing(tmp_path, depth):
    path = written(tmp_path, '{"max_epoch": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}")
    with pytest.raises(ConfigError, match=f"JSON nested {depth} deep, more than the "
                                          f"{MAX_CONFIG_DEPTH} allowed") as info:
        read_config_file(path)
    assert path in str(info.value)


@pytest.mark.parametrize("text", ['{"max_epoch": ' + "9" * 5000 + "}",
                                  '{"a": "' + "\\u0000" * 100 + '"}'])
def test_numbers_and_strings_python_cannot_take_are_config_errors(tmp_path, text):
    cfg, refusal = read_or_refused(written(tmp_path, text))
    if refusal is None:
        with pytest.raises(ConfigError):
            validate_cfg(cfg)


def test_an_endless_or_huge_config_is_refused_after_its_size_limit(tmp_path):
    huge = written(tmp_path, '{"max_epoch": 1, "pad": "' + "x" * MAX_CONFIG_BYTES + '"}')
    with peak_memory() as peak:
        for path in (huge, "/dev/zero"):
            with pytest.raises(ConfigError, match=f"larger than {MAX_CONFIG_BYTES} bytes"):
                read_config_file(path)
    assert peak() < MIB


@pytest.mark.parametrize("argv, message", [
    (["--num_classes", "1000000"], f"cfg['num_classes'] = 1000000 is impossible: it must be a "
                                   f"whole number >= 2 and <= {MAX_NUM_CLASSES}"),
    (["--num_classes", str(10**8)], "cfg['num_classes'] = 100000000 is impossible"),
    (["--max_epoch", str(10**12)], "cfg['max_epoch'] = 1000000000000 is impossible"),
    (["--prefetch", "100000"], "cfg['prefetch'] = 100000 is impossible"),
    (["--blas_threads", "100000"], "cfg['blas_threads'] = 100000 is impossible"),
    (["--config", "/dev/zero"], "--config /dev/zero: larger than"),
])
def test_unbounded_settings_are_refused_before_anything_is_built(argv, message, capsys):
    with peak_memory() as peak:
        assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert peak() < 8 * MIB


def test_a_nested_config_on_the_command_line_is_one_line_exit_2(tmp_path, capsys):
    path = written(tmp_path, '{"max_epoch": ' + "[" * 20_000 + "]" * 20_000 + "}")
    assert main(["--config", path]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert path in err and "nested" in err and len(err.strip().splitlines()) == 1


def test_every_limit_lives_in_config():
    limits = {name: value for name, value in vars(config).items() if name.startswith("MAX_")}
    assert {"MAX_NUM_CLASSES", "MAX_EPOCH", "MAX_CONFIG_BYTES", "MAX_CONFIG_DEPTH",
            "MAX_PREFETCH", "MAX_BLAS_THREADS", "MAX_TEXT_LENGTH"} <= set(limits)
    assert all(isinstance(v, int) and v > 0 for v in limits.values())
    assert MAX_NUM_CLASSES == 256  # IDX labels are unsigned bytes
    assert math.log2(MAX_CONFIG_BYTES) >= 12


@pytest.mark.parametrize("key, value", [("data_root", "data\0/x"), ("checkpoint_dir", "a" * 5000)])
def test_paths_that_no_file_can_have_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"cfg\\['{key}'\\]"):
        validate_cfg({key: value})


def test_a_pipe_still_works_as_config(tmp_path):
    read, write = os.pipe()
    os.write(write, b'{"max_epoch": 3}')
    os.close(write)
    try:
        assert read_config_file(f"/dev/fd/{read}") == {"max_epoch": 3}
    finally:
        os.close(read)
