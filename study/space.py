"""The YAML search space, parsed and validated once into frozen dataclasses.

Every user error becomes a `SpaceError` whose message is one line naming the file and the
problem; the CLI prints it and exits with status 2 before Ray starts.

    name: balance                 # optional, defaults to the file's stem
    description: ...              # optional
    dataset: mnist5k              # mnist5k | mnist | fashion_mnist | cifar10 | stacked_mnist | stacked_mnist_full
    dataset_options: {train_size: 128000}   # optional, Stacked MNIST only: train/validation/test_size, seed
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

An ablation names its arms instead of (or besides) a search space: each arm is a set of overrides of `fixed`,
and every arm runs on every seed.

    arms:
      recipe: {}
      no batch-norm in G: {g_batchnorm: false}
      Adam beta1 0.9: {beta1: 0.9}
    reference_arm: recipe         # optional, defaults to the first arm: the arm the others are compared with

Arms are one more grid dimension: they need `search: grid` (the default when `arms` is given), and are crossed
with the grid of `search_space` (if any) and the seeds, so a study runs arms x grid points x seeds trials. An arm
may not override a searched parameter nor the seed, and no two arms may make the same configuration.

A search (random or optuna, seeds_per_config 1) may be followed by a confirmation stage (study.confirm):

    confirm: {top: 2, seeds: 6, against: {lr_g: 0.001, lr_d: 0.001}}

the `top` best configurations by search score and the reference `against` (every searched parameter set) are
trained again on `seeds` fresh seeds each, at the full budget, under the same parent run.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gan.config import ARCHITECTURES, OPTIMISATION_HYPERPARAMETERS, ConfigError, GanConfig, suggestion
from gan.data import DATASETS
from gan.run import Budget, EvaluationPlan

DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "int", "qrandint")
SEARCH_ALGORITHMS = ("optuna", "random", "grid")
SCHEDULERS = ("asha", "pbt", "fifo")
TOP_LEVEL_KEYS = (
    "name", "description", "dataset", "dataset_options", "data_root", "fixed", "search_space", "search", "scheduler",
    "scheduler_options", "metric", "mode", "num_samples", "seeds_per_config", "seed", "budget",
    "evaluation", "resources", "arms", "reference_arm", "confirm",
)
BUDGET_UNIT_KEYS = ("steps", "epochs", "eval_every")  # one budget; `per_arch` holds more of these
BUDGET_KEYS = (*BUDGET_UNIT_KEYS, "per_arch")
EVALUATION_KEYS = ("num_samples", "metrics", "final", "training_metrics", "inception", "inception_weights")
RESOURCE_KEYS = ("cpus_per_trial", "gpus_per_trial", "max_concurrent")
CONFIRM_KEYS = ("top", "seeds", "against")
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
class Arm:
    """One arm of an ablation: its name and the GanConfig fields it sets on top of `fixed`."""

    name: str
    overrides: dict[str, Any]


@dataclass(frozen=True)
class Confirm:
    """The confirmation stage of a search (`confirm:`, see study.confirm): after the search, the `top` best
    configurations and the reference configuration `against` (searched parameter -> value) are trained again on
    `seeds` fresh seeds each, at the full budget, without early stopping."""

    top: int
    seeds: int
    against: dict[str, Any]


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
    dataset_options: Any = None  # gan.stacked_mnist.StackedOptions of a Stacked MNIST data set, else None
    arms: tuple[Arm, ...] = ()  # an ablation's arms (empty: not an ablation)
    reference_arm: str | None = None  # the name of the arm the others are compared with; None without arms
    confirm: Confirm | None = None  # a search's confirmation stage (`confirm:`); None: a one-stage study

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
        """Every trial the study plans: the search's, and those of its confirmation stage if it has one."""
        confirm = (self.confirm.top + 1) * self.confirm.seeds if self.confirm is not None else 0
        return self.search_trial_count() + confirm

    def search_trial_count(self) -> int:
        """The trials of the first (or only) stage: every configuration of the search on each of its seeds."""
        configs = len(self.grid_variants()) * max(1, len(self.arms)) if self.search == "grid" else self.num_samples
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, except that a key repeated in one mapping is an error: PyYAML would
    silently keep the last value, so `k: {grid: [1, 2]}` followed by `k: {grid: [5]}` would run k = 5 only."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden on purpose
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, list | dict | set) and key in first_line:
                    raise yaml.constructor.ConstructorError(
                        problem=f"key '{key}' repeated (first at line {first_line[key] + 1}); YAML would keep only "
                                f"the last value", problem_mark=key_node.start_mark)
                if not isinstance(key, list | dict | set):
                    first_line[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_space_text(path: Path) -> str:
    """The file's text; a binary or non-UTF-8 file is a SpaceError, not a UnicodeDecodeError traceback."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SpaceError(f"{path}: cannot read ({error.strerror})") from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise SpaceError(f"{path}: not a text file (a NUL byte at offset {nul}); a search space is a YAML text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpaceError(f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
                         f"a search space is a YAML text file") from None


def load_space(space: str | Path) -> StudySpace:
    path = resolve_space_path(space)
    text = read_space_text(path)
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        # a ReaderError (a control character) has no `problem`; its first line says what and where
        problem = getattr(error, "problem", None) or str(error).splitlines()[0] or "invalid YAML"
        raise SpaceError(f"{path}: not valid YAML{where}: {problem}") from None
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
        field_type = FIELD_TYPES[name]
        if distribution in ("uniform", "loguniform") and field_type is not float:
            raise SpaceError(f"{where}.{distribution}: {name} is {'an integer' if field_type is int else 'not a number'}"
                             f"{'; use int or qrandint' if field_type is int else ''}")
    when = _check_keys(f"{where}.when", raw.get("when"), known_params)
    conditions = tuple((key, tuple(v if isinstance(v, list) else [v])) for key, v in when.items())
    return ParamSpec(name, distribution, parsed_args, conditions)


# At most this many values of an int/qrandint range are checked one by one (beyond it: both bounds), and at
# most this many combinations of the other searched parameters' values are tried (see _check_domains).
MAX_VALUES_CHECKED = 1000
MAX_COMBINATIONS_TRIED = 256
FIELD_TYPES = {f.name: type(f.default) for f in dataclasses.fields(GanConfig)}


def _values_to_check(spec: ParamSpec) -> list[tuple[str, Any]]:
    """(what, value) for every value a spec can produce that could fall outside its parameter's domain:
    each choice/grid value, every integer of a small int/qrandint range, else both bounds. GanConfig's
    numeric domains are intervals, so a range whose bounds are inside lies inside."""
    if spec.finite_values is not None:
        return [("value", value) for value in spec.finite_values]
    low, high = spec.args[:2]
    step = spec.args[2] if spec.distribution == "qrandint" else 1
    if spec.distribution in ("int", "qrandint") and (high - low) // step < MAX_VALUES_CHECKED:
        return [("value", value) for value in range(low, high + 1, step)]
    return [("low bound", low), ("high bound", high)]


def _check_domains(params: list[ParamSpec], fixed: dict[str, Any]) -> None:
    """Every value a spec can produce must make a valid GanConfig (GanConfig.__post_init__ holds the domains)
    with the fixed values and the spec's `when` conditions: a value no trial could run is refused here, not
    in every trial. A value that fails only together with some values of other searched parameters (e.g.
    updates: simultaneous with k > 1) is refused only if it fails with all their finite values; otherwise
    the trials that draw the bad combination end as errored, without retries."""
    for spec in params:
        conditions = [dict(zip([c for c, _ in spec.when], combo))
                      for combo in itertools.product(*[allowed for _, allowed in spec.when])]
        others: dict[str, tuple] = {}  # each other parameter's values (of its first finite spec)
        for other in params:
            if other.name != spec.name and other.finite_values is not None:
                others.setdefault(other.name, other.finite_values)
        combinations = [dict(zip(others, combo))
                        for combo in itertools.islice(itertools.product(*others.values()), MAX_COMBINATIONS_TRIED + 1)]
        if len(combinations) > MAX_COMBINATIONS_TRIED:
            combinations = [{}]
        for what, value in _values_to_check(spec):
            for condition in conditions:
                contexts = [{**fixed, **condition}] + [{**fixed, **other, **condition} for other in combinations]
                errors = []
                for context in contexts:
                    try:
                        GanConfig.from_flat({**context, spec.name: value})
                        break
                    except ConfigError as error:
                        errors.append(error)
                else:
                    raise SpaceError(f"search_space.{spec.name}.{spec.distribution} {what} {value!r}: {errors[0]}")


def _dataset_options(dataset: str, raw: Any):
    """dataset_options: the split sizes and seed of Stacked MNIST (gan.stacked_mnist.StackedOptions), else None."""
    if raw is None:
        return None
    from gan.data import STACKED_DATASETS
    from gan.stacked_mnist import OPTION_KEYS, StackedOptions

    if dataset not in STACKED_DATASETS:
        raise SpaceError(f"dataset_options apply to {', '.join(STACKED_DATASETS)}, not to {dataset}")
    try:
        return StackedOptions(**_check_keys("dataset_options", raw, OPTION_KEYS))
    except ValueError as error:
        raise SpaceError(f"dataset_options: {error}") from None


def _inception_weights(evaluation_raw: dict) -> str | None:
    """inception: true turns on fid_inception in the final evaluation; the weights file must exist now."""
    inception = evaluation_raw.get("inception", False)
    if not isinstance(inception, bool):
        raise SpaceError(f"evaluation.inception must be true or false, got {inception!r}")
    if not inception:
        if "inception_weights" in evaluation_raw:
            raise SpaceError("evaluation.inception_weights is given but evaluation.inception is not true")
        return None
    from gan.metrics.inception import InceptionWeightsUnavailable, weights_path

    try:
        return str(weights_path(evaluation_raw.get("inception_weights")))
    except InceptionWeightsUnavailable as error:
        raise SpaceError(str(error)) from None


def _budget(key: str, raw: Any, nested: bool) -> Budget:
    """budget: {steps | epochs, eval_every}, and optionally per_arch: {mlp: {...}, dcgan: {...}} for
    architectures that need a budget of their own (one level only)."""
    budget_raw = _check_keys(key, raw, BUDGET_KEYS if nested else BUDGET_UNIT_KEYS)
    if ("steps" in budget_raw) == ("epochs" in budget_raw):
        raise SpaceError(f"{key} needs exactly one of steps or epochs")
    if "eval_every" not in budget_raw:
        raise SpaceError(f"{key} needs eval_every (in the budget's unit)")
    per_arch = ()
    if budget_raw.get("per_arch") is not None:
        per_arch_raw = _check_keys(f"{key}.per_arch", budget_raw["per_arch"], ARCHITECTURES)
        per_arch = tuple((arch, _budget(f"{key}.per_arch.{arch}", value, nested=False))
                         for arch, value in per_arch_raw.items())
    budget = Budget(
        steps=_positive_int(f"{key}.steps", budget_raw["steps"]) if "steps" in budget_raw else None,
        epochs=_number(f"{key}.epochs", budget_raw["epochs"]) if "epochs" in budget_raw else None,
        eval_every=_number(f"{key}.eval_every", budget_raw["eval_every"]),
        per_arch=per_arch,
    )
    if (budget.epochs is not None and budget.epochs <= 0) or budget.eval_every <= 0:
        raise SpaceError(f"{key}.epochs and {key}.eval_every must be > 0")
    return budget


def _arms(raw: dict, fixed: dict[str, Any], searched: tuple[str, ...]) -> tuple[tuple[Arm, ...], str | None]:
    """An ablation's arms (see the module docstring) and its reference arm; ((), None) without `arms`. Each arm
    must make a valid GanConfig with the fixed values (the grid's points are checked with every arm later)."""
    if "arms" not in raw:
        if "reference_arm" in raw:
            raise SpaceError("reference_arm names an arm, but the space has no arms")
        return (), None
    arms_raw = raw["arms"]
    if not isinstance(arms_raw, dict) or not arms_raw:
        raise SpaceError("arms must be a non-empty mapping of arm names to overrides, like {recipe: {}, "
                         "no batch-norm in G: {g_batchnorm: false}}")
    arms: list[Arm] = []
    configurations: dict[tuple, str] = {}  # each arm's whole configuration, to find two arms that are one
    for name, overrides_raw in arms_raw.items():
        if not isinstance(name, str) or not name.strip():
            raise SpaceError(f"arms: an arm's name must be a non-empty string, got {name!r}")
        where = f"arms.{name}"
        overrides = dict(_check_keys(where, overrides_raw, GanConfig.field_names()))
        if "seed" in overrides:
            raise SpaceError(f"{where}: an arm cannot set seed (seeds_per_config and seed set each trial's)")
        clash = [key for key in overrides if key in searched]
        if clash:
            raise SpaceError(f"{where} overrides '{clash[0]}', which search_space searches; an arm may set only "
                             f"fixed or default values")
        try:
            flat = GanConfig.from_flat({**fixed, **overrides}).to_flat()
        except ConfigError as error:
            raise SpaceError(f"{where}: {error}") from None
        same = configurations.setdefault(tuple(sorted((k, repr(v)) for k, v in flat.items())), name)
        if same != name:
            raise SpaceError(f"arms '{same}' and '{name}' make the same configuration")
        arms.append(Arm(name, overrides))
    arm_names = [arm.name for arm in arms]
    reference = raw.get("reference_arm", arm_names[0])
    if reference not in arm_names:
        raise SpaceError(f"reference_arm '{reference}' is not an arm (arms: {', '.join(arm_names)})"
                         f"{suggestion(str(reference), arm_names)}")
    return tuple(arms), reference


def _confirm(raw: dict, search: str, scheduler: str, params: list[ParamSpec], fixed: dict[str, Any]) -> Confirm | None:
    """`confirm: {top: K, seeds: N, against: {searched parameter: value, ...}}` (see study.confirm); None without it.
    `against` must set every searched parameter that is active for it (its `when` conditions) and nothing else, and
    make a valid GanConfig with the fixed values; its values may lie outside the searched ranges (a recipe's)."""
    if "confirm" not in raw:
        return None
    if search == "grid":
        raise SpaceError("confirm applies to a search (search: random or optuna); a grid runs every configuration "
                         "already: use seeds_per_config")
    if scheduler == "pbt":
        raise SpaceError("confirm does not apply to scheduler: pbt (a PBT trial's learning rates change during "
                         "training, so no configuration can be rerun as searched)")
    if raw.get("seeds_per_config", 1) != 1:
        raise SpaceError("confirm needs seeds_per_config: 1 (the search runs each configuration once; "
                         "confirm.seeds sets the confirmation's seeds)")
    confirm_raw = _check_keys("confirm", raw["confirm"], CONFIRM_KEYS)
    missing = [key for key in CONFIRM_KEYS if key not in confirm_raw]
    if missing:
        raise SpaceError(f"confirm needs {', '.join(CONFIRM_KEYS)}, missing {', '.join(missing)}; e.g. "
                         "confirm: {top: 2, seeds: 6, against: {lr_g: 0.001, lr_d: 0.001}}")
    top = _positive_int("confirm.top", confirm_raw["top"])
    seeds = _positive_int("confirm.seeds", confirm_raw["seeds"])
    if seeds < 2:
        raise SpaceError(f"confirm.seeds must be at least 2 (a confirmation compares spreads over seeds), got {seeds}")
    num_samples = _positive_int("num_samples", raw.get("num_samples", 10))
    if top > num_samples:
        raise SpaceError(f"confirm.top {top} exceeds num_samples {num_samples}: there are not that many "
                         "configurations to confirm")
    against = confirm_raw["against"]
    searched = tuple(dict.fromkeys(p.name for p in params))
    if not isinstance(against, dict) or not against:
        raise SpaceError(f"confirm.against must map the searched parameters ({', '.join(searched)}) to the reference "
                         f"configuration's values, got {against!r}")
    for key in against:
        if key not in searched:
            raise SpaceError(f"confirm.against: '{key}' is not a searched parameter (searched: {', '.join(searched)})"
                             f"{suggestion(str(key), searched)}")
    assigned: dict[str, Any] = {}
    for name in searched:  # in the order of search_space: a condition names earlier parameters only
        active = any(p.name == name and p.active(assigned) for p in params)
        if active and name not in against:
            raise SpaceError(f"confirm.against must set every searched parameter; missing '{name}'")
        if not active and name in against:
            raise SpaceError(f"confirm.against sets '{name}', which its `when` conditions leave out of this "
                             "configuration")
        if active:
            assigned[name] = against[name]
    try:
        typed = GanConfig.from_flat({**fixed, **assigned}).to_flat()
    except ConfigError as error:
        raise SpaceError(f"confirm.against: {error}") from None
    return Confirm(top, seeds, {name: typed[name] for name in assigned})


def parse_space(raw: Any, path: Path) -> StudySpace:
    if not isinstance(raw, dict):
        raise SpaceError("a search space must be a YAML mapping")
    _check_keys("the space", raw, TOP_LEVEL_KEYS)
    known_params = GanConfig.field_names()

    dataset = _one_of("dataset", raw.get("dataset", "mnist5k"), DATASETS)
    dataset_options = _dataset_options(dataset, raw.get("dataset_options"))
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
    _check_domains(params, fixed)
    arms, reference_arm = _arms(raw, fixed, tuple(declared))

    # arms are a grid dimension: an ablation is a grid search unless it says otherwise (and then it is an error)
    search = _one_of("search", raw.get("search", "grid" if arms else "optuna"), SEARCH_ALGORITHMS)
    if arms and search != "grid":
        raise SpaceError(f"arms need search: grid (every arm runs on every seed), got search: {search}")
    scheduler = _one_of("scheduler", raw.get("scheduler", "asha"), SCHEDULERS)
    scheduler_options = dict(_check_keys("scheduler_options", raw.get("scheduler_options"), SCHEDULER_OPTIONS[scheduler]))
    if search == "grid":
        for p in params:
            if p.finite_values is None:
                raise SpaceError(f"search: grid needs choice or grid values, but '{p.name}' is {p.distribution}")
        if "num_samples" in raw:
            # Tune would repeat the whole grid; with our explicit seeds that reruns identical trials
            raise SpaceError("num_samples does not apply to search: grid (every grid point runs once per seed); "
                             "use seeds_per_config for repeats")
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
    confirm = _confirm(raw, search, scheduler, params, fixed)

    mode = _one_of("mode", raw.get("mode", "min"), ("min", "max"))
    budget = _budget("budget", raw.get("budget"), nested=True)

    evaluation_raw = _check_keys("evaluation", raw.get("evaluation"), EVALUATION_KEYS)
    from gan.evaluation import METRIC_NAMES, METRICS, default_metrics, metrics_unsupported_by, reported_metric_names

    def metric_list(key: str, default) -> tuple[str, ...]:
        listed = evaluation_raw.get(key, default)
        if not isinstance(listed, list | tuple):
            raise SpaceError(f"evaluation.{key} must be a list")
        for name in listed:
            _one_of(f"evaluation.{key} entry", name, METRIC_NAMES)
        # the balance regime of every trial is read off D's outputs, and D's overfitting beside them: always evaluated
        return tuple(dict.fromkeys([*listed, "discriminator", "overfitting"])) if listed else ()

    metrics = metric_list("metrics", default_metrics(dataset))
    training_metrics = metric_list("training_metrics", ())  # empty: the same as metrics
    unsupported = metrics_unsupported_by(dataset, metrics)
    if unsupported:
        raise SpaceError(f"evaluation.metrics {unsupported} label whole images, which {dataset} does not have "
                         f"(each channel is a digit): use modes")
    evaluation = EvaluationPlan(
        num_samples=_positive_int("evaluation.num_samples", evaluation_raw.get("num_samples", EvaluationPlan.num_samples)),
        metrics=metrics,
        final=bool(evaluation_raw.get("final", True)),
        training_metrics=training_metrics,
        inception_weights=_inception_weights(evaluation_raw),
    )
    if set(evaluation.during_training) - set(metrics):
        raise SpaceError(f"evaluation.training_metrics {list(training_metrics)} must be among evaluation.metrics "
                         f"{list(metrics)}")
    during = evaluation.during_training
    metric = raw.get("metric", "fid" if "fid" in during else METRICS[during[0]].outputs[0])
    # the scheduler and the search read the metric at every evaluation during training
    reportable = reported_metric_names(during)
    if metric not in reportable:
        raise SpaceError(f"metric '{metric}' is not reported by the evaluations during training {list(during)}"
                         f"{suggestion(str(metric), reportable)}")

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
        dataset_options=dataset_options,
        arms=arms,
        reference_arm=reference_arm,
        confirm=confirm,
    )
    if search == "grid":
        for variant in space.grid_variants():  # every grid point must make a valid configuration, with every arm
            for arm in arms or (Arm("", {}),):
                try:
                    GanConfig.from_flat({**fixed, **arm.overrides, **variant})
                except ConfigError as error:
                    raise SpaceError(f"{f'arms.{arm.name} with ' if arm.name else ''}grid point {variant}: "
                                     f"{error}") from None
    return space

