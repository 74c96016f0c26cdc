"""Modes covered on Stacked MNIST, counted as VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018) count them.

Each of an image's G channel groups is labelled by a digit classifier with K classes (K = 10); the image's
mode is its tuple of labels, numbered m = Σ_g c_g · K^(G−1−g) (100·c0 + 10·c1 + c2 for Stacked MNIST), one
of M = K^G modes (1,000). From N samples with mode shares p̂:

    modes covered = #{m : p̂_m > 0}                 (a mode is covered by a single sample, as in the literature)
    modes KL      = KL(p̂ ‖ uniform) = Σ_m p̂_m · ln(p̂_m · M)   nats, 0·ln 0 = 0

KL is 0 when every mode is hit equally often and ln M (6.91 nats for 1,000) when one mode takes every sample.
Both depend on N: the literature's protocol is N = 26,000 (PacGAN's Table 3), where a generator drawing modes
uniformly covers all 1,000 but for e^−26 of them and its KL is about (M − 1)/(2N) = 0.019 nats (plug-in bias).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from gan.metrics.diagnostics import mode_coverage

PROTOCOL_SAMPLES = 26_000  # samples whose modes are counted (VEEGAN, PacGAN)
CLASSES_PER_CHANNEL = 10


def mode_numbers(channel_labels, classes_per_channel: int = CLASSES_PER_CHANNEL) -> torch.Tensor:
    """N x G labels in [0, K) -> N mode numbers Σ_g c_g · K^(G−1−g) in [0, K^G)."""
    labels = torch.as_tensor(channel_labels).long().cpu()
    if labels.dim() != 2:
        raise ValueError(f"channel labels must be N x G, got shape {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= classes_per_channel):
        raise ValueError(f"channel labels must lie in [0, {classes_per_channel})")
    groups = labels.shape[1]
    place_values = torch.tensor([classes_per_channel ** (groups - 1 - g) for g in range(groups)])
    return (labels * place_values).sum(dim=1)


def modes_covered_and_kl(channel_labels, classes_per_channel: int = CLASSES_PER_CHANNEL) -> tuple[int, float]:
    """(modes covered, KL(p̂(mode) ‖ uniform over K^G modes) in nats) of N samples' N x G channel labels."""
    labels = torch.as_tensor(channel_labels)
    num_modes = classes_per_channel ** labels.shape[1]
    # a mode is covered by one sample: mode_coverage's threshold max(1, 0 · N · q) = 1
    return mode_coverage(mode_numbers(labels, classes_per_channel), np.ones(num_modes), num_modes,
                         min_share_of_expected=0.0)


def expected_modes_covered(num_samples: int, num_modes: int) -> float:
    """Modes a generator drawing them uniformly covers on average with `num_samples` samples:
    M · (1 − (1 − 1/M)^N). With N = 26,000 and M = 1,000: 1,000 (to 9 digits); with N = 2,000: 865."""
    return num_modes * -math.expm1(num_samples * math.log1p(-1.0 / num_modes))
