"""reports.ablation: each arm of an ablation against the reference arm, on a constructed study whose answers are
computed here independently (scipy, an itertools brute force, Holm by hand)."""
import math

import numpy as np
import pytest
from scipy import stats

from oracles import brute_force_two_sample_p, holm_by_hand
from gan import names

REFERENCE = "recipe"
NO_BN = "no batch-norm in D"  # a clear FID shift (×2.5), one failed run with a huge FID
BETA1 = "Adam beta1 0.9"  # every run failed (one diverged)
LR = "lr x2"  # the recipe's distribution: no shift
SEEDS = 6


def _runs() -> dict[str, list[tuple[float, str | None]]]:
    """(final FID, outcome) per arm, seed by seed."""
    rng = np.random.default_rng(7)
    noise = lambda: math.exp(rng.normal(0, 0.1))  # noqa: E731
    return {
        REFERENCE: [(20 * noise(), "converged") for _ in range(SEEDS)],
        NO_BN: [(50 * noise(), "converged") for _ in range(SEEDS - 1)] + [(900.0, "failed")],
        BETA1: [(600 + 100 * i, "failed") for i in range(SEEDS - 1)] + [(1500.0, "diverged")],
        LR: [(20 * noise(), "converged") for _ in range(SEEDS)],
    }


def _store(tmp_path, ablation: bool = True, with_grids: bool = False):
    from study_store import Trial, fill_study

    trials = []
    for arm, runs in _runs().items():
        for seed, (fid, outcome) in enumerate(runs):
            params = {"arch": "dcgan", "g_width": 16, "d_width": 16, "capacity_ratio_log2": 0.0, "seed": seed,
                      "lr_g": 2e-4, "lr_d": 2e-4, names.ARM: arm}
            trials.append(Trial(params=params, final={names.FID: fid},
                                history={names.FID: [(100, 2 * fid), (200, fid)]},
                                tags={names.OUTCOME_TAG: outcome}))
    uri, client, parent = fill_study(tmp_path, "ablation", trials, with_grids=with_grids,
                                     parent_params={"searched": ""})
    if ablation:
        client.set_tag(parent, names.DESIGN_TAG, names.DESIGN_ABLATION)
        client.set_tag(parent, names.REFERENCE_ARM_TAG, REFERENCE)
    return uri


def _good_logs(arm: str) -> np.ndarray:
    return np.log([fid for fid, outcome in _runs()[arm] if outcome == "converged"])


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    from reports.ablation import ablation_section
    from reports.load import load_study

    return ablation_section(load_study(_store(tmp_path_factory.mktemp("ablation")), "ablation"))


def test_each_arm_against_the_recipe_equals_scipy_and_a_brute_force_permutation_test(section):
    by_arm = section.numbers.set_index("arm")
    assert list(section.numbers["arm"]) == [REFERENCE, NO_BN, BETA1, LR]  # the reference first
    reference = _good_logs(REFERENCE)
    for arm in (NO_BN, LR):
        logs, row = _good_logs(arm), by_arm.loc[arm]
        welch = stats.ttest_ind(logs, reference, equal_var=False).confidence_interval(0.95)
        assert row["ratio"] == pytest.approx(stats.gmean(np.exp(logs)) / stats.gmean(np.exp(reference)))
        assert (row["ratio_low"], row["ratio_high"]) == pytest.approx((math.exp(welch.low), math.exp(welch.high)))
        assert row["p"] == pytest.approx(brute_force_two_sample_p(logs, reference)[0]) and row["p_exact"]
        assert row["min_p"] == pytest.approx((2 if len(logs) == len(reference) else 1)
                                             / math.comb(len(logs) + len(reference), len(logs)))
    # 5 vs 6 fully separated: the one most extreme of C(11, 5) = 462 splits
    assert by_arm.loc[NO_BN, "p"] == pytest.approx(1 / 462) and by_arm.loc[LR, "p"] > 0.05
    primary = holm_by_hand([by_arm.loc[NO_BN, "p"], by_arm.loc[LR, "p"]])  # the arm with no run that did not fail: untested
    assert [by_arm.loc[NO_BN, "holm_p"], by_arm.loc[LR, "holm_p"]] == pytest.approx(primary)
    assert math.isnan(by_arm.loc[BETA1, "p"]) and math.isnan(by_arm.loc[BETA1, "holm_p"])

    failures = {REFERENCE: 0, NO_BN: 1, BETA1: 6, LR: 0}
    fisher = {arm: stats.fisher_exact([[failures[arm], SEEDS - failures[arm]], [0, SEEDS]]).pvalue
              for arm in (NO_BN, BETA1, LR)}
    assert fisher[BETA1] == pytest.approx(2 / math.comb(12, 6))
    for arm, adjusted in zip(fisher, holm_by_hand(list(fisher.values()))):
        assert by_arm.loc[arm, "fisher_p"] == pytest.approx(fisher[arm])
        assert by_arm.loc[arm, "fisher_holm_p"] == pytest.approx(adjusted)
    for arm, failed in failures.items():
        interval = stats.binomtest(failed, SEEDS).proportion_ci(confidence_level=0.95, method="exact")
        assert by_arm.loc[arm, "failed"] == failed and by_arm.loc[arm, "runs"] == SEEDS
        assert (by_arm.loc[arm, "failed_ci_low"], by_arm.loc[arm, "failed_ci_high"]) == pytest.approx(
            (interval.low, interval.high))
    assert math.isnan(by_arm.loc[REFERENCE, "fisher_p"]) and math.isnan(by_arm.loc[REFERENCE, "p"])


