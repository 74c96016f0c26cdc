"""How trials and studies end, without Ray: errors that recur, trial and study statuses, exit statuses, the
errored trials' MLflow runs, run names and configuration ids, the parent's description, resource checks."""
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mlflow.tracking import MlflowClient

from gan import names
from gan.config import ConfigError, GanConfig
from gan.memory import ConfigTooLarge
from gan.run import Budget, EvaluationPlan
from reports.load import trial_frame
from study.checkpoints import CheckpointRefused
from study.cluster import ResourcesUnavailable, TrialResources, check_trial_fits
from study.description import MAX_DESCRIPTION_CHARS, BestTrial, ReportLink, study_description
from study.errors import error_reason, will_recur
from study.outcome import (EXIT_COMPLETED, finished_count, EXIT_FAILED, EXIT_SOME_ERRORED, best_trial, final_draws, score_protocol,
                           study_outcome, trial_outcomes, trial_score)
from study.run_names import config_id, naming_parameters, trial_run_name
from study.space import load_space
from study.tracking import numeric_metrics
from study.tune_config import GRID_PARAMS, SEED_INDEX, TrialSettings

ROOT = Path(__file__).resolve().parents[1]


# --- which errors recur -----------------------------------------------------------------------------
def test_configuration_memory_and_checkpoint_errors_recur_and_are_not_retried():
    assert will_recur(ConfigError("updates: simultaneous makes one D and one G update per minibatch: k must be 1"))
    assert will_recur(ConfigTooLarge("dcgan needs at least 39 TB"))
    assert will_recur(CheckpointRefused("checkpoint holds a pickled object"))
    assert not will_recur(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert not will_recur(ValueError("anything else"))


def test_out_of_memory_recurs_only_while_the_trainer_is_built(monkeypatch):
    import gan.trainer

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 2880000000000 bytes")

    monkeypatch.setattr(gan.trainer, "build_gan", no_memory)
    with pytest.raises(RuntimeError) as building:
        gan.trainer.GanTrainer(GanConfig(), torch.zeros(4, 1, 28, 28))
    assert will_recur(building.value)
    try:  # the same error raised elsewhere (during training, when other work may hold the memory): retried
        no_memory()
    except RuntimeError as elsewhere:
        assert not will_recur(elsewhere)
    assert not will_recur(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))


def test_error_reason_is_the_last_exception_line_or_the_last_line():
    traceback_text = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n    f()\n"
                      "gan.memory.ConfigTooLarge: dcgan needs at least 39.0 TB\n")
    assert error_reason(traceback_text) == "gan.memory.ConfigTooLarge: dcgan needs at least 39.0 TB"
    ray_text = ("Failure # 1 (occurred at 2026-01-01_00-00-00)\nray::ImplicitFunc.train() (pid=1, ip=1.2.3.4)\n"
                "  File \"trial.py\", line 9, in train\nRuntimeError: boom\n\n")
    assert error_reason(ray_text) == "RuntimeError: boom"
    died = "The actor died unexpectedly before finishing this task.\n\tpid: 12\nThe actor is dead because its worker process has died."
    assert error_reason(died) == "The actor is dead because its worker process has died."
    assert len(error_reason("ValueError: " + "x" * 5000)) == 500


# --- trial and study outcomes -----------------------------------------------------------------------
def result(trial_id, status, error=None, **metrics):
    """A stand-in for a ray.tune.Result: metrics of the last report, error, config."""
    last = {"trial_id": trial_id, **metrics}
    if status == "completed":
        last.update({"done": True, names.DONE_TRAINING: True})
    elif status == "stopped_early":
        last.update({"done": True, names.DONE_TRAINING: False})
    elif status == "diverged":
        last.update({"done": True, names.DIVERGED: 1})
    elif status == "reported_error":
        last.update({"done": True, names.ERROR: "gan.config.ConfigError: k must be 1"})
    return SimpleNamespace(metrics=last, error=error, config={SEED_INDEX: 0}, path=f"/ray/{trial_id}")


