"""A node of a real three-node Ray cluster dies mid-study, as a machine dies: its `ray start`, raylet and
trial workers get SIGKILL at once, the head hears nothing. The trials it ran restart on the surviving nodes
from their last checkpoints and the study completes; the parent run says how many were restarted and why.

The cluster: `ray start` processes on this machine, a head and two workers with 1 CPU each, so that the two
1-CPU trials take two of the three nodes and a lost trial has a free node to go to. Storage is a folder of
this machine, which every node sees.
"""
import time

import pytest
from mlflow.tracking import MlflowClient

from processes import finish_study, ray_nodes, start_study, study_runs, tiny_space, tune_results, wait_for
from test_fault_tolerance import assert_complete_histories

pytestmark = pytest.mark.slow  # starts Ray clusters and runs studies

STEPS, EVAL_EVERY = 600, 20  # a checkpoint at every evaluation


@pytest.fixture
def cluster():  # one per test: the test kills a node
    with ray_nodes(head=["--num-cpus=1"], workers=[["--num-cpus=1"], ["--num-cpus=1"]]) as nodes:
        yield nodes


def _timeline(results: dict[str, list[dict]], lost: dict[str, int], died: float, node_names: dict[str, str]) -> str:
    lines = [f"node died at t=0 ({time.strftime('%H:%M:%S', time.localtime(died))})"]
    for trial, lines_of_trial in results.items():
        before = [r for r in lines_of_trial if r["pid"] == lost.get(trial)]
        after = [r for r in lines_of_trial if trial in lost and r["pid"] != lost[trial]]
        if not after:
            continue
        lines.append(
            f"trial {trial}: last report before the loss at t={before[-1]['timestamp'] - died:+.0f} s (step "
            f"{before[-1]['step']}, {node_names.get(before[-1]['node_id'], '?')}); first report after at "
            f"t={after[0]['timestamp'] - died:+.0f} s on {node_names.get(after[0]['node_id'], '?')}: step "
            f"{after[0]['step']}, restored_from_step {after[0]['restored_from_step']}; finished at "
            f"t={after[-1]['timestamp'] - died:+.0f} s (step {after[-1]['step']})")
    return "\n".join(lines)


def test_trials_of_a_dead_node_resume_from_their_checkpoints_on_the_surviving_nodes(cluster, tmp_path):
    space = tiny_space(tmp_path, steps=STEPS, eval_every=EVAL_EVERY, seeds=2)
    driver = start_study(tmp_path, space, "--address", cluster.address, "--max-failures", "2")
    node_names = {node_id: name for name, node_id in cluster.node_ids.items()}

    def a_worker_node_running_trials_past_step_100():
        results = tune_results(tmp_path)
        if len(results) < 2 or min(lines[-1]["step"] for lines in results.values()) < 100:
            return None
        on_workers = [node_names[lines[-1]["node_id"]] for lines in results.values()
                      if node_names[lines[-1]["node_id"]] != "head"]
        return max(on_workers, key=on_workers.count) if on_workers else None

    victim = wait_for(a_worker_node_running_trials_past_step_100, 240, "both trials past step 100")
    victim_id = cluster.node_ids[victim]
    before = tune_results(tmp_path)
    lost = {trial: lines[-1]["pid"] for trial, lines in before.items() if lines[-1]["node_id"] == victim_id}
    died = cluster.kill(victim)
    finish_study(driver, tmp_path, timeout=400)

    results = tune_results(tmp_path)
    print("\n" + _timeline(results, lost, died, node_names))
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), children = study_runs(client)
    assert parent.data.tags["gan_study.status"] == "completed" and parent.info.status == "FINISHED"
    assert parent.data.metrics["trials_completed"] == 2 and len(children) == 2
    for trial, pid in lost.items():
        dead = [r for r in results[trial] if r["pid"] == pid]
        resumed = [r for r in results[trial] if r["pid"] != pid]
        # it went on elsewhere, from the checkpoint of one of its last reports before the node died (the very
        # last may have been written but not reached the driver), not from step 0, and its steps count on
        assert resumed and {r["node_id"] for r in resumed}.isdisjoint({victim_id}), resumed
        restored = resumed[0]["restored_from_step"]
        assert restored > 0 and restored in [r["step"] for r in dead][-2:], (restored, dead[-2:])
        assert resumed[0]["step"] == restored + EVAL_EVERY and resumed[-1]["step"] == STEPS
    for child in children:  # one run per trial, every evaluation step once, in order: no gap, no duplicate
        assert child.data.tags["gan_study.status"] == "completed" and child.info.status == "FINISHED"
        assert_complete_histories(client, child, list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY)))
    assert parent.data.metrics["trials_restarted"] == len(lost) == parent.data.metrics["trial_restarts"]
    reasons = parent.data.tags["gan_study.restarts"]
    assert reasons.startswith(f"{len(lost)}× ") and "actor" in reasons, reasons  # the trial's worker actor was lost