def test_failed_runs_leave_the_fid_ratio_and_count_only_as_failures(section):
    row = section.numbers.set_index("arm").loc[NO_BN]
    with_failed = np.log([fid for fid, _ in _runs()[NO_BN]])
    assert row["not_failed"] == 5 and row["failed"] == 1
    assert row["fid_geomean"] == pytest.approx(math.exp(_good_logs(NO_BN).mean()))
    assert row["ratio"] != pytest.approx(math.exp(with_failed.mean() - _good_logs(REFERENCE).mean()), rel=0.1)
    beta1 = section.table.rows[list(section.numbers["arm"]).index(BETA1)]
    assert "too few runs that did not fail" in beta1[-1] and "0 vs 6" in beta1[-1]  # no ratio of failed runs


def test_findings_claim_only_holm_significant_results_and_label_failures_secondary(section):
    by_arm = section.numbers.set_index("arm")
    bn = by_arm.loc[NO_BN]
    assert section.findings == [
        f"arm '{NO_BN}' raised the final FID against '{REFERENCE}' ×{bn['ratio']:.2f} [{bn['ratio_low']:.2f}, "
        f"{bn['ratio_high']:.2f}] (exact permutation p = 0.0022, Holm {bn['holm_p']:.2g}; 5 vs 6 runs that did not "
        "fail).",
        f"(secondary) arm '{BETA1}' failed in 6 of 6 runs [54%, 100%] against 0 of 6 for '{REFERENCE}' (Fisher's "
        f"exact p = 0.0022, Holm {by_arm.loc[BETA1, 'fisher_holm_p']:.2g}).",
    ]
    lr = by_arm.loc[LR]
    note = section.findings_note
    assert "no evidence of a change" in note.lower() and f"'{LR}' ×{lr['ratio']:.2f}" in note
    assert "no effect" not in note.replace("not evidence of no effect", "")
    assert "1/C(11, 5) = 0.0022 at 5 vs 6" in note and "2/C(12, 6) = 0.0022 at 6 vs 6" in note
    assert f"'{BETA1}' (0 vs 6 runs that did not fail)" in note


def test_an_ablation_report_shows_its_section_and_none_of_the_balance_sections(tmp_path):
    from reports.build import build_report

    uri = _store(tmp_path, with_grids=True)
    paths = build_report(uri, "ablation", out_dir=tmp_path / "out", log_artifacts=False)
    text = paths.markdown.read_text()
    assert "Ablation: each arm against the reference" in text and (tmp_path / "out" / "ablation.csv") in paths.csv_files
    for balance_only in ("Capacity imbalance, cell by cell", "Imbalanced cells against their balanced neighbours",
                         "Effect sizes on", "imbalance contrasts", "imbalance.csv", "paired_effects.csv"):
        assert balance_only not in text
    images = {path.name for path in paths.images}
    assert {"ablation_fid.png", "ablation_learning_curves.png", "samples.png"} <= images
    assert not images & {"fid_vs_capacity.png", "fid_heatmap.png", "regimes.png", "learning_curves.png"}
    assert f"arm '{NO_BN}' raised the final FID" in paths.summary_markdown
    assert f"(secondary) arm '{BETA1}' failed" in paths.summary_markdown and f"'{LR}' raised" not in text


def test_a_study_not_tagged_as_an_ablation_gets_no_ablation_section(tmp_path):
    from reports.ablation import ablation_section
    from reports.build import build_report
    from reports.load import load_study

    uri = _store(tmp_path, ablation=False)  # the same trials, each with an `arm` param: the design tag decides
    assert ablation_section(load_study(uri, "ablation")) is None
    text = build_report(uri, "ablation", out_dir=tmp_path / "out", log_artifacts=False).markdown.read_text()
    assert "Ablation: each arm against the reference" not in text and "Capacity imbalance, cell by cell" in text
