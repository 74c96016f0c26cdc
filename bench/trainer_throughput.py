"""`python -m bench.trainer_throughput`: images/s of gan-study's GanTrainer against the usual PyTorch way.

Both run Algorithm 1 with k = 1 on the same networks (gan.models.build_gan), batch size and data
(mnist5k's training split), in one process, with the repeats interleaved (ours, baseline, ours, ...)
so that load from other processes hits both alike. Images/s counts real images per D step, i.e.
batch_size per generator step; each step pushes that many real images and 2 x batch_size fakes through
D and G.

The baseline is the PyTorch DCGAN example's training loop (pytorch/examples dcgan/main.py): a
TensorDataset + DataLoader(shuffle=True), `.to(device)` per batch, D wrapped with a sigmoid and scored
with nn.BCELoss against label tensors built each step, Adam, zero_grad(), D's step on real then fake
(two backward calls), G's step, and `.item()` on D(x), D(G(z)) each step for its log line. Two variants:
- "baseline": G's step on fresh noise, as Algorithm 1 (and our trainer) does;
- "baseline, reused fake": G's step on the fake batch D just saw, as the example does (one G forward
  fewer per step, so it does less work than Algorithm 1).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bench.report import Run, Table, choose_device, median, stopwatch
from gan.config import GanConfig
from gan.data import load_dataset
from gan.models import build_gan, generator_outputs_tanh
from gan.trainer import GanTrainer

# name -> config; "small" is the paper-sized default, "large" four times wider
CONFIGS = {
    "mlp small (256)": GanConfig(arch="mlp", g_width=256, d_width=256),
    "mlp large (1024)": GanConfig(arch="mlp", g_width=1024, d_width=1024),
    "dcgan small (ngf=ndf=32)": GanConfig(arch="dcgan", g_width=32, d_width=32),
    "dcgan large (ngf=ndf=64)": GanConfig(arch="dcgan", g_width=64, d_width=64),
}
TARGETS = {"mlp": 1.5, "dcgan": 1.2}  # ours / baseline on CPU (issue 6)


class BaselineLoop:
    """The DCGAN example's loop around our networks; `run(steps)` does `steps` D+G iterations."""

    def __init__(self, config: GanConfig, train_images: torch.Tensor, device: torch.device, num_workers: int,
                 reuse_fake: bool):
        torch.manual_seed(config.seed)
        generator, discriminator = build_gan(config, tuple(train_images.shape[1:]))
        self.netG = generator.to(device)
        self.netD = nn.Sequential(discriminator, nn.Sigmoid()).to(device)
        images = train_images * 2 - 1 if generator_outputs_tanh(config.arch) else train_images
        self.dataloader = DataLoader(TensorDataset(images), batch_size=config.batch_size, shuffle=True,
                                     num_workers=num_workers, persistent_workers=num_workers > 0)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
        self.config, self.device, self.reuse_fake = config, device, reuse_fake
        self.batches = iter(())

    def _next_batch(self) -> torch.Tensor:
        try:
            return next(self.batches)[0]
        except StopIteration:  # a new epoch
            self.batches = iter(self.dataloader)
            return next(self.batches)[0]

    def run(self, steps: int) -> int:
        """Returns the number of real images processed."""
        real_label, fake_label, nz = 1.0, 0.0, self.config.z_dim
        images = 0
        for _ in range(steps):
            ############################
            # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
            ###########################
            self.netD.zero_grad()
            real_cpu = self._next_batch().to(self.device)
            batch_size = real_cpu.size(0)
            label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=self.device)
            output = self.netD(real_cpu).view(-1)
            errD_real = self.criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = torch.randn(batch_size, nz, device=self.device)
            fake = self.netG(noise)
            label.fill_(fake_label)
            output = self.netD(fake.detach()).view(-1)
            errD_fake = self.criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            self.optimizerD.step()
            ############################
            # (2) Update G network: maximize log(D(G(z)))
            ###########################
            self.netG.zero_grad()
            if not self.reuse_fake:  # Algorithm 1: a fresh noise minibatch for G's step
                fake = self.netG(torch.randn(batch_size, nz, device=self.device))
            label.fill_(real_label)  # fake labels are real for generator cost
            output = self.netD(fake).view(-1)
            errG = self.criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            self.optimizerG.step()
            del errD, D_x, D_G_z1, D_G_z2  # the example prints these each step
            images += batch_size
        return images


class OursLoop:
    def __init__(self, config: GanConfig, train_images: torch.Tensor, device: torch.device):
        self.trainer = GanTrainer(config, train_images, device)

    def run(self, steps: int) -> int:
        self.trainer.train(steps)
        return steps * self.trainer.config.batch_size


