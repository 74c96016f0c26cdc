"""FID with the trained mnist5k classifier behaves as a distance should; the Inception extractor's plumbing."""
import numpy as np
import pytest
import torch

from gan.data import load_dataset
from gan.metrics.classifier import TrainingRecipe, load_or_train_classifier
from gan.metrics.diagnostics import classifier_score, mode_coverage
from gan.metrics.fid import INCEPTION_WEIGHTS_ENV, InceptionFeatures, MissingInceptionWeights, extract_features, fid
from gan.metrics.frechet import frechet_distance, gaussian_statistics


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


# A shorter run than the default recipe (30 epochs, 98.4%) keeps this file fast; 8 epochs reach about 96%.
TEST_RECIPE = TrainingRecipe(epochs=8)


@pytest.fixture(scope="module")
def classifier(mnist5k, tmp_path_factory):
    return load_or_train_classifier(mnist5k, cache_dir=tmp_path_factory.mktemp("classifiers"), recipe=TEST_RECIPE)


@pytest.fixture(scope="module")
def features(classifier):
    return lambda images: extract_features(classifier.model.features, images, batch_size=500)


def test_classifier_is_accurate_on_mnist5k_test(classifier):
    assert classifier.test_accuracy >= 0.95


def test_fid_is_the_frechet_distance_of_the_feature_statistics():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 12)), rng.standard_normal((200, 12)) * 1.2 + 0.1
    expected = frechet_distance(*gaussian_statistics(a), *gaussian_statistics(b))
    assert fid(a, b) == pytest.approx(expected, rel=1e-6)
    assert fid(torch.from_numpy(a), b, exact=True) == pytest.approx(expected, rel=1e-12)


def test_feature_extraction_does_not_depend_on_batch_size(classifier, mnist5k):
    images = mnist5k.test.images[:70]
    whole = extract_features(classifier.model.features, images, batch_size=1000)
    np.testing.assert_allclose(extract_features(classifier.model.features, images, batch_size=9), whole, rtol=1e-5, atol=1e-6)
    assert whole.shape == (70, classifier.feature_dim) and whole.dtype == np.float64


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


def test_a_single_digit_generator_covers_one_mode(classifier, mnist5k):
    test = mnist5k.test
    # all 500 threes of the data set; the quick test classifier errs on ~4%, so a class must hold half its
    # expected count (25 samples) to count as a mode here
    threes = torch.cat([s.images[s.labels == 3] for s in (mnist5k.train, mnist5k.validation, test)])
    frequencies = torch.bincount(test.labels, minlength=10)
    predicted = classifier.predict_proba(threes).argmax(1)
    covered, kl = mode_coverage(predicted, frequencies, 10, min_share_of_expected=0.5)
    assert covered == 1 and 1.5 < kl <= np.log(10) + 1e-9  # log 10 when every prediction is a 3
    covered_all, kl_all = mode_coverage(classifier.predict_proba(test.images).argmax(1), frequencies, 10)
    assert covered_all == 10 and kl_all < 0.01


def test_classifier_score_of_real_test_data_is_near_num_classes(classifier, mnist5k):
    assert 8.5 < classifier_score(classifier.predict_proba(mnist5k.test.images)) <= 10.0
    threes = mnist5k.test.images[mnist5k.test.labels == 3]
    assert classifier_score(classifier.predict_proba(threes)) < 1.5


# ---- Inception (no pretrained weights available offline: shapes, errors and the loader) -------------

def test_missing_inception_weights_raise_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(MissingInceptionWeights, match=INCEPTION_WEIGHTS_ENV) as unset:
        InceptionFeatures()
    with pytest.raises(MissingInceptionWeights, match="does not exist") as missing:
        InceptionFeatures(tmp_path / "pt_inception-2015-12-05.pth")
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "absent.pth"))
    with pytest.raises(MissingInceptionWeights, match="absent.pth"):
        InceptionFeatures()
    assert "\n" not in str(unset.value) and "\n" not in str(missing.value)


def test_inception_features_are_2048_dim_and_weights_load_by_name(tmp_path, monkeypatch):
    torch.manual_seed(0)
    random_net = InceptionFeatures(pretrained=False).eval()
    # pytorch-fid's file layout: no AuxLogits, a 1008-way fc
    state = {k: v for k, v in random_net.net.state_dict().items() if not k.startswith(("AuxLogits.", "fc."))}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1008, 2048), torch.zeros(1008)
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(path))
    loaded = InceptionFeatures().eval()
    gray, color = torch.rand(1, 1, 28, 28), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = random_net(gray)
        assert out.shape == (1, 2048) and random_net(color).shape == (1, 2048)
        torch.testing.assert_close(loaded(gray), out)
        # grayscale is tiled to three channels
        torch.testing.assert_close(random_net(gray.repeat(1, 3, 1, 1)), out)
