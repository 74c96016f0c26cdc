"""gan.memory: the training memory of a configuration, estimated on the meta device, against closed forms."""
import math
import time

import pytest
import torch

from gan.config import GanConfig
from gan.memory import ConfigTooLarge, available_memory, check_fits, estimate_training_memory, human_bytes
from gan.models import build_gan

MNIST = (1, 28, 28)


def mlp_parameters(z: int, w: int, pieces: int, pixels: int = 784) -> int:
    """G: z→w→w→784 linear layers; D (maxout, depth 2): 784→w·pieces→(max)→w·pieces→(max)→1."""
    g = (z * w + w) + (w * w + w) + (w * pixels + pixels)
    d = (pixels * w * pieces + w * pieces) + (w * w * pieces + w * pieces) + (w + 1)
    return g + d


def mlp_activation_values(batch: int, w: int, pieces: int, pixels: int = 784) -> int:
    """Every layer's output, G once and D twice (real and fake minibatches)."""
    g = 2 * w + 2 * w + 2 * pixels  # (Linear, ReLU) x 2, then Linear and Sigmoid
    d = 2 * (w * pieces + w + w) + 1  # per maxout layer: its linear's w·pieces outputs, their max, dropout; the logit
    return batch * (g + 2 * d)


def test_mlp_estimate_matches_the_closed_form():
    config = GanConfig(z_dim=100, g_width=240, d_width=240, maxout_pieces=5, batch_size=100)
    estimate = estimate_training_memory(config, MNIST, train_size=5000)
    p = mlp_parameters(100, 240, 5)
    assert estimate.parameters == p
    # Adam: weights, gradients and two moments, 4 bytes each
    assert (estimate.weights, estimate.gradients, estimate.optimizer_state) == (4 * p, 4 * p, 8 * p)
    assert estimate.activations == 4 * mlp_activation_values(100, 240, 5)
    assert estimate.training_data == 4 * 5000 * 784
    sgd = estimate_training_memory(GanConfig(z_dim=100, g_width=240, d_width=240, optimizer="sgd"), MNIST, 5000)
    assert sgd.optimizer_state == 4 * p  # one momentum buffer


def test_packing_doubles_gs_minibatch_and_ds_input_width():
    # PacGAN m = 2: G makes 2 x 100 images, D reads 100 packed samples of 2 x 784 pixels (same layer widths)
    packed = estimate_training_memory(GanConfig(z_dim=100, g_width=240, d_width=240, batch_size=100, pack=2), MNIST, 1)
    assert packed.parameters == mlp_parameters(100, 240, 5) + 784 * 240 * 5  # D's first layer: twice the inputs
    g = 2 * 240 + 2 * 240 + 2 * 784
    d = 2 * (240 * 5 + 240 + 240) + 1
    assert packed.activations == 4 * (200 * g + 2 * 100 * d)


@pytest.mark.parametrize("config", [
    GanConfig(arch="dcgan", g_width=32, d_width=8, g_depth=1, d_depth=2),
    GanConfig(arch="dcgan", g_width=16, d_width=16, g_batchnorm=False, d_batchnorm=False),
    GanConfig(arch="mlp", d_activation="leakyrelu", d_input_dropout=0.2, g_depth=3),
])
def test_parameter_count_equals_the_networks_built_for_real(config):
    generator, discriminator = build_gan(config, MNIST)
    real = sum(p.numel() for net in (generator, discriminator) for p in net.parameters())
    assert estimate_training_memory(config, MNIST, 1).parameters == real


def test_dcgan_activations_match_its_layer_shapes():
    # DCGAN G at 28 x 28, ngf = 8, batch-norm: 32x3x3 (conv, bn, relu), 16x7x7 (x3), 8x14x14 (x3), 1x28x28 (conv, tanh)
    config = GanConfig(arch="dcgan", g_width=8, d_width=8, g_depth=0, d_depth=0, batch_size=10)
    g = 3 * 32 * 9 + 3 * 16 * 49 + 3 * 8 * 196 + 2 * 784
    # D, ndf = 8: 8x14x14 (conv, lrelu), 16x7x7 (conv, bn, lrelu), 32x3x3 (conv, bn, lrelu), 1 (conv)
    d = 2 * 8 * 196 + 3 * 16 * 49 + 3 * 32 * 9 + 1
    assert estimate_training_memory(config, MNIST, 1).activations == 4 * 10 * (g + 2 * d)


def test_a_dcgan_of_width_100000_is_refused_at_once_with_its_estimate():
    config = GanConfig(arch="dcgan", g_width=100_000, d_width=100_000)
    started = time.perf_counter()
    with pytest.raises(ConfigTooLarge) as info:
        check_fits(config, MNIST, 5000, available=64 * 10 ** 9)
    assert time.perf_counter() - started < 1.0
    # the largest layer of G alone: ConvTranspose2d(4 * ngf, 2 * ngf, 3) holds 4e5 * 2e5 * 9 weights = 2.9 TB in float32
    assert 4 * 400_000 * 200_000 * 9 == pytest.approx(2.88e12)
    message = str(info.value)
    assert "needs at least" in message and "TB" in message and "64.0 GB is available" in message and "\n" not in message


def test_a_configuration_that_fits_returns_its_estimate_and_none_means_unknown():
    config = GanConfig(g_width=64, d_width=64)
    estimate = check_fits(config, MNIST, 5000, available=10 ** 12)
    assert estimate.total == estimate_training_memory(config, MNIST, 5000).total
    assert check_fits(GanConfig(arch="dcgan", g_width=100_000, d_width=100_000), MNIST, 5000, None).total > 10 ** 12
    # refused once the activations count, although the parameters alone would fit
    with pytest.raises(ConfigTooLarge, match="activations"):
        check_fits(config, MNIST, 0, available=estimate.total - estimate.training_data - 1)


def test_available_memory_is_positive_and_below_the_machines_total():
    total = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    assert 0 < available_memory(torch.device("cpu")) <= total


def test_human_bytes_uses_decimal_units():
    assert [human_bytes(n) for n in (999, 1000, 2.9e12, 1.5e6)] == ["999 B", "1.0 kB", "2.9 TB", "1.5 MB"]
    assert math.isclose(float(human_bytes(39.04e12).split()[0]), 39.0)
