"""The YAML search space, parsed and validated once into frozen dataclasses.

Every user error becomes a `SpaceError` whose message is one line naming the file and the
problem; the CLI prints it and exits with status 2 before Ray starts.

    name: balance                 # optional, defaults to the file's stem
    description: ...              # optional
    dataset: mnist5k              # mnist5k | mnist | fashion_mnist | cifar10
    data_root: null               # optional, for the torchvision data sets
    fixed: {loss: nonsaturating, optimizer: adam}
    search_space:
      lr_g: {loguniform: [1.0e-5, 1.0e-2]}
      k: {grid: [1, 2, 5]}
      d_batchnorm: {choice: [true, false], when: {arch: dcgan}}
      g_width:                    # one spec per condition
        - {grid: [32, 256], when: {arch: mlp}}
        - {grid: [8, 64], when: {arch: dcgan}}
    search: optuna                # optuna (TPE) | random | grid
    scheduler: asha               # asha | pbt | fifo
    scheduler_options: {grace_period: 1, reduction_factor: 2}
    metric: pixel_fd
    mode: min
    num_samples: 20               # configurations (search: grid enumerates the grid instead)
    seeds_per_config: 2
    seed: 0
    budget: {epochs: 10, eval_every: 2}     # or {steps: 2000, eval_every: 500}
    evaluation: {num_samples: 1000, metrics: [pixel_fd]}
    resources: {cpus_per_trial: 1, gpus_per_trial: 0, max_concurrent: 2}
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gan.config import OPTIMISATION_HYPERPARAMETERS, ConfigError, GanConfig, suggestion
from gan.data import DATASETS
from gan.run import Budget, EvaluationPlan

DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "int", "qrandint")
SEARCH_ALGORITHMS = ("optuna", "random", "grid")
SCHEDULERS = ("asha", "pbt", "fifo")
TOP_LEVEL_KEYS = (
    "name", "description", "dataset", "data_root", "fixed", "search_space", "search", "scheduler",
    "scheduler_options", "metric", "mode", "num_samples", "seeds_per_config", "seed", "budget",
    "evaluation", "resources",
)
BUDGET_KEYS = ("steps", "epochs", "eval_every")
EVALUATION_KEYS = ("num_samples", "metrics", "final")
RESOURCE_KEYS = ("cpus_per_trial", "gpus_per_trial", "max_concurrent")
SCHEDULER_OPTIONS = {
    "asha": ("grace_period", "reduction_factor", "brackets"),
    "pbt": ("perturbation_interval", "quantile_fraction", "resample_probability"),
    "fifo": (),
}
# PBT may change these during a trial; everything else shapes the networks and stays fixed.
PBT_MUTABLE = OPTIMISATION_HYPERPARAMETERS
SPACE_DIR = Path(__file__).resolve().parent.parent / "search_spaces"  # a package: installed with its YAML files


class SpaceError(ValueError):
    """A problem in a search-space file; the message is one line for the user."""


@dataclass(frozen=True)
class ParamSpec:
    """One distribution of one parameter, active when every `when` condition holds."""

    name: str
    distribution: str
    args: tuple  # choice/grid: the values; uniform/loguniform/int: (low, high); qrandint: (low, high, q)
    when: tuple[tuple[str, tuple], ...] = ()  # (parameter, allowed values)

    def active(self, assigned: dict[str, Any]) -> bool:
        return all(name in assigned and assigned[name] in allowed for name, allowed in self.when)

    @property
    def finite_values(self) -> tuple | None:
        return self.args if self.distribution in ("choice", "grid") else None


@dataclass(frozen=True)
class Resources:
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None


@dataclass(frozen=True)
class StudySpace:
    name: str
    path: Path
    description: str
    dataset: str
    data_root: str | None
    fixed: dict[str, Any]
    params: tuple[ParamSpec, ...]
    search: str
    scheduler: str
    scheduler_options: dict[str, Any]
    metric: str
    mode: str
    num_samples: int
    seeds_per_config: int
    seed: int
    budget: Budget
    evaluation: EvaluationPlan
    resources: Resources = field(default_factory=Resources)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.name for p in self.params))

    def grid_variants(self) -> list[dict[str, Any]]:
        """The cartesian product of the finite specs, conditions applied, duplicates removed."""
        variants: list[dict[str, Any]] = [{}]
        for name in self.param_names:
            expanded = []
            for assigned in variants:
                specs = [p for p in self.params if p.name == name and p.active(assigned)]
                if not specs:
                    expanded.append(assigned)
                    continue
                expanded += [{**assigned, name: value} for value in specs[0].finite_values]
            variants = expanded
        unique = {tuple(sorted(v.items())): v for v in variants}
        return list(unique.values())

    def trial_count(self) -> int:
        configs = len(self.grid_variants()) if self.search == "grid" else self.num_samples
        return configs * self.seeds_per_config


def checked_resources(cpus_per_trial: float, gpus_per_trial: float, max_concurrent: int | None) -> Resources:
    """Ray accepts fractions of a CPU or GPU below 1 and whole numbers above it."""
    if cpus_per_trial <= 0:
        raise SpaceError(f"cpus_per_trial must be > 0, got {cpus_per_trial}")
    for name, value in (("cpus_per_trial", cpus_per_trial), ("gpus_per_trial", gpus_per_trial)):
        if value < 0 or (value > 1 and not float(value).is_integer()):
            raise SpaceError(f"{name} must be a fraction in [0, 1] or a whole number, got {value}")
    return Resources(cpus_per_trial, gpus_per_trial, max_concurrent)


def resolve_space_path(space: str | Path) -> Path:
    """A bare file name (or stem) resolves to the shipped search_spaces/; a path is used as given."""
    given = Path(space)
    if given.parent == Path(".") and not given.exists():
        for candidate in (SPACE_DIR / given.name, SPACE_DIR / f"{given.name}.yaml"):
            if candidate.exists():
                return candidate
        shipped = sorted(p.name for p in SPACE_DIR.glob("*.yaml"))
        raise SpaceError(f"{space}: no such file, and no shipped space of that name (shipped: {', '.join(shipped)})")
    if not given.exists():
        raise SpaceError(f"{space}: no such file")
    return given.resolve()


def load_space(space: str | Path) -> StudySpace:
    path = resolve_space_path(space)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise SpaceError(f"{path}: not valid YAML{where}: {problem}") from None
    except OSError as error:
        raise SpaceError(f"{path}: cannot read ({error.strerror})") from None
    try:
        return parse_space(raw, path)
    except (SpaceError, ConfigError) as error:
        raise SpaceError(f"{path}: {error}") from None


def _check_keys(section: str, mapping: Any, known: tuple[str, ...]) -> dict:
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise SpaceError(f"'{section}' must be a mapping")
    for key in mapping:
        if key not in known:
            raise SpaceError(f"unknown key '{key}' in {section}{suggestion(str(key), known)}")
    return mapping


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise SpaceError(f"{name} must be one of {', '.join(allowed)}, got {value!r}{suggestion(str(value), allowed)}")
    return value


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool):
        raise SpaceError(f"{where}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SpaceError(f"{where}: expected a number, got {value!r}") from None


def _positive_int(where: str, value: Any) -> int:
    number = _number(where, value)
    if not number.is_integer() or number < 1:
        raise SpaceError(f"{where} must be a positive integer, got {value!r}")
    return int(number)


def _parse_spec(name: str, raw: Any, known_params: tuple[str, ...]) -> ParamSpec:
    where = f"search_space.{name}"
    if not isinstance(raw, dict):
        raise SpaceError(f"{where} must be a mapping like {{choice: [...]}}, got {raw!r}")
    keys = [k for k in raw if k != "when"]
    if len(keys) != 1 or keys[0] not in DISTRIBUTIONS:
        unknown = [k for k in keys if k not in DISTRIBUTIONS]
        hint = suggestion(str(unknown[0]), DISTRIBUTIONS) if unknown else ""
        raise SpaceError(f"{where} needs exactly one distribution of {', '.join(DISTRIBUTIONS)}, got {keys}{hint}")
    distribution, args = keys[0], raw[keys[0]]
    if not isinstance(args, list) or not args:
        raise SpaceError(f"{where}.{distribution} must be a non-empty list")
    if distribution in ("choice", "grid"):
        for value in args:
            GanConfig.from_flat({name: value})  # type-check each value against the config field
        parsed_args: tuple = tuple(args)
    else:
        arity = 3 if distribution == "qrandint" else 2
        if len(args) != arity:
            form = "[low, high, q]" if arity == 3 else "[low, high]"
            raise SpaceError(f"{where}.{distribution} must be {form}, got {args}")
        low, high = _number(where, args[0]), _number(where, args[1])
        if low > high:
            raise SpaceError(f"{where}.{distribution}: low {args[0]} > high {args[1]}")
        if distribution == "loguniform" and low <= 0:
            raise SpaceError(f"{where}.loguniform: bounds must be > 0 on a log scale, got {args}")
        if distribution in ("int", "qrandint"):
            if not (low.is_integer() and high.is_integer()):
                raise SpaceError(f"{where}.{distribution}: bounds must be integers, got {args}")
            low, high = int(low), int(high)
        if distribution == "qrandint":
            q = _positive_int(f"{where}.qrandint q", args[2])
            if (high - low) % q:
                raise SpaceError(f"{where}.qrandint: high - low must be a multiple of q, got {args}")
            parsed_args = (low, high, q)
        else:
            parsed_args = (low, high)
        GanConfig.from_flat({name: parsed_args[0]})
    when = _check_keys(f"{where}.when", raw.get("when"), known_params)
    conditions = tuple((key, tuple(v if isinstance(v, list) else [v])) for key, v in when.items())
    return ParamSpec(name, distribution, parsed_args, conditions)


def parse_space(raw: Any, path: Path) -> StudySpace:
    if not isinstance(raw, dict):
        raise SpaceError("a search space must be a YAML mapping")
    _check_keys("the space", raw, TOP_LEVEL_KEYS)
    known_params = GanConfig.field_names()

    dataset = _one_of("dataset", raw.get("dataset", "mnist5k"), DATASETS)
    fixed = dict(_check_keys("fixed", raw.get("fixed"), known_params))
    GanConfig.from_flat(fixed)

    params: list[ParamSpec] = []
    declared: list[str] = []
    for name, spec in _check_keys("search_space", raw.get("search_space"), known_params).items():
        if name in fixed:
            raise SpaceError(f"'{name}' is both fixed and searched")
        for one in spec if isinstance(spec, list) else [spec]:
            parsed = _parse_spec(name, one, known_params)
            for condition, _ in parsed.when:
                if condition not in declared:
                    raise SpaceError(f"search_space.{name}: condition on '{condition}', which is not searched before it")
            params.append(parsed)
        declared.append(name)

    search = _one_of("search", raw.get("search", "optuna"), SEARCH_ALGORITHMS)
    scheduler = _one_of("scheduler", raw.get("scheduler", "asha"), SCHEDULERS)
    scheduler_options = dict(_check_keys("scheduler_options", raw.get("scheduler_options"), SCHEDULER_OPTIONS[scheduler]))
    if search == "grid":
        for p in params:
            if p.finite_values is None:
                raise SpaceError(f"search: grid needs choice or grid values, but '{p.name}' is {p.distribution}")
    elif any(p.distribution == "grid" for p in params):
        name = next(p.name for p in params if p.distribution == "grid")
        raise SpaceError(f"'{name}' uses grid, which needs search: grid (use choice with {search})")
    if scheduler == "pbt":
        if search != "random":
            raise SpaceError("scheduler: pbt explores by itself; use it with search: random")
        if any(p.when for p in params):
            raise SpaceError("scheduler: pbt does not support conditional parameters ('when')")
        if not any(p.name in PBT_MUTABLE for p in params):
            raise SpaceError(f"scheduler: pbt needs at least one searched parameter it can mutate: {', '.join(PBT_MUTABLE)}")

    mode = _one_of("mode", raw.get("mode", "min"), ("min", "max"))
    budget_raw = _check_keys("budget", raw.get("budget"), BUDGET_KEYS)
    if ("steps" in budget_raw) == ("epochs" in budget_raw):
        raise SpaceError("budget needs exactly one of steps or epochs")
    if "eval_every" not in budget_raw:
        raise SpaceError("budget needs eval_every (in the budget's unit)")
    budget = Budget(
        steps=_positive_int("budget.steps", budget_raw["steps"]) if "steps" in budget_raw else None,
        epochs=_number("budget.epochs", budget_raw["epochs"]) if "epochs" in budget_raw else None,
        eval_every=_number("budget.eval_every", budget_raw["eval_every"]),
    )
    if (budget.epochs is not None and budget.epochs <= 0) or budget.eval_every <= 0:
        raise SpaceError("budget.epochs and budget.eval_every must be > 0")

    evaluation_raw = _check_keys("evaluation", raw.get("evaluation"), EVALUATION_KEYS)
    from gan.evaluation import DEFAULT_METRICS, METRIC_NAMES, METRICS, reported_metric_names

    metrics = evaluation_raw.get("metrics", DEFAULT_METRICS)
    if not isinstance(metrics, list | tuple):
        raise SpaceError("evaluation.metrics must be a list")
    for name in metrics:
        _one_of("evaluation.metrics entry", name, METRIC_NAMES)
    # the balance regime of every trial is read off D's outputs: always evaluated
    metrics = tuple(dict.fromkeys([*metrics, "discriminator"]))
    evaluation = EvaluationPlan(
        num_samples=_positive_int("evaluation.num_samples", evaluation_raw.get("num_samples", EvaluationPlan.num_samples)),
        metrics=metrics,
        final=bool(evaluation_raw.get("final", True)),
    )
    metric = raw.get("metric", "fid" if "fid" in metrics else METRICS[metrics[0]].outputs[0])
    reportable = reported_metric_names(metrics)
    if metric not in reportable:
        raise SpaceError(f"metric '{metric}' is not reported by evaluation.metrics {list(metrics)}{suggestion(str(metric), reportable)}")

    resources_raw = _check_keys("resources", raw.get("resources"), RESOURCE_KEYS)
    resources = checked_resources(
        cpus_per_trial=_number("resources.cpus_per_trial", resources_raw.get("cpus_per_trial", 1)),
        gpus_per_trial=_number("resources.gpus_per_trial", resources_raw.get("gpus_per_trial", 0)),
        max_concurrent=_positive_int("resources.max_concurrent", resources_raw["max_concurrent"])
        if resources_raw.get("max_concurrent") is not None else None,
    )
    space = StudySpace(
        name=str(raw.get("name", path.stem)),
        path=path,
        description=str(raw.get("description", "")),
        dataset=dataset,
        data_root=str(raw["data_root"]) if raw.get("data_root") else None,
        fixed=fixed,
        params=tuple(params),
        search=search,
        scheduler=scheduler,
        scheduler_options=scheduler_options,
        metric=metric,
        mode=mode,
        num_samples=_positive_int("num_samples", raw.get("num_samples", 10)),
        seeds_per_config=_positive_int("seeds_per_config", raw.get("seeds_per_config", 1)),
        seed=int(_number("seed", raw.get("seed", 0))),
        budget=budget,
        evaluation=evaluation,
        resources=resources,
    )
    if search == "grid":
        for variant in space.grid_variants():  # every grid point must make a valid configuration
            GanConfig.from_flat({**fixed, **variant})
    return space

