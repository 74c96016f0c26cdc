"""Fréchet distance between two Gaussians, the quantity behind FID.

    d² = ‖μ₁ − μ₂‖² + Tr(Σ₁) + Tr(Σ₂) − 2·Tr((Σ₁Σ₂)^½)

in the squared units of the features, computed in float64. `frechet_distance` follows
pytorch-fid's `calculate_frechet_distance` step by step (scipy's `sqrtm`, on the CPU);
`frechet_distance_fast` computes the same trace from symmetric eigendecompositions in torch, on the
device of its inputs (a GPU keeps an evaluation's features where they were computed), which is faster
and stable for large feature dimensions (2048).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from gan.metrics.diagnostics import float64_tensor

DEFAULT_EPS = 1e-6
# pytorch-fid rejects a matrix square root whose diagonal has an imaginary part above this.
MAX_IMAGINARY_DIAGONAL = 1e-3
# The eigenvalue path's counterpart: an eigenvalue below −(this · the matrix's scale) is no round-off of a PSD
# matrix (which stays above about −F·2.2e-16 times it), so its square root would be imaginary: rejected.
MAX_NEGATIVE_EIGENVALUE = 1e-9


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


def gaussian_statistics(features):
    """Mean (F,) and covariance (F x F, N−1 estimator) of features N x F, in float64: torch tensors on the
    features' device for a tensor, numpy arrays for anything else."""
    x = float64_tensor(features)
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"need features N x F with N >= 2, got shape {tuple(x.shape)}")
    mu = x.mean(dim=0)
    centred = x - mu  # N x F
    sigma = centred.T @ centred / (x.shape[0] - 1)
    return (mu, sigma) if isinstance(features, torch.Tensor) else (mu.cpu().numpy(), sigma.cpu().numpy())


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


def _device_of(value, device: str | torch.device | None) -> torch.device:
    """`device` if given, else where `value` is: its device for a tensor, the CPU for an array."""
    if device is not None:
        return torch.device(device)
    return value.device if isinstance(value, torch.Tensor) else torch.device("cpu")


def _checked_tensors(mu1, sigma1, mu2, sigma2, device) -> tuple[torch.Tensor, ...]:
    """The statistics as float64 tensors on `device` (None: sigma1's device, the CPU for arrays), shapes checked."""
    device = _device_of(sigma1, device)
    mu1, mu2 = (float64_tensor(mu, device).reshape(-1) for mu in (mu1, mu2))
    sigma1, sigma2 = (float64_tensor(sigma, device) for sigma in (sigma1, sigma2))
    sigma1, sigma2 = (sigma.reshape(1, -1) if sigma.dim() < 2 else sigma for sigma in (sigma1, sigma2))  # atleast_2d
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors have different shapes: {tuple(mu1.shape)} vs {tuple(mu2.shape)}")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.shape[0], mu1.shape[0]):
        raise ValueError(f"covariances {tuple(sigma1.shape)}, {tuple(sigma2.shape)} do not match the means "
                         f"{tuple(mu1.shape)}")
    return mu1, sigma1, mu2, sigma2


def _nonnegative(eigenvalues: torch.Tensor, scale: torch.Tensor, what: str) -> torch.Tensor:
    """Eigenvalues of a symmetric PSD matrix with round-off's small negatives set to 0; one below
    −MAX_NEGATIVE_EIGENVALUE · scale (the matrix's round-off scale) raises ValueError: pytorch-fid's
    imaginary-component guard."""
    lowest = eigenvalues.min()
    if lowest < -MAX_NEGATIVE_EIGENVALUE * scale:  # one sync with the device, read as a Python bool
        raise ValueError(f"imaginary component in sqrt(sigma1 sigma2): {what} has eigenvalue {float(lowest):.3g} "
                         f"(scale {float(scale):.3g}); covariances are positive semi-definite")
    return eigenvalues.clamp_min(0)


def _trace_sqrt_product(s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """Tr((Σ₁Σ₂)^½) as a 0-d tensor on the inputs' device: see `trace_sqrt_product`."""
    values, vectors = torch.linalg.eigh(s1)
    largest1 = values.abs().max()
    root1 = (vectors * _nonnegative(values, largest1, "sigma1").sqrt()) @ vectors.T  # √Σ₁, F x F
    middle = root1 @ s2 @ root1
    # round-off in `middle` scales with ‖Σ₁‖·‖Σ₂‖, which can far exceed its own largest eigenvalue
    scale = largest1 * torch.linalg.matrix_norm(s2)
    return _nonnegative(torch.linalg.eigvalsh((middle + middle.T) / 2), scale, "sigma1 sigma2").sqrt().sum()


def trace_sqrt_product(sigma1, sigma2, device: str | torch.device | None = None) -> float:
    """Tr((Σ₁Σ₂)^½) = Σ sqrt(eig(√Σ₁ Σ₂ √Σ₁)) for symmetric PSD Σ₁, Σ₂ (arrays or tensors), in float64.

    √Σ₁ Σ₂ √Σ₁ is similar to Σ₁Σ₂ and symmetric PSD, so symmetric `eigh` applies; eigenvalues that
    round-off makes slightly negative are clipped to 0, larger negatives raise ValueError. Computed in
    torch on `device` (None: sigma1's device, the CPU for arrays).
    """
    device = _device_of(sigma1, device)
    return float(_trace_sqrt_product(float64_tensor(sigma1, device), float64_tensor(sigma2, device)))


def frechet_distance_fast(mu1, sigma1, mu2, sigma2, device: str | torch.device | None = None,
                          eps: float = DEFAULT_EPS) -> float:
    """The same d² as `frechet_distance`, with the trace term from `trace_sqrt_product`: float64 torch on
    `device` (None: the device of sigma1, the CPU for arrays).

    pytorch-fid's guards, in eigenvalue form: where an eigendecomposition fails (pytorch-fid: a non-finite
    sqrtm), retry with eps·I added to both covariances; a negative eigenvalue beyond round-off (pytorch-fid: an
    imaginary part) raises ValueError. Singular covariances need no retry here: their square roots are finite.
    Non-finite statistics raise ValueError.
    """
    mu1, sigma1, mu2, sigma2 = _checked_tensors(mu1, sigma1, mu2, sigma2, device)
    if not all(bool(torch.isfinite(value).all()) for value in (mu1, sigma1, mu2, sigma2)):
        raise ValueError("Fréchet distance of non-finite statistics (are the features finite?)")
    diff = mu1 - mu2
    try:
        trace_root = _trace_sqrt_product(sigma1, sigma2)
    except torch.linalg.LinAlgError:
        offset = torch.eye(sigma1.shape[0], dtype=sigma1.dtype, device=sigma1.device) * eps
        trace_root = _trace_sqrt_product(sigma1 + offset, sigma2 + offset)
    return float(diff @ diff + sigma1.trace() + sigma2.trace() - 2 * trace_root)
