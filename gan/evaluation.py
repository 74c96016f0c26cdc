"""Evaluation of a trainer at one point of training: a list of named metric functions.

Each metric function takes an `EvaluationInputs` and returns {name: value}. The inputs hold
the generated samples, the reference split and D's outputs on both, computed once; classifier
features and probabilities are computed lazily and shared by every metric that needs them. Samples,
features and the metric arithmetic stay on the trial's device; the reference splits are copied there
once per process.

During training the reference is the validation split (Parzen's sigma is chosen and scored on
it: a tracking signal). The final evaluation follows the papers' protocols: reference = the test
split, Parzen with 10,000 samples and sigma chosen on the validation split (Goodfellow et al. 2014).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from typing import Callable

import numpy as np
import torch

from gan.data import STACKED_DATASETS, Split
from gan.metrics import (
    TrainedClassifier,
    channel_features,
    channel_probabilities,
    classifier_score,
    discriminator_balance,
    discriminator_overfitting,
    extract_features,
    fid,
    frechet_distance_fast,
    kid,
    gaussian_statistics,
    mode_coverage,
    modes_covered_and_kl,
    parzen_protocol,
    precision_recall_density_coverage,
    sliced_wasserstein_distance,
)
from gan import names
from gan.metrics.modes import PROTOCOL_SAMPLES as MODES_PROTOCOL_SAMPLES

# Reported by every evaluation from the training statistics, whatever metrics are chosen.
TRAINING_METRICS = names.TRAINING_METRICS
FINAL_PARZEN_SAMPLES = 10_000  # the 2014 paper's protocol
FINAL_MODES_SAMPLES = MODES_PROTOCOL_SAMPLES  # 26,000: VEEGAN's and PacGAN's mode count
MODES_CHUNK = 1000  # samples beyond `fake` are drawn, labelled and dropped this many at a time


# What the reference splits (validation, test) give, kept between evaluations: a trial worker evaluates against
# the same splits with the same frozen classifier every time, so their copies on the trial's device, their
# classifier features and pixel statistics are made once per process. Key: the kind of value, the ids of the
# objects it derives from, the device; the entry holds those objects, so no id can be reused while it is kept.
_KEPT: dict[tuple, tuple[tuple[object, ...], object]] = {}
_KEPT_MAX = 8


def _kept(kind: str, sources: tuple, device: torch.device, compute: Callable[[], object]):
    """compute(), once per process for each (kind, sources, device); the oldest entry goes beyond _KEPT_MAX."""
    key = (kind, *(id(source) for source in sources), str(device))
    entry = _KEPT.get(key)
    if entry is None or any(kept is not source for kept, source in zip(entry[0], sources)):
        while len(_KEPT) >= _KEPT_MAX:
            _KEPT.pop(next(iter(_KEPT)))
        entry = _KEPT[key] = (sources, compute())
    return entry[1]


def on_device(images, device: torch.device):
    """A split's images on `device`, copied there once per process (on their own device: the images themselves)."""
    return _kept("images", (images,), device, lambda: images.to(device))


def _reference_features(model, images) -> torch.Tensor:
    """N x (G·F) classifier features of a reference split, on the classifier's device, once per process."""
    device = next(model.parameters()).device
    return _kept("features", (model, images), device,
                 lambda: extract_features(channel_features(model), on_device(images, device), device=device))


