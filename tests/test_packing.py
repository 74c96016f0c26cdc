"""PacGAN packing: D judges m samples concatenated along channels, in training and on held-out data."""
import pytest
import torch
from torch import nn

from gan.config import ConfigError, GanConfig
from gan.models import build_gan, pack, packed_shape
from gan.trainer import GanTrainer


def test_pack_concatenates_consecutive_images_along_channels():
    images = torch.arange(6 * 2 * 2 * 2, dtype=torch.float32).reshape(6, 2, 2, 2)
    packed = pack(images, 3)
    assert packed.shape == (2, 6, 2, 2) and packed_shape((2, 2, 2), 3) == (6, 2, 2)
    for j in range(2):
        assert torch.equal(packed[j], torch.cat([images[3 * j + i] for i in range(3)], dim=0))
    assert pack(images, 1) is images
    with pytest.raises(ValueError, match="groups of 4"):
        pack(images, 4)


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_discriminator_reads_m_times_the_channels_and_generator_is_unchanged(arch):
    config = GanConfig(arch=arch, g_width=8, d_width=8, z_dim=4, pack=3, g_depth=1, d_depth=1)
    generator, discriminator = build_gan(config, (3, 28, 28))
    first = next(m for m in discriminator.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert (first.in_channels if arch == "dcgan" else first.in_features) == (9 if arch == "dcgan" else 9 * 28 * 28)
    assert generator(torch.randn(5, 4)).shape == (5, 3, 28, 28)
    assert discriminator(torch.randn(5, 9, 28, 28)).shape == (5,)


def test_pack_must_be_at_least_one():
    with pytest.raises(ConfigError, match="pack must be >= 1"):
        GanConfig(pack=0)


class Recorder(nn.Module):
    """A discriminator that remembers its inputs and outputs their mean, so every input is visible."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return x.flatten(1).mean(dim=1) * self.scale


@pytest.mark.parametrize("k", [1, 3])
def test_each_step_packs_batch_size_samples_of_m_independent_images(k):
    images = torch.rand(40, 1, 28, 28)
    config = GanConfig(arch="dcgan", g_width=4, d_width=4, z_dim=4, batch_size=5, pack=2, k=k, seed=0)
    trainer = GanTrainer(config, images)
    trainer.discriminator = Recorder()
    trainer.opt_d = torch.optim.SGD(trainer.discriminator.parameters(), lr=0.0)
    trainer.train(2)
    # per generator step: k D steps of (real, fake) then one G step: 2k + 1 calls, each 5 packs of 2 images
    assert len(trainer.discriminator.inputs) == 2 * (2 * k + 1)
    assert all(x.shape == (5, 2, 28, 28) for x in trainer.discriminator.inputs)
    assert trainer.step == 2 and trainer.d_steps == 2 * k
    real = trainer.discriminator.inputs[0] * 0.5 + 0.5  # [-1, 1] -> the training images' [0, 1]
    for channel in real.reshape(10, 28, 28):  # every packed channel is one training image
        assert any(torch.allclose(channel, image[0], atol=1e-6) for image in images)


def test_held_out_images_are_packed_in_a_fixed_random_order():
    n = 21  # sorted by "class": image i is constant i / n
    images = (torch.arange(n, dtype=torch.float32) / n).reshape(n, 1, 1, 1).expand(n, 1, 28, 28).contiguous()
    trainer = GanTrainer(GanConfig(arch="mlp", g_width=4, d_width=4, g_depth=1, d_depth=1, pack=2), images)
    trainer.discriminator = Recorder()
    probabilities = trainer.discriminator_probabilities(images, batch_size=4)
    assert probabilities.shape == (10,)  # 21 // 2 packs, the 21st image left out
    packs = torch.cat(trainer.discriminator.inputs)  # 10 x 2 x 28 x 28, pixels in [0, 1] (MLP G: sigmoid)
    used = (packs[:, :, 0, 0] * n).round().long()
    assert used.flatten().unique().numel() == 20  # each image at most once
    assert not torch.equal(used.flatten(), used.flatten().sort().values)  # not the sorted order
    again = GanTrainer(GanConfig(arch="mlp", g_width=4, d_width=4, g_depth=1, d_depth=1, pack=2), images)
    again.discriminator = Recorder()
    again.discriminator_probabilities(images)
    assert torch.equal(torch.cat(again.discriminator.inputs), packs)  # the same packs every time
