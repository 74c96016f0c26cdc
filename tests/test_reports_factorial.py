"""The balance factorial's inference on a constructed 2 × 2 × 6 study: family 1 (the G × D interaction of a two-way
analysis of log FID), family 2 (unpaired cell comparisons) and the failure family, each value recomputed here
independently: sums of squares by hand, scipy's F and t, an itertools brute force, Fisher's exact test as a
hypergeometric sum, Holm by hand."""
import math
import statistics

import numpy as np
import pytest
from oracles import brute_force_two_sample_p, holm_by_hand
from scipy import stats
from study_store import Trial, fill_study

from gan import names
from reports import build_report

SEEDS = 6
WIDTHS = (8, 16)
# Cells (G, D) in the order aa, ab, ba, bb. DCGAN: FID = base x exp(noise), an interaction of
# log(40·20/(60·36)) = −0.99 on the log scale (imbalanced/balanced x1.64 before noise).
BASES = {"dcgan": {(8, 8): 40.0, (8, 16): 60.0, (16, 8): 36.0, (16, 16): 20.0},
         "mlp": {(8, 8): 50.0, (8, 16): 70.0, (16, 8): 80.0, (16, 16): 30.0}}
NOISE = np.random.default_rng(0).normal(0, 0.3, (2, 4, SEEDS))  # log-scale noise, one value per arch, cell, seed
# MLP: G 8 / D 16 fails on seeds 0 and 1 (FID 900: near the noise ceiling), G 16 / D 8 fails on every seed, and
# G 8 / D 8 diverges on seed 5 before any evaluation (no FID at all).
FAILED = {("mlp", (8, 16)): {0, 1}, ("mlp", (16, 8)): set(range(SEEDS))}
DIVERGED = {("mlp", (8, 8)): {5}}


def fid_of(arch: str, cell: tuple, seed: int) -> float | None:
    if seed in DIVERGED.get((arch, cell), ()):
        return None
    if seed in FAILED.get((arch, cell), ()):
        return 900.0 + seed
    index = list(BASES[arch]).index(cell)
    return BASES[arch][cell] * math.exp(NOISE[list(BASES).index(arch), index, seed])


def outcome_of(arch: str, cell: tuple, seed: int) -> str:
    return ("diverged" if seed in DIVERGED.get((arch, cell), ()) else
            "failed" if seed in FAILED.get((arch, cell), ()) else "converged")


def design() -> list[Trial]:
    trials = []
    for arch, cells in BASES.items():
        for cell in cells:
            for seed in range(SEEDS):
                fid = fid_of(arch, cell, seed)
                outcome = outcome_of(arch, cell, seed)
                scored = fid is not None
                trials.append(Trial(
                    params={"arch": arch, "g_width": cell[0], "d_width": cell[1], "k": 1, "seed": seed,
                            "capacity_ratio_log2": math.log2(cell[1] / cell[0])},
                    final={names.FID: fid, names.CLASSES_COVERED: 10 - seed % 2} if scored else {},
                    history={**({names.FID: [(100, 2 * fid), (200, fid)]} if scored else {}),
                             names.TOTAL_STEPS: [(200, 200)], names.EVAL_D_REAL: [(100, 0.7), (200, 0.8)],
                             names.EVAL_D_FAKE: [(100, 0.3), (200, 0.2)]},
                    status=names.DIVERGED_STATUS if outcome == "diverged" else names.COMPLETED,
                    regime="diverged" if outcome == "diverged" else "balanced",
                    tags={names.OUTCOME_TAG: outcome,
                          names.CONVERGENCE_TAG: "diverged" if outcome == "diverged" else "converged"}))
    return trials


def kept_logs(arch: str, cell: tuple) -> list[float]:
    """log FID of the cell's runs that did not fail: what every FID test compares."""
    return [math.log(fid_of(arch, cell, s)) for s in range(SEEDS) if outcome_of(arch, cell, s) == "converged"]


def failures(arch: str, cell: tuple) -> int:
    return sum(outcome_of(arch, cell, s) != "converged" for s in range(SEEDS))