@dataclass
class EvaluationInputs:
    fake: torch.Tensor  # N x C x H x W in [0, 1]
    reference: Split  # the split scored against: validation during training, test at the end
    validation: Split  # where Parzen's sigma is chosen
    d_real: torch.Tensor  # D(x) on the reference images
    d_fake: torch.Tensor  # D(G(z)) on `fake`
    classifier: TrainedClassifier | None  # the domain classifier (FID features, modes, scores)
    num_classes: int
    modes_samples: int = 0  # samples whose modes `modes` counts: `fake`, then more from `draw_more`
    # draw_more(n, i): n fresh samples of independent stream i (beyond `fake`), N x C x H x W in [0, 1]
    draw_more: Callable[[int, int], torch.Tensor] | None = None
    # D(x) on training reals as many as the reference images (the `overfitting` metric computes it on demand)
    d_on_training_reals: Callable[[], torch.Tensor] | None = None

    @cached_property
    def d_train(self) -> torch.Tensor:
        return self.d_on_training_reals()

    @property
    def device(self) -> torch.device:
        """Where the samples are, the trainer's device: the metrics run there."""
        return self.fake.device

    @property
    def reference_images(self):
        """The reference split's images on `device`, copied once per process."""
        return on_device(self.reference.images, self.device)

    @property
    def validation_images(self):
        return on_device(self.validation.images, self.device)

    @cached_property
    def fake_features(self) -> torch.Tensor:
        """N x (G·F) float64 classifier features on the classifier's device; G = 3 for Stacked MNIST (the digit
        classifier on each channel)."""
        model = self.classifier.model
        return extract_features(channel_features(model), self.fake, device=next(model.parameters()).device)

    @cached_property
    def reference_features(self) -> torch.Tensor:
        """The reference split's features, computed once per process for each (classifier, split) pair."""
        return _reference_features(self.classifier.model, self.reference.images)

    @cached_property
    def fake_channel_probabilities(self) -> torch.Tensor:
        """N x G x K class probabilities of each channel group, from the cached features by the head alone."""
        return channel_probabilities(self.classifier.model, self.fake_features)

    @property
    def fake_probabilities(self) -> torch.Tensor:
        """N x K class probabilities of whole images: only where the classifier reads whole images."""
        probabilities = self.fake_channel_probabilities
        if probabilities.shape[1] != 1:
            raise ValueError("class labels of whole images are undefined when the classifier labels each channel "
                             "(Stacked MNIST): use the modes metric")
        return probabilities[:, 0]

    def channel_labels(self) -> torch.Tensor:
        """N x G classifier labels of `modes_samples` samples: `fake`, then batches from `draw_more`."""
        labels = [self.fake_channel_probabilities.argmax(dim=2)[:self.modes_samples]]
        remaining = self.modes_samples - len(labels[0])
        for index, start in enumerate(range(0, max(remaining, 0), MODES_CHUNK)):
            labels.append(_labels_per_channel(self.classifier.model,
                                              self.draw_more(min(MODES_CHUNK, remaining - start), index)))
        return torch.cat(labels)


MetricFunction = Callable[[EvaluationInputs], dict[str, float]]


def pixel_fd(inputs: EvaluationInputs) -> dict[str, float]:
    """Fréchet distance between Gaussians fitted to raw pixels ([0, 1] scale) of samples and reference."""
    real_statistics = _kept("pixel statistics", (inputs.reference.images,), inputs.device,
                            lambda: gaussian_statistics(inputs.reference_images.flatten(1)))
    return {names.PIXEL_FD: frechet_distance_fast(*gaussian_statistics(inputs.fake.flatten(1)), *real_statistics)}


def classifier_fid(inputs: EvaluationInputs) -> dict[str, float]:
    """FID on the domain classifier's penultimate features (a "Fréchet LeNet distance")."""
    return {names.FID: fid(inputs.reference_features, inputs.fake_features)}


def parzen(inputs: EvaluationInputs) -> dict[str, float]:
    """Parzen-window log-likelihood of the reference split, nats, sigma chosen on the validation split."""
    result = parzen_protocol(inputs.fake, inputs.validation_images, inputs.reference_images)
    return {names.PARZEN: result.mean, names.PARZEN_SEM: result.standard_error, names.PARZEN_SIGMA: result.sigma}


def coverage_of_modes(inputs: EvaluationInputs) -> dict[str, float]:
    """Classes covered by the samples (classifier labels) and KL(p̂(class) ‖ reference class frequencies)."""
    frequencies = torch.bincount(inputs.reference.labels, minlength=inputs.num_classes)
    covered, kl = mode_coverage(inputs.fake_probabilities.argmax(dim=1), frequencies, inputs.num_classes)
    return {names.CLASSES_COVERED: covered, names.MODE_KL: kl}


