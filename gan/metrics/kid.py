"""Kernel Inception Distance (Bińkowski et al. 2018) as torch-fidelity computes it, on any feature set.

KID is the unbiased estimate of the squared maximum mean discrepancy with the cubic polynomial kernel
k(x, y) = (x·y / d + 1)³ (d = feature dimension), averaged over random subsets:

    MMD²_u(X, Y) = Σ_{i≠j} k(x_i, x_j) / (m(m−1)) + Σ_{i≠j} k(y_i, y_j) / (m(m−1)) − 2 Σ_{i,j} k(x_i, y_j) / m²

for subsets X, Y of m features each, drawn without replacement; reported as the mean and the standard deviation
(numpy's, ddof = 0) over `subsets` draws — torch-fidelity's `kid_subsets` = 100, `kid_subset_size` = 1,000,
here capped by the sizes of the two sets. Unlike FID it has no bias at small N: its expectation is 0 when both
sets come from one distribution, so a single estimate can be negative. Units: squared feature units; like FID,
its scale depends on the feature extractor (classifier-feature KID is not comparable with Inception KID).

When the full kernel matrices fit in memory (both sets at most `FULL_KERNEL_MAX` features), they are computed
once and each subset's sums are read from them with indicator vectors; otherwise each subset computes its own
kernel matrices, as torch-fidelity does. Both give the same numbers for the same subsets. Everything runs in
float64 on the features' device; only the subset indices (drawn on the CPU) and the subsets' values cross.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gan.metrics.diagnostics import float64_tensor

DEFAULT_SUBSETS = 100  # torch-fidelity's kid_subsets
DEFAULT_SUBSET_SIZE = 1000  # torch-fidelity's kid_subset_size
DEGREE, COEF0 = 3, 1.0  # torch-fidelity's kid_degree, kid_coef0; gamma = 1/d
FULL_KERNEL_MAX = 4000  # 3 matrices of at most 4,000² float64: 384 MB at most


@dataclass(frozen=True)
class KidResult:
    mean: float  # mean MMD² over the subsets, squared feature units
    std: float  # standard deviation over the subsets (ddof = 0, as torch-fidelity)
    subset_size: int
    subsets: int


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = DEGREE, coef0: float = COEF0) -> torch.Tensor:
    """(x·y / d + 1)^degree for all pairs: N x d, M x d -> N x M."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def unbiased_mmd2(k_xx: torch.Tensor, k_xy: torch.Tensor, k_yy: torch.Tensor) -> torch.Tensor:
    """MMD²_u from the kernel matrices of two subsets of equal size m (m x m each): a 0-d tensor on their device."""
    m = k_xx.shape[0]
    off_diagonal = k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()
    return off_diagonal / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)


def _subset_indices(n: int, size: int, rng: np.random.RandomState) -> np.ndarray:
    return rng.choice(n, size, replace=False)


def kid(real_features, fake_features, subsets: int = DEFAULT_SUBSETS, subset_size: int = DEFAULT_SUBSET_SIZE,
        seed: int = 0) -> KidResult:
    """KID between two feature sets N x d and M x d (arrays or tensors), computed in float64 on the device of
    `real_features` (the CPU for an array).

    The subsets are drawn as torch-fidelity draws them: numpy's RandomState(seed), for each subset first
    `choice(N, m, replace=False)` of the real features, then of the fake ones.
    """
    real = float64_tensor(real_features)
    fake = float64_tensor(fake_features, real.device)
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need two feature sets N x d with the same d, got {tuple(real.shape)} and {tuple(fake.shape)}")
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError(f"KID needs at least 2 features in each set, got {len(real)} and {len(fake)}")
    rng = np.random.RandomState(seed)
    draws = [(_subset_indices(len(real), m, rng), _subset_indices(len(fake), m, rng)) for _ in range(subsets)]
    # B x m indices of the real and of the fake subsets, moved to the features' device in one copy each
    index_x = torch.from_numpy(np.stack([i for i, _ in draws])).to(real.device)
    index_y = torch.from_numpy(np.stack([j for _, j in draws])).to(real.device)
    if max(len(real), len(fake)) <= FULL_KERNEL_MAX:
        values = _mmd2_from_full_kernels(real, fake, index_x, index_y)
    else:
        values = torch.stack([unbiased_mmd2(polynomial_kernel(real[i], real[i]), polynomial_kernel(real[i], fake[j]),
                                            polynomial_kernel(fake[j], fake[j])) for i, j in zip(index_x, index_y)])
    values = values.cpu().numpy()  # B values: mean and std as numpy (and torch-fidelity) compute them
    return KidResult(float(values.mean()), float(values.std()), m, subsets)


def _mmd2_from_full_kernels(real: torch.Tensor, fake: torch.Tensor, index_x: torch.Tensor,
                            index_y: torch.Tensor) -> torch.Tensor:
    """Each subset's MMD²_u (B values) from the full kernel matrices: Σ_{i,j∈S} K_ij = s·K·s for the indicator
    s of S; index_x, index_y: B x m indices of the subsets."""
    k_xx, k_xy, k_yy = polynomial_kernel(real, real), polynomial_kernel(real, fake), polynomial_kernel(fake, fake)
    # B x N and B x M indicators of the real and the fake subsets
    s_x = torch.zeros(len(index_x), len(real), dtype=torch.float64, device=real.device).scatter_(1, index_x, 1.0)
    s_y = torch.zeros(len(index_y), len(fake), dtype=torch.float64, device=real.device).scatter_(1, index_y, 1.0)
    m = index_x.shape[1]
    # Σ_{i≠j} over a subset = s·K·s − Σ_{i∈S} K_ii
    xx = ((s_x @ k_xx) * s_x).sum(dim=1) - s_x @ k_xx.diagonal()
    yy = ((s_y @ k_yy) * s_y).sum(dim=1) - s_y @ k_yy.diagonal()
    xy = ((s_x @ k_xy) * s_y).sum(dim=1)
    return (xx + yy) / (m * (m - 1)) - 2 * xy / (m * m)
