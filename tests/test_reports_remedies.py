"""reports.remedies: Fieller's interval against the inverted paired t-test (scipy), its independent-groups form
against the inverted Welch-type test, both by simulated coverage; on constructed studies: the EMA arm paired by run
(sign-flip p by enumeration), every other arm and the residual gap unpaired (brute-force permutation p), failed runs
out of the FID magnitudes and into Fisher's test, the primary and secondary Holm families."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from oracles import brute_force_two_sample_p, holm_by_hand
from reports.remedies import (BALANCED, NO_REMEDY, PAIRED, UNPAIRED, fieller_groups, fieller_ratio, findings,
                              remedies_frame, remedies_table, remedy_arms)


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


def _unpaired_groups(log_none, log_arm, log_balanced):
    """The gap closed of an unpaired arm as Fieller groups: (mean none − mean arm) / (mean none − mean balanced)."""
    return [(log_none, log_none), (-log_arm, np.zeros(len(log_arm))), (np.zeros(len(log_balanced)), -log_balanced)]


def _independent_groups_p(groups, theta, nu):
    """Two-sided p of the t-test of P − θ·Q = 0 from independent groups, by hand: each run's p − θ·q, the group
    means' variances summed, t on nu degrees of freedom."""
    estimate = sum(np.mean(p - theta * q) for p, q in groups)
    variance = sum(np.var(p - theta * q, ddof=1) / len(p) for p, q in groups)
    return 2 * stats.t.sf(abs(estimate) / math.sqrt(variance), nu)


def _welch_nu(groups, theta):
    """Welch–Satterthwaite degrees of freedom of P − θ·Q over independent groups, by hand."""
    shares = [np.var(p - theta * q, ddof=1) / len(p) for p, q in groups]
    return sum(shares) ** 2 / sum(v ** 2 / (len(p) - 1) for v, (p, _) in zip(shares, groups))


def _is_fieller_set(groups, low, high):
    """Both ends of the interval are where the independent-groups t-test of P − θ·Q is at 0.05."""
    theta_hat = sum(np.mean(p) for p, _ in groups) / sum(np.mean(q) for _, q in groups)
    nu = _welch_nu(groups, theta_hat)
    return all(_independent_groups_p(groups, theta, nu) == pytest.approx(0.05, abs=1e-6) for theta in (low, high))


def test_fieller_interval_of_independent_groups_is_the_set_where_their_t_test_does_not_reject():
    rng = np.random.default_rng(4)
    log_none, log_arm, log_balanced = rng.normal(4.7, 0.3, 8), rng.normal(4.4, 0.1, 7), rng.normal(3.4, 0.2, 6)
    groups = _unpaired_groups(log_none, log_arm, log_balanced)
    result = fieller_groups(groups)
    theta_hat = (log_none.mean() - log_arm.mean()) / (log_none.mean() - log_balanced.mean())
    assert result.bounded and result.ratio == pytest.approx(theta_hat) and result.n == 21
    # Welch–Satterthwaite degrees of freedom of P − θ̂·Q, written out per group
    shares = [np.var(log_none * (1 - theta_hat), ddof=1) / 8, np.var(log_arm, ddof=1) / 7,
              np.var(theta_hat * log_balanced, ddof=1) / 6]
    nu = sum(shares) ** 2 / (shares[0] ** 2 / 7 + shares[1] ** 2 / 6 + shares[2] ** 2 / 5)
    assert _welch_nu(groups, theta_hat) == pytest.approx(nu)
    assert _is_fieller_set(groups, result.low, result.high)
    assert all(_independent_groups_p(groups, t, nu) > 0.05 for t in np.linspace(result.low, result.high, 7)[1:-1])
    # the covariance the shared no-remedy mean brings matters: leaving it out gives another interval
    apart = fieller_groups([(log_none, np.zeros(8)), (-log_arm, np.zeros(7)),
                            (np.zeros(8), log_none.copy()), (np.zeros(6), -log_balanced)])
    assert apart.ratio == pytest.approx(theta_hat) and abs(apart.low - result.low) > 1e-3


