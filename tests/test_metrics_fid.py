"""FID against closed forms, and with the trained mnist5k classifier as a distance should behave."""
import numpy as np
import pytest
import torch

from gan.metrics.diagnostics import classifier_score, mode_coverage
from gan.metrics.fid import extract_features, fid


def class_probabilities(classifier, images):
    with torch.no_grad():
        return torch.softmax(classifier.model(images), dim=1)


@pytest.fixture(scope="module")
def features(quick_classifier):
    return lambda images: extract_features(quick_classifier.model.features, images, batch_size=500)


def with_exact_statistics(mean, std, n, seed):
    """n x F points whose sample mean is `mean` and sample covariance (N−1) is exactly diag(std²)."""
    rng = np.random.default_rng(seed)
    centred = rng.standard_normal((n, len(mean)))
    centred -= centred.mean(axis=0)
    orthonormal, _ = np.linalg.qr(centred)  # columns: zero mean, unit norm, mutually orthogonal
    return orthonormal * np.sqrt(n - 1) * std + mean


def test_fid_of_diagonal_gaussian_statistics_is_the_closed_form():
    # for diagonal covariances FID = ‖μ₁ − μ₂‖² + Σ (s₁ − s₂)², s the standard deviations
    mean_a, std_a = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 2.0, 0.5, 3.0])
    mean_b, std_b = np.array([1.0, 1.0, 0.0, 0.0]), np.array([2.0, 2.0, 1.5, 0.1])
    a, b = with_exact_statistics(mean_a, std_a, 300, 0), with_exact_statistics(mean_b, std_b, 200, 1)
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((std_a - std_b) ** 2)
    assert fid(a, b) == pytest.approx(expected, rel=1e-9)
    assert fid(torch.from_numpy(a), b, exact=True) == pytest.approx(expected, rel=1e-9)


def test_classifier_is_accurate_on_mnist5k_test(quick_classifier):
    assert quick_classifier.test_accuracy >= 0.95


def test_feature_extraction_does_not_depend_on_batch_size(quick_classifier, mnist5k):
    images = mnist5k.test.images[:70]
    whole = extract_features(quick_classifier.model.features, images, batch_size=1000)
    np.testing.assert_allclose(extract_features(quick_classifier.model.features, images, batch_size=9), whole,
                               rtol=1e-5, atol=1e-6)
    # float64 on the extractor's device, where the metrics read it
    assert whole.shape == (70, quick_classifier.feature_dim) and whole.dtype == torch.float64
    assert whole.device == next(quick_classifier.model.parameters()).device


def test_real_data_fid_is_small_next_to_noise(mnist5k, features):
    test = features(mnist5k.test.images)
    halves = fid(test[::2], test[1::2])
    train_vs_test = fid(features(mnist5k.train.images), test)
    noise = fid(test, features(torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0))))
    assert train_vs_test < 0.05 * noise
    assert halves < 0.1 * noise


def test_fid_increases_with_added_gaussian_noise(mnist5k, features):
    test_features = features(mnist5k.test.images)
    reference = mnist5k.validation.images
    generator = torch.Generator().manual_seed(1)
    scores = [
        fid(test_features, features((reference + s * torch.randn(reference.shape, generator=generator)).clamp(0, 1)))
        for s in (0.0, 0.05, 0.1, 0.2, 0.4)
    ]
    assert all(a < b for a, b in zip(scores, scores[1:])), scores


def test_a_single_digit_generator_covers_one_mode(quick_classifier, mnist5k):
    test = mnist5k.test
    # all 500 threes of the data set; the quick test classifier errs on ~4%, so a class must hold half its
    # expected count (25 samples) to count as a mode here
    threes = torch.cat([s.images[s.labels == 3] for s in (mnist5k.train, mnist5k.validation, test)])
    frequencies = torch.bincount(test.labels, minlength=10)
    predicted = class_probabilities(quick_classifier, threes).argmax(1)
    covered, kl = mode_coverage(predicted, frequencies, 10, min_share_of_expected=0.5)
    assert covered == 1 and 1.5 < kl <= np.log(10) + 1e-9  # log 10 when every prediction is a 3
    covered_all, kl_all = mode_coverage(class_probabilities(quick_classifier, test.images).argmax(1), frequencies, 10)
    assert covered_all == 10 and kl_all < 0.01


def test_classifier_score_of_real_test_data_is_near_num_classes(quick_classifier, mnist5k):
    assert 8.5 < classifier_score(class_probabilities(quick_classifier, mnist5k.test.images)) <= 10.0
    threes = mnist5k.test.images[mnist5k.test.labels == 3]
    assert classifier_score(class_probabilities(quick_classifier, threes)) < 1.5
