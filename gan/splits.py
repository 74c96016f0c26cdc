"""The containers every data set fills: a split (images and labels) and a data set's three splits.

They live apart from gan.data (which loads data sets) and gan.stacked_mnist (which builds Stacked MNIST from
a loaded one), so both import them and neither imports the other back.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Split:
    # N x C x H x W, float32, [0, 1]. Stacked MNIST's train split holds a gan.stacked_mnist.StackedImages
    # instead, which reads like such a tensor and builds its images when indexed.
    images: torch.Tensor
    labels: torch.Tensor  # N, int64

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass(frozen=True)
class DataSplits:
    name: str
    train: Split
    validation: Split
    test: Split
    num_classes: int
    # Stacked MNIST: the 1-channel digits whose splits fill its channels; the domain classifier is trained on
    # them and labels each channel (gan.metrics.classifier). None for every other data set.
    channel_source: DataSplits | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    def fingerprint(self) -> str:
        """A short hash of the training split (SHA-256 of the name, the pixels and the labels, 16 hex digits):
        keys caches of models trained on it, and is the digest of the MLflow dataset input of a study's runs."""
        digest = hashlib.sha256()
        digest.update(self.name.encode())
        images = self.train.images
        if isinstance(images, torch.Tensor):
            digest.update(images.numpy().tobytes())
        else:  # stacked images are their digits and triples: hash those, never the 1.2 GB they expand to
            for array in images.defining_arrays():
                digest.update(array.cpu().numpy().tobytes())
        digest.update(self.train.labels.numpy().tobytes())
        return digest.hexdigest()[:16]