def test_fieller_interval_of_independent_groups_is_unbounded_when_the_gap_is_not_clearly_nonzero():
    rng = np.random.default_rng(5)
    log_none, log_balanced = rng.normal(4.0, 0.3, 6), rng.normal(3.95, 0.3, 6)
    result = fieller_groups(_unpaired_groups(log_none, rng.normal(3.9, 0.3, 6), log_balanced))
    assert stats.ttest_ind(log_none, log_balanced, equal_var=False).pvalue > 0.05
    assert not result.bounded and result.low == -math.inf and result.high == math.inf


def test_fieller_interval_of_independent_groups_covers_the_true_share_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    none, arm, balanced = math.log(110), math.log(80), math.log(29)  # the shipped study's levels
    truth = (none - arm) / (none - balanced)
    covered, trials = 0, 4000
    for _ in range(trials):  # unequal spreads, as FID's are
        result = fieller_groups(_unpaired_groups(rng.normal(none, 0.3, 8), rng.normal(arm, 0.1, 8),
                                                 rng.normal(balanced, 0.15, 8)))
        covered += result.low <= truth <= result.high
    assert abs(covered / trials - 0.95) < 0.015


def _study(seeds=8) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = []
    for seed in range(seeds):
        level = math.exp(rng.normal(0, 0.1))  # a seed's luck; only the EMA arm (the same runs) shares it by design
        common = dict(arch="dcgan", g_width=4.0, seed=float(seed), g_ema_decay=0.999)
        rows += [
            {**common, "d_width": 4.0, "d_spectral_norm": "False", "lr_d": 0.001,
             "metric.fid": 20 * level, "metric.fid_ema": 18 * level},
            {**common, "d_width": 16.0, "d_spectral_norm": "False", "lr_d": 0.001,
             "metric.fid": 200 * level, "metric.fid_ema": 200 * level * math.exp(rng.normal(-0.1, 0.12))},
            {**common, "d_width": 16.0, "d_spectral_norm": "True", "lr_d": 0.001,
             "metric.fid": 40 * level * math.exp(rng.normal(0, 0.01)), "metric.fid_ema": 40 * level},
            {**common, "d_width": 16.0, "d_spectral_norm": "False", "lr_d": 0.00025,
             "metric.fid": 200 * level * math.exp(rng.normal(0, 0.3)), "metric.fid_ema": 200 * level},
        ]
    return pd.DataFrame(rows)


SEARCHED = ["d_width", "d_spectral_norm", "lr_d", "seed"]


def _rows(frame, d_width, sn="False", lr_d=0.001):
    return frame[(frame["d_width"] == d_width) & (frame["d_spectral_norm"] == sn) & (frame["lr_d"] == lr_d)]


def _sign_flip_by_hand(differences):
    """Two-sided exact sign-flip p: all 2^n sign assignments, the share whose |sum| reaches the observed one."""
    observed = abs(sum(differences))
    flips = list(itertools.product((1, -1), repeat=len(differences)))
    return sum(abs(sum(s * d for s, d in zip(signs, differences))) >= observed - 1e-12 for signs in flips) / len(flips)


