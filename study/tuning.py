"""A StudySpace turned into Ray Tune's pieces: param space, search algorithm, scheduler.

- grid:   Tune's grid search over the enumerated grid points (conditions applied) x arms (an ablation) x seeds.
- optuna: OptunaSearch with a define-by-run space (conditional parameters) and TPE.
- random: the same with Optuna's RandomSampler, so both share one space definition.
- Seeds are an explicit repeat dimension: a `seed_index` grid axis, or Tune's Repeater
  around Optuna, whose `__trial_index__` becomes the seed offset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray import tune

from study.space import PBT_MUTABLE, ParamSpec, StudySpace
from study.tune_config import grid_param_space, optuna_parameter_key, seed_axis


@dataclass
class TuneSetup:
    param_space: dict[str, Any]
    search_alg: Any  # None: Tune's default BasicVariantGenerator
    scheduler: Any
    num_samples: int


def _tune_domain(spec: ParamSpec):
    low_high = spec.args[:2]
    return {
        "choice": lambda: tune.choice(list(spec.args)),
        "uniform": lambda: tune.uniform(*low_high),
        "loguniform": lambda: tune.loguniform(*low_high),
        # Tune's randint excludes the upper bound; the YAML's [low, high] includes it
        "int": lambda: tune.randint(low_high[0], low_high[1] + 1),
        "qrandint": lambda: tune.qrandint(*spec.args),
    }[spec.distribution]()


def _optuna_key(space: StudySpace, spec: ParamSpec) -> str:
    variants = [p for p in space.params if p.name == spec.name]
    return optuna_parameter_key(spec.name, variants.index(spec), len(variants))


def _suggest(trial, key: str, spec: ParamSpec):
    if spec.distribution == "choice":
        return trial.suggest_categorical(key, list(spec.args))
    if spec.distribution == "uniform":
        return trial.suggest_float(key, *spec.args)
    if spec.distribution == "loguniform":
        return trial.suggest_float(key, *spec.args, log=True)
    if spec.distribution == "int":
        return trial.suggest_int(key, *spec.args)
    low, high, q = spec.args
    return trial.suggest_int(key, low, high, step=q)


class DefineByRun:
    """Optuna's define-by-run space: each parameter is suggested only when its conditions hold.

    A class, not a closure, because Tune pickles the searcher into the study's checkpoint.
    """

    def __init__(self, space: StudySpace):
        self.space = space

    def __call__(self, trial) -> None:
        assigned: dict[str, Any] = {}
        for name in self.space.param_names:
            active = [p for p in self.space.params if p.name == name and p.active(assigned)]
            if active:
                assigned[name] = _suggest(trial, _optuna_key(self.space, active[0]), active[0])


def build_tune_setup(space: StudySpace, num_samples: int, seed: int) -> TuneSetup:
    seeds = space.seeds_per_config
    if space.search == "grid":
        arms = tuple(arm.name for arm in space.arms)
        return TuneSetup(grid_param_space(space.grid_variants(), seeds, arms), None, _scheduler(space), 1)
    if space.scheduler == "pbt":
        param_space = {spec.name: _tune_domain(spec) for spec in space.params} | seed_axis(seeds)
        return TuneSetup(param_space, None, _scheduler(space), num_samples)

    import optuna
    from ray.tune.search import Repeater
    from ray.tune.search.optuna import OptunaSearch

    sampler = optuna.samplers.TPESampler(seed=seed) if space.search == "optuna" else optuna.samplers.RandomSampler(seed=seed)
    search_alg = OptunaSearch(space=DefineByRun(space), sampler=sampler, metric=space.metric, mode=space.mode)
    if seeds > 1:
        # Repeater gives each configuration `seeds` trials and tells Optuna their mean
        search_alg = Repeater(search_alg, repeat=seeds)
    return TuneSetup({}, search_alg, _scheduler(space), num_samples * seeds)


def _scheduler(space: StudySpace):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    options = space.scheduler_options
    # The time axis is the number of evaluations: the same for every trial of a study.
    if space.scheduler == "asha":
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=space.budget.evaluations,
            grace_period=int(options.get("grace_period", 1)),
            reduction_factor=float(options.get("reduction_factor", 2)),
            brackets=int(options.get("brackets", 1)),
        )
    if space.scheduler == "pbt":
        mutations = {spec.name: _tune_domain(spec) for spec in space.params if spec.name in PBT_MUTABLE}
        return PopulationBasedTraining(
            time_attr="training_iteration",
            perturbation_interval=int(options.get("perturbation_interval", 1)),
            hyperparam_mutations=mutations,
            quantile_fraction=float(options.get("quantile_fraction", 0.25)),
            resample_probability=float(options.get("resample_probability", 0.25)),
        )
    return FIFOScheduler()
