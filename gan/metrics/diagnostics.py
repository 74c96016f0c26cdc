"""Diagnostics beside FID and Parzen: classifier score, mode coverage, precision/recall/density/coverage,
discriminator balance, and the sliced Wasserstein distance. Pure functions on arrays/tensors; the feature
extractor or classifier is applied by the caller.
"""
from __future__ import annotations


import numpy as np
import torch

from gan.names import (
    COVERAGE, D_ACCURACY, D_FAKE_ACCURACY, D_HELDOUT_ACCURACY, D_OVERFIT_GAP, D_RT, D_TRAIN_ACCURACY, D_TRAIN_REAL,
    DENSITY, EVAL_D_FAKE, EVAL_D_REAL, PRECISION, RECALL,
)

DEFAULT_K_PR = 3  # Kynkäänniemi et al. 2019
DEFAULT_K_DC = 5  # Naeem et al. 2020
DEFAULT_NUM_PROJECTIONS = 256
DEFAULT_BLOCK_SIZE = 2048
D_THRESHOLD = 0.5
DEFAULT_MIN_SHARE_OF_EXPECTED = 0.1


def float64_tensor(values, device: str | torch.device | None = None) -> torch.Tensor:
    """`values` (array or tensor) as a float64 tensor on `device`; None keeps a tensor where it is (arrays: CPU).
    No copy when it is one already: the metrics run where the features were computed."""
    values = values.detach() if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    return values.to(device=device, dtype=torch.float64)


