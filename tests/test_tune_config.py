"""Tune's config dict of a trial, decoded back into the trial's GanConfig parameters and seed."""
import dataclasses

from gan.names import ARM
from gan.run import Budget, EvaluationPlan
from study.tune_config import (GRID_PARAMS, REPEATER_INDEX, SEED_INDEX, TrialSettings, optuna_parameter_key,
                               trial_params)

SETTINGS = TrialSettings(dataset="mnist5k", data_root=None, fixed={"arch": "dcgan", "z_dim": 64},
                         budget=Budget(steps=10, epochs=None, eval_every=5), evaluation=EvaluationPlan(),
                         metric="fid", mode="min", base_seed=100)


def test_a_grid_point_and_its_seed_index():
    config = {GRID_PARAMS: {"g_width": 32, "k": 2}, SEED_INDEX: 3}
    assert trial_params(config, SETTINGS) == {"arch": "dcgan", "z_dim": 64, "g_width": 32, "k": 2, "seed": 103}


def test_optuna_variants_of_one_parameter_decode_to_its_name_and_the_repeater_index_is_the_seed():
    key = optuna_parameter_key("g_width", 1, 2)
    assert key == "g_width#1" and optuna_parameter_key("lr_g", 0, 1) == "lr_g"
    config = {key: 16, "lr_g": 1e-3, REPEATER_INDEX: 1}
    assert trial_params(config, SETTINGS) == {"arch": "dcgan", "z_dim": 64, "g_width": 16, "lr_g": 1e-3, "seed": 101}


def test_sampled_values_win_over_nothing_and_fixed_values_stay():
    assert trial_params({}, SETTINGS) == {"arch": "dcgan", "z_dim": 64, "seed": 100}


def test_an_arm_s_overrides_replace_fixed_values_and_its_name_is_not_a_parameter():
    arms = {"recipe": {}, "no batch-norm in G": {"g_batchnorm": False}, "wide": {"z_dim": 128, "beta1": 0.9}}
    settings = dataclasses.replace(SETTINGS, arms=arms)
    base = {"arch": "dcgan", "z_dim": 64, "g_width": 32, "seed": 102}
    assert trial_params({GRID_PARAMS: {"g_width": 32}, ARM: "recipe", SEED_INDEX: 2}, settings) == base
    assert trial_params({GRID_PARAMS: {"g_width": 32}, ARM: "no batch-norm in G", SEED_INDEX: 2}, settings) == \
        {**base, "g_batchnorm": False}
    assert trial_params({GRID_PARAMS: {"g_width": 32}, ARM: "wide", SEED_INDEX: 2}, settings) == \
        {**base, "z_dim": 128, "beta1": 0.9}
