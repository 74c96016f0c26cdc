"""FID comparable with published numbers: pool3 features of the FID Inception-v3, as pytorch-fid computes them.

The network is pytorch-fid's own definition (`pytorch_fid.inception.InceptionV3` with `use_fid_inception=True`:
torchvision's Inception-v3 with the FIDInceptionA/C/E blocks that reproduce the 2015 TensorFlow graph), its
weights read from a file the user supplies, `pt_inception-2015-12-05-6726825d.pth` (pytorch-fid's release of
the TensorFlow weights; this project never downloads them). The path comes from the evaluation's
`inception_weights` key or the environment variable GAN_STUDY_INCEPTION_WEIGHTS.

Images go through what pytorch-fid's command line does to PNG files: 8-bit quantisation (round(255·x)/255),
grey images repeated into three channels (PIL's convert("RGB")), then the network's own bilinear resize to
299 x 299 and scaling to [−1, 1]. Features: N x 2048, the final average pool. Only the final evaluation uses
it (`fid_inception`), never mixed with the classifier FID.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

INCEPTION_WEIGHTS_ENV = "GAN_STUDY_INCEPTION_WEIGHTS"
WEIGHTS_FILE_NAME = "pt_inception-2015-12-05-6726825d.pth"
FEATURE_DIM = 2048
DEFAULT_BATCH_SIZE = 50  # pytorch-fid's default


class InceptionWeightsUnavailable(ValueError):
    """The Inception weights file is not given or cannot be read; the message is one line for the user."""


def weights_path(given: str | Path | None = None) -> Path:
    """The weights file: `given`, else $GAN_STUDY_INCEPTION_WEIGHTS; it must exist."""
    raw = given if given is not None else os.environ.get(INCEPTION_WEIGHTS_ENV)
    if not raw:
        raise InceptionWeightsUnavailable(
            f"Inception FID needs pytorch-fid's {WEIGHTS_FILE_NAME}: set evaluation.inception_weights or "
            f"${INCEPTION_WEIGHTS_ENV} to its path")
    path = Path(raw).expanduser().resolve()
    if not path.is_file():
        raise InceptionWeightsUnavailable(f"Inception weights file {path} not found (expected pytorch-fid's "
                                          f"{WEIGHTS_FILE_NAME})")
    return path


def fid_inception_network(state_dict: dict) -> nn.Module:
    """pytorch-fid's InceptionV3 returning the 2048-d pool3 block, with `state_dict` as its FID weights.

    pytorch-fid reads its weights through `load_state_dict_from_url`; it is pointed at `state_dict` while the
    network is built, so the definition, the block assembly and the forward pass are pytorch-fid's own.
    """
    from pytorch_fid import inception

    with mock.patch.object(inception, "load_state_dict_from_url", lambda *args, **kwargs: state_dict):
        network = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]],
                                        resize_input=True, normalize_input=True, use_fid_inception=True)
    return network.eval()


def load_weights(path: str | Path) -> dict:
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: pickle, zip and torch errors alike
        raise InceptionWeightsUnavailable(f"cannot read Inception weights from {path}: "
                                          f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None


def as_inception_input(images: torch.Tensor) -> torch.Tensor:
    """N x C x H x W in [0, 1] -> N x 3 x H x W on pytorch-fid's 8-bit grid; C = 1 is repeated, C = 3 kept."""
    if images.shape[1] not in (1, 3):
        raise ValueError(f"Inception reads grey or RGB images, got {images.shape[1]} channels")
    quantised = torch.round(images.clamp(0, 1) * 255) / 255
    return quantised.expand(-1, 3, -1, -1) if quantised.shape[1] == 1 else quantised


class InceptionFeatures:
    """A feature extractor for FID: images N x C x H x W in [0, 1] -> float64 N x 2048 (numpy).

    Caches the features of reference image tensors it has seen (by identity), so the test split of a process
    that runs many final evaluations passes through the network once.
    """

    def __init__(self, network: nn.Module, device: str | torch.device = "cpu", batch_size: int = DEFAULT_BATCH_SIZE):
        self.device = torch.device(device)
        self.network = network.to(self.device).eval()
        self.batch_size = batch_size
        # id(tensor) -> (the tensor, its features): holding the tensor keeps its id from being reused
        self._reference_cache: dict[int, tuple[torch.Tensor, np.ndarray]] = {}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        chunks = []
        for start in range(0, len(images), self.batch_size):
            batch = as_inception_input(images[start:start + self.batch_size].to(self.device, torch.float32))
            chunks.append(self.network(batch)[0].reshape(len(batch), FEATURE_DIM).double().cpu())
        return torch.cat(chunks).numpy()

    def reference(self, images: torch.Tensor) -> np.ndarray:
        """Features of a reference split, computed once per image tensor."""
        cached = self._reference_cache.get(id(images))
        if cached is None or cached[0] is not images:
            cached = self._reference_cache[id(images)] = (images, self(images))
        return cached[1]


@functools.lru_cache(maxsize=2)
def load_inception_features(path: str, device: str = "cpu") -> InceptionFeatures:
    """The extractor for the weights at `path` on `device`, built once per process (a trial worker reuses it)."""
    return InceptionFeatures(fid_inception_network(load_weights(weights_path(path))), device)
