"""The memory one training run needs, estimated before anything is allocated, and the budget it must fit.

G and D are built on PyTorch's "meta" device (shapes without storage, initialisation skipped), so a
configuration that would need terabytes is measured in milliseconds instead of failing after minutes of
allocation. With P the parameters of G and D, P_G those of G, float32 (4 bytes) everywhere, B the minibatch
(batch_size packed samples of m images: PacGAN's packing), X = B × m × C × H × W the values of one minibatch of
images, N the training images and n the samples an evaluation holds, the device holds (`MemoryEstimate`):

    held for the whole run
      weights          4 P
      gradients        4 P
      optimizer state  8 P (Adam: two moments) or 4 P (SGD: momentum)
      ema_weights      4 P_G when g_ema_decay > 0 (GanTrainer's moving average of G)
      training_data    4 N × C × H × W (GanTrainer keeps the split on the device)
    at the peak of a training step
      activations      4 × (outputs of every layer of G on one minibatch, and of D on a real and a fake one),
                       kept for the backward pass
      penalty_graph    the double backward of the input-gradient penalties: R1 (r1_gamma > 0) keeps the backward
                       graph of D on the reals, about D's activations on one minibatch (A_D) and the input
                       gradient: 4 (A_D + X); WGAN-GP (gradient_penalty > 0) also a forward pass on the
                       interpolates and the interpolates: 4 × 2 (A_D + X)
    or at the peak of an evaluation
      evaluation       4 n C H W for the samples, plus the larger of their float64 copy (pixel statistics,
                       4 × 2 n C H W) and a forward pass without graph at the evaluation batch (GanTrainer.sample
                       and .discriminator_probabilities: EVALUATION_BATCH): twice the widest layer output of G or D
    or while GanTrainer is built
      data_conversion  4 N × C × H × W: the split scaled to [-1, 1] (tanh generators) beside the copy it comes from

    peak_allocated = max(weights + ema_weights + training_data + data_conversion,
                         held + max(activations + penalty_graph, evaluation))
    fragmentation  = FRAGMENTATION_SHARE × peak_allocated + WORKSPACE_BYTES: what the caching allocator reserves
                     beyond what it hands out (rounded and split blocks) and the cuBLAS/cuDNN workspaces
    total          = peak_allocated + fragmentation

`peak_allocated` is what `torch.cuda.max_memory_allocated` measures after a run (`MemoryEstimate.terms` gives
each term, for the GPU acceptance check), `total` what `torch.cuda.max_memory_reserved` may reach. Not counted:
the classifier and Inception networks of the metrics (their weights and their batches), and the CUDA context,
which lives outside the allocator (the budget leaves CUDA_CONTEXT_BYTES for it).

The budget (`MemoryBudget`): a trial on a GPU may hold its share of it for good, gpus_per_trial × total less its
CUDA context (`gpu_share_limit`), enforced on the allocator with `torch.cuda.set_per_process_memory_fraction`
(`enforce_gpu_share`), so that packed trials cannot starve one another; and it starts only when that much is free
now. `check_fits` refuses a configuration whose estimate exceeds the share with ConfigTooLarge (it would every
time), and one that fits its share but not the memory free now with GpuMemoryBusyError (neighbours still hold
it: worth retrying). Beside a GPU the host must hold the samples the metrics read there (`host_buffers`). On the
CPU the budget is the system's available memory. `check_fits` counts the parameters first and refuses at once
when they alone exceed the share; only then does it trace the forward passes for the activations (the first
meta-device forward pass of a process loads PyTorch's reference kernels, about a second).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from gan.config import GanConfig
from gan.models import build_gan, generator_outputs_tanh, packed_shape

BYTES_PER_VALUE = 4  # float32
OPTIMIZER_VALUES_PER_PARAMETER = {"adam": 2, "sgd": 1}
EVALUATION_BATCH = 1000  # the batch of GanTrainer.sample and GanTrainer.discriminator_probabilities
# The caching allocator reserves more than it hands out (blocks rounded up and split); cuBLAS and cuDNN take
# workspaces. To be checked against torch.cuda.max_memory_reserved on a GPU.
FRAGMENTATION_SHARE = 0.2
WORKSPACE_BYTES = 64 * 2 ** 20
# A process's CUDA context (kernels, cuBLAS/cuDNN handles) lives outside the allocator: its share of a GPU leaves
# room for it, so that packed trials' contexts and allocators together stay within the GPU.
CUDA_CONTEXT_BYTES = 768 * 2 ** 20


class ConfigTooLarge(ValueError):
    """A configuration whose training step cannot fit the memory available; the message is one line."""


class GpuMemoryBusyError(RuntimeError):
    """A configuration that fits its share of the GPU, but not the memory free on it now: its neighbours still hold
    it. A retry after they settle may start; the message is one line."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one training run on its device, term by term (the module's docstring gives each formula)."""

    parameters: int  # of G and D (a count, not bytes)
    weights: int  # bytes, and so on below
    gradients: int
    optimizer_state: int
    ema_weights: int
    training_data: int
    activations: int
    penalty_graph: int
    evaluation: int
    data_conversion: int
    fragmentation: int
    host_buffers: int  # host memory beside a GPU: the samples in float64 for the metrics (8 n C H W)

    @property
    def held(self) -> int:
        """Bytes held on the device for the whole run."""
        return self.weights + self.gradients + self.optimizer_state + self.ema_weights + self.training_data

    @property
    def peak_allocated(self) -> int:
        """What torch.cuda.max_memory_allocated should reach: the larger of GanTrainer's construction and the run."""
        construction = self.weights + self.ema_weights + self.training_data + self.data_conversion
        return max(construction, self.held + max(self.activations + self.penalty_graph, self.evaluation))

    @property
    def total(self) -> int:
        """The peak and the allocator's margin: what the budget must hold."""
        return self.peak_allocated + self.fragmentation

    def terms(self) -> dict[str, int]:
        """Every term in bytes, by name, then peak_allocated and total: for a check against the allocator's counters."""
        terms = {name: getattr(self, name) for name in (
            "weights", "gradients", "optimizer_state", "ema_weights", "training_data", "activations", "penalty_graph",
            "evaluation", "data_conversion", "fragmentation", "host_buffers")}
        return {**terms, "peak_allocated": self.peak_allocated, "total": self.total}


