"""MLflow logging from the driver: one parent run per study, one nested child run per trial.

Everything goes through a Tune callback on the driver, so trials on other nodes never touch
the tracking store. Parameters are logged once per trial (PBT changes a trial's config in
place, which makes Ray's own MLflowLoggerCallback crash on re-logging); metrics are logged at
every report with the generator step, and only for steps past the last one logged, so a
retried or resumed trial never repeats a point.

The tracking store may go away (a restarted `mlflow server`): every write goes through a
`WriteQueue`, spooled to the study's directory while the store is away and replayed by
`--resume`. Nothing that was reported is dropped, and the study goes on.
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from gan import names
from gan.config import GanConfig
from reports.store import default_artifact_location
from study.checkpoints import GRID_FILE
from study.tune_config import TrialSettings, trial_params
from study.write_queue import WriteQueue

PENDING_FILE = "mlflow_pending.jsonl"
RETRY_AFTER_S = 5.0  # after a failed write, wait this long before trying the store again
FINAL_FLUSH_TIMEOUT_S = 60.0  # at the end of a study, wait this long for a store that is restarting
# HTTP statuses with which the store refuses a write for good (a bad parameter, a deleted run): retrying
# cannot help and would hold back every later write; transport errors, 5xx, 401/403 and 429 are retried.
REFUSED_HTTP_STATUSES = (400, 404, 409)
# Tune's bookkeeping and our non-metric fields of a result
_NOT_METRICS = {names.DONE_TRAINING, names.REGIME, names.CONVERGENCE, *names.PLACEMENT_KEYS, "config", "trial_id", "pid", "node_ip",
                "date", "timestamp", "time_this_iter_s", "time_total_s", "time_since_restore",
                "iterations_since_restore", "training_iteration", "done", "should_checkpoint"}


def get_or_create_experiment(client, name: str, tracking_uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=default_artifact_location(tracking_uri))


def numeric_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a Tune result, without Tune's bookkeeping or our non-metric fields."""
    return {key: float(value) for key, value in result.items()
            if key not in _NOT_METRICS and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}


def refused(error: Exception) -> bool:
    """The store answered, and said no for good (see REFUSED_HTTP_STATUSES)."""
    from mlflow.exceptions import MlflowException

    return isinstance(error, MlflowException) and error.get_http_status_code() in REFUSED_HTTP_STATUSES


def trial_status(last_result: dict[str, Any], errored: bool) -> str:
    if errored:
        return names.ERRORED
    if last_result.get(names.DIVERGED):
        return names.DIVERGED_STATUS
    return names.COMPLETED if last_result.get(names.DONE_TRAINING) else names.STOPPED_EARLY


def child_run_params(config: dict[str, Any], settings: TrialSettings) -> dict[str, str]:
    gan_config = GanConfig.from_flat(trial_params(config, settings))
    logged = {**gan_config.to_flat(), names.CAPACITY_RATIO_LOG2: gan_config.capacity_ratio_log2}
    return {key: str(value) for key, value in sorted(logged.items())}


