"""Stacked MNIST (Metz et al. 2017; VEEGAN, PacGAN): three digits drawn independently into the three channels
of one image, so the data have 10³ = 1,000 modes and mode collapse can be counted.

A stacked split holds its source split's digits (D x H x W) and one index triple per image (N x 3); images
are built when indexed, never all at once. Stored, the literature's 128,000 training images cost 1.2 GB as
float32 (128,000 x 3 x 28 x 28 x 4 bytes); as triples they cost 3 MB plus the digits they index. The
validation and test splits are small enough to hold as tensors (5,000 and 10,000 images: 47 MB and 94 MB),
so every evaluation path reads them like any other split.

A stacked image's label is its mode, 100·c0 + 10·c1 + c2 from the labels c of its three digits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gan.splits import DataSplits, Split

CHANNELS = 3
MODES = 10**CHANNELS
# digit label of channel c -> its place in the mode number: 100·c0 + 10·c1 + c2
_PLACE_VALUES = torch.tensor([10 ** (CHANNELS - 1 - c) for c in range(CHANNELS)])
# which of the source data sets' splits fill which stacked split (each split keeps its own digits)
_SPLIT_NAMES = ("train", "validation", "test")


OPTION_KEYS = ("train_size", "validation_size", "test_size", "seed")  # a search space's dataset_options


@dataclass(frozen=True)
class StackedOptions:
    """The sizes of the stacked splits and the seed that draws their digit triples.

    train_size: VEEGAN's and PacGAN's Table 2 use 128,000 training images. Their Table 3 (the capacity
    experiment) draws fresh triples on the fly instead; with 3,500 training digits, 128,000 triples are
    already almost all distinct, so a fixed set of that size is the same in practice.
    """

    train_size: int = 128_000
    validation_size: int = 5_000
    test_size: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("train_size", "validation_size", "test_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    def size(self, split: str) -> int:
        return getattr(self, f"{split}_size")


class StackedImages:
    """N images (CHANNELS x H x W) whose channel c is `digits[triples[n, c]]`, built when indexed.

    Reads like an image tensor where the trainer and the evaluation read one: `len`, `shape`, `dtype`,
    `device`, indexing by an int, a slice or an index tensor (returns a real tensor: B x 3 x H x W),
    `.to(device, dtype)`, and `images * a + b` with numbers (an affine map of pixel values commutes with
    stacking, so it is applied to the digits: the trainer's [0, 1] -> [-1, 1] costs nothing).
    """

    def __init__(self, digits: torch.Tensor, triples: torch.Tensor):
        if digits.dim() != 3 or triples.dim() != 2 or triples.shape[1] != CHANNELS:
            raise ValueError(f"need digits D x H x W and triples N x {CHANNELS}, got {tuple(digits.shape)} and "
                             f"{tuple(triples.shape)}")
        self.digits = digits  # D x H x W
        self.triples = triples.to(device=digits.device, dtype=torch.int64)  # N x 3 indices into digits

    # --- what a tensor of images answers ----------------------------------------------------------------
    def __len__(self) -> int:
        return self.triples.shape[0]

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), CHANNELS, *self.digits.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.digits.dtype

    @property
    def device(self) -> torch.device:
        return self.digits.device

    def __getitem__(self, index) -> torch.Tensor:
        """digits[triples[index]]: B x 3 x H x W for a slice or index tensor, 3 x H x W for an int."""
        if isinstance(index, torch.Tensor):
            index = index.to(self.triples.device)
        return self.digits[self.triples[index]]

    def to(self, device=None, dtype=None) -> "StackedImages":
        return StackedImages(self.digits.to(device=device, dtype=dtype), self.triples.to(device))

    def defining_arrays(self) -> tuple[torch.Tensor, torch.Tensor]:
        """What the images are made of, (digits, triples): what a fingerprint of the split hashes."""
        return self.digits, self.triples

    def float(self) -> "StackedImages":
        return self.to(dtype=torch.float32)

    def mean(self, dim: int = 0) -> torch.Tensor:
        """The mean image (3 x H x W) without building the images: channel c averages the digits it uses,
        each weighted by how often triples[:, c] picks it (an MLP G's output bias from the data's marginals)."""
        if dim != 0:
            raise ValueError("StackedImages.mean averages over images only (dim=0)")
        counts = torch.stack([torch.bincount(self.triples[:, c], minlength=len(self.digits))
                              for c in range(CHANNELS)]).to(self.digits.dtype)  # 3 x D
        return torch.einsum("cd,dhw->chw", counts, self.digits) / len(self)

    def materialize(self) -> torch.Tensor:
        """All N images as one tensor (N x 3 x H x W): only for splits small enough to hold."""
        return self[:]

    # --- affine maps of pixel values, applied to the digits ----------------------------------------------
    def _mapped(self, digits: torch.Tensor) -> "StackedImages":
        return StackedImages(digits, self.triples)

    def __mul__(self, factor: float) -> "StackedImages":
        return self._mapped(self.digits * factor)

    __rmul__ = __mul__

    def __add__(self, shift: float) -> "StackedImages":
        return self._mapped(self.digits + shift)

    __radd__ = __add__

    def __sub__(self, shift: float) -> "StackedImages":
        return self._mapped(self.digits - shift)

    def __repr__(self) -> str:
        return f"StackedImages({len(self)} x {CHANNELS} x {self.digits.shape[1]} x {self.digits.shape[2]})"


def mode_labels(digit_labels: torch.Tensor) -> torch.Tensor:
    """N x 3 digit labels (0-9) -> N modes 100·c0 + 10·c1 + c2 (0-999)."""
    return (digit_labels.long() * _PLACE_VALUES.to(digit_labels.device)).sum(dim=1)


def draw_triples(num_digits: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """`size` triples of digit indices, each index uniform over `num_digits`, drawn independently."""
    return torch.from_numpy(rng.integers(0, num_digits, size=(size, CHANNELS)))


def stacked_split(source: Split, triples: torch.Tensor, materialize: bool) -> Split:
    """The stacked split whose image n stacks the source digits triples[n]; labels are modes."""
    images = StackedImages(source.images[:, 0], triples)
    labels = mode_labels(source.labels[triples])
    return Split(images.materialize() if materialize else images, labels)


def stack(source: DataSplits, name: str, options: StackedOptions = StackedOptions()) -> DataSplits:
    """Stacked MNIST from a 1-channel digit data set, deterministically from `options.seed`.

    Each stacked split draws its digits from the source's split of the same name only, with replacement
    (3,500 mnist5k training digits give 128,000 triples). Each split has its own random stream, so its
    triples do not change when another split's size does. Train stays lazy; validation and test are held.
    """
    if source.image_shape[0] != 1:
        raise ValueError(f"Stacked MNIST stacks 1-channel digits, got {source.image_shape[0]} channels")
    splits = {}
    for index, split_name in enumerate(_SPLIT_NAMES):
        rng = np.random.default_rng([options.seed, index])
        digits = getattr(source, split_name)
        triples = draw_triples(len(digits), options.size(split_name), rng)
        splits[split_name] = stacked_split(digits, triples, materialize=split_name != "train")
    return DataSplits(name, splits["train"], splits["validation"], splits["test"], num_classes=MODES,
                      channel_source=source)
