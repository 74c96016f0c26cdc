"""Evaluation of a trainer at one point of training: a list of named metric functions.

Each metric function takes an `EvaluationInputs` and returns {name: value}. The inputs hold
the generated samples, the reference split and D's outputs on both, computed once; classifier
features and probabilities are computed lazily and shared by every metric that needs them.

During training the reference is the validation split (Parzen's sigma is chosen and scored on
it: a tracking signal). The final evaluation follows the papers' protocols: reference = the test
split, Parzen with 10,000 samples and sigma chosen on the validation split (Goodfellow et al. 2014).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
import torch

from gan.data import Split
from gan.metrics import (
    TrainedClassifier,
    classifier_score,
    discriminator_balance,
    extract_features,
    fid,
    frechet_distance_fast,
    gaussian_statistics,
    mode_coverage,
    parzen_protocol,
    precision_recall_density_coverage,
    sliced_wasserstein_distance,
)
from gan import names

# Reported by every evaluation from the training statistics, whatever metrics are chosen.
TRAINING_METRICS = names.TRAINING_METRICS
FINAL_PARZEN_SAMPLES = 10_000  # the 2014 paper's protocol


@dataclass
class EvaluationInputs:
    fake: torch.Tensor  # N x C x H x W in [0, 1]
    reference: Split  # the split scored against: validation during training, test at the end
    validation: Split  # where Parzen's sigma is chosen
    d_real: torch.Tensor  # D(x) on the reference images
    d_fake: torch.Tensor  # D(G(z)) on `fake`
    classifier: TrainedClassifier | None  # the domain classifier (FID features, modes, scores)
    num_classes: int

    def _features(self, images: torch.Tensor) -> np.ndarray:
        model = self.classifier.model
        return extract_features(model.features, images, device=next(model.parameters()).device)

    @cached_property
    def fake_features(self) -> np.ndarray:
        return self._features(self.fake)

    @cached_property
    def reference_features(self) -> np.ndarray:
        return self._features(self.reference.images)

    @cached_property
    def fake_probabilities(self) -> torch.Tensor:
        """Class probabilities from the cached features: the head is all that remains of the classifier."""
        head = self.classifier.model.head
        weight, bias = head.weight.detach().double().cpu(), head.bias.detach().double().cpu()
        return torch.softmax(torch.from_numpy(self.fake_features) @ weight.T + bias, dim=1)


MetricFunction = Callable[[EvaluationInputs], dict[str, float]]


def pixel_fd(inputs: EvaluationInputs) -> dict[str, float]:
    """Fréchet distance between Gaussians fitted to raw pixels ([0, 1] scale) of samples and reference."""
    fake = inputs.fake.flatten(1).double().cpu().numpy()
    real = inputs.reference.images.flatten(1).double().cpu().numpy()
    return {names.PIXEL_FD: frechet_distance_fast(*gaussian_statistics(fake), *gaussian_statistics(real))}


def classifier_fid(inputs: EvaluationInputs) -> dict[str, float]:
    """FID on the domain classifier's penultimate features (a "Fréchet LeNet distance")."""
    return {names.FID: fid(inputs.reference_features, inputs.fake_features)}


def parzen(inputs: EvaluationInputs) -> dict[str, float]:
    """Parzen-window log-likelihood of the reference split, nats, sigma chosen on the validation split."""
    result = parzen_protocol(inputs.fake, inputs.validation.images, inputs.reference.images)
    return {names.PARZEN: result.mean, names.PARZEN_SEM: result.standard_error, names.PARZEN_SIGMA: result.sigma}


def coverage_of_modes(inputs: EvaluationInputs) -> dict[str, float]:
    """Classes covered by the samples (classifier labels) and KL(p̂(class) ‖ reference class frequencies)."""
    frequencies = torch.bincount(inputs.reference.labels, minlength=inputs.num_classes)
    covered, kl = mode_coverage(inputs.fake_probabilities.argmax(dim=1), frequencies, inputs.num_classes)
    return {names.CLASSES_COVERED: covered, names.MODE_KL: kl}


def score_of_classifier(inputs: EvaluationInputs) -> dict[str, float]:
    return {names.CLASSIFIER_SCORE: classifier_score(inputs.fake_probabilities)}


def prdc(inputs: EvaluationInputs) -> dict[str, float]:
    """Precision/recall (k = 3) and density/coverage (k = 5) in classifier feature space, equal set sizes."""
    n = min(len(inputs.fake_features), len(inputs.reference_features))
    return precision_recall_density_coverage(inputs.reference_features[:n], inputs.fake_features[:n])


def wasserstein(inputs: EvaluationInputs) -> dict[str, float]:
    """Sliced Wasserstein-1 distance between classifier features of the samples and the reference."""
    return {names.SLICED_WASSERSTEIN: sliced_wasserstein_distance(inputs.reference_features, inputs.fake_features)}


def discriminator_outputs(inputs: EvaluationInputs) -> dict[str, float]:
    """D in eval mode on held-out real images and fresh samples: means, their gap and D's accuracy."""
    balance = discriminator_balance(inputs.d_real, inputs.d_fake)
    return {**balance, names.D_GAP: balance[names.EVAL_D_REAL] - balance[names.EVAL_D_FAKE]}


@dataclass(frozen=True)
class Metric:
    function: MetricFunction
    outputs: tuple[str, ...]
    needs_classifier: bool


