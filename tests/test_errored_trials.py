"""Trials that error, in real studies: each errored trial's MLflow run says why (tag gan_study.error, artifact
error.txt), errors that would recur are not retried, and the study's status, exit status and one-line summary
say what happened. The studies join a one-node Ray cluster (2 CPUs) with --address.
"""
import os
import signal

import pytest
from mlflow.tracking import MlflowClient

from processes import finish_study, ray_cluster, run_study, start_study, study_runs, tiny_space, tune_results, wait_for


SPACE = """
name: errors
dataset: mnist5k
fixed: {{z_dim: 8, d_width: 8, batch_size: 16, {fixed}}}
search_space:
{searched}
search: {search}
{num_samples}
scheduler: fifo
metric: d_gap
mode: max
budget: {{steps: 40, eval_every: 20}}
evaluation: {{num_samples: 100, metrics: [discriminator], final: false}}
resources: {{cpus_per_trial: 1, max_concurrent: 2}}
"""


def space_file(tmp_path, fixed: str, searched: str, search: str = "grid", num_samples: str = "") -> str:
    path = tmp_path / "errors.yaml"
    path.write_text(SPACE.format(fixed=fixed, searched=searched, search=search, num_samples=num_samples))
    return str(path)


@pytest.fixture(scope="module")
def cluster():
    with ray_cluster(head=["--num-cpus=2"]) as address:
        yield address


def driver_lines(tmp_path, start: str) -> list[str]:
    return [line for line in (tmp_path / "driver.log").read_text().splitlines() if line.startswith(start)]


def error_text(client, run, tmp_path) -> str:
    return open(client.download_artifacts(run.info.run_id, "error.txt", str(tmp_path / run.info.run_id))).read()


def test_a_configuration_too_large_for_the_node_is_refused_once_and_the_rest_of_the_study_runs(cluster, tmp_path):
    space = space_file(tmp_path, "arch: dcgan, g_depth: 0, d_depth: 0", "  g_width: {grid: [4, 100000]}")
    run_study(tmp_path, space, "--address", cluster, "--max-failures", "2", expected_status=3)

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), children = study_runs(client)
    by_name = {child.info.run_name: child for child in children}
    assert set(by_name) == {"dcgan g4 d8 k1 s0", "dcgan g100000 d8 k1 s0"}
    too_large, normal = by_name["dcgan g100000 d8 k1 s0"], by_name["dcgan g4 d8 k1 s0"]
    assert too_large.data.tags["gan_study.status"] == "errored" and too_large.info.status == "FAILED"
    reason = too_large.data.tags["gan_study.error"]
    assert reason.startswith("gan.memory.ConfigTooLarge: dcgan with g_width 100000, d_width 8 needs at least ")
    assert " TB to train " in reason and "is available" in reason
    assert "Traceback (most recent call last)" in error_text(client, too_large, tmp_path)
    assert too_large.data.metrics == {}  # refused before anything was built or measured
    # not retried: one result, from one process, within seconds of the trial's start
    (refused,) = [r for t, r in tune_results(tmp_path).items() if t == too_large.data.tags["gan_study.trial_id"]]
    assert len(refused) == 1 and refused[0]["time_total_s"] < 60
    assert normal.data.tags["gan_study.status"] == "completed" and "gan_study.error" not in normal.data.tags
    assert parent.data.tags["gan_study.status"] == "completed_with_errors" and parent.info.status == "FINISHED"
    assert (parent.data.metrics["trials_errored"], parent.data.metrics["trials_completed"]) == (1, 1)
    (line,) = driver_lines(tmp_path, "gan-study: 1 of 2 trials errored")
    assert "most common reason (1 trial): gan.memory.ConfigTooLarge: dcgan with g_width 100000" in line
    assert "1 of 2 trials errored" in parent.data.tags["mlflow.note.content"]