def test_every_trial_finished_means_completed_and_exit_0():
    outcomes = trial_outcomes([result("a", "completed", fid=3.0), result("b", "stopped_early", fid=9.0),
                               result("c", "diverged", fid=math.inf)])
    assert [o.status for o in outcomes] == [names.COMPLETED, names.STOPPED_EARLY, names.DIVERGED_STATUS]
    outcome = study_outcome(outcomes, interrupted=False)
    assert (outcome.status, outcome.run_status, outcome.exit_status, outcome.errors_line) == \
           (names.COMPLETED, "FINISHED", EXIT_COMPLETED, None)
    assert best_trial(outcomes, "fid", "min").trial_id == "a" and best_trial(outcomes, "fid", "max").trial_id == "b"


def test_some_errored_trials_give_completed_with_errors_exit_3_and_the_most_common_reason():
    crash = RuntimeError("ray::ImplicitFunc.train()\n  File \"x\"\nRuntimeError: CUDA error: device-side assert")
    outcomes = trial_outcomes([result("a", "completed", fid=3.0), result("b", "reported_error"),
                               result("c", "reported_error"), result("d", None, error=crash)])
    assert [o.status for o in outcomes] == [names.COMPLETED] + [names.ERRORED] * 3
    outcome = study_outcome(outcomes, interrupted=False)
    assert (outcome.status, outcome.run_status, outcome.exit_status) == \
           (names.COMPLETED_WITH_ERRORS, "FINISHED", EXIT_SOME_ERRORED)
    assert outcome.errors_line == "3 of 4 trials errored; most common reason (2 trials): gan.config.ConfigError: k must be 1"
    assert best_trial(outcomes, "fid", "min").trial_id == "a"


def test_the_best_trial_is_ranked_by_the_final_protocol_where_a_trial_has_it_as_the_report_ranks():
    # a: best last validation FID, worse final FID; b: best final FID; c: no final evaluation (stopped early)
    outcomes = trial_outcomes([result("a", "completed", fid=20.0, **{"final/fid": 30.0}),
                               result("b", "completed", fid=25.0, **{"final/fid": 24.0}),
                               result("c", "stopped_early", fid=27.0)])
    assert best_trial(outcomes, "fid", "min").trial_id == "b"
    assert [trial_score(o.metrics, "fid") for o in outcomes] == \
        [("final/fid", 30.0), ("final/fid", 24.0), ("fid", 27.0)]
    # the report's rule (reports.load): final/<metric> where logged, else the last value; the best is the same trial
    rows = trial_frame([SimpleNamespace(info=SimpleNamespace(run_id=o.trial_id, run_name=o.trial_id, start_time=None,
                                                             end_time=None),
                                        data=SimpleNamespace(metrics=numeric_metrics(o.metrics), params={}, tags={}))
                        for o in outcomes])
    assert rows.loc[rows["metric.fid"].idxmin(), "run_id"] == "b"
    # a trial without a final score still ranks by its last one: c beats a when a's final is worse
    assert best_trial([outcomes[0], outcomes[2]], "fid", "min").trial_id == "c"
    assert best_trial(outcomes, "fid", "max").trial_id == "a"


def test_the_summary_line_names_the_metric_and_the_protocol_it_ranks_by():
    plan = EvaluationPlan(num_samples=1000)
    best = BestTrial("dcgan g16 d16 k1 s0", "final/fid", 24.391, score_protocol("final/fid", plan, final_draws=3))
    assert best.headline() == \
        "best final/fid (test split, 10,000 samples, mean of 3 draws) = 24.39 (dcgan g16 d16 k1 s0)"
    # the draws are counted from the trial's final/<metric>_draw<i> (gan.run's final protocol)
    assert final_draws({"final/fid": 24.4, "final/fid_draw0": 24.0, "final/fid_draw1": 24.6, "final/fid_draw2": 24.6,
                        "fid_draw0": 1.0}, "fid") == 3
    assert final_draws({"final/fid": 24.4}, "fid") == 0
    fallback = BestTrial("mlp g8 d8 k1 s0", "fid", 31.14, score_protocol("fid", plan))
    assert fallback.headline() == \
        "best fid (validation split, 1,000 samples, last evaluation) = 31.14 (mlp g8 d8 k1 s0)"


