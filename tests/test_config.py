"""cfg validation: unknown keys and impossible values fail with a message that helps."""
import pytest

from config import OPTIONS, ConfigError, defaults, validate_cfg


def test_defaults_complete_a_partial_cfg():
    cfg = validate_cfg({"batch_size": 32})
    assert cfg["batch_size"] == 32 and set(cfg) == set(OPTIONS)
    assert defaults()["learning_rate"] == 0.01


def test_every_default_is_valid():
    assert validate_cfg(defaults()) == defaults()


@pytest.mark.parametrize("typo, meant", [("learning_rat", "learning_rate"), ("batchsize", "batch_size"),
                                         ("max_epochs", "max_epoch"), ("momentun", "momentum")])
def test_typo_names_the_key_and_suggests_the_right_one(typo, meant):
    with pytest.raises(ConfigError, match=f"unknown cfg key '{typo}'; did you mean '{meant}'"):
        validate_cfg({typo: 1})


def test_unrelated_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="Valid keys: data_root"):
        validate_cfg({"colour": "red"})


@pytest.mark.parametrize("key, value, must", [
    ("batch_size", 0, "a whole number >= 1"),
    ("batch_size", 2.5, "a whole number >= 1"),
    ("batch_size", True, "a whole number >= 1"),
    ("max_epoch", -3, "a whole number >= 1"),
    ("learning_rate", -0.1, r"a number in \(0, inf\)"),
    ("learning_rate", 0, r"a number in \(0, inf\)"),
    ("learning_rate", float("nan"), "a number"),
    ("learning_rate", "0.1", "a number"),
    ("momentum", 1.0, r"a number in \[0, 1\)"),
    ("momentum", -0.5, r"a number in \[0, 1\)"),
    ("dtype", "float16", "one of 'float64', 'float32'"),
    ("seed", -1, "a whole number >= 0"),
    ("data_root", 3, "a string"),
])
def test_impossible_values_name_key_value_and_rule(key, value, must):
    with pytest.raises(ConfigError, match=rf"cfg\['{key}'\] = .* is impossible: it must be {must}"):
        validate_cfg({key: value})


def test_cfg_must_be_a_dict():
    with pytest.raises(ConfigError, match="must be a dict"):
        validate_cfg([("batch_size", 3)])
