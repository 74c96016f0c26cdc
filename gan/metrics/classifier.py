"""A small LeNet-style domain classifier: the feature extractor for classifier-FID, mode counting and
the classifier score on data sets without Inception weights (MNIST-like 1x28x28, CIFAR-like 3x32x32).

Training is deterministic for a seed on one machine but not bit-reproducible across CPUs, so a network is
trained once and then travels as data (`ClassifierWeights`), named by its fingerprint (`weights_fingerprint`):
- mnist5k's ships with the package (lenet-mnist5k.pt beside this module, made by `python -m
  gan.metrics.train_classifier --dataset mnist5k --out ...`); Stacked MNIST of mnist5k reads its channels with it;
- any other data set's is trained once by a study's driver (or that command) and cached on disk, keyed by the data
  set's name, `DataSplits.fingerprint()` and the training recipe; the driver hands the weights to every trial.
Concurrent processes share the cache safely: a file lock lets exactly one process train while the others wait
and then load; files are written to a temporary name and renamed into place, so a reader never sees a partial file.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

CACHE_ENV = "GAN_STUDY_CACHE"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "gan-study" / "classifiers"
# data set -> the weights file beside this module (package data): every machine scores these with one network
SHIPPED_WEIGHTS = {"mnist5k": "lenet-mnist5k.pt"}
FINGERPRINT_HEX_DIGITS = 16


class ClassifierMismatch(ValueError):
    """Weights that do not belong to the data set, or a file whose weights are not the fingerprint it records;
    the message is one line for the user."""


def weights_fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    """The identity of a network's weights: SHA-256 over each tensor's name, dtype, shape and bytes, in sorted
    name order; its first 16 hex digits. A pure function of the values: the same on any device and for any dict
    order, different when one weight changes."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:FINGERPRINT_HEX_DIGITS]


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

    @property
    def fingerprint(self) -> str:
        """`weights_fingerprint` of the model as it is: what a run records as the network that scored it."""
        return weights_fingerprint(self.model.state_dict())


def digit_source(splits):
    """The data set a classifier of `splits` learns: Stacked MNIST's channel digits (`splits.channel_source`),
    whose classifier labels each channel; `splits` itself for every other data set."""
    source = getattr(splits, "channel_source", None)
    return source if source is not None else splits


