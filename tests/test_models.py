import pytest
import torch
from torch import nn

from gan.config import GanConfig
from gan.models import build_gan, parameter_count
from gan.models.dcgan import DcganDiscriminator, DcganGenerator


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("arch,g_width,d_width,g_depth,d_depth", [
    ("mlp", 32, 256, 1, 1), ("mlp", 256, 32, 3, 2), ("dcgan", 8, 64, 0, 0), ("dcgan", 64, 8, 1, 2),
])
def test_generator_and_discriminator_shapes_at_each_capacity(image_shape, arch, g_width, d_width, g_depth, d_depth):
    config = GanConfig(arch=arch, z_dim=16, g_width=g_width, d_width=d_width, g_depth=g_depth, d_depth=d_depth)
    generator, discriminator = build_gan(config, image_shape)
    images = generator(torch.randn(7, 16))
    assert images.shape == (7, *image_shape)
    low, high = (-1, 1) if arch == "dcgan" else (0, 1)
    assert low <= images.min() and images.max() <= high
    assert discriminator(images).shape == (7,)


def test_capacity_of_g_and_d_is_set_independently():
    small_g, _ = build_gan(GanConfig(g_width=32, d_width=256), (1, 28, 28))
    big_g, _ = build_gan(GanConfig(g_width=256, d_width=256), (1, 28, 28))
    _, small_d = build_gan(GanConfig(g_width=256, d_width=32), (1, 28, 28))
    _, big_d = build_gan(GanConfig(g_width=256, d_width=256), (1, 28, 28))
    assert parameter_count(big_g) > 4 * parameter_count(small_g)
    assert parameter_count(big_d) > 4 * parameter_count(small_d)
    deep_g, deep_d = build_gan(GanConfig(g_depth=4, d_depth=4), (1, 28, 28))
    assert sum(isinstance(m, nn.Linear) for m in deep_g.modules()) == 5  # 4 hidden + output


def test_mlp_discriminator_uses_maxout_and_dropout_or_leakyrelu():
    _, maxout_d = build_gan(GanConfig(d_activation="maxout", maxout_pieces=5, d_width=40), (1, 28, 28))
    first = maxout_d.net[0]
    assert type(first).__name__ == "Maxout" and first.linear.out_features == 200
    assert any(isinstance(m, nn.Dropout) for m in maxout_d.modules())
    _, leaky_d = build_gan(GanConfig(d_activation="leakyrelu"), (1, 28, 28))
    assert any(isinstance(m, nn.LeakyReLU) for m in leaky_d.modules())


def _conv_then_next(net: nn.Sequential):
    layers = list(net)
    convs = [i for i, m in enumerate(layers) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    return layers, convs


@pytest.mark.parametrize("size", [28, 32])
def test_dcgan_batchnorm_never_on_g_output_or_d_input_and_switchable(size):
    g = DcganGenerator(16, (1, size, size), ngf=8, extra_layers=1, batchnorm=True)
    layers, convs = _conv_then_next(g.net)
    assert isinstance(layers[convs[-1] + 1], nn.Tanh)  # output conv: straight into tanh
    assert all(isinstance(layers[i + 1], nn.BatchNorm2d) for i in convs[:-1])
    d = DcganDiscriminator((1, size, size), ndf=8, extra_layers=1, batchnorm=True, leaky_slope=0.1)
    layers, convs = _conv_then_next(d.net)
    assert isinstance(layers[convs[0] + 1], nn.LeakyReLU) and layers[convs[0] + 1].negative_slope == 0.1
    assert all(isinstance(layers[i + 1], nn.BatchNorm2d) for i in convs[1:-1])
    for module in (DcganGenerator(16, (1, size, size), 8, batchnorm=False), DcganDiscriminator((1, size, size), 8, batchnorm=False)):
        assert not any(isinstance(m, nn.BatchNorm2d) for m in module.modules())


def test_dcgan_weights_follow_the_normal_0_002_init():
    torch.manual_seed(0)
    g = DcganGenerator(100, (3, 32, 32), ngf=64)
    weights = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(weights.mean().item()) < 1e-3 and abs(weights.std().item() - 0.02) < 1e-3


def test_dcgan_rejects_unsupported_image_sizes():
    with pytest.raises(ValueError, match="28x28 and 32x32"):
        DcganGenerator(16, (1, 64, 64), ngf=8)
