"""A trial on a GPU, with Ray's trial context and CUDA replaced by fakes: given a GPU that CUDA cannot use it ends
errored with one line saying why (no silent fallback to the CPU); it holds no more than its share of the GPU; an
out-of-memory error at start-up on a shared GPU is retried after a random wait, on a GPU of its own it is not; and
more than one GPU per trial is refused at pre-flight."""
import math
import random
from types import SimpleNamespace

import pytest
import torch

import study.trial
from fake_gpu import FakeGpu
from gan import names
from gan.config import GanConfig
from gan.memory import CUDA_CONTEXT_BYTES, GpuMemoryBusyError, gpu_share_limit
from gan.run import Budget, EvaluationPlan
from study.errors import SETTLE_SECONDS, GpuUnusableError, cuda_unusable_reason, settle_delay, will_recur
from study.trial import train_gan_trial
from study.tune_config import TrialSettings

GB = 10 ** 9
SETTINGS = TrialSettings("mnist5k", None, {"arch": "mlp", "z_dim": 8, "g_width": 8, "d_width": 8, "g_depth": 1,
                                           "d_depth": 1}, Budget(10, None, 5),
                         EvaluationPlan(num_samples=100, metrics=(), final=False), "d_gap", "max", 0)


@pytest.fixture
def trial(monkeypatch):
    """Ray's side of a trial given GPU 0 at a quarter of it: its reports and the waits before a retry recorded."""
    import ray
    from ray import tune

    state = SimpleNamespace(resources={"CPU": 1, "GPU": 0.25}, reports=[], waits=[])
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [0])
    monkeypatch.setattr(ray, "get_runtime_context", lambda: SimpleNamespace(get_node_id=lambda: "node-1"))
    monkeypatch.setattr(tune, "get_context", lambda: SimpleNamespace(
        get_trial_resources=lambda: SimpleNamespace(required_resources=state.resources)))
    monkeypatch.setattr(tune, "report", lambda metrics, checkpoint=None: state.reports.append(metrics))
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)
    monkeypatch.setattr(study.trial, "time", SimpleNamespace(sleep=state.waits.append))
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)
    return state


def out_of_memory_while_building_the_trainer(monkeypatch):
    """study.trial._train replaced by one that runs out of GPU memory inside GanTrainer.__init__."""
    import gan.trainer

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(gan.trainer, "build_gan", no_memory)
    monkeypatch.setattr(study.trial, "_train",
                        lambda *args: gan.trainer.GanTrainer(GanConfig(), torch.zeros(4, 1, 28, 28)))


# --- no silent fallback -----------------------------------------------------------------------------------------
def test_each_reason_cuda_cannot_be_used_is_named():
    assert cuda_unusable_reason(None, False, 0) == "this torch is CPU-only (torch.version.cuda is None)"
    assert cuda_unusable_reason("12.4", False, 0, "Found no NVIDIA driver on your system.") == \
        "torch.cuda.is_available() is false (Found no NVIDIA driver on your system.)"
    assert cuda_unusable_reason("12.4", True, 0) == "torch.cuda.device_count() is 0"
    assert cuda_unusable_reason("12.4", True, 1) is None


def cpu_only_torch(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def no_driver(monkeypatch):
    def init():
        raise RuntimeError("Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU")

    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "init", init)


@pytest.mark.parametrize("unusable,reason", [
    (cpu_only_torch, "this torch is CPU-only (torch.version.cuda is None)"),
    (no_driver, "torch.cuda.is_available() is false (Found no NVIDIA driver on your system. Please check that you "
                "have an NVIDIA GPU)"),
])
def test_a_trial_given_a_gpu_cuda_cannot_use_ends_errored_with_one_line_saying_why(monkeypatch, trial, unusable,
                                                                                    reason):
    unusable(monkeypatch)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda *args: pytest.fail("CUDA was used"))
    train_gan_trial({}, SETTINGS)  # returns: Tune ends the trial without a retry
    (report,) = trial.reports
    assert report[names.ERROR] == f"study.errors.GpuUnusableError: Ray gave this trial GPU 0, but CUDA cannot use it: " \
                                  f"{reason}"
    assert report["device"] == "cuda" and report["gpu_ids"] == "0" and report[SETTINGS.metric] == -math.inf
    assert trial.waits == [] and will_recur(GpuUnusableError(reason))


# --- out of memory on a shared GPU ------------------------------------------------------------------------------
def test_an_out_of_memory_error_while_building_the_trainer_recurs_only_on_a_gpu_of_its_own(monkeypatch):
    out_of_memory_while_building_the_trainer(monkeypatch)
    with pytest.raises(torch.OutOfMemoryError) as building:
        study.trial._train()
    assert will_recur(building.value) and will_recur(building.value, shared_gpu=False)
    assert not will_recur(building.value, shared_gpu=True)
    assert not will_recur(GpuMemoryBusyError("needs 2 GB within its share, but 1 GB is free"), shared_gpu=True)


