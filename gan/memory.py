"""The memory one training run needs, estimated before anything is allocated.

G and D are built on PyTorch's "meta" device (shapes without storage, initialisation skipped), so a
configuration that would need terabytes is measured in milliseconds instead of failing after minutes of
allocation. With P the parameters of G and D and float32 (4 bytes) everywhere, a training step holds at once:

    weights          4 P
    gradients        4 P
    optimizer state  8 P (Adam: two moments) or 4 P (SGD: momentum)
    activations      4 × (outputs of every layer of G on one minibatch, and of D on a real and a fake one),
                     kept for the backward pass (with PacGAN packing m: G makes m images per packed sample)
    training split   4 × N × C × H × W (GanTrainer keeps it on the device)

It is a lower bound: allocator overhead, evaluation buffers and convolution workspaces come on top, so a
configuration whose estimate exceeds the memory available cannot run. `check_fits` counts the parameters
first and refuses at once when they alone exceed the memory; only then does it trace the forward passes
for the activations (the first meta-device forward pass of a process loads PyTorch's reference kernels,
about a second).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from gan.config import GanConfig
from gan.models import build_gan, packed_shape

BYTES_PER_VALUE = 4  # float32
OPTIMIZER_VALUES_PER_PARAMETER = {"adam": 2, "sgd": 1}


class ConfigTooLarge(ValueError):
    """A configuration whose training step cannot fit the memory available; the message is one line."""


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int  # of G and D
    weights: int  # bytes, and so on below
    gradients: int
    optimizer_state: int
    activations: int
    training_data: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer_state + self.activations + self.training_data


def human_bytes(count: float) -> str:
    """1.2 GB, 2.9 TB: decimal units, as `df -H` and the error messages of allocators print them."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(count) < 1000 or unit == "PB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


class _SkipInitialisation(TorchFunctionMode):
    """Makes the networks' weight initialisation a no-op: on the meta device there is nothing to fill, and
    PyTorch's meta implementations of the random fills import its compiler stack (seconds) on first use."""

    SKIPPED = {getattr(nn.init, name) for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")} | {
        torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.zero_, torch.Tensor.fill_}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.SKIPPED:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def _layer_output_values(network: nn.Module, inputs: torch.Tensor) -> int:
    """Values in the outputs of every layer during one forward pass (on the meta device): each module's but
    the network's own and its containers' (Sequential), whose outputs are their last layer's."""
    values = 0

    def count(module, args, output):
        nonlocal values
        if isinstance(output, torch.Tensor):
            values += output.numel()

    layers = [module for module in network.modules()
              if module is not network and not isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict))]
    hooks = [module.register_forward_hook(count) for module in layers]
    try:
        network(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return values


def estimate_training_memory(config: GanConfig, image_shape: tuple[int, int, int], train_size: int,
                             with_activations: bool = True) -> MemoryEstimate:
    """The estimate above for `config` on images of `image_shape` with `train_size` training images
    (activations 0 unless `with_activations`)."""
    with torch.device("meta"):
        with _SkipInitialisation():
            generator, discriminator = build_gan(config, image_shape)
        parameters = sum(p.numel() for net in (generator, discriminator) for p in net.parameters())
        g_values = d_values = 0
        if with_activations:
            try:
                # a minibatch is batch_size packed samples of m images each (gan.models.packing)
                noise = torch.empty(config.batch_size * config.pack, config.z_dim)
                g_values = _layer_output_values(generator, noise)
                packed = torch.empty(config.batch_size, *packed_shape(image_shape, config.pack))
                d_values = 2 * _layer_output_values(discriminator, packed)  # a real and a fake minibatch
            except (RuntimeError, ValueError, NotImplementedError):
                # a network the meta device cannot trace: its parameters only (still a lower bound)
                g_values = d_values = 0
    values_per_parameter = OPTIMIZER_VALUES_PER_PARAMETER[config.optimizer]
    return MemoryEstimate(
        parameters=parameters,
        weights=BYTES_PER_VALUE * parameters,
        gradients=BYTES_PER_VALUE * parameters,
        optimizer_state=BYTES_PER_VALUE * values_per_parameter * parameters,
        activations=BYTES_PER_VALUE * (g_values + d_values),
        training_data=BYTES_PER_VALUE * train_size * math.prod(image_shape),
    )


def _cgroup_available() -> int | None:
    """Memory this process's cgroup (v2) may still use: a container's limit, which /proc/meminfo does not show."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a new run on `device` now: free CUDA memory, or the system's available memory
    (MemAvailable, and a container's remaining limit); None where neither can be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024  # the file says kB: KiB
    except (OSError, ValueError, IndexError):
        available = None
    in_cgroup = _cgroup_available()
    candidates = [value for value in (available, in_cgroup) if value is not None]
    return min(candidates) if candidates else None


def check_fits(config: GanConfig, image_shape: tuple[int, int, int], train_size: int,
               available: int | None) -> MemoryEstimate:
    """The estimate; ConfigTooLarge when it exceeds `available` bytes (None: not known, not refused)."""
    if available is None:
        return estimate_training_memory(config, image_shape, train_size)
    for with_activations in (False, True):  # parameters alone first: an absurd configuration is refused at once
        estimate = estimate_training_memory(config, image_shape, train_size, with_activations)
        if estimate.total > available:
            activations = f", activations {human_bytes(estimate.activations)}" if with_activations else ""
            raise ConfigTooLarge(
                f"{config.arch} with g_width {config.g_width}, d_width {config.d_width} needs at least "
                f"{human_bytes(estimate.total)} to train ({estimate.parameters:,} parameters: weights, gradients "
                f"and optimizer state {human_bytes(estimate.weights + estimate.gradients + estimate.optimizer_state)}"
                f"{activations}, training data {human_bytes(estimate.training_data)}), "
                f"but {human_bytes(available)} is available")
    return estimate
