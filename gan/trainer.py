"""Algorithm 1 of Goodfellow et al. 2014: k discriminator steps per generator step.

The training split lives on the trainer's device as one tensor; minibatches are drawn by
index with the trainer's own random generator, so a run is a pure function of its seed
(on CPU) and its full state fits in one checkpoint dict.
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from gan.config import OPTIMISATION_HYPERPARAMETERS, GanConfig
from gan.losses import LOSSES, gradient_penalty, r1_penalty
from gan.models import MlpGenerator, build_gan, generator_outputs_tanh, pack, parameter_count

GRID_SAMPLES = 64
# An exploited PBT checkpoint comes from another trial, with its own seed (its RNG states come along).
RESTORABLE_CHANGES = (*OPTIMISATION_HYPERPARAMETERS, "seed")
# Check for non-finite losses this often: a host sync per step would stall a GPU.
DIVERGENCE_CHECK_EVERY = 50
UNIFORM_HALF_WIDTH = 3 ** 0.5  # U(−√3, √3) has unit variance, like N(0, 1) (the 2014 code's "uniform" noise)


@dataclass(frozen=True)
class TrainingStats:
    """Means over the generator steps of one `train` call."""

    step: int  # generator steps done in total
    d_steps: int  # discriminator steps done in total
    loss_d: float
    loss_g: float
    d_real: float  # mean D(x) over D's minibatches
    d_fake: float  # mean D(G(z)) over D's minibatches
    diverged: bool


def stream_seed(seed: int, stream: str) -> int:
    """The seed of a run's named random stream: a hash of (seed, stream), so it shares its sequence neither with
    the run's sampling generator (seeded with `seed`) nor with another trial's (seed + 1 would be trial 1's seed)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{stream}".encode()).digest()[:8], "little") >> 1


def _rng_state_on_cpu(state: torch.Tensor) -> torch.Tensor:
    """Generators take their state only as a CPU byte tensor; a state dict mapped to a GPU holds it there."""
    return state.to(device="cpu", dtype=torch.uint8)


def _make_optimizer(config: GanConfig, params, lr: float, device: torch.device) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        # fused kernels on CUDA; foreach elsewhere
        fused = device.type == "cuda"
        return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), fused=fused or None)
    return torch.optim.SGD(params, lr=lr, momentum=config.momentum)


