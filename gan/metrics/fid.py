"""Fréchet distance between feature sets (FID) and batched feature extraction.

    FID = ‖μ_r − μ_f‖² + Tr(Σ_r) + Tr(Σ_f) − 2·Tr((Σ_r Σ_f)^½)

over features N x F (N−1 covariance estimator, float64), in squared feature units. Its scale depends on
the extractor: classifier-feature FID ("Fréchet LeNet distance") is never comparable with Inception-FID.
Features stay where the extractor computed them (a GPU): statistics and distance are computed there.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from gan.metrics.diagnostics import float64_tensor
from gan.metrics.frechet import frechet_distance, frechet_distance_fast, gaussian_statistics

DEFAULT_FEATURE_BATCH_SIZE = 500


def fid(real_features, fake_features, exact: bool = False) -> float:
    """FID between two feature sets N x F (arrays or tensors), in float64 on the device of `real_features`
    (the CPU for an array).

    exact=True uses pytorch-fid's scipy `sqrtm` formula on the CPU; the default eigenvalue path (torch) agrees to
    ~1e-6 relative and is much faster for F = 2048.
    """
    real = float64_tensor(real_features)
    mu_r, sigma_r = gaussian_statistics(real)
    mu_f, sigma_f = gaussian_statistics(float64_tensor(fake_features, real.device))
    distance = frechet_distance if exact else frechet_distance_fast
    return distance(mu_r, sigma_r, mu_f, sigma_f)


@torch.no_grad()
def extract_features(
    extractor: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
    batch_size: int = DEFAULT_FEATURE_BATCH_SIZE, device: str | torch.device = "cpu",
) -> torch.Tensor:
    """extractor(images N x C x H x W in [0, 1]) in batches on `device`; returns a float64 tensor N x F on `device`
    (the metrics read it there: no copy back to the host)."""
    if isinstance(extractor, nn.Module):
        extractor.eval()
    chunks = [
        extractor(images[i:i + batch_size].to(device)).reshape(min(batch_size, len(images) - i), -1).double()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks)
