"""How a trial's MLflow run is named and grouped.

- Its name says what it trained: `dcgan g32 d8 k1 s0` (architecture, G and D widths, k, then every other
  searched parameter as name=value, an ablation's arm in brackets, the seed last):
  `dcgan g16 d16 k1 [no batch-norm in G] s3`. Tune's trial id stays in the tag gan_study.trial_id.
- Its configuration id (tag gan_study.config_id) is a hash of all its parameters but the seed: the seeds
  of one configuration share it, so MLflow's "Group by" that tag aggregates them (mean, min, max).
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any, Iterable

from gan.config import ConfigError, GanConfig

# The fields every name starts with, and how they are written: 'dcgan g32 d8 k1'
LEADING_FIELDS = (("arch", ""), ("g_width", "g"), ("d_width", "d"), ("k", "k"))
# The remedies' keys are long; a name spells them as the field's usual abbreviation: 'sn_d=on r1=1 ema=0.999'
SHORT_NAMES = {"d_spectral_norm": "sn_d", "g_spectral_norm": "sn_g", "r1_gamma": "r1", "gradient_penalty": "gp",
               "g_ema_decay": "ema", "g_ema_start": "ema_start"}
CONFIG_ID_CHARS = 12


def flat_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Every GanConfig field of a trial (defaults included) when its parameters make a valid configuration;
    the parameters as given when they do not (the trial will end as errored, its run still names them)."""
    try:
        return GanConfig.from_flat(params).to_flat()
    except ConfigError:
        return dict(params)


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.6g}"  # 1.0006 stays 1.0006, 0.0002 stays 0.0002
    return str(value)


def trial_run_name(params: dict[str, Any], searched: Iterable[str], arm: str | None = None) -> str:
    """'dcgan g32 d8 k1 lr_g=0.0002 s0' for a trial's flat parameters and the names of the searched ones;
    'dcgan g16 d16 k1 [no batch-norm in G] s3' for a trial of an ablation's `arm`."""
    flat = flat_parameters(params)
    leading = [f"{prefix}{_short(flat[name])}" for name, prefix in LEADING_FIELDS if name in flat]
    others = [f"{SHORT_NAMES.get(name, name)}={_short(flat[name])}" for name in searched
              if name in flat and name not in dict(LEADING_FIELDS) and name != "seed"]
    seed = [f"s{flat['seed']}"] if "seed" in flat else []
    return " ".join(leading + others + ([f"[{arm}]"] if arm is not None else []) + seed)


def naming_parameters(grid_points: list[dict[str, Any]]) -> tuple[str, ...]:
    """The parameters of a grid that a run name needs beyond architecture, widths and k: those that take more
    than one value (absent counts as one) among the grid points sharing those leading fields. A value that
    follows from the leading fields (balance.yaml's per-architecture learning rates) would only lengthen
    every name."""
    leading = [name for name, _ in LEADING_FIELDS]
    names = list(dict.fromkeys(name for point in grid_points for name in point
                               if name not in leading and name != "seed"))
    values: dict[tuple, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for point in grid_points:
        group = values[tuple(repr(point.get(name)) for name in leading)]
        for name in names:
            group[name].add(repr(point.get(name)))
    return tuple(name for name in names if any(len(group[name]) > 1 for group in values.values()))


def config_id(params: dict[str, Any]) -> str:
    """A stable hash of a trial's parameters without its seed: the same for every seed of a configuration."""
    flat = {name: value for name, value in flat_parameters(params).items() if name != "seed"}
    encoded = json.dumps(flat, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:CONFIG_ID_CHARS]