def measure(config: GanConfig, train_images: torch.Tensor, device: torch.device, steps: int, repeats: int,
            num_workers: int) -> dict[str, float]:
    """Median images/s of each loop over `repeats` interleaved timed runs of `steps` steps (after a warm-up)."""
    loops = {
        "ours": OursLoop(config, train_images, device),
        "baseline": BaselineLoop(config, train_images, device, num_workers, reuse_fake=False),
        "baseline, reused fake": BaselineLoop(config, train_images, device, num_workers, reuse_fake=True),
    }
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for loop in loops.values():
        loop.run(max(2, steps // 5))  # warm-up: allocator, DataLoader workers, Adam state
    for _ in range(repeats):
        for name, loop in loops.items():
            seconds: list[float] = []
            with stopwatch(device, seconds):
                images = loop.run(steps)
            rates[name].append(images / seconds[0])
    return {name: median(values) for name, values in rates.items()}


def profile(name: str, config: GanConfig, train_images: torch.Tensor, device: torch.device, steps: int,
            top: int = 12) -> Table:
    """Self time per step of the heaviest torch ops in ours and in the baseline (torch.profiler)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    per_op: dict[str, dict[str, float]] = {}
    totals = {}
    for label, loop in (("ours", OursLoop(config, train_images, device)),
                        ("baseline", BaselineLoop(config, train_images, device, 0, reuse_fake=False))):
        loop.run(max(2, steps // 5))
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            loop.run(steps)
        events = prof.key_averages()
        totals[label] = sum(e.self_cpu_time_total for e in events) / steps / 1000
        for event in events:
            per_op.setdefault(event.key, {})[label] = event.self_cpu_time_total / steps / 1000
    heaviest = sorted(per_op, key=lambda k: -max(per_op[k].values()))[:top]
    table = Table(["op (self CPU time)", "ours ms/step", "baseline ms/step"])
    for op in heaviest:
        table.add(op, per_op[op].get("ours", 0.0), per_op[op].get("baseline", 0.0))
    table.add("total (all ops)", totals["ours"], totals["baseline"])
    return table


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.trainer_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=0, help="G steps per timed run (default: per config, ~1-3 s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per loop, interleaved (default 3)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0, help="baseline DataLoader workers (example: 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: what a trial with cpus_per_trial 1 gets; 0: torch's choice)")
    parser.add_argument("--configs", nargs="*", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--profile", action="store_true",
                        help="instead of timing, profile ours and the baseline (torch.profiler) on --configs")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to RESULTS.md")
    return parser.parse_args(argv)


# G steps per timed run on one CPU thread, sized for ~2-5 s each on a loaded machine (a GPU is timed on 5x as many)
CPU_STEPS = {"mlp small (256)": 60, "mlp large (1024)": 8, "dcgan small (ngf=ndf=32)": 15,
             "dcgan large (ngf=ndf=64)": 6}


def main(argv=None) -> None:
    args = parse_args(argv)
    device = choose_device(args.device, args.threads)
    run = Run("Trainer throughput (images/s, Algorithm 1, k = 1)", device)
    train_images = load_dataset("mnist5k").train.images
    if args.profile:
        profiles = []
        for name in args.configs:
            config = GanConfig(**{**CONFIGS[name].to_flat(), "batch_size": args.batch_size})
            profiles.append((f"Profile, {name}, batch {config.batch_size}: self time per step of the heaviest ops",
                             profile(name, config, train_images, device, args.steps or CPU_STEPS[name])))
        run.title = "Trainer throughput: where the time goes (torch.profiler)"
        run.finish(profiles, [], write=not args.no_write)
        return
    table = Table(["config", "batch", "steps x repeats", "ours img/s", "baseline img/s", "reused-fake img/s",
                   "ours/baseline", "ours/reused-fake", "target", "met"])
    started = time.time()
    for name in args.configs:
        config = GanConfig(**{**CONFIGS[name].to_flat(), "batch_size": args.batch_size})
        steps = args.steps or CPU_STEPS[name] * (5 if device.type == "cuda" else 1)
        rates = measure(config, train_images, device, steps, args.repeats, args.num_workers)
        ratio = rates["ours"] / rates["baseline"]
        target = TARGETS[config.arch]
        table.add(name, config.batch_size, f"{steps} x {args.repeats}", rates["ours"], rates["baseline"],
                  rates["baseline, reused fake"], f"{ratio:.2f}x",
                  f"{rates['ours'] / rates['baseline, reused fake']:.2f}x",
                  f">= {target}x" if device.type == "cpu" else "-",
                  ("yes" if ratio >= target else "no") if device.type == "cpu" else "-")
        print(f"{name}: {rates}", flush=True)
    notes = [f"medians of {args.repeats} interleaved runs; baseline DataLoader num_workers={args.num_workers}; "
             f"total {time.time() - started:.0f} s",
             "targets are ours/baseline (same algorithm: fresh noise for G's step); "
             "'reused fake' is the DCGAN example verbatim, one G forward fewer per step"]
    run.finish([("", table)], notes, write=not args.no_write)


if __name__ == "__main__":
    main()
