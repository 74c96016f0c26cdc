"""The report's mode-collapse section on a Stacked MNIST study written straight into an MLflow store."""
import math

import statistics

import pandas as pd
import pytest
from scipy import stats

from gan import names
from reports import build_report
from reports.modes import ratio_words
from study_store import Trial, fill_study

# modes covered per (pack, log2(D/G)) for seeds 0, 1, 2: D at 1/4 collapses without packing
MODES = {(1, -2.0): [20.0, 45.0, 31.0], (1, 0.0): [700.0, 760.0, 730.0],
         (2, -2.0): [400.0, 380.0, 450.0], (2, 0.0): [800.0, 820.0, 790.0]}


def stacked_trials() -> list[Trial]:
    trials = []
    for (pack, level), values in MODES.items():
        for seed, covered in enumerate(values):
            trials.append(Trial(
                params={"arch": "dcgan", "g_width": 8, "d_width": int(8 * 2 ** level), "pack": pack, "seed": seed,
                        names.CAPACITY_RATIO_LOG2: level},
                final={names.MODES_COVERED: covered, names.MODES_KL: math.log(1000 / covered),
                       names.FID: 1000 / covered, names.KID: 10 / covered},
                history={names.FID: [(10, 2000 / covered), (20, 1000 / covered)]}))
    return trials


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("modes_store")
    uri, _, _ = fill_study(tmp_path, "pac", stacked_trials(), parent_params={"searched": "d_width,pack"},
                           parent_metrics={names.reference(names.MODES_COVERED_TEST): 1000.0,
                                           names.reference(names.MODES_KL_TEST): 0.02}, with_grids=False)
    return build_report(uri, "pac", out_dir=tmp_path / "out", formats=("md",), log_artifacts=False).out_dir


def test_modes_table_gives_the_mean_and_t_interval_over_seeds_per_pack_and_ratio(report):
    table = pd.read_csv(report / "modes.csv").set_index(["pack", "capacity_ratio_log2"])
    for key, values in MODES.items():
        half = stats.t.ppf(0.975, len(values) - 1) * stats.tstd(values) / math.sqrt(len(values))
        row = table.loc[key]
        assert row["modes_covered_mean"] == pytest.approx(sum(values) / 3)
        assert row["modes_covered_ci_low"] == pytest.approx(sum(values) / 3 - half)
        assert row["modes_covered_ci_high"] == pytest.approx(sum(values) / 3 + half)
        kl = [math.log(1000 / v) for v in values]
        assert row["modes_kl_mean"] == pytest.approx(sum(kl) / 3) and row["n"] == 3


def test_markdown_shows_the_section_the_reference_and_pacgans_numbers(report):
    markdown = (report / "report.md").read_text()
    assert "## Mode collapse: modes covered vs D/G capacity and packing" in markdown
    assert "| 1 | D = 1/4 G | 8 / 2 | 3 | 32 [" in markdown  # mean of 20, 45, 31 with its interval
    assert "| – | real test data | – | – | 1000 | 0.02 |" in markdown
    assert "PacGAN Table 3 (DCGAN) | – | 30.6 ± 20.7 | 5.99 ± 0.42" in markdown
    assert "pack 1: mean modes covered rise with D's capacity" in markdown
    assert "pack 2 vs pack 1 at D = 1 G: +73 modes [95% CI" in markdown
    assert (report / "modes_vs_capacity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ratio_words():
    assert [ratio_words(level) for level in (-2.0, -1.0, 0.0, 1.0)] == ["1/4", "1/2", "1", "2"]


def test_packing_is_compared_seed_by_seed_with_a_paired_t_interval_and_exact_p(report):
    from scipy.stats import t

    from reports.modes import packing_effects

    frame = pd.DataFrame([{"pack": pack, names.CAPACITY_RATIO_LOG2: level, "seed": seed,
                           f"metric.{names.MODES_COVERED}": covered}
                          for (pack, level), values in MODES.items() for seed, covered in enumerate(values)])
    effects = packing_effects(frame).set_index(names.CAPACITY_RATIO_LOG2)
    for level in (-2.0, 0.0):
        differences = [b - a for a, b in zip(MODES[(1, level)], MODES[(2, level)])]  # same seed
        row = effects.loc[level]
        assert row["pairs"] == 3 and row["difference_mean"] == pytest.approx(sum(differences) / 3)
        half = t.ppf(0.975, 2) * statistics.stdev(differences) / 3 ** 0.5
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((row["difference_mean"] - half,
                                                                 row["difference_mean"] + half))
        assert row["p_exact"] == pytest.approx(0.25) and row["pairs_in_direction"] == 3  # 3 of 3: 2/2^3
    markdown = (report / "report.md").read_text()
    assert "pack 2 vs pack 1 at D = 1/4 G: +378 modes [95% CI" in markdown and "exact p = 0.25" in markdown
