"""Evaluation of a trainer at one point of training: a list of named metric functions.

Each metric function takes an `EvaluationInputs` and returns {name: value}. The inputs hold
the generated samples, the real reference split and D's outputs on both, computed once and
shared by every metric. Metrics that need classifier features get them from `features()`,
which extracts lazily and caches per evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from gan.data import Split
from gan.metrics.frechet import frechet_distance, gaussian_statistics

# Reported by every evaluation from the training statistics, whatever metrics are chosen.
TRAINING_METRICS = ("loss_d", "loss_g", "d_real", "d_fake")


@dataclass
class EvaluationInputs:
    fake: torch.Tensor  # N x C x H x W in [0, 1]
    real: Split  # the reference split: validation during training, test at the final evaluation
    d_real: torch.Tensor  # D(x) on `real`, N_real
    d_fake: torch.Tensor  # D(G(z)) on `fake`, N
    extras: dict = field(default_factory=dict)  # shared lazily computed values (features, ...)


MetricFunction = Callable[[EvaluationInputs], dict[str, float]]


def pixel_fd(inputs: EvaluationInputs) -> dict[str, float]:
    """Fréchet distance between Gaussians fitted to raw pixels of samples and real images ([0, 1] scale)."""
    fake = inputs.fake.flatten(1).double().cpu().numpy()
    real = inputs.real.images.flatten(1).double().cpu().numpy()
    return {"pixel_fd": frechet_distance(*gaussian_statistics(fake), *gaussian_statistics(real))}


def discriminator_outputs(inputs: EvaluationInputs) -> dict[str, float]:
    """D on held-out real images and fresh samples, D in eval mode: mean D(x), mean D(G(z)) and their gap."""
    d_real = float(inputs.d_real.mean())
    d_fake = float(inputs.d_fake.mean())
    return {"eval_d_real": d_real, "eval_d_fake": d_fake, "d_gap": d_real - d_fake}


# name -> (function, names of the values it returns)
METRICS: dict[str, tuple[MetricFunction, tuple[str, ...]]] = {
    "pixel_fd": (pixel_fd, ("pixel_fd",)),
    "discriminator": (discriminator_outputs, ("eval_d_real", "eval_d_fake", "d_gap")),
}
METRIC_NAMES = tuple(METRICS)


def reported_metric_names(metrics: tuple[str, ...] | list[str]) -> list[str]:
    names = list(TRAINING_METRICS)
    for metric in metrics:
        names += METRICS[metric][1]
    return names


def evaluate(trainer, reference: Split, metrics: tuple[str, ...], num_samples: int, seed: int) -> dict[str, float]:
    """Generate `num_samples` images with a fixed seed and compute every metric in `metrics`."""
    fake = trainer.sample(num_samples, seed=seed)
    inputs = EvaluationInputs(
        fake=fake,
        real=reference,
        d_real=trainer.discriminator_probabilities(reference.images),
        d_fake=trainer.discriminator_probabilities(fake),
    )
    values: dict[str, float] = {}
    for metric in metrics:
        values.update(METRICS[metric][0](inputs))
    return {name: float(np.float64(value)) for name, value in values.items()}
