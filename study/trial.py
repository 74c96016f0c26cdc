"""The Ray Tune function trainable: dict config -> typed GanConfig -> gan training loop.

It restores from `tune.get_checkpoint()` when Tune restarts it (a retry after a failure, a
resumed study, a PBT exploit), trains in chunks of `eval_every`, evaluates, and reports the
metrics together with a checkpoint of the trainer's full state and its sample grid.
"""
from __future__ import annotations

import functools
import math
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gan.config import GanConfig
from gan.data import load_dataset
from gan.evaluation import FINAL_PARZEN_SAMPLES, balance_regime, evaluate, needs_classifier
from gan.metrics import load_or_train_classifier
from gan.trainer import GanTrainer, save_image
from study.space import Budget, Evaluation

SEED_INDEX = "seed_index"  # set by the grid and PBT variants
REPEATER_INDEX = "__trial_index__"  # set by ray.tune.search.Repeater around Optuna
GRID_PARAMS = "params"  # the grid search passes each grid point as one dict
CHECKPOINT_FILE = "trainer.pt"
GRID_FILE = "samples.png"
# Evaluation noise differs from training noise and is the same at every evaluation of a trial.
EVAL_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a study shares; resolved on the driver (absolute paths)."""

    dataset: str
    data_root: str | None
    fixed: dict[str, Any]
    budget: Budget
    evaluation: Evaluation
    metric: str
    mode: str
    base_seed: int


def resolve_trial_params(config: dict[str, Any], settings: TrialSettings) -> dict[str, Any]:
    """The flat GanConfig parameters of a trial: fixed values, sampled values and its seed."""
    params = dict(settings.fixed)
    seed_index = 0
    for key, value in config.items():
        if key == GRID_PARAMS:
            params.update(value)
        elif key in (SEED_INDEX, REPEATER_INDEX):
            seed_index = int(value)
        else:
            # Optuna needs distinct names for one parameter's conditional variants: "name#i"
            params[key.split("#")[0]] = value
    params["seed"] = settings.base_seed + seed_index
    return params


@functools.lru_cache(maxsize=2)
def _cached_data_and_classifier(dataset: str, data_root: str | None, with_classifier: bool, device: str):
    """Tune reuses a worker process for the next trial: keep the data and the classifier loaded."""
    data = load_dataset(dataset, data_root, download=False)
    return data, load_or_train_classifier(data, device=device) if with_classifier else None


def _device() -> torch.device:
    """CUDA when Ray gave this trial a GPU and one exists; the CPU otherwise."""
    import ray

    if ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _placement() -> dict[str, str]:
    import ray

    return {
        "hostname": socket.gethostname(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()),
    }


def _worst(mode: str) -> float:
    return math.inf if mode == "min" else -math.inf


def train_gan_trial(config: dict[str, Any], settings: TrialSettings) -> None:
    from ray import tune

    gan_config = GanConfig.from_flat(resolve_trial_params(config, settings))
    device = _device()
    cpus = max(1, int(tune.get_context().get_trial_resources().required_resources.get("CPU", 1)))
    torch.set_num_threads(cpus)

    metrics = settings.evaluation.metrics
    # the classifier is trained once per machine and cached on disk; the driver trains it before any trial
    data, classifier = _cached_data_and_classifier(settings.dataset, settings.data_root, needs_classifier(metrics),
                                                   str(device))
    trainer = GanTrainer(gan_config, data.train.images, device)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = torch.load(Path(directory) / CHECKPOINT_FILE, map_location=device, weights_only=False)
        trainer.load_state_dict(state, allow_hyperparameter_change=True)

    total_steps, eval_every = settings.budget.generator_steps(len(data.train), gan_config.batch_size, gan_config.k)
    eval_seed = gan_config.seed + EVAL_SEED_OFFSET
    placement = {**_placement(), "device": str(device)}
    # restored_from_step: the generator step this run resumed at (0 for a fresh start), evidence of a resume
    static = {"g_params": trainer.g_params, "d_params": trainer.d_params, "total_steps": total_steps,
              "restored_from_step": trainer.step}

    # wall time spent training and evaluating in this process, reported so a study shows what evaluation costs
    seconds = {"time_train_s": 0.0, "time_eval_s": 0.0, "time_final_eval_s": 0.0}
    while trainer.step < total_steps and not trainer.diverged:
        # (1) train up to the next evaluation point
        next_eval = min(total_steps, (trainer.step // eval_every + 1) * eval_every)
        started = time.perf_counter()
        stats = trainer.train(next_eval - trainer.step)
        seconds["time_train_s"] += time.perf_counter() - started
        result: dict[str, Any] = {
            "step": stats.step, "d_steps": stats.d_steps, "epoch": stats.d_steps * gan_config.batch_size / len(data.train),
            "loss_d": stats.loss_d, "loss_g": stats.loss_g, "d_real": stats.d_real, "d_fake": stats.d_fake,
            "lr_g": gan_config.lr_g, "lr_d": gan_config.lr_d, "k": gan_config.k,
            "diverged": int(stats.diverged), "done_training": False, **static, **placement,
        }
        # (2) evaluate on the validation split; a diverged run gets the worst score and stops
        if stats.diverged:
            result[settings.metric] = _worst(settings.mode)
            result["regime"] = balance_regime({}, diverged=True, num_classes=data.num_classes)
        else:
            started = time.perf_counter()
            current = evaluate(trainer, data.validation, data.validation, metrics, settings.evaluation.num_samples,
                               eval_seed, classifier, data.num_classes)
            seconds["time_eval_s"] += time.perf_counter() - started
            result.update(current)
            # (3) the final evaluation on the test split at the protocol sizes (10,000 samples)
            if trainer.step >= total_steps:
                result["done_training"] = True
                if settings.evaluation.final:
                    started = time.perf_counter()
                    current = evaluate(trainer, data.test, data.validation, metrics,
                                       max(settings.evaluation.num_samples, FINAL_PARZEN_SAMPLES), eval_seed,
                                       classifier, data.num_classes)
                    seconds["time_final_eval_s"] = time.perf_counter() - started
                    result.update({f"final/{name}": value for name, value in current.items()})
            result["regime"] = balance_regime(current, diverged=False, num_classes=data.num_classes)
        result.update(seconds)
        # (4) report with a checkpoint of the full state and the fixed-noise sample grid
        with tempfile.TemporaryDirectory() as directory:
            torch.save(trainer.state_dict(), os.path.join(directory, CHECKPOINT_FILE))
            save_image(trainer.sample_grid(), os.path.join(directory, GRID_FILE))
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(directory))
