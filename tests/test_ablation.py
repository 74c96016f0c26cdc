"""An ablation (a space with `arms:`): every arm x grid point x seed runs once, each trial carries its arm into its
parameters, its run name and its configuration id, and the parent run says which arm is the reference."""
import itertools

import pytest
from ray.tune.search.variant_generator import generate_variants

from gan import names
from study.run import StudySettings, _trial_settings, design_tags
from study.run_names import config_id
from study.space import load_space
from study.tracking import child_run_identity, child_run_params
from study.tune_config import GRID_PARAMS, SEED_INDEX, trial_params
from study.tuning import build_tune_setup

CROSSED = """
dataset: mnist5k
fixed: {arch: dcgan, z_dim: 16, g_width: 8}
search_space:
  d_width: {grid: [8, 16]}
arms:
  plain: {}
  no BN in D: {d_batchnorm: false}
  beta1 0.9: {beta1: 0.9}
search: grid
scheduler: fifo
seeds_per_config: 2
budget: {steps: 10, eval_every: 5}
"""


def _settings(space):
    """The trials' settings exactly as the study runner builds them (no data needed for these)."""
    return _trial_settings(StudySettings(space, str(space.path), "sqlite://", space.name, "/nonexistent", None,
                                         None, 0, False))


def _tune_configs(space) -> list[dict]:
    """Every trial's Tune config, as Tune's grid search generates them from the study's param space."""
    setup = build_tune_setup(space, space.num_samples, space.seed)
    return [config for _, config in generate_variants(setup.param_space)] * setup.num_samples


def test_arms_are_a_grid_dimension_crossed_with_the_search_space_and_the_seeds(tmp_path):
    path = tmp_path / "ablation.yaml"
    path.write_text(CROSSED)
    space = load_space(path)
    assert [arm.name for arm in space.arms] == ["plain", "no BN in D", "beta1 0.9"]
    assert space.reference_arm == "plain"  # the first arm unless reference_arm says otherwise
    assert space.trial_count() == 3 * 2 * 2

    configs = _tune_configs(space)
    enumerated = [(config[GRID_PARAMS]["d_width"], config[names.ARM], config[SEED_INDEX]) for config in configs]
    assert sorted(enumerated) == sorted(itertools.product([8, 16], ["plain", "no BN in D", "beta1 0.9"], [0, 1]))
    settings = _settings(space)
    for config in configs:
        params = trial_params(config, settings)
        assert names.ARM not in params
        assert params["d_width"] == config[GRID_PARAMS]["d_width"] and params["seed"] == config[SEED_INDEX]
        assert ("d_batchnorm" in params) == (config[names.ARM] == "no BN in D")
        assert ("beta1" in params) == (config[names.ARM] == "beta1 0.9")


@pytest.mark.parametrize("name,seeds", [("dcgan.yaml", 6), ("dcgan_full.yaml", 10)])
def test_the_shipped_dcgan_ablation_runs_five_arms_on_every_seed_once(name, seeds):
    space = load_space(name)
    arms = ["recipe", "no batch-norm in G", "no batch-norm in D", "ReLU in D", "Adam beta1 0.9"]
    assert [arm.name for arm in space.arms] == arms and space.reference_arm == "recipe"
    assert space.trial_count() == 5 * seeds and space.scheduler == "fifo"
    pairs = [(config[names.ARM], config[SEED_INDEX]) for config in _tune_configs(space)]
    assert sorted(pairs) == sorted(itertools.product(arms, range(seeds)))
    # each arm turns exactly one of Radford et al.'s rules off
    settings = _settings(space)
    recipe = trial_params({names.ARM: "recipe", SEED_INDEX: 0}, settings)
    changed = {arm: {k: v for k, v in trial_params({names.ARM: arm, SEED_INDEX: 0}, settings).items()
                     if recipe[k] != v} for arm in arms}
    assert changed == {"recipe": {}, "no batch-norm in G": {"g_batchnorm": False},
                       "no batch-norm in D": {"d_batchnorm": False}, "ReLU in D": {"leaky_slope": 0.0},
                       "Adam beta1 0.9": {"beta1": 0.9}}


def test_the_recipe_arm_is_balance_yaml_s_balanced_dcgan_cell():
    dcgan, balance = load_space("dcgan.yaml"), load_space("balance.yaml")
    recipe = trial_params({names.ARM: "recipe", SEED_INDEX: 0}, _settings(dcgan))
    balanced = trial_params({GRID_PARAMS: {"g_width": 16, "d_width": 16}, SEED_INDEX: 0}, _settings(balance))
    assert config_id(recipe) == config_id(balanced)
    assert (dcgan.budget.steps, dcgan.budget.eval_every) == (1500, 250)
    assert dcgan.evaluation == balance.evaluation and dcgan.resources == balance.resources


def test_each_arm_names_its_runs_logs_its_name_and_groups_only_its_own_seeds():
    space = load_space("dcgan.yaml")
    settings = _settings(space)
    ids = {}
    for arm in space.arms:
        for seed_index in (0, 3):
            config = {GRID_PARAMS: {}, names.ARM: arm.name, SEED_INDEX: seed_index}
            run_name, configuration = child_run_identity(config, settings)
            assert run_name == f"dcgan g16 d16 k1 [{arm.name}] s{seed_index}"
            ids.setdefault(arm.name, set()).add(configuration)
            params = child_run_params(config, settings)
            assert params[names.ARM] == arm.name and params["seed"] == str(seed_index)
            for field, value in arm.overrides.items():
                assert params[field] == str(value)
    assert all(len(seeds) == 1 for seeds in ids.values())  # the seeds of one arm share its configuration id
    assert len(set.union(*ids.values())) == len(space.arms)  # and no two arms share one


def test_the_parent_run_of_an_ablation_is_tagged_with_its_design_and_reference_arm(tmp_path):
    assert design_tags(load_space("dcgan.yaml")) == {names.DESIGN_TAG: names.DESIGN_ABLATION,
                                                     names.REFERENCE_ARM_TAG: "recipe"}
    path = tmp_path / "other_reference.yaml"
    path.write_text(CROSSED + "reference_arm: beta1 0.9\n")
    assert design_tags(load_space(path))[names.REFERENCE_ARM_TAG] == "beta1 0.9"
    assert design_tags(load_space("balance.yaml")) == {}  # a factorial is not tagged as an ablation
    # every trial gets every arm's overrides, to apply its own
    assert _settings(load_space(path)).arms == {"plain": {}, "no BN in D": {"d_batchnorm": False},
                                                "beta1 0.9": {"beta1": 0.9}}
