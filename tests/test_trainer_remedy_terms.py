"""The remedies where GanTrainer uses them: one training step with R1, with the WGAN gradient penalty and with G's
moving average, against the same step computed by hand with plain torch.autograd.

The trainer runs SGD without momentum, so D's update is exactly lr × ∇(D's loss). The test sees the batches the
trainer drew (its `_real_batch`/`_fake_batch` wrapped to record them) and the state of its random generator after
them (WGAN-GP draws its interpolation weights from it next), and computes D's loss, penalty included, itself: the
losses and the penalties are written out here, not taken from gan.losses. A trainer that dropped the R1 term, the
gradient-penalty term or the update of the average would take another step than the hand-computed one.
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from gan.config import GanConfig
from gan.trainer import GanTrainer

SHAPE = (1, 4, 4)
LR = 0.1
# a tiny MLP GAN without dropout (D's forward pass is then a function of its input alone) and without batch-norm
# (each sample's input gradient is then the gradient of the summed logits)
TINY = dict(arch="mlp", z_dim=3, g_width=6, d_width=5, g_depth=1, d_depth=1, d_activation="leakyrelu",
            d_dropout=0.0, batch_size=4, optimizer="sgd", momentum=0.0, lr_g=LR, lr_d=LR)


def _images(n: int = 16) -> torch.Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(0))


def _record_d_batches(trainer: GanTrainer) -> dict:
    """Wraps the trainer's batch methods: the first real and fake batches (D's, in either update order) and the
    state of the trainer's generator right after the fake batch are recorded; the trainer gets the same batches."""
    seen = {}
    real_batch, fake_batch = trainer._real_batch, trainer._fake_batch

    def recorded_real():
        batch = real_batch()
        seen.setdefault("real", batch.detach().clone())
        return batch

    def recorded_fake():
        batch = fake_batch()
        if "fake" not in seen:
            seen["fake"] = batch.detach().clone()
            seen["rng_after_fake"] = trainer.rng.get_state()
        return batch

    trainer._real_batch, trainer._fake_batch = recorded_real, recorded_fake
    return seen


def _input_gradients(discriminator, inputs: torch.Tensor) -> torch.Tensor:
    """∂ logit_i / ∂ x_i for each sample, flattened (N x pixels), in the graph (create_graph) for a second backward."""
    inputs = inputs.detach().clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(discriminator(inputs).sum(), inputs, create_graph=True)
    return gradient.flatten(1)


def _hand_d_step(d_before, real: torch.Tensor, fake: torch.Tensor, loss: str, r1_gamma: float = 0.0,
                 gp_lambda: float = 0.0, alpha: torch.Tensor | None = None):
    """(D's loss, D's parameters after one SGD step of lr LR), from a copy of D before the step."""
    discriminator = copy.deepcopy(d_before)
    params = list(discriminator.parameters())
    r, f = discriminator(real), discriminator(fake)
    if loss == "nonsaturating":  # −mean log D(x) − mean log(1 − D(G(z))), D = sigmoid(logit)
        total = -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean()
    else:  # wasserstein: mean D(G(z)) − mean D(x)
        total = f.mean() - r.mean()
    if r1_gamma:  # γ/2 · mean ‖∇_x D(x)‖² on the reals
        total = total + r1_gamma / 2 * (_input_gradients(discriminator, real) ** 2).sum(dim=1).mean()
    if gp_lambda:  # λ · mean (‖∇ D(x̂)‖ − 1)² at x̂ = α x + (1 − α) G(z)
        norms = _input_gradients(discriminator, alpha * real + (1 - alpha) * fake).norm(dim=1)
        total = total + gp_lambda * ((norms - 1) ** 2).mean()
    grads = torch.autograd.grad(total, params)
    return total.item(), [(p - LR * g).detach() for p, g in zip(params, grads)]


