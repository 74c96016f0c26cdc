"""The typed configuration of one GAN training run.

A trial's parameters arrive as a flat dict (YAML fixed values + sampled values); they are
validated once here into a frozen dataclass, so nothing below reads `dict.get(key, default)`.

Paper names, documented once:
    k        = d_steps_per_g_step (Algorithm 1 of Goodfellow et al. 2014)
    lr_g/lr_d = learning rates of G and D
    g_width  = hidden units per layer (mlp) or ngf, the base channel count (dcgan)
    d_width  = hidden units per layer (mlp) or ndf (dcgan)
    g_depth/d_depth = hidden layers (mlp) or extra stride-1 conv layers per network (dcgan)
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any

ARCHITECTURES = ("mlp", "dcgan")
LOSS_NAMES = ("minimax", "nonsaturating")
OPTIMIZERS = ("sgd", "adam")
D_ACTIVATIONS = ("maxout", "leakyrelu")
# What may change when a run continues from another run's state (PBT): not the networks' shapes.
OPTIMISATION_HYPERPARAMETERS = ("lr_g", "lr_d", "beta1", "beta2", "momentum", "k")


class ConfigError(ValueError):
    """A user-caused configuration problem; the message is one line."""


@dataclass(frozen=True)
class GanConfig:
    arch: str = "mlp"
    z_dim: int = 100
    # capacity, set independently for G and D
    g_width: int = 256
    g_depth: int = 2
    d_width: int = 256
    d_depth: int = 2
    # mlp discriminator (Goodfellow et al. 2014: maxout + dropout)
    d_activation: str = "maxout"
    maxout_pieces: int = 5
    d_dropout: float = 0.5
    # dcgan switches (Radford et al. 2015)
    g_batchnorm: bool = True
    d_batchnorm: bool = True
    leaky_slope: float = 0.2
    # training (Algorithm 1)
    k: int = 1
    loss: str = "nonsaturating"
    optimizer: str = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    momentum: float = 0.5
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        for name, allowed in (
            ("arch", ARCHITECTURES),
            ("loss", LOSS_NAMES),
            ("optimizer", OPTIMIZERS),
            ("d_activation", D_ACTIVATIONS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("z_dim", "g_width", "d_width", "k", "batch_size", "maxout_pieces"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("g_depth", "d_depth"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.arch == "mlp" and min(self.g_depth, self.d_depth) < 1:
            raise ConfigError("mlp needs g_depth >= 1 and d_depth >= 1 hidden layers")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.d_dropout < 1:
            raise ConfigError(f"d_dropout must be in [0, 1), got {self.d_dropout}")

    @property
    def capacity_ratio_log2(self) -> float:
        """log2(d_width / g_width): the G/D balance axis of the studies (0 = equal widths)."""
        return math.log2(self.d_width / self.g_width)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_flat(cls, params: dict[str, Any]) -> "GanConfig":
        """Build from a flat dict; unknown keys are errors that suggest the closest known key."""
        known = cls.field_names()
        for key in params:
            if key not in known:
                raise ConfigError(f"unknown parameter '{key}'{suggestion(key, known)}")
        typed = {}
        for field in dataclasses.fields(cls):
            if field.name in params:
                typed[field.name] = _coerce(field.name, params[field.name], type(field.default))
        return cls(**typed)

    def to_flat(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def suggestion(key: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(name: str, value: Any, target: type) -> Any:
    """YAML gives 1e-3 as a string and ints where floats are meant; accept the unambiguous cases."""
    if target is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if target is int:
        if isinstance(value, bool) or not float(_number(name, value)).is_integer():
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return int(float(value))
    if target is float:
        return float(_number(name, value))
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