def test_no_finished_trial_means_failed_and_exit_1():
    outcomes = trial_outcomes([result("a", "reported_error"), result("b", None, error=RuntimeError("boom"))])
    outcome = study_outcome(outcomes, interrupted=False)
    assert (outcome.status, outcome.run_status, outcome.exit_status) == (names.FAILED, "FAILED", EXIT_FAILED)
    assert outcome.errors_line.startswith("every trial errored (2 of 2); most common reason (1 trial): ")
    assert best_trial(outcomes, "fid", "min") is None
    # a trial cut off by an interruption is neither finished nor errored
    cut = trial_outcomes([result("a", "running")])
    assert cut[0].status == names.RUNNING and study_outcome(cut, interrupted=True).exit_status == 130
    # a trial that trained to its budget is finished even where Tune's `done` is missing (a snapshot taken
    # before its end, restored after its driver died)
    restored = trial_outcomes([result("a", None, **{names.DONE_TRAINING: True})])
    assert restored[0].status == names.COMPLETED and finished_count(restored) == 1


# --- run names and configuration ids -------------------------------------------------------------------
def test_run_names_say_what_a_trial_trained():
    assert trial_run_name({"arch": "dcgan", "g_width": 32, "d_width": 8, "k": 1, "seed": 0}, ["g_width"]) == \
        "dcgan g32 d8 k1 s0"
    params = {"arch": "mlp", "lr_g": 0.000316227766, "d_batchnorm": False, "g_width": 64, "seed": 3}
    assert trial_run_name(params, ["lr_g", "g_width", "d_batchnorm"]) == "mlp g64 d256 k1 lr_g=0.000316228 d_batchnorm=off s3"
    # six significant digits: a decay of 1.0006 is not written as 1
    assert trial_run_name({"arch": "dcgan", "lr_decay": 1.0006, "seed": 0}, ["lr_decay"]) == \
        "dcgan g256 d256 k1 lr_decay=1.0006 s0"
    # a combination GanConfig refuses is still named from what it was given
    assert trial_run_name({"updates": "simultaneous", "k": 2, "seed": 0}, ["updates", "k"]) == "k2 updates=simultaneous s0"


def test_names_spell_out_only_the_parameters_that_tell_grid_points_apart():
    # balance.yaml's shape: learning rates follow from the architecture, the widths are searched, and the
    # MLP also searches d_dropout; only d_dropout is needed beyond "arch g d k"
    points = [{"arch": arch, "g_width": g, "d_width": d, "lr_g": lr, **({"d_dropout": p} if arch == "mlp" else {})}
              for arch, lr in (("mlp", 0.002), ("dcgan", 0.001)) for g, d in ((16, 16), (16, 8))
              for p in (0.3, 0.5)]
    assert naming_parameters(points) == ("d_dropout",)
    assert naming_parameters([{**point, "lr_g": 0.001} for point in points if point["arch"] == "dcgan"]) == ()
    # present for some points of a group and absent for others: it tells them apart
    assert naming_parameters([{"arch": "mlp"}, {"arch": "mlp", "lr_g": 0.1}]) == ("lr_g",)


def test_config_id_is_shared_by_the_seeds_of_a_configuration_only():
    base = {"arch": "dcgan", "g_width": 32, "d_width": 8}
    ids = {seed: config_id({**base, "seed": seed}) for seed in range(3)}
    assert len(set(ids.values())) == 1 and len(ids[0]) == 12
    assert config_id({**base, "d_width": 16, "seed": 0}) != ids[0]
    assert config_id({**base, "lr_g": 2e-4, "seed": 0}) == ids[0]  # 2e-4 is lr_g's default: the same configuration
    # stable across processes (no per-process hash seed)
    code = "from study.run_names import config_id; print(config_id({'arch': 'dcgan', 'g_width': 32, 'd_width': 8, 'seed': 5}))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert other.stdout.strip() == ids[0]


