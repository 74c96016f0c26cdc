"""The metrics computed in torch on the features' device agree with the CPU numpy/scipy implementations they
replaced, to 1e-6 relative: pytorch-fid's FID (scipy `sqrtm`), torch-fidelity's KID, the `prdc` package's
precision/recall/density/coverage and scipy's 1-d Wasserstein distance per projection, written out below as
oracles. On the CPU the code path is the one a GPU runs (device = cpu); with CUDA present it is checked there too.
"""
import importlib

import numpy as np
import pytest
import torch
from scipy import linalg
from scipy.spatial.distance import cdist
from scipy.stats import wasserstein_distance

from gan.metrics.diagnostics import precision_recall_density_coverage, sliced_wasserstein_distance
from gan.metrics.fid import fid
from gan.metrics.kid import kid
from gan.names import COVERAGE, DENSITY, PRECISION, RECALL

kid_module = importlib.import_module("gan.metrics.kid")  # the attribute gan.metrics.kid is the function

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
RTOL = 1e-6


# ---- the oracles: numpy/scipy, one formula each --------------------------------------------------------------

def pytorch_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """pytorch-fid's calculate_activation_statistics + calculate_frechet_distance (eps = 1e-6, atol 1e-3)."""
    mu1, sigma1 = real.mean(axis=0), np.cov(real, rowvar=False)
    mu2, sigma2 = fake.mean(axis=0), np.cov(fake, rowvar=False)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def torch_fidelity_kid(real: np.ndarray, fake: np.ndarray, subsets: int, subset_size: int, seed: int):
    """torch-fidelity's kid_features_to_metric: RandomState(seed) draws, cubic kernel, unbiased MMD², mean, std."""
    rng = np.random.RandomState(seed)
    m, d = min(subset_size, len(real), len(fake)), real.shape[1]
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        values.append((k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
                      - 2 * k_xy.sum() / (m * m))
    return float(np.mean(values)), float(np.std(values))


def prdc_package(real: np.ndarray, fake: np.ndarray, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    """The `prdc` package's compute_prdc (Naeem et al. 2020), full distance matrices, k-th neighbour by partition;
    precision/recall with k_pr (Kynkäänniemi et al.'s k = 3), density/coverage with k_dc."""
    def radii(points, k):
        return np.partition(cdist(points, points), k, axis=1)[:, k]  # column 0 is the point itself

    real_fake = cdist(real, fake)  # N x M
    real_pr, fake_pr, real_dc = radii(real, k_pr), radii(fake, k_pr), radii(real, k_dc)
    return {
        PRECISION: float((real_fake < real_pr[:, None]).any(axis=0).mean()),
        RECALL: float((real_fake < fake_pr[None, :]).any(axis=1).mean()),
        DENSITY: float((real_fake < real_dc[:, None]).sum(axis=0).mean() / k_dc),
        COVERAGE: float((real_fake.min(axis=1) < real_dc).mean()),
    }


def sliced_wasserstein_scipy(x: np.ndarray, y: np.ndarray, num_projections: int, seed: int) -> float:
    """The mean over the documented directions (torch.randn from `seed`, F x P, unit columns) of scipy's W₁."""
    directions = torch.randn(x.shape[1], num_projections, generator=torch.Generator().manual_seed(seed),
                             dtype=torch.float64).numpy()
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    return float(np.mean([wasserstein_distance(x @ theta, y @ theta) for theta in directions.T]))


# ---- the features: several seeds, unequal sizes, a rank-deficient case ------------------------------------------

def feature_sets(seed: int, n_real: int, n_fake: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Correlated, shifted, differently scaled sets: every metric is far from its trivial value."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    real = rng.standard_normal((n_real, dim)) @ mixing
    fake = 1.2 * rng.standard_normal((n_fake, dim)) @ (mixing + 0.2 * rng.standard_normal((dim, dim)) / np.sqrt(dim))
    return real, fake + 0.3


def on(device: str, *arrays: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(a).to(device) for a in arrays]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed, n_real, n_fake, dim", [
    (0, 500, 500, 32), (1, 800, 300, 64), (2, 1000, 1000, 16),
    (3, 40, 50, 64),  # N < F: singular sample covariances, as with few 2048-d Inception features
])
def test_fid_on_the_device_agrees_with_pytorch_fid(device, seed, n_real, n_fake, dim):
    real, fake = feature_sets(seed, n_real, n_fake, dim)
    expected = pytorch_fid(real, fake)
    assert fid(*on(device, real, fake)) == pytest.approx(expected, rel=RTOL)
    assert fid(real, fake) == pytest.approx(expected, rel=RTOL)  # arrays: the same torch path, on the CPU


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("full_kernel_max", [4000, 0])  # the full-kernel path and the per-subset path
@pytest.mark.parametrize("seed, n_real, n_fake, dim", [(0, 300, 300, 16), (1, 400, 250, 40), (2, 120, 200, 8)])
def test_kid_on_the_device_agrees_with_torch_fidelity(device, full_kernel_max, seed, n_real, n_fake, dim,
                                                      monkeypatch):
    monkeypatch.setattr(kid_module, "FULL_KERNEL_MAX", full_kernel_max)
    real, fake = feature_sets(seed, n_real, n_fake, dim)
    expected_mean, expected_std = torch_fidelity_kid(real, fake, subsets=20, subset_size=100, seed=seed)
    result = kid(*on(device, real, fake), subsets=20, subset_size=100, seed=seed)
    assert result.mean == pytest.approx(expected_mean, rel=RTOL)
    assert result.std == pytest.approx(expected_std, rel=RTOL)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("block_size", [64, 2048])  # many row blocks, and one
@pytest.mark.parametrize("seed, n_real, n_fake, dim", [(0, 400, 400, 8), (1, 500, 300, 12), (2, 300, 450, 4)])
def test_prdc_on_the_device_agrees_with_the_prdc_package(device, block_size, seed, n_real, n_fake, dim):
    real, fake = feature_sets(seed, n_real, n_fake, dim)
    expected = prdc_package(real, fake)
    assert len({round(value, 6) for value in expected.values()}) == 4  # a swapped key would not pass
    got = precision_recall_density_coverage(*on(device, real, fake), block_size=block_size)
    assert got == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed, n_real, n_fake, dim", [(0, 400, 400, 8), (1, 500, 300, 24), (2, 200, 350, 3)])
def test_sliced_wasserstein_on_the_device_agrees_with_scipy(device, seed, n_real, n_fake, dim):
    real, fake = feature_sets(seed, n_real, n_fake, dim)
    expected = sliced_wasserstein_scipy(real, fake, num_projections=64, seed=seed)
    assert sliced_wasserstein_distance(*on(device, real, fake), num_projections=64, seed=seed) == pytest.approx(
        expected, rel=RTOL)
