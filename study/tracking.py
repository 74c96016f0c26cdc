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
from gan.config import ConfigError, GanConfig
from reports.store import default_artifact_location
from study.checkpoints import GRID_FILE
from study.dataset_input import TrainingData, log_training_input
from study.errors import error_reason
from study.run_names import config_id, trial_run_name
from study.tune_config import TrialSettings, trial_params
from study.write_queue import WriteQueue

PENDING_FILE = "mlflow_pending.jsonl"
RETRY_AFTER_S = 5.0  # after a failed write, wait this long before trying the store again
FINAL_FLUSH_TIMEOUT_S = 60.0  # at the end of a study, wait this long for a store that is restarting
# HTTP statuses with which the store refuses a write for good (a bad parameter, a deleted run): retrying
# cannot help and would hold back every later write; transport errors, 5xx, 401/403 and 429 are retried.
REFUSED_HTTP_STATUSES = (400, 404, 409)
# Tune's bookkeeping and our non-metric fields of a result
_NOT_METRICS = {names.DONE_TRAINING, names.REGIME, names.CONVERGENCE, names.OUTCOME, names.OUTCOME_REASON,
                names.ERROR, names.ERROR_TEXT, names.CLASSIFIER_FINGERPRINT,
                *names.PLACEMENT_KEYS, "config", "trial_id", "pid", "node_ip",
                "date", "timestamp", "time_this_iter_s", "time_total_s", "time_since_restore",
                "iterations_since_restore", "training_iteration", "done", "should_checkpoint"}


def get_or_create_experiment(client, name: str, tracking_uri: str) -> str:
    """The experiment's id, created if needed, marked as model training (see `mark_experiment_kind`)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, artifact_location=default_artifact_location(tracking_uri),
                                        tags={names.EXPERIMENT_KIND_TAG: names.EXPERIMENT_KIND_TRAINING})
    mark_experiment_kind(client, experiment)
    return experiment.experiment_id


def mark_experiment_kind(client, experiment) -> None:
    """MLflow 3's UI opens an experiment without a kind on its GenAI overview (traces, latency); marked
    custom_model_development it opens on the runs table. A kind a user has set stays as it is."""
    if names.EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment.experiment_id, names.EXPERIMENT_KIND_TAG, names.EXPERIMENT_KIND_TRAINING)


def numeric_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a Tune result, without Tune's bookkeeping or our non-metric fields."""
    return {key: float(value) for key, value in result.items()
            if key not in _NOT_METRICS and isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value)}


def refused(error: Exception) -> bool:
    """The store answered, and said no for good (see REFUSED_HTTP_STATUSES)."""
    from mlflow.exceptions import MlflowException

    return isinstance(error, MlflowException) and error.get_http_status_code() in REFUSED_HTTP_STATUSES


def ray_error_text(trial) -> str:
    """What Ray recorded about a trial's failures: one "Failure # n" section per failure, each with the
    error (a traceback, or why the worker process died)."""
    try:
        local = Path(trial.error_file) if trial.error_file else None
        text = local.read_text() if local is not None and local.exists() else trial.get_error()
    except Exception as error:  # the error file is on storage that is not reachable now
        text = f"(Ray's error file of trial {trial.trial_id} could not be read: {error})"
    return text or f"trial {trial.trial_id} failed; Ray recorded no error text"


def trial_status(last_result: dict[str, Any], errored: bool) -> str:
    if errored:
        return names.ERRORED
    if last_result.get(names.DIVERGED):
        return names.DIVERGED_STATUS
    return names.COMPLETED if last_result.get(names.DONE_TRAINING) else names.STOPPED_EARLY


def child_run_params(config: dict[str, Any], settings: TrialSettings) -> dict[str, str]:
    """Every GanConfig field and the capacity ratio, and an ablation's arm (its name, names.ARM); the raw values
    of a combination GanConfig refuses (the trial ends as errored and says why, its run still shows what it was
    given)."""
    params = trial_params(config, settings)
    try:
        gan_config = GanConfig.from_flat(params)
        logged = {**gan_config.to_flat(), names.CAPACITY_RATIO_LOG2: gan_config.capacity_ratio_log2}
    except ConfigError:
        logged = params
    if names.ARM in config:
        logged = {**logged, names.ARM: config[names.ARM]}
    return {key: str(value) for key, value in sorted(logged.items())}


