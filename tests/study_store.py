"""An MLflow store filled directly with a study as gan-study logs it: a parent run and one child run per trial.

The report tests read studies from here instead of running one, so their expected values are known exactly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from PIL import Image

from gan import names

GRID_SIZE = 8 * 28 + 9 * 2  # the 8 x 8 sample grid with 2-pixel padding


@dataclass
class Trial:
    params: dict  # GanConfig fields and capacity_ratio_log2
    final: dict = field(default_factory=dict)  # metric -> value, logged as final/<metric>
    history: dict = field(default_factory=dict)  # metric -> [(step, value), ...]
    status: str = names.COMPLETED
    regime: str | None = "balanced"
    tags: dict = field(default_factory=dict)


def write_grid(path: Path, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 255, (GRID_SIZE, GRID_SIZE), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def fill_study(tmp_path: Path, experiment: str, trials: list[Trial], parent_params: dict | None = None,
               parent_metrics: dict | None = None, with_grids: bool = True) -> tuple[str, MlflowClient, str]:
    """(tracking URI, client, parent run id) of a new sqlite store under tmp_path holding the study."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(experiment, artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment_id, run_name=f"{experiment}-study", tags={
        names.ROLE_TAG: names.ROLE_STUDY, names.STATUS_TAG: names.COMPLETED, names.SPACE_TAG: "space.yaml",
        names.DATASET_TAG: "mnist5k"})
    params = {"search": "grid", "scheduler": "fifo", "metric": names.FID, "mode": "min", "fixed": "{}",
              "searched": "g_width,d_width", **(parent_params or {})}
    client.log_batch(parent.info.run_id, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=[Metric(k, float(v), 0, 0) for k, v in (parent_metrics or {}).items()])
    for index, trial in enumerate(trials):
        tags = {names.PARENT_TAG: parent.info.run_id, names.ROLE_TAG: names.ROLE_TRIAL,
                names.TRIAL_ID_TAG: f"t_{index:05d}", names.STATUS_TAG: trial.status, **trial.tags}
        if trial.regime is not None:
            tags[names.REGIME_TAG] = trial.regime
        run = client.create_run(experiment_id, run_name=f"trial-{index}", tags=tags)
        metrics = [Metric(names.final(k), float(v), 0, 0) for k, v in trial.final.items()]
        metrics += [Metric(k, float(v), 0, step) for k, points in trial.history.items() for step, v in points]
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in trial.params.items()],
                         metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
        if with_grids:
            folder = tmp_path / f"grid-{index}"
            folder.mkdir()
            grid = write_grid(folder / Path(names.SAMPLES_ARTIFACT).name, index)
            client.log_artifact(run.info.run_id, str(grid), artifact_path="samples")
        client.set_terminated(run.info.run_id, "FINISHED")
    client.set_terminated(parent.info.run_id, "FINISHED")
    return uri, client, parent.info.run_id