def test_only_the_ema_arm_is_paired_every_other_comparison_is_an_exact_two_sample_test():
    study = _study()
    frame = remedies_frame(remedy_arms(study, SEARCHED, "fid"))
    by_arm = frame.set_index("arm")
    assert list(frame["arm"][:2]) == [BALANCED, NO_REMEDY]
    log_none, log_balanced = np.log(_rows(study, 16.0)["metric.fid"]), np.log(_rows(study, 4.0)["metric.fid"])
    log_sn = np.log(_rows(study, 16.0, sn="True")["metric.fid"])
    log_ttur = np.log(_rows(study, 16.0, lr_d=0.00025)["metric.fid"])
    assert by_arm.loc[NO_REMEDY, "vs_balanced_ratio"] == pytest.approx(10)
    assert by_arm.loc[NO_REMEDY, "vs_balanced_holm_p"] != by_arm.loc[NO_REMEDY, "vs_balanced_holm_p"]  # not in a family

    sn = by_arm.loc["d_spectral_norm=on"]
    assert sn["vs_none_test"] == UNPAIRED and sn["vs_none_n"] == 8 and sn["vs_none_n_reference"] == 8
    assert sn["vs_none_ratio"] == pytest.approx(math.exp(log_sn.mean() - log_none.mean()))
    assert sn["vs_none_ratio"] == pytest.approx(0.2, rel=0.02)
    welch = stats.ttest_ind(log_sn, log_none, equal_var=False).confidence_interval(0.95)
    assert (sn["vs_none_low"], sn["vs_none_high"]) == pytest.approx((math.exp(welch.low), math.exp(welch.high)))
    # every SN run below every no-remedy run: the two most extreme of C(16, 8) splits, far below the paired 2/2^8
    assert sn["vs_none_p"] == pytest.approx(brute_force_two_sample_p(log_sn, log_none)[0]) == pytest.approx(2 / 12870)
    gap = log_none.mean() - log_balanced.mean()
    assert sn["gap_closed"] == pytest.approx((log_none.mean() - log_sn.mean()) / gap)
    assert sn["gap_closed"] == pytest.approx(math.log(5) / math.log(10), abs=0.01)
    assert sn["gap_closed_bounded"] and sn["gap_closed_low"] < sn["gap_closed"] < sn["gap_closed_high"]
    # Fieller over the three independent groups, the no-remedy mean shared by both differences
    assert _is_fieller_set(_unpaired_groups(log_none.to_numpy(), log_sn.to_numpy(), log_balanced.to_numpy()),
                           sn["gap_closed_low"], sn["gap_closed_high"])

    ttur = by_arm.loc["lr_d=0.00025"]
    p_ttur, splits = brute_force_two_sample_p(log_ttur, log_none)
    assert ttur["vs_none_test"] == UNPAIRED and splits == 12870 and ttur["vs_none_p"] == pytest.approx(p_ttur)

    ema = frame[frame["arm"].str.startswith("EMA of G")].iloc[0]
    log_ema = np.log(_rows(study, 16.0)["metric.fid_ema"])
    d = (log_ema - log_none).to_numpy()
    assert ema["vs_none_test"] == PAIRED and ema["vs_none_n"] == 8
    assert ema["vs_none_ratio"] == pytest.approx(math.exp(d.mean()))
    assert ema["vs_none_p"] == pytest.approx(_sign_flip_by_hand(d))
    assert ema["vs_none_p"] != pytest.approx(brute_force_two_sample_p(log_ema, log_none)[0])  # the pairing shows
    assert ema["vs_none_in_direction"] == np.sum(np.sign(d) == np.sign(d.mean()))
    # its gap closed: the within-run difference over the no-remedy runs, the gap's balanced side independent
    groups = [(-d, log_none.to_numpy()), (np.zeros(8), -log_balanced.to_numpy())]
    assert ema["gap_closed"] == pytest.approx(-d.mean() / gap)
    assert ema["gap_closed_bounded"] and _is_fieller_set(groups, ema["gap_closed_low"], ema["gap_closed_high"])

    # the primary family: Holm over the three arms against no remedy
    order = [ema["vs_none_p"], sn["vs_none_p"], ttur["vs_none_p"]]
    expected = holm_by_hand(order)
    assert [ema["vs_none_holm_p"], sn["vs_none_holm_p"], ttur["vs_none_holm_p"]] == pytest.approx(expected)
    assert ttur["vs_none_holm_p"] > 0.05  # noise only: no claim
    # the residual gap, unpaired, a secondary family of its own
    residual = [brute_force_two_sample_p(np.log(values), log_balanced)[0] for values in
                (np.exp(log_ema), np.exp(log_sn), np.exp(log_ttur))]
    assert [ema["vs_balanced_p"], sn["vs_balanced_p"], ttur["vs_balanced_p"]] == pytest.approx(residual)
    assert [ema["vs_balanced_holm_p"], sn["vs_balanced_holm_p"], ttur["vs_balanced_holm_p"]] == pytest.approx(
        holm_by_hand(residual))


