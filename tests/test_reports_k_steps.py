"""reports.k_steps on a constructed k × loss study whose learning curves are known: k = 4 (and k = 2) win per
generator step but lose at equal compute with the non-saturating loss; the interpolation, the permutation and
Fisher p-values and Holm's adjustment are recomputed here by hand and by brute force."""
import math

import numpy as np
import pytest
from scipy.stats import fisher_exact
from study_store import Trial, fill_study

from oracles import brute_force_two_sample_p, holm_by_hand
from gan import names
from reports.build import build_report
from reports.k_steps import TITLE, k_steps_section, log_value_at
from reports.load import load_study

STEPS = 800
EVALS = list(range(100, STEPS + 1, 100))
SEEDS = range(6)
FINAL_OVER_VALIDATION = 1.1  # the test split's final FID differs from the last validation FID: which one is read shows
SECONDS_PER_G_STEP = {1: 0.05, 2: 0.075, 4: 0.15}  # k = 4: 3x k = 1's, against the assumed (4 + 1)/2 = 2.5


def curve(scale: float, power: float, s0: float = STEPS):
    """FID(s) = scale · (s0 / s)^power: falls with the generator step s."""
    return lambda s: scale * (s0 / s) ** power


# (loss, k) -> (FID curve, per-seed log offsets); the offsets keep every cell's spread small and known
NS_OFFSETS = [0.01 * (i - 2.5) for i in SEEDS]
CELLS = {
    ("nonsaturating", 1): (curve(20, 1), NS_OFFSETS),
    ("nonsaturating", 2): (curve(16, 1), NS_OFFSETS),
    ("nonsaturating", 4): (curve(12, 1), NS_OFFSETS),
    ("minimax", 1): (curve(40, 1), NS_OFFSETS),
    # k = 2 reaches k = 1's level exactly at its equal-compute step 1600/3, its offsets interleaved with k = 1's
    ("minimax", 2): (curve(40, 0.5, 1600 / 3), [0.01 * (i - 2.5) + 0.005 for i in SEEDS]),
    ("minimax", 4): (curve(24, 1), NS_OFFSETS[:3]),  # seeds 3, 4 failed and 5 diverged (below)
}


def _trial(loss: str, k: int, seed: int) -> Trial:
    params = {"arch": "dcgan", "g_width": 16, "d_width": 16, "capacity_ratio_log2": 0.0, "k": k, "loss": loss,
              "seed": seed, "optimizer": "adam", "lr_g": 0.001, "lr_d": 0.001}
    timing = {names.STEP: [(STEPS, STEPS)], names.TOTAL_STEPS: [(STEPS, STEPS)], names.RESTORED_FROM_STEP: [(STEPS, 0)],
              names.TIME_TRAIN_S: [(STEPS, SECONDS_PER_G_STEP[k] * STEPS)]}
    fid, offsets = CELLS[(loss, k)]
    if seed < len(offsets):
        history = [(s, fid(s) * math.exp(offsets[seed])) for s in EVALS]
        return Trial(params, final={names.FID: history[-1][1] * FINAL_OVER_VALIDATION},
                     history={names.FID: history, **timing}, tags={names.OUTCOME_TAG: "converged"})
    if seed < 5:  # trained to the end near the noise ceiling
        return Trial(params, final={names.FID: 900.0}, history={names.FID: [(s, 900.0) for s in EVALS], **timing},
                     tags={names.OUTCOME_TAG: "failed"})
    return Trial(params, history={names.STEP: [(300, 300)], names.TOTAL_STEPS: [(300, STEPS)]},
                 status=names.DIVERGED_STATUS, regime=None, tags={names.OUTCOME_TAG: "diverged"})


@pytest.fixture(scope="module")
def k_study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("k_steps")
    trials = [_trial(loss, k, seed) for (loss, k) in CELLS for seed in SEEDS]
    uri, _, _ = fill_study(tmp, "k_steps", trials, with_grids=False, parent_params={"searched": "k,loss"})
    return uri, tmp


def _hand_log_at(fid, offset: float, step: float) -> float:
    """Linear in log FID between the two evaluations around `step` (both on the 100-step grid)."""
    below = math.floor(step / 100) * 100
    above = below + 100
    share = (step - below) / (above - below)
    return (math.log(fid(below)) + offset) * (1 - share) + (math.log(fid(above)) + offset) * share