def modes(inputs: EvaluationInputs) -> dict[str, float]:
    """Stacked MNIST: modes (digit triples) covered by `modes_samples` samples and KL(p̂(mode) ‖ uniform), nats."""
    covered, kl = modes_covered_and_kl(inputs.channel_labels(), inputs.classifier.model.num_classes)
    return {names.MODES_COVERED: covered, names.MODES_KL: kl}


def kernel_distance(inputs: EvaluationInputs) -> dict[str, float]:
    """KID on classifier features: unbiased MMD² with the cubic kernel, mean and std over subsets of <= 1,000."""
    result = kid(inputs.reference_features, inputs.fake_features)
    return {names.KID: result.mean, names.KID_STD: result.std}


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


def overfitting(inputs: EvaluationInputs) -> dict[str, float]:
    """D's overfitting: D in eval mode on training reals vs held-out reals vs fakes, and ADA's r_t."""
    return discriminator_overfitting(inputs.d_train, inputs.d_real, inputs.d_fake)


@dataclass(frozen=True)
class Metric:
    function: MetricFunction
    outputs: tuple[str, ...]
    needs_classifier: bool
    # reads one class label per image: undefined on Stacked MNIST, where the digit classifier labels each channel
    labels_whole_images: bool = False


METRICS: dict[str, Metric] = {
    "fid": Metric(classifier_fid, (names.FID,), True),
    "parzen": Metric(parzen, (names.PARZEN, names.PARZEN_SEM, names.PARZEN_SIGMA), False),
    "coverage": Metric(coverage_of_modes, (names.CLASSES_COVERED, names.MODE_KL), True, labels_whole_images=True),
    "prdc": Metric(prdc, (names.PRECISION, names.RECALL, names.DENSITY, names.COVERAGE), True),
    "classifier_score": Metric(score_of_classifier, (names.CLASSIFIER_SCORE,), True, labels_whole_images=True),
    "wasserstein": Metric(wasserstein, (names.SLICED_WASSERSTEIN,), True),
    "discriminator": Metric(discriminator_outputs, (names.EVAL_D_REAL, names.EVAL_D_FAKE, names.D_GAP, names.D_ACCURACY),
                            False),
    "pixel_fd": Metric(pixel_fd, (names.PIXEL_FD,), False),
    "overfitting": Metric(overfitting, names.D_OVERFITTING, False),
    "modes": Metric(modes, (names.MODES_COVERED, names.MODES_KL), True),
    "kid": Metric(kernel_distance, (names.KID, names.KID_STD), True),
}
METRIC_NAMES = tuple(METRICS)
DEFAULT_METRICS = ("fid", "kid", "parzen", "coverage", "prdc", "classifier_score", "wasserstein", "discriminator")
# Stacked MNIST: modes instead of the whole-image class metrics; Parzen in 2,352 dimensions is left out for its cost
DEFAULT_STACKED_METRICS = ("fid", "kid", "modes", "prdc", "wasserstein", "discriminator")


def default_metrics(dataset: str) -> tuple[str, ...]:
    return DEFAULT_STACKED_METRICS if dataset in STACKED_DATASETS else DEFAULT_METRICS


def metrics_unsupported_by(dataset: str, metrics) -> list[str]:
    """The metrics in `metrics` that the data set cannot have (class labels of whole Stacked MNIST images)."""
    return [m for m in metrics if dataset in STACKED_DATASETS and METRICS[m].labels_whole_images]


def reported_metric_names(metrics) -> list[str]:
    names = list(TRAINING_METRICS)
    for metric in metrics:
        names += METRICS[metric].outputs
    return names


def needs_classifier(metrics) -> bool:
    return any(METRICS[m].needs_classifier for m in metrics)


