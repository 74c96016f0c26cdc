"""The Tune config of a trial: how a StudySpace's sampled values are encoded, and decoded in the trial.

Tune hands each trial a dict. Its keys, all defined here:
- grid search: GRID_PARAMS holds one grid point (a dict of parameter values), SEED_INDEX the seed offset,
  and in an ablation names.ARM the name of the trial's arm (its overrides are in TrialSettings.arms);
- PBT: each searched parameter under its own name, SEED_INDEX the seed offset;
- Optuna (and random): each parameter under `optuna_parameter_key` ("name", or "name#i" for the i-th
  conditional variant of one parameter: Optuna forbids one name with different distributions), and
  Tune's Repeater adds REPEATER_INDEX as the seed offset.
`trial_params` turns any of them back into the flat GanConfig parameters of the trial: fixed values, then the
arm's overrides, then the sampled values, then the seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gan import names
from gan.run import Budget, EvaluationPlan

GRID_PARAMS = "params"  # the grid search passes each grid point as one dict
SEED_INDEX = "seed_index"  # set by the grid and PBT variants
REPEATER_INDEX = "__trial_index__"  # set by ray.tune.search.Repeater around Optuna
VARIANT_SEPARATOR = "#"


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a study shares; resolved on the driver (absolute paths)."""

    dataset: str
    data_root: str | None
    fixed: dict[str, Any]
    budget: Budget
    evaluation: EvaluationPlan
    metric: str
    mode: str
    base_seed: int
    dataset_options: Any = None  # gan.stacked_mnist.StackedOptions of a Stacked MNIST data set, else None
    # the searched parameters a trial's run name spells out beyond architecture, widths and k
    # (study.run_names.naming_parameters); None: every searched parameter
    named_parameters: tuple[str, ...] | None = None
    # the gan.metrics.classifier.ClassifierWeights the driver loaded or trained before any trial: every trial, on
    # every node, builds its feature extractor from them (no training, no cache). None: no metric needs one
    classifier: Any = None
    # an ablation's arms: each arm's name and the overrides of `fixed` it makes (study.space.Arm); None: no arms
    arms: dict[str, dict[str, Any]] | None = None


def optuna_parameter_key(name: str, variant: int, variants: int) -> str:
    """The key of the `variant`-th of `variants` conditional specs of parameter `name`."""
    return name if variants == 1 else f"{name}{VARIANT_SEPARATOR}{variant}"


def grid_param_space(grid_points: list[dict[str, Any]], seeds: int, arms: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every grid point x every arm (by name; none: no arm axis) x every seed index, each once."""
    from ray import tune

    arm_axis = {names.ARM: tune.grid_search(list(arms))} if arms else {}
    return {GRID_PARAMS: tune.grid_search(grid_points), **arm_axis} | seed_axis(seeds)


def seed_axis(seeds: int) -> dict[str, Any]:
    from ray import tune

    return {SEED_INDEX: tune.grid_search(list(range(seeds)))}


def trial_params(config: dict[str, Any], settings: TrialSettings) -> dict[str, Any]:
    """The flat GanConfig parameters of a trial: fixed values, its arm's overrides, sampled values and its seed.
    The arm's name is not a GanConfig field and is left out."""
    params = dict(settings.fixed)
    if names.ARM in config:
        params.update(settings.arms[config[names.ARM]])
    seed_index = 0
    for key, value in config.items():
        if key == names.ARM:
            continue
        if key == GRID_PARAMS:
            params.update(value)
        elif key in (SEED_INDEX, REPEATER_INDEX):
            seed_index = int(value)
        else:
            params[key.split(VARIANT_SEPARATOR)[0]] = value
    params["seed"] = settings.base_seed + seed_index
    return params