def test_failed_runs_leave_the_fid_magnitudes_and_an_arm_that_all_failed_gets_fisher_and_no_ratio():
    study = _study()
    sn_rows = _rows(study, 16.0, sn="True").index
    none_rows = _rows(study, 16.0).index
    study["outcome"] = "converged"
    study.loc[sn_rows, "outcome"] = "failed"
    study.loc[sn_rows, "metric.fid"] = 1200.0  # near the noise ceiling: a ratio of these would measure nothing
    study.loc[none_rows[:2], "outcome"] = ["failed", "diverged"]
    frame = remedies_frame(remedy_arms(study, SEARCHED, "fid"))
    by_arm = frame.set_index("arm")

    sn = by_arm.loc["d_spectral_norm=on"]
    assert (sn["runs"], sn["failed"], sn["not_failed"]) == (8, 8, 0)
    for column in ("vs_none_ratio", "vs_none_p", "gap_closed", "vs_balanced_ratio", "vs_none_holm_p"):
        assert math.isnan(sn[column]), column
    assert sn["fisher_p"] == pytest.approx(stats.fisher_exact([[8, 0], [2, 6]]).pvalue)
    assert (sn["failed_ci_low"], sn["failed_ci_high"]) == pytest.approx(
        tuple(stats.binomtest(8, 8).proportion_ci(method="exact")))
    ttur = by_arm.loc["lr_d=0.00025"]
    assert ttur["fisher_p"] == pytest.approx(stats.fisher_exact([[0, 8], [2, 6]]).pvalue)
    assert [sn["fisher_holm_p"], ttur["fisher_holm_p"]] == pytest.approx(
        holm_by_hand([sn["fisher_p"], ttur["fisher_p"]]))

    # the two failed no-remedy runs leave its FID: 8 TTUR runs against the 6 that did not fail
    kept = _rows(study, 16.0).iloc[2:]
    log_none = np.log(kept["metric.fid"])
    log_ttur = np.log(_rows(study, 16.0, lr_d=0.00025)["metric.fid"])
    assert (ttur["vs_none_n"], ttur["vs_none_n_reference"]) == (8, 6)
    assert ttur["vs_none_p"] == pytest.approx(brute_force_two_sample_p(log_ttur, log_none)[0])
    ema = frame[frame["arm"].str.startswith("EMA of G")].iloc[0]
    d = (np.log(kept["metric.fid_ema"]) - log_none).to_numpy()
    assert ema["vs_none_n"] == 6 and ema["vs_none_p"] == pytest.approx(_sign_flip_by_hand(d))
    assert math.isnan(ema["fisher_p"])  # the same runs as no remedy: no test of its own
    # the primary family now has two members: SN has no FID comparison
    assert [ema["vs_none_holm_p"], ttur["vs_none_holm_p"]] == pytest.approx(
        holm_by_hand([ema["vs_none_p"], ttur["vs_none_p"]]))

    table = remedies_table(frame, "FID")
    sn_cells = table.rows[list(frame["arm"]).index("d_spectral_norm=on")]
    fisher = stats.fisher_exact([[8, 0], [2, 6]]).pvalue
    assert f"8 of 8 failed against 2 of 8 (Fisher p = {fisher:.2g})" in sn_cells
    assert "×" not in " ".join(sn_cells)
    sentences = findings(frame, "FID")
    assert not any("d_spectral_norm=on lowers" in s or "d_spectral_norm=on raises" in s for s in sentences)
    failure = [s for s in sentences if "8 of 8 failed" in s]
    assert len(failure) == 1 and failure[0].startswith("(secondary) ") and "FID is not compared" in failure[0]


def test_findings_claim_the_primary_family_and_label_the_secondary_ones():
    frame = remedies_frame(remedy_arms(_study(), SEARCHED, "fid"))
    sentences = findings(frame, "FID")
    primary = [s for s in sentences if not s.startswith("(secondary) ")]
    secondary = [s for s in sentences if s.startswith("(secondary) ")]
    significant = frame[frame["vs_none_holm_p"] < 0.05]["arm"].tolist()
    assert "d_spectral_norm=on" in significant and "lr_d=0.00025" not in significant
    assert len(primary) == len(significant) and all(any(arm in s for s in primary) for arm in significant)
    assert any("d_spectral_norm=on lowers the final FID against no remedy" in s and "unpaired, 8 vs 8" in s
               for s in primary)
    assert all("against no remedy by" not in s for s in secondary)
    remaining = frame[frame["vs_balanced_holm_p"] < 0.05]["arm"].tolist()  # a gap to balanced remains
    assert len(remaining) == 3 and len(secondary) == 1 and "a gap to the balanced configuration's" in secondary[0]
    assert all(arm in secondary[0] for arm in remaining)
    table = remedies_table(frame, "FID")
    assert "p (Holm, primary)" in table.columns and "p (Holm, secondary)" in table.columns
    assert "Declared primary family: each arm against no remedy (3 comparisons" in table.note
    test_column = table.columns.index("test")
    tests = {row[1]: row[test_column] for row in table.rows}
    assert tests["d_spectral_norm=on"].startswith("unpaired: exact permutation, 8 vs 8 runs")
    assert next(v for k, v in tests.items() if k.startswith("EMA of G")).startswith("paired (same runs)")


