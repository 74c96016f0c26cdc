"""The feature extractors of a study: one of each, fixed on the driver before any trial starts, recorded on the
parent run by fingerprint (gan.metrics.classifier.weights_fingerprint).

The domain classifier behind fid, kid, prdc and modes is `--classifier`'s file, else a resumed study's own (the
weights file on its parent run), else the shipped one (mnist5k, Stacked MNIST) or this machine's cache (trained
now when it is missing). Its weights travel to every trial in TrialSettings, so no node trains or reads its own,
and its file is logged to the parent run, so `--resume` scores with the same network on any machine. The user's
Inception weights are fingerprinted and recorded. A resumed study whose extractors would change is refused:
its trials' scores could no longer be pooled.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from gan import names
from gan.evaluation import needs_classifier
from gan.metrics.classifier import ClassifierMismatch, ClassifierWeights, load_or_train_weights, weights_fingerprint

CLASSIFIER_FILE = "classifier/weights.pt"  # the parent run's artifact: the study's classifier weights


def _resumed_weights(tracking_uri: str, parent) -> ClassifierWeights | None:
    """The classifier weights file logged to a study's parent run, or None (a study from before they were)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    folder = CLASSIFIER_FILE.split("/")[0]
    if not any(a.path == CLASSIFIER_FILE for a in client.list_artifacts(parent.info.run_id, folder)):
        return None
    with tempfile.TemporaryDirectory() as directory:
        return ClassifierWeights.load(client.download_artifacts(parent.info.run_id, CLASSIFIER_FILE, directory))


def _check_unchanged(parent, tag: str, fingerprint: str, what: str, remedy: str) -> None:
    recorded = parent.data.tags.get(tag) if parent is not None else None
    if recorded and recorded != fingerprint:
        raise ClassifierMismatch(f"the study's trials were scored by {what} {recorded}, this driver's is "
                                 f"{fingerprint}: {remedy}, or start a new study")


def study_classifier(metrics, splits, path: str | None = None, parent=None,
                     tracking_uri: str | None = None) -> ClassifierWeights | None:
    """The study's classifier weights (see the module doc), checked against `splits`; None when no metric of
    `metrics` needs one. `parent`: the run of a study to resume, in the store at `tracking_uri`.
    ClassifierMismatch: a file of other data, or a resumed study's network would change."""
    if not needs_classifier(metrics):
        return None
    if path:
        weights = ClassifierWeights.load(path)
    else:
        weights = _resumed_weights(tracking_uri, parent) if parent is not None else None
        if weights is None:
            weights = load_or_train_weights(splits)
    weights.check_data(splits)
    _check_unchanged(parent, names.CLASSIFIER_FINGERPRINT_TAG, weights.fingerprint, "classifier",
                     "give its weights file with --classifier")
    return weights


def inception_fingerprint(weights_path: str | None, parent=None) -> str | None:
    """The fingerprint of the user's Inception weights file (None: no fid_inception); refuses a resumed study
    whose file changed."""
    if weights_path is None:
        return None
    from gan.metrics.inception import load_weights

    fingerprint = weights_fingerprint(load_weights(weights_path))
    _check_unchanged(parent, names.INCEPTION_FINGERPRINT_TAG, fingerprint, "Inception weights",
                     "point evaluation.inception_weights at the file it used")
    return fingerprint


def extractor_tags(classifier: ClassifierWeights | None, inception: str | None) -> dict[str, str]:
    """The parent run's tags naming the study's extractors (none for an extractor it does not use)."""
    tags = {names.CLASSIFIER_FINGERPRINT_TAG: classifier.fingerprint if classifier is not None else None,
            names.INCEPTION_FINGERPRINT_TAG: inception}
    return {tag: value for tag, value in tags.items() if value is not None}


def log_extractors(client, run_id: str, classifier: ClassifierWeights | None, inception: str | None) -> None:
    """Tag the parent run with the extractors' fingerprints, and log the classifier's weights file to it."""
    for tag, value in extractor_tags(classifier, inception).items():
        client.set_tag(run_id, tag, value)
    if classifier is not None:
        folder, name = CLASSIFIER_FILE.split("/")
        with tempfile.TemporaryDirectory() as directory:
            classifier.save(Path(directory) / name)
            client.log_artifact(run_id, str(Path(directory) / name), artifact_path=folder)