def classifier_score(probs) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))) with p(y) = E_x p(y|x): the Inception Score with a domain classifier.

    probs: N x K class probabilities (rows sum to 1). Lies in [1, K]: 1 when every x gets the same
    prediction, K when predictions are confident and classes equally frequent. 0·log 0 is taken as 0.
    """
    p = float64_tensor(probs)
    marginal = p.mean(dim=0, keepdim=True)
    kl = torch.where(p > 0, p * (torch.log(p) - torch.log(marginal)), torch.zeros_like(p)).sum(dim=1)
    return float(torch.exp(kl.mean()))


def mode_coverage(
    predicted_labels, test_label_frequencies, num_classes: int,
    min_share_of_expected: float = DEFAULT_MIN_SHARE_OF_EXPECTED,
) -> tuple[int, float]:
    """(classes covered, KL(p̂ ‖ q) in nats) for classifier labels of N generated samples.

    p̂: the share of samples predicted as each class; q: `test_label_frequencies` (counts or shares, length
    num_classes), normalised to sum to 1. Class c is covered when it holds at least max(1,
    min_share_of_expected · N · q_c) samples: with the default 0.1, a class needs a tenth of the samples the
    test distribution would give it, so the classifier's few errors on a collapsed generator do not count
    as modes (min_share_of_expected=0 gives PacGAN's "at least one sample"). Classes with p̂ = 0 add 0 to
    the KL (0·log 0 = 0); a class with p̂ > 0 but q = 0 makes the KL infinite.
    """
    labels = np.asarray(torch.as_tensor(predicted_labels).cpu(), dtype=np.int64).ravel()
    counts = np.bincount(labels, minlength=num_classes)
    if len(counts) > num_classes or labels.min(initial=0) < 0:
        raise ValueError(f"predicted labels must lie in [0, {num_classes})")
    q = np.asarray(torch.as_tensor(test_label_frequencies).cpu(), dtype=np.float64)
    if q.shape != (num_classes,):
        raise ValueError(f"test_label_frequencies must have shape ({num_classes},), got {q.shape}")
    q = q / q.sum()
    p_hat = counts / counts.sum()
    present = p_hat > 0
    with np.errstate(divide="ignore"):
        kl = float(np.sum(p_hat[present] * (np.log(p_hat[present]) - np.log(q[present]))))
    threshold = np.maximum(1.0, min_share_of_expected * len(labels) * q)
    return int(np.sum(counts >= threshold)), kl


def _pairwise_distances_blocks(a: torch.Tensor, b: torch.Tensor, block_size: int):
    """Yield (start, distances block x len(b)) over row blocks of a; Euclidean, float64."""
    for start in range(0, len(a), block_size):
        yield start, torch.cdist(a[start:start + block_size], b)


def _kth_neighbour_radii(points: torch.Tensor, k: int, block_size: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point (the point itself, at 0, excluded)."""
    radii = [d.topk(k + 1, dim=1, largest=False).values[:, k] for _, d in _pairwise_distances_blocks(points, points, block_size)]
    return torch.cat(radii)


def precision_recall_density_coverage(
    real_features, fake_features, k_pr: int = DEFAULT_K_PR, k_dc: int = DEFAULT_K_DC,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> dict[str, float]:
    """Improved precision/recall (Kynkäänniemi et al. 2019, k = k_pr) and density/coverage (Naeem et al. 2020,
    k = k_dc) on features N x F, with B(x, k) the ball around x reaching its k-th nearest neighbour in its own set:

        precision = share of fakes inside ∪_real B(r, k_pr)
        recall    = share of reals inside ∪_fake B(f, k_pr)
        density   = 1/(k_dc·M) Σ_fake #{real r : f ∈ B(r, k_dc)}
        coverage  = share of reals whose B(r, k_dc) holds at least one fake

    "Inside" is strict (distance < radius), as in the reference `prdc` code. Float64 on the features' device,
    distances in blocks of `block_size` rows.
    """
    real, fake = float64_tensor(real_features), float64_tensor(fake_features)
    real, fake = real.reshape(len(real), -1), fake.reshape(len(fake), -1).to(real.device)
    real_pr, fake_pr = _kth_neighbour_radii(real, k_pr, block_size), _kth_neighbour_radii(fake, k_pr, block_size)
    real_dc = real_pr if k_dc == k_pr else _kth_neighbour_radii(real, k_dc, block_size)
    fake_in_real_pr = torch.zeros(len(fake), dtype=torch.bool, device=real.device)
    fake_density_count = torch.zeros(len(fake), dtype=torch.float64, device=real.device)
    real_in_fake_pr = torch.empty(len(real), dtype=torch.bool, device=real.device)
    real_covered = torch.empty(len(real), dtype=torch.bool, device=real.device)
    for start, d in _pairwise_distances_blocks(real, fake, block_size):  # d: block of reals x M fakes
        stop = start + len(d)
        fake_in_real_pr |= (d < real_pr[start:stop, None]).any(dim=0)
        fake_density_count += (d < real_dc[start:stop, None]).sum(dim=0)
        real_in_fake_pr[start:stop] = (d < fake_pr[None, :]).any(dim=1)
        real_covered[start:stop] = d.min(dim=1).values < real_dc[start:stop]
    return {
        PRECISION: float(fake_in_real_pr.double().mean()),
        RECALL: float(real_in_fake_pr.double().mean()),
        DENSITY: float(fake_density_count.sum() / (k_dc * len(fake))),
        COVERAGE: float(real_covered.double().mean()),
    }


def discriminator_balance(d_real_probs, d_fake_probs) -> dict[str, float]:
    """mean D(x), mean D(G(z)) (probabilities of "real") and D's accuracy on the pooled set at threshold 0.5:
    a real counts as correct when D(x) >= 0.5, a fake when D(G(z)) < 0.5."""
    real, fake = float64_tensor(d_real_probs).ravel(), float64_tensor(d_fake_probs).ravel()
    correct = (real >= D_THRESHOLD).sum() + (fake < D_THRESHOLD).sum()
    return {
        EVAL_D_REAL: float(real.mean()),
        EVAL_D_FAKE: float(fake.mean()),
        D_ACCURACY: float(correct) / (len(real) + len(fake)),
    }


def discriminator_overfitting(d_train_probs, d_heldout_probs, d_fake_probs) -> dict[str, float]:
    """D's overfitting, from D(x) = sigmoid(logit) on training reals, held-out reals and fakes:

    - d_train_real: mean D on training reals; d_overfit_gap = that minus mean D on held-out reals (> 0: D rates
      the images it was trained on as more real than new ones of the same distribution);
    - d_train_accuracy, d_heldout_accuracy: the share of each set with D(x) >= 0.5; d_fake_accuracy: the share
      of fakes with D(G(z)) < 0.5;
    - d_rt: ADA's overfitting heuristic r_t = E[sign(D_logit(x_train))] = E[sign(D(x_train) − 0.5)] in [−1, 1]
      (Karras et al. 2020: 0 = no overfitting, 1 = complete).
    With a Wasserstein critic the threshold 0 of its output is arbitrary: read the gap, not the accuracies.
    """
    train, heldout, fake = (float64_tensor(p).ravel() for p in (d_train_probs, d_heldout_probs, d_fake_probs))
    return {
        D_TRAIN_REAL: float(train.mean()),
        D_OVERFIT_GAP: float(train.mean() - heldout.mean()),
        D_TRAIN_ACCURACY: float((train >= D_THRESHOLD).double().mean()),
        D_HELDOUT_ACCURACY: float((heldout >= D_THRESHOLD).double().mean()),
        D_FAKE_ACCURACY: float((fake < D_THRESHOLD).double().mean()),
        D_RT: float(torch.sign(train - D_THRESHOLD).mean()),
    }


def _wasserstein_1d(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """W1 between the empirical distributions of the rows of x (P x N) and y (P x M): ∫ |F_x − F_y| dt."""
    x, y = x.contiguous().sort(dim=1).values, y.contiguous().sort(dim=1).values
    merged = torch.cat([x, y], dim=1).sort(dim=1).values
    widths = merged.diff(dim=1)
    points = merged[:, :-1].contiguous()
    cdf_x = torch.searchsorted(x, points, right=True).to(x.dtype) / x.shape[1]  # int / int would be float32
    cdf_y = torch.searchsorted(y, points, right=True).to(y.dtype) / y.shape[1]
    return ((cdf_x - cdf_y).abs() * widths).sum(dim=1)


def sliced_wasserstein_distance(x, y, num_projections: int = DEFAULT_NUM_PROJECTIONS, seed: int = 0) -> float:
    """SW₁(x, y) = E_θ W₁(θ·x, θ·y), θ uniform on the unit sphere, in feature units.

    x: N x F, y: M x F samples (N ≠ M allowed). Monte Carlo over `num_projections` directions drawn from `seed`
    (fixed, so scores are comparable across calls); exact 1-d W₁ per direction. For F = 1 every direction is
    ±1, so the result is the exact W₁ (e.g. scipy.stats.wasserstein_distance).
    """
    x, y = float64_tensor(x), float64_tensor(y)
    x, y = x.reshape(len(x), -1), y.reshape(len(y), -1).to(x.device)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}")
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(x.shape[1], num_projections, generator=generator, dtype=torch.float64)
    directions = (directions / directions.norm(dim=0, keepdim=True)).to(x.device)  # F x P, unit columns
    return float(_wasserstein_1d((x @ directions).T, (y @ directions).T).mean())