def _logs(loss, k, step=None) -> np.ndarray:
    """Hand-computed log FID of the cell's runs that did not fail: at `step` on the curve, or the final one."""
    fid, offsets = CELLS[(loss, k)]
    if step is None:
        return np.array([math.log(fid(STEPS) * FINAL_OVER_VALIDATION) + o for o in offsets])
    return np.array([_hand_log_at(fid, o, step) for o in offsets])


def test_log_value_at_interpolates_log_fid_between_evaluations_and_never_extrapolates():
    steps, values = [100, 200, 300], [40.0, 10.0, 5.0]
    assert log_value_at(steps, values, 150) == pytest.approx(math.log(20.0))  # geometric midpoint of 40 and 10
    assert log_value_at(steps, values, 225) == pytest.approx(0.75 * math.log(10) + 0.25 * math.log(5))
    assert log_value_at(steps, values, 300) == pytest.approx(math.log(5.0))
    assert math.isnan(log_value_at(steps, values, 99)) and math.isnan(log_value_at(steps, values, 301))


def test_section_compares_each_k_with_k1_at_equal_steps_and_at_equal_compute(k_study):
    uri, _ = k_study
    section = k_steps_section(load_study(uri, "k_steps"))
    frame = section.numbers.set_index(["loss", "k"])
    assert frame["budget"].iloc[0] == 2 * STEPS  # k = 1's full run: 800 G steps x (1 + 1)
    assert frame.loc[("nonsaturating", 4.0), "compute_g_step"] == pytest.approx(320)
    assert frame.loc[("minimax", 2.0), "compute_g_step"] == pytest.approx(1600 / 3)

    # per cell: failures (failed and diverged) and the geometric mean of the runs that did not fail
    mm4 = frame.loc[("minimax", 4.0)]
    assert (mm4["runs"], mm4["failed"], mm4["not_failed"]) == (6, 3, 3)
    assert mm4["fid_final_geomean"] == pytest.approx(math.exp(_logs("minimax", 4).mean()))
    # equal compute reads the validation curve (k = 1: its last evaluation, not the final test score)
    assert frame.loc[("nonsaturating", 1.0), "fid_compute_geomean"] == pytest.approx(
        math.exp(_logs("nonsaturating", 1, STEPS).mean()))
    assert frame.loc[("nonsaturating", 4.0), "fid_compute_geomean"] == pytest.approx(
        math.exp(_logs("nonsaturating", 4, 320).mean()))

    p_compute, p_steps = [], []
    comparisons = [("nonsaturating", 2), ("nonsaturating", 4), ("minimax", 2), ("minimax", 4)]
    for loss, k in comparisons:
        row = frame.loc[(loss, float(k))]
        treated, control = _logs(loss, k, STEPS * 2 / (k + 1)), _logs(loss, 1, STEPS)
        assert row["compute_ratio"] == pytest.approx(math.exp(treated.mean() - control.mean()))
        assert row["compute_p"] == pytest.approx(brute_force_two_sample_p(treated, control)[0])
        assert row["steps_p"] == pytest.approx(brute_force_two_sample_p(_logs(loss, k), _logs(loss, 1))[0])
        p_compute.append(row["compute_p"])
        p_steps.append(row["steps_p"])
    assert p_compute[0] == pytest.approx(2 / 924) and p_compute[3] == pytest.approx(1 / 84)  # 6 vs 6, 3 vs 6
    for (loss, k), compute, steps in zip(comparisons, holm_by_hand(p_compute), holm_by_hand(p_steps)):
        assert frame.loc[(loss, float(k)), "compute_holm_p"] == pytest.approx(compute)
        assert frame.loc[(loss, float(k)), "steps_holm_p"] == pytest.approx(steps)
    assert frame.loc[("minimax", 4.0), "compute_holm_p"] == pytest.approx(2 / 84)  # third smallest of 4: x 2

    fisher = fisher_exact([[3, 3], [0, 6]]).pvalue
    assert mm4["fisher_p"] == pytest.approx(fisher)
    assert mm4["fisher_holm_p"] == pytest.approx(min(1, 4 * fisher))  # the others are 0 of 6 vs 0 of 6: p = 1

    # wall time: seconds per G step and the measured cost against the assumed (k + 1)/2
    ns4 = frame.loc[("nonsaturating", 4.0)]
    assert ns4["seconds_per_g_step"] == pytest.approx(0.15)
    assert (ns4["measured_cost_ratio"], ns4["assumed_cost_ratio"]) == (pytest.approx(3.0), pytest.approx(2.5))