# --- the errored trials' MLflow runs (the Tune callback, driven by hand) ----------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for this module's tests (creating one takes seconds); each test uses its own experiment."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"
    return uri, MlflowClient(uri)


@pytest.fixture
def tracked(store, tmp_path, request):
    from study.tracking import MlflowStudyCallback, get_or_create_experiment

    uri, client = store
    experiment_id = get_or_create_experiment(client, request.node.name[:60], uri)
    parent = client.create_run(experiment_id, run_name="parent").info.run_id
    settings = TrialSettings("mnist5k", None, {"arch": "dcgan", "d_width": 8}, Budget(10, None, 5),
                             EvaluationPlan(), "fid", "min", 0)
    callback = MlflowStudyCallback(uri, experiment_id, parent, settings, str(tmp_path / "spool"))
    return client, callback


def fake_trial(trial_id, g_width, seed_index=0, error_file=None):
    return SimpleNamespace(trial_id=trial_id, config={GRID_PARAMS: {"g_width": g_width}, SEED_INDEX: seed_index},
                           checkpoint=None, last_result={}, error_file=error_file, get_error=lambda: None)


def child_run(client, callback, trial_id):
    (run,) = client.search_runs([callback.experiment_id], f"tags.`{names.TRIAL_ID_TAG}` = '{trial_id}'")
    return run


def test_a_trial_that_reports_an_error_ends_errored_with_its_reason_and_traceback_and_no_metrics(tracked, tmp_path):
    client, callback = tracked
    trial = fake_trial("t1", 100_000)
    callback.on_trial_start(0, [], trial)
    text = "Traceback (most recent call last):\n  File \"trial.py\"\ngan.memory.ConfigTooLarge: dcgan needs at least 39.0 TB\n"
    callback.on_trial_result(0, [], trial, {names.ERROR: error_reason(text), names.ERROR_TEXT: text, "fid": math.inf,
                                           "hostname": "node-a", "training_iteration": 1})
    callback.on_trial_complete(0, [], trial)
    run = child_run(client, callback, "t1")
    assert run.info.run_name == "dcgan g100000 d8 k1 s0" and run.info.status == "FAILED"
    assert run.data.tags[names.STATUS_TAG] == names.ERRORED
    assert run.data.tags[names.ERROR_TAG] == "gan.memory.ConfigTooLarge: dcgan needs at least 39.0 TB"
    assert run.data.metrics == {}  # nothing was measured
    saved = client.download_artifacts(run.info.run_id, names.ERROR_ARTIFACT, str(tmp_path / "got"))
    assert Path(saved).read_text() == text


def test_a_trial_ray_gave_up_on_gets_rays_full_error_text(tracked, tmp_path):
    client, callback = tracked
    error_file = tmp_path / "error.txt"
    ray_text = ("Failure # 1 (occurred at 2026-01-01_00-00-00)\nThe actor died unexpectedly before finishing this task.\n"
                "Failure # 2 (occurred at 2026-01-01_00-01-00)\nray::ImplicitFunc.train()\nRuntimeError: boom\n")
    error_file.write_text(ray_text)
    trial = fake_trial("t2", 32, error_file=str(error_file))
    callback.on_trial_start(0, [], trial)
    callback.on_trial_result(0, [], trial, {names.STEP: 5, names.LOSS_D: 1.2, "fid": 40.0, "hostname": "node-a"})
    callback.on_trial_error(0, [], trial)
    run = child_run(client, callback, "t2")
    assert run.data.tags[names.STATUS_TAG] == names.ERRORED and run.data.tags[names.ERROR_TAG] == "RuntimeError: boom"
    assert run.data.metrics[names.LOSS_D] == 1.2  # what it measured before failing stays
    saved = client.download_artifacts(run.info.run_id, names.ERROR_ARTIFACT, str(tmp_path / "got"))
    assert Path(saved).read_text() == ray_text