def _assert_step_matches(trainer, d_before, seen, stats, loss, **penalty):
    """D after the trainer's step is the hand-computed step with the penalty, and measurably not the one without."""
    hand_loss, expected = _hand_d_step(d_before, seen["real"], seen["fake"], loss, **penalty)
    _, without_penalty = _hand_d_step(d_before, seen["real"], seen["fake"], loss)
    actual = [p.detach() for p in trainer.discriminator.parameters()]
    # the penalty moves D's step far beyond the tolerance of the comparison (else the test could not tell)
    assert max((e - w).abs().max().item() for e, w in zip(expected, without_penalty)) > 1e-4
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)
    assert stats.loss_d == pytest.approx(hand_loss, rel=1e-5, abs=1e-6)  # the loss the trainer reports, penalty in


@pytest.mark.parametrize("updates", ["alternating", "simultaneous"])
def test_one_d_step_with_r1_is_the_hand_computed_sgd_step(updates):
    gamma = 10.0
    trainer = GanTrainer(GanConfig(**TINY, loss="nonsaturating", r1_gamma=gamma, updates=updates), _images())
    d_before = copy.deepcopy(trainer.discriminator)
    seen = _record_d_batches(trainer)
    stats = trainer.train(1)
    assert stats.d_steps == 1
    _assert_step_matches(trainer, d_before, seen, stats, "nonsaturating", r1_gamma=gamma)


@pytest.mark.parametrize("updates", ["alternating", "simultaneous"])
def test_one_d_step_with_the_wgan_gradient_penalty_is_the_hand_computed_sgd_step(updates):
    lam = 10.0
    trainer = GanTrainer(GanConfig(**TINY, loss="wasserstein", gradient_penalty=lam, updates=updates), _images())
    d_before = copy.deepcopy(trainer.discriminator)
    seen = _record_d_batches(trainer)
    stats = trainer.train(1)
    assert stats.d_steps == 1
    # the interpolation weights: U(0, 1), one per sample, the next draw from the trainer's generator after the batches
    generator = torch.Generator().set_state(seen["rng_after_fake"])
    alpha = torch.rand(len(seen["real"]), *[1] * (seen["real"].dim() - 1), generator=generator)
    _assert_step_matches(trainer, d_before, seen, stats, "wasserstein", gp_lambda=lam, alpha=alpha)


def test_gs_moving_average_copies_g_before_g_ema_start_and_averages_from_it():
    decay, start = 0.6, 2
    # G's larger steps (lr_g 1) set the average well apart from G and from its last value
    config = GanConfig(**{**TINY, "lr_g": 1.0}, g_ema_decay=decay, g_ema_start=start)
    trainer = GanTrainer(config, _images())
    initial = [p.detach().clone() for p in trainer.generator.parameters()]

    trainer.train(1)  # G's step 1, before g_ema_start: the average is a copy of G
    after_first = [p.detach().clone() for p in trainer.generator.parameters()]
    assert any(not torch.allclose(i, a) for i, a in zip(initial, after_first))  # G moved: a stale copy would show
    for averaged, current in zip(trainer.generator_ema.parameters(), after_first):
        torch.testing.assert_close(averaged, current, rtol=0, atol=0)
    old = [p.detach().clone() for p in trainer.generator_ema.parameters()]

    trainer.train(1)  # G's step 2 = g_ema_start: w_ema = decay·w_ema + (1 − decay)·w
    new = [p.detach().clone() for p in trainer.generator.parameters()]
    expected = [decay * o + (1 - decay) * n for o, n in zip(old, new)]
    # the average is neither G now nor the average before: both would differ from it beyond the tolerance
    assert max((e - n).abs().max().item() for e, n in zip(expected, new)) > 1e-5
    assert max((e - o).abs().max().item() for e, o in zip(expected, old)) > 1e-5
    for averaged, e in zip(trainer.generator_ema.parameters(), expected):
        torch.testing.assert_close(averaged, e, rtol=1e-6, atol=1e-7)
    assert all(not p.requires_grad for p in trainer.generator_ema.parameters())  # averaged, never trained
