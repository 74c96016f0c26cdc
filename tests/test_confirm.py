"""A two-stage study, search then confirm (study.confirm): the `confirm:` key, the choice of configurations from
the search's results, the fresh seeds, the confirmation's tags; end to end on a tiny space (slow)."""
import json
import math
from types import SimpleNamespace

import pytest

from gan import names
from study.confirm import (CONFIRM_RUN_SUFFIX, SearchResult, check_resume, choose_confirmed, confirm_seeds,
                           confirm_stage, rank_search_results, search_seeds)
from study.outcome import TrialOutcome
from study.preflight import UsageError
from study.run_names import config_id
from study.space import SpaceError, load_space
from study.tune_config import GRID_PARAMS, SEED_INDEX, TrialSettings, trial_params

SPACE = """
name: tiny_confirm
dataset: mnist5k
fixed: {{arch: mlp, z_dim: 8, g_width: 16, d_width: 16, g_depth: 1, d_depth: 1, batch_size: 32}}
search_space:
  lr_g: {{loguniform: [1.0e-4, 1.0e-2]}}
  lr_d: {{loguniform: [1.0e-4, 1.0e-2]}}
search: random
scheduler: fifo
metric: pixel_fd
mode: min
num_samples: 3
seed: 7
budget: {{steps: 30, eval_every: 15}}
evaluation: {{num_samples: 100, metrics: [pixel_fd]}}
resources: {{cpus_per_trial: 1, max_concurrent: 2}}
{extra}
"""
CONFIRM = "confirm: {top: 1, seeds: 2, against: {lr_g: 1e-3, lr_d: 0.001}}"


def _space(tmp_path, extra=CONFIRM, **replace):
    text = SPACE.format(extra=extra)
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


# --- the YAML interface ---------------------------------------------------------------------------------------

def test_confirm_is_parsed_with_the_reference_typed_and_counted_in_the_trials(tmp_path):
    space = load_space(_space(tmp_path))
    assert (space.confirm.top, space.confirm.seeds) == (1, 2)
    assert space.confirm.against == {"lr_g": 0.001, "lr_d": 0.001}  # YAML's 1e-3 is a string: made a number
    assert isinstance(space.confirm.against["lr_g"], float)
    assert (space.search_trial_count(), space.trial_count()) == (3, 3 + (1 + 1) * 2)
    assert load_space(_space(tmp_path, extra="")).confirm is None


def test_the_shipped_learning_rate_spaces_are_two_stage_random_searches():
    quick, full = load_space("learning_rates.yaml"), load_space("learning_rates_full.yaml")
    for space, samples, top, seeds, steps in ((quick, 12, 2, 6, 1200), (full, 48, 3, 10, 2500)):
        assert (space.search, space.scheduler, space.num_samples) == ("random", "fifo", samples)
        assert (space.confirm.top, space.confirm.seeds, space.budget.steps) == (top, seeds, steps)
        assert space.confirm.against == {"lr_g": 0.001, "lr_d": 0.001}
        assert (space.fixed["arch"], space.fixed["g_width"], space.fixed["d_width"]) == ("dcgan", 16, 16)