def child_run_identity(config: dict[str, Any], settings: TrialSettings) -> tuple[str, str]:
    """(run name, configuration id) of a trial: see study.run_names. An arm's overrides are in the parameters the
    configuration id hashes (study.space refuses two arms that make one configuration)."""
    params = trial_params(config, settings)
    searched = [name for name in params if name not in settings.fixed] if settings.named_parameters is None \
        else list(settings.named_parameters)
    return trial_run_name(params, searched, config.get(names.ARM)), config_id(params)


class MlflowStudyCallback(Callback):
    """Logs every trial of a Tune run as a child of `parent_run_id`, surviving tracking-store outages."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, settings: TrialSettings,
                 spool_dir: str, training_data: TrainingData | None = None, tags: dict[str, str] | None = None,
                 tags_by_config: dict[str, dict[str, str]] | None = None):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.settings = settings
        self.spool_dir = spool_dir  # pending writes and the artifacts they need
        self.training_data = training_data  # each child run's dataset input (study.dataset_input)
        # tags of every child run (a two-stage study's stage), and of the runs of one configuration id
        # (study.run_names.config_id; a confirmation's rank and search score, study.confirm)
        self.tags = dict(tags or {})
        self.tags_by_config = dict(tags_by_config or {})
        # True while this is the driver that started the study: no child run can exist that it did not create
        self._fresh = True
        self._reset()

    def _reset(self) -> None:
        self._client = None
        self.queue = WriteQueue(self._apply, self.pending_path, f"MLflow at {self.tracking_uri}", refused,
                                RETRY_AFTER_S)
        self._run_ids: dict[str, str] = {}
        self._logged_step: dict[str, int] = {}
        self._last_result: dict[str, dict] = {}
        self._create_attempted: set[str] = set()

    # Tune pickles callbacks with the experiment state; the client and queue are rebuilt after.
    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_client", "queue", "_run_ids", "_logged_step", "_last_result", "_create_attempted"):
            state.pop(key)
        state["_fresh"] = False  # unpickled by a resumed driver: child runs of earlier drivers may exist
        return state

    def __setstate__(self, state):
        state.setdefault("training_data", None)  # pickled by a version that logged no dataset input
        state.setdefault("tags", {})  # pickled by a version without stage tags
        state.setdefault("tags_by_config", {})
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
        from mlflow.entities import Metric, Param, RunTag

        trial_id, kind = op["trial_id"], op["kind"]
        if kind == "create":
            # writes spooled by an older version carry no name or tags
            self._create_or_find(trial_id, op["params"], op.get("run_name") or f"trial-{trial_id}", op.get("tags", {}))
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
        elif kind == "tags":  # one request, not one per tag
            self.client.log_batch(run_id, tags=[RunTag(key, str(value)) for key, value in op["tags"].items()])
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

    def _create_or_find(self, trial_id: str, params: dict[str, str], run_name: str, tags: dict[str, str]) -> None:
        """The trial's child run: found again after a retry or `--resume`, created otherwise."""
        from mlflow.entities import Param

        # Search the store only where the run may exist without this process knowing it: a resumed driver, or
        # a create an outage cut short. A search per new trial would cost O(runs in the experiment) each: the
        # study's MLflow time would grow with the square of its trials (bench/study_scale.py).
        may_exist = not getattr(self, "_fresh", False) or trial_id in self._create_attempted
        if trial_id in self._run_ids or (may_exist and self._find_child_run(trial_id) is not None):
            run_id = self._run_ids[trial_id]
            # an outage may have cut a create between the run and its parameters; PBT's changed values stay as logged
            run = self.client.get_run(run_id)
            missing = [Param(k, v) for k, v in params.items() if k not in run.data.params]
            if missing:
                self.client.log_batch(run_id, params=missing)
            if self.training_data is not None and not run.inputs.dataset_inputs:
                log_training_input(self.client, run_id, self.training_data)
            self.client.set_tag(run_id, names.STATUS_TAG, names.RUNNING)
            self.client.update_run(run_id, status="RUNNING")
            return
        self._create_attempted.add(trial_id)
        run = self.client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={names.PARENT_TAG: self.parent_run_id, names.ROLE_TAG: names.ROLE_TRIAL,
                  names.TRIAL_ID_TAG: trial_id, names.STATUS_TAG: names.RUNNING, **tags},
        )
        self._run_ids[trial_id] = run.info.run_id
        self._logged_step[trial_id] = -1
        self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
        if self.training_data is not None:
            log_training_input(self.client, run.info.run_id, self.training_data)

    # --- Tune's hooks -------------------------------------------------------------------------
    def setup(self, **info):
        self.queue.flush(force=True)  # the writes an interrupted driver could not make, from the spool

    def on_trial_start(self, iteration, trials, trial, **info):
        run_name, configuration = child_run_identity(trial.config, self.settings)
        self._submit("create", trial.trial_id, params=child_run_params(trial.config, self.settings),
                     run_name=run_name, tags={names.CONFIG_ID_TAG: configuration, **self.tags,
                                              **self.tags_by_config.get(configuration, {})})

    def on_trial_result(self, iteration, trials, trial, result, **info):
        trial_id = trial.trial_id
        first = trial_id not in self._last_result
        self._last_result[trial_id] = result
        if first:
            tags = {names.placement_tag(key): str(result.get(key, "")) for key in names.PLACEMENT_KEYS}
            if names.CLASSIFIER_FINGERPRINT in result:  # the network the trial built: the report checks it
                tags[names.CLASSIFIER_FINGERPRINT_TAG] = str(result[names.CLASSIFIER_FINGERPRINT])
            self._submit("tags", trial_id, tags=tags)
        if names.ERROR in result:  # the trial could not run (study.trial): nothing was measured
            return
        self._submit("metrics", trial_id, step=int(result[names.STEP]), timestamp=int(time.time() * 1000),
                     metrics=numeric_metrics(result))

    def _finish(self, trial, error_text: str | None) -> None:
        """The trial's final status, tags and artifacts; `error_text` is Ray's error text of a failed trial."""
        last = self._last_result.get(trial.trial_id, dict(trial.last_result or {}))
        if names.ERROR in last:  # an error the trial reported itself, not to be retried (study.errors)
            error_text = str(last.get(names.ERROR_TEXT) or last[names.ERROR])
        status = trial_status(last, errored=error_text is not None)
        tags = {names.STATUS_TAG: status}
        if error_text is not None:
            tags[names.ERROR_TAG] = error_reason(error_text)
            self._submit("artifact", trial.trial_id, path=self._spool_file(trial.trial_id, names.ERROR_ARTIFACT,
                                                                           error_text), artifact_path=None)
        if names.REGIME in last:
            tags[names.REGIME_TAG] = str(last[names.REGIME])
        if names.CONVERGENCE in last:
            tags[names.CONVERGENCE_TAG] = str(last[names.CONVERGENCE])
        for key, tag in ((names.OUTCOME, names.OUTCOME_TAG), (names.OUTCOME_REASON, names.OUTCOME_REASON_TAG)):
            if key in last:
                tags[tag] = str(last[key])
        self._submit("tags", trial.trial_id, tags=tags)
        grid = self._copy_sample_grid(trial)
        if grid is not None:
            self._submit("artifact", trial.trial_id, path=grid, artifact_path="samples")
        failed = status in (names.ERRORED, names.DIVERGED_STATUS)
        self._submit("terminate", trial.trial_id, status="FAILED" if failed else "FINISHED")

    def _spool_file(self, trial_id: str, name: str, text: str) -> str:
        """A file in the spool, so that it can be logged after an outage too."""
        target = Path(self.spool_dir) / "artifacts" / trial_id / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return str(target)

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
        self._finish(trial, error_text=None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, error_text=ray_error_text(trial))

    def on_experiment_end(self, trials, **info):
        # the driver's last chance to log: give a restarting store some time before leaving writes spooled
        self.queue.drain(FINAL_FLUSH_TIMEOUT_S)
