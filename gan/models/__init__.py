"""Generator / discriminator pairs built from a GanConfig; G's and D's capacity are independent."""
from __future__ import annotations

import torch
from torch import nn

from gan.config import GanConfig
from gan.models.dcgan import DcganDiscriminator, DcganGenerator
from gan.models.mlp import MlpDiscriminator, MlpGenerator
from gan.models.packing import pack, packed_shape


def build_gan(config: GanConfig, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    """G makes images of `image_shape`; D reads packs of `config.pack` of them (m·C channels)."""
    d_shape = packed_shape(image_shape, config.pack)
    if config.arch == "mlp":
        generator = MlpGenerator(config.z_dim, image_shape, config.g_width, config.g_depth)
        discriminator = MlpDiscriminator(d_shape, config.d_width, config.d_depth, config.d_activation,
                                         config.maxout_pieces, config.d_dropout, config.leaky_slope,
                                         config.d_input_dropout)
    else:
        generator = DcganGenerator(config.z_dim, image_shape, config.g_width, config.g_depth, config.g_batchnorm)
        discriminator = DcganDiscriminator(d_shape, config.d_width, config.d_depth, config.d_batchnorm,
                                           config.leaky_slope)
    for network, init_range in ((generator, config.g_init_range), (discriminator, config.d_init_range)):
        if init_range > 0:
            init_uniform(network, init_range)
    # after initialisation: the parametrisation divides the initialised weight by its largest singular value
    for network, enabled in ((generator, config.g_spectral_norm), (discriminator, config.d_spectral_norm)):
        if enabled:
            apply_spectral_norm(network)
    return generator, discriminator


WEIGHT_LAYERS = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def apply_spectral_norm(network: nn.Module) -> None:
    """Spectral normalisation (Miyato et al. 2018) of every linear and convolution weight of `network`:
    W / σ(W), σ estimated by one power iteration per forward pass in training mode (PyTorch's parametrisation;
    a transposed convolution's weight is read with its output channels as rows, dim 1)."""
    from torch.nn.utils.parametrizations import spectral_norm

    for module in list(network.modules()):
        if isinstance(module, WEIGHT_LAYERS):
            spectral_norm(module, dim=1 if isinstance(module, nn.ConvTranspose2d) else 0)


@torch.no_grad()
def init_uniform(network: nn.Module, init_range: float) -> None:
    """Every linear and convolution weight from U(−r, r), every such bias 0 (pylearn2's `irange`).
    Batch-norm scales and shifts keep their own initialisation."""
    for module in network.modules():
        if isinstance(module, WEIGHT_LAYERS):
            nn.init.uniform_(module.weight, -init_range, init_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def generator_outputs_tanh(arch: str) -> bool:
    """DCGAN's G ends in tanh ([-1, 1]); the MLP G in a sigmoid ([0, 1])."""
    return arch == "dcgan"


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["build_gan", "init_uniform", "apply_spectral_norm", "generator_outputs_tanh", "parameter_count", "MlpGenerator", "MlpDiscriminator",
           "DcganGenerator", "DcganDiscriminator", "pack", "packed_shape"]
