"""The evaluation step and the balance regime, with "generators" whose output we know."""
import pytest
import torch

from gan.evaluation import DEFAULT_METRICS, balance_regime, evaluate, reference_scores


class ReplayGenerator:
    """Stands in for a trainer: 'generates' given images, and a fixed D output for reals and fakes."""

    def __init__(self, images, d_real=0.7, d_fake=0.3):
        self.images, self.d_real, self.d_fake = images, d_real, d_fake

    def sample(self, num_samples, seed):
        index = torch.randint(len(self.images), (num_samples,), generator=torch.Generator().manual_seed(seed))
        return self.images[index]

    def discriminator_probabilities(self, images):
        value = self.d_fake if any(images.data_ptr() == s for s in self._fake_ptrs) else self.d_real
        return torch.full((len(images),), value)


@pytest.fixture(scope="module")
def classifier(quick_classifier):
    return quick_classifier


def _evaluate(generator, mnist5k, classifier, n=1000):
    generator._fake_ptrs = []
    original = generator.sample

    def remembering_sample(num_samples, seed):
        fake = original(num_samples, seed)
        generator._fake_ptrs.append(fake.data_ptr())
        return fake

    generator.sample = remembering_sample
    return evaluate(generator, mnist5k.validation, mnist5k.validation, DEFAULT_METRICS, n, 0, classifier, 10)


def test_real_digits_score_near_the_floor_and_cover_every_class(mnist5k, classifier):
    real = _evaluate(ReplayGenerator(mnist5k.train.images), mnist5k, classifier)
    noise = _evaluate(ReplayGenerator(torch.rand(500, 1, 28, 28)), mnist5k, classifier)
    assert real["classes_covered"] == 10 and real["mode_kl"] < 0.05
    assert real["fid"] < noise["fid"] / 20
    assert real["parzen"] > noise["parzen"]
    assert real["precision"] > 0.6 and real["recall"] > 0.6 and noise["precision"] < real["precision"] / 4
    assert real["classifier_score"] > 8 and real["sliced_wasserstein"] < noise["sliced_wasserstein"]
    assert real["eval_d_real"] == pytest.approx(0.7) and real["eval_d_fake"] == pytest.approx(0.3)
    assert real["d_gap"] == pytest.approx(0.4) and real["d_accuracy"] == 1.0
    assert balance_regime(real, diverged=False, num_classes=10) == "balanced"


def test_a_one_digit_generator_is_labelled_mode_collapse(mnist5k, classifier):
    sevens = mnist5k.train.images[mnist5k.train.labels == 7]
    scores = _evaluate(ReplayGenerator(sevens), mnist5k, classifier)
    # the quick test classifier (96%) may call enough sevens one other digit for a second class
    assert scores["classes_covered"] <= 2
    assert balance_regime(scores, diverged=False, num_classes=10) == "mode_collapse"


@pytest.mark.parametrize("metrics,diverged,expected", [
    ({}, True, "diverged"),
    ({"classes_covered": 5, "eval_d_real": 0.6, "eval_d_fake": 0.4, "d_accuracy": 0.7}, False, "mode_collapse"),
    ({"classes_covered": 10, "eval_d_real": 0.99, "eval_d_fake": 0.01, "d_accuracy": 0.99}, False, "d_dominates"),
    ({"classes_covered": 10, "eval_d_real": 0.99, "eval_d_fake": 0.2, "d_accuracy": 0.99}, False, "balanced"),
    ({"classes_covered": 10, "eval_d_real": 0.45, "eval_d_fake": 0.55, "d_accuracy": 0.4}, False, "g_dominates"),
    ({"eval_d_real": 0.8, "eval_d_fake": 0.3, "d_accuracy": 0.8}, False, "balanced"),  # no coverage metric
])
def test_balance_regime_rules(metrics, diverged, expected):
    assert balance_regime(metrics, diverged, num_classes=10) == expected


def test_reference_rows_bracket_the_generators(mnist5k, classifier):
    scores = reference_scores(mnist5k, classifier)
    assert scores["fid_train_test"] < scores["fid_test_noise"] / 100
    assert scores["classifier_test_accuracy"] >= 0.95
    # the Parzen "true distribution" row: 3,500 training digits as kernel centres (mnist5k has no 10,000)
    assert 100 < scores["parzen_train_test"] < 400 and scores["parzen_train_test_sem"] > 0
