"""The names gan-study writes into MLflow, and its default store: shared by study/ and reports/.

Kept free of Ray and MLflow imports so that reports/ can use them without importing Ray.
"""
from __future__ import annotations

from pathlib import Path

ROLE_TAG = "gan_study.role"  # "study" on a parent run, "trial" on a child run
TRIAL_ID_TAG = "gan_study.trial_id"
STATUS_TAG = "gan_study.status"
REGIME_TAG = "gan_study.regime"  # gan.evaluation.balance_regime of the trial's last evaluation
SPACE_TAG = "gan_study.space"
DATASET_TAG = "gan_study.dataset"
PARENT_TAG = "mlflow.parentRunId"
SAMPLES_ARTIFACT = "samples/samples.png"


def default_tracking_uri(directory: Path | None = None) -> str:
    """An absolute sqlite URI in the working directory: MLflow >= 3.13 refuses plain file stores."""
    return f"sqlite:///{((directory or Path.cwd()) / 'mlflow.db').resolve()}"


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a sqlite store, artifacts live in `mlartifacts/` beside the database file."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    return None