def test_a_study_whose_every_trial_hits_a_configuration_error_fails_with_exit_status_1(cluster, tmp_path):
    # each value is valid alone, the combination is not: simultaneous updates make one D step per G step
    space = space_file(tmp_path, "arch: mlp, g_width: 8, g_depth: 1, d_depth: 1",
                       "  updates: {choice: [simultaneous]}\n  k: {choice: [2]}", "random", "num_samples: 2")
    run_study(tmp_path, space, "--address", cluster, "--max-failures", "2", expected_status=1)

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), children = study_runs(client)
    assert len(children) == 2
    for child in children:
        assert child.info.run_name == "mlp g8 d8 k2 updates=simultaneous s0"
        assert child.data.tags["gan_study.status"] == "errored"
        assert child.data.tags["gan_study.error"] == ("gan.config.ConfigError: updates: simultaneous makes one D and "
                                                      "one G update per minibatch: k must be 1, got 2")
        assert child.data.params["updates"] == "simultaneous" and child.data.params["k"] == "2"
    assert all(len(lines) == 1 for lines in tune_results(tmp_path).values())  # no retries
    assert parent.data.tags["gan_study.status"] == "failed" and parent.info.status == "FAILED"
    (line,) = driver_lines(tmp_path, "gan-study: every trial errored")
    assert line == ("gan-study: every trial errored (2 of 2); most common reason (2 trials): gan.config.ConfigError: "
                    "updates: simultaneous makes one D and one G update per minibatch: k must be 1, got 2")


def test_a_trial_whose_worker_keeps_dying_is_retried_then_errored_with_rays_error_text(cluster, tmp_path):
    space = tiny_space(tmp_path, steps=3000, eval_every=20)
    driver = start_study(tmp_path, space, "--address", cluster, "--max-failures", "1")

    def worker_of_attempt(attempt: int):
        lines = next(iter(tune_results(tmp_path).values()), [])
        pids = list(dict.fromkeys(line["pid"] for line in lines))
        return pids[attempt] if len(pids) > attempt else None

    os.kill(wait_for(lambda: worker_of_attempt(0), 240, "the trial's first report"), signal.SIGKILL)
    os.kill(wait_for(lambda: worker_of_attempt(1), 240, "the retried trial's first report"), signal.SIGKILL)
    finish_study(driver, tmp_path, expected_status=1)

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), (child,) = study_runs(client)
    assert child.data.tags["gan_study.status"] == "errored" and child.info.status == "FAILED"
    text = error_text(client, child, tmp_path)
    assert "Failure # 1" in text and "Failure # 2" in text  # Ray's error file: one section per failure
    reason = child.data.tags["gan_study.error"].rstrip("…")  # a line of Ray's text, shortened to 500 characters
    assert "worker process has died" in reason and any(line.strip().startswith(reason) for line in text.splitlines())
    assert child.data.metrics["loss_d"] > 0  # what the trial measured before it died stays
    assert parent.data.tags["gan_study.status"] == "failed"
    (line,) = driver_lines(tmp_path, "gan-study: every trial errored (1 of 1)")
    assert reason in line


def test_a_trial_given_a_gpu_that_cuda_cannot_use_ends_errored_instead_of_training_on_the_cpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine's GPU is usable: the trial would train on it")
    space = space_file(tmp_path, "arch: mlp, g_width: 8, g_depth: 1, d_depth: 1", "  k: {grid: [1]}")
    # a node that says it has a GPU: Ray hands the trial GPU 0, which CUDA on this machine cannot use
    with ray_cluster(head=["--num-cpus=2", "--num-gpus=1"]) as address:
        run_study(tmp_path, space, "--address", address, "--gpus-per-trial", "1", "--max-failures", "2",
                  expected_status=1)

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), (child,) = study_runs(client)
    assert child.data.tags["gan_study.status"] == "errored" and child.data.tags["gan_study.device"] == "cuda"
    reason = child.data.tags["gan_study.error"]
    assert reason.startswith("study.errors.GpuUnusableError: Ray gave this trial GPU 0, but CUDA cannot use it: ")
    assert "torch.cuda.is_available() is false" in reason or "CPU-only" in reason
    assert child.data.metrics == {}  # nothing trained on the CPU in the GPU's place
    assert all(len(lines) == 1 for lines in tune_results(tmp_path).values())  # not retried
    (line,) = driver_lines(tmp_path, "gan-study: every trial errored (1 of 1)")
    assert "study.errors.GpuUnusableError" in line
