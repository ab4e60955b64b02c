"""cfg validation: unknown keys and impossible values fail with a message that helps."""
import pytest

from mnistlab.config import OPTIONS, ConfigError, defaults, validate_cfg


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
    ("dtype", "float16", "one of 'float64', 'float32'"),
    ("seed", -1, "a whole number >= 0"),
    ("data_root", 3, "a string"),
    ("prefetch", -1, "a whole number >= 0"),
    ("prefetch_worker", "gpu", "one of 'thread', 'process'"),
])
def test_impossible_values_name_key_value_and_rule(key, value, must):
    with pytest.raises(ConfigError, match=rf"cfg\['{key}'\] = .* is impossible: it must be {must}"):
        validate_cfg({key: value})


@pytest.mark.parametrize("cfg, message", [
    ({"momentum": 1.0}, r"cfg: invalid momentum: 1.0; it must be >= 0 and < 1"),
    ({"momentum": -0.5}, r"cfg: invalid momentum: -0.5"),
    ({"optimizer": "adam", "beta1": "high"}, r"cfg: invalid beta1: 'high'"),
    ({"nesterov": "yes", "momentum": 0.9}, r"cfg: invalid nesterov: 'yes'; it must be True or False"),
    ({"lr_schedule": "step", "lr_step_size": 0}, r"cfg: invalid lr_step_size: 0"),
    ({"optimizer": "rprop", "eta_plus": 0.5}, r"cfg: invalid eta_plus: 0.5; it must be >= 1"),
    ({"loss": "am_softmax", "model": "mlp", "margin": -1}, r"cfg\['margin'\] = -1 is impossible"),
    ({"margin": 0.3}, r"cfg\['margin'\] = 0.3 does not apply to the 'cross_entropy' loss"),
    ({"val_split": "first"}, r"cfg\['val_split'\] = 'first' is impossible"),
])
def test_the_rules_check_their_own_values_and_the_cfg_names_the_key(cfg, message):
    with pytest.raises(ConfigError, match=message):
        validate_cfg(cfg)


def test_cfg_must_be_a_dict():
    with pytest.raises(ConfigError, match="must be a dict"):
        validate_cfg([("batch_size", 3)])


@pytest.mark.parametrize("cfg, message", [
    ({"beta1": 0.8}, r"cfg\['beta1'\] = 0.8 does not apply to optimizer 'sgd', which takes "
                     "momentum, weight_decay, nesterov"),
    ({"optimizer": "adam", "momentum": 0.9}, r"cfg\['momentum'\] = 0.9 does not apply to "
                                             "optimizer 'adam'"),
    ({"lr_gamma": 0.5}, r"cfg\['lr_gamma'\] = 0.5 does not apply to lr_schedule 'constant'"),
    ({"lr_schedule": "step"}, r"lr_schedule 'step' needs cfg\['lr_step_size'\]"),
    ({"warmup_epochs": 10, "max_epoch": 10}, "leaves no epoch of the 10-epoch run"),
    ({"optimizer": "adamm"}, r"cfg\['optimizer'\] = 'adamm' is impossible: it must be one of "
                             "'sgd', 'adam'"),
    ({"model": "resnet"}, r"cfg\['model'\] = 'resnet' is impossible: it must be a model object "
                          "or one of 'softmax', 'mlp'"),
    ({"optimizer": "adamm"}, r"did you mean 'adam'\?"),
    ({"model": "mpl"}, r"did you mean 'mlp'\?"),
    ({"model": object()}, "a model with forward, gradient_computing"),
    ({"monitor": "accuracy"}, "one of 'val_acc', 'val_loss'"),
    ({"patience": 0}, "a whole number >= 1"),
    ({"progress": "yes"}, "True or False"),
])
def test_settings_that_do_not_fit_together_or_the_registries(cfg, message):
    with pytest.raises(ConfigError, match=message):
        validate_cfg(cfg)


def test_a_hyper_parameter_of_the_chosen_rule_is_accepted():
    cfg = validate_cfg({"optimizer": "adam", "beta1": 0.8, "lr_schedule": "step",
                        "lr_step_size": 3, "lr_gamma": 0.5})
    assert cfg["beta1"] == 0.8 and cfg["momentum"] is None
