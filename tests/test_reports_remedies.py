"""reports.remedies: Fieller's interval against the inverted paired t-test (scipy) and by simulated coverage;
arms, gap closed and both Holm families on a constructed study."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports.remedies import BALANCED, NO_REMEDY, fieller_ratio, remedies_frame, remedy_arms


def test_fieller_interval_is_the_set_where_the_paired_t_test_of_a_minus_theta_b_does_not_reject():
    rng = np.random.default_rng(1)
    b = rng.normal(2.0, 0.4, 8)
    a = 0.6 * b + rng.normal(0, 0.2, 8)
    result = fieller_ratio(a, b)
    assert result.bounded and result.ratio == pytest.approx(a.mean() / b.mean())
    for theta in (result.low, result.high):  # the endpoints are where the t-test is exactly at 0.05
        assert stats.ttest_1samp(a - theta * b, 0).pvalue == pytest.approx(0.05, abs=1e-6)
    inside = np.linspace(result.low, result.high, 7)[1:-1]
    assert all(stats.ttest_1samp(a - t * b, 0).pvalue > 0.05 for t in inside)
    assert stats.ttest_1samp(a - (result.high + 0.05) * b, 0).pvalue < 0.05


def test_fieller_interval_is_unbounded_when_the_denominator_is_not_clearly_nonzero():
    b = np.array([0.3, -0.2, 0.1, -0.25, 0.2, -0.1])
    result = fieller_ratio(np.array([0.1, 0.2, -0.1, 0.05, 0.0, 0.1]), b)
    assert not result.bounded and result.low == -math.inf and result.high == math.inf


def test_fieller_interval_covers_the_true_ratio_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    trials = 4000
    for _ in range(trials):
        b = rng.normal(1.0, 0.3, 8)
        a = 0.7 * b + rng.normal(0.0, 0.25, 8)  # E[a] / E[b] = 0.7
        result = fieller_ratio(a, b)
        covered += result.low <= 0.7 <= result.high
    assert abs(covered / trials - 0.95) < 0.015


def _study(seeds=8) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for seed in range(seeds):
        level = math.exp(rng.normal(0, 0.1))  # a seed's luck, shared by its arms (what pairing removes)
        common = dict(arch="dcgan", g_width=4.0, seed=float(seed), g_ema_decay=0.999)
        rows += [
            {**common, "d_width": 4.0, "d_spectral_norm": "False", "lr_d": 0.001,
             "metric.fid": 20 * level, "metric.fid_ema": 18 * level},
            {**common, "d_width": 16.0, "d_spectral_norm": "False", "lr_d": 0.001,
             "metric.fid": 200 * level, "metric.fid_ema": 100 * level},
            {**common, "d_width": 16.0, "d_spectral_norm": "True", "lr_d": 0.001,
             "metric.fid": 40 * level * math.exp(rng.normal(0, 0.01)), "metric.fid_ema": 40 * level},
            {**common, "d_width": 16.0, "d_spectral_norm": "False", "lr_d": 0.00025,
             "metric.fid": 200 * level * math.exp(rng.normal(0, 0.3)), "metric.fid_ema": 200 * level},
        ]
    return pd.DataFrame(rows)


def test_arms_gap_closed_and_holm_on_a_constructed_study():
    frame = remedies_frame(remedy_arms(_study(), ["d_width", "d_spectral_norm", "lr_d", "seed"], "fid"))
    by_arm = frame.set_index("arm")
    assert list(frame["arm"][:2]) == [BALANCED, NO_REMEDY]
    assert by_arm.loc[NO_REMEDY, "vs_balanced_ratio"] == pytest.approx(10)
    sn = by_arm.loc["d_spectral_norm=on"]
    assert sn["vs_none_ratio"] == pytest.approx(0.2, rel=0.02)
    assert sn["gap_closed"] == pytest.approx(math.log(5) / math.log(10), abs=0.01)
    assert sn["gap_closed_bounded"] and sn["gap_closed_low"] < sn["gap_closed"] < sn["gap_closed_high"]
    # 8 of 8 seeds in one direction: exact p = 2/2^8; three arms in the family: Holm multiplies the smallest by 3
    assert sn["vs_none_p"] == pytest.approx(2 / 2 ** 8) and sn["vs_none_in_direction"] == 8
    assert sn["vs_none_holm_p"] <= 3 * 2 / 2 ** 8 + 1e-12
    ema = frame[frame["arm"].str.startswith("EMA of G")].iloc[0]
    assert ema["vs_none_ratio"] == pytest.approx(0.5) and ema["gap_closed"] == pytest.approx(math.log(2) / math.log(10))
    ttur = by_arm.loc["lr_d=0.00025"]
    assert ttur["vs_none_holm_p"] > 0.05  # noise only: no claim


def test_build_report_of_a_remedies_study_opens_with_the_arms_and_claims_only_holm_significant_ones(tmp_path):
    from study_store import Trial, fill_study

    from reports.build import build_report

    trials = []
    for _, row in _study().iterrows():
        params = {key: row[key] for key in ("arch", "g_width", "d_width", "seed", "d_spectral_norm", "lr_d",
                                            "g_ema_decay")}
        params.update({"lr_g": 0.001, "capacity_ratio_log2": math.log2(row["d_width"] / row["g_width"]),
                       "seed": int(row["seed"]), "g_width": int(row["g_width"]), "d_width": int(row["d_width"])})
        trials.append(Trial(params=params, final={"fid": row["metric.fid"], "fid_ema": row["metric.fid_ema"]}))
    uri, _, _ = fill_study(tmp_path, "remedies", trials, with_grids=False,
                           parent_params={"searched": "d_width,d_spectral_norm,lr_d"})
    paths = build_report(uri, "remedies", out_dir=tmp_path / "out", log_artifacts=False)
    text = paths.markdown.read_text()
    assert (tmp_path / "out" / "remedies.csv") in paths.csv_files
    assert "What rescues the imbalanced GAN" in text and "d_spectral_norm=on" in text
    claims = paths.summary_markdown
    assert "d_spectral_norm=on lowers the final" in claims and "lr_d=0.00025 lowers" not in claims
