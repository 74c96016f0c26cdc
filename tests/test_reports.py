"""`python -m reports` on studies written straight into an MLflow store, so every expected value is known."""
import base64
import math
import re
import statistics
import subprocess
import sys

import pytest
from PIL import Image

from gan import names
from reports import ReportError, build_report
from study_store import Trial, fill_study

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("fid_vs_capacity", "paired_differences", "fid_heatmap", "regimes", "learning_curves", "d_outputs",
           "samples")

# DCGAN: a 2 x 2 factorial G, D in {8, 16}, 8 seeds. Final FID = 20 x (2 if G = 8) x (1.2 if D = 8) x (1.5 if
# imbalanced) x a seed factor shared by the seed's four cells x a small jitter of its own:
#   G16/D16 = 20, G8/D8 = 48, G16/D8 = 36, G8/D16 = 60 (before seed factors).
# The 2 x 2 contrast is x1.5 (the G x D interaction; cells are unpaired, so the seed factors are residual noise);
# pairwise, G8/D16 is above both balanced neighbours (x3 and x1.25) but G16/D8 is above G16/D16 (x1.8) and below
# G8/D8 (x0.75): only G8/D16 shows imbalance itself.
# MLP: not factorial (G 256 with D 256 and 128, G 128 with D 256), 3 seeds (one failed): its comparisons cannot
# reach 0.05.
SEEDS = 8
CELLS = {(16, 16): 20.0, (8, 8): 48.0, (16, 8): 36.0, (8, 16): 60.0}
MLP_CELLS = {(256, 256): 60.0, (256, 128): 80.0, (128, 256): 90.0}
DRAW_JITTER = (0.0, 0.5, -0.5)  # the three evaluation draws of each generator: FID + these


def seed_factor(seed: int) -> float:
    return math.exp(0.05 * (seed - 3.5))


def jitter(cell_index: int, seed: int) -> float:
    return math.exp(0.02 * math.sin(3 * seed + cell_index))


def fid_of(cell_index: int, base: float, seed: int) -> float:
    return base * seed_factor(seed) * jitter(cell_index, seed)


def design() -> list[Trial]:
    trials = []
    for arch, cells, seeds in (("dcgan", CELLS, SEEDS), ("mlp", MLP_CELLS, 3)):
        for index, ((g_width, d_width), base) in enumerate(cells.items()):
            for seed in range(seeds):
                fid = fid_of(index, base, seed)
                draws = [fid + offset for offset in DRAW_JITTER]
                outcome = ("failed" if arch == "mlp" and (g_width, d_width) == (128, 256) and seed == 0 else
                           "still_improving" if (g_width, d_width) == (8, 16) and seed < 2 else "converged")
                trials.append(Trial(
                    params={"arch": arch, "g_width": g_width, "d_width": d_width, "k": 1, "seed": seed,
                            "capacity_ratio_log2": math.log2(d_width / g_width)},
                    final={names.FID: statistics.mean(draws), **{names.draw(names.FID, i): v for i, v in
                                                                   enumerate(draws)},
                           names.CLASSES_COVERED: 10 - seed % 3, names.D_GAP: 0.1},
                    history={names.FID: [(100, 2 * fid), (200, fid)], names.TOTAL_STEPS: [(200, 200)],
                             names.EVAL_D_REAL: [(100, 0.7), (200, 0.8)], names.EVAL_D_FAKE: [(100, 0.3), (200, 0.2)]},
                    regime="balanced" if g_width == d_width else "d_dominates",
                    tags={names.OUTCOME_TAG: outcome,
                          names.CONVERGENCE_TAG: "still_improving" if outcome == "still_improving" else "converged"}))
    return trials


def trial_fids(arch: str, cell: tuple) -> list[float]:
    return [t.final[names.FID] for t in design() if t.params["arch"] == arch
            and (t.params["g_width"], t.params["d_width"]) == cell]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("report_store")
    uri, client, parent_id = fill_study(tmp_path, "rep", design(), parent_params={
        "searched": "arch,g_width,d_width", "budget": '{"steps": 2500, "eval_every": 400}'},
        parent_metrics={names.reference(names.FID_TRAIN_TEST): 3.0})
    return tmp_path, uri, client, parent_id


@pytest.fixture(scope="module")
def built(study):
    tmp_path, uri, _, _ = study
    return build_report(uri, "rep", out_dir=tmp_path / "out")


@pytest.fixture(scope="module")
def report(built):
    return built.out_dir


