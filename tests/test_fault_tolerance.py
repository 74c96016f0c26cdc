"""Faults injected into real studies: a killed trial worker, an interrupted driver, a restarted MLflow
server, a diverging trial. Every study ends with exactly one MLflow child run per trial and complete
metric histories: every evaluation step once, in order.

The studies join a one-node Ray cluster (`ray start --head`, 2 CPUs) with --address, so that each
driver starts in seconds.
"""
import os
import signal
import time

import pytest
from mlflow.tracking import MlflowClient

from processes import (MlflowServer, finish_study, ray_cluster, run_study, start_study, steps_of, study_runs,
                       tiny_space, tune_results, wait_for)

REPORTED = ("loss_d", "loss_g", "d_real", "d_fake", "eval_d_real", "d_gap", "restored_from_step")


@pytest.fixture(scope="module")
def cluster():
    with ray_cluster(head=["--num-cpus=2"]) as address:
        yield address


def sqlite_client(tmp_path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")


def assert_complete_histories(client, child, steps: list[int]) -> None:
    for metric in REPORTED:
        assert steps_of(client, child.info.run_id, metric) == steps, (child.data.tags["gan_study.trial_id"], metric)


def completed_trials(children, results: dict[str, list[dict]]) -> dict[str, int]:
    """Trial id → its count of Tune results, for the child runs that ended `completed`."""
    return {child.data.tags["gan_study.trial_id"]: len(results[child.data.tags["gan_study.trial_id"]])
            for child in children if child.data.tags["gan_study.status"] == "completed"}


def assert_resumed_to_completion(client, parent, experiment: str, trials: int, steps: list[int],
                                 finished_before: dict[str, int], results_after: dict[str, list[dict]]) -> None:
    """The resumed study continued `parent` to `completed`: one child per trial with every evaluation step once,
    and the trials that had finished before (trial id → their count of Tune results) were not run again."""
    (resumed_parent,), children = study_runs(client, experiment)
    assert resumed_parent.info.run_id == parent.info.run_id
    assert resumed_parent.data.tags["gan_study.status"] == "completed" and len(children) == trials
    for child in children:
        assert_complete_histories(client, child, steps)
    assert all(len(results_after[trial]) == count for trial, count in finished_before.items())


def test_a_killed_trial_worker_is_retried_from_its_last_checkpoint(cluster, tmp_path):
    space = tiny_space(tmp_path, steps=600, eval_every=20)
    driver = start_study(tmp_path, space, "--address", cluster, "--max-failures", "2")

    def worker_past_step_100():
        lines = next(iter(tune_results(tmp_path).values()), [])
        return lines[-1]["pid"] if lines and lines[-1]["step"] >= 100 else None

    os.kill(wait_for(worker_past_step_100, 240, "the trial's step 100"), signal.SIGKILL)
    finish_study(driver, tmp_path)

    client = sqlite_client(tmp_path)
    parents, children = study_runs(client)
    assert len(children) == 1
    child = children[0]
    assert child.data.tags["gan_study.status"] == "completed" and child.info.status == "FINISHED"
    assert_complete_histories(client, child, list(range(20, 601, 20)))
    # the retry ran in a new worker process and started at the last checkpoint, not at step 0
    (results,) = tune_results(tmp_path).values()
    assert len({r["pid"] for r in results}) == 2
    restored = {m.value for m in client.get_metric_history(child.info.run_id, "restored_from_step")}
    assert len(restored) == 2 and min(restored) == 0 and max(restored) >= 100, restored
    assert parents[0].data.metrics["trials_completed"] == 1


def test_an_interrupted_study_resumes_without_rerunning_or_losing_anything(cluster, tmp_path):
    # three trials one after the other: interrupted while the second one trains
    space = tiny_space(tmp_path, steps=300, eval_every=20, seeds=3)
    driver = start_study(tmp_path, space, "--address", cluster, "--max-concurrent", "1")
    wait_for(lambda: len(tune_results(tmp_path)) == 2 and min(len(r) for r in tune_results(tmp_path).values()) >= 2,
             240, "the second trial's second evaluation")
    driver.send_signal(signal.SIGINT)
    finish_study(driver, tmp_path, expected_status=130)

    client = sqlite_client(tmp_path)
    (parent,), children = study_runs(client)
    assert parent.data.tags["gan_study.status"] == "interrupted"
    finished_before = {c.data.tags["gan_study.trial_id"]: c.info.end_time for c in children
                       if c.data.tags["gan_study.status"] == "completed"}
    results_before = {trial: len(lines) for trial, lines in tune_results(tmp_path).items()}
    assert len(finished_before) == 1

    run_study(tmp_path, space, "--address", cluster, "--max-concurrent", "1", "--resume")

    (resumed_parent,), children = study_runs(client)
    assert resumed_parent.info.run_id == parent.info.run_id and resumed_parent.info.status == "FINISHED"
    assert resumed_parent.data.metrics["trials_completed"] == 3 and len(children) == 3
    assert len({c.data.tags["gan_study.trial_id"] for c in children}) == 3
    for child in children:
        assert child.data.tags["gan_study.status"] == "completed" and child.info.status == "FINISHED"
        assert_complete_histories(client, child, list(range(20, 301, 20)))
    # the finished trial was not run again; the interrupted one went on from its checkpoint
    results_after = tune_results(tmp_path)
    for trial, end_time in finished_before.items():
        assert len(results_after[trial]) == results_before[trial]
        assert next(c for c in children if c.data.tags["gan_study.trial_id"] == trial).info.end_time == end_time
    interrupted = next(t for t, n in results_before.items() if t not in finished_before)
    assert results_after[interrupted][-1]["restored_from_step"] > 0


def test_a_restarted_mlflow_server_loses_no_metric(cluster, tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    try:
        space = tiny_space(tmp_path, steps=3000, eval_every=150, seeds=2)
        driver = start_study(tmp_path, space, "--address", cluster, tracking_uri=server.uri)

        def first_metrics_on_server():
            try:
                _, children = study_runs(MlflowClient(server.uri))
            except AttributeError:  # the experiment does not exist yet
                return False
            return any(MlflowClient(server.uri).get_metric_history(c.info.run_id, "loss_d") for c in children)

        wait_for(first_metrics_on_server, 240, "the first metrics on the server")
        server.stop()
        time.sleep(5)
        server.start()
        finish_study(driver, tmp_path)

        client = MlflowClient(server.uri)
        (parent,), children = study_runs(client)
        assert parent.info.status == "FINISHED" and parent.data.metrics["trials_completed"] == 2
        assert len(children) == 2
        for child in children:
            assert child.data.tags["gan_study.status"] == "completed" and child.info.status == "FINISHED"
            assert_complete_histories(client, child, list(range(150, 3001, 150)))
            assert [a.path for a in client.list_artifacts(child.info.run_id, "samples")] == ["samples/samples.png"]
        log = (tmp_path / "driver.log").read_text()
        assert "unreachable" in log and "reachable again" in log, log[-3000:]
        assert not list(tmp_path.glob("ray/*/mlflow_pending.jsonl"))
    finally:
        server.stop()


def test_a_diverging_trial_ends_as_diverged_without_retries_and_the_study_goes_on(cluster, tmp_path):
    space = tiny_space(tmp_path, steps=100, eval_every=20, fixed="optimizer: sgd",
                       searched="lr_d: {grid: [2.0e-4, 1.0e+3]}")
    run_study(tmp_path, space, "--address", cluster, "--max-failures", "2")

    client = sqlite_client(tmp_path)
    (parent,), children = study_runs(client)
    by_lr = {float(c.data.params["lr_d"]): c for c in children}
    diverged, normal = by_lr[1e3], by_lr[2e-4]
    assert diverged.data.tags["gan_study.status"] == "diverged" and diverged.info.status == "FAILED"
    assert [m.value for m in client.get_metric_history(diverged.info.run_id, "diverged")] == [1.0]
    # no retry: one report, from a fresh start, in one process
    (diverged_results,) = [r for t, r in tune_results(tmp_path).items() if t == diverged.data.tags["gan_study.trial_id"]]
    assert len(diverged_results) == 1 and diverged_results[0]["restored_from_step"] == 0
    assert normal.data.tags["gan_study.status"] == "completed"
    assert_complete_histories(client, normal, list(range(20, 101, 20)))
    assert parent.info.status == "FINISHED"
    assert (parent.data.metrics["trials_diverged"], parent.data.metrics["trials_completed"]) == (1, 1)
