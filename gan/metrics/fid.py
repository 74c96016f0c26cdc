"""Fréchet distance between feature sets (FID), feature extraction, and an optional Inception-v3 extractor.

    FID = ‖μ_r − μ_f‖² + Tr(Σ_r) + Tr(Σ_f) − 2·Tr((Σ_r Σ_f)^½)

over features N x F (N−1 covariance estimator, float64), in squared feature units. Its scale depends on
the extractor: classifier-feature FID ("Fréchet LeNet distance") is never comparable with Inception-FID.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gan.metrics.frechet import frechet_distance, frechet_distance_fast, gaussian_statistics

INCEPTION_WEIGHTS_ENV = "GAN_STUDY_INCEPTION_WEIGHTS"
INCEPTION_INPUT_SIZE = 299
INCEPTION_FEATURE_DIM = 2048
DEFAULT_FEATURE_BATCH_SIZE = 500


class MissingInceptionWeights(FileNotFoundError):
    """The pt_inception-2015-12-05 weights file is not there; the message is one line for the user."""


def fid(real_features, fake_features, exact: bool = False) -> float:
    """FID between two feature sets N x F (arrays or tensors).

    exact=True uses pytorch-fid's scipy `sqrtm` formula; the default eigenvalue path agrees to ~1e-6 relative
    and is much faster for F = 2048.
    """
    mu_r, sigma_r = gaussian_statistics(real_features)
    mu_f, sigma_f = gaussian_statistics(fake_features)
    distance = frechet_distance if exact else frechet_distance_fast
    return distance(mu_r, sigma_r, mu_f, sigma_f)


@torch.no_grad()
def extract_features(
    extractor: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
    batch_size: int = DEFAULT_FEATURE_BATCH_SIZE, device: str | torch.device = "cpu",
) -> np.ndarray:
    """extractor(images N x C x H x W in [0, 1]) in batches on `device`; returns float64 N x F on the CPU."""
    if isinstance(extractor, nn.Module):
        extractor.eval()
    chunks = [
        extractor(images[i:i + batch_size].to(device)).reshape(min(batch_size, len(images) - i), -1).double().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks).numpy()


class InceptionFeatures(nn.Module):
    """torchvision's Inception-v3 up to the 2048-d pool3 layer, with pytorch-fid's input handling:
    grayscale tiled to 3 channels, bilinear resize to 299 x 299, [0, 1] pixels scaled to [−1, 1].

    Weights: pytorch-fid's pt_inception-2015-12-05 state dict, from `weights_path` or $GAN_STUDY_INCEPTION_WEIGHTS.
    Best effort: parameter names match torchvision's Inception3, so every convolution and batch-norm tensor
    is loaded by name (the 1008-way `fc` and the absent `AuxLogits` are skipped, as pool3 does not use them).
    pytorch-fid's FIDInceptionA/C/E blocks differ in pooling (average pooling without padded zeros, and max
    instead of average pooling in the last block), which torchvision's blocks do not reproduce; features are
    therefore close to, not identical with, pytorch-fid's, and scores are not comparable with published FIDs
    to the last digit. `pretrained=False` builds a randomly initialised network (tests only).
    """

    def __init__(self, weights_path: str | Path | None = None, pretrained: bool = True):
        super().__init__()
        from torchvision.models import inception_v3  # heavy and optional: imported only when used

        self.net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        if pretrained:
            self._load(weights_path or os.environ.get(INCEPTION_WEIGHTS_ENV))

    def _load(self, weights_path) -> None:
        if not weights_path or not Path(weights_path).is_file():
            where = f"'{weights_path}' does not exist" if weights_path else f"no path given and {INCEPTION_WEIGHTS_ENV} unset"
            raise MissingInceptionWeights(
                f"Inception FID needs the pt_inception-2015-12-05 weights file ({where}); "
                f"pass its path or set {INCEPTION_WEIGHTS_ENV}, or use the classifier-feature FID"
            )
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        wanted = {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits."))}
        missing = [k for k in self.net.state_dict() if not k.startswith(("fc.", "AuxLogits.")) and k not in wanted]
        if missing:
            raise ValueError(f"{weights_path} is not an Inception-v3 state dict: {len(missing)} tensors missing, e.g. {missing[0]}")
        self.net.load_state_dict(wanted, strict=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images N x C x H x W in [0, 1] (C = 1 or 3) -> pool3 features N x 2048."""
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        x = F.interpolate(images, size=(INCEPTION_INPUT_SIZE, INCEPTION_INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        net = self.net
        for block in (
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1, net.Conv2d_3b_1x1,
            net.Conv2d_4a_3x3, net.maxpool2, net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b,
            net.Mixed_6c, net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, net.avgpool,
        ):
            x = block(x)
        return torch.flatten(x, 1)  # N x 2048
