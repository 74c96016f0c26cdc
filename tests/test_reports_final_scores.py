"""Final scores are compared only among trials that trained to the end, and parameters print as they were set.

A learning-rate study searched by Optuna with ASHA: 7 trials ran their 657 generator steps, 9 were stopped at
step 165. The stopped trials' last FIDs depend on lr_d only, the complete trials' final FIDs on lr_g only, and one
stopped trial happens to hold the lowest score of all: pooled, the stopped trials would decide the importances and
the best trial.
"""
import math

import pandas as pd
import pytest

from gan import names
from reports import build_report, plots, render, tables
from reports.load import load_study
from study_store import Trial, fill_study

TOTAL = 657
STOPPED_AT = 165
LR_G = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)  # the complete trials' lr_g, one each
OPTUNA_ASHA = {"search": "optuna", "scheduler": "asha", "searched": "lr_g,lr_d", "metric": names.FID}
LEFT_OUT = ("over the 7 trials that trained to the end of their budget; 9 stopped early by the ASHA scheduler are "
            "left out: a score from an earlier step is not comparable with a final one.")


def lr_trial(lr_g: float, lr_d: float, fid: float, stopped: bool) -> Trial:
    step = STOPPED_AT if stopped else TOTAL
    return Trial(params={"arch": "mlp", "g_width": 128, "d_width": 128, "lr_g": lr_g, "lr_d": lr_d, "seed": 0,
                         "capacity_ratio_log2": 0.0},
                 final={} if stopped else {names.FID: fid},
                 history={names.FID: [(step, fid)], names.STEP: [(step, step)], names.TOTAL_STEPS: [(step, TOTAL)]},
                 status=names.STOPPED_EARLY if stopped else names.COMPLETED)


def complete_fid(lr_g: float) -> float:
    return 30.0 + 10.0 * abs(math.log10(lr_g) + 3.5)


def lr_design(complete: int = 7, stopped: int = 9) -> list[Trial]:
    trials = [lr_trial(lr_g, 1e-4 * (i + 1), complete_fid(lr_g), stopped=False)
              for i, lr_g in enumerate(LR_G[:complete])]
    for i in range(stopped):
        lr_d = 10 ** (-5 + 3 * i / max(stopped - 1, 1))
        fid = 5.0 if i == 0 else 150.0 + 40.0 * (math.log10(lr_d) + 5)  # trial 0: the lowest score of the study
        trials.append(lr_trial(3e-4, lr_d, fid, stopped=True))
    return trials


