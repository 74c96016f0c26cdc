"""A small LeNet-style domain classifier: the feature extractor for classifier-FID, mode counting and
the classifier score on data sets without Inception weights (MNIST-like 1x28x28, CIFAR-like 3x32x32).

Trained once per training split with a fixed seed and cached on disk, keyed by the data set's name,
`DataSplits.fingerprint()` and the training recipe. Concurrent trials share the cache safely: a file
lock lets exactly one process train while the others wait and then load; files are written to a
temporary name and renamed into place, so a reader never sees a partial file.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

CACHE_ENV = "GAN_STUDY_CACHE"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "gan-study" / "classifiers"


@dataclass(frozen=True)
class TrainingRecipe:
    # 98.4% test accuracy on mnist5k (3,500 training images), about 20 s on 2 idle CPU cores
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3  # Adam, cosine-annealed to 0 over the epochs
    weight_decay: float = 0.0
    max_shift: int = 3  # random integer translations of up to this many pixels (augmentation)
    seed: int = 0
    feature_dim: int = 128
    widths: tuple[int, int] = (16, 32)  # channels of the two convolutions

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:8]


DEFAULT_RECIPE = TrainingRecipe()


class LeNet(nn.Module):
    """conv5-pool-conv5-pool-fc-fc. Input N x C x H x W in [0, 1]; output logits N x num_classes."""

    def __init__(
        self, image_shape: tuple[int, int, int], num_classes: int, feature_dim: int = 128,
        widths: tuple[int, int] = (16, 32),
    ):
        super().__init__()
        channels, height, width = image_shape
        w1, w2 = widths
        self.conv = nn.Sequential(
            nn.Conv2d(channels, w1, 5, padding=2),  # w1 x H x W
            nn.ReLU(),
            nn.MaxPool2d(2),  # w1 x H/2 x W/2
            nn.Conv2d(w1, w2, 5, padding=2),  # w2 x H/2 x W/2
            nn.ReLU(),
            nn.MaxPool2d(2),  # w2 x H/4 x W/4
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(w2 * (height // 4) * (width // 4), feature_dim), nn.ReLU())
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(feature_dim, num_classes)
        self.image_shape, self.num_classes, self.feature_dim = tuple(image_shape), num_classes, feature_dim
        self.widths = tuple(widths)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate activations N x feature_dim (after ReLU, before dropout)."""
        return self.fc(self.conv(images * 2 - 1))  # centre [0, 1] pixels on 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(images)))


def channel_groups(model: LeNet, images: torch.Tensor) -> int:
    """How many of the model's inputs an image holds along its channels: 3 for Stacked MNIST and a digit LeNet."""
    model_channels, image_channels = model.image_shape[0], images.shape[1]
    if image_channels % model_channels:
        raise ValueError(f"a {model_channels}-channel classifier cannot read {image_channels}-channel images")
    return image_channels // model_channels


def channel_features(model: LeNet) -> Callable[[torch.Tensor], torch.Tensor]:
    """images N x (G·c) x H x W -> N x (G·F): the model's features of each group of its c input channels,
    concatenated in channel order. G = 1 (an image the model was trained on) gives `model.features` itself;
    Stacked MNIST with the digit classifier gives 3 x 128 = 384 features, one block per channel."""

    def features(images: torch.Tensor) -> torch.Tensor:
        groups = channel_groups(model, images)
        if groups == 1:
            return model.features(images)
        n, c = images.shape[0], model.image_shape[0]
        # N x (G·c) x H x W -> (N·G) x c x H x W: image n's group g becomes row n·G + g
        per_group = model.features(images.reshape(n * groups, c, *images.shape[2:]))
        return per_group.reshape(n, groups * per_group.shape[1])

    return features