@dataclass(frozen=True, eq=False)
class ClassifierWeights:
    """A trained classifier as data: what a weights file holds and what a study's driver hands to every trial
    (pickled, about 1 MB for 1 x 28 x 28). Equal, and hashed, by fingerprint."""

    state_dict: dict[str, torch.Tensor]  # float32, on the CPU
    image_shape: tuple[int, int, int]
    num_classes: int
    feature_dim: int
    widths: tuple[int, int]
    test_accuracy: float  # on the test split of `dataset`, in [0, 1]
    dataset: str  # the data set whose training split it learned
    data_fingerprint: str  # DataSplits.fingerprint() of that training split
    recipe: dict[str, Any]  # the TrainingRecipe's fields

    @functools.cached_property
    def fingerprint(self) -> str:
        return weights_fingerprint(self.state_dict)

    def __eq__(self, other) -> bool:
        return isinstance(other, ClassifierWeights) and other.fingerprint == self.fingerprint

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    @classmethod
    def of(cls, trained: TrainedClassifier, splits, recipe: TrainingRecipe) -> ClassifierWeights:
        """The weights of `trained`, trained on `splits` (Stacked MNIST: on its channel digits) by `recipe`."""
        source = digit_source(splits)
        model = trained.model
        return cls({k: v.detach().cpu().float() for k, v in model.state_dict().items()}, tuple(model.image_shape),
                   model.num_classes, trained.feature_dim, tuple(model.widths), float(trained.test_accuracy),
                   source.name, source.fingerprint(), asdict(recipe))

    def build(self, device: str | torch.device = "cpu") -> TrainedClassifier:
        """The LeNet with these weights on `device`, in eval mode: no training, no file."""
        model = LeNet(self.image_shape, self.num_classes, self.feature_dim, self.widths)
        model.load_state_dict(self.state_dict)
        model.to(device).eval()
        return TrainedClassifier(model, self.test_accuracy, self.feature_dim)

    def check_data(self, splits) -> None:
        """Refuse to score `splits` (Stacked MNIST: its channel digits) with a network trained on other data."""
        source = digit_source(splits)
        if (self.dataset, self.data_fingerprint) != (source.name, source.fingerprint()):
            raise ClassifierMismatch(
                f"classifier {self.fingerprint} was trained on {self.dataset} "
                f"(training split {self.data_fingerprint}), "
                f"not on this {source.name} (training split {source.fingerprint()}); train one for it with "
                f"python -m gan.metrics.train_classifier --dataset {source.name}")

    def save(self, path: str | Path) -> None:
        """Write the file atomically (a temporary name renamed into place); torch.load(weights_only=True) reads it."""
        saved = {**asdict(self), "image_shape": list(self.image_shape), "widths": list(self.widths),
                 "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in self.recipe.items()},
                 "fingerprint": self.fingerprint}
        path = Path(path)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(saved, file)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache's file from other users
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> ClassifierWeights:
        """The weights in `path`; refuses a file whose weights are not the fingerprint it records."""
        try:
            saved = torch.load(Path(path), map_location="cpu", weights_only=True)
            weights = cls(saved["state_dict"], tuple(saved["image_shape"]), saved["num_classes"],
                          saved["feature_dim"], tuple(saved["widths"]), saved["test_accuracy"], saved["dataset"],
                          saved["data_fingerprint"], saved["recipe"])
        except Exception as error:  # a truncated or foreign file: pickle, zip, torch and key errors alike
            raise ClassifierMismatch(f"cannot read classifier weights from {path}: "
                                     f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
        if weights.fingerprint != saved["fingerprint"]:
            raise ClassifierMismatch(f"classifier weights in {path} are {weights.fingerprint}, but the file says "
                                     f"{saved['fingerprint']}: the file was changed or damaged")
        return weights


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


def shipped_weights_path(dataset: str) -> Path | None:
    """The weights file shipped with the package for `dataset`, or None."""
    name = SHIPPED_WEIGHTS.get(dataset)
    return Path(__file__).with_name(name) if name is not None else None


def cache_path(splits, recipe: TrainingRecipe = DEFAULT_RECIPE, cache_dir: str | Path | None = None) -> Path:
    """Where the cache keeps the classifier of `splits` (Stacked MNIST: of its channel digits) trained by `recipe`."""
    source = digit_source(splits)
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return directory / f"lenet-{source.name}-{source.fingerprint()}-{recipe.key()}.weights.pt"


def load_or_train_weights(
    splits, cache_dir: str | Path | None = None, device: str | torch.device = "cpu",
    recipe: TrainingRecipe = DEFAULT_RECIPE,
) -> ClassifierWeights:
    """The classifier weights for `splits`: the shipped file for mnist5k (and Stacked MNIST of it) under the
    default recipe, checked against the data (ClassifierMismatch otherwise); else from cache_dir (default
    $GAN_STUDY_CACHE or ~/.cache/gan-study/classifiers) or trained now (on `device`) and cached. Safe when
    several processes call it at once.

    Stacked MNIST gets the classifier of the digits that fill its channels (`splits.channel_source`), which
    labels each channel (`channel_features`, `channel_probabilities`): the mnist5k classifier for stacked_mnist.
    """
    source = digit_source(splits)
    shipped = shipped_weights_path(source.name)
    if shipped is not None and recipe == DEFAULT_RECIPE:
        weights = ClassifierWeights.load(shipped)
        weights.check_data(source)
        return weights
    path = cache_path(source, recipe, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():  # complete by construction: written under a temporary name, then renamed
        return ClassifierWeights.load(path)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if path.exists():  # another process trained it while we waited
            return ClassifierWeights.load(path)
        ClassifierWeights.of(train_classifier(source, recipe, device), source, recipe).save(path)
    return ClassifierWeights.load(path)


def load_or_train_classifier(
    splits, cache_dir: str | Path | None = None, device: str | torch.device = "cpu",
    recipe: TrainingRecipe = DEFAULT_RECIPE,
) -> TrainedClassifier:
    """`load_or_train_weights`, built on `device`."""
    return load_or_train_weights(splits, cache_dir, device, recipe).build(device)