class MlflowStudyCallback(Callback):
    """Logs every trial of a Tune run as a child of `parent_run_id`, surviving tracking-store outages."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, settings: TrialSettings,
                 spool_dir: str):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.settings = settings
        self.spool_dir = spool_dir  # pending writes and the artifacts they need
        self._reset()

    def _reset(self) -> None:
        self._client = None
        self.queue = WriteQueue(self._apply, self.pending_path, f"MLflow at {self.tracking_uri}", refused,
                                RETRY_AFTER_S)
        self._run_ids: dict[str, str] = {}
        self._logged_step: dict[str, int] = {}
        self._last_result: dict[str, dict] = {}

    # Tune pickles callbacks with the experiment state; the client and queue are rebuilt after.
    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_client", "queue", "_run_ids", "_logged_step", "_last_result"):
            state.pop(key)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(self.tracking_uri)
        return self._client

    @property
    def pending_path(self) -> Path:
        return Path(self.spool_dir) / PENDING_FILE

    def _submit(self, kind: str, trial_id: str, **payload) -> None:
        self.queue.submit({"kind": kind, "trial_id": trial_id, **payload})

    # --- applying one write ------------------------------------------------------------------
    def _apply(self, op: dict) -> None:
        from mlflow.entities import Metric, Param

        trial_id, kind = op["trial_id"], op["kind"]
        if kind == "create":
            self._create_or_find(trial_id, op["params"])
            return
        run_id = self._run_ids.get(trial_id) or self._find_child_run(trial_id)
        if run_id is None:
            raise RuntimeError(f"no MLflow run for trial {trial_id}")
        if kind == "metrics":
            if op["step"] <= self._logged_step.get(trial_id, -1):
                return  # logged before a restart
            metrics = [Metric(k, v, op["timestamp"], op["step"]) for k, v in op["metrics"].items()]
            self.client.log_batch(run_id, metrics=metrics)
            self._logged_step[trial_id] = op["step"]
        elif kind == "tags":
            for key, value in op["tags"].items():
                self.client.set_tag(run_id, key, value)
        elif kind == "artifact":
            if not Path(op["path"]).exists():
                return  # uploaded (and removed) before the driver stopped
            self.client.log_artifact(run_id, op["path"], artifact_path=op["artifact_path"])
            Path(op["path"]).unlink(missing_ok=True)
        elif kind == "terminate":
            self.client.set_terminated(run_id, op["status"])
        elif kind == "params":
            self.client.log_batch(run_id, params=[Param(k, v) for k, v in op["params"].items()])

    def _find_child_run(self, trial_id: str) -> str | None:
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{names.PARENT_TAG}` = '{self.parent_run_id}' "
                          f"and tags.`{names.TRIAL_ID_TAG}` = '{trial_id}'",
        )
        if not runs:
            return None
        run_id = runs[0].info.run_id
        self._run_ids[trial_id] = run_id
        history = self.client.get_metric_history(run_id, names.LOSS_D)
        self._logged_step[trial_id] = max((m.step for m in history), default=-1)
        return run_id

    def _create_or_find(self, trial_id: str, params: dict[str, str]) -> None:
        """The trial's child run: found again after a retry or `--resume`, created otherwise."""
        from mlflow.entities import Param

        if trial_id in self._run_ids or self._find_child_run(trial_id) is not None:
            run_id = self._run_ids[trial_id]
            # an outage may have cut a create between the run and its parameters; PBT's changed values stay as logged
            logged = self.client.get_run(run_id).data.params
            missing = [Param(k, v) for k, v in params.items() if k not in logged]
            if missing:
                self.client.log_batch(run_id, params=missing)
            self.client.set_tag(run_id, names.STATUS_TAG, names.RUNNING)
            self.client.update_run(run_id, status="RUNNING")
            return
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{trial_id}",
            tags={names.PARENT_TAG: self.parent_run_id, names.ROLE_TAG: names.ROLE_TRIAL,
                  names.TRIAL_ID_TAG: trial_id, names.STATUS_TAG: names.RUNNING},
        )
        self._run_ids[trial_id] = run.info.run_id
        self._logged_step[trial_id] = -1
        self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])

    # --- Tune's hooks -------------------------------------------------------------------------
    def setup(self, **info):
        self.queue.flush(force=True)  # the writes an interrupted driver could not make, from the spool

    def on_trial_start(self, iteration, trials, trial, **info):
        self._submit("create", trial.trial_id, params=child_run_params(trial.config, self.settings))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        trial_id = trial.trial_id
        first = trial_id not in self._last_result
        self._last_result[trial_id] = result
        if first:
            tags = {names.placement_tag(key): str(result.get(key, "")) for key in names.PLACEMENT_KEYS}
            self._submit("tags", trial_id, tags=tags)
        self._submit("metrics", trial_id, step=int(result[names.STEP]), timestamp=int(time.time() * 1000),
                     metrics=numeric_metrics(result))

    def _finish(self, trial, errored: bool) -> None:
        last = self._last_result.get(trial.trial_id, dict(trial.last_result or {}))
        status = trial_status(last, errored)
        tags = {names.STATUS_TAG: status}
        if names.REGIME in last:
            tags[names.REGIME_TAG] = str(last[names.REGIME])
        if names.CONVERGENCE in last:
            tags[names.CONVERGENCE_TAG] = str(last[names.CONVERGENCE])
        self._submit("tags", trial.trial_id, tags=tags)
        grid = self._copy_sample_grid(trial)
        if grid is not None:
            self._submit("artifact", trial.trial_id, path=grid, artifact_path="samples")
        failed = status in (names.ERRORED, names.DIVERGED_STATUS)
        self._submit("terminate", trial.trial_id, status="FAILED" if failed else "FINISHED")

    def _copy_sample_grid(self, trial) -> str | None:
        """Copy the last checkpoint's grid into the spool, so it can be logged after an outage too."""
        checkpoint = trial.checkpoint
        if checkpoint is None:
            return None
        target = Path(self.spool_dir) / "artifacts" / trial.trial_id / GRID_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        with checkpoint.as_directory() as directory:
            source = Path(directory) / GRID_FILE
            if not source.exists():
                return None
            shutil.copyfile(source, target)
        return str(target)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, errored=True)

    def on_experiment_end(self, trials, **info):
        # the driver's last chance to log: give a restarting store some time before leaving writes spooled
        self.queue.drain(FINAL_FLUSH_TIMEOUT_S)