def test_which_k_is_lowest_at_which_budget(k_study):
    uri, _ = k_study
    budgets = k_steps_section(load_study(uri, "k_steps")).budgets.set_index(["loss", "gradient_evaluations", "k"])
    for loss in ("nonsaturating", "minimax"):
        for evaluations in (400, 800, 1600):
            geomeans = {}
            for k in (1, 2, 4):
                step = evaluations / (k + 1)
                if step >= 100:
                    geomeans[k] = math.exp(_logs(loss, k, step).mean())
                else:  # k = 4 at 400 gradient evaluations: G step 80, before the first evaluation
                    assert math.isnan(budgets.loc[(loss, evaluations, k), "fid_geomean"])
            for k, value in geomeans.items():
                assert budgets.loc[(loss, evaluations, k), "fid_geomean"] == pytest.approx(value)
                assert budgets.loc[(loss, evaluations, k), "best"] == (value == min(geomeans.values()))
    # the flatter minimax k = 2 curve is lowest at the small budgets, k = 1 at the full one
    assert budgets.loc[("minimax", 400, 2), "best"] and budgets.loc[("minimax", 1600, 1), "best"]


def test_report_says_k4_wins_per_generator_step_but_loses_at_equal_compute(k_study):
    uri, tmp = k_study
    paths = build_report(uri, "k_steps", out_dir=tmp / "out", log_artifacts=False)
    claims = paths.summary_markdown
    assert "With loss = nonsaturating, k = 4 wins per generator step but loses at equal compute" in claims
    assert "With loss = nonsaturating, k = 2 wins per generator step but loses at equal compute" in claims
    assert "With loss = minimax, k = 4 wins per generator step but loses at equal compute" in claims
    assert "With loss = minimax, k = 2: no evidence of a difference from k = 1 at equal compute" in claims
    assert "k = 4 fails" not in claims  # 3 of 6 against 0 of 6: Fisher p 0.18, not claimed
    assert "support it with loss = nonsaturating (every k > 1 worse at equal compute)" in claims
    assert "support it with loss = minimax against k = 4 but cannot decide against k = 2" in claims
    assert "1,600: k = 1" in claims and "k = 4 not yet evaluated" in claims
    assert "Primary family: each k against k = 1 at equal compute" in claims
    text = paths.markdown.read_text()
    assert TITLE in text and "Which k is best at which budget" in text
    assert {tmp / "out" / "k_steps.csv", tmp / "out" / "k_steps_budgets.csv"} <= set(paths.csv_files)
    assert tmp / "out" / "k_steps_compute.png" in paths.images
    # widths are constant: no imbalance family is declared beside the k section's, and the capacity factorial's
    # sections (which would show one cell pooling every k and loss) are absent, not printed empty
    assert "2 × 2 imbalance contrasts" not in claims
    for balance_only in ("Capacity imbalance, cell by cell", "Imbalanced cells against their balanced neighbours",
                         "imbalance.csv", "paired_effects.csv", "fid_heatmap.png", "learning_curves.png"):
        assert balance_only not in text
    assert "Effect sizes on" in text  # the searched settings' effect sizes still say something here


def test_a_study_whose_trials_share_one_k_has_no_k_section(tmp_path):
    trials = [Trial({"arch": "dcgan", "g_width": g, "d_width": 16, "capacity_ratio_log2": math.log2(16 / g), "k": 1,
                     "loss": "nonsaturating", "seed": seed}, final={names.FID: 20.0 + g + seed},
                    tags={names.OUTCOME_TAG: "converged"}) for g in (8, 16) for seed in range(3)]
    uri, _, _ = fill_study(tmp_path, "balance", trials, with_grids=False)
    assert k_steps_section(load_study(uri, "balance")) is None
    paths = build_report(uri, "balance", out_dir=tmp_path / "out", log_artifacts=False)
    assert TITLE not in paths.markdown.read_text()
    assert not any(p.name.startswith("k_steps") for p in paths.csv_files)


