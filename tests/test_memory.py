"""gan.memory: the training memory of a configuration, estimated on the meta device, against closed forms; the
budget of a trial on its share of a GPU, with CUDA's memory calls replaced by a fake GPU."""
import inspect
import math

import pytest
import torch

import gan.memory
from gan.config import GanConfig
from gan.memory import (CUDA_CONTEXT_BYTES, EVALUATION_BATCH, FRAGMENTATION_SHARE, WORKSPACE_BYTES, ConfigTooLarge,
                        GpuMemoryBusyError, MemoryBudget, available_memory, check_fits, enforce_gpu_share,
                        estimate_training_memory, evaluation_size, gpu_share_limit, human_bytes, memory_budget)
from gan.models import build_gan
from gan.run import EvaluationPlan
from gan.trainer import GanTrainer

MNIST = (1, 28, 28)
GB = 10 ** 9


def mlp_g_parameters(z: int, w: int, pixels: int = 784) -> int:
    """G: z→w→w→784 linear layers."""
    return (z * w + w) + (w * w + w) + (w * pixels + pixels)


def mlp_parameters(z: int, w: int, pieces: int, pixels: int = 784) -> int:
    """G, and D (maxout, depth 2): 784→w·pieces→(max)→w·pieces→(max)→1."""
    d = (pixels * w * pieces + w * pieces) + (w * w * pieces + w * pieces) + (w + 1)
    return mlp_g_parameters(z, w, pixels) + d


def mlp_d_values_per_sample(w: int, pieces: int) -> int:
    """D's layer outputs for one sample: per maxout layer its linear's w·pieces outputs, their max, dropout; the
    logit."""
    return 2 * (w * pieces + w + w) + 1


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


def test_a_dcgan_of_width_100000_is_refused_on_its_parameters_before_any_forward_pass_is_traced(monkeypatch):
    config = GanConfig(arch="dcgan", g_width=100_000, d_width=100_000)

    def traced(*args):
        raise AssertionError("a forward pass was traced: the parameters alone should have refused it")

    monkeypatch.setattr(gan.memory, "_layer_output_values", traced)
    with pytest.raises(ConfigTooLarge) as info:
        check_fits(config, MNIST, 5000, available=64 * 10 ** 9)
    # the estimate it was refused on (the parameters only: nothing traced) holds at least the largest layer of G,
    # ConvTranspose2d(4 ngf, 2 ngf, 3), counted by hand: 4 ngf x 2 ngf x 3 x 3 weights of 4 bytes
    ngf = config.g_width
    largest_layer_bytes = 4 * ngf * 2 * ngf * 3 * 3 * 4
    estimate = estimate_training_memory(config, MNIST, 5000, with_activations=False)
    assert estimate.weights >= largest_layer_bytes and estimate.total >= estimate.weights
    message = str(info.value)
    assert f"needs at least {human_bytes(estimate.total)} to train" in message
    assert "64.0 GB is available" in message and "\n" not in message


def test_a_configuration_that_fits_returns_its_estimate_and_none_means_unknown():
    config = GanConfig(g_width=64, d_width=64)
    estimate = check_fits(config, MNIST, 5000, available=10 ** 12)
    assert estimate.total == estimate_training_memory(config, MNIST, 5000).total
    assert check_fits(GanConfig(arch="dcgan", g_width=100_000, d_width=100_000), MNIST, 5000, None).total > 10 ** 12
    # refused once the activations count, although the parameters alone would fit
    parameters_only = estimate_training_memory(config, MNIST, 0, with_activations=False)
    with pytest.raises(ConfigTooLarge, match="activations"):
        check_fits(config, MNIST, 0, available=parameters_only.total)


def test_available_memory_is_positive_and_below_the_machines_total():
    total = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    assert 0 < available_memory(torch.device("cpu")) <= total


def test_human_bytes_uses_decimal_units():
    assert [human_bytes(n) for n in (999, 1000, 2.9e12, 1.5e6)] == ["999 B", "1.0 kB", "2.9 TB", "1.5 MB"]
    assert math.isclose(float(human_bytes(39.04e12).split()[0]), 39.0)


# --- the terms beyond weights, gradients, optimizer state, activations and data ------------------------------
def test_a_moving_average_of_g_adds_one_copy_of_gs_weights():
    plain = GanConfig(z_dim=100, g_width=240, d_width=240, batch_size=100)
    assert estimate_training_memory(plain, MNIST, 5000).ema_weights == 0
    averaged = GanConfig(z_dim=100, g_width=240, d_width=240, batch_size=100, g_ema_decay=0.999)
    assert estimate_training_memory(averaged, MNIST, 5000).ema_weights == 4 * mlp_g_parameters(100, 240)
    # the trainer's own copy, counted on a small one
    small = GanConfig(arch="dcgan", g_width=8, d_width=8, g_ema_decay=0.99)
    trainer = GanTrainer(small, torch.zeros(4, *MNIST))
    assert estimate_training_memory(small, MNIST, 4).ema_weights == sum(
        4 * p.numel() for p in trainer.generator_ema.parameters())