def test_seeds_of_a_configuration_share_a_config_id_tag_and_the_experiment_opens_on_runs(tracked):
    client, callback = tracked
    for trial in (fake_trial("a", 32, 0), fake_trial("b", 32, 1), fake_trial("c", 64, 0)):
        callback.on_trial_start(0, [], trial)
    ids = {t: child_run(client, callback, t).data.tags[names.CONFIG_ID_TAG] for t in "abc"}
    assert ids["a"] == ids["b"] != ids["c"]
    assert child_run(client, callback, "b").info.run_name == "dcgan g32 d8 k1 s1"
    experiment = client.get_experiment(callback.experiment_id)
    assert experiment.tags[names.EXPERIMENT_KIND_TAG] == names.EXPERIMENT_KIND_TRAINING


def test_a_reused_experiment_gets_the_kind_unless_the_user_set_one(store):
    from study.tracking import get_or_create_experiment

    uri, client = store
    plain = client.create_experiment("plain")
    marked = client.create_experiment("marked", tags={names.EXPERIMENT_KIND_TAG: "genai_development"})
    assert get_or_create_experiment(client, "plain", uri) == plain
    assert get_or_create_experiment(client, "marked", uri) == marked
    assert client.get_experiment(plain).tags[names.EXPERIMENT_KIND_TAG] == names.EXPERIMENT_KIND_TRAINING
    assert client.get_experiment(marked).tags[names.EXPERIMENT_KIND_TAG] == "genai_development"


# --- the parent run's description -----------------------------------------------------------------------
def test_the_description_summarises_space_data_trials_reference_best_and_report(tmp_path):
    path = tmp_path / "balance.yaml"
    path.write_text("dataset: mnist5k\ndescription: G/D balance\nfixed: {arch: dcgan}\nsearch: grid\nsearch_space:\n"
                    "  g_width: {grid: [8, 32]}\n  d_batchnorm: {grid: [true, false]}\nseeds_per_config: 2\n"
                    "budget: {steps: 100, eval_every: 50}\n")
    space = load_space(path)
    running = study_description(space, experiment="balance", status=names.RUNNING, trial_counts={},
                                reference={"reference/fid_train_test": 0.81234}, best=None, report=None,
                                report_command="python -m reports --experiment balance --run-id R")
    assert "### GAN study `balance`: running" in running and "G/D balance" in running
    assert "| `g_width` | grid [8, 32] |" in running and "**Fixed:** `arch=dcgan`" in running
    assert "**Data set** `mnist5k`" in running and "**Trials:** 8 planned" in running
    assert "| `reference/fid_train_test` | 0.8123 |" in running
    assert "not built yet; `python -m reports --experiment balance --run-id R`" in running

    summary = "## What this study shows\n\n- D twice as wide as G lowers FID by 3.1 (95% CI 1.2 to 5.0).\n"
    done = study_description(
        space, experiment="balance", status=names.COMPLETED_WITH_ERRORS,
        trial_counts={names.COMPLETED: 7, names.ERRORED: 1}, reference={},
        best=BestTrial("dcgan g32 d256 k1 s1", "final/fid", 11.9, "test split, 10,000 samples", 12.34, "RUN"),
        report=ReportLink("report/report.html", summary), report_command="-", experiment_id="4", run_id="PARENT",
        errors_line="1 of 8 trials errored; most common reason (1 trial): gan.memory.ConfigTooLarge: …")
    assert "### GAN study `balance`: completed with errors" in done
    assert "**Trials:** 8 (completed 7, errored 1)" in done and "1 of 8 trials errored" in done
    assert "[dcgan g32 d256 k1 s1](#/experiments/4/runs/RUN): `final/fid` 11.9 (test split, 10,000 samples); " \
           "`fid` 12.34 at its last evaluation (validation split)" in done
    assert "[report/report.html](#/experiments/4/runs/PARENT/artifacts/report/report.html)" in done
    assert done.rstrip().endswith("lowers FID by 3.1 (95% CI 1.2 to 5.0).")
    assert done.index("**Report:**") < done.index("**Best trial:**") < done.index("| searched |")  # first things first
    long = study_description(space, experiment="balance", status=names.COMPLETED, trial_counts={}, reference={},
                             best=None, report=ReportLink("report/report.html", "x" * 20_000), report_command="-")
    assert len(long) <= MAX_DESCRIPTION_CHARS and "shortened" in long


