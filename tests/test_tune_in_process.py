"""Ray Tune studies in this process, in the fast tier: the trainable (study.trial), the search algorithms and
schedulers (study.tuning: Optuna + ASHA, PBT) and the driver's SIGTERM and --resume paths (study.run), each through
`study.run.main` on one local Ray started once for the module.

`main` connects to Ray itself (study.preflight.connect_ray), which reuses the Ray this process already runs: the
whole path is the CLI's own. Tiny MLP GANs scored by D's outputs only (the `discriminator` metrics, no final evaluation): no
classifier, no Fréchet distance; most of a study's time is Ray starting its trial workers.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from gan import names
from processes import steps_of, study_runs, tiny_space, tune_results, wait_for
from study import run as study_run
from study.outcome import EXIT_INTERRUPTED

OPTUNA_SPACE = """
name: tiny_optuna_asha
dataset: mnist5k
fixed: {arch: mlp, z_dim: 8, g_width: 8, g_depth: 1, d_depth: 1, batch_size: 16}
search_space:
  d_width: {choice: [8, 16]}
  lr_g: {loguniform: [1.0e-4, 1.0e-3]}
search: optuna
scheduler: asha
metric: d_gap
mode: max
num_samples: 2
seeds_per_config: 1
seed: 7
budget: {steps: 40, eval_every: 10}
evaluation: {num_samples: 100, metrics: [discriminator], final: false}
resources: {cpus_per_trial: 1, max_concurrent: 2}
"""

# tests/test_study_e2e.py's tiny_pbt scored by D's outputs (cheap evaluations: no sqrtm of a 784 x 784 covariance),
# long enough for the two trials to overlap (see the test), a perturbation every third evaluation
PBT_SPACE = """
name: tiny_pbt
dataset: mnist5k
fixed: {arch: mlp, z_dim: 8, g_width: 8, d_width: 8, g_depth: 1, d_depth: 1, batch_size: 16}
search_space:
  lr_g: {loguniform: [1.0e-4, 1.0e-2]}
  lr_d: {loguniform: [1.0e-4, 1.0e-2]}
search: random
scheduler: pbt
scheduler_options: {perturbation_interval: 3, quantile_fraction: 0.5}
metric: d_gap
mode: max
num_samples: 2
seeds_per_config: 1
budget: {steps: 300, eval_every: 10}
evaluation: {num_samples: 100, metrics: [discriminator], final: false}
resources: {cpus_per_trial: 1, max_concurrent: 2}
"""
PBT_SAMPLING_SEED = 1


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for every study of the module (RAY_AUTH_MODE=disabled comes from conftest)."""
    import ray

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("RAY_ADDRESS", raising=False)  # a new local Ray, never a cluster the environment names
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """An empty sqlite MLflow store, its tables created once (seconds) and copied for each test."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def study(local_ray, empty_store, tmp_path, monkeypatch):
    """`study(space, *args)`: `python -m study.run` in this process, its MLflow store (a copy of the empty one) and
    Tune storage under tmp_path; returns the exit status. Whatever the driver changes in this process (signal
    handlers, environment, Tune's log level) is put back afterwards."""
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    # set by main and study.run.quiet_tune with os.environ: set here first, so that monkeypatch removes them again
    for name, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"), ("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"),
                        ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"), ("RAY_AIR_NEW_OUTPUT", "0"),
                        ("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")):
        monkeypatch.setenv(name, os.environ.get(name, value))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    tune_logger = logging.getLogger("ray.tune")
    level = tune_logger.level
    # Tune restores the SIGINT handler it found once it caught one: a harmless one, never pytest's KeyboardInterrupt
    signal.signal(signal.SIGINT, lambda *_: None)

    def run(space: str, *args: str) -> int:
        return study_run.main(["--space", space, "--experiment", "study",
                               "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
                               "--storage-path", str(tmp_path / "ray"), "--progress-every", "60", *args])

    try:
        yield run
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        tune_logger.setLevel(level)


