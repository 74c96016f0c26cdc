"""The batch recipes of deploy/ run for real: deploy/ray_job_submit.sh against a local Ray cluster's Jobs API.

The job's logs stream with `ray job logs --follow`, the study completes and lands in MLflow.
"""
import os
import re
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from components import missing_component
from processes import ROOT, free_port, ray_nodes, study_runs, tiny_space, tune_results, wait_for
from test_fault_tolerance import assert_complete_histories, assert_resumed_to_completion, completed_trials

pytestmark = pytest.mark.slow  # starts Ray clusters and runs studies



@pytest.fixture(scope="module")
def job_server():
    """A one-node cluster with its dashboard (the Jobs API) on a free port; yields the job server's URL."""
    from ray._private.utils import get_dashboard_dependency_error

    if get_dashboard_dependency_error() is not None:
        missing_component("ray[default]", f"Ray's Jobs API needs ray[default]: {get_dashboard_dependency_error()}")
    port = free_port()
    # the head's job agent gets its own port too: Ray's fixed default (52365) may be another cluster's on this machine
    with ray_nodes(head=["--num-cpus=2", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                         f"--dashboard-port={port}", f"--dashboard-agent-listen-port={free_port()}"]):
        yield f"http://127.0.0.1:{port}"


def ray_job(job_server: str, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(["ray", "job", *args, "--address", job_server], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout + done.stderr


def submit(job_server: str, tmp_path, space: str, *args: str) -> str:
    """deploy/ray_job_submit.sh as a user runs it, from the checkout; returns the job's id."""
    env = {**os.environ, "RAY_HEAD": "127.0.0.1", "RAY_DASHBOARD_PORT": job_server.rsplit(":", 1)[1],
           "MLFLOW_URI": f"sqlite:///{tmp_path}/mlflow.db", "STORAGE": str(tmp_path / "ray")}

    def submitted():
        done = subprocess.run(["bash", str(ROOT / "deploy" / "ray_job_submit.sh"), space, "--experiment", "study",
                               *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        output = done.stdout + done.stderr
        if "No available agent to submit job" in output:  # the head's job agent is still starting
            return None
        assert done.returncode == 0, output[-3000:]
        return re.search(r"Job '(raysubmit_\w+)' submitted successfully", output).group(1)

    return wait_for(submitted, 120, "the Ray job agent to take the job", interval=3)


def status(job_server: str, job: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(job_server).get_job_status(job).value)


def test_a_submitted_study_streams_its_logs_completes_and_lands_in_mlflow(job_server, tmp_path):
    job = submit(job_server, tmp_path, tiny_space(tmp_path, steps=200, eval_every=50, seeds=2))
    logs = ray_job(job_server, "logs", "--follow", job)  # returns when the job ends

    assert "study 'tiny'" in logs and "done in" in logs and "completed" in logs, logs[-3000:]
    assert status(job_server, job) == "SUCCEEDED", logs[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), children = study_runs(client)
    assert parent.data.tags["gan_study.status"] == "completed" and len(children) == 2
    for child in children:
        assert_complete_histories(client, child, list(range(50, 201, 50)))


def test_a_stopped_job_leaves_an_interrupted_study_that_a_resubmitted_job_completes(job_server, tmp_path):
    # three trials one after the other, the job stopped while the second one trains
    space = tiny_space(tmp_path, steps=2000, eval_every=100, seeds=3)
    job = submit(job_server, tmp_path, space, "--max-concurrent", "1")
    wait_for(lambda: len(tune_results(tmp_path)) == 2 and min(len(r) for r in tune_results(tmp_path).values()) >= 2,
             240, "the second trial's second evaluation", interval=1)
    ray_job(job_server, "stop", job)  # waits until the job has stopped
    logs = ray_job(job_server, "logs", job)
    assert status(job_server, job) == "STOPPED", logs[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), children = study_runs(client)
    assert parent.data.tags["gan_study.status"] == "interrupted", logs[-3000:]
    finished = completed_trials(children, tune_results(tmp_path))
    assert len(finished) == 1, logs[-3000:]

    resumed = submit(job_server, tmp_path, space, "--max-concurrent", "1", "--resume")
    logs = ray_job(job_server, "logs", "--follow", resumed)
    assert status(job_server, resumed) == "SUCCEEDED", logs[-3000:]
    assert_resumed_to_completion(client, parent, "study", 3, list(range(100, 2001, 100)), finished,
                                 tune_results(tmp_path))
