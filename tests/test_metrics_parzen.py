"""Parzen-window log-likelihood against a brute-force float64 numpy loop."""
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from gan.metrics.parzen import (
    DEFAULT_SIGMAS,
    parzen_log_densities,
    parzen_log_likelihood,
    parzen_protocol,
    select_parzen_sigma,
)


def brute_force_log_densities(samples, test, sigma):
    """Direct ‖x − μ‖² by subtraction, one test point at a time, float64."""
    samples = samples.reshape(len(samples), -1).astype(np.float64)
    test = test.reshape(len(test), -1).astype(np.float64)
    dim = samples.shape[1]
    out = []
    for x in test:
        sq = np.array([np.sum((x - mu) ** 2) for mu in samples])
        out.append(logsumexp(-sq / (2 * sigma**2)) - np.log(len(samples)) - dim * np.log(sigma * np.sqrt(2 * np.pi)))
    return np.array(out)


def random_images(n, rng, shape=(1, 28, 28)):
    return rng.uniform(0, 1, size=(n, *shape)).astype(np.float32)


def test_default_sigmas_are_ten_log_spaced_values_from_0_1_to_1():
    assert len(DEFAULT_SIGMAS) == 10
    assert DEFAULT_SIGMAS[0] == pytest.approx(0.1) and DEFAULT_SIGMAS[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(np.diff(np.log(DEFAULT_SIGMAS)), np.log(10) / 9)


@pytest.mark.parametrize("sigma", [0.1, 0.3, 1.0])
def test_log_densities_match_brute_force_on_784_dim_images(sigma):
    rng = np.random.default_rng(0)
    # sparse, MNIST-like images so that nearby centres matter and sigma = 0.1 is not degenerate
    samples = random_images(60, rng) * (rng.uniform(size=(60, 1, 28, 28)) < 0.2)
    test = np.concatenate([samples[:10] + rng.normal(0, 0.05, samples[:10].shape), random_images(10, rng) * 0.3])
    test = test.astype(np.float32)
    expected = brute_force_log_densities(samples, test, sigma)
    got = parzen_log_densities(torch.from_numpy(samples), torch.from_numpy(test), [sigma], batch_size=16)[0]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_result_does_not_depend_on_batch_size():
    rng = np.random.default_rng(1)
    samples, test = torch.from_numpy(random_images(50, rng)), torch.from_numpy(random_images(23, rng))
    reference = parzen_log_densities(samples, test, DEFAULT_SIGMAS, batch_size=1000)
    for batch_size in (1, 7, 50):
        torch.testing.assert_close(parzen_log_densities(samples, test, DEFAULT_SIGMAS, batch_size), reference)


def test_single_centre_at_the_test_point_gives_gaussian_normaliser():
    x = torch.rand(1, 784)
    sigma = 0.2
    mean, _ = parzen_log_likelihood(x, x, sigma)
    assert mean == pytest.approx(-784 * math.log(sigma * math.sqrt(2 * math.pi)), rel=1e-12)


def test_mean_and_standard_error_use_numpy_std_with_ddof_1():
    rng = np.random.default_rng(2)
    samples, test = random_images(40, rng, (1, 4, 4)), random_images(30, rng, (1, 4, 4))
    expected = brute_force_log_densities(samples, test, 0.3)
    mean, sem = parzen_log_likelihood(torch.from_numpy(samples), torch.from_numpy(test), 0.3)
    assert mean == pytest.approx(expected.mean(), rel=1e-9)
    assert sem == pytest.approx(np.std(expected, ddof=1) / np.sqrt(len(expected)), rel=1e-9)


def test_sigma_selection_picks_the_argmax_of_brute_force_validation_scores():
    rng = np.random.default_rng(3)
    samples, validation = random_images(40, rng, (1, 6, 6)), random_images(20, rng, (1, 6, 6))
    expected = {s: brute_force_log_densities(samples, validation, s).mean() for s in DEFAULT_SIGMAS}
    best, scores = select_parzen_sigma(torch.from_numpy(samples), torch.from_numpy(validation))
    assert best == max(expected, key=expected.get)
    # an interior optimum, so the test can distinguish argmax from "first" or "last"
    assert best not in (DEFAULT_SIGMAS[0], DEFAULT_SIGMAS[-1])
    for s in DEFAULT_SIGMAS:
        assert scores[s] == pytest.approx(expected[s], rel=1e-9)


def test_protocol_chooses_sigma_on_validation_and_reports_on_test():
    rng = np.random.default_rng(4)
    samples, validation, test = (torch.from_numpy(random_images(n, rng, (1, 6, 6))) for n in (40, 20, 25))
    result = parzen_protocol(samples, validation, test)
    best, scores = select_parzen_sigma(samples, validation)
    assert result.sigma == best and result.validation_scores == scores
    expected = brute_force_log_densities(samples.numpy(), test.numpy(), best)
    assert result.mean == pytest.approx(expected.mean(), rel=1e-9)
    assert result.standard_error == pytest.approx(np.std(expected, ddof=1) / np.sqrt(25), rel=1e-9)


def test_mismatched_dimensions_are_rejected():
    with pytest.raises(ValueError):
        parzen_log_likelihood(torch.rand(5, 10), torch.rand(5, 12), 0.5)
