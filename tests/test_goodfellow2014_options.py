"""The training options of the 2014 paper's released code, each against its definition."""
import copy
import math

import numpy as np
import pytest
import torch

from gan.config import ConfigError, GanConfig
from gan.losses import LOSSES
from gan.models import build_gan
from gan.trainer import GanTrainer

TINY = dict(arch="mlp", z_dim=8, g_width=16, d_width=16, g_depth=1, d_depth=1, batch_size=16)


def _images(n=64, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_uniform_noise_is_u_minus_root3_root3_with_unit_variance():
    trainer = GanTrainer(GanConfig(**{**TINY, "z_dim": 200, "noise": "uniform"}), _images())
    z = trainer._noise(5000)
    assert z.min() >= -math.sqrt(3) and z.max() <= math.sqrt(3)
    assert z.var().item() == pytest.approx(1.0, abs=0.02) and abs(z.mean().item()) < 0.01
    # G's fixed grid noise and its samples come from the same distribution
    assert trainer.fixed_noise.abs().max() <= math.sqrt(3)
    gaussian = GanTrainer(GanConfig(**{**TINY, "z_dim": 200}), _images())._noise(5000)
    assert gaussian.abs().max() > math.sqrt(3)


def test_init_ranges_draw_weights_uniformly_and_zero_the_biases():
    config = GanConfig(**{**TINY, "g_width": 64, "d_width": 32, "maxout_pieces": 5, "g_init_range": 0.05,
                          "d_init_range": 0.005})
    generator, discriminator = build_gan(config, (1, 28, 28))
    for network, r in ((generator, 0.05), (discriminator, 0.005)):
        weights = torch.cat([p.flatten() for n, p in network.named_parameters() if n.endswith("weight")])
        biases = torch.cat([p.flatten() for n, p in network.named_parameters() if n.endswith("bias")])
        assert weights.abs().max() <= r and weights.abs().max() > 0.9 * r
        assert weights.std().item() == pytest.approx(r / math.sqrt(3), rel=0.05)  # the std of U(-r, r)
        assert torch.all(biases == 0)


def test_marginal_output_bias_makes_sigmoid_of_the_bias_the_mean_pixel():
    images = _images(200)
    images[:, :, :3] = 0.0  # a band of always-black pixels: the mean is clipped at 1e-7
    trainer = GanTrainer(GanConfig(**{**TINY, "g_output_bias": "marginals"}), images)
    bias = trainer.generator.net[-2].bias.detach().double().numpy()
    mean = np.clip(images.double().mean(dim=0).numpy().ravel(), 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(1 / (1 + np.exp(-bias)), mean, rtol=1e-5)
    assert bias.min() == pytest.approx(math.log(1e-7 / (1 - 1e-7)), rel=1e-5)


def test_input_dropout_zeroes_about_that_share_of_d_inputs_in_training_only():
    config = GanConfig(**{**TINY, "d_input_dropout": 0.2})
    _, discriminator = build_gan(config, (1, 28, 28))
    first = discriminator.net[0]
    assert isinstance(first, torch.nn.Dropout) and first.p == 0.2
    x = torch.ones(100, 784)
    torch.manual_seed(0)
    kept = first(x)
    assert (kept == 0).float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert torch.all((kept == 0) | torch.isclose(kept, torch.tensor(1.25)))  # survivors scaled by 1 / 0.8
    first.eval()
    assert torch.equal(first(x), x)


def test_learning_rate_decays_by_the_factor_per_generator_step_down_to_its_floor():
    config = GanConfig(**{**TINY, "optimizer": "sgd", "lr_g": 0.1, "lr_d": 0.05, "lr_decay": 1.5, "lr_min": 0.01})
    trainer = GanTrainer(config, _images())
    for steps in (1, 3, 6):
        trainer.train(steps - trainer.step)
        trainer._apply_schedules()  # the rate the next step will use
        assert trainer.opt_g.param_groups[0]["lr"] == pytest.approx(max(0.1 / 1.5 ** steps, 0.01))
        assert trainer.opt_d.param_groups[0]["lr"] == pytest.approx(max(0.05 / 1.5 ** steps, 0.01))


def test_momentum_ramps_linearly_over_epochs_as_pylearn2_momentum_adjustor():
    # 64 images, batch 16: an epoch is 4 D steps; ramp from 0.5 at epoch 1 to 0.7 at epoch 5
    config = GanConfig(**{**TINY, "optimizer": "sgd", "momentum": 0.5, "momentum_final": 0.7,
                          "momentum_ramp_start": 1, "momentum_ramp_end": 5})
    trainer = GanTrainer(config, _images(64))
    seen = []
    for _ in range(7):
        trainer._apply_schedules()
        seen.append(trainer.opt_g.param_groups[0]["momentum"])
        trainer.train(4)  # one epoch
    # MomentumAdjustor: alpha = (monitor calls − start) / (saturate − start); call 1 precedes epoch 1
    expected = [0.5 + 0.2 * min(max((e + 1 - 1) / 4, 0), 1) for e in range(7)]
    assert seen == pytest.approx(expected)
    assert trainer.opt_d.param_groups[0]["momentum"] == pytest.approx(0.7)


def test_simultaneous_updates_take_both_gradients_at_the_old_parameters():
    config = GanConfig(**{**TINY, "d_dropout": 0.0, "optimizer": "sgd", "momentum": 0.0, "lr_g": 0.3, "lr_d": 0.2,
                          "updates": "simultaneous"})
    trainer = GanTrainer(config, _images())
    g0, d0 = copy.deepcopy(trainer.generator), copy.deepcopy(trainer.discriminator)
    replay = torch.Generator().manual_seed(0)
    replay.set_state(trainer.rng.get_state())
    trainer.train(1)
    # the same minibatch and noise, drawn in the trainer's order: real indices, then noise
    idx = torch.randint(len(trainer.train_images), (16,), generator=replay)
    z = torch.randn(16, 8, generator=replay)
    real = trainer.train_images[idx]
    loss = LOSSES["nonsaturating"]
    d_real, d_fake = d0(real), d0(g0(z))
    d_grads = torch.autograd.grad(loss.discriminator(d_real, d_fake), list(d0.parameters()), retain_graph=True)
    g_grads = torch.autograd.grad(loss.generator(d_fake), list(g0.parameters()))
    for old, grads, new, lr in ((d0, d_grads, trainer.discriminator, 0.2), (g0, g_grads, trainer.generator, 0.3)):
        for p_old, grad, p_new in zip(old.parameters(), grads, new.parameters()):
            torch.testing.assert_close(p_new, p_old - lr * grad)
    assert (trainer.step, trainer.d_steps) == (1, 1)


def test_simultaneous_updates_need_k_1_and_the_2014_mlp_options_need_mlp():
    with pytest.raises(ConfigError, match="k must be 1"):
        GanConfig(updates="simultaneous", k=2)
    with pytest.raises(ConfigError, match="arch mlp only"):
        GanConfig(arch="dcgan", d_input_dropout=0.2)


def test_checkpoint_round_trip_continues_the_2014_schedules_exactly(tmp_path):
    config = GanConfig(**{**TINY, "optimizer": "sgd", "lr_g": 0.1, "lr_d": 0.05, "lr_decay": 1.01, "momentum": 0.5,
                          "momentum_final": 0.7, "momentum_ramp_start": 1, "momentum_ramp_end": 3, "noise": "uniform",
                          "updates": "simultaneous", "d_input_dropout": 0.2, "g_output_bias": "marginals",
                          "g_init_range": 0.05, "d_init_range": 0.005})
    straight = GanTrainer(config, _images())
    straight.train(12)
    first = GanTrainer(config, _images())
    first.train(5)
    torch.save(first.state_dict(), tmp_path / "state.pt")
    resumed = GanTrainer(config, _images())
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    resumed.train(7)
    for a, b in zip(straight.generator.parameters(), resumed.generator.parameters()):
        assert torch.equal(a, b)
    assert straight.opt_g.param_groups[0]["momentum"] == resumed.opt_g.param_groups[0]["momentum"]