@pytest.fixture(scope="module")
def lr_study(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("lr_store")
    uri, _, _ = fill_study(tmp_path, "lr", lr_design(), parent_params=OPTUNA_ASHA, with_grids=False)
    return tmp_path, uri


def test_importances_rest_on_the_trials_that_trained_to_the_end_and_say_how_many_were_left_out(lr_study,
                                                                                                 monkeypatch):
    import optuna

    seen = []
    computed = optuna.importance.get_param_importances
    monkeypatch.setattr(optuna.importance, "get_param_importances",
                        lambda study: seen.append(study) or computed(study))
    numbers, table = tables.optuna_importances(load_study(lr_study[1], "lr"))
    (rebuilt,) = seen
    assert sorted(t.value for t in rebuilt.trials) == pytest.approx(sorted(map(complete_fid, LR_G)))
    assert set(numbers["param"]) == {"lr_g", "lr_d"}
    assert table.note == f"fANOVA importances {LEFT_OUT} Importances sum to 1."


def test_too_few_trials_that_trained_to_the_end_leave_the_importances_uncomputed_and_say_why(tmp_path, monkeypatch):
    import optuna

    uri, _, _ = fill_study(tmp_path, "few", lr_design(complete=3, stopped=13), parent_params=OPTUNA_ASHA,
                           with_grids=False)
    monkeypatch.setattr(optuna.importance, "get_param_importances", lambda study: pytest.fail("computed"))
    numbers, table = tables.optuna_importances(load_study(uri, "few"))
    assert numbers.empty and table.rows == []
    assert table.note == ("Not computed: fANOVA needs at least 4 trials that trained to the end of their budget, with "
                          "at least 2 params varying among them; this study has 3. Importances are computed only over "
                          "the 3 trials that trained to the end of their budget; 13 stopped early by the ASHA "
                          "scheduler are left out: a score from an earlier step is not comparable with a final one.")
    section = render.markdown(render.ReportParts("r", [], [table], [], [], [], ""), tmp_path)
    assert f"## {table.title}\n\n{table.note}\n" in section and "| param |" not in section


def test_the_best_trial_the_cells_and_the_effect_sizes_rank_only_final_scores(lr_study):
    study = load_study(lr_study[1], "lr")
    best = plots._best_median_worst(study)["best"]
    assert best["status"] == names.COMPLETED and best["metric." + names.FID] == min(map(complete_fid, LR_G))
    cells, table = tables.imbalance_table(study)
    assert cells["n"].tolist() == [7] and table.note.endswith(f"Final scores are compared {LEFT_OUT}")
    effects, table = tables.effect_sizes(study)
    assert set(effects["trials"]) == {7} and table.note.endswith(f"Final scores are compared {LEFT_OUT}")
    assert ("compared trials", f"Final scores are compared {LEFT_OUT}") in tables.header(study)


def test_a_trial_is_cut_short_by_its_status_or_else_by_its_last_step():
    trials = pd.DataFrame({
        "status": [names.COMPLETED, names.STOPPED_EARLY, names.RUNNING, names.ERRORED, names.DIVERGED_STATUS,
                   "unknown", "unknown"],
        "metric.step": [657, 165, 300, 300, 40, 165, 657], "metric.total_steps": [657] * 7})
    assert tables.cut_short(trials).fillna("final").tolist() == [
        "final", names.STOPPED_EARLY, names.RUNNING, names.ERRORED, "final", tables.SHORT_OF_BUDGET, "final"]


def test_a_study_where_no_trial_trained_to_the_end_builds_a_report_that_says_so(tmp_path):
    uri, _, _ = fill_study(tmp_path, "none", lr_design(complete=0, stopped=6), parent_params=OPTUNA_ASHA,
                           with_grids=False)
    text = build_report(uri, "none", out_dir=tmp_path / "out", formats=("md",), log_artifacts=False).markdown \
        .read_text()
    assert "## Capacity imbalance, cell by cell\n\nNot computed: no trial has a final score. Final scores are " \
           "compared over the 0 trials that trained to the end of their budget; 6 stopped early by the ASHA " \
           "scheduler are left out" in text


# Parameter values of the shipped spaces: learning rates, Adam's beta1, widths, a decay factor.
@pytest.mark.parametrize("value, text", [(0.0005, "0.0005"), (2e-4, "0.0002"), (1e-3, "0.001"), (1e-5, "1e-05"),
                                         (0.5, "0.5"), (16.0, "16"), (128.0, "128"), (1200.0, "1200"),
                                         (1.00015, "1.00015"), ("dcgan", "dcgan")])
def test_a_parameter_value_prints_as_it_was_set(value, text):
    assert tables.param_text(value) == text


def test_an_estimate_next_to_zero_keeps_its_near_zero_format():
    assert tables.fmt(0.0005) == "≈0" and tables.fmt(23.14159) == "23.14"


def test_tables_print_small_learning_rates_as_values_not_as_near_zero(tmp_path):
    """k ∈ {1, 2} × lr_g ∈ {0.0005, 0.0002}, 2 seeds: lr_g is a stratum of the cell table and held fixed in the
    effect sizes of k."""
    trials = [Trial(params={"arch": "dcgan", "g_width": 16, "d_width": 16, "k": k, "lr_g": lr_g, "seed": seed,
                            "capacity_ratio_log2": 0.0},
                    final={names.FID: 20.0 * k + 1000 * lr_g + seed})
              for k in (1, 2) for lr_g in (0.0005, 0.0002) for seed in (0, 1)]
    uri, _, _ = fill_study(tmp_path, "small_lr", trials, parent_params={"searched": "k,lr_g"}, with_grids=False)
    study = load_study(uri, "small_lr")
    _, cells = tables.imbalance_table(study)
    lr_column = cells.columns.index("lr_g")
    assert sorted(row[lr_column] for row in cells.rows) == ["0.0002", "0.0002", "0.0005", "0.0005"]
    _, effect = tables.effect_sizes(study)
    held = {row[1] for row in effect.rows if row[0] == "k"}
    assert held == {"arch=dcgan, lr_g=0.0002", "arch=dcgan, lr_g=0.0005"}
    best_lr = {row[5].split(" ")[0] for row in effect.rows if row[0] == "lr_g"}
    assert best_lr == {"0.0002"}
    assert not [cell for table in (cells, effect) for row in table.rows for cell in row if "≈0" in cell]