@pytest.mark.parametrize("replace,extra,message", [
    ({"search: random": "search: grid", "loguniform: [1.0e-4, 1.0e-2]": "grid: [1.0e-4, 1.0e-3]",
      "num_samples: 3\n": ""}, CONFIRM, "confirm applies to a search (search: random or optuna)"),
    ({"scheduler: fifo": "scheduler: pbt"}, CONFIRM, "confirm does not apply to scheduler: pbt"),
    ({"num_samples: 3": "num_samples: 3\nseeds_per_config: 2"}, CONFIRM, "confirm needs seeds_per_config: 1"),
    ({}, "confirm: {top: 1, against: {lr_g: 0.001, lr_d: 0.001}}", "confirm needs top, seeds, against, missing seeds"),
    ({}, "confirm: {tops: 1, seeds: 2, against: {}}", "unknown key 'tops' in confirm (did you mean 'top'?)"),
    ({}, "confirm: [1, 2]", "'confirm' must be a mapping"),
    ({}, "confirm: {top: 0, seeds: 2, against: {lr_g: 0.001, lr_d: 0.001}}", "confirm.top must be a positive integer"),
    ({}, "confirm: {top: 4, seeds: 2, against: {lr_g: 0.001, lr_d: 0.001}}", "confirm.top 4 exceeds num_samples 3"),
    ({}, "confirm: {top: 1, seeds: 1, against: {lr_g: 0.001, lr_d: 0.001}}", "confirm.seeds must be at least 2"),
    ({}, "confirm: {top: 1, seeds: 2, against: 0.001}", "confirm.against must map the searched parameters"),
    ({}, "confirm: {top: 1, seeds: 2, against: {lr_g: 0.001}}", "confirm.against must set every searched parameter; "
                                                                "missing 'lr_d'"),
    ({}, "confirm: {top: 1, seeds: 2, against: {lr_g: 0.001, lr_dd: 0.001}}",
     "confirm.against: 'lr_dd' is not a searched parameter (searched: lr_g, lr_d) (did you mean 'lr_d'?)"),
    ({}, "confirm: {top: 1, seeds: 2, against: {lr_g: -0.001, lr_d: 0.001}}", "confirm.against: lr_g must be > 0"),
    ({}, "confirm: {top: 1, seeds: 2, against: {lr_g: fast, lr_d: 0.001}}", "confirm.against: lr_g must be a number"),
    ({"  lr_d: {loguniform: [1.0e-4, 1.0e-2]}": "  lr_d: {loguniform: [1.0e-4, 1.0e-2]}\n"
                                                 "  k: {choice: [1, 2]}\n  beta1: {choice: [0.5], when: {k: 2}}"},
     "confirm: {top: 1, seeds: 2, against: {lr_g: 0.001, lr_d: 0.001, k: 1, beta1: 0.5}}",
     "confirm.against sets 'beta1', which its `when` conditions leave out of this configuration"),
])
def test_a_bad_confirm_is_one_line_naming_the_file(tmp_path, replace, extra, message):
    with pytest.raises(SpaceError) as error:
        load_space(_space(tmp_path, extra=extra, **replace))
    text = str(error.value)
    assert message in text and "\n" not in text and "space.yaml" in text, text


@pytest.mark.parametrize("args,message", [
    (["--seeds-per-config", "2"], "--seeds-per-config does not apply to a search with confirm:"),
    (["--num-samples", "1", "--space", "TOP2"], "--num-samples 1 is below confirm.top 2"),
])
def test_cli_refuses_overrides_that_break_the_confirmation_before_ray_starts(tmp_path, monkeypatch, capsys, args,
                                                                            message):
    import ray

    from study.run import main

    monkeypatch.chdir(tmp_path)
    good = _space(tmp_path)
    (tmp_path / "top2.yaml").write_text(good.read_text().replace("top: 1", "top: 2"))
    args = ["--space", str(good), *args] if "--space" not in args else [
        a.replace("TOP2", str(tmp_path / "top2.yaml")) for a in args]
    capsys.readouterr()
    status = main(args)
    lines = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and message in lines[0], lines
    assert not ray.is_initialized() and not (tmp_path / "mlflow.db").exists()


# --- the choice of configurations -----------------------------------------------------------------------------

def _result(lr, status, score, failed=False):
    key = None if score is None else (names.final("fid") if status == names.COMPLETED else "fid")
    return SearchResult({"lr_g": lr, "lr_d": lr}, status, score, key, failed)


REFERENCE = {"lr_g": 1.0, "lr_d": 1.0}


