"""The MLP GAN of Goodfellow et al. 2014: ReLU generator with sigmoid output, maxout discriminator with dropout."""
from __future__ import annotations

import math

import torch
from torch import nn


class Maxout(nn.Module):
    """A linear layer with `pieces` outputs per unit, keeping the largest (Goodfellow et al. 2013)."""

    def __init__(self, in_features: int, out_features: int, pieces: int):
        super().__init__()
        self.pieces = pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)  # N x (out * pieces)
        return out.view(x.shape[0], -1, self.pieces).amax(dim=2)  # N x out


class MlpGenerator(nn.Module):
    """z (N x z_dim) -> images (N x C x H x W) in [0, 1]."""

    def __init__(self, z_dim: int, image_shape: tuple[int, int, int], width: int, depth: int):
        super().__init__()
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = []
        in_features = z_dim
        for _ in range(depth):
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        layers += [nn.Linear(in_features, math.prod(image_shape)), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)

    @torch.no_grad()
    def set_output_bias_from_marginals(self, pixel_means: torch.Tensor, eps: float = 1e-7) -> None:
        """sigmoid(bias) = the mean of each pixel over the training images, clipped to [eps, 1 − eps]
        (pylearn2's init_sigmoid_bias_from_marginals, used for G's output layer by the 2014 code)."""
        mean = pixel_means.reshape(-1).double().clamp(eps, 1 - eps)
        output = self.net[-2]  # the Linear before the sigmoid
        output.bias.copy_(torch.log(mean / (1 - mean)).to(output.bias.dtype))


class MlpDiscriminator(nn.Module):
    """images (N x C x H x W) -> logits (N,); D(x) = sigmoid(logit)."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        width: int,
        depth: int,
        activation: str = "maxout",
        pieces: int = 5,
        dropout: float = 0.5,
        leaky_slope: float = 0.2,
        input_dropout: float = 0.0,
    ):
        super().__init__()
        # dropout on the input pixels (2014 code: keep 0.8), then on the input of every later layer
        layers: list[nn.Module] = [nn.Dropout(input_dropout)] if input_dropout else []
        in_features = math.prod(image_shape)
        for _ in range(depth):
            if activation == "maxout":
                layers.append(Maxout(in_features, width, pieces))
            else:
                layers += [nn.Linear(in_features, width), nn.LeakyReLU(leaky_slope)]
            layers.append(nn.Dropout(dropout))
            in_features = width
        layers.append(nn.Linear(in_features, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).view(-1)
