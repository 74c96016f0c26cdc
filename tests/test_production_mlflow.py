"""Hundreds of trials against MLflow's production deployment: deploy/postgres_server.sh, deploy/mlflow_server.sh
on it with basic auth and several workers, a study of 200 short trials with 8 running at once (a quarter CPU
each on a local Ray). Every child run exists once, every metric history has a point for each of its trial's
reports, nothing is left in the spool, and the report builds from the server."""
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from study.tracking import PENDING_FILE
from processes import DeployedMlflowServer, postgres_server, run_study, steps_of, study_runs, tune_results

pytestmark = pytest.mark.slow

TRIALS, CONCURRENT, STEPS, EVAL_EVERY = 200, 8, 20, 10
PASSWORD = "not-a-secret-0f-this-test"
SPACE = f"""
name: many
dataset: mnist5k
fixed: {{arch: mlp, z_dim: 8, g_width: 8, d_width: 8, g_depth: 1, d_depth: 1, batch_size: 16}}
search_space:
  k: {{grid: [1]}}
search: grid
scheduler: fifo
metric: pixel_fd
mode: min
seeds_per_config: {TRIALS}
budget: {{steps: {STEPS}, eval_every: {EVAL_EVERY}}}
evaluation: {{num_samples: 100, metrics: [pixel_fd, discriminator], final: false}}
resources: {{cpus_per_trial: {1 / CONCURRENT * 2}, max_concurrent: {CONCURRENT}}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with postgres_server() as backend:
        deployed = DeployedMlflowServer(tmp_path_factory.mktemp("mlflow"), MLFLOW_BACKEND=backend,
                                        MLFLOW_WORKERS="4", MLFLOW_AUTH_ADMIN_PASSWORD=PASSWORD)
        deployed.start()
        try:
            yield deployed
        finally:
            deployed.stop()


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, change in events:  # an end sorts before a start at the same instant
        running += change
        most = max(most, running)
    return most


def test_two_hundred_trials_on_postgresql_behind_basic_auth(server, tmp_path, monkeypatch):
    credentials = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    space = tmp_path / "many.yaml"
    space.write_text(SPACE)
    run_study(tmp_path, str(space), "--report", tracking_uri=server.uri, env=credentials, timeout=900)
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(server.uri)

    (parent,), children = study_runs(client)
    assert parent.data.tags["gan_study.status"] == "completed"
    trial_ids = [child.data.tags["gan_study.trial_id"] for child in children]
    assert len(children) == TRIALS and len(set(trial_ids)) == TRIALS  # each trial's run, once
    results = tune_results(tmp_path)
    assert set(results) == set(trial_ids)
    for child in children:
        reported = [line["step"] for line in results[child.data.tags["gan_study.trial_id"]]]
        assert reported == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
        for metric in ("pixel_fd", "d_real", "d_fake"):  # one point per report, none twice
            assert steps_of(client, child.info.run_id, metric) == reported, (child.info.run_name, metric)
    # 8 trials ran at once: the driver opens a child run as Tune starts its trial and closes it as it ends
    assert most_at_once([(child.info.start_time, child.info.end_time) for child in children]) >= CONCURRENT
    assert not (Path(parent.data.params["spool_dir"]) / PENDING_FILE).exists()  # every write reached the server
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "report")]
    assert "report/report.html" in artifacts, artifacts