@pytest.mark.parametrize("penalties,graphs", [
    ({}, 0),
    ({"r1_gamma": 10.0}, 1),  # the backward graph of D on the reals, kept for the second backward
    ({"gradient_penalty": 10.0}, 2),  # and a forward pass of D on the interpolates
    ({"r1_gamma": 1.0, "gradient_penalty": 10.0}, 3),
])
def test_input_gradient_penalties_add_ds_activations_and_the_input_for_each_graph_they_keep(penalties, graphs):
    config = GanConfig(z_dim=100, g_width=240, d_width=240, batch_size=100, **penalties)
    estimate = estimate_training_memory(config, MNIST, 5000)
    d_activations, minibatch = 100 * mlp_d_values_per_sample(240, 5), 100 * 784
    assert estimate.penalty_graph == 4 * graphs * (d_activations + minibatch)
    assert estimate.peak_allocated == estimate.held + estimate.activations + estimate.penalty_graph


@pytest.mark.parametrize("samples,values", [
    # 500 samples (392,000 values); the widest forward pass at the evaluation batch: D's first maxout layer,
    # 240 x 5 outputs on 1000 samples (1,200,000), wider than G's 784 pixels on 500 images: twice that, its input too
    (500, 392_000 + 2 * 1_200_000),
    # 5000 samples (3,920,000 values): their float64 copy (7,840,000 values' worth) is the larger
    (5000, 3_920_000 + 7_840_000),
])
def test_an_evaluation_holds_its_samples_and_their_float64_copy_or_its_widest_forward_pass(samples, values):
    config = GanConfig(z_dim=100, g_width=240, d_width=240, batch_size=100)
    estimate = estimate_training_memory(config, MNIST, 5000, evaluation_samples=samples)
    assert estimate.evaluation == 4 * values
    assert estimate.host_buffers == 8 * samples * 784  # beside a GPU, the samples on the host in float64
    assert estimate_training_memory(config, MNIST, 5000).evaluation == 0


def test_the_evaluation_batch_is_the_trainers():
    for method in (GanTrainer.sample, GanTrainer.discriminator_probabilities):
        assert inspect.signature(method).parameters["batch_size"].default == EVALUATION_BATCH


def test_a_plan_with_the_final_evaluation_holds_the_protocols_10000_samples():
    assert evaluation_size(EvaluationPlan(num_samples=1000, final=False)) == 1000
    assert evaluation_size(EvaluationPlan(num_samples=1000, final=True)) == 10_000
    assert evaluation_size(EvaluationPlan(num_samples=20_000, final=True)) == 20_000


def test_the_peak_is_building_the_trainer_or_training_whichever_is_larger_and_the_margin_comes_on_top():
    # DCGAN's tanh: GanTrainer scales the split to [-1, 1] beside the copy it comes from
    config = GanConfig(arch="dcgan", g_width=8, d_width=8, g_depth=0, d_depth=0, batch_size=10)
    small, large = (estimate_training_memory(config, MNIST, n, evaluation_samples=1000) for n in (10, 1_000_000))
    assert (small.data_conversion, large.data_conversion) == (4 * 10 * 784, 4 * 1_000_000 * 784)
    assert small.peak_allocated == small.held + max(small.activations, small.evaluation) \
        > small.weights + 2 * small.training_data
    assert large.peak_allocated == large.weights + 2 * large.training_data \
        > large.held + max(large.activations, large.evaluation)
    for estimate in (small, large):
        assert estimate.fragmentation == math.ceil(FRAGMENTATION_SHARE * estimate.peak_allocated) + WORKSPACE_BYTES
        assert estimate.total == estimate.peak_allocated + estimate.fragmentation == estimate.terms()["total"]
    assert estimate_training_memory(GanConfig(), MNIST, 1000).data_conversion == 0  # the MLP's sigmoid: no copy


# --- the budget on a share of a GPU (torch.cuda's memory calls answered by a fake GPU) -------------------------
def test_a_trials_share_of_a_gpu_is_that_fraction_of_its_memory_less_its_cuda_context():
    assert gpu_share_limit(80 * GB, 0.25) == 20 * GB - CUDA_CONTEXT_BYTES
    assert gpu_share_limit(80 * GB, 1.0) == 80 * GB - CUDA_CONTEXT_BYTES
    assert gpu_share_limit(GB, 0.5) == 0  # a share smaller than a context holds nothing


