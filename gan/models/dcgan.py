"""DCGAN (Radford et al. 2015) at 28 x 28 (MNIST-like) and 32 x 32 (CIFAR-10).

Strided convolutions instead of pooling, no fully connected hidden layers, batch-norm
switchable in G and in D but never on G's output or D's input layer, ReLU in G with a
tanh output (images in [-1, 1]), LeakyReLU in D, weights ~ N(0, 0.02).
Depth adds stride-1 3x3 conv layers at the finest resolution (the original code's n_extra_layers).
"""
from __future__ import annotations

import torch
from torch import nn

# First feature-map size of G / last of D, and the kernel/stride/padding of the layer between
# the two coarsest resolutions: 3 -> 7 for 28 x 28, 4 -> 8 for 32 x 32.
_GEOMETRY = {28: (3, (3, 2, 0)), 32: (4, (4, 2, 1))}


def _check_size(image_shape: tuple[int, int, int]) -> int:
    size = image_shape[1]
    if image_shape[1] != image_shape[2] or size not in _GEOMETRY:
        raise ValueError(f"dcgan supports 28x28 and 32x32 images, got {image_shape[1]}x{image_shape[2]}")
    return size


def _norm(channels: int, enabled: bool) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels)] if enabled else []


def init_dcgan_weights(module: nn.Module) -> None:
    """N(0, 0.02) for convolutions, N(1, 0.02) scale and zero shift for batch-norm (the DCGAN recipe)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DcganGenerator(nn.Module):
    """z (N x z_dim) -> images (N x C x H x W) in [-1, 1]."""

    def __init__(self, z_dim: int, image_shape: tuple[int, int, int], ngf: int, extra_layers: int = 0,
                 batchnorm: bool = True):
        super().__init__()
        channels, size = image_shape[0], _check_size(image_shape)
        start, (kernel, stride, pad) = _GEOMETRY[size]
        bias = not batchnorm  # batch-norm's shift makes a conv bias redundant
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, ngf * 4, start, 1, 0, bias=bias),
            *_norm(ngf * 4, batchnorm), nn.ReLU(True),
            # state size. (ngf*4) x 3 x 3 (28) | 4 x 4 (32)
            nn.ConvTranspose2d(ngf * 4, ngf * 2, kernel, stride, pad, bias=bias),
            *_norm(ngf * 2, batchnorm), nn.ReLU(True),
            # state size. (ngf*2) x 7 x 7 | 8 x 8
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=bias),
            *_norm(ngf, batchnorm), nn.ReLU(True),
            # state size. (ngf) x 14 x 14 | 16 x 16
        ]
        for _ in range(extra_layers):
            layers += [nn.Conv2d(ngf, ngf, 3, 1, 1, bias=bias), *_norm(ngf, batchnorm), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ngf, channels, 4, 2, 1), nn.Tanh()]
        # state size. (nc) x 28 x 28 | 32 x 32 — no batch-norm on the output
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DcganDiscriminator(nn.Module):
    """images (N x C x H x W) in [-1, 1] -> logits (N,)."""

    def __init__(self, image_shape: tuple[int, int, int], ndf: int, extra_layers: int = 0,
                 batchnorm: bool = True, leaky_slope: float = 0.2):
        super().__init__()
        channels, size = image_shape[0], _check_size(image_shape)
        start, (kernel, stride, pad) = _GEOMETRY[size]
        bias = not batchnorm
        layers: list[nn.Module] = [
            # no batch-norm on the input layer
            nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(leaky_slope, True),
            # state size. (ndf) x 14 x 14 | 16 x 16
        ]
        for _ in range(extra_layers):
            layers += [nn.Conv2d(ndf, ndf, 3, 1, 1, bias=bias), *_norm(ndf, batchnorm), nn.LeakyReLU(leaky_slope, True)]
        layers += [
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=bias), *_norm(ndf * 2, batchnorm), nn.LeakyReLU(leaky_slope, True),
            # state size. (ndf*2) x 7 x 7 | 8 x 8
            nn.Conv2d(ndf * 2, ndf * 4, kernel, stride, pad, bias=bias), *_norm(ndf * 4, batchnorm),
            nn.LeakyReLU(leaky_slope, True),
            # state size. (ndf*4) x 3 x 3 | 4 x 4
            nn.Conv2d(ndf * 4, 1, start, 1, 0),
            # state size. 1 x 1 x 1: the logit
        ]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)
