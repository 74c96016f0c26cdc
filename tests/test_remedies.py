"""The field's losses, D's regularisers, spectral normalisation, G's moving average and D's overfitting
measures, each checked against an independent computation (closed forms, finite differences, the largest
singular value from torch.linalg, a hand-computed average, a D that memorises its training set)."""
import math

import pytest
import torch
from torch import nn

from gan import names
from gan.config import ConfigError, GanConfig
from gan.data import Split
from gan.evaluation import evaluate
from gan.losses import LOSSES, gradient_penalty, r1_penalty
from gan.models import apply_spectral_norm, build_gan
from gan.run import Budget, EvaluationPlan, train_and_evaluate
from gan.trainer import GanTrainer

REAL = torch.tensor([2.0, 0.5, -1.0])
FAKE = torch.tensor([-2.0, 0.0, 1.0])


def test_losses_match_closed_forms_on_constructed_logits():
    # hinge: D = mean relu(1 − r) + mean relu(1 + f) = (0 + .5 + 2)/3 + (0 + 1 + 2)/3; G = −mean f
    assert LOSSES["hinge"].discriminator(REAL, FAKE).item() == pytest.approx(2.5 / 3 + 1.0)
    assert LOSSES["hinge"].generator(FAKE).item() == pytest.approx(1 / 3)
    # wasserstein: D = mean f − mean r = −1/3 − 1/2; G = −mean f
    assert LOSSES["wasserstein"].discriminator(REAL, FAKE).item() == pytest.approx(-1 / 3 - 0.5)
    assert LOSSES["wasserstein"].generator(FAKE).item() == pytest.approx(1 / 3)
    # least squares on D = sigmoid(logit): at logit 0, D = ½: ½·¼ + ½·¼ and ½·¼
    zero = torch.zeros(4)
    assert LOSSES["least_squares"].discriminator(zero, zero).item() == pytest.approx(0.25)
    assert LOSSES["least_squares"].generator(zero).item() == pytest.approx(0.125)
    # a perfect D (D(x) → 1, D(G(z)) → 0) has least-squares loss 0, and G's loss is then ½
    assert LOSSES["least_squares"].discriminator(torch.full((2,), 50.0), torch.full((2,), -50.0)).item() == \
        pytest.approx(0.0, abs=1e-12)
    assert LOSSES["least_squares"].generator(torch.full((2,), -50.0)).item() == pytest.approx(0.5)
    d = torch.sigmoid(torch.tensor([0.3, -1.2]))
    expected = 0.5 * ((d - 1) ** 2).mean() + 0.5 * (d.flip(0) ** 2).mean()
    assert LOSSES["least_squares"].discriminator(torch.tensor([0.3, -1.2]), torch.tensor([-1.2, 0.3])).item() == \
        pytest.approx(expected.item())


def _small_critic() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0)).double()