def _report(tmp_path, study: pd.DataFrame, extra=()):
    """Build the report of `study` (rows of _study, with an optional `outcome`) logged to an MLflow store."""
    from study_store import Trial, fill_study

    from gan import names
    from reports.build import build_report

    trials = []
    for _, row in study.iterrows():
        params = {key: row[key] for key in ("arch", "g_width", "d_width", "seed", "d_spectral_norm", "lr_d",
                                            "g_ema_decay")}
        params.update({"lr_g": 0.001, "capacity_ratio_log2": math.log2(row["d_width"] / row["g_width"]),
                       "seed": int(row["seed"]), "g_width": int(row["g_width"]), "d_width": int(row["d_width"])})
        tags = {names.OUTCOME_TAG: row["outcome"]} if "outcome" in row else {}
        trials.append(Trial(params=params, final={"fid": row["metric.fid"], "fid_ema": row["metric.fid_ema"]},
                            tags=tags))
    uri, _, _ = fill_study(tmp_path, "remedies", [*trials, *extra], with_grids=False,
                           parent_params={"searched": "d_width,d_spectral_norm,lr_d"})
    return build_report(uri, "remedies", out_dir=tmp_path / "out", log_artifacts=False)


def test_build_report_of_a_remedies_study_opens_with_the_arms_and_claims_only_holm_significant_ones(tmp_path):
    paths = _report(tmp_path, _study())
    text = paths.markdown.read_text()
    assert (tmp_path / "out" / "remedies.csv") in paths.csv_files
    assert "What rescues the imbalanced GAN" in text and "d_spectral_norm=on" in text
    claims = paths.summary_markdown
    assert "d_spectral_norm=on lowers the final" in claims and "lr_d=0.00025 lowers" not in claims
    # one declared primary family: the remedies'; the capacity imbalance analysis is secondary, its sentences say so
    assert "Declared primary family: each arm against no remedy" in claims
    assert "The capacity imbalance analysis is secondary in this study" in claims
    assert "Declared primary family, within each" not in claims
    sentences = [line[2:] for line in claims.splitlines() if line.startswith("- ")]
    imbalance = [s for s in sentences if "balanced G" in s or "balanced neighbour" in s or "confounded" in s]
    assert imbalance and all(s.startswith("(secondary) ") for s in imbalance)


def test_build_report_counts_failed_and_diverged_runs_as_failures_read_from_their_outcome_tags(tmp_path):
    from study_store import Trial

    from gan import names

    study = _study().assign(outcome="converged")
    study.loc[_rows(study, 16.0, sn="True").index, "outcome"] = "failed"
    diverged = Trial(params={"arch": "dcgan", "g_width": 4, "d_width": 16, "seed": 8, "d_spectral_norm": "False",
                             "lr_d": 0.00025, "g_ema_decay": 0.999, "lr_g": 0.001, "capacity_ratio_log2": 2.0},
                     status=names.DIVERGED_STATUS, tags={names.OUTCOME_TAG: "diverged"})  # no FID at all
    paths = _report(tmp_path, study, [diverged])
    numbers = pd.read_csv(tmp_path / "out" / "remedies.csv").set_index("arm")
    assert (numbers.loc["lr_d=0.00025", "runs"], numbers.loc["lr_d=0.00025", "failed"]) == (9, 1)
    assert numbers.loc["lr_d=0.00025", "vs_none_n"] == 8  # the diverged run has no FID to compare
    fisher = stats.fisher_exact([[8, 0], [0, 8]]).pvalue
    assert f"8 of 8 failed against 0 of 8 (Fisher p = {fisher:.1e})" in paths.markdown.read_text()
    claims = paths.summary_markdown
    assert "d_spectral_norm=on lowers" not in claims and "(secondary) In dcgan g4 d16, d_spectral_norm=on" in claims