def test_complete_trials_rank_before_stopped_ones_and_failed_or_diverged_last_errored_never():
    results = [
        _result(0.1, names.STOPPED_EARLY, 5.0),  # the best score, but from an earlier step
        _result(0.2, names.COMPLETED, 30.0),
        _result(0.3, names.DIVERGED_STATUS, 1.0),  # diverged: last, whatever its score
        _result(0.4, names.COMPLETED, 20.0),
        _result(0.5, names.ERRORED, None),  # measured nothing: never chosen
        _result(0.6, names.COMPLETED, 2.0, failed=True),  # gan.outcome failed: last
        _result(0.7, names.STOPPED_EARLY, 7.0),
    ]
    ranked = [r.params["lr_g"] for r in rank_search_results(results, "min")]
    assert ranked == [0.4, 0.2, 0.1, 0.7, 0.3, 0.6]
    chosen = choose_confirmed(results, 3, "min", REFERENCE)
    assert [(c.rank, c.params["lr_g"], c.search_score) for c in chosen] == [
        (1, 0.4, 20.0), (2, 0.2, 30.0), (3, 0.1, 5.0), (None, 1.0, None)]
    assert chosen[2].score_key == "fid" and chosen[0].score_key == "final/fid"
    # the study's mode decides which end is best
    assert [r.params["lr_g"] for r in rank_search_results(results, "max")][:3] == [0.2, 0.4, 0.7]
    # asking for more than there is: every trial that measured something, never the errored one
    assert [c.params["lr_g"] for c in choose_confirmed(results, 9, "min", REFERENCE)] == [
        0.4, 0.2, 0.1, 0.7, 0.3, 0.6, 1.0]


def test_a_configuration_counts_once_and_the_reference_is_never_chosen_as_a_rank():
    results = [_result(0.2, names.COMPLETED, 10.0), _result(0.2, names.COMPLETED, 12.0),
               _result(1.0, names.COMPLETED, 5.0), _result(0.3, names.COMPLETED, 20.0)]
    chosen = choose_confirmed(results, 2, "min", REFERENCE)
    assert [(c.rank_tag, c.params["lr_g"], c.search_score) for c in chosen] == [
        ("1", 0.2, 10.0), ("2", 0.3, 20.0), (names.CONFIRM_REFERENCE, 1.0, None)]


def _settings(space):
    return TrialSettings(space.dataset, None, space.fixed, space.budget, space.evaluation, space.metric, space.mode,
                         space.seed)


def test_the_confirmation_trains_on_fresh_seeds_and_tags_each_configuration(tmp_path):
    space = load_space(_space(tmp_path, extra=CONFIRM.replace("top: 1, seeds: 2", "top: 2, seeds: 3")))
    settings = _settings(space)
    outcomes = [TrialOutcome(f"t{i}", names.COMPLETED, None, {"lr_g": lr, "lr_d": lr / 2},
                             {names.final("pixel_fd"): score, "pixel_fd": score + 1})
                for i, (lr, score) in enumerate([(2e-4, 30.0), (3e-4, 10.0), (4e-4, 20.0)])]
    stage = confirm_stage(outcomes, space, settings)
    assert [c.params for c in stage.configurations] == [{"lr_g": 3e-4, "lr_d": 1.5e-4}, {"lr_g": 4e-4, "lr_d": 2e-4},
                                                        {"lr_g": 0.001, "lr_d": 0.001}]
    assert stage.trial_count == 3 * 3
    # every trial of the grid: its seed is fresh, the same N for each configuration
    searched = {trial_params(outcome.config, settings)["seed"] for outcome in outcomes}
    assert searched == set(search_seeds(space)) == {7}
    grid = stage.param_space()
    seeds = {trial_params({GRID_PARAMS: point, SEED_INDEX: i}, stage.settings)["seed"]
             for point in grid[GRID_PARAMS]["grid_search"] for i in grid[SEED_INDEX]["grid_search"]}
    assert seeds == set(confirm_seeds(space)) == {1007, 1008, 1009}
    assert not seeds & searched
    # the confirmation runs of a configuration share its search trial's configuration id (the report links them)
    tags = stage.tags_by_config()
    best = config_id(trial_params(outcomes[1].config, settings))
    assert tags[best] == {names.STAGE_TAG: names.STAGE_CONFIRM, names.CONFIRM_RANK_TAG: "1",
                          names.SEARCH_SCORE_TAG: "10.0"}
    reference = config_id(trial_params({GRID_PARAMS: space.confirm.against}, settings))
    assert tags[reference] == {names.STAGE_TAG: names.STAGE_CONFIRM, names.CONFIRM_RANK_TAG: names.CONFIRM_REFERENCE}
    assert len(tags) == 3


