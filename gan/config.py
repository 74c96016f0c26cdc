"""The typed configuration of one GAN training run.

A trial's parameters arrive as a flat dict (YAML fixed values + sampled values); they are
validated once here into a frozen dataclass, so nothing below reads `dict.get(key, default)`.

Paper names, documented once:
    k        = d_steps_per_g_step (Algorithm 1 of Goodfellow et al. 2014)
    z        = the noise G maps to images: N(0, I) ("gaussian") or U(-√3, √3)^z_dim ("uniform", unit variance)
    lr_g/lr_d = learning rates of G and D
    g_width  = hidden units per layer (mlp) or ngf, the base channel count (dcgan)
    d_width  = hidden units per layer (mlp) or ndf (dcgan)
    g_depth/d_depth = hidden layers (mlp) or extra stride-1 conv layers per network (dcgan)
    gradient_penalty = λ of WGAN-GP (Gulrajani et al. 2017), r1_gamma = γ of R1 (Mescheder et al. 2018)
    g_ema_decay/g_ema_start = StudioGAN's g_ema_decay/g_ema_start (compare_gan: ema_decay/ema_start_step)
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any

ARCHITECTURES = ("mlp", "dcgan")
LOSS_NAMES = ("minimax", "nonsaturating", "hinge", "least_squares", "wasserstein")
WGAN_GP_DEFAULT_LAMBDA = 10.0  # Gulrajani et al. 2017: a wasserstein loss gets it unless told otherwise
OPTIMIZERS = ("sgd", "adam")
D_ACTIVATIONS = ("maxout", "leakyrelu")
NOISE_DISTRIBUTIONS = ("gaussian", "uniform")
# how the parameters of G and D are updated in one iteration of Algorithm 1
UPDATE_ORDERS = (
    "alternating",  # k D steps, then one G step on fresh noise against the updated D (the paper's Algorithm 1)
    "simultaneous",  # one forward pass; D's and G's gradients from the same minibatch, applied together (the 2014 code)
)
G_OUTPUT_BIASES = ("default", "marginals")  # marginals: sigmoid(bias) = the training pixels' means (2014 code)
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
    # PacGAN's packing: D judges `pack` samples at once, concatenated along channels (1: the ordinary D)
    pack: int = 1
    # mlp discriminator (Goodfellow et al. 2014: maxout + dropout)
    d_activation: str = "maxout"
    maxout_pieces: int = 5
    d_dropout: float = 0.5  # on the inputs of D's hidden-to-hidden and output layers
    d_input_dropout: float = 0.0  # on D's input pixels (the 2014 code: 0.2, i.e. pixels kept with p = 0.8)
    g_output_bias: str = "default"  # mlp G's sigmoid output bias: PyTorch's default init, or from the data
    # initialisation: 0 keeps the architecture's own (PyTorch's default for mlp, N(0, 0.02) for dcgan);
    # r > 0 draws every weight from U(-r, r) and sets biases to 0 (pylearn2's irange; the 2014 code: G 0.05, D 0.005)
    g_init_range: float = 0.0
    d_init_range: float = 0.0
    noise: str = "gaussian"
    # dcgan switches (Radford et al. 2015)
    g_batchnorm: bool = True
    d_batchnorm: bool = True
    leaky_slope: float = 0.2
    # training (Algorithm 1)
    k: int = 1
    loss: str = "nonsaturating"
    # regularisers of D (gan.losses): λ·mean (‖∇D(x̂)‖ − 1)² on real/fake interpolates; γ/2·mean ‖∇D(x)‖² on reals
    gradient_penalty: float = 0.0
    r1_gamma: float = 0.0
    # spectral normalisation of every convolution and linear layer (Miyato et al. 2018)
    d_spectral_norm: bool = False
    g_spectral_norm: bool = False
    # an exponential moving average of G's weights, evaluated beside G (0: off): after each G step from step
    # g_ema_start on, w_ema = decay·w_ema + (1 − decay)·w; before it, w_ema = w; batch-norm buffers copied
    g_ema_decay: float = 0.0
    g_ema_start: int = 0
    optimizer: str = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    momentum: float = 0.5
    # SGD schedules of the 2014 code (pylearn2's ExponentialDecay and MomentumAdjustor):
    # lr divided by lr_decay after every generator step, never below lr_min (lr_decay 1: constant);
    # momentum from `momentum` to `momentum_final` linearly over epochs momentum_ramp_start..momentum_ramp_end
    # (an epoch is one pass of D over the training split; momentum_ramp_end 0: constant momentum)
    lr_decay: float = 1.0
    lr_min: float = 0.0
    momentum_final: float = 0.5
    momentum_ramp_start: int = 0
    momentum_ramp_end: int = 0
    updates: str = "alternating"
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        # every field's domain, so that a search space can be checked value by value before any trial runs
        for name, allowed in (
            ("arch", ARCHITECTURES),
            ("loss", LOSS_NAMES),
            ("optimizer", OPTIMIZERS),
            ("d_activation", D_ACTIVATIONS),
            ("noise", NOISE_DISTRIBUTIONS),
            ("updates", UPDATE_ORDERS),
            ("g_output_bias", G_OUTPUT_BIASES),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("z_dim", "g_width", "d_width", "k", "batch_size", "maxout_pieces", "pack"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("g_depth", "d_depth", "seed", "momentum_ramp_start", "momentum_ramp_end", "g_ema_start"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.arch == "mlp" and min(self.g_depth, self.d_depth) < 1:
            raise ConfigError("mlp needs g_depth >= 1 and d_depth >= 1 hidden layers")
        for name in ("lr_g", "lr_d"):
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("d_dropout", "d_input_dropout", "beta1", "beta2", "momentum", "momentum_final", "g_ema_decay"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("leaky_slope", "g_init_range", "d_init_range", "lr_min", "gradient_penalty", "r1_gamma"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 1 <= self.lr_decay < math.inf:
            raise ConfigError(f"lr_decay must be >= 1 (1: no decay), got {self.lr_decay}")
        if self.momentum_ramp_end and self.momentum_ramp_end <= self.momentum_ramp_start:
            raise ConfigError(f"momentum_ramp_end must be > momentum_ramp_start ({self.momentum_ramp_start}) or 0, "
                              f"got {self.momentum_ramp_end}")
        if self.updates == "simultaneous" and self.k != 1:
            raise ConfigError(f"updates: simultaneous makes one D and one G update per minibatch: k must be 1, got {self.k}")
        if self.loss == "wasserstein" and not self.gradient_penalty and not self.d_spectral_norm:
            raise ConfigError("loss wasserstein needs a constraint on D: gradient_penalty > 0 (WGAN-GP: "
                              f"{WGAN_GP_DEFAULT_LAMBDA:g}) or d_spectral_norm: true")
        if self.arch != "mlp" and (self.g_output_bias != "default" or self.d_input_dropout):
            raise ConfigError("g_output_bias and d_input_dropout apply to arch mlp only")

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
        if typed.get("loss") == "wasserstein" and "gradient_penalty" not in typed and not typed.get("d_spectral_norm"):
            typed["gradient_penalty"] = WGAN_GP_DEFAULT_LAMBDA
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
