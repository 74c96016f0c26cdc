"""Diagnostics against numpy/scipy references and closed forms."""
import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from gan.metrics.diagnostics import (
    classifier_score,
    discriminator_balance,
    mode_coverage,
    precision_recall_density_coverage,
    sliced_wasserstein_distance,
)
from gan.names import COVERAGE, D_ACCURACY, DENSITY, EVAL_D_FAKE, EVAL_D_REAL, PRECISION, RECALL


# ---- classifier score -------------------------------------------------------------------------------

def numpy_classifier_score(p):
    marginal = p.mean(axis=0)
    return np.exp(np.mean([sum(pk * np.log(pk / mk) for pk, mk in zip(row, marginal) if pk > 0) for row in p]))


def test_classifier_score_matches_numpy_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, size=(200, 10))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert classifier_score(torch.from_numpy(p)) == pytest.approx(numpy_classifier_score(p), rel=1e-10)


def test_classifier_score_is_one_for_constant_predictions():
    p = np.tile([0.1, 0.7, 0.2], (50, 1))
    assert classifier_score(p) == pytest.approx(1.0, abs=1e-12)


def test_classifier_score_is_num_classes_for_confident_uniform_predictions():
    p = np.eye(10)[np.arange(100) % 10]  # one-hot, each class 10 times
    assert classifier_score(p) == pytest.approx(10.0, rel=1e-12)


# ---- mode coverage ----------------------------------------------------------------------------------

def test_single_class_generator_covers_one_mode_with_kl_log_num_classes():
    covered, kl = mode_coverage(np.full(1000, 3), np.full(10, 100), num_classes=10)
    assert covered == 1
    assert kl == pytest.approx(np.log(10), rel=1e-12)  # KL(δ_3 ‖ uniform) = log 10


def test_a_few_classifier_errors_do_not_count_as_modes_by_default():
    labels = np.concatenate([np.full(980, 3), np.arange(20) % 10])  # 2% spread over all classes
    assert mode_coverage(labels, np.ones(10), 10)[0] == 1
    assert mode_coverage(labels, np.ones(10), 10, min_share_of_expected=0)[0] == 10  # PacGAN's >= 1 sample


def test_mode_coverage_kl_matches_scipy_entropy_and_ignores_empty_classes():
    from scipy.stats import entropy

    rng = np.random.default_rng(1)
    labels = rng.choice(6, size=500, p=[0.3, 0.3, 0.2, 0.2, 0.0, 0.0])
    test_counts = np.array([10, 20, 30, 40, 50, 60])
    covered, kl = mode_coverage(labels, test_counts, num_classes=6)
    p_hat = np.bincount(labels, minlength=6) / 500
    assert covered == 4
    assert kl == pytest.approx(entropy(p_hat, test_counts / test_counts.sum()), rel=1e-12)


def test_matching_distribution_has_zero_kl_and_full_coverage():
    covered, kl = mode_coverage(np.repeat(np.arange(10), 7), np.full(10, 0.1), num_classes=10)
    assert covered == 10 and kl == pytest.approx(0.0, abs=1e-12)


# ---- precision / recall / density / coverage ------------------------------------------------------------

def brute_force_prdc(real, fake, k_pr, k_dc):
    def dist(a, b):
        return np.array([[np.sqrt(np.sum((x - y) ** 2)) for y in b] for x in a])

    def kth(points, k):
        return np.array([np.sort(row)[k] for row in dist(points, points)])  # index 0 is the point itself

    rf = dist(real, fake)
    real_pr, fake_pr, real_dc = kth(real, k_pr), kth(fake, k_pr), kth(real, k_dc)
    precision = np.mean([any(rf[i, j] < real_pr[i] for i in range(len(real))) for j in range(len(fake))])
    recall = np.mean([any(rf[i, j] < fake_pr[j] for j in range(len(fake))) for i in range(len(real))])
    density = sum(rf[i, j] < real_dc[i] for i in range(len(real)) for j in range(len(fake))) / (k_dc * len(fake))
    coverage = np.mean([rf[i].min() < real_dc[i] for i in range(len(real))])
    return {PRECISION: precision, RECALL: recall, DENSITY: density, COVERAGE: coverage}


@pytest.mark.parametrize("block_size", [7, 4096])
def test_prdc_matches_brute_force(block_size):
    rng = np.random.default_rng(2)
    real = rng.standard_normal((60, 5))
    fake = rng.standard_normal((45, 5)) * 1.3 + 0.4
    expected = brute_force_prdc(real, fake, 3, 5)
    got = precision_recall_density_coverage(torch.from_numpy(real), fake, block_size=block_size)
    assert set(got) == set(expected)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    # the data must separate the metrics, or a swapped key would pass
    assert len({round(v, 6) for v in expected.values()}) == 4


def test_prdc_of_disjoint_sets_is_zero():
    rng = np.random.default_rng(3)
    real = rng.standard_normal((50, 4))
    got = precision_recall_density_coverage(real, real + 100.0)
    assert got == {PRECISION: 0.0, RECALL: 0.0, DENSITY: 0.0, COVERAGE: 0.0}


# ---- discriminator balance ----------------------------------------------------------------------------

def test_discriminator_balance_means_and_accuracy():
    real = np.array([0.9, 0.6, 0.4, 0.5])  # 3 correct (>= 0.5)
    fake = np.array([0.1, 0.7, 0.2])  # 2 correct (< 0.5)
    got = discriminator_balance(real, torch.tensor(fake))
    assert got[EVAL_D_REAL] == pytest.approx(0.6)
    assert got[EVAL_D_FAKE] == pytest.approx(1.0 / 3)
    assert got[D_ACCURACY] == pytest.approx(5 / 7)


# ---- sliced Wasserstein ------------------------------------------------------------------------------

def test_sliced_wasserstein_in_1d_equals_scipy_wasserstein_distance():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal(300), rng.exponential(size=170)  # unequal sizes
    got = sliced_wasserstein_distance(x[:, None], y[:, None], num_projections=8)
    assert got == pytest.approx(wasserstein_distance(x, y), rel=1e-10)


@pytest.mark.parametrize("shift", [0.5, 3.0])
def test_shifting_a_1d_distribution_by_c_gives_c(shift):
    x = np.random.default_rng(5).standard_normal((400, 1))
    assert sliced_wasserstein_distance(x, x + shift) == pytest.approx(shift, rel=1e-10)


def test_sliced_wasserstein_of_a_shift_in_d_dims_is_mean_abs_projection():
    # SW₁(x, x + c) = E_θ |θ·c|; for θ uniform on S^{d−1}, E|θ₁| = Γ(d/2) / (√π Γ((d+1)/2))
    from scipy.special import gammaln

    d, c = 8, 2.0
    x = np.random.default_rng(6).standard_normal((200, d))
    shift = np.zeros(d)
    shift[0] = c
    expected = c * np.exp(gammaln(d / 2) - gammaln((d + 1) / 2)) / np.sqrt(np.pi)
    got = sliced_wasserstein_distance(x, x + shift, num_projections=5000, seed=1)
    assert got == pytest.approx(expected, rel=0.05)  # Monte Carlo: about 4 standard errors


def test_sliced_wasserstein_is_zero_for_identical_sets_and_reproducible():
    x = np.random.default_rng(7).standard_normal((100, 6))
    assert sliced_wasserstein_distance(x, x) == 0.0
    y = x + 0.1 * np.random.default_rng(8).standard_normal((100, 6))
    assert sliced_wasserstein_distance(x, y, seed=3) == sliced_wasserstein_distance(x, y, seed=3)
