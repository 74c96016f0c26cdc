"""MLflow -> pandas: one study's parent run and one row per trial, read only through MLflow's API.

A trial's value of a metric `name` is `final/<name>` (the final evaluation on the test split)
when the trial logged it, else the last logged value of `name` (a trial that is still running
or was stopped early). This module never reads Ray's files and does not import Ray.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gan import names
from reports.store import StoreError, connect, find_parent_run, search_all

# Frechet distances by preference: the classifier-feature FID, else the distance in pixel space.
FID_METRICS = {names.FID: "FID", names.PIXEL_FD: "pixel FD"}
PARAM_PREFIX, METRIC_PREFIX = "param.", "metric."  # column prefixes in StudyData.trials


class ReportError(StoreError):
    """A problem the user can fix (unknown experiment, no finished trials...): one line, exit status 2."""


@dataclass(frozen=True)
class StudyData:
    """One study as MLflow holds it.

    trials: one row per child run; columns run_id, trial_id, run_name, status, regime, convergence, outcome,
    outcome_reason, start, end,
    duration_s, then `param.<name>` (numbers parsed where they are numbers) and
    `metric.<name>` (the trial's value of each metric, final/ preferred, see the module doc).
    """

    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    parent_name: str
    parent_tags: dict[str, str]
    parent_params: dict[str, str]
    parent_metrics: dict[str, float]
    trials: pd.DataFrame
    fid_metric: str  # "fid" or "pixel_fd": the study's quality score, lower is better
    client: Any = field(repr=False, compare=False)  # the MlflowClient the study was read with

    @property
    def fid_label(self) -> str:
        return FID_METRICS[self.fid_metric]

    @property
    def finished(self) -> pd.DataFrame:
        """The trials that have a value of the quality score."""
        return self.trials[self.trials[METRIC_PREFIX + self.fid_metric].notna()]

    @property
    def searched(self) -> list[str]:
        return [name for name in self.parent_params.get("searched", "").split(",") if name]

    @property
    def reference(self) -> dict[str, float]:
        return {key[len(names.REFERENCE_PREFIX):]: value for key, value in sorted(self.parent_metrics.items())
                if key.startswith(names.REFERENCE_PREFIX)}

    def has_metric(self, name: str) -> bool:
        column = METRIC_PREFIX + name
        return column in self.trials and self.trials[column].notna().any()


def _parse_param(value: str):
    """MLflow params are strings: numbers become floats, everything else stays as written."""
    try:
        return float(value)
    except ValueError:
        return value


def trial_frame(children: list) -> pd.DataFrame:
    """One row per child run: identity, status, times, params, and each metric's trial value."""
    rows = []
    for run in children:
        metrics = run.data.metrics
        metric_names = {key[len(names.FINAL_PREFIX):] if key.startswith(names.FINAL_PREFIX) else key for key in metrics}
        start = run.info.start_time
        end = run.info.end_time
        row = {
            "run_id": run.info.run_id,
            "trial_id": run.data.tags.get(names.TRIAL_ID_TAG, run.info.run_name),
            "run_name": run.info.run_name,
            "status": run.data.tags.get(names.STATUS_TAG, "unknown"),
            "regime": run.data.tags.get(names.REGIME_TAG),
            "convergence": run.data.tags.get(names.CONVERGENCE_TAG),
            # runs logged before outcomes existed: their convergence label stands in
            "outcome": run.data.tags.get(names.OUTCOME_TAG, run.data.tags.get(names.CONVERGENCE_TAG)),
            "outcome_reason": run.data.tags.get(names.OUTCOME_REASON_TAG),
            "start": start,
            "end": end,
            "duration_s": (end - start) / 1000 if start and end else np.nan,
        }
        row.update({PARAM_PREFIX + key: _parse_param(value) for key, value in run.data.params.items()})
        row.update({METRIC_PREFIX + name: metrics.get(names.final(name), metrics.get(name)) for name in metric_names})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values("trial_id", kind="stable").reset_index(drop=True)


def check_one_classifier(parent, trial_runs: list) -> None:
    """ReportError when the study's runs were scored by different domain classifiers (their fingerprint tags,
    gan.metrics.classifier.weights_fingerprint): such FIDs, KIDs and P/R cannot be pooled, nor compared with the
    reference rows. Runs logged before fingerprints were recorded carry none and are not counted."""
    tag = names.CLASSIFIER_FINGERPRINT_TAG
    trials_by_value = Counter(run.data.tags[tag] for run in trial_runs if run.data.tags.get(tag))
    study_value = parent.data.tags.get(tag)
    values = sorted(set(trials_by_value) | ({study_value} if study_value else set()))
    if len(values) > 1:
        scored = "; ".join(f"{value}: {trials_by_value[value]} trial(s)"
                           + (" and the study" if value == study_value else "") for value in values)
        raise ReportError(f"study {parent.info.run_name} ({parent.info.run_id}) was scored by {len(values)} different "
                          f"classifiers ({scored}): their scores cannot be pooled or compared")


def load_study(tracking_uri: str, experiment: str, run_id: str | None = None) -> StudyData:
    try:
        client = connect(tracking_uri, must_exist=True)
        experiment_id, parent = find_parent_run(client, experiment, run_id)
    except StoreError as error:
        raise ReportError(str(error)) from None
    parent_id = parent.info.run_id
    children = search_all(client, experiment_id, f"tags.`{names.PARENT_TAG}` = '{parent_id}'")
    trial_runs = [run for run in children if run.data.tags.get(names.ROLE_TAG, names.ROLE_TRIAL) == names.ROLE_TRIAL]
    check_one_classifier(parent, trial_runs)
    trials = trial_frame(trial_runs)
    columns = {name: METRIC_PREFIX + name for name in FID_METRICS}
    present = [name for name, column in columns.items() if column in trials and trials[column].notna().any()]
    if not present:
        raise ReportError(f"study {parent.info.run_name} ({parent_id}) in experiment '{experiment}' has no finished "
                          f"trial: {len(trials)} trial run(s), none with {' or '.join(FID_METRICS)}")
    return StudyData(
        tracking_uri=tracking_uri, experiment=experiment, experiment_id=experiment_id, parent_run_id=parent_id,
        parent_name=parent.info.run_name or parent_id, parent_tags=dict(parent.data.tags),
        parent_params=dict(parent.data.params), parent_metrics=dict(parent.data.metrics), trials=trials,
        fid_metric=present[0], client=client,
    )


def metric_history(study: StudyData, run_id: str, name: str) -> pd.DataFrame:
    """Columns step, value of one metric of one run, by step (the generator step)."""
    history = study.client.get_metric_history(run_id, name)
    frame = pd.DataFrame([(m.step, m.value) for m in history], columns=["step", "value"])
    return frame.sort_values("step", kind="stable").drop_duplicates("step", keep="last").reset_index(drop=True)


def download_samples(study: StudyData, run_id: str, directory: Path) -> Path | None:
    """The trial's 8x8 grid of fixed-noise samples, or None when it logged none."""
    client = study.client
    folder = Path(names.SAMPLES_ARTIFACT).parent.as_posix()
    if not any(a.path == names.SAMPLES_ARTIFACT for a in client.list_artifacts(run_id, folder)):
        return None
    directory.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, names.SAMPLES_ARTIFACT, str(directory)))