METRICS: dict[str, Metric] = {
    "fid": Metric(classifier_fid, (names.FID,), True),
    "parzen": Metric(parzen, (names.PARZEN, names.PARZEN_SEM, names.PARZEN_SIGMA), False),
    "coverage": Metric(coverage_of_modes, (names.CLASSES_COVERED, names.MODE_KL), True),
    "prdc": Metric(prdc, (names.PRECISION, names.RECALL, names.DENSITY, names.COVERAGE), True),
    "classifier_score": Metric(score_of_classifier, (names.CLASSIFIER_SCORE,), True),
    "wasserstein": Metric(wasserstein, (names.SLICED_WASSERSTEIN,), True),
    "discriminator": Metric(discriminator_outputs, (names.EVAL_D_REAL, names.EVAL_D_FAKE, names.D_GAP, names.D_ACCURACY),
                            False),
    "pixel_fd": Metric(pixel_fd, (names.PIXEL_FD,), False),
}
METRIC_NAMES = tuple(METRICS)
DEFAULT_METRICS = ("fid", "parzen", "coverage", "prdc", "classifier_score", "wasserstein", "discriminator")


def reported_metric_names(metrics) -> list[str]:
    names = list(TRAINING_METRICS)
    for metric in metrics:
        names += METRICS[metric].outputs
    return names


def needs_classifier(metrics) -> bool:
    return any(METRICS[m].needs_classifier for m in metrics)


def evaluate(trainer, reference: Split, validation: Split, metrics, num_samples: int, seed: int,
             classifier: TrainedClassifier | None, num_classes: int) -> dict[str, float]:
    """Generate `num_samples` images with a fixed seed and compute every metric in `metrics`."""
    fake = trainer.sample(num_samples, seed=seed)
    inputs = EvaluationInputs(
        fake=fake,
        reference=reference,
        validation=validation,
        d_real=trainer.discriminator_probabilities(reference.images),
        d_fake=trainer.discriminator_probabilities(fake),
        classifier=classifier,
        num_classes=num_classes,
    )
    values: dict[str, float] = {}
    for metric in metrics:
        values.update(METRICS[metric].function(inputs))
    return {name: float(value) for name, value in values.items()}


# --- the balance regime of a trial ----------------------------------------------------------------
BALANCE_REGIMES = ("diverged", "mode_collapse", "d_dominates", "g_dominates", "balanced")
COLLAPSE_MAX_CLASSES_SHARE = 0.6  # covering fewer than 6 of 10 classes is collapse
D_DOMINATES_MAX_D_FAKE = 0.1  # D(G(z)) near 0: the minimax generator's gradient vanishes
D_DOMINATES_MIN_ACCURACY = 0.95


def balance_regime(metrics: dict[str, float], diverged: bool, num_classes: int) -> str:
    """Label a trial from its (final) diagnostics; the first rule that holds wins:

    1. diverged       — a loss or parameter became non-finite;
    2. mode_collapse  — the samples cover fewer than 60% of the classes (needs the `coverage` metric);
    3. d_dominates    — D separates held-out reals from fakes (accuracy >= 0.95) and mean D(G(z)) < 0.1,
                        the regime where G's (saturating) gradient vanishes;
    4. g_dominates    — D rates the fakes at least as real as held-out reals (mean D(G(z)) >= mean D(x));
    5. balanced       — otherwise: D separates the sets only partly and still rates reals higher.
    """
    if diverged:
        return "diverged"
    covered = metrics.get(names.CLASSES_COVERED)
    if covered is not None and covered < COLLAPSE_MAX_CLASSES_SHARE * num_classes:
        return "mode_collapse"
    d_real, d_fake = metrics[names.EVAL_D_REAL], metrics[names.EVAL_D_FAKE]
    if metrics[names.D_ACCURACY] >= D_DOMINATES_MIN_ACCURACY and d_fake < D_DOMINATES_MAX_D_FAKE:
        return "d_dominates"
    if d_fake >= d_real:
        return "g_dominates"
    return "balanced"


# --- reference rows: what real data scores on the same metrics -------------------------------------
def reference_scores(splits, classifier: TrainedClassifier | None, max_centres: int = FINAL_PARZEN_SAMPLES,
                     seed: int = 0) -> dict[str, float]:
    """The yardsticks of a data set, computed once per study:

    - fid_train_test: FID(train split, test split) — the floor a perfect generator can reach;
    - fid_test_noise: FID(test split, uniform noise images) — the ceiling of a useless generator;
    - parzen_train_test (± sem, sigma): Parzen log-likelihood of the test split with up to 10,000
      training images as kernel centres, sigma chosen on the validation split — the "true distribution" row;
    - classifier_test_accuracy: the domain classifier's accuracy on the test split.
    """
    scores: dict[str, float] = {}
    centres = splits.train.images[:max_centres]
    result = parzen_protocol(centres, splits.validation.images, splits.test.images)
    scores.update({names.PARZEN_TRAIN_TEST: result.mean, f"{names.PARZEN_TRAIN_TEST}_sem": result.standard_error,
                   f"{names.PARZEN_TRAIN_TEST}_sigma": result.sigma})
    if classifier is not None:
        device = next(classifier.model.parameters()).device
        features = {name: extract_features(classifier.model.features, images, device=device) for name, images in (
            ("train", splits.train.images), ("test", splits.test.images),
            ("noise", torch.rand(splits.test.images.shape, generator=torch.Generator().manual_seed(seed))))}
        scores.update({names.FID_TRAIN_TEST: fid(features["train"], features["test"]),
                       names.FID_TEST_NOISE: fid(features["test"], features["noise"]),
                       names.CLASSIFIER_TEST_ACCURACY: classifier.test_accuracy})
    return {name: float(value) for name, value in scores.items()}
