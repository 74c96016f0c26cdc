"""GAN losses as pure functions of D's logits, and D's regularisers as functions of D and its inputs.

D's output is a logit; D(x) = sigmoid(logit) wherever a probability is meant. The log-losses are written
with softplus so that log D and log(1 - D) stay finite when D saturates:
    -log D(x)      = softplus(-logit)
    -log(1 - D(x)) = softplus(logit)

Every loss has one signature: discriminator(d_real_logits, d_fake_logits) -> D's loss (D descends it),
generator(d_fake_logits) -> G's loss (G descends it). Chosen by name from LOSSES:
- minimax, nonsaturating: Goodfellow et al. 2014 (Algorithm 1, and the suggested G loss);
- hinge (Lim & Ye 2017; Miyato et al. 2018): D: mean relu(1 - r) + mean relu(1 + f), G: -mean f;
- least_squares (Mao et al. 2017, on D's sigmoid output as compare_gan's loss_lib does, so D(x) keeps its
  meaning): D: ½ mean (D(x) - 1)² + ½ mean D(G(z))², G: ½ mean (D(G(z)) - 1)²;
- wasserstein (Arjovsky et al. 2017), the critic's raw output: D: mean f - mean r, G: -mean f. Unbounded
  without a constraint on D: the configuration requires the gradient penalty or spectral normalisation.
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


def hinge_discriminator_loss(d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor) -> torch.Tensor:
    """mean max(0, 1 - D_logit(x)) + mean max(0, 1 + D_logit(G(z)))."""
    return F.relu(1 - d_real_logits).mean() + F.relu(1 + d_fake_logits).mean()


def critic_generator_loss(d_fake_logits: torch.Tensor) -> torch.Tensor:
    """-mean D_logit(G(z)): G's loss of the hinge and Wasserstein GANs."""
    return -d_fake_logits.mean()


def least_squares_discriminator_loss(d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor) -> torch.Tensor:
    """½ mean (D(x) - 1)² + ½ mean D(G(z))², D = sigmoid(logit)."""
    return 0.5 * ((torch.sigmoid(d_real_logits) - 1) ** 2).mean() + 0.5 * (torch.sigmoid(d_fake_logits) ** 2).mean()


def least_squares_generator_loss(d_fake_logits: torch.Tensor) -> torch.Tensor:
    """½ mean (D(G(z)) - 1)²."""
    return 0.5 * ((torch.sigmoid(d_fake_logits) - 1) ** 2).mean()


def wasserstein_discriminator_loss(d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor) -> torch.Tensor:
    """mean D(G(z)) - mean D(x) on the critic's raw output: minus the critic's estimate of W1."""
    return d_fake_logits.mean() - d_real_logits.mean()


@dataclass(frozen=True)
class GanLoss:
    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]


LOSSES: dict[str, GanLoss] = {
    "minimax": GanLoss(discriminator_loss, minimax_generator_loss),
    "nonsaturating": GanLoss(discriminator_loss, nonsaturating_generator_loss),
    "hinge": GanLoss(hinge_discriminator_loss, critic_generator_loss),
    "least_squares": GanLoss(least_squares_discriminator_loss, least_squares_generator_loss),
    "wasserstein": GanLoss(wasserstein_discriminator_loss, critic_generator_loss),
}


# --- regularisers of D (compare_gan's penalty_lib): each a function of D's outputs or D and a batch ------
def input_gradient_norms(logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """‖∂ logit_i / ∂ x_i‖₂ for each sample i (N values), kept in the graph so a penalty can be descended.

    `logits` (N) must have been computed from `inputs` (N x ...) with inputs.requires_grad. The gradient of
    the summed logits is each sample's own gradient when samples do not interact (no batch-norm in train mode).
    """
    (gradient,) = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
    return gradient.flatten(1).norm(dim=1)


def r1_penalty(d_real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """mean ‖∇_x D_logit(x)‖² on real data (Mescheder et al. 2018); D's loss adds γ/2 times it."""
    return (input_gradient_norms(d_real_logits, real) ** 2).mean()


def gradient_penalty(discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     alpha: torch.Tensor) -> torch.Tensor:
    """mean (‖∇ D_logit(x̂)‖₂ - 1)² at x̂ = α·x + (1 - α)·G(z) (Gulrajani et al. 2017); D's loss adds λ times it.

    alpha: N x 1 x ... x 1, drawn from U(0, 1) by the caller (one per sample pair), so the function is pure.
    """
    interpolates = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    return ((input_gradient_norms(discriminator(interpolates), interpolates) - 1) ** 2).mean()
