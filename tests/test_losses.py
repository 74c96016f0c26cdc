import torch

from gan.losses import LOSSES


def test_losses_match_the_value_function_written_with_probabilities():
    torch.manual_seed(0)
    real_logits, fake_logits = torch.randn(50) * 3, torch.randn(50) * 3
    d_real, d_fake = torch.sigmoid(real_logits).double(), torch.sigmoid(fake_logits).double()
    d_loss = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    for name in ("minimax", "nonsaturating"):
        assert torch.allclose(LOSSES[name].discriminator(real_logits, fake_logits).double(), d_loss, atol=1e-5)
    assert torch.allclose(LOSSES["minimax"].generator(fake_logits).double(), torch.log(1 - d_fake).mean(), atol=1e-5)
    assert torch.allclose(LOSSES["nonsaturating"].generator(fake_logits).double(), -torch.log(d_fake).mean(), atol=1e-5)


def test_losses_stay_finite_when_d_saturates():
    huge = torch.tensor([80.0, -80.0])
    for loss in LOSSES.values():
        assert torch.isfinite(loss.discriminator(huge, -huge)) and torch.isfinite(loss.generator(huge))


def test_minimax_generator_gradient_vanishes_where_nonsaturating_does_not():
    # D confidently rejects the fakes: the paper's reason for the non-saturating loss
    logits = torch.full((4,), -10.0, requires_grad=True)
    LOSSES["minimax"].generator(logits).backward()
    minimax_grad = logits.grad.abs().max().item()
    logits.grad = None
    LOSSES["nonsaturating"].generator(logits).backward()
    assert minimax_grad < 1e-4 < logits.grad.abs().max().item()
