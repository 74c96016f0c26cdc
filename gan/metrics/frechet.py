"""Fréchet distance between two Gaussians, the quantity behind FID.

    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁) + Tr(Σ₂) − 2·Tr((Σ₁Σ₂)^½)

in the squared units of the features, computed in float64. `frechet_distance` follows
pytorch-fid's `calculate_frechet_distance` step by step (scipy's `sqrtm`); `frechet_distance_fast`
computes the same trace from a symmetric eigendecomposition, which is faster and stable for
large feature dimensions (2048).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

DEFAULT_EPS = 1e-6
# pytorch-fid rejects a matrix square root whose diagonal has an imaginary part above this.
MAX_IMAGINARY_DIAGONAL = 1e-3


def _as_float64(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def _checked_statistics(mu1, sigma1, mu2, sigma2) -> tuple[np.ndarray, ...]:
    mu1, mu2 = np.atleast_1d(_as_float64(mu1)), np.atleast_1d(_as_float64(mu2))
    sigma1, sigma2 = np.atleast_2d(_as_float64(sigma1)), np.atleast_2d(_as_float64(sigma2))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors have different shapes: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0], mu1.shape[0]):
        raise ValueError(f"covariances {sigma1.shape}, {sigma2.shape} do not match the means {mu1.shape}")
    return mu1, sigma1, mu2, sigma2


def gaussian_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F x F, N−1 estimator) of features N x F, in float64."""
    features = _as_float64(features)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features N x F with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False, ddof=1).reshape(features.shape[1], features.shape[1])


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = DEFAULT_EPS) -> float:
    """d² between N(mu1, sigma1) and N(mu2, sigma2), exactly as pytorch-fid computes it.

    sqrtm(Σ₁Σ₂) by scipy; if it is not finite, retry with eps·I added to both covariances;
    raise ValueError if the diagonal's imaginary part exceeds 1e-3, else keep the real part.
    """
    mu1, sigma1, mu2, sigma2 = _checked_statistics(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=MAX_IMAGINARY_DIAGONAL):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag)):.3g} in sqrtm(sigma1 sigma2)")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def trace_sqrt_product(sigma1, sigma2, device: str | torch.device | None = None) -> float:
    """Tr((Σ₁Σ₂)^½) = Σ sqrt(eig(√Σ₁ Σ₂ √Σ₁)) for symmetric PSD Σ₁, Σ₂.

    √Σ₁ Σ₂ √Σ₁ is similar to Σ₁Σ₂ and symmetric PSD, so symmetric `eigh` applies; eigenvalues that
    round-off makes slightly negative are clipped to 0. On `device` via torch when given, else numpy.
    """
    if device is None:
        values, vectors = np.linalg.eigh(sigma1)
        root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
        middle = root1 @ sigma2 @ root1
        return float(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum())
    s1 = torch.as_tensor(sigma1, dtype=torch.float64, device=device)
    s2 = torch.as_tensor(sigma2, dtype=torch.float64, device=device)
    values, vectors = torch.linalg.eigh(s1)
    root1 = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
    middle = root1 @ s2 @ root1
    return float(torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum())


def frechet_distance_fast(mu1, sigma1, mu2, sigma2, device: str | torch.device | None = None) -> float:
    """The same d² as `frechet_distance`, with the trace term from `trace_sqrt_product` (float64)."""
    mu1, sigma1, mu2, sigma2 = _checked_statistics(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2, device))