def test_reports_package_does_not_import_ray():
    code = ("import sys, reports, reports.cli, reports.build, reports.load, reports.tables, reports.plots, "
            "reports.render; assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cell_table_gives_geometric_means_log_intervals_and_exact_failure_rates(report):
    import pandas as pd
    from scipy.stats import binomtest, t

    table = pd.read_csv(report / "imbalance.csv").set_index(["arch", "g_width", "d_width"])
    assert len(table) == 7
    for arch, cells in (("dcgan", CELLS), ("mlp", MLP_CELLS)):
        for cell in cells:
            # the cell's runs that did not fail: a failed run counts in `failed`, not in the FID
            logs = [math.log(t.final[names.FID]) for t in design() if t.params["arch"] == arch
                    and (t.params["g_width"], t.params["d_width"]) == cell and t.tags[names.OUTCOME_TAG] != "failed"]
            n = len(logs)
            half = t.ppf(0.975, n - 1) * statistics.stdev(logs) / math.sqrt(n)
            row = table.loc[(arch, *cell)]
            assert row["fid_mean"] == pytest.approx(math.exp(statistics.mean(logs)))
            assert (row["fid_ci_low"], row["fid_ci_high"]) == pytest.approx(
                (math.exp(statistics.mean(logs) - half), math.exp(statistics.mean(logs) + half)))
    failed = table.loc[("mlp", 128, 256)]
    exact = binomtest(1, 3).proportion_ci(method="exact")
    assert failed["failed"] == 1 and (failed["failed_ci_low"], failed["failed_ci_high"]) == pytest.approx(
        (exact.low, exact.high))
    assert failed["fid_n"] == 2  # 3 runs, 1 failed
    assert table.loc[("dcgan", 8, 16), "still_improving"] == 2
    classes = table.loc[("dcgan", 16, 16)]
    assert 0 <= classes["classes_covered_ci_low"] <= classes["classes_covered_ci_high"] <= 10  # stays in its domain
    markdown = (report / "report.md").read_text()
    assert "| mlp | 1 | 128 / 256 | 3 | 1 of 3 [" in markdown


def test_the_2x2_contrast_is_the_imbalance_ratio_tested_by_the_interaction_f(report):
    import pandas as pd
    from scipy import stats

    contrasts = pd.read_csv(report / "contrasts.csv")
    assert len(contrasts) == 1  # the MLP has no complete 2 x 2 block
    row = contrasts.iloc[0]
    assert (row["width_a"], row["width_b"]) == (8, 16)
    assert [row[k] for k in ("runs_aa", "runs_ab", "runs_ba", "runs_bb")] == [SEEDS] * 4
    # two-way ANOVA by hand on log FID: cells (G, D), n = SEEDS each
    logs = {cell: [math.log(v) for v in trial_fids("dcgan", cell)] for cell in CELLS}
    mean = {cell: statistics.mean(v) for cell, v in logs.items()}
    grand = statistics.mean(mean.values())
    g_mean = {g: (mean[(g, 8)] + mean[(g, 16)]) / 2 for g in (8, 16)}
    d_mean = {d: (mean[(8, d)] + mean[(16, d)]) / 2 for d in (8, 16)}
    ss_ab = SEEDS * sum((mean[(g, d)] - g_mean[g] - d_mean[d] + grand) ** 2 for g, d in CELLS)
    sse = sum((y - mean[cell]) ** 2 for cell, values in logs.items() for y in values)
    df = 4 * (SEEDS - 1)
    f = ss_ab / (sse / df)
    assert row["f"] == pytest.approx(f) and row["df_error"] == df and row["p_f"] == pytest.approx(stats.f.sf(f, 1, df))
    residuals = [y - mean[cell] for cell, values in logs.items() for y in values]
    assert row["normality_p"] == pytest.approx(stats.shapiro(residuals).pvalue) and row["normality_p"] >= 0.05
    assert row["p_test"] == "F" and row["p"] == pytest.approx(row["p_f"]) and row["p_holm"] == pytest.approx(row["p"])
    # imbalanced over balanced, geometric means: exp of half the interaction contrast, interval from the MSE
    half = (mean[(8, 16)] + mean[(16, 8)] - mean[(8, 8)] - mean[(16, 16)]) / 2
    margin = stats.t.ppf(0.975, df) * math.sqrt(sse / df * 4 / SEEDS) / 2
    assert row["estimate"] == pytest.approx(math.exp(half)) == pytest.approx(1.5, rel=0.01)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((math.exp(half - margin), math.exp(half + margin)))
    assert row["significant"]


def test_pairwise_comparisons_are_unpaired_ratios_holm_adjusted_within_family_2(report):
    import pandas as pd
    from oracles import brute_force_two_sample_p, holm_by_hand
    from scipy.stats import t

    paired = pd.read_csv(report / "paired_effects.csv")
    family = paired[paired["role"] == "secondary"].set_index(["arch", "g_width", "d_width", "shared"])
    assert len(family) == 6  # dcgan: 2 imbalanced cells x 2 neighbours; mlp: 2 cells x 1 neighbour each
    failed = {("mlp", (128, 256)): [0]}  # seed 0 of that cell failed: it leaves the ratio
    expected_p = {}
    for (arch, g, d, shared) in family.index:
        neighbour = (g, g) if shared == "G" else (d, d)
        logs = [[math.log(v) for seed, v in enumerate(trial_fids(arch, cell))
                 if seed not in failed.get((arch, cell), [])] for cell in ((g, d), neighbour)]
        expected_p[(arch, g, d, shared)], _ = brute_force_two_sample_p(*logs)
        row = family.loc[(arch, g, d, shared)]
        assert (row["runs"], row["neighbour_runs"]) == (len(logs[0]), len(logs[1]))
        assert row["p"] == pytest.approx(expected_p[(arch, g, d, shared)]) and row["exact"]
        # ratio of geometric means with Welch's interval of the log difference
        (a, b), (va, vb) = map(statistics.mean, logs), [statistics.variance(x) / len(x) for x in logs]
        nu = (va + vb) ** 2 / (va ** 2 / (len(logs[0]) - 1) + vb ** 2 / (len(logs[1]) - 1))
        margin = t.ppf(0.975, nu) * math.sqrt(va + vb)
        assert row["estimate"] == pytest.approx(math.exp(a - b))
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((math.exp(a - b - margin), math.exp(a - b + margin)))
    assert family.loc[("dcgan", 8, 16, "G"), "p"] < 2 / 2 ** SEEDS  # below what a sign-flip test of 8 pairs can give
    adjusted = dict(zip(expected_p, holm_by_hand(list(expected_p.values()))))
    for key, p in adjusted.items():
        assert family.loc[key, "p_holm"] == pytest.approx(p) and bool(family.loc[key, "significant"]) == (p < 0.05)
    assert family.loc[("dcgan", 8, 16, "G"), "significant"] and not family.loc[("mlp", 256, 128, "G"), "significant"]
    shown = paired[paired["role"] == "shown"]
    assert set(shown["metric"]) == {names.CLASSES_COVERED} and shown["p_holm"].isna().all()


def test_what_this_study_shows_claims_only_holm_significant_effects_and_separates_imbalance_from_size(built, report):
    markdown = (report / "report.md").read_text()
    findings = markdown.split("## What this study shows")[1].split("| |")[0]
    assert "- DCGAN: imbalance itself raises the final FID" in findings and "×1.5 [" in findings
    assert "G × D interaction of a two-way analysis of log FID" in findings and "F(1, 28) = " in findings
    # family 1 is the declared primary family; every sentence of family 2 is labelled secondary
    assert "- (secondary) DCGAN: D 2× wider than G (G 8 / D 16) gives ×1.25" in findings
    assert "8 vs 8 runs that did not fail; exact permutation p = " in findings
    assert "- (secondary) DCGAN, G 8 / D 16: the imbalance itself matters" in findings
    assert "- (secondary) DCGAN, G 16 / D 8: differs from both balanced neighbours but in opposite directions" \
        in findings
    bullets = [line for line in findings.splitlines() if line.startswith("- ")]
    assert [line for line in bullets if not line.startswith("- (secondary) ")] == [bullets[0]]
    assert "MLP" not in findings.split("Primary metric")[0]  # 3 seeds: nothing claimed
    # training length is mentioned only where trials of the comparison were still improving (G8/D16 seeds 0, 1)
    g8d16 = [line for line in findings.splitlines() if "(G 8 / D 16) gives" in line]
    assert g8d16 and all("2 of 16 trials of this comparison were still improving" in line for line in g8d16)
    g16d8 = [line for line in findings.splitlines() if "(G 16 / D 8) gives" in line]
    assert g16d8 and not any("still improving" in line for line in g16d8)
    assert "Primary metric: final FID" in findings and "Holm-adjusted within each family" in findings
    # the floor of each family's test at the study's numbers of runs, not the sign-flip's 2/2^n
    assert f"2/C(16, 8) = {2 / math.comb(16, 8):.1e} at 8 vs 8" in findings and "2/2^" not in findings
    assert f"1/C(5, 2) = {1 / math.comb(5, 2):.2g} at 2 vs 3" in findings  # the MLP cell that lost a failed run
    assert "Outcomes: 1 failed, 0 diverged, 38 converged, 2 still improving of 41." in findings
    assert built.summary_markdown.startswith("## What this study shows")
    assert markdown.index("What this study shows") < markdown.index("## Capacity imbalance")


def test_variance_split_separates_training_seed_from_evaluation_draw(report):
    import pandas as pd

    from reports.stats import one_way_variance

    split = pd.read_csv(report / "variance_split.csv").set_index(["arch", "g_width", "d_width"])
    scores = [[fid + offset for offset in DRAW_JITTER] for fid in trial_fids("dcgan", (16, 16))]
    expected = one_way_variance(scores)
    row = split.loc[("dcgan", 16, 16)]
    assert row["seeds"] == SEEDS and row["draws"] == 3
    assert row["sd_draw"] == pytest.approx(math.sqrt(expected.draw_variance)) == pytest.approx(0.5)
    assert row["sd_seed"] == pytest.approx(math.sqrt(expected.seed_variance))


def test_a_design_too_small_for_its_family_says_so_and_how_many_runs_would():
    import pandas as pd

    from reports import effects

    def findings(seeds: int) -> list[str]:
        rows = [{"arch": "dcgan", "g_width": g, "d_width": d, "seed": s, "metric.fid": base * (1 + 0.01 * s)}
                for (g, d), base in CELLS.items() for s in range(seeds)]
        return effects.findings(effects.analyse(pd.DataFrame(rows), ["arch"], names.FID), ["arch"])

    # 3 vs 3 runs: the exact two-sample test cannot go below 2/C(6, 3); Holm over the 4 comparisons needs 0.05/4
    floor = 2 / math.comb(6, 3)
    needed = next(n for n in range(1, 20) if 4 * 2 / math.comb(2 * n, n) < 0.05)
    assert (floor, needed) == (0.1, 5)
    sentences = findings(3)
    assert sentences[0].startswith("DCGAN: imbalance itself raises the final FID")  # the F test needs no more runs
    assert sentences[1:] == [f"(secondary) Cell-by-cell comparisons: with 3 vs 3 runs that did not fail the smallest "
                             f"exact p is 2/C(6, 3) = {floor:g}, and Holm across 4 comparisons needs p < 0.0125: this "
                             f"design cannot support a claim here; {needed} runs per cell that did not fail would."]
    assert not any("Cell-by-cell comparisons: with" in sentence for sentence in findings(needed))


def test_every_figure_is_a_valid_png_embedded_in_the_html(report):
    html = (report / "report.html").read_text()
    embedded = [base64.b64decode(data) for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]
    for name in FIGURES:
        png = (report / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC), name
        with Image.open(report / f"{name}.png") as image:
            assert min(image.size) > 200, name
        assert png in embedded, f"{name}.png is not embedded in report.html"
        assert f"]({name}.png)" in (report / "report.md").read_text()
    assert "src='file:" not in html and "src='http" not in html  # self-contained


def test_tables_are_written_as_csv(report):
    import pandas as pd

    trials = pd.read_csv(report / "trials.csv")
    assert len(trials) == 41 and set(trials["status"]) == {"completed"}
    assert sorted(trials["metric:fid"]) == sorted(t.final[names.FID] for t in design())


def test_effect_sizes_hold_every_other_setting_fixed(report):
    import pandas as pd

    effects = pd.read_csv(report / "effect_sizes.csv")
    assert not {"arch", "capacity_ratio_log2"} & set(effects["factor"])
    g_width = effects[effects["factor"] == "g_width"].set_index("held_fixed")
    at_d16 = g_width.loc["arch=dcgan, d_width=16"]  # G 8 vs G 16 with D 16 only: nothing pooled across D
    spread = statistics.mean(trial_fids("dcgan", (8, 16))) - statistics.mean(trial_fids("dcgan", (16, 16)))
    assert at_d16["spread_of_mean"] == pytest.approx(spread) and at_d16["trials"] == 2 * SEEDS
    assert "arch=dcgan, d_width=8" in g_width.index and len(g_width) == 3  # mlp: only at D 256


def test_report_is_logged_to_the_parent_run(study, report):
    _, _, client, parent_id = study
    logged = {a.path for a in client.list_artifacts(parent_id, "report")}
    written = {f"report/{p.name}" for p in report.iterdir() if p.is_file()}
    assert logged == written
    assert {"report/report.html", "report/report.md", "report/imbalance.csv", "report/samples.png"} <= logged


def test_build_report_marks_a_partial_study_and_honours_formats(tmp_path):
    trials = design()[:4] + [Trial(params={"arch": "mlp"}, status="running", regime=None),
                              Trial(params={"arch": "mlp"}, status="errored", regime=None)]
    uri, _, parent_id = fill_study(tmp_path, "partial", trials, with_grids=False)
    paths = build_report(uri, "partial", out_dir=tmp_path / "out", formats=("md",), log_artifacts=False)
    assert paths.html is None and paths.markdown.exists() and paths.parent_run_id == parent_id
    header = paths.markdown.read_text()
    assert "| trials | 6 (4 completed, 1 errored, 1 running); 4 with a FID |" in header
    assert "| partial study | 1 running, 1 errored:" in header
    assert not list((tmp_path / "out").glob("*.html"))


def cli_error(capsys, *args) -> str:
    """Run the CLI in this process; assert exit status 2 and return its one line of stderr."""
    from reports.cli import main

    capsys.readouterr()  # drop what came before, e.g. MLflow creating a store
    assert main(list(args)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_unknown_experiment_exits_2_with_one_line(study, capsys):
    _, uri, _, _ = study
    assert cli_error(capsys, "--experiment", "nope", "--tracking-uri", uri) == "error: no MLflow experiment named 'nope'"


def test_missing_store_exits_2_and_creates_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert "no MLflow store" in cli_error(capsys, "--experiment", "rep")
    assert not (tmp_path / "mlflow.db").exists()


def test_unknown_run_id_exits_2(study, capsys):
    _, uri, _, _ = study
    assert "is not a study's parent run" in cli_error(capsys, "--experiment", "rep", "--tracking-uri", uri,
                                                      "--run-id", "0" * 32)


def test_study_without_finished_trials_exits_2(tmp_path, capsys):
    uri, client, _ = fill_study(tmp_path, "empty", [Trial(params={"arch": "mlp"}, status="errored", regime=None)],
                                with_grids=False)
    assert "has no finished trial" in cli_error(capsys, "--experiment", "empty", "--tracking-uri", uri)
    with pytest.raises(ReportError, match="no finished trial"):
        build_report(uri, "empty", out_dir=tmp_path / "out")
    client.create_experiment("bare")  # an experiment without any study in it
    assert "holds no study" in cli_error(capsys, "--experiment", "bare", "--tracking-uri", uri)


def test_optuna_importances_come_from_an_in_memory_optuna_study(study):
    """Read as if Optuna had searched it, the study's two varied params get importances summing to 1."""
    import dataclasses

    from reports import tables
    from reports.load import load_study

    _, uri, _, _ = study
    loaded = load_study(uri, "rep")
    assert tables.optuna_importances(loaded) is None  # not an Optuna study
    as_optuna = dataclasses.replace(loaded, parent_params={**loaded.parent_params, "search": "optuna"})
    numbers, _ = tables.optuna_importances(as_optuna)
    assert set(numbers["param"]) == {"arch", "g_width", "d_width"}
    assert numbers["importance"].sum() == pytest.approx(1.0) and (numbers["importance"] >= 0).all()


def test_a_contrast_that_is_not_significant_is_shown_with_its_interval_and_gates_the_pairwise_family():
    import pandas as pd

    from reports import effects

    # sizes matter (G 8 doubles FID, D 8 adds 20%) but imbalance does not: the contrast is x1.1 or x1/1.1 by seed
    rows = []
    for seed in range(6):
        wobble = 1.1 if seed % 2 else 1 / 1.1
        for (g, d), base in {(16, 16): 20.0, (8, 8): 48.0, (16, 8): 24.0 * wobble, (8, 16): 40.0 * wobble}.items():
            rows.append({"arch": "dcgan", "g_width": g, "d_width": d, "seed": seed, "metric.fid": base,
                         "outcome": "still_improving" if g == 8 else "converged"})
    analysis = effects.analyse(pd.DataFrame(rows), ["arch"], names.FID)
    assert not analysis.gate_open and all(not c.significant for c in analysis.pairwise)
    sentences = effects.findings(analysis, ["arch"], " (2,500 generator steps)")
    assert sentences[0].startswith("DCGAN, widths 8 and 16: no evidence that imbalance itself changes the final FID: "
                                   "the imbalanced cells score ×1 [")
    assert "Holm-adjusted p = 1)" in sentences[0] and "12 of 24 trials of this block were still improving at the " \
        "end of their budget (2,500 generator steps)" in sentences[0]
    assert sentences[1].startswith("(secondary) Since not every imbalance contrast is significant")