def evaluate(trainer, reference: Split, validation: Split, metrics, num_samples: int, seed: int,
             classifier: TrainedClassifier | None, num_classes: int, final: bool = False,
             inception=None, ema: bool = False) -> dict[str, float]:
    """Generate `num_samples` images with a fixed seed and compute every metric in `metrics`.

    final: the protocol evaluation — `modes` counts FINAL_MODES_SAMPLES (26,000) samples, the first
    `num_samples` being those every metric sees; else it counts the `num_samples`.
    inception: a gan.metrics.inception.InceptionFeatures; adds fid_inception (Inception-v3 FID of the samples
    against `reference`), which is never mixed with the classifier FID.
    ema: score the moving average of G (trainer.generator_ema) instead of G, on the same noise.
    """
    sample = partial(trainer.sample, ema=True) if ema else trainer.sample
    fake = sample(num_samples, seed=seed)
    inputs = EvaluationInputs(
        fake=fake,
        reference=reference,
        validation=validation,
        d_real=trainer.discriminator_probabilities(on_device(reference.images, fake.device)),
        d_fake=trainer.discriminator_probabilities(fake),
        classifier=classifier,
        num_classes=num_classes,
        modes_samples=max(num_samples, FINAL_MODES_SAMPLES) if final else num_samples,
        # further samples come from other seeds than `fake`'s: independent draws from the same generator
        draw_more=lambda n, index: sample(n, seed=seed + 1 + index),
        d_on_training_reals=lambda: trainer.discriminator_probabilities(trainer.training_reals(len(reference))),
    )
    values: dict[str, float] = {}
    for metric in metrics:
        values.update(METRICS[metric].function(inputs))
    if inception is not None:  # the reference's Inception features moved to the samples' device once
        reference_features = _kept("inception features", (inception, reference.images), fake.device,
                                   lambda: torch.as_tensor(inception.reference(reference.images), device=fake.device))
        values[names.FID_INCEPTION] = fid(reference_features, inception(fake))
    return {name: float(value) for name, value in values.items()}


# --- the balance regime of a trial ----------------------------------------------------------------
BALANCE_REGIMES = ("diverged", "mode_collapse", "d_dominates", "g_dominates", "balanced")
COLLAPSE_MAX_CLASSES_SHARE = 0.6  # covering fewer than 6 of 10 classes is collapse
D_DOMINATES_MAX_D_FAKE = 0.1  # D(G(z)) near 0: the minimax generator's gradient vanishes
D_DOMINATES_MIN_ACCURACY = 0.95


