"""Evaluation on Stacked MNIST: modes, KID and the reference rows, with "generators" whose output we know."""
import importlib

import pytest
import torch

from gan import names
from gan.evaluation import default_metrics, evaluate, metrics_unsupported_by, reference_scores
from gan.metrics.modes import expected_modes_covered
from gan.stacked_mnist import StackedOptions, stack

evaluation_module = importlib.import_module("gan.evaluation")


class Replay:
    """'Generates' given images (distinct ones while they last, chosen by seed); D outputs 0.5 everywhere."""

    def __init__(self, images):
        self.images = images
        self.sampled = 0

    def sample(self, num_samples, seed):
        self.sampled += num_samples
        order = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(seed))
        return self.images[order.repeat(num_samples // len(order) + 1)[:num_samples]]

    def discriminator_probabilities(self, images):
        return torch.full((len(images),), 0.5)


@pytest.fixture(scope="module")
def stacked(mnist5k):
    return stack(mnist5k, "stacked_mnist", StackedOptions(train_size=4000, validation_size=600, test_size=600))


def _evaluate(generator, stacked, classifier, n, final=False, metrics=("modes", "kid", "fid", "discriminator")):
    return evaluate(generator, stacked.validation, stacked.validation, metrics, n, 0, classifier, stacked.num_classes,
                    final=final)


def test_real_stacked_digits_cover_the_modes_a_uniform_generator_would(stacked, quick_classifier):
    scores = _evaluate(Replay(stacked.train.images), stacked, quick_classifier, 1500)
    expected = expected_modes_covered(1500, 1000)  # 777.2
    assert 0.95 * expected < scores[names.MODES_COVERED] <= 1000
    assert scores[names.MODES_KL] < 0.6  # the plug-in bias alone is about (1000 − 1)/(2·1500) = 0.33 nats
    noise = _evaluate(Replay(torch.rand(1500, 3, 28, 28)), stacked, quick_classifier, 1500)
    assert abs(scores[names.KID]) < noise[names.KID] / 200 and scores[names.KID_STD] > 0
    assert scores[names.FID] < noise[names.FID] / 20


def test_one_triple_replayed_is_one_mode_at_ln_1000(stacked, quick_classifier):
    one = stacked.test.images[:1].repeat(50, 1, 1, 1)
    scores = _evaluate(Replay(one), stacked, quick_classifier, 1000)
    assert scores[names.MODES_COVERED] == 1 and scores[names.MODES_KL] == pytest.approx(6.907755, abs=1e-6)
    real = _evaluate(Replay(stacked.train.images), stacked, quick_classifier, 1000)
    assert scores[names.KID] > 20 * abs(real[names.KID]) and scores[names.FID] > 5 * real[names.FID]


def test_the_final_evaluation_counts_modes_on_the_protocol_sample_size(stacked, quick_classifier, monkeypatch):
    monkeypatch.setattr(evaluation_module, "FINAL_MODES_SAMPLES", 3500)  # 26,000 in the protocol
    generator = Replay(stacked.train.images)
    scores = _evaluate(generator, stacked, quick_classifier, 1000, final=True, metrics=("modes",))
    assert generator.sampled == 3500  # 1,000 every metric sees, then 2,500 more in chunks of 1,000
    # 3,500 draws with repeats from 4,000 images: fewer distinct images than 3,500, more modes than 1,000 draws
    assert expected_modes_covered(1000, 1000) < scores[names.MODES_COVERED] < expected_modes_covered(3500, 1000)


def test_reference_rows_of_stacked_data(stacked, quick_classifier, monkeypatch):
    monkeypatch.setattr(evaluation_module, "FINAL_MODES_SAMPLES", 3000)
    scores = reference_scores(stacked, quick_classifier, max_centres=1000,
                              metrics=("fid", "kid", "modes", "discriminator"))
    # fresh triples of the 1,000 test digits: as many modes as 3,000 uniform draws cover (950.2)
    assert 0.95 * expected_modes_covered(3000, 1000) < scores[names.MODES_COVERED_TEST] <= 1000
    assert scores[names.MODES_KL_TEST] < 0.4
    assert scores[names.FID_TRAIN_TEST] < scores[names.FID_TEST_NOISE] / 20
    assert abs(scores[names.KID_TRAIN_TEST]) < 0.01 * scores[names.FID_TRAIN_TEST]
    assert names.PARZEN_TRAIN_TEST not in scores  # not among the metrics asked for


def test_whole_image_class_metrics_do_not_apply_to_stacked_data(stacked, quick_classifier):
    assert metrics_unsupported_by("stacked_mnist", ["fid", "coverage", "classifier_score"]) == [
        "coverage", "classifier_score"]
    assert metrics_unsupported_by("mnist5k", ["coverage", "modes"]) == []
    assert "modes" in default_metrics("stacked_mnist") and "coverage" not in default_metrics("stacked_mnist")
    with pytest.raises(ValueError, match="modes metric"):
        _evaluate(Replay(stacked.train.images), stacked, quick_classifier, 200, metrics=("coverage",))