def fisher_by_hand(x_a: int, n_a: int, x_b: int, n_b: int) -> float:
    """Two-sided Fisher's exact p: the hypergeometric probabilities of the tables no more probable than the
    observed one, margins fixed."""
    total, failed = n_a + n_b, x_a + x_b

    def probability(x: int) -> float:
        return math.comb(failed, x) * math.comb(total - failed, n_a - x) / math.comb(total, n_a)

    observed = probability(x_a)
    return sum(probability(x) for x in range(max(0, failed - n_b), min(failed, n_a) + 1)
               if probability(x) <= observed * (1 + 1e-7))


def neighbour_of(cell: tuple, shared: str) -> tuple:
    return (cell[0], cell[0]) if shared == "G" else (cell[1], cell[1])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("factorial_store")
    uri, _, _ = fill_study(tmp_path, "factorial", design(), parent_params={"searched": "arch,g_width,d_width"})
    return build_report(uri, "factorial", out_dir=tmp_path / "out", log_artifacts=False).out_dir


def test_family_1_is_the_interaction_of_a_two_way_anova_of_log_fid_by_hand(report):
    import pandas as pd

    contrasts = pd.read_csv(report / "contrasts.csv").set_index("arch")
    row = contrasts.loc["dcgan"]
    logs = {cell: kept_logs("dcgan", cell) for cell in BASES["dcgan"]}
    mean = {cell: statistics.mean(values) for cell, values in logs.items()}
    grand = statistics.mean(mean.values())
    g_mean = {g: statistics.mean(mean[(g, d)] for d in WIDTHS) for g in WIDTHS}
    d_mean = {d: statistics.mean(mean[(g, d)] for g in WIDTHS) for d in WIDTHS}
    ss_interaction = SEEDS * sum((mean[(g, d)] - g_mean[g] - d_mean[d] + grand) ** 2 for g, d in logs)
    ss_error = sum((y - mean[cell]) ** 2 for cell, values in logs.items() for y in values)
    df = 4 * (SEEDS - 1)
    f = ss_interaction / (ss_error / df)
    residuals = [y - mean[cell] for cell, values in logs.items() for y in values]
    assert stats.shapiro(residuals).pvalue >= 0.05  # the design's residuals pass the check: the F test's p is used
    assert [row[k] for k in ("runs_aa", "runs_ab", "runs_ba", "runs_bb")] == [SEEDS] * 4
    assert row["df_error"] == df and row["f"] == pytest.approx(f) and row["p_test"] == "F"
    assert row["p"] == pytest.approx(stats.f.sf(f, 1, df)) and row["normality_p"] == pytest.approx(
        stats.shapiro(residuals).pvalue)
    # the imbalance ratio: geometric mean of the imbalanced cells over the balanced, what the interaction estimates
    half = (mean[(8, 16)] + mean[(16, 8)] - mean[(8, 8)] - mean[(16, 16)]) / 2
    margin = stats.t.ppf(0.975, df) * math.sqrt(ss_error / df * 4 / SEEDS) / 2
    assert row["estimate"] == pytest.approx(math.exp(half))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((math.exp(half - margin), math.exp(half + margin)))
    # the MLP block has a cell without any run that did not fail: untested, not in Holm's m
    mlp = contrasts.loc["mlp"]
    assert [mlp[k] for k in ("runs_aa", "runs_ab", "runs_ba", "runs_bb")] == [5, 4, 0, 6] and mlp["failed"] == 9
    assert math.isnan(mlp["estimate"]) and math.isnan(mlp["p"]) and math.isnan(mlp["p_holm"])
    assert row["p_holm"] == pytest.approx(row["p"]) and row["significant"]
    markdown = (report / "report.md").read_text()
    assert f"| dcgan | 8, 16 | 6 / 6 / 6 / 6 | ×{math.exp(half):.3g} [" in markdown
    assert "| mlp | 8, 16 | 5 / 4 / 0 / 6 (9 failed) | too few runs that did not fail |" in markdown


