"""The head's loss: the machine of the study driver and the Ray head dies mid-study, as a machine dies: SIGKILL to
the driver, the head's `ray start`, its GCS, raylet and trial workers at once; nothing is stopped cleanly and the
MLflow parent run is left `running`. A new Ray cluster, on the same shared storage and MLflow store, continues the
study with `--resume`: the same parent run, the trials that had finished not run again, the trial that was cut off
going on from its checkpoint, every metric history complete and no step logged twice.

Both clusters are `ray start` processes on this machine (a one-CPU head each, the trials one after the other);
storage is a folder of this machine that both see, MLflow a sqlite store beside it.
"""
import contextlib
import json
import os
import signal
import time

import pytest
from mlflow.tracking import MlflowClient

from processes import (finish_study, process_tree, processes_naming, ray_nodes, start_study, study_runs, tiny_space,
                       tune_results, wait_for)
from test_fault_tolerance import assert_complete_histories

pytestmark = pytest.mark.slow  # starts Ray clusters and runs studies

STEPS, EVAL_EVERY, TRIALS = 600, 20, 3  # a checkpoint at every evaluation


def tune_statuses(tmp_path) -> dict[str, str]:
    """Trial id → its status in Tune's experiment state on the storage (what a resumed study starts from)."""
    statuses = {}
    for path in (tmp_path / "ray").glob("*/experiment_state-*.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):  # being replaced
            continue
        for trial_json, _ in state.get("trial_data", []):
            trial = json.loads(trial_json)
            statuses[trial["trial_id"]] = trial["status"]
    return statuses


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, killed and not yet reaped, has an empty command line)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return bool(cmdline.read())
    except OSError:
        return False


def kill_machine(driver, cluster) -> list[int]:
    """SIGKILL at once to the driver and every process of the head node: its `ray start`, GCS, raylet, workers.
    Returns the pids killed."""
    pids = process_tree(driver.pid) + process_tree(cluster.processes["head"].pid)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    driver.wait()
    cluster.processes["head"].wait()
    return pids


def test_a_study_whose_head_died_resumes_on_a_new_cluster(tmp_path):
    space = tiny_space(tmp_path, steps=STEPS, eval_every=EVAL_EVERY, seeds=TRIALS)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    began = time.time()

    with ray_nodes(head=["--num-cpus=1"]) as first:
        driver = start_study(tmp_path, space, "--address", first.address, "--max-concurrent", "1")

        def one_trial_finished_and_another_one_cut_off():
            # finished as Tune's experiment state on the storage says (saved every 10 s, and after every second
            # checkpoint of a trial, not when a trial ends): before that, a resume runs the trial again
            statuses, results = tune_statuses(tmp_path), tune_results(tmp_path)
            finished = {t for t, s in statuses.items() if s == "TERMINATED"}
            running = [t for t, lines in results.items()
                       if t not in finished and len(lines) >= 2 and lines[-1]["step"] < STEPS - 4 * EVAL_EVERY]
            return (finished, running) if finished and running else None

        finished, (cut_off,) = wait_for(one_trial_finished_and_another_one_cut_off, 240,
                                        "a finished trial in Tune's state and a second one past its second report")
        (parent,), children = study_runs(client)
        end_times = {c.data.tags["gan_study.trial_id"]: c.info.end_time for c in children
                     if c.data.tags["gan_study.trial_id"] in finished}
        results_before = {trial: len(lines) for trial, lines in tune_results(tmp_path).items()}
        killed = kill_machine(driver, first)
        died = time.time()
        # nothing of the first cluster lives on (the processes of a node name its temp folder on their command line)
        for pid in processes_naming(first.temp_dir):  # a worker that left the tree meanwhile
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not processes_naming(first.temp_dir) and not any(map(alive, killed)), 30,
                 "every process of the first cluster gone")
    print(f"\nkilled after {died - began:.0f} s: finished {sorted(finished)}, cut off {cut_off} at step "
          f"{tune_results(tmp_path)[cut_off][-1]['step']}")

    # as the machine left it: the study still `running`, its finished trials completed
    (stale,), _ = study_runs(client)
    assert stale.info.run_id == parent.info.run_id and stale.data.tags["gan_study.status"] == "running"
    assert all(end_times.values()), end_times

    with ray_nodes(head=["--num-cpus=1"]) as second:
        assert second.address != first.address and second.temp_dir != first.temp_dir
        resumed = start_study(tmp_path, space, "--address", second.address, "--max-concurrent", "1", "--resume")
        finish_study(resumed, tmp_path, timeout=400)
    print(f"resumed study done {time.time() - died:.0f} s after the kill")

    (resumed_parent,), children = study_runs(client)
    assert resumed_parent.info.run_id == parent.info.run_id
    assert resumed_parent.data.tags["gan_study.status"] == "completed" and resumed_parent.info.status == "FINISHED"
    assert resumed_parent.data.metrics["trials_completed"] == TRIALS
    # one child run per trial, each completed, every evaluation step once and in order: no gap, no duplicate
    assert len(children) == TRIALS and len({c.data.tags["gan_study.trial_id"] for c in children}) == TRIALS
    for child in children:
        assert child.data.tags["gan_study.status"] == "completed" and child.info.status == "FINISHED"
        assert_complete_histories(client, child, list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY)))
    # the trials that had finished were not run again: no new report, their runs not reopened
    results_after = tune_results(tmp_path)
    for trial, end_time in end_times.items():
        assert len(results_after[trial]) == results_before[trial], trial
        assert next(c for c in children if c.data.tags["gan_study.trial_id"] == trial).info.end_time == end_time
    # the cut-off trial went on from a checkpoint, not from step 0
    assert results_after[cut_off][-1]["step"] == STEPS and results_after[cut_off][-1]["restored_from_step"] > 0