def client_of(tmp_path: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")


def test_optuna_search_with_asha_logs_a_parent_and_a_child_per_trial(study, tmp_path):
    space = tmp_path / "optuna.yaml"
    space.write_text(OPTUNA_SPACE)
    assert study(str(space)) == 0

    results = tune_results(tmp_path)
    assert len(results) == 2 and all(len(lines) >= 1 for lines in results.values())  # both trials reported
    (run_dir,) = (tmp_path / "ray").iterdir()
    assert list(run_dir.glob("searcher-state-*.pkl"))  # a search algorithm's state, not Tune's variant generator
    client = client_of(tmp_path)
    (parent,), children = study_runs(client)
    assert parent.info.status == "FINISHED" and parent.data.tags[names.STATUS_TAG] == names.COMPLETED
    assert (parent.data.params["search"], parent.data.params["scheduler"]) == ("optuna", "asha")
    assert parent.data.metrics[names.TRIALS_TOTAL] == 2
    assert len(children) == 2
    assert {c.data.tags[names.TRIAL_ID_TAG] for c in children} == set(results)
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        params = child.data.params
        # Optuna's sample within the space, the fixed values, the study's seed
        assert int(params["d_width"]) in (8, 16) and 1e-4 <= float(params["lr_g"]) <= 1e-3
        assert (params["arch"], params["g_width"], params["batch_size"], params["seed"]) == ("mlp", "8", "16", "7")
        trial = results[child.data.tags[names.TRIAL_ID_TAG]]
        assert float(trial[0]["config"]["lr_g"]) == pytest.approx(float(params["lr_g"]))
        # ASHA may stop one trial at a rung: every evaluation up to where it stopped, once and in order
        status = child.data.tags[names.STATUS_TAG]
        assert status in (names.COMPLETED, names.STOPPED_EARLY)
        last = trial[-1]["step"]
        assert last == 40 if status == names.COMPLETED else last < 40
        for metric in (names.D_GAP, names.LOSS_D, names.LOSS_G):
            assert steps_of(client, child.info.run_id, metric) == list(range(10, last + 1, 10)), metric


def test_pbt_exploits_the_other_trial_s_checkpoint_and_learning_rates(study, tmp_path):
    space = tmp_path / "pbt.yaml"
    space.write_text(PBT_SPACE)
    # Tune samples PBT's first configurations from numpy's global generator (the space's seed does not reach it):
    # seeded, they are lr_g 6.8e-4 / lr_d 2.8e-3 (D's gap 0.73, 0.91, 0.96, ... 0.99 over its first 200 steps) and
    # lr_g 1e-4 / lr_d 4e-4 (0.23, 0.37, 0.49, ... 0.95): far apart. An exploit needs the two trials to overlap by
    # a few perturbations (a finished trial is no one's model, and one worker starts seconds after the other):
    # 30 cheap evaluations each, a perturbation every third. Which trial exploits which depends on that head start.
    state = np.random.get_state()
    np.random.seed(PBT_SAMPLING_SEED)
    try:
        assert study(str(space)) == 0
    finally:
        np.random.set_state(state)

    client = client_of(tmp_path)
    (parent,), children = study_runs(client)
    assert parent.data.tags[names.STATUS_TAG] == names.COMPLETED and len(children) == 2
    for child in children:
        assert child.data.tags[names.STATUS_TAG] == names.COMPLETED
        # one point per step, in order, to the end (an exploit may jump ahead to the other trial's step)
        steps = steps_of(client, child.info.run_id, names.D_GAP)
        assert steps == sorted(set(steps)) and steps[-1] == 300
    # Tune's PBT log, a line per exploit: [trial, trial cloned, their iterations, the clone's config, the new config]
    (run_dir,) = (tmp_path / "ray").iterdir()
    exploits = [json.loads(line) for line in (run_dir / "pbt_global.txt").read_text().splitlines()]
    assert exploits
    target, _, _, _, cloned, new_config = exploits[0]
    # the child runs keep the parameters they started with (study.tracking); the first exploit cloned a trial
    # still on its own, and gave the other its learning rates, perturbed
    lrs = ("lr_g", "lr_d")
    started = {child.info.run_id: {name: float(child.data.params[name]) for name in lrs} for child in children}
    (source,) = [c for c in children if started[c.info.run_id] == pytest.approx({n: cloned[n] for n in lrs})]
    (exploiter,) = [c for c in children if c is not source]
    assert {name: new_config[name] for name in lrs} != pytest.approx(started[exploiter.info.run_id])
    # the exploiting trial's run shows it: it went on from a checkpoint (its process restarted past step 0), training
    # with the learning rates PBT gave it (the trainer reports the optimisers' rates at every evaluation)
    given = {e[-1]["lr_g"] for e in exploits if e[0] == target}
    restored = [m.value for m in client.get_metric_history(exploiter.info.run_id, names.RESTORED_FROM_STEP)]
    rates = [m.value for m in sorted(client.get_metric_history(exploiter.info.run_id, names.LR_G),
                                     key=lambda m: m.step)]
    assert max(restored) > 0
    assert rates[0] == pytest.approx(started[exploiter.info.run_id]["lr_g"])
    assert any(rate == pytest.approx(lr) for rate in rates for lr in given), (rates, given)


def test_sigterm_interrupts_the_study_and_resume_finishes_it_in_the_same_parent(study, tmp_path):
    # two trials one after the other; SIGTERM once the second has reported
    space = tiny_space(tmp_path, steps=200, eval_every=20, seeds=2)

    def second_trial_reported():
        results = tune_results(tmp_path)
        return len(results) == 2 and min(len(lines) for lines in results.values()) >= 1

    ended = threading.Event()

    def interrupt():
        wait_for(lambda: ended.is_set() or second_trial_reported(), 120, "the second trial's first evaluation",
                 interval=0.05)
        if not ended.is_set():  # never after the study: the signal would meet pytest's handlers
            os.kill(os.getpid(), signal.SIGTERM)  # the driver's handler: parent marked interrupted, then SIGINT

    interrupter = threading.Thread(target=interrupt, daemon=True)
    interrupter.start()
    try:
        status = study(space, "--max-concurrent", "1")
    finally:
        ended.set()
        interrupter.join(5)
    assert status == EXIT_INTERRUPTED

    client = client_of(tmp_path)
    (parent,), children = study_runs(client)
    assert parent.data.tags[names.STATUS_TAG] == names.INTERRUPTED and parent.info.status == "KILLED"
    finished_before = {c.data.tags[names.TRIAL_ID_TAG]: c.info.end_time for c in children
                       if c.data.tags[names.STATUS_TAG] == names.COMPLETED}
    results_before = {trial: len(lines) for trial, lines in tune_results(tmp_path).items()}
    assert len(finished_before) == 1 and len(results_before) == 2
    (cut,) = set(results_before) - set(finished_before)
    assert results_before[cut] < 10  # stopped mid-training

    assert study(space, "--max-concurrent", "1", "--resume") == 0

    (resumed,), children = study_runs(client)
    assert resumed.info.run_id == parent.info.run_id and resumed.info.status == "FINISHED"
    assert resumed.data.tags[names.STATUS_TAG] == names.COMPLETED and resumed.data.metrics["trials_completed"] == 2
    assert len(children) == 2 and {c.data.tags[names.TRIAL_ID_TAG] for c in children} == set(results_before)
    results_after = tune_results(tmp_path)
    for child in children:
        assert child.data.tags[names.STATUS_TAG] == names.COMPLETED and child.info.status == "FINISHED"
        assert steps_of(client, child.info.run_id, names.D_GAP) == list(range(20, 201, 20))
    # the finished trial was not run again; the cut one went on from its checkpoint, not from step 0
    for trial, end_time in finished_before.items():
        assert len(results_after[trial]) == results_before[trial]
        assert next(c for c in children if c.data.tags[names.TRIAL_ID_TAG] == trial).info.end_time == end_time
    resumed_lines = results_after[cut][results_before[cut]:]
    assert resumed_lines and resumed_lines[0]["restored_from_step"] > 0 and resumed_lines[-1]["step"] == 200
