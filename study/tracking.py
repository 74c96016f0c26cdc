"""MLflow logging from the driver: one parent run per study, one nested child run per trial.

Everything goes through a Tune callback on the driver, so trials on other nodes never touch
the tracking store. Parameters are logged once per trial (PBT changes a trial's config in
place, which makes Ray's own MLflowLoggerCallback crash on re-logging); metrics are logged at
every report with the generator step, and only for steps past the last one logged, so a
retried or resumed trial never repeats a point.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from study.trial import GRID_FILE, TrialSettings, resolve_trial_params

ROLE_TAG = "gan_study.role"
TRIAL_ID_TAG = "gan_study.trial_id"
STATUS_TAG = "gan_study.status"
SPACE_TAG = "gan_study.space"
DATASET_TAG = "gan_study.dataset"
PARENT_TAG = "mlflow.parentRunId"
PLACEMENT_KEYS = ("hostname", "node_id", "device", "gpu_ids")
STATUSES = ("running", "completed", "stopped_early", "diverged", "errored")


def default_tracking_uri(directory: Path | None = None) -> str:
    """An absolute sqlite URI in the working directory: MLflow >= 3.13 refuses plain file stores."""
    return f"sqlite:///{((directory or Path.cwd()) / 'mlflow.db').resolve()}"


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a sqlite store, artifacts live in `mlartifacts/` beside the database file."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    return None


def get_or_create_experiment(client, name: str, tracking_uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=default_artifact_location(tracking_uri))


def _numeric_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a Tune result, without Tune's bookkeeping or our non-metric fields."""
    skip = {"done_training", "config", "trial_id", "pid", "node_ip", "date", "hostname", "timestamp",
            "time_this_iter_s", "time_total_s", "time_since_restore", "iterations_since_restore",
            "training_iteration", "done", "should_checkpoint", *PLACEMENT_KEYS}
    metrics = {}
    for key, value in result.items():
        if key in skip or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            metrics[key] = float(value)
    return metrics


def trial_status(last_result: dict[str, Any], errored: bool) -> str:
    if errored:
        return "errored"
    if last_result.get("diverged"):
        return "diverged"
    return "completed" if last_result.get("done_training") else "stopped_early"


class MlflowStudyCallback(Callback):
    """Logs every trial of a Tune run as a child of `parent_run_id`."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, settings: TrialSettings):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.settings = settings
        self._client = None
        self._run_ids: dict[str, str] = {}
        self._last_step: dict[str, int] = {}
        self._last_result: dict[str, dict] = {}

    # MlflowClient holds sockets and locks: rebuilt after pickling (Tune saves callbacks with the experiment)
    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_client=None, _run_ids={}, _last_step={}, _last_result={})
        return state

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def _find_child_run(self, trial_id: str) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{self.parent_run_id}' and tags.`{TRIAL_ID_TAG}` = '{trial_id}'",
        )
        return runs[0].info.run_id if runs else None

    def _last_logged_step(self, run_id: str) -> int:
        history = self.client.get_metric_history(run_id, "loss_d")
        return max((m.step for m in history), default=-1)

    def _run_for(self, trial) -> str:
        """The trial's child run: found again after a retry or `--resume`, created otherwise."""
        trial_id = trial.trial_id
        if trial_id in self._run_ids:
            return self._run_ids[trial_id]
        run_id = self._find_child_run(trial_id)
        if run_id is None:
            params = resolve_trial_params(trial.config, self.settings)
            from gan.config import GanConfig

            config = GanConfig.from_flat(params)
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"trial-{trial_id}",
                tags={PARENT_TAG: self.parent_run_id, ROLE_TAG: "trial", TRIAL_ID_TAG: trial_id, STATUS_TAG: "running"},
            )
            run_id = run.info.run_id
            from mlflow.entities import Param

            logged = {**config.to_flat(), "capacity_ratio_log2": config.capacity_ratio_log2}
            self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in sorted(logged.items())])
            self._last_step[trial_id] = -1
        else:
            self.client.set_tag(run_id, STATUS_TAG, "running")
            self.client.update_run(run_id, status="RUNNING")
            self._last_step[trial_id] = self._last_logged_step(run_id)
        self._run_ids[trial_id] = run_id
        return run_id

    def on_trial_start(self, iteration, trials, trial, **info):
        self._run_for(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        from mlflow.entities import Metric

        run_id = self._run_for(trial)
        step = int(result["step"])
        self._last_result[trial.trial_id] = result
        if step <= self._last_step[trial.trial_id]:
            return  # already logged before a restart
        if self._last_step[trial.trial_id] < 0:
            for key in PLACEMENT_KEYS:
                self.client.set_tag(run_id, f"gan_study.{key}", str(result.get(key, "")))
        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in _numeric_metrics(result).items()]
        self.client.log_batch(run_id, metrics=metrics)
        self._last_step[trial.trial_id] = step

    def _finish(self, trial, errored: bool) -> None:
        run_id = self._run_for(trial)
        last = self._last_result.get(trial.trial_id, dict(trial.last_result or {}))
        status = trial_status(last, errored)
        self.client.set_tag(run_id, STATUS_TAG, status)
        self._log_sample_grid(run_id, trial)
        self.client.set_terminated(run_id, "FAILED" if status in ("errored", "diverged") else "FINISHED")

    def _log_sample_grid(self, run_id: str, trial) -> None:
        checkpoint = trial.checkpoint
        if checkpoint is None:
            return
        with tempfile.TemporaryDirectory() as directory:
            checkpoint.to_directory(directory)
            grid = Path(directory) / GRID_FILE
            if grid.exists():
                self.client.log_artifact(run_id, str(grid), artifact_path="samples")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, errored=True)