def test_resume_refuses_a_study_whose_design_the_space_does_not_match(tmp_path):
    space = load_space(_space(tmp_path))
    (tmp_path / "plain").mkdir()
    plain = load_space(_space(tmp_path / "plain", extra=""))

    def parent(two_stage, confirm=None):
        tags = {names.DESIGN_TAG: names.DESIGN_SEARCH_CONFIRM} if two_stage else {}
        params = {"confirm": json.dumps(confirm)} if confirm else {}
        return SimpleNamespace(info=SimpleNamespace(run_name="study-1"), data=SimpleNamespace(tags=tags, params=params))

    logged = {"top": 1, "seeds": 2, "against": {"lr_g": 0.001, "lr_d": 0.001}}
    check_resume(parent(True, logged), space)  # the same design: fine
    check_resume(parent(False), plain)
    for study, now, message in ((parent(False), space, "started without a confirmation stage"),
                                (parent(True, logged), plain, "started with a confirmation stage"),
                                (parent(True, {**logged, "seeds": 5}), space, "was started with confirm:")):
        with pytest.raises(UsageError, match=message):
            check_resume(study, now)


# --- end to end -----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_two_stage_study_confirms_the_best_search_configuration_on_fresh_seeds(tmp_path):
    from mlflow.tracking import MlflowClient

    from processes import run_study, study_runs

    run_study(tmp_path, str(_space(tmp_path)), "--report", "--progress-every", "60")
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), children = study_runs(client)
    assert parent.data.tags[names.DESIGN_TAG] == names.DESIGN_SEARCH_CONFIRM
    assert parent.data.tags[names.STATUS_TAG] == names.COMPLETED and parent.info.status == "FINISHED"
    assert all(child.data.tags[names.PARENT_TAG] == parent.info.run_id for child in children)
    search = [c for c in children if c.data.tags[names.STAGE_TAG] == names.STAGE_SEARCH]
    confirm = [c for c in children if c.data.tags[names.STAGE_TAG] == names.STAGE_CONFIRM]
    assert (len(search), len(confirm)) == (3, 4) and parent.data.metrics[names.TRIALS_TOTAL] == 7
    # the best search trial (by its final score: FIFO, all complete) is rank 1, with its search score
    best = min(search, key=lambda c: c.data.metrics["final/pixel_fd"])
    ranked = {rank: [c for c in confirm if c.data.tags[names.CONFIRM_RANK_TAG] == rank]
              for rank in ("1", names.CONFIRM_REFERENCE)}
    assert [len(runs) for runs in ranked.values()] == [2, 2]
    for run in ranked["1"]:
        assert run.data.tags[names.CONFIG_ID_TAG] == best.data.tags[names.CONFIG_ID_TAG]
        assert float(run.data.tags[names.SEARCH_SCORE_TAG]) == pytest.approx(best.data.metrics["final/pixel_fd"])
        assert (run.data.params["lr_g"], run.data.params["lr_d"]) == (best.data.params["lr_g"],
                                                                      best.data.params["lr_d"])
    for run in ranked[names.CONFIRM_REFERENCE]:
        assert names.SEARCH_SCORE_TAG not in run.data.tags
        assert math.isclose(float(run.data.params["lr_g"]), 0.001) and math.isclose(float(run.data.params["lr_d"]), 0.001)
    # fresh seeds: the same two for each configuration, none the search used
    search_used = {int(c.data.params["seed"]) for c in search}
    assert search_used == {7}
    for runs in ranked.values():
        assert sorted(int(c.data.params["seed"]) for c in runs) == [1007, 1008]
    for run in confirm:
        assert run.data.tags[names.STATUS_TAG] == names.COMPLETED and "final/pixel_fd" in run.data.metrics
    assert parent.data.params["confirm_tune_run_path"].endswith(CONFIRM_RUN_SUFFIX)
    # the report has the two-stage section (3 search trials: no expected-best curve, it says why)
    report = client.download_artifacts(parent.info.run_id, "report/report.md", str(tmp_path / "downloaded"))
    text = open(report).read()
    assert "## Confirmation: each confirmed configuration against the reference" in text
    assert "## Winner's curse" in text and "at least 8" in text