class GanTrainer:
    def __init__(self, config: GanConfig, train_images: torch.Tensor, device: str | torch.device = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.image_shape = tuple(train_images.shape[1:])
        # Model init draws from torch's global CPU generator: seed it (only it: torch.manual_seed would reseed
        # every GPU's generator too, for good) and restore it after.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(config.seed)
            generator, discriminator = build_gan(config, self.image_shape)
        # Dropout draws from the global generator of its device; `train` swaps these private states in, so trainers
        # never disturb one another. Their own seed: from `config.seed` itself (the CPU generator after init, or a
        # GPU's at offset 0) dropout would reuse the numbers behind self.rng's minibatch indices and noise.
        dropout_seed = stream_seed(config.seed, "dropout")
        self._dropout_rng_state = torch.Generator().manual_seed(dropout_seed).get_state()
        self._dropout_cuda_rng_state = (torch.Generator(device=self.device).manual_seed(dropout_seed).get_state()
                                        if self.device.type == "cuda" else None)
        if config.g_output_bias == "marginals" and isinstance(generator, MlpGenerator):
            generator.set_output_bias_from_marginals(train_images.float().mean(dim=0))
        self.generator = generator.to(self.device)
        self.discriminator = discriminator.to(self.device)
        # the moving average of G (None: off); never trained, only averaged and sampled
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if config.g_ema_decay else None
        self.tanh_output = generator_outputs_tanh(config.arch)
        # real images in G's output range: [-1, 1] for tanh, [0, 1] for sigmoid
        images = train_images.to(self.device, torch.float32)
        self.train_images = images * 2 - 1 if self.tanh_output else images
        self.loss = LOSSES[config.loss]
        self.opt_g = _make_optimizer(config, self.generator.parameters(), config.lr_g, self.device)
        self.opt_d = _make_optimizer(config, self.discriminator.parameters(), config.lr_d, self.device)
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(config.seed)
        grid_rng = torch.Generator(device=self.device)
        grid_rng.manual_seed(config.seed + 1)
        self.fixed_noise = self._noise(GRID_SAMPLES, grid_rng)
        self.step = 0
        self.d_steps = 0
        self.diverged = False
        # (generator step, validation score) of the run's evaluations, kept by its caller (gan.run) and
        # checkpointed here, so that a resumed run still knows its best score and whether it converged
        self.score_history: list[tuple[int, float]] = []

    # --- sizes -----------------------------------------------------------------------------
    @property
    def g_params(self) -> int:
        return parameter_count(self.generator)

    @property
    def d_params(self) -> int:
        return parameter_count(self.discriminator)

    # --- training ----------------------------------------------------------------------------
    def _noise(self, n: int, rng: torch.Generator | None = None) -> torch.Tensor:
        """n x z_dim noise from the configured distribution: N(0, 1) or U(−√3, √3) (both unit variance)."""
        rng = self.rng if rng is None else rng
        if self.config.noise == "uniform":
            return (torch.rand(n, self.config.z_dim, generator=rng, device=self.device) * 2 - 1) * UNIFORM_HALF_WIDTH
        return torch.randn(n, self.config.z_dim, generator=rng, device=self.device)

    def _apply_schedules(self) -> None:
        """The 2014 code's SGD schedules, as functions of the steps done (so a restored run continues them):
        lr = max(lr_0 / lr_decay^t, lr_min) after t generator steps; momentum rises linearly from `momentum`
        to `momentum_final` over epochs momentum_ramp_start..momentum_ramp_end, held constant within an epoch."""
        config = self.config
        if config.lr_decay != 1.0:
            for optimizer, lr in ((self.opt_g, config.lr_g), (self.opt_d, config.lr_d)):
                for group in optimizer.param_groups:
                    group["lr"] = max(lr / config.lr_decay ** self.step, config.lr_min)
        if config.momentum_ramp_end and config.optimizer == "sgd":
            epochs_done = self.d_steps * config.batch_size // len(self.train_images)
            # pylearn2's MomentumAdjustor counts monitor calls: 1 before the first epoch, +1 after each
            share = (epochs_done + 1 - config.momentum_ramp_start) / (config.momentum_ramp_end - config.momentum_ramp_start)
            share = min(max(share, 0.0), 1.0)
            momentum = config.momentum + (config.momentum_final - config.momentum) * share
            for optimizer in (self.opt_g, self.opt_d):
                for group in optimizer.param_groups:
                    group["momentum"] = momentum

    @property
    def _images_per_batch(self) -> int:
        """batch_size packed samples of `pack` images each (PacGAN's code: D's minibatch counts packed samples)."""
        return self.config.batch_size * self.config.pack

    def _real_batch(self) -> torch.Tensor:
        """batch_size x (pack·C) x H x W: independently drawn training images, packed."""
        idx = torch.randint(len(self.train_images), (self._images_per_batch,), generator=self.rng, device=self.device)
        return pack(self.train_images[idx], self.config.pack)

    def _fake_batch(self) -> torch.Tensor:
        """batch_size x (pack·C) x H x W: G's images of fresh noise, packed (in G's graph)."""
        return pack(self.generator(self._noise(self._images_per_batch)), self.config.pack)

    def _discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor):
        """(D's loss with its regularisers, D's logits on `real`, on `fake`); `fake` may be in G's graph."""
        config = self.config
        if config.r1_gamma:
            real = real.detach().requires_grad_(True)  # R1 differentiates D's output with respect to the reals
        d_real_logits = self.discriminator(real)
        d_fake_logits = self.discriminator(fake)
        loss_d = self.loss.discriminator(d_real_logits, d_fake_logits)
        if config.r1_gamma:
            loss_d = loss_d + config.r1_gamma / 2 * r1_penalty(d_real_logits, real)
        if config.gradient_penalty:
            alpha = torch.rand(len(real), *[1] * (real.dim() - 1), generator=self.rng, device=self.device)
            loss_d = loss_d + config.gradient_penalty * gradient_penalty(self.discriminator, real, fake, alpha)
        return loss_d, d_real_logits, d_fake_logits

    @torch.no_grad()
    def _update_ema(self) -> None:
        """w_ema = decay·w_ema + (1 − decay)·w after G's step (a copy of G before step g_ema_start);
        batch-norm's running statistics are copied, as StudioGAN's Ema does."""
        decay = self.config.g_ema_decay if self.step >= self.config.g_ema_start else 0.0
        for averaged, current in zip(self.generator_ema.parameters(), self.generator.parameters()):
            averaged.lerp_(current, 1.0 - decay)
        for averaged, current in zip(self.generator_ema.buffers(), self.generator.buffers()):
            averaged.copy_(current)

    def _train_one_iteration(self, sums: torch.Tensor) -> None:
        """One outer iteration of Algorithm 1; adds (loss_d, loss_g, D(x), D(G(z))) sums into `sums`."""
        self._apply_schedules()
        if self.config.updates == "simultaneous":
            self._train_simultaneously(sums)
            return
        # (1) k times: update D to ascend mean[log D(x) + log(1 - D(G(z)))]
        for _ in range(self.config.k):
            real = self._real_batch()
            with torch.no_grad():
                fake = self._fake_batch()
            loss_d, d_real_logits, d_fake_logits = self._discriminator_loss(real, fake)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            self.d_steps += 1
            with torch.no_grad():
                sums[0] += loss_d.detach() / self.config.k
                sums[2] += torch.sigmoid(d_real_logits).mean() / self.config.k
                sums[3] += torch.sigmoid(d_fake_logits).mean() / self.config.k
        # (2) update G on fresh noise with the chosen generator loss; D's weight gradients are not
        # needed here, so D's parameters leave the graph and backward skips their matmuls
        self.discriminator.requires_grad_(False)
        loss_g = self.loss.generator(self.discriminator(self._fake_batch()))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.discriminator.requires_grad_(True)
        self.step += 1
        if self.generator_ema is not None:
            self._update_ema()
        sums[1] += loss_g.detach()

    def _train_simultaneously(self, sums: torch.Tensor) -> None:
        """The 2014 code's step (k = 1): one minibatch of reals and fakes, one forward pass through D (one set of
        dropout masks); D's gradient of its loss and G's gradient of its loss, both from that pass, applied together."""
        real = self._real_batch()
        fake = self._fake_batch()
        loss_d, d_real_logits, d_fake_logits = self._discriminator_loss(real, fake)
        loss_g = self.loss.generator(d_fake_logits)
        d_params, g_params = list(self.discriminator.parameters()), list(self.generator.parameters())
        d_grads = torch.autograd.grad(loss_d, d_params, retain_graph=True)
        g_grads = torch.autograd.grad(loss_g, g_params)
        for params, grads in ((d_params, d_grads), (g_params, g_grads)):
            for param, grad in zip(params, grads):
                param.grad = grad
        self.opt_d.step()
        self.opt_g.step()
        self.d_steps += 1
        self.step += 1
        if self.generator_ema is not None:
            self._update_ema()
        with torch.no_grad():
            sums += torch.stack([loss_d.detach(), loss_g.detach(), torch.sigmoid(d_real_logits).mean(),
                                 torch.sigmoid(d_fake_logits).mean()])

    def parameters_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for m in (self.generator, self.discriminator) for p in m.parameters())

    def train(self, num_steps: int) -> TrainingStats:
        """Run `num_steps` generator steps (each after k D steps), stopping early if training diverges."""
        self.generator.train()
        self.discriminator.train()
        sums = torch.zeros(4, device=self.device)
        done = 0
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.set_rng_state(self._dropout_rng_state)
            if cuda:
                torch.cuda.set_rng_state(self._dropout_cuda_rng_state, self.device)
            while done < num_steps and not self.diverged:
                chunk = min(DIVERGENCE_CHECK_EVERY, num_steps - done)
                for _ in range(chunk):
                    self._train_one_iteration(sums)
                done += chunk
                if not bool(torch.isfinite(sums).all()) or not self.parameters_finite():
                    self.diverged = True
            self._dropout_rng_state = torch.get_rng_state()
            self._dropout_cuda_rng_state = torch.cuda.get_rng_state(self.device) if cuda else None
        means = (sums / max(done, 1)).tolist()
        return TrainingStats(self.step, self.d_steps, means[0], means[1], means[2], means[3], self.diverged)

    # --- sampling ------------------------------------------------------------------------------
    def _to_unit(self, images: torch.Tensor) -> torch.Tensor:
        return (images + 1) / 2 if self.tanh_output else images

    @torch.no_grad()
    def sample(self, num_samples: int, seed: int, batch_size: int = 1000, ema: bool = False) -> torch.Tensor:
        """`num_samples` images in [0, 1] (N x C x H x W, on the trainer's device), G (or with `ema`, the
        moving average of G) in eval mode. The same seed gives both generators the same noise.

        Uses its own generator seeded with `seed`, so evaluation never perturbs training's RNG.
        """
        generator: nn.Module = self.generator_ema if ema else self.generator
        if generator is None:
            raise ValueError("this run keeps no moving average of G (g_ema_decay is 0)")
        rng = torch.Generator(device=self.device)
        rng.manual_seed(seed)
        was_training = generator.training
        generator.eval()
        chunks = []
        for start in range(0, num_samples, batch_size):
            z = self._noise(min(batch_size, num_samples - start), rng)
            chunks.append(self._to_unit(generator(z)).clamp_(0, 1))
        generator.train(was_training)
        return torch.cat(chunks)

    def training_reals(self, num_images: int) -> torch.Tensor:
        """A fixed random subset (seed 0) of up to `num_images` training images in [0, 1]: what D was trained on,
        to compare D's outputs with those on held-out reals (D's overfitting)."""
        order = torch.randperm(len(self.train_images), generator=torch.Generator().manual_seed(0))[:num_images]
        return self._to_unit(self.train_images[order.to(self.device)])

    @torch.no_grad()
    def discriminator_probabilities(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """D(x) for images in [0, 1], D in eval mode (dropout off): N values, or N // m with pack m > 1.

        D judges packs of m images: the images are taken in a fixed random order (seed 0; a held-out split may
        be sorted by class, and a pack of one class is no real minibatch) and grouped m at a time, the last
        N mod m left out.
        """
        m = self.config.pack
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:len(images) // m * m] \
            if m > 1 else None
        was_training = self.discriminator.training
        self.discriminator.eval()
        probs = []
        for start in range(0, len(images) if order is None else len(order), batch_size * m):
            index = slice(start, start + batch_size) if order is None else order[start:start + batch_size * m]
            batch = images[index].to(self.device)
            batch = pack(batch * 2 - 1 if self.tanh_output else batch, m)
            probs.append(torch.sigmoid(self.discriminator(batch)))
        self.discriminator.train(was_training)
        return torch.cat(probs)

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """The fixed-noise samples as one grid image (C x H x W in [0, 1]) for logging."""
        from torchvision.utils import make_grid

        was_training = self.generator.training
        self.generator.eval()
        images = self._to_unit(self.generator(self.fixed_noise)).clamp(0, 1)
        self.generator.train(was_training)
        return make_grid(images.cpu(), nrow=8, padding=2, pad_value=1.0)

    # --- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": self.config.to_flat(),
            "generator": self.generator.state_dict(),
            "generator_ema": None if self.generator_ema is None else self.generator_ema.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": self.rng.get_state(),
            "dropout_rng": self._dropout_rng_state,
            "dropout_cuda_rng": self._dropout_cuda_rng_state,
            "step": self.step,
            "d_steps": self.d_steps,
            "diverged": self.diverged,
            "score_history": [[int(step), float(value)] for step, value in self.score_history],
        }

    def load_state_dict(self, state: dict, allow_hyperparameter_change: bool = False) -> None:
        """Restore a full state. With `allow_hyperparameter_change` (PBT's exploit step) the optimisation
        hyperparameters may differ from the checkpoint's and this trainer's config wins."""
        # through from_flat: a checkpoint written before a field existed holds that field's default
        saved, current = GanConfig.from_flat(state["config"]).to_flat(), self.config.to_flat()
        changed = {name for name in current if saved[name] != current[name]}
        if changed - (set(RESTORABLE_CHANGES) if allow_hyperparameter_change else set()):
            raise ValueError(f"checkpoint was written for a different configuration: {sorted(changed)}")
        self.generator.load_state_dict(state["generator"])
        if self.generator_ema is not None:
            self.generator_ema.load_state_dict(state["generator_ema"])
        self.discriminator.load_state_dict(state["discriminator"])
        # a state read to the CPU (study.checkpoints) moves to the device here: modules copy into their tensors, and
        # optimizers move each state tensor to its parameter's device (fused Adam's `step` included)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for optimizer, lr in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = lr
                if "betas" in group:
                    group["betas"] = (self.config.beta1, self.config.beta2)
                if "momentum" in group:
                    group["momentum"] = self.config.momentum
        self.rng.set_state(_rng_state_on_cpu(state["rng"]))
        self._dropout_rng_state = _rng_state_on_cpu(state["dropout_rng"])
        # a CPU run's checkpoint has no GPU dropout state: the trainer's own stream goes on
        if self.device.type == "cuda" and state["dropout_cuda_rng"] is not None:
            self._dropout_cuda_rng_state = _rng_state_on_cpu(state["dropout_cuda_rng"])
        self.step = state["step"]
        self.d_steps = state["d_steps"]
        self.diverged = state["diverged"]
        self.score_history = [(int(step), float(value)) for step, value in state.get("score_history", [])]


def save_image(image: torch.Tensor, path) -> None:
    """Write a C x H x W image in [0, 1] as PNG."""
    from torchvision.utils import save_image as _save

    _save(image, str(path))


__all__ = ["GanTrainer", "TrainingStats", "save_image"]