@dataclass(frozen=True)
class MemoryBudget:
    """What a trial may use, in bytes (None: not known, not checked): `limit` on its device for the whole run (its
    share of a GPU; on the CPU, the available memory), `free` there now, and `host_free` in host memory beside a GPU."""

    limit: int | None
    free: int | None
    host_free: int | None = None


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


def _layer_output_values(network: nn.Module, inputs: torch.Tensor) -> tuple[int, int]:
    """(values in the outputs of every layer, in the widest layer's output) during one forward pass (on the meta
    device): each module's but the network's own and its containers' (Sequential), whose outputs are their last
    layer's."""
    values = widest = 0

    def count(module, args, output):
        nonlocal values, widest
        if isinstance(output, torch.Tensor):
            values += output.numel()
            widest = max(widest, output.numel())

    layers = [module for module in network.modules()
              if module is not network and not isinstance(module, (nn.Sequential, nn.ModuleList, nn.ModuleDict))]
    hooks = [module.register_forward_hook(count) for module in layers]
    try:
        network(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return values, widest


def estimate_training_memory(config: GanConfig, image_shape: tuple[int, int, int], train_size: int,
                             with_activations: bool = True, evaluation_samples: int = 0) -> MemoryEstimate:
    """The estimate above for `config` on images of `image_shape` with `train_size` training images and evaluations
    of `evaluation_samples` samples (0: none; `evaluation_size` gives a study's); the layer outputs (activations,
    the penalties' share of D's, the evaluation's forward pass) are 0 unless `with_activations`."""
    images_per_batch = config.batch_size * config.pack  # a minibatch: batch_size packed samples of m images each
    with torch.device("meta"):
        with _SkipInitialisation():
            generator, discriminator = build_gan(config, image_shape)
        g_parameters = sum(p.numel() for p in generator.parameters())
        parameters = g_parameters + sum(p.numel() for p in discriminator.parameters())
        (g_values, g_widest), (d_values, d_widest) = (0, 0), (0, 0)
        if with_activations:
            try:
                g_values, g_widest = _layer_output_values(generator, torch.empty(images_per_batch, config.z_dim))
                packed = torch.empty(config.batch_size, *packed_shape(image_shape, config.pack))
                d_values, d_widest = _layer_output_values(discriminator, packed)  # on one minibatch
            except (RuntimeError, ValueError, NotImplementedError):
                # a network the meta device cannot trace: its parameters only (still a lower bound)
                (g_values, g_widest), (d_values, d_widest) = (0, 0), (0, 0)
    pixels = math.prod(image_shape)
    minibatch = images_per_batch * pixels  # X: the values of one minibatch of images
    penalty_values = (d_values + minibatch) * ((1 if config.r1_gamma else 0) + (2 if config.gradient_penalty else 0))
    evaluation = 0
    if evaluation_samples:
        # the widest layer output of a forward pass at the evaluation batch (G: up to n images; D: packed samples)
        widest = max(g_widest // images_per_batch * min(evaluation_samples, EVALUATION_BATCH),
                     d_widest // config.batch_size * EVALUATION_BATCH)
        evaluation = BYTES_PER_VALUE * (evaluation_samples * pixels + max(2 * evaluation_samples * pixels, 2 * widest))
    training_data = BYTES_PER_VALUE * train_size * pixels
    estimate = MemoryEstimate(
        parameters=parameters,
        weights=BYTES_PER_VALUE * parameters,
        gradients=BYTES_PER_VALUE * parameters,
        optimizer_state=BYTES_PER_VALUE * OPTIMIZER_VALUES_PER_PARAMETER[config.optimizer] * parameters,
        ema_weights=BYTES_PER_VALUE * g_parameters if config.g_ema_decay else 0,
        training_data=training_data,
        activations=BYTES_PER_VALUE * (g_values + 2 * d_values),  # D on a real and a fake minibatch
        penalty_graph=BYTES_PER_VALUE * penalty_values,
        evaluation=evaluation,
        data_conversion=training_data if generator_outputs_tanh(config.arch) else 0,
        fragmentation=0,
        host_buffers=2 * BYTES_PER_VALUE * evaluation_samples * pixels,
    )
    return replace(estimate, fragmentation=math.ceil(FRAGMENTATION_SHARE * estimate.peak_allocated)
                               + WORKSPACE_BYTES)


def evaluation_size(plan) -> int:
    """The most samples one evaluation of a gan.run.EvaluationPlan holds: its num_samples, and with the final
    evaluation at least the protocol's 10,000 (gan.run's final_scores)."""
    from gan.evaluation import FINAL_PARZEN_SAMPLES

    return max(plan.num_samples, FINAL_PARZEN_SAMPLES) if plan.final else plan.num_samples


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


def gpu_share_limit(total: int, share: float) -> int:
    """Bytes the allocator of a trial given `share` of a GPU of `total` bytes may hold: share × total less the
    trial's CUDA context (CUDA_CONTEXT_BYTES), at least 0."""
    return max(0, math.floor(share * total) - CUDA_CONTEXT_BYTES)


def enforce_gpu_share(device: torch.device, share: float) -> int:
    """Caps this process's CUDA allocator on `device` at its share of the GPU (`gpu_share_limit`): an allocation
    beyond it raises torch.OutOfMemoryError here, instead of taking memory a neighbour counts on. Returns the cap."""
    _, total = torch.cuda.mem_get_info(device)
    limit = gpu_share_limit(int(total), share)
    torch.cuda.set_per_process_memory_fraction(limit / total, device)
    return limit


def memory_budget(device: torch.device) -> MemoryBudget:
    """The budget of a new run on `device` now. On a GPU: the cap on this process's allocator (`enforce_gpu_share`;
    the whole GPU where none was set) less what its live tensors hold (a classifier); the memory free on the GPU and
    in this process's cache (a reused worker keeps its last trial's blocks: free for it, not for the GPU); and the
    host's available memory beside it. On the CPU: the available memory, both as the limit and as what is free."""
    if device.type != "cuda":
        available = available_memory(device)
        return MemoryBudget(limit=available, free=available)
    free, total = torch.cuda.mem_get_info(device)
    fraction = torch.cuda.get_per_process_memory_fraction(device) \
        if hasattr(torch.cuda, "get_per_process_memory_fraction") else 1.0  # PyTorch < 2.7 cannot tell: the whole GPU
    allocated = torch.cuda.memory_allocated(device)
    cached = torch.cuda.memory_reserved(device) - allocated
    return MemoryBudget(limit=round(fraction * total) - allocated, free=int(free) + cached,
                        host_free=available_memory(torch.device("cpu")))


def _describe(estimate: MemoryEstimate, with_activations: bool) -> str:
    """The estimate's terms in words, those that are not 0."""
    parts = [f"{estimate.parameters:,} parameters: weights, gradients and optimizer state "
             f"{human_bytes(estimate.weights + estimate.gradients + estimate.optimizer_state)}"]
    for name, value in (("moving average of G", estimate.ema_weights),
                        ("activations", estimate.activations if with_activations else 0),
                        ("double backward of the gradient penalties", estimate.penalty_graph),
                        ("evaluation", estimate.evaluation),
                        ("training data", estimate.training_data),
                        ("its copy scaled to [-1, 1] while the trainer is built", estimate.data_conversion),
                        ("allocator margin", estimate.fragmentation)):
        if value:
            parts.append(f"{name} {human_bytes(value)}")
    return ", ".join(parts)


def check_fits(config: GanConfig, image_shape: tuple[int, int, int], train_size: int,
               available: MemoryBudget | int | None, evaluation_samples: int = 0) -> MemoryEstimate:
    """The estimate, checked against the budget `available` (an int: bytes both for good and now; None: not known,
    not refused). ConfigTooLarge when the estimate exceeds the limit, or beside a GPU the host's memory (the same
    configuration would fail again); GpuMemoryBusyError when it fits the limit but not the memory free now."""
    budget = available if isinstance(available, MemoryBudget) or available is None \
        else MemoryBudget(limit=available, free=available)
    if budget is None or budget.limit is None:
        estimate = estimate_training_memory(config, image_shape, train_size, evaluation_samples=evaluation_samples)
    else:
        for with_activations in (False, True):  # parameters alone first: an absurd configuration is refused at once
            estimate = estimate_training_memory(config, image_shape, train_size, with_activations, evaluation_samples)
            if estimate.total > budget.limit:
                raise ConfigTooLarge(
                    f"{config.arch} with g_width {config.g_width}, d_width {config.d_width} needs at least "
                    f"{human_bytes(estimate.total)} to train ({_describe(estimate, with_activations)}), "
                    f"but {human_bytes(budget.limit)} is available")
    if budget is not None and budget.free is not None and estimate.total > budget.free:
        raise GpuMemoryBusyError(
            f"{config.arch} with g_width {config.g_width}, d_width {config.d_width} needs "
            f"{human_bytes(estimate.total)}, within its share of the GPU ({human_bytes(budget.limit)}), but only "
            f"{human_bytes(budget.free)} is free on it now")
    if budget is not None and budget.host_free is not None and estimate.host_buffers > budget.host_free:
        raise ConfigTooLarge(
            f"{config.arch} with g_width {config.g_width}, d_width {config.d_width} needs "
            f"{human_bytes(estimate.host_buffers)} of host memory beside the GPU (its evaluation's "
            f"{evaluation_samples:,} samples in float64), but {human_bytes(budget.host_free)} is available")
    return estimate
