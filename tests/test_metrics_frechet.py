"""Fréchet distance against closed forms for Gaussians, and the fast path against pytorch-fid's formula."""
import importlib

import numpy as np
import pytest
import torch

from gan.metrics.frechet import frechet_distance, frechet_distance_fast, gaussian_statistics


def random_rotation(dim, rng):
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def random_spd(dim, rng, min_eig=0.1):
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + min_eig * np.eye(dim)


def commuting_pair(eig1, eig2, rng):
    """Two covariances with shared eigenvectors: closed form d² = Σ (√λ₁ − √λ₂)²."""
    rotation = random_rotation(len(eig1), rng)
    return rotation @ np.diag(eig1) @ rotation.T, rotation @ np.diag(eig2) @ rotation.T


BOTH = [frechet_distance, frechet_distance_fast]


@pytest.mark.parametrize("distance", BOTH)
def test_equal_covariance_gives_squared_mean_distance(distance):
    rng = np.random.default_rng(0)
    sigma = random_spd(20, rng)
    mu1, mu2 = rng.standard_normal(20), rng.standard_normal(20)
    assert distance(mu1, sigma, mu2, sigma) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("distance", BOTH)
def test_diagonal_covariances_give_sum_of_squared_root_differences(distance):
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 3.0, 30), rng.uniform(0.1, 3.0, 30)
    mu1, mu2 = rng.standard_normal(30), rng.standard_normal(30)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("distance", BOTH)
def test_rotated_commuting_covariances_match_closed_form(distance):
    rng = np.random.default_rng(2)
    eig1, eig2 = rng.uniform(0.05, 2.0, 40), rng.uniform(0.05, 2.0, 40)
    sigma1, sigma2 = commuting_pair(eig1, eig2, rng)
    mu = np.zeros(40)
    expected = np.sum((np.sqrt(eig1) - np.sqrt(eig2)) ** 2)
    assert distance(mu, sigma1, mu, sigma2) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("distance", BOTH)
def test_ill_conditioned_covariances_match_closed_form(distance):
    rng = np.random.default_rng(3)
    eig1 = np.logspace(-10, 2, 50)
    eig2 = rng.permutation(np.logspace(-9, 1, 50))
    sigma1, sigma2 = commuting_pair(eig1, eig2, rng)
    mu = np.zeros(50)
    expected = np.sum((np.sqrt(eig1) - np.sqrt(eig2)) ** 2)
    # round-off of order 1e-16 * 100 in the largest eigenvalue bounds the absolute accuracy
    assert distance(mu, sigma1, mu, sigma2) == pytest.approx(expected, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("distance", BOTH)
def test_singular_covariances_match_closed_form(distance):
    rng = np.random.default_rng(4)
    eig1 = np.concatenate([rng.uniform(0.5, 2.0, 10), np.zeros(22)])
    eig2 = np.concatenate([np.zeros(5), rng.uniform(0.5, 2.0, 20), np.zeros(7)])
    sigma1, sigma2 = commuting_pair(eig1, eig2, rng)
    mu = np.zeros(32)
    expected = np.sum((np.sqrt(eig1) - np.sqrt(eig2)) ** 2)
    assert distance(mu, sigma1, mu, sigma2) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("dim", [8, 64, 256])
def test_fast_path_agrees_with_pytorch_fid_formula_on_random_spd(dim):
    rng = np.random.default_rng(dim)
    sigma1, sigma2 = random_spd(dim, rng), random_spd(dim, rng)
    mu1, mu2 = rng.standard_normal(dim), rng.standard_normal(dim)
    exact = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert frechet_distance_fast(mu1, sigma1, mu2, sigma2) == pytest.approx(exact, rel=1e-6)
    assert frechet_distance_fast(mu1, sigma1, mu2, sigma2, device="cpu") == pytest.approx(exact, rel=1e-6)


def test_fast_path_agrees_on_rank_deficient_sample_covariances():
    # N < F: sample covariances are singular, as with few samples of 2048-d Inception features
    rng = np.random.default_rng(5)
    mu1, sigma1 = gaussian_statistics(rng.standard_normal((40, 64)))
    mu2, sigma2 = gaussian_statistics(rng.standard_normal((40, 64)) + 0.3)
    exact = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert np.isfinite(exact)
    assert frechet_distance_fast(mu1, sigma1, mu2, sigma2) == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize("distance", BOTH)
@pytest.mark.parametrize("negative", ["sigma1", "sigma2"])
def test_large_imaginary_part_is_rejected(distance, negative):
    # a covariance with a negative eigenvalue is not one: sqrt of Σ₁Σ₂ has imaginary diagonal ±1
    sigmas = {"sigma1": np.eye(2), "sigma2": np.eye(2), negative: np.diag([-1.0, 1.0])}
    with pytest.raises(ValueError, match="imaginary"):
        distance(np.zeros(2), sigmas["sigma1"], np.zeros(2), sigmas["sigma2"])


@pytest.mark.parametrize("distance", BOTH)
def test_mismatched_shapes_are_rejected(distance):
    with pytest.raises(ValueError):
        distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_a_failed_eigendecomposition_is_retried_with_eps_on_both_covariances(monkeypatch):
    # pytorch-fid's retry: where the square root fails, eps·I is added to both covariances
    frechet_module = importlib.import_module("gan.metrics.frechet")
    original, calls = frechet_module._trace_sqrt_product, []

    def failing_once(s1, s2):
        calls.append(s1)
        if len(calls) == 1:
            raise torch.linalg.LinAlgError("did not converge")
        return original(s1, s2)

    monkeypatch.setattr(frechet_module, "_trace_sqrt_product", failing_once)
    a, b, eps = np.array([1.0, 4.0]), np.array([9.0, 0.25]), 0.5
    # diagonal: d² = Tr Σ₁ + Tr Σ₂ − 2 Σ √((a + eps)(b + eps)) with the offset only in the trace term
    expected = a.sum() + b.sum() - 2 * np.sqrt((a + eps) * (b + eps)).sum()
    got = frechet_distance_fast(np.zeros(2), np.diag(a), np.zeros(2), np.diag(b), eps=eps)
    assert len(calls) == 2 and got == pytest.approx(expected, rel=1e-12)


def test_non_finite_statistics_are_rejected():
    sigma = np.eye(3)
    sigma[1, 2] = sigma[2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance_fast(np.zeros(3), sigma, np.zeros(3), np.eye(3))


def test_gaussian_statistics_use_unbiased_float64_estimator():
    rng = np.random.default_rng(6)
    features = rng.standard_normal((25, 4)).astype(np.float32)
    x = features.astype(np.float64)
    expected_mu = x.sum(axis=0) / 25
    expected_sigma = sum(np.outer(row - expected_mu, row - expected_mu) for row in x) / 24
    # a tensor gives float64 tensors where it is (a GPU's features stay there), an array gives arrays
    mu, sigma = gaussian_statistics(torch.from_numpy(features))
    assert mu.dtype == sigma.dtype == torch.float64 and mu.device == sigma.device == torch.device("cpu")
    np.testing.assert_allclose(mu.numpy(), expected_mu, rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), expected_sigma, rtol=1e-12)
    mu, sigma = gaussian_statistics(features)
    assert isinstance(mu, np.ndarray) and mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, expected_mu, rtol=1e-12)
    np.testing.assert_allclose(sigma, expected_sigma, rtol=1e-12)


def test_distance_of_a_distribution_to_itself_is_zero():
    rng = np.random.default_rng(7)
    mu, sigma = gaussian_statistics(rng.standard_normal((500, 16)))
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance_fast(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
