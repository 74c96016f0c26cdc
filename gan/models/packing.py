"""PacGAN's packing (Lin et al. 2018): the discriminator judges m samples at once, concatenated along channels.

A packed sample of m images C x H x W is one (m·C) x H x W input, so D's first layer takes m·C channels
(DCGAN) or m·C·H·W inputs (MLP) and nothing else changes. As in the PacGAN code, a minibatch holds
`batch_size` packed samples, i.e. m·batch_size images of each kind, all drawn independently; m = 1 is the
ordinary discriminator. Packing lets D see the diversity of a set of samples: m copies of one mode are easy
to tell from m independent real images, which penalises a collapsed generator.
"""
from __future__ import annotations

import torch


def packed_shape(image_shape: tuple[int, int, int], m: int) -> tuple[int, int, int]:
    """The shape of one packed sample: (m·C, H, W)."""
    channels, height, width = image_shape
    return (m * channels, height, width)


def pack(images: torch.Tensor, m: int) -> torch.Tensor:
    """(B·m) x C x H x W -> B x (m·C) x H x W: images j·m .. j·m + m − 1 become packed sample j, in channel order."""
    if len(images) % m:
        raise ValueError(f"cannot pack {len(images)} images into groups of {m}")
    return images if m == 1 else images.reshape(len(images) // m, m * images.shape[1], *images.shape[2:])