def balance_regime(metrics: dict[str, float], diverged: bool, num_classes: int, num_modes: int | None = None) -> str:
    """Label a trial from its (final) diagnostics; the first rule that holds wins:

    1. diverged       — a loss or parameter became non-finite;
    2. mode_collapse  — the samples cover fewer than 60% of the classes (needs the `coverage` metric), or on
                        Stacked MNIST (`num_modes` given) fewer than 60% of its modes (needs `modes`);
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
    modes_covered = metrics.get(names.MODES_COVERED)
    if modes_covered is not None and num_modes and modes_covered < COLLAPSE_MAX_CLASSES_SHARE * num_modes:
        return "mode_collapse"
    d_real, d_fake = metrics[names.EVAL_D_REAL], metrics[names.EVAL_D_FAKE]
    if metrics[names.D_ACCURACY] >= D_DOMINATES_MIN_ACCURACY and d_fake < D_DOMINATES_MAX_D_FAKE:
        return "d_dominates"
    if d_fake >= d_real:
        return "g_dominates"
    return "balanced"


# --- reference rows: what real data scores on the same metrics -------------------------------------
def noise_fid(test_images: torch.Tensor, classifier: TrainedClassifier, seed: int = 0,
              test_features: torch.Tensor | np.ndarray | None = None) -> float:
    """FID(test split, uniform noise images of its shape): the score of a useless generator (a study's
    reference row, and gan.outcome's yardstick of failure)."""
    model = classifier.model
    device = next(model.parameters()).device
    if test_features is None:
        test_features = _reference_features(model, test_images)
    noise = torch.rand(test_images.shape, generator=torch.Generator().manual_seed(seed))
    return float(fid(test_features, extract_features(channel_features(model), noise, device=device)))


def reference_scores(splits, classifier: TrainedClassifier | None, max_centres: int = FINAL_PARZEN_SAMPLES,
                     seed: int = 0, metrics=None) -> dict[str, float]:
    """The yardsticks of a data set, computed once per study, for the `metrics` it evaluates
    (None: the data set's default metrics):

    - fid_train_test: FID(train split, test split) — the floor a perfect generator can reach; up to 10,000
      training images, the size of the final evaluation's sample (FID is biased by the sample size);
    - fid_test_noise: FID(test split, uniform noise images) — the ceiling of a useless generator;
    - classifier_test_accuracy: the domain classifier's accuracy on the test split (of single digits for
      Stacked MNIST);
    - parzen_train_test (± sem, sigma), with parzen: Parzen log-likelihood of the test split with up to
      10,000 training images as kernel centres, sigma chosen on the validation split — the "true distribution" row;
    - kid_train_test (± kid_train_test_std), with kid: KID(the same training images, test split);
    - modes_covered_test, modes_kl_test, with modes: the mode count of 26,000 real test images (Stacked MNIST:
      26,000 new triples of the test split's digits, each digit drawn uniformly with replacement; otherwise
      test images drawn with replacement), labelled by the same classifier as the samples.
    """
    wanted = set(default_metrics(splits.name) if metrics is None else metrics)
    scores: dict[str, float] = {}
    train = splits.train.images[:max_centres]  # a tensor: Stacked MNIST's lazy training split is built here
    if "parzen" in wanted:
        result = parzen_protocol(train, splits.validation.images, splits.test.images)
        scores.update({names.PARZEN_TRAIN_TEST: result.mean, f"{names.PARZEN_TRAIN_TEST}_sem": result.standard_error,
                       f"{names.PARZEN_TRAIN_TEST}_sigma": result.sigma})
    if classifier is not None:
        model = classifier.model
        device = next(model.parameters()).device
        features = {"train": extract_features(channel_features(model), train, device=device),
                    "test": _reference_features(model, splits.test.images)}
        scores.update({names.FID_TRAIN_TEST: fid(features["train"], features["test"]),
                       names.FID_TEST_NOISE: noise_fid(splits.test.images, classifier, seed, features["test"]),
                       names.CLASSIFIER_TEST_ACCURACY: classifier.test_accuracy})
        if "kid" in wanted:
            result = kid(features["train"], features["test"])
            scores.update({names.KID_TRAIN_TEST: result.mean, f"{names.KID_TRAIN_TEST}_std": result.std})
        if "modes" in wanted:
            covered, kl = modes_covered_and_kl(_real_channel_labels(splits, model, FINAL_MODES_SAMPLES, seed),
                                               model.num_classes)
            scores.update({names.MODES_COVERED_TEST: covered, names.MODES_KL_TEST: kl})
    return {name: float(value) for name, value in scores.items()}


def _real_channel_labels(splits, model, num_images: int, seed: int) -> torch.Tensor:
    """num_images x G classifier labels of real test images drawn with replacement, MODES_CHUNK at a time."""
    from gan.stacked_mnist import StackedImages, draw_triples

    rng = np.random.default_rng(seed)
    source = splits.channel_source
    if source is not None:  # fresh triples of the test digits: every one of the 1,000 modes can be drawn
        images = StackedImages(source.test.images[:, 0], draw_triples(len(source.test), num_images, rng))
    else:  # indices only: each chunk of images is gathered when it is labelled
        images = _Gather(splits.test.images, torch.from_numpy(rng.integers(0, len(splits.test), num_images)))
    return torch.cat([_labels_per_channel(model, images[start:start + MODES_CHUNK])
                      for start in range(0, num_images, MODES_CHUNK)])


def _labels_per_channel(model, images: torch.Tensor) -> torch.Tensor:
    """N x G classifier labels: the digit classifier's argmax on each channel group of each image."""
    features = extract_features(channel_features(model), images, device=next(model.parameters()).device)
    return channel_probabilities(model, features).argmax(dim=2)


class _Gather:
    """images[index[i]] for slices of i, gathered on demand."""

    def __init__(self, images: torch.Tensor, index: torch.Tensor):
        self.images, self.index = images, index

    def __getitem__(self, positions: slice) -> torch.Tensor:
        return self.images[self.index[positions]]