@pytest.mark.parametrize("name,cells,seeds,steps,evals", [("k_steps.yaml", 6, 6, 800, 100),
                                                          ("k_steps_full.yaml", 8, 10, 2500, 250)])
def test_shipped_k_spaces_cross_k_with_the_two_2014_losses_on_the_balanced_dcgan(name, cells, seeds, steps, evals):
    from study.space import load_space

    space = load_space(name)
    variants = space.grid_variants()
    assert len(variants) == cells and space.trial_count() == cells * seeds
    assert {v["loss"] for v in variants} == {"minimax", "nonsaturating"}
    assert {(v["k"], v["loss"]) for v in variants} == {(k, loss) for k in {v["k"] for v in variants}
                                                       for loss in ("minimax", "nonsaturating")}
    assert 1 in {v["k"] for v in variants}
    assert (space.budget.steps, space.budget.eval_every) == (steps, evals)
    assert {key: space.fixed[key] for key in ("arch", "g_width", "d_width", "lr_decay", "batch_size")} == {
        "arch": "dcgan", "g_width": 16, "d_width": 16, "lr_decay": 1.0006, "batch_size": 32}


def test_failures_are_claimed_only_when_fishers_test_survives_holm_and_failed_runs_leave_the_fid_comparison():
    import pandas as pd

    from reports.k_steps import budget_frame, findings, k_frame

    steps = np.array(EVALS, dtype=float)
    rows = [{"k": 1.0, "failed": False, "fid": 20.0 + seed, "total_steps": float(STEPS), "seconds_per_g_step": math.nan,
             "curve": (steps, 20.0 * STEPS / steps + seed)} for seed in SEEDS]
    rows += [{"k": 2.0, "failed": True, "fid": 900.0, "total_steps": float(STEPS), "seconds_per_g_step": math.nan,
              "curve": None} for _ in SEEDS]
    runs = pd.DataFrame(rows)
    frame = k_frame(runs, [], 2.0 * STEPS)
    failing = frame[frame["k"] == 2.0].iloc[0]
    assert failing["fisher_p"] == pytest.approx(fisher_exact([[6, 0], [0, 6]]).pvalue)  # 2/924, alone in its family
    assert failing["fisher_holm_p"] == pytest.approx(2 / 924)
    assert math.isnan(failing["compute_p"]) and math.isnan(failing["fid_final_geomean"])  # no run left to compare
    sentences = findings(frame, budget_frame(runs, [], 2.0 * STEPS), [], "FID")
    assert "K = 2 fails more often than k = 1: 6 of 6 against 0 of 6" in " ".join(sentences)
    assert "K = 2: too few runs that did not fail to compare with k = 1 at equal compute." in sentences
    assert "this study's data cannot decide it (no k differs from k = 1 at equal compute)" in sentences[-1]


def test_a_k_whose_runs_all_failed_is_said_to_have_failed_not_to_be_unevaluated():
    import pandas as pd

    from reports.k_steps import K, _budget_sentences, budget_table

    rows = [{"share_of_budget": 1.0, "gradient_evaluations": 1600, K: k, "g_step": 1600 / (k + 1),
             "not_failed": not_failed, "evaluated": not_failed, "fid_geomean": fid, "best": best}
            for k, not_failed, fid, best in ((1, 6, 80.0, True), (2, 6, math.nan, False), (4, 0, math.nan, False))]
    budgets = pd.DataFrame(rows)  # k = 2 has runs but none evaluated yet; every k = 4 run failed
    (sentence,) = _budget_sentences(budgets, [], "FID")
    assert "1,600: k = 1 (k = 2 not yet evaluated; every run of k = 4 failed)" in sentence
    cells = budget_table(budgets, [], "FID").rows[0]
    assert "not yet evaluated (533)" in cells and "every run failed (320)" in cells


def test_the_paper_sentence_says_every_run_failed_where_no_k_left_a_run_to_score():
    import pandas as pd

    from reports.k_steps import K, _paper_sentence

    frame = pd.DataFrame([{K: k, "k_ref": 1, "reference": k == 1, "runs": 6, "failed": 6, "not_failed": 0,
                           "loss": "minimax"} for k in (1, 2, 4)])
    sentence = _paper_sentence(frame, ["loss"])
    assert "cannot decide it with loss = minimax: every run failed at every k (18 of 18)" in sentence