def channel_probabilities(model: LeNet, features: torch.Tensor) -> torch.Tensor:
    """Class probabilities N x G x K of each channel group from `channel_features` output N x (G·F),
    by the model's head alone (the features are already computed), in float64 on the CPU."""
    weight, bias = model.head.weight.detach().double().cpu(), model.head.bias.detach().double().cpu()  # K x F, K
    blocks = torch.as_tensor(features).double().cpu().reshape(len(features), -1, weight.shape[1])  # N x G x F
    return torch.softmax(blocks @ weight.T + bias, dim=2)


@dataclass
class TrainedClassifier:
    model: LeNet  # in eval mode
    test_accuracy: float  # share of the test split classified correctly, in [0, 1]
    feature_dim: int


def _random_shifts(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by an integer (dy, dx) in [−max_shift, max_shift], filling with zeros."""
    n, _, height, width = images.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator).to(images)
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2], theta[:, 1, 2] = 2 * shifts[:, 1] / width, 2 * shifts[:, 0] / height
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    device = next(model.parameters()).device
    correct = sum(
        int((model(images[i:i + batch_size].to(device)).argmax(1).cpu() == labels[i:i + batch_size]).sum())
        for i in range(0, len(images), batch_size)
    )
    return correct / len(images)


def train_classifier(splits, recipe: TrainingRecipe = DEFAULT_RECIPE, device: str | torch.device = "cpu") -> TrainedClassifier:
    """Adam on the train split with random-shift augmentation; deterministic for a given recipe.seed on CPU."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = LeNet(splits.image_shape, splits.num_classes, recipe.feature_dim, recipe.widths).to(device)
    generator = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs)
    images, labels = splits.train.images, splits.train.labels
    for _ in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), recipe.batch_size):
            idx = order[start:start + recipe.batch_size]
            batch = _random_shifts(images[idx], recipe.max_shift, generator) if recipe.max_shift else images[idx]
            with torch.random.fork_rng(devices=[]):  # dropout masks from the recipe's seed, not the caller's
                torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
                loss = F.cross_entropy(model(batch.to(device)), labels[idx].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    model.eval()
    return TrainedClassifier(model, accuracy(model, splits.test.images, splits.test.labels), recipe.feature_dim)


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, DEFAULT_CACHE_DIR))


def _load(path: Path, device) -> TrainedClassifier:
    saved = torch.load(path, map_location=device, weights_only=True)
    model = LeNet(tuple(saved["image_shape"]), saved["num_classes"], saved["feature_dim"], tuple(saved["widths"]))
    model.to(device)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return TrainedClassifier(model, saved["test_accuracy"], saved["feature_dim"])


def _save_atomically(trained: TrainedClassifier, path: Path) -> None:
    saved = {
        "state_dict": {k: v.cpu() for k, v in trained.model.state_dict().items()},
        "image_shape": list(trained.model.image_shape),
        "num_classes": trained.model.num_classes,
        "feature_dim": trained.feature_dim,
        "widths": list(trained.model.widths),
        "test_accuracy": trained.test_accuracy,
    }
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(saved, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_train_classifier(
    splits, cache_dir: str | Path | None = None, device: str | torch.device = "cpu",
    recipe: TrainingRecipe = DEFAULT_RECIPE,
) -> TrainedClassifier:
    """The classifier for `splits`, from cache_dir (default $GAN_STUDY_CACHE or ~/.cache/gan-study/classifiers)
    or trained now (on `device`) and cached. Safe when several processes call it at once.

    Stacked MNIST gets the classifier of the digits that fill its channels (`splits.channel_source`), which
    labels each channel (`channel_features`, `channel_probabilities`): the mnist5k classifier for stacked_mnist.
    """
    if getattr(splits, "channel_source", None) is not None:
        splits = splits.channel_source
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"lenet-{splits.name}-{splits.fingerprint()}-{recipe.key()}.pt"
    if path.exists():  # complete by construction: written under a temporary name, then renamed
        return _load(path, device)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if path.exists():  # another process trained it while we waited
            return _load(path, device)
        trained = train_classifier(splits, recipe, device)
        _save_atomically(trained, path)
    return _load(path, device)