@pytest.mark.slow
def test_a_two_stage_study_interrupted_in_its_confirmation_resumes_there(tmp_path):
    import signal

    from mlflow.tracking import MlflowClient

    from processes import finish_study, run_study, start_study, study_runs, wait_for

    # D's outputs only (no final evaluation): trials of a few seconds, one at a time, so the interrupt lands in stage 2
    space = _space(tmp_path, extra=CONFIRM, **{
        "num_samples: 3": "num_samples: 2", "budget: {steps: 30, eval_every: 15}": "budget: {steps: 300, eval_every: 20}",
        "metric: pixel_fd\nmode: min": "metric: d_gap\nmode: max", "max_concurrent: 2": "max_concurrent: 1",
        "evaluation: {num_samples: 100, metrics: [pixel_fd]}":
            "evaluation: {num_samples: 100, metrics: [discriminator], final: false}"})
    driver = start_study(tmp_path, str(space), "--progress-every", "60")

    def confirmation_training():
        for path in (tmp_path / "ray").glob(f"*{CONFIRM_RUN_SUFFIX}/*/result.json"):
            if len(path.read_text().splitlines()) >= 2:
                return True
        return False

    wait_for(confirmation_training, 240, "a confirmation trial's second evaluation")
    driver.send_signal(signal.SIGINT)
    finish_study(driver, tmp_path, expected_status=130)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (parent,), children = study_runs(client)
    assert parent.data.tags[names.STATUS_TAG] == names.INTERRUPTED
    search_before = {c.info.run_id for c in children if c.data.tags[names.STAGE_TAG] == names.STAGE_SEARCH}
    assert len(search_before) == 2
    assert "resume" in (tmp_path / "driver.log").read_text()

    run_study(tmp_path, str(space), "--resume", "--progress-every", "60")
    (resumed,), children = study_runs(client)
    assert resumed.info.run_id == parent.info.run_id and resumed.data.tags[names.STATUS_TAG] == names.COMPLETED
    search = {c.info.run_id for c in children if c.data.tags[names.STAGE_TAG] == names.STAGE_SEARCH}
    confirm = [c for c in children if c.data.tags[names.STAGE_TAG] == names.STAGE_CONFIRM]
    assert search == search_before  # the search was not run again
    assert len(confirm) == 4 and len({c.data.tags[names.TRIAL_ID_TAG] for c in confirm}) == 4
    assert sorted((c.data.tags[names.CONFIRM_RANK_TAG], int(c.data.params["seed"])) for c in confirm) == [
        ("1", 1007), ("1", 1008), (names.CONFIRM_REFERENCE, 1007), (names.CONFIRM_REFERENCE, 1008)]
    for child in confirm:
        assert child.data.tags[names.STATUS_TAG] == names.COMPLETED
        steps = [m.step for m in client.get_metric_history(child.info.run_id, names.D_GAP)]
        assert steps == list(range(20, 301, 20))  # every evaluation once, none lost or repeated
    assert resumed.data.metrics[names.TRIALS_TOTAL] == 6