@pytest.mark.parametrize("trials", [1, 2, 3, 4, 8])
def test_packed_trials_caps_and_contexts_together_never_exceed_the_gpu(monkeypatch, trials):
    from fake_gpu import FakeGpu

    gpu = FakeGpu(monkeypatch, total=80 * GB, free=80 * GB)
    cap = enforce_gpu_share(torch.device("cuda"), 1 / trials)
    assert gpu.cap == pytest.approx(cap, abs=1) and cap == gpu_share_limit(80 * GB, 1 / trials)
    assert trials * (gpu.cap + CUDA_CONTEXT_BYTES) <= gpu.total
    assert memory_budget(torch.device("cuda")).limit == cap


def test_a_configuration_larger_than_its_share_is_refused_although_the_whole_gpu_is_free(monkeypatch):
    from fake_gpu import FakeGpu

    config = GanConfig(g_width=64, d_width=64)
    needed = estimate_training_memory(config, MNIST, 5000, evaluation_samples=1000).total
    monkeypatch.setattr(gan.memory, "available_memory", lambda device: 64 * GB)  # the host's
    # four trials on a GPU whose quarter, less a context, is one byte short; all of it free (as four trials that
    # start together see it)
    short = 4 * (needed + CUDA_CONTEXT_BYTES) - 4
    gpu = FakeGpu(monkeypatch, total=short, free=short)
    enforce_gpu_share(torch.device("cuda"), 0.25)
    with pytest.raises(ConfigTooLarge, match=r"needs at least .* but .* is available$"):
        check_fits(config, MNIST, 5000, memory_budget(torch.device("cuda")), evaluation_samples=1000)
    gpu.total = gpu.free = 4 * (needed + CUDA_CONTEXT_BYTES)  # a quarter that holds it exactly
    enforce_gpu_share(torch.device("cuda"), 0.25)
    assert check_fits(config, MNIST, 5000, memory_budget(torch.device("cuda")), evaluation_samples=1000).total == needed


def test_a_configuration_within_its_share_waits_while_neighbours_hold_the_memory(monkeypatch):
    from fake_gpu import FakeGpu

    config = GanConfig(g_width=64, d_width=64)
    needed = estimate_training_memory(config, MNIST, 5000).total
    monkeypatch.setattr(gan.memory, "available_memory", lambda device: 64 * GB)
    gpu = FakeGpu(monkeypatch, total=80 * GB, free=needed - 1)
    enforce_gpu_share(torch.device("cuda"), 0.25)
    with pytest.raises(GpuMemoryBusyError, match="within its share of the GPU .* is free on it now"):
        check_fits(config, MNIST, 5000, memory_budget(torch.device("cuda")))
    gpu.free = needed  # the neighbours settled
    assert check_fits(config, MNIST, 5000, memory_budget(torch.device("cuda"))).total == needed


def test_a_reused_worker_counts_its_cached_blocks_as_free_and_its_live_tensors_against_its_share(monkeypatch):
    from fake_gpu import FakeGpu

    monkeypatch.setattr(gan.memory, "available_memory", lambda device: 64 * GB)
    gpu = FakeGpu(monkeypatch, total=80 * GB, free=GB)
    cap = enforce_gpu_share(torch.device("cuda"), 0.25)
    # the last trial in this process left 5 GB in the allocator's cache; a classifier holds 0.1 GB
    gpu.allocated, gpu.reserved = GB // 10, 5 * GB
    assert memory_budget(torch.device("cuda")) == MemoryBudget(limit=cap - GB // 10, free=GB + 5 * GB - GB // 10,
                                                               host_free=64 * GB)


def test_beside_a_gpu_the_host_must_hold_the_evaluations_samples(monkeypatch):
    from fake_gpu import FakeGpu

    config = GanConfig(g_width=64, d_width=64)
    host_buffers = estimate_training_memory(config, MNIST, 5000, evaluation_samples=10_000).host_buffers
    FakeGpu(monkeypatch, total=80 * GB, free=80 * GB)
    monkeypatch.setattr(gan.memory, "available_memory",
                        lambda device: host_buffers - 1 if device.type == "cpu" else pytest.fail("GPU read as host"))
    budget = memory_budget(torch.device("cuda"))
    assert budget.host_free == host_buffers - 1
    with pytest.raises(ConfigTooLarge, match="of host memory beside the GPU"):
        check_fits(config, MNIST, 5000, budget, evaluation_samples=10_000)
    check_fits(config, MNIST, 5000, MemoryBudget(80 * GB, 80 * GB, host_buffers), evaluation_samples=10_000)


def test_on_the_cpu_the_budget_is_the_available_memory_for_good_and_now(monkeypatch):
    monkeypatch.setattr(gan.memory, "available_memory", lambda device: 7 * GB if device.type == "cpu" else None)
    assert memory_budget(torch.device("cpu")) == MemoryBudget(limit=7 * GB, free=7 * GB, host_free=None)