def test_the_ui_link_opens_the_runs_table_of_the_model_training_workflow():
    from study.description import experiment_ui_url

    assert experiment_ui_url("http://mlflow:5000/", "7") == \
        "http://mlflow:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert experiment_ui_url("sqlite:////data/mlflow.db", "7") == (
        "`mlflow ui --backend-store-uri sqlite:////data/mlflow.db`, then "
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning")


# --- resources against the cluster's nodes ---------------------------------------------------------------
NODES = [{"CPU": 2.0, "GPU": 2.0}, {"CPU": 4.0}]


def test_a_trial_that_fits_some_node_passes_and_one_that_fits_none_is_refused_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no cluster-launcher config here
    assert check_trial_fits(TrialResources(4, 0), wait=False, nodes=NODES) is None
    assert check_trial_fits(TrialResources(1, 0.5), wait=False, nodes=NODES) is None
    with pytest.raises(ResourcesUnavailable) as info:
        check_trial_fits(TrialResources(3, 1), wait=False, nodes=NODES)  # 3 CPUs and a GPU: on no single node
    assert str(info.value).startswith("each trial asks for 3 CPUs and 1 GPU, but the largest of the 2 node(s) of the "
                                      "Ray cluster has 4 CPUs and 2 GPUs: no trial could ever start")
    with pytest.raises(ResourcesUnavailable, match="asks for 1 CPU and 1 GPU.* has 8 CPUs and 0 GPUs"):
        check_trial_fits(TrialResources(1, 1), wait=False, nodes=[{"CPU": 8.0}])


def test_a_cluster_that_can_grow_or_wait_for_resources_waits_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    waiting = check_trial_fits(TrialResources(1, 1), wait=True, nodes=[{"CPU": 8.0}])
    assert waiting.startswith("waiting for resources: each trial asks for 1 CPU and 1 GPU") and "--wait-for-resources" in waiting
    (tmp_path / "ray_bootstrap_config.yaml").write_text(json.dumps({"cluster_name": "gpus", "max_workers": 4}))
    grows = check_trial_fits(TrialResources(1, 1), wait=False, nodes=[{"CPU": 8.0}])
    assert "waiting for the autoscaler to add a node" in grows and "ray_bootstrap_config.yaml" in grows


def test_a_create_cut_short_by_an_outage_is_found_again_not_duplicated(tracked):
    client, callback = tracked
    real_log_batch, failed = callback.client.log_batch, []

    def log_batch_after_an_outage(run_id, **kwargs):  # the run was created, then the store went away
        if not failed:
            failed.append(run_id)
            raise ConnectionError("store went away")
        return real_log_batch(run_id, **kwargs)

    callback.client.log_batch = log_batch_after_an_outage
    trial = fake_trial("cut", 32)
    callback.on_trial_start(0, [], trial)  # the queue keeps the create after the failure
    callback._run_ids.clear()  # as if the response carrying the run id had been lost too
    callback.queue.flush(force=True)
    runs = client.search_runs([callback.experiment_id], f"tags.`{names.TRIAL_ID_TAG}` = 'cut'")
    assert [run.info.run_id for run in runs] == failed and runs[0].data.params  # one run, with its parameters


def test_a_resumed_driver_finds_the_runs_an_earlier_driver_created(tracked):
    client, callback = tracked
    callback.on_trial_start(0, [], fake_trial("early", 32))
    resumed = pickle.loads(pickle.dumps(callback))  # how Tune brings the callback back on --resume
    resumed.on_trial_start(0, [], fake_trial("early", 32))  # e.g. the trial that was running, started again
    runs = client.search_runs([callback.experiment_id], f"tags.`{names.TRIAL_ID_TAG}` = 'early'")
    assert len(runs) == 1
