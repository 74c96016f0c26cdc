"""The Ray Tune trainable: a thin adapter from Tune's config dict to `gan.run.train_and_evaluate`.

It restores from `tune.get_checkpoint()` when Tune restarts it (a retry after a failure, a resumed
study, a PBT exploit) and turns each evaluation into `tune.report` with a checkpoint. Before building
anything it estimates the trial's memory (gan.memory) and refuses a configuration the node cannot hold.
An error that would recur on every retry (study.errors) ends the trial with one last result that says
why, instead of an exception Tune would retry `--max-failures` times for nothing.
"""
from __future__ import annotations

import functools
import math
import socket
import tempfile
import traceback
from typing import Any

import torch

from gan import names
from gan.config import GanConfig
from gan.data import load_dataset
from gan.evaluation import needs_classifier
from gan.memory import available_memory, check_fits
from gan.metrics import load_or_train_classifier
from gan.run import train_and_evaluate
from study.checkpoints import read_trainer_state, write_checkpoint
from study.errors import error_reason, will_recur
from study.tune_config import TrialSettings, trial_params


@functools.lru_cache(maxsize=2)
def _cached_data_and_classifier(dataset: str, data_root: str | None, with_classifier: bool, device: str,
                                stacked=None):
    """Tune reuses a worker process for the next trial: keep the data and the classifier loaded."""
    data = load_dataset(dataset, data_root, download=False, stacked=stacked)
    return data, load_or_train_classifier(data, device=device) if with_classifier else None


def _device_and_placement() -> tuple[torch.device, dict[str, str]]:
    """CUDA when Ray gave this trial a GPU and one exists, else the CPU; and where the trial runs."""
    import ray

    gpu_ids = ray.get_gpu_ids()
    device = torch.device("cuda" if gpu_ids and torch.cuda.is_available() else "cpu")
    return device, {"hostname": socket.gethostname(), "node_id": ray.get_runtime_context().get_node_id(),
                    "gpu_ids": ",".join(str(g) for g in gpu_ids), "device": str(device)}


def _worst(settings: TrialSettings) -> float:
    """The score a scheduler ranks last."""
    return math.inf if settings.mode == "min" else -math.inf


def train_gan_trial(config: dict[str, Any], settings: TrialSettings) -> None:
    from ray import tune

    device, placement = _device_and_placement()
    try:
        _train(config, settings, device, placement)
    except Exception as error:
        if not will_recur(error):
            raise  # Tune retries it (a crash, a transient out-of-memory during training)
        text = "".join(traceback.format_exception(error))
        # Tune ends a trial whose function returns: no retry. The metric must be in every result.
        tune.report({names.ERROR: error_reason(text), names.ERROR_TEXT: text, settings.metric: _worst(settings),
                     **placement})


def _train(config: dict[str, Any], settings: TrialSettings, device: torch.device, placement: dict[str, str]) -> None:
    from ray import tune

    gan_config = GanConfig.from_flat(trial_params(config, settings))
    torch.set_num_threads(max(1, int(tune.get_context().get_trial_resources().required_resources.get("CPU", 1))))
    # the classifier is trained once per machine and cached on disk; the driver trains it before any trial
    data, classifier = _cached_data_and_classifier(settings.dataset, settings.data_root,
                                                   needs_classifier(settings.evaluation.metrics), str(device),
                                                   settings.dataset_options)
    # before anything is allocated: a configuration of terabytes is refused in milliseconds, with its estimate
    check_fits(gan_config, data.image_shape, len(data.train), available_memory(device))
    checkpoint = tune.get_checkpoint()
    state = None
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = read_trainer_state(directory, device)

    def report(metrics: dict[str, Any], trainer) -> None:
        if metrics[names.DIVERGED]:  # the scheduler ranks a diverged trial last
            metrics[settings.metric] = _worst(settings)
        with tempfile.TemporaryDirectory() as directory:
            write_checkpoint(directory, trainer)
            tune.report({**metrics, **placement}, checkpoint=tune.Checkpoint.from_directory(directory))

    train_and_evaluate(gan_config, data, settings.budget, settings.evaluation, report, classifier, device, state)