def test_family_2_compares_cells_unpaired_over_the_runs_that_did_not_fail(report):
    import pandas as pd

    paired = pd.read_csv(report / "paired_effects.csv")
    family = paired[paired["role"] == "secondary"].set_index(["arch", "g_width", "d_width", "shared"])
    assert len(family) == 8
    expected = {}
    for (arch, g, d, shared), row in family.iterrows():
        treated, control = kept_logs(arch, (g, d)), kept_logs(arch, neighbour_of((g, d), shared))
        assert (row["runs"], row["neighbour_runs"]) == (len(treated), len(control))
        if len(treated) < 2:
            assert math.isnan(row["estimate"]) and math.isnan(row["p"]) and math.isnan(row["p_holm"])
            continue
        expected[(arch, g, d, shared)], splits = brute_force_two_sample_p(treated, control)
        assert row["p"] == pytest.approx(expected[(arch, g, d, shared)]) and row["exact"]
        assert row["p_floor"] == pytest.approx((2 if len(treated) == len(control) else 1) / splits)
        assert row["estimate"] == pytest.approx(math.exp(statistics.mean(treated) - statistics.mean(control)))
    assert len(expected) == 6  # MLP G 16 / D 8 kept no run: no ratio, no test
    for key, p in zip(expected, holm_by_hand(list(expected.values()))):
        assert family.loc[key, "p_holm"] == pytest.approx(p)
    # a failed run leaves the ratio: with the two failed runs' FID of 900 the ratio would be far above
    row = family.loc[("mlp", 8, 16, "G")]
    with_failed = [math.log(fid_of("mlp", (8, 16), s)) for s in range(SEEDS)]
    assert row["runs"] == 4 and row["neighbour_runs"] == 5  # the diverged G 8 / D 8 run has no FID either
    assert row["estimate"] < 0.5 * math.exp(statistics.mean(with_failed) - statistics.mean(kept_logs("mlp", (8, 8))))
    markdown = (report / "report.md").read_text()
    assert "| mlp | G 16 / D 8 (G 2× wider than D) | G 16 / D 16 (same G) | FID | family 2 (secondary) | 0 vs 6 | " \
           "too few runs that did not fail |" in markdown


def test_failed_and_diverged_runs_are_compared_by_fishers_exact_test(report):
    import pandas as pd

    paired = pd.read_csv(report / "paired_effects.csv")
    family = paired[paired["role"] == "secondary"].set_index(["arch", "g_width", "d_width", "shared"])
    expected = {}
    for (arch, g, d, shared), row in family.iterrows():
        neighbour = neighbour_of((g, d), shared)
        counts = (failures(arch, (g, d)), SEEDS, failures(arch, neighbour), SEEDS)
        assert (row["failed"], row["with_outcome"], row["neighbour_failed"], row["neighbour_with_outcome"]) == counts
        expected[(arch, g, d, shared)] = fisher_by_hand(*counts)
        assert row["fisher_p"] == pytest.approx(expected[(arch, g, d, shared)])
    assert expected[("mlp", 16, 8, "G")] == pytest.approx(2 / math.comb(12, 6))  # 6 of 6 against 0 of 6
    for key, p in zip(expected, holm_by_hand(list(expected.values()))):
        assert family.loc[key, "fisher_holm_p"] == pytest.approx(p)
    markdown = (report / "report.md").read_text()
    holm = family.loc[("mlp", 16, 8, "G"), "fisher_holm_p"]
    assert f"| **6 of 6 vs 0 of 6: p 0.0022 (Holm {holm:.2g})** | 0 of 12 |" in markdown  # significant: bold
    cells = pd.read_csv(report / "imbalance.csv").set_index(["arch", "g_width", "d_width"])
    assert cells.loc[("mlp", 8, 8), "failed"] == 1 and cells.loc[("mlp", 8, 8), "n"] == SEEDS  # the diverged run


