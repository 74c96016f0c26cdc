"""deploy/slurm_study.sbatch under a real SLURM (a one-node slurmctld + slurmd with MUNGE, tests/slurm_cluster.py):
`sbatch` runs the study to completion; `scancel` leaves an `interrupted` parent run that `RESUME=1 sbatch`
completes without rerunning the finished trial. The recipe is submitted as a user would, with sbatch options
overriding its #SBATCH lines (one node, this machine's CPUs, no GPUs)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from processes import ROOT, free_port, study_runs, tiny_space, tune_results, wait_for
from slurm_cluster import slurm_cluster
from test_fault_tolerance import assert_complete_histories, assert_resumed_to_completion, completed_trials

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm():
    with slurm_cluster() as env:
        yield {**os.environ, **env}


def sbatch(slurm: dict[str, str], tmp_path: Path, space: str, **env: str) -> str:
    """The recipe as a user submits it; returns the job id. Its log is tmp_path/slurm-JOBID.log."""
    job_env = {**slurm, "SPACE": space, "SHARED": str(tmp_path), "VENV": sys.prefix,
               "MLFLOW_URI": f"sqlite:///{tmp_path}/mlflow.db", "CPUS_PER_TRIAL": "1", "GPUS_PER_TRIAL": "0",
               "RAY_PORT": str(free_port()), **env}
    done = subprocess.run(["sbatch", "--parsable", "--nodes=1", f"--cpus-per-task={os.cpu_count()}",
                           "--gpus-per-task=0", f"--chdir={tmp_path}", f"--output={tmp_path}/slurm-%j.log",
                           str(ROOT / "deploy" / "slurm_study.sbatch")], env=job_env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def job_state(slurm: dict[str, str], job: str) -> dict[str, str]:
    """scontrol's fields of the job (JobState, ExitCode, ...)."""
    shown = subprocess.run(["scontrol", "show", "job", "--oneliner", job], env=slurm, capture_output=True, text=True)
    return dict(field.split("=", 1) for field in shown.stdout.split() if "=" in field)


def wait_until_ended(slurm: dict[str, str], job: str, timeout: float = 420) -> dict[str, str]:
    ended = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
    return wait_for(lambda: (state := job_state(slurm, job)).get("JobState") in ended and state, timeout,
                    f"SLURM job {job} to end", interval=2)


def results(tmp_path: Path) -> dict[str, list[dict]]:
    """Tune's result lines of every trial under the recipe's storage ($SHARED/ray_results), by trial id."""
    return tune_results(tmp_path, "ray_results")


def log_of(tmp_path: Path, job: str) -> str:
    return (tmp_path / f"slurm-{job}.log").read_text()


def test_sbatch_runs_the_study_to_completion(slurm, tmp_path):
    job = sbatch(slurm, tmp_path, tiny_space(tmp_path, steps=200, eval_every=50, seeds=2))
    state = wait_until_ended(slurm, job)
    log = log_of(tmp_path, job)
    assert state["JobState"] == "COMPLETED" and state["ExitCode"] == "0:0", log[-3000:]
    assert "done in" in log and "completed" in log
    print(f"\nSLURM job {job} ({state['JobState']}, exit {state['ExitCode']}, {state.get('RunTime')}), its log:\n{log}")
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), children = study_runs(client, "tiny")
    assert parent.data.tags["gan_study.status"] == "completed" and len(children) == 2
    for child in children:
        assert_complete_histories(client, child, list(range(50, 201, 50)))


def test_scancel_leaves_an_interrupted_study_that_resume_completes(slurm, tmp_path):
    # three trials one after the other (each takes every CPU of the node), cancelled while the second trains
    space = tiny_space(tmp_path, steps=2000, eval_every=100, seeds=3)
    job = sbatch(slurm, tmp_path, space, CPUS_PER_TRIAL=str(os.cpu_count()))
    wait_for(lambda: len(results(tmp_path)) == 2 and min(len(r) for r in results(tmp_path).values()) >= 2, 300,
             "the second trial's second evaluation", interval=1)
    subprocess.run(["scancel", job], env=slurm, check=True)
    state = wait_until_ended(slurm, job)
    log = log_of(tmp_path, job)
    assert state["JobState"] == "CANCELLED", log[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), children = study_runs(client, "tiny")
    assert parent.data.tags["gan_study.status"] == "interrupted", log[-3000:]
    finished = completed_trials(children, results(tmp_path))
    assert len(finished) == 1, log[-3000:]

    resumed = sbatch(slurm, tmp_path, space, CPUS_PER_TRIAL=str(os.cpu_count()), RESUME="1")
    state = wait_until_ended(slurm, resumed)
    log = log_of(tmp_path, resumed)
    assert state["JobState"] == "COMPLETED" and state["ExitCode"] == "0:0", log[-3000:]
    assert_resumed_to_completion(client, parent, "tiny", 3, list(range(100, 2001, 100)), finished, results(tmp_path))