def _finite_difference_gradient_norms(critic: nn.Module, inputs: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    """‖∂D(x_i)/∂x_i‖ by central differences, one coordinate of one sample at a time."""
    norms = []
    with torch.no_grad():
        for sample in inputs:
            flat = sample.flatten()
            grad = torch.empty_like(flat)
            for j in range(len(flat)):
                step = torch.zeros_like(flat)
                step[j] = h
                up = critic((flat + step).view(1, *sample.shape))
                down = critic((flat - step).view(1, *sample.shape))
                grad[j] = (up - down).item() / (2 * h)
            norms.append(grad.norm())
    return torch.stack(norms)


def test_r1_and_gradient_penalty_match_finite_difference_gradient_norms():
    critic = _small_critic()
    real = torch.randn(5, 1, 2, 3, dtype=torch.float64)
    fake = torch.randn(5, 1, 2, 3, dtype=torch.float64)
    alpha = torch.rand(5, 1, 1, 1, dtype=torch.float64)

    inputs = real.clone().requires_grad_(True)
    expected_r1 = (_finite_difference_gradient_norms(critic, real) ** 2).mean()
    assert r1_penalty(critic(inputs), inputs).item() == pytest.approx(expected_r1.item(), rel=1e-6)

    interpolates = alpha * real + (1 - alpha) * fake
    expected_gp = ((_finite_difference_gradient_norms(critic, interpolates) - 1) ** 2).mean()
    assert gradient_penalty(critic, real, fake, alpha).item() == pytest.approx(expected_gp.item(), rel=1e-6)


def test_penalties_can_be_descended_by_d():
    critic = _small_critic()
    real = torch.randn(4, 1, 2, 3, dtype=torch.float64).requires_grad_(True)
    r1_penalty(critic(real), real).backward()
    # every weight shapes ∇_x D; the last bias does not, and gets no gradient
    weights = [critic[1].weight, critic[3].weight]
    assert all(w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0 for w in weights)


def test_spectral_norm_divides_each_weight_by_its_largest_singular_value():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.ConvTranspose2d(8, 5, 4, 2, 1), nn.Flatten(),
                            nn.Linear(5 * 8 * 8, 7))
    originals = [m.weight.detach().clone() for m in network if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    apply_spectral_norm(network)
    network.train()
    for _ in range(500):  # one power iteration per forward pass in training mode: run them to convergence
        network(torch.randn(2, 3, 8, 8))
    layers = [m for m in network if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    for layer, original in zip(layers, originals):
        # the matrix PyTorch normalises: rows = output channels (dim 0, or dim 1 of a transposed convolution)
        rows = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
        as_matrix = original.movedim(rows, 0).flatten(1)
        sigma = torch.linalg.matrix_norm(as_matrix, 2)
        with torch.no_grad():
            normalised = layer.weight
        assert torch.allclose(normalised, original / sigma, rtol=1e-3, atol=1e-6)
        assert torch.linalg.matrix_norm(normalised.movedim(rows, 0).flatten(1), 2).item() == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_spectral_norm_is_switched_on_where_the_networks_are_built(arch):
    config = GanConfig(arch=arch, z_dim=8, g_width=8, d_width=8, d_spectral_norm=True)
    generator, discriminator = build_gan(config, (1, 28, 28))
    weighted = [m for m in discriminator.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert weighted and all(hasattr(m, "parametrizations") for m in weighted)
    assert not any(hasattr(m, "parametrizations") for m in generator.modules())


def test_ema_of_g_is_the_hand_computed_average_over_steps():
    images = torch.rand(64, 1, 28, 28)
    decay, start = 0.6, 2
    config = GanConfig(arch="dcgan", z_dim=4, g_width=4, d_width=4, batch_size=8, g_ema_decay=decay,
                       g_ema_start=start, lr_g=0.05)
    trainer = GanTrainer(config, images)
    expected = None
    for step in range(1, 5):
        trainer.train(1)
        current = [p.detach().clone() for p in trainer.generator.parameters()]
        if expected is None or step < start:
            expected = current  # before g_ema_start the average is a copy of G
        else:
            expected = [decay * e + (1 - decay) * c for e, c in zip(expected, current)]
    averaged = list(trainer.generator_ema.parameters())
    assert any(not torch.allclose(a, c) for a, c in zip(averaged, trainer.generator.parameters()))
    for a, e in zip(averaged, expected):
        assert torch.allclose(a, e, atol=1e-6)
    for a, b in zip(trainer.generator_ema.buffers(), trainer.generator.buffers()):
        assert torch.equal(a, b)  # batch-norm statistics are copied, not averaged


class _Memoriser(nn.Module):
    """A D that has memorised its training images: logit +5 on an exact training image, −5 elsewhere."""

    def __init__(self, train_images: torch.Tensor):
        super().__init__()
        self.register_buffer("memorised", train_images.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distances = torch.cdist(x.flatten(1), self.memorised, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
        return torch.where(distances < 1e-4, 5.0, -5.0)


def test_overfitting_measures_of_a_d_that_memorises_its_training_set(mnist5k):
    train = mnist5k.train.images[:200]
    trainer = GanTrainer(GanConfig(arch="dcgan", z_dim=4, g_width=4, d_width=4), train)
    trainer.discriminator = _Memoriser(trainer.train_images)  # training images in G's range, as D sees them
    heldout = Split(mnist5k.validation.images[:150], mnist5k.validation.labels[:150])
    values = evaluate(trainer, heldout, heldout, ("overfitting",), 100, 0, None, 10)
    sigmoid5 = 1 / (1 + math.exp(-5))
    assert values[names.D_TRAIN_ACCURACY] == 1.0 and values[names.D_RT] == 1.0
    assert values[names.D_HELDOUT_ACCURACY] == 0.0 and values[names.D_FAKE_ACCURACY] == 1.0
    assert values[names.D_TRAIN_REAL] == pytest.approx(sigmoid5)
    assert values[names.D_OVERFIT_GAP] == pytest.approx(sigmoid5 - (1 - sigmoid5))


@pytest.mark.parametrize("params,message", [
    ({"gradient_penalty": -1.0}, "gradient_penalty must be >= 0"),
    ({"r1_gamma": -0.5}, "r1_gamma must be >= 0"),
    ({"g_ema_decay": 1.0}, "g_ema_decay must be in [0, 1)"),
    ({"g_ema_decay": -0.1}, "g_ema_decay must be in [0, 1)"),
    ({"g_ema_start": -1}, "g_ema_start must be >= 0"),
    ({"loss": "wasserstein", "gradient_penalty": 0}, "loss wasserstein needs a constraint on D"),
    ({"loss": "hinge_loss"}, "loss must be one of"),
])
def test_bad_values_are_one_line_errors(params, message):
    with pytest.raises(ConfigError) as error:
        GanConfig.from_flat(params)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_wasserstein_loss_gets_wgan_gp_default_lambda_unless_d_is_spectrally_normalised():
    assert GanConfig.from_flat({"loss": "wasserstein"}).gradient_penalty == 10.0
    assert GanConfig.from_flat({"loss": "wasserstein", "d_spectral_norm": True}).gradient_penalty == 0.0


def test_a_bad_remedy_in_a_space_file_exits_2_with_one_line(tmp_path, capsys):
    from study.run import main

    space = tmp_path / "bad.yaml"
    space.write_text("fixed: {loss: wasserstein, gradient_penalty: 0}\nbudget: {steps: 1, eval_every: 1}\n")
    capsys.readouterr()
    assert main(["--space", str(space)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "loss wasserstein needs a constraint on D" in lines[0]


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
@pytest.mark.parametrize("remedy", [
    {"loss": "hinge"}, {"loss": "least_squares"}, {"loss": "wasserstein"}, {"r1_gamma": 1.0},
    {"d_spectral_norm": True, "g_spectral_norm": True}, {"gradient_penalty": 10.0, "updates": "simultaneous"},
])
def test_one_training_step_for_every_architecture_and_remedy(arch, remedy):
    config = GanConfig.from_flat({"arch": arch, "z_dim": 4, "g_width": 8, "d_width": 8, "g_depth": 1, "d_depth": 1,
                                  "batch_size": 8, **remedy})
    stats = GanTrainer(config, torch.rand(32, 1, 28, 28)).train(2)
    assert not stats.diverged and math.isfinite(stats.loss_d) and math.isfinite(stats.loss_g)


def test_a_run_with_ema_scores_both_generators_and_resumes_its_average(mnist5k):
    config = GanConfig(arch="mlp", z_dim=8, g_width=16, d_width=16, g_depth=1, d_depth=1, batch_size=16,
                       g_ema_decay=0.9)
    plan = EvaluationPlan(num_samples=100, metrics=("discriminator", "overfitting"))
    reports, states = [], []
    trainer = train_and_evaluate(config, mnist5k, Budget(steps=20, epochs=None, eval_every=10), plan,
                                 lambda metrics, t: (reports.append(metrics), states.append(t.state_dict())))
    for name in (names.EVAL_D_FAKE, names.D_RT):
        assert names.ema(name) in reports[0] and names.final(names.ema(name)) in reports[-1]
    assert reports[-1][names.final(names.D_TRAIN_REAL)] == reports[-1][names.final(names.ema(names.D_TRAIN_REAL))]
    restored = GanTrainer(config, mnist5k.train.images)
    restored.load_state_dict(trainer.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(restored.generator_ema.parameters(),
                                                trainer.generator_ema.parameters()))
