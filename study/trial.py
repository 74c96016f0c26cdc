"""The Ray Tune trainable: a thin adapter from Tune's config dict to `gan.run.train_and_evaluate`.

It restores from `tune.get_checkpoint()` when Tune restarts it (a retry after a failure, a resumed
study, a PBT exploit) and turns each evaluation into `tune.report` with a checkpoint. A trial Ray gave a GPU
trains on it or ends at once with the reason (never on the CPU in its place), capped at its share of the GPU's
memory; the classifier that scores it comes built from the driver's weights in its settings. Before building
anything it estimates the trial's memory (gan.memory) and refuses a configuration its share cannot hold.
An error that would recur on every retry (study.errors) ends the trial with one last result that says
why, instead of an exception Tune would retry `--max-failures` times for nothing.
"""
from __future__ import annotations

import functools
import math
import os
import random
import socket
import tempfile
import time
import traceback
from typing import Any

import torch

from gan import names
from gan.config import GanConfig
from gan.data import load_dataset
from gan.memory import check_fits, enforce_gpu_share, evaluation_size, memory_budget
from gan.metrics import ClassifierWeights
from gan.run import train_and_evaluate
from study.checkpoints import read_trainer_state, write_checkpoint
from study.errors import GpuUnusableError, cuda_unusable_reason, error_reason, settle_delay, will_recur
from study.tune_config import TrialSettings, trial_params


@functools.lru_cache(maxsize=2)
def _cached_data_and_classifier(dataset: str, data_root: str | None, classifier: ClassifierWeights | None,
                                device: str, stacked=None):
    """Tune reuses a worker process for the next trial: keep the data loaded and the classifier built. The
    classifier is the driver's weights (TrialSettings.classifier; cached by their fingerprint), never trained or
    read from a cache here: every trial of a study, on every node, scores with the same network."""
    data = load_dataset(dataset, data_root, download=False, stacked=stacked)
    return data, classifier.build(device) if classifier is not None else None


# set to 1 in the environment of a Ray cluster's nodes whose GPUs are declared, not real (see _device_and_placement)
LOGICAL_GPUS_ENV = "GAN_STUDY_LOGICAL_GPUS"


def _device_and_placement() -> tuple[torch.device, dict[str, str]]:
    """CUDA when Ray gave this trial a GPU, else the CPU; and where the trial runs. Never the CPU in a GPU's place:
    `_claim_gpu` ends a trial whose GPU CUDA cannot use."""
    import ray

    gpu_ids = ray.get_gpu_ids()
    # a cluster that declares GPUs it does not have (Ray's fake autoscaler provider, the tests' `ray start
    # --num-gpus`) says so on its nodes: Ray's GPU ids are then only for scheduling, and the trial trains on the CPU
    logical = os.environ.get(LOGICAL_GPUS_ENV, "") == "1"
    device = torch.device("cuda" if gpu_ids and not logical else "cpu")
    return device, {"hostname": socket.gethostname(), "node_id": ray.get_runtime_context().get_node_id(),
                    "gpu_ids": ",".join(str(g) for g in gpu_ids), "device": str(device)}


def _claim_gpu(device: torch.device, gpu_ids: str) -> float:
    """The trial's share of its GPU (Tune's gpus_per_trial; 0 on the CPU), enforced on CUDA's allocator before
    anything is allocated; GpuUnusableError, which ends the trial, when CUDA cannot use the GPU Ray gave it."""
    from ray import tune

    if device.type != "cuda":
        return 0.0
    available, init_error = torch.cuda.is_available(), None
    if not available and torch.version.cuda is not None:
        try:  # its error says why: no NVIDIA driver, or no device among CUDA_VISIBLE_DEVICES
            torch.cuda.init()
        except Exception as error:
            init_error = (str(error).splitlines() or [type(error).__name__])[0]
    reason = cuda_unusable_reason(torch.version.cuda, available, torch.cuda.device_count() if available else 0,
                                  init_error)
    if reason is not None:
        raise GpuUnusableError(f"Ray gave this trial GPU {gpu_ids}, but CUDA cannot use it: {reason}")
    share = float(tune.get_context().get_trial_resources().required_resources.get("GPU", 0))
    enforce_gpu_share(device, share)
    return share


def _worst(settings: TrialSettings) -> float:
    """The score a scheduler ranks last."""
    return math.inf if settings.mode == "min" else -math.inf


def train_gan_trial(config: dict[str, Any], settings: TrialSettings) -> None:
    from ray import tune

    device, placement = _device_and_placement()
    gpu_share = 0.0
    try:
        gpu_share = _claim_gpu(device, placement["gpu_ids"])
        _train(config, settings, device, placement)
    except Exception as error:
        shared_gpu = 0 < gpu_share < 1  # packed beside other trials: an out-of-memory error may be theirs
        if not will_recur(error, shared_gpu):
            time.sleep(settle_delay(error, shared_gpu, random.Random()))  # the neighbours settle before the retry
            raise  # Tune retries it (a crash, a transient out-of-memory during training or on a shared GPU)
        text = "".join(traceback.format_exception(error))
        # Tune ends a trial whose function returns: no retry. The metric must be in every result.
        tune.report({names.ERROR: error_reason(text), names.ERROR_TEXT: text, settings.metric: _worst(settings),
                     **placement})


def _train(config: dict[str, Any], settings: TrialSettings, device: torch.device, placement: dict[str, str]) -> None:
    from ray import tune

    gan_config = GanConfig.from_flat(trial_params(config, settings))
    torch.set_num_threads(max(1, int(tune.get_context().get_trial_resources().required_resources.get("CPU", 1))))
    # the classifier comes with the settings: loaded or trained once, by the driver, before any trial
    data, classifier = _cached_data_and_classifier(settings.dataset, settings.data_root, settings.classifier,
                                                   str(device), settings.dataset_options)
    if classifier is not None:  # what scored this trial, as it reports it (the child run's tag)
        placement = {**placement, names.CLASSIFIER_FINGERPRINT: classifier.fingerprint}
    # before anything is allocated: a configuration of terabytes is refused in milliseconds, with its estimate
    check_fits(gan_config, data.image_shape, len(data.train), memory_budget(device),
               evaluation_size(settings.evaluation))
    checkpoint = tune.get_checkpoint()
    state = None
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = read_trainer_state(directory)

    def report(metrics: dict[str, Any], trainer) -> None:
        if metrics[names.DIVERGED]:  # the scheduler ranks a diverged trial last
            metrics[settings.metric] = _worst(settings)
        with tempfile.TemporaryDirectory() as directory:
            write_checkpoint(directory, trainer)
            tune.report({**metrics, **placement}, checkpoint=tune.Checkpoint.from_directory(directory))

    train_and_evaluate(gan_config, data, settings.budget, settings.evaluation, report, classifier, device, state)
