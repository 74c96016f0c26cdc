"""GAN losses as pure functions of D's logits (D(x) = sigmoid(logit)).

Written with softplus so that log D and log(1 - D) stay finite when D saturates:
    -log D(x)      = softplus(-logit)
    -log(1 - D(x)) = softplus(logit)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


def discriminator_loss(d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor) -> torch.Tensor:
    """-mean[log D(x) + log(1 - D(G(z)))]: D ascends the value function of Algorithm 1."""
    return F.softplus(-d_real_logits).mean() + F.softplus(d_fake_logits).mean()


def minimax_generator_loss(d_fake_logits: torch.Tensor) -> torch.Tensor:
    """mean log(1 - D(G(z))): the saturating loss of Algorithm 1 (G descends it)."""
    return -F.softplus(d_fake_logits).mean()


def nonsaturating_generator_loss(d_fake_logits: torch.Tensor) -> torch.Tensor:
    """-mean log D(G(z)): the paper's suggested alternative with strong early gradients."""
    return F.softplus(-d_fake_logits).mean()


@dataclass(frozen=True)
class GanLoss:
    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]


LOSSES: dict[str, GanLoss] = {
    "minimax": GanLoss(discriminator_loss, minimax_generator_loss),
    "nonsaturating": GanLoss(discriminator_loss, nonsaturating_generator_loss),
}
