"""The study runner end to end: real Ray Tune trials, a real (sqlite) MLflow store."""
import dataclasses
import json
import re

import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from gan.config import GanConfig
from gan.run import FINAL_DRAWS
from processes import run_study, study_runs
from reports.load import load_study

OPTUNA_SPACE = """
name: tiny_optuna
dataset: mnist5k
fixed: {arch: mlp, z_dim: 8, g_width: 16, g_depth: 1, d_depth: 1, batch_size: 32}
search_space:
  d_width: {choice: [8, 32]}
  lr_g: {loguniform: [1.0e-4, 1.0e-3]}
search: optuna
scheduler: asha
metric: pixel_fd
mode: min
num_samples: 2
seeds_per_config: 2
seed: 7
budget: {steps: 30, eval_every: 10}
evaluation: {num_samples: 100, metrics: [pixel_fd]}
resources: {cpus_per_trial: 1, max_concurrent: 2}
"""


def run(tmp_path, space):
    run_study(tmp_path, space)
    return MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")


@pytest.fixture(scope="module")
def grid_study(tmp_path_factory):
    """The shipped smoke.yaml: two tiny MLP GAN trials (k = 1 and k = 2) evaluated with every metric; progress
    lines every 5 s instead of 30 (the study takes about a minute)."""
    tmp_path = tmp_path_factory.mktemp("grid")
    run_study(tmp_path, "smoke.yaml", "--progress-every", "5")
    return tmp_path, MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")


def test_grid_study_logs_one_parent_and_a_child_per_trial(grid_study):
    _, client = grid_study
    parents, children = study_runs(client)
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["gan_study.space"] == "smoke.yaml"
    assert parent.data.params["search"] == "grid" and parent.data.metrics["trials_completed"] == 2
    # the yardsticks of the data set, computed once per study
    assert parent.data.metrics["reference/classifier_test_accuracy"] >= 0.98
    assert parent.data.metrics["reference/fid_train_test"] < parent.data.metrics["reference/fid_test_noise"] / 10
    assert parent.data.metrics["reference/parzen_train_test"] > 0
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "space")] == ["space/smoke.yaml"]
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["gan_study.status"] == "completed" and child.info.status == "FINISHED"
        assert child.data.tags["gan_study.device"] == "cpu" and child.data.tags["gan_study.hostname"]


def test_children_hold_parameters_metric_histories_and_sample_grid(grid_study):
    tmp_path, client = grid_study
    _, children = study_runs(client)
    assert sorted(int(c.data.params["k"]) for c in children) == [1, 2]
    for child in children:
        params = child.data.params
        # MLflow params are strings and from_flat takes no 'False' for a bool: the switches stay at their defaults
        switches = {f.name for f in dataclasses.fields(GanConfig) if isinstance(f.default, bool)}
        config = GanConfig.from_flat({k: v for k, v in params.items() if k in GanConfig.field_names()
                                      and k not in switches})
        assert (config.g_width, config.z_dim, config.batch_size, config.seed) == (32, 16, 32, 0)
        assert float(params["capacity_ratio_log2"]) == 0.0
        for metric in ("fid", "parzen", "classes_covered", "precision", "coverage", "classifier_score",
                       "sliced_wasserstein", "loss_d", "loss_g", "d_real", "d_fake", "eval_d_real", "d_gap"):
            history = client.get_metric_history(child.info.run_id, metric)
            assert [m.step for m in history] == [20, 40], metric
        for metric in ("final/fid", "final/parzen", "final/parzen_sem", "final/classes_covered"):
            assert metric in child.data.metrics
        assert child.data.tags["gan_study.regime"] in ("balanced", "d_dominates", "g_dominates", "mode_collapse")
        grid_path = client.download_artifacts(child.info.run_id, "samples/samples.png", str(tmp_path / child.info.run_id))
        assert Image.open(grid_path).size == (8 * 28 + 9 * 2,) * 2


def test_the_console_shows_progress_by_run_name_and_no_ray_table(grid_study):
    tmp_path, _ = grid_study
    console = (tmp_path / "driver.log").read_text()
    names = ("mlp g32 d32 k1 s0", "mlp g32 d32 k2 s0")
    status = re.findall(r"^\[(\d+):(\d\d):(\d\d)\] (\d)/2 trials done, (\d) running, (\d) waiting; (.*)$", console, re.M)
    assert len(status) >= 2, console[-3000:]
    seconds = [int(h) * 3600 + int(m) * 60 + int(s) for h, m, s, *_ in status]
    assert seconds == sorted(seconds) and min(b - a for a, b in zip(seconds, seconds[1:])) >= 4  # every 5 s
    assert all(int(done) + int(running) + int(waiting) == 2 for _, _, _, done, running, waiting, _ in status)
    # running trials by name, with their step out of the budget and their latest FID; the best so far by name
    running = re.findall(r"^  running: (mlp g32 d32 k[12] s0) at step (\d+)/40, fid ([\d.]+)$", console, re.M)
    assert {name for name, _, _ in running} == set(names) and {step for _, step, _ in running} <= {"20", "40"}
    assert re.search(r"^  best so far: mlp g32 d32 k[12] s0, (final/)?fid [\d.]+$", console, re.M)
    assert any(left.startswith("about ") and left.endswith(" left") for *_, left in status)
    for name in names:
        assert re.search(rf"^\[\d+:\d\d:\d\d\] ended: {name}, completed at step 40, final/fid [\d.]+ \([12]/2 done\)$",
                         console, re.M)
    # Ray's own table, configuration box and dict-valued parameters are behind --verbose
    for noise in ("Trial status:", "Current best trial", "Configuration for experiment", "'params':", "tensorboard"):
        assert noise not in console