def test_findings_claim_family_1_and_label_every_other_familys_sentence_secondary(report):
    import pandas as pd

    markdown = (report / "report.md").read_text()
    findings = markdown.split("## What this study shows")[1].split("| |")[0]
    bullets = [line[2:] for line in findings.splitlines() if line.startswith("- ")]
    contrast = pd.read_csv(report / "contrasts.csv").set_index("arch").loc["dcgan"]
    assert bullets[0].startswith("DCGAN: imbalance itself raises the final FID: the imbalanced cells G 8 / D 16 and "
                                 "G 16 / D 8 score ×")
    assert f"6 runs per cell that did not fail; F(1, 20) = {contrast['f']:.3g}, p = {contrast['p']:.2g}" in bullets[0]
    assert bullets[1].startswith("MLP, widths 8 and 16: imbalance itself is not tested, too few runs that did not fail")
    assert all(b.startswith("(secondary) ") for b in bullets[2:]) and len(bullets) > 2
    fisher = 2 / math.comb(12, 6)
    holm = holm_by_hand([fisher, fisher_by_hand(6, 6, 1, 6), fisher_by_hand(2, 6, 1, 6), fisher_by_hand(2, 6, 0, 6),
                         1, 1, 1, 1])[0]
    assert (f"(secondary) MLP: G 16 / D 8 failed or diverged in 6 of 6 runs against 0 of 6 for the balanced G 16 / "
            f"D 16 (same G; Fisher's exact p = {fisher:.2g}, Holm-adjusted p = {holm:.2g}).") in bullets
    # the note: the declared family, and the floor of each family's test at these numbers of runs
    assert "Declared primary family" in findings
    assert "2/2^" not in findings and "seeds per configuration" not in findings  # the sign-flip floor is gone
    for n_a, n_b in ((4, 5), (4, 6), (6, 6)):
        floor = (2 if n_a == n_b else 1) / math.comb(n_a + n_b, n_a)
        assert f"/C({n_a + n_b}, {n_a}) = {floor:.2g} at {n_a} vs {n_b}" in findings
    assert "needs the smallest below 0.0083" in findings  # Holm over the 6 comparisons with a test
    assert f"smallest Fisher p is {fisher:.2g} at 6 vs 6 runs" in findings


def _frame(logs: dict, metric: str = "metric.fid"):
    import pandas as pd

    return pd.DataFrame([{"arch": "dcgan", "g_width": g, "d_width": d, "seed": s, metric: value}
                         for (g, d), values in logs.items() for s, value in enumerate(values)])


def test_residuals_that_are_not_normal_hand_family_1_to_the_permutation_p():
    from reports import effects
    from reports.stats import interaction_test_2x2

    rng = np.random.default_rng(3)
    fids = {cell: list(base * np.exp(rng.normal(0, 0.1, SEEDS))) for cell, base in BASES["dcgan"].items()}
    fids[(8, 8)][0] *= 20  # one outlier: the residuals are not normal
    [block] = effects.analyse(_frame(fids), ["arch"], names.FID).contrasts
    logs = {cell: np.log(values) for cell, values in fids.items()}
    residuals = np.concatenate([v - v.mean() for v in logs.values()])
    assert stats.shapiro(residuals).pvalue < 0.05
    reference = interaction_test_2x2([[fids[(8, 8)], fids[(8, 16)]], [fids[(16, 8)], fids[(16, 16)]]])
    assert block.permutation_used and block.p == reference.permutation_p != reference.interaction.p
    [sentence] = [s for s in effects.findings(effects.analyse(_frame(fids), ["arch"], names.FID), ["arch"])
                  if s.startswith("DCGAN")]
    assert (f"residuals not normal (Shapiro–Wilk p = {stats.shapiro(residuals).pvalue:.2g}), so the permutation "
            f"p = {reference.permutation_p:.2g} is used") in sentence


def test_a_metric_that_is_not_positive_is_analysed_on_its_own_scale():
    from reports import effects

    rng = np.random.default_rng(5)
    means = {(8, 8): -300.0, (8, 16): -280.0, (16, 8): -310.0, (16, 16): -320.0}
    values = {cell: list(mean + rng.normal(0, 8, SEEDS)) for cell, mean in means.items()}
    [block] = effects.contrasts(_frame(values, "metric." + names.PARZEN), ["arch"], names.PARZEN)
    mean = {cell: statistics.mean(v) for cell, v in values.items()}
    grand = statistics.mean(mean.values())
    ss_interaction = SEEDS * sum((mean[(g, d)] - statistics.mean(mean[(g, e)] for e in WIDTHS)
                                  - statistics.mean(mean[(h, d)] for h in WIDTHS) + grand) ** 2 for g, d in values)
    ss_error = sum((y - mean[cell]) ** 2 for cell, v in values.items() for y in v)
    df = 4 * (SEEDS - 1)
    difference = (mean[(8, 16)] + mean[(16, 8)] - mean[(8, 8)] - mean[(16, 16)]) / 2
    margin = stats.t.ppf(0.975, df) * math.sqrt(ss_error / df * 4 / SEEDS) / 2
    assert block.estimate.scale == "difference" and block.estimate.value == pytest.approx(difference)
    assert (block.estimate.low, block.estimate.high) == pytest.approx((difference - margin, difference + margin))
    assert block.analysis.interaction.f == pytest.approx(ss_interaction / (ss_error / df))