def test_a_retry_on_a_shared_gpu_waits_a_random_time_and_nothing_else_waits():
    out_of_memory = torch.OutOfMemoryError("CUDA out of memory")
    waits = [settle_delay(out_of_memory, True, random.Random(seed)) for seed in range(20)]
    assert all(SETTLE_SECONDS[0] <= wait <= SETTLE_SECONDS[1] for wait in waits) and len(set(waits)) == 20
    assert SETTLE_SECONDS[0] <= settle_delay(GpuMemoryBusyError("busy"), True, random.Random(0)) <= SETTLE_SECONDS[1]
    assert settle_delay(out_of_memory, False, random.Random(0)) == 0  # its own GPU: nobody to wait for
    assert settle_delay(ValueError("a crash"), True, random.Random(0)) == 0


def test_on_a_shared_gpu_an_out_of_memory_error_at_start_up_is_retried_after_a_wait(monkeypatch, trial):
    gpu = FakeGpu(monkeypatch, total=80 * GB, free=80 * GB)
    out_of_memory_while_building_the_trainer(monkeypatch)
    with pytest.raises(torch.OutOfMemoryError):  # raised to Tune, which retries it (max_failures)
        train_gan_trial({}, SETTINGS)
    assert trial.reports == []
    (wait,) = trial.waits
    assert SETTLE_SECONDS[0] <= wait <= SETTLE_SECONDS[1]
    assert gpu.cap == pytest.approx(gpu_share_limit(80 * GB, 0.25), abs=1)  # its quarter, enforced


def test_on_a_gpu_of_its_own_an_out_of_memory_error_at_start_up_ends_the_trial(monkeypatch, trial):
    trial.resources["GPU"] = 1
    gpu = FakeGpu(monkeypatch, total=80 * GB, free=80 * GB)
    out_of_memory_while_building_the_trainer(monkeypatch)
    train_gan_trial({}, SETTINGS)
    (report,) = trial.reports
    assert report[names.ERROR] == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert trial.waits == [] and gpu.cap == pytest.approx(80 * GB - CUDA_CONTEXT_BYTES, abs=1)


# --- the budget, checked in the trial before anything is allocated ---------------------------------------------
def test_a_configuration_larger_than_its_share_is_refused_in_one_line_without_a_retry(monkeypatch, trial):
    FakeGpu(monkeypatch, total=4 * (CUDA_CONTEXT_BYTES + 10 ** 6), free=4 * (CUDA_CONTEXT_BYTES + 10 ** 6))
    train_gan_trial({}, SETTINGS)
    (report,) = trial.reports
    assert report[names.ERROR].startswith("gan.memory.ConfigTooLarge: mlp with g_width 8, d_width 8 needs at least ")
    assert report[names.ERROR].endswith("but 1.0 MB is available") and trial.waits == []


def test_a_configuration_within_its_share_is_retried_while_the_neighbours_hold_the_gpu(monkeypatch, trial):
    FakeGpu(monkeypatch, total=80 * GB, free=10 ** 6)
    with pytest.raises(GpuMemoryBusyError, match="but only 1.0 MB is free on it now"):
        train_gan_trial({}, SETTINGS)
    assert trial.reports == [] and len(trial.waits) == 1 and trial.waits[0] >= SETTLE_SECONDS[0]


# --- pre-flight -------------------------------------------------------------------------------------------------
SPACE = """
dataset: mnist5k
fixed: {z_dim: 16}
search_space:
  g_width: {grid: [8]}
search: grid
scheduler: fifo
budget: {steps: 2, eval_every: 1}
resources: {cpus_per_trial: 1, gpus_per_trial: GPUS}
"""


@pytest.mark.parametrize("in_space,argument", [(2, None), (0.25, "2"), (0, "3")])
def test_more_than_one_gpu_per_trial_is_refused_before_ray_starts(tmp_path, monkeypatch, capsys, in_space, argument):
    import ray

    from study.run import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(SPACE.replace("GPUS", str(in_space)))
    args = ["--space", str(tmp_path / "space.yaml")] + (["--gpus-per-trial", argument] if argument else [])
    capsys.readouterr()
    status = main(args)
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1, lines
    assert lines[0] == (f"error: gpus_per_trial {argument or in_space}: a trial runs on one GPU (multi-GPU trials do "
                        f"not exist yet); use 1, or a fraction such as 0.25 to pack trials onto a GPU")
    assert not ray.is_initialized() and not (tmp_path / "mlflow.db").exists()