def test_the_summary_names_the_report_s_best_trial_and_the_protocol(grid_study):
    tmp_path, _ = grid_study
    line = re.search(r"^done in \d+ s: completed, .*; best final/fid \(test split, ([\d,]+) samples, mean of (\d) "
                     r"draws\) = ([\d.]+) \((.+)\)$", (tmp_path / "driver.log").read_text(), re.M)
    assert line, (tmp_path / "driver.log").read_text()[-2000:]
    samples, draws, value, run_name = line.groups()
    assert (samples, int(draws)) == ("10,000", FINAL_DRAWS)
    # the report's choice: each trial's final/fid (else its last fid), the lowest
    study = load_study(f"sqlite:///{tmp_path}/mlflow.db", "study")
    best = study.finished.loc[study.finished["metric.fid"].idxmin()]
    assert run_name == best["run_name"] and float(value) == pytest.approx(best["metric.fid"], rel=1e-3)
    assert study.parent_metrics["best_trial/final/fid"] == pytest.approx(best["metric.fid"])


def test_every_child_run_logs_its_training_data_as_an_mlflow_dataset_input(grid_study, mnist5k):
    _, client = grid_study
    parents, children = study_runs(client)
    assert len(children) == 2
    for child in [*parents, *children]:
        (dataset_input,) = client.get_run(child.info.run_id).inputs.dataset_inputs
        dataset = dataset_input.dataset
        assert (dataset.name, dataset.digest) == ("mnist5k", mnist5k.fingerprint())
        assert json.loads(dataset.profile)["train"] == len(mnist5k.train) == 3500
        assert [(tag.key, tag.value) for tag in dataset_input.tags] == [("mlflow.data.context", "training")]


def test_optuna_asha_study_repeats_each_configuration_over_seeds(tmp_path):
    (tmp_path / "tiny.yaml").write_text(OPTUNA_SPACE)
    client = run(tmp_path, str(tmp_path / "tiny.yaml"))
    parents, children = study_runs(client)
    assert len(parents) == 1 and len(children) == 4
    by_config = {}
    for child in children:
        key = (child.data.params["d_width"], child.data.params["lr_g"])
        by_config.setdefault(key, set()).add(int(child.data.params["seed"]))
        assert child.data.tags["gan_study.status"] in ("completed", "stopped_early")
    assert sorted(by_config.values(), key=sorted) == [{7, 8}, {7, 8}]


PBT_SPACE = """
name: tiny_pbt
dataset: mnist5k
fixed: {arch: mlp, z_dim: 8, g_width: 16, d_width: 16, g_depth: 1, d_depth: 1, batch_size: 32}
search_space:
  lr_g: {loguniform: [1.0e-4, 1.0e-2]}
  lr_d: {loguniform: [1.0e-4, 1.0e-2]}
search: random
scheduler: pbt
scheduler_options: {perturbation_interval: 1, quantile_fraction: 0.5}
metric: pixel_fd
mode: min
num_samples: 2
seeds_per_config: 1
budget: {steps: 60, eval_every: 10}
evaluation: {num_samples: 100, metrics: [pixel_fd]}
resources: {cpus_per_trial: 1, max_concurrent: 2}
"""


def test_pbt_study_completes_with_one_child_run_per_trial_and_full_histories(tmp_path):
    (tmp_path / "pbt.yaml").write_text(PBT_SPACE)
    client = run(tmp_path, str(tmp_path / "pbt.yaml"))
    parents, children = study_runs(client)
    assert len(parents) == 1 and len(children) == 2
    for child in children:
        assert child.data.tags["gan_study.status"] == "completed"
        # PBT may swap in another trial's state and new learning rates: still one point per step
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "pixel_fd")]
        assert steps == sorted(set(steps)) and steps[-1] == 60
        assert "final/pixel_fd" in child.data.metrics
    # the bottom half cloned the top half's state at least once (PBT's exploit step)
    restored = [m.value for child in children for m in client.get_metric_history(child.info.run_id, "restored_from_step")]
    assert max(restored) > 0
