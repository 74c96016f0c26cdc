"""The training data of a study's trials as an MLflow dataset input, so the runs table's Dataset column shows
which data each run trained on ("mnist5k", "stacked_mnist") and runs on different data cannot be confused.

Computed once on the driver from the loaded splits: name = the data set's name, digest = its fingerprint
(gan.splits.DataSplits.fingerprint, a hash of the training pixels and labels: two runs with the same digest
trained on the same arrays), source = how gan.data loads it, profile = the split sizes. Logged to every child
run, and to the study's parent run (its row in the runs table shows it too), with the context `training`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from gan.splits import DataSplits

SOURCE_TYPE = "gan_study"  # the data come from gan.data.load_dataset, not from a file MLflow could open
CONTEXT = "training"


@dataclass(frozen=True)
class TrainingData:
    """What the dataset input holds; plain strings, so the Tune callback that carries it pickles without MLflow."""

    name: str
    digest: str
    source: str  # JSON: the loader's arguments
    profile: str  # JSON: split sizes, image shape, classes

    def dataset_input(self):
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        dataset = Dataset(self.name, self.digest, SOURCE_TYPE, self.source, profile=self.profile)
        return DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, CONTEXT)])


def training_data(splits: DataSplits, data_root: str | None, options=None) -> TrainingData:
    """`options`: Stacked MNIST's sizes and seed (gan.stacked_mnist.StackedOptions), else None."""
    source = {"loader": "gan.data.load_dataset", "name": splits.name, "root": data_root,
              "stacked": vars(options) if options is not None else None}
    profile = {"train": len(splits.train), "validation": len(splits.validation), "test": len(splits.test),
               "image_shape": list(splits.image_shape), "num_classes": splits.num_classes}
    return TrainingData(splits.name, splits.fingerprint(), json.dumps(source), json.dumps(profile))


def log_training_input(client, run_id: str, data: TrainingData) -> None:
    client.log_inputs(run_id, datasets=[data.dataset_input()])
