"""Metrics: pure functions on arrays/tensors; feature extractors are passed in. No Ray or MLflow here."""
# (the training function stays in gan.metrics.classifier: `gan.metrics.train_classifier` is the command's module)
from gan.metrics.classifier import (
    CACHE_ENV,
    DEFAULT_RECIPE,
    ClassifierMismatch,
    ClassifierWeights,
    LeNet,
    TrainedClassifier,
    TrainingRecipe,
    channel_features,
    channel_probabilities,
    load_or_train_classifier,
    load_or_train_weights,
    weights_fingerprint,
)
from gan.metrics.diagnostics import (
    classifier_score,
    discriminator_balance,
    discriminator_overfitting,
    mode_coverage,
    precision_recall_density_coverage,
    sliced_wasserstein_distance,
)
from gan.metrics.fid import extract_features, fid
from gan.metrics.frechet import frechet_distance, frechet_distance_fast, gaussian_statistics
from gan.metrics.kid import KidResult, kid
from gan.metrics.modes import expected_modes_covered, mode_numbers, modes_covered_and_kl
from gan.metrics.parzen import (
    DEFAULT_SIGMAS,
    ParzenResult,
    parzen_log_densities,
    parzen_log_likelihood,
    parzen_protocol,
    select_parzen_sigma,
)

__all__ = [
    "CACHE_ENV", "ClassifierMismatch", "ClassifierWeights", "DEFAULT_RECIPE", "DEFAULT_SIGMAS", "KidResult", "LeNet", "ParzenResult", "TrainedClassifier",
    "TrainingRecipe", "channel_features", "channel_probabilities", "classifier_score", "expected_modes_covered",
    "kid", "mode_numbers", "modes_covered_and_kl", "discriminator_balance", "discriminator_overfitting", "extract_features", "fid", "frechet_distance", "frechet_distance_fast",
    "gaussian_statistics", "load_or_train_classifier", "load_or_train_weights", "mode_coverage", "parzen_log_densities", "parzen_log_likelihood",
    "parzen_protocol", "precision_recall_density_coverage", "select_parzen_sigma", "sliced_wasserstein_distance",
    "weights_fingerprint",
]
