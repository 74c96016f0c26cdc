"""The statistics of independent arms, failure counts, the 2 × 2 factorial, random search and its confirmation:
against brute-force enumeration, hand computation, scipy (and statsmodels where installed) and simulation."""
import itertools
import math
from dataclasses import astuple

import numpy as np
import pytest
from scipy import integrate, stats

from oracles import brute_force_two_sample_p
from reports.stats import (PRIMARY, SECONDARY, expected_best_curve, expected_best_of_n, fisher_failures, holm,
                           holm_by_family, interaction_test_2x2, min_two_sample_p, two_sample_permutation_test,
                           unpaired_log_ratio, welch_interval, winners_curse)


# --- two-sample permutation test -----------------------------------------------------------------------------

@pytest.mark.parametrize("n_a,n_b,shift,decimals", [(4, 5, 0.8, 6), (5, 5, 0.3, 6), (6, 4, 1.5, 6), (5, 6, 0.5, 0)])
def test_permutation_p_equals_brute_force_enumeration_of_all_splits(n_a, n_b, shift, decimals):
    rng = np.random.default_rng(n_a * 10 + n_b)
    a = np.round(rng.normal(shift, 1.0, n_a) * 2, decimals)  # decimals = 0: many ties
    b = np.round(rng.normal(0.0, 1.0, n_b) * 2, decimals)
    expected, splits = brute_force_two_sample_p(a.tolist(), b.tolist())
    test = two_sample_permutation_test(a, b)
    assert test.exact and test.splits == splits == math.comb(n_a + n_b, n_a)
    assert test.p == pytest.approx(expected)
    assert test.difference == pytest.approx(a.mean() - b.mean())


def test_the_floor_of_the_exact_test_is_two_over_the_number_of_splits_for_balanced_arms():
    separated = two_sample_permutation_test([30.0, 31, 32, 33, 34, 35], [20.0, 21, 22, 23, 24, 25])
    assert separated.splits == 924 and separated.p == pytest.approx(2 / 924) == separated.floor
    assert round(separated.p, 4) == 0.0022  # REFERENCE.md
    three = two_sample_permutation_test([3.0, 4.0, 5.0], [0.0, 1.0, 2.0])
    assert three.p == pytest.approx(0.1) and three.floor == pytest.approx(0.1)
    # the floor is a property of the values, not of the observed split
    mixed = two_sample_permutation_test([3.0, 1.0, 5.0], [0.0, 4.0, 2.0])
    assert mixed.floor == pytest.approx(0.1) and mixed.p > 0.5
    assert min_two_sample_p(3, 3) == pytest.approx(0.1) and min_two_sample_p(6, 6) == pytest.approx(2 / 924)
    assert min_two_sample_p(8, 8) == pytest.approx(2 / 12_870) and min_two_sample_p(3, 4) == pytest.approx(1 / 35)
    unbalanced = two_sample_permutation_test([10.0, 11.0, 12.0], [0.0, 1.0, 2.0, 3.0])
    assert unbalanced.p == pytest.approx(1 / 35) == unbalanced.floor


def test_monte_carlo_branch_agrees_with_the_exact_test_within_its_error():
    rng = np.random.default_rng(7)
    a, b = rng.normal(0.6, 1.0, 7), rng.normal(0.0, 1.0, 7)
    exact = two_sample_permutation_test(a, b)
    draws = 20_000
    estimate = two_sample_permutation_test(a, b, max_exact_splits=100, draws=draws)
    assert exact.exact and not estimate.exact and estimate.splits == 3432 and estimate.draws == draws
    assert 0.02 < exact.p < 0.5  # a moderate case, where the Monte Carlo error matters
    assert abs(estimate.p - exact.p) <= 4 * math.sqrt(exact.p * (1 - exact.p) / draws) + 1 / draws
    assert estimate.floor == pytest.approx(1 / (draws + 1))
    assert two_sample_permutation_test(a, b, max_exact_splits=100, draws=draws) == estimate  # seeded


def test_exact_permutation_test_holds_its_level_under_the_null():
    rng = np.random.default_rng(8)
    p = np.array([two_sample_permutation_test(rng.normal(0, 1, 5), rng.normal(0, 1, 5)).p for _ in range(1000)])
    assert np.mean(p <= 0.05) <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 1000)
    assert np.mean(p <= 0.5) == pytest.approx(0.5, abs=0.05)  # p is uniform on its grid, not just small


def test_welch_interval_equals_scipy_and_the_ratio_is_exp_of_it():
    rng = np.random.default_rng(9)
    a, b = rng.normal(3.8, 0.2, 4), rng.normal(3.4, 0.5, 6)
    interval = welch_interval(a, b)
    reference = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (interval.low, interval.high) == pytest.approx((reference.low, reference.high))
    assert interval.mean == pytest.approx(a.mean() - b.mean()) and interval.n == 10
    effect = unpaired_log_ratio(np.exp(a), np.exp(b))
    assert effect.ratio == pytest.approx(math.exp(a.mean() - b.mean()))
    assert (effect.low, effect.high) == pytest.approx((math.exp(reference.low), math.exp(reference.high)))
    assert effect.p == pytest.approx(brute_force_two_sample_p(a.tolist(), b.tolist())[0])
    assert (effect.n_treated, effect.n_control) == (4, 6)


@pytest.mark.parametrize("n,sd_a,sd_b,low,high", [
    (3, 0.2, 0.5, 0.93, 0.97),
    (6, 0.2, 0.5, 0.93, 0.97),
    (3, 0.3, 0.3, 0.94, 0.98),  # equal spreads, 3 vs 3: Welch's ν < 4 makes it somewhat conservative
])
def test_ratio_of_geometric_means_interval_covers_at_95_percent(n, sd_a, sd_b, low, high):
    rng = np.random.default_rng(n * 100 + int(sd_b * 10))
    trials, hits = 1500, 0
    for _ in range(trials):
        treated = rng.normal(math.log(45), sd_a, n)  # geometric means 45 and 30: ratio 1.5
        control = rng.normal(math.log(30), sd_b, n)
        interval = welch_interval(treated, control)
        hits += interval.low <= math.log(1.5) <= interval.high
    assert low <= hits / trials <= high


# --- Fisher's exact test of failure counts -------------------------------------------------------------------

def hypergeometric_two_sided_p(failures_a, n_a, failures_b, n_b):
    """Σ P(table) over the tables with the same margins that are no more probable than the observed one."""
    failures = failures_a + failures_b

    def probability(x):
        return math.comb(n_a, x) * math.comb(n_b, failures - x) / math.comb(n_a + n_b, failures)

    observed = probability(failures_a)
    support = range(max(0, failures - n_b), min(n_a, failures) + 1)
    return sum(probability(x) for x in support if probability(x) <= observed * (1 + 1e-7))


@pytest.mark.parametrize("table", [(8, 8, 0, 8), (3, 8, 0, 8), (5, 10, 1, 12), (2, 6, 2, 6), (0, 5, 4, 7),
                                   (7, 9, 2, 11), (1, 3, 3, 3)])
def test_fisher_failures_equals_a_hypergeometric_sum_and_scipy(table):
    comparison = fisher_failures(*table)
    failures_a, n_a, failures_b, n_b = table
    assert comparison.p == pytest.approx(hypergeometric_two_sided_p(*table), rel=1e-9)
    expected = stats.fisher_exact([[failures_a, n_a - failures_a], [failures_b, n_b - failures_b]]).pvalue
    assert comparison.p == pytest.approx(expected)
    assert comparison.rate_a == failures_a / n_a and comparison.rate_b == failures_b / n_b


def test_eight_of_eight_failures_against_none_gives_p_1_6e_4():
    comparison = fisher_failures(failures_a=8, n_a=8, failures_b=0, n_b=8)
    assert comparison.p == pytest.approx(2 / math.comb(16, 8)) and round(comparison.p, 5) == 0.00016
    assert fisher_failures(2, 6, 2, 6).p == pytest.approx(1.0)
    with pytest.raises(ValueError):
        fisher_failures(9, 8, 0, 8)


# --- the 2 × 2 factorial on log FID --------------------------------------------------------------------------

def cells_from_logs(logs):
    return [[np.exp(np.asarray(logs[i][j], dtype=float)) for j in (0, 1)] for i in (0, 1)]


def test_two_way_analysis_of_a_hand_computed_factorial():
    # log FID per cell: means 2, 3 / 3, 6; grand mean 3.5; level means 2.5, 4.5 for both factors.
    # Interaction residuals ȳij − ȳi. − ȳ.j + ȳ.. = ±0.5, SS_AB = 3 · 4 · 0.25 = 3; SS_A = SS_B = 6 · (1 + 1) = 12;
    # SSE = 4 cells · ((−1)² + 0² + 1²) = 8 on 4 (3 − 1) = 8 df: MSE = 1. F = 3, 12, 12.
    logs = [[[1, 2, 3], [2, 3, 4]], [[2, 3, 4], [5, 6, 7]]]
    result = interaction_test_2x2(cells_from_logs(logs), permutations=0)
    t8 = 2.306004  # t_{0.975, 8}
    assert result.n_per_cell == (3, 3, 3, 3) and result.interaction.df_error == 8
    assert result.interaction.f == pytest.approx(3.0) and result.first.f == pytest.approx(12.0)
    assert result.second.f == pytest.approx(12.0)
    assert result.interaction.p == pytest.approx(stats.f.sf(3.0, 1, 8))
    # interaction contrast 6 − 3 − 3 + 2 = 2 with se² = MSE · 4/3; the first factor's: (3 + 6 − 2 − 3)/2 = 2, se² = 1/3
    assert result.interaction.ratio == pytest.approx(math.exp(2))
    assert (result.interaction.low, result.interaction.high) == pytest.approx(
        (math.exp(2 - t8 * math.sqrt(4 / 3)), math.exp(2 + t8 * math.sqrt(4 / 3))), rel=1e-6)
    assert (result.first.low, result.first.high) == pytest.approx(
        (math.exp(2 - t8 * math.sqrt(1 / 3)), math.exp(2 + t8 * math.sqrt(1 / 3))), rel=1e-6)
    residuals = [-1, 0, 1] * 4
    assert result.residual_normality_p == pytest.approx(stats.shapiro(residuals).pvalue)
    assert math.isnan(result.permutation_p)


def test_two_way_sums_of_squares_on_random_data_and_factor_symmetry():
    rng = np.random.default_rng(11)
    n = 4
    y = rng.normal(3.5, 0.3, (2, 2, n)) + np.array([[0.0, 0.2], [0.1, 0.7]])[:, :, None]
    cell, row, column, grand = y.mean(axis=2), y.mean(axis=(1, 2)), y.mean(axis=(0, 2)), y.mean()
    ss_first = 2 * n * np.sum((row - grand) ** 2)
    ss_second = 2 * n * np.sum((column - grand) ** 2)
    ss_interaction = n * np.sum((cell - row[:, None] - column[None, :] + grand) ** 2)
    mse = np.sum((y - cell[:, :, None]) ** 2) / (4 * (n - 1))
    result = interaction_test_2x2(np.exp(y), permutations=0)
    assert result.first.f == pytest.approx(ss_first / mse)
    assert result.second.f == pytest.approx(ss_second / mse)
    assert result.interaction.f == pytest.approx(ss_interaction / mse)
    assert result.interaction.p == pytest.approx(stats.f.sf(ss_interaction / mse, 1, 4 * (n - 1)))
    swapped = interaction_test_2x2(np.exp(y.transpose(1, 0, 2)), permutations=0)
    assert astuple(swapped.first) == pytest.approx(astuple(result.second))
    assert astuple(swapped.second) == pytest.approx(astuple(result.first))
    assert swapped.interaction.f == pytest.approx(result.interaction.f)


def test_two_way_analysis_equals_statsmodels_anova():
    smf = pytest.importorskip("statsmodels.formula.api")
    sm = pytest.importorskip("statsmodels.api")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(12)
    y = rng.normal(3.5, 0.3, (2, 2, 3)) + np.array([[0.0, 0.3], [0.1, 0.2]])[:, :, None]
    frame = pd.DataFrame([{"a": i, "b": j, "y": y[i, j, k]} for i in (0, 1) for j in (0, 1) for k in range(3)])
    table = sm.stats.anova_lm(smf.ols("y ~ C(a, Sum) * C(b, Sum)", frame).fit(), typ=3)
    result = interaction_test_2x2(np.exp(y), permutations=0)
    assert result.interaction.f == pytest.approx(table.loc["C(a, Sum):C(b, Sum)", "F"])
    assert result.interaction.p == pytest.approx(table.loc["C(a, Sum):C(b, Sum)", "PR(>F)"])
    assert result.first.f == pytest.approx(table.loc["C(a, Sum)", "F"])


def test_interaction_f_test_rejects_5_percent_under_no_interaction_and_its_interval_covers_1():
    rng = np.random.default_rng(13)
    main_effects = np.array([[3.0, 3.4], [3.2, 3.6]])  # additive on the log scale: interaction ratio 1
    trials, rejections, covered = 2000, 0, 0
    for _ in range(trials):
        result = interaction_test_2x2(np.exp(main_effects[:, :, None] + rng.normal(0, 0.3, (2, 2, 3))),
                                      permutations=0)
        rejections += result.interaction.p < 0.05
        covered += result.interaction.low <= 1.0 <= result.interaction.high
    assert 0.04 <= rejections / trials <= 0.06
    assert covered == trials - rejections  # the interval and the test are the same statement


def freedman_lane_by_enumeration(y):
    """Exact Freedman–Lane p over all N! permutations of the additive model's residuals (2 × 2 × n array)."""
    n = y.shape[2]
    row, column, grand = y.mean(axis=(1, 2)), y.mean(axis=(0, 2)), y.mean()
    fitted = (row[:, None, None] + column[None, :, None] - grand) * np.ones_like(y)  # balanced: the LS fit
    residuals = (y - fitted).ravel()

    def interaction_f(values):  # values: permutations × 2 × 2 × n
        cell = values.mean(axis=3)
        r, c, g = cell.mean(axis=2), cell.mean(axis=1), cell.mean(axis=(1, 2))
        ss = n * np.sum((cell - r[:, :, None] - c[:, None, :] + g[:, None, None]) ** 2, axis=(1, 2))
        mse = np.sum((values - cell[..., None]) ** 2, axis=(1, 2, 3)) / (4 * (n - 1))
        return ss / mse

    orders = np.array(list(itertools.permutations(range(y.size))))
    permuted = fitted.ravel() + residuals[orders]
    observed = interaction_f(y[None])[0]
    return float(np.mean(interaction_f(permuted.reshape(-1, 2, 2, n)) >= observed * (1 - 1e-9)))


def test_permutation_interaction_p_matches_exact_freedman_lane_enumeration():
    rng = np.random.default_rng(14)
    y = rng.normal(3.5, 0.3, (2, 2, 2)) + np.array([[0.0, 0.1], [0.2, 0.6]])[:, :, None]
    exact = freedman_lane_by_enumeration(y)  # 8! = 40,320 permutations
    draws = 40_000
    result = interaction_test_2x2(np.exp(y), permutations=draws)
    assert 0.02 < exact < 0.8
    assert abs(result.permutation_p - exact) <= 4 * math.sqrt(exact * (1 - exact) / draws) + 1 / draws
    assert result.permutations == draws
    assert interaction_test_2x2(np.exp(y), permutations=draws) == result  # seeded


def test_permutation_interaction_test_holds_its_level_on_skewed_errors_and_finds_a_real_interaction():
    rng = np.random.default_rng(15)
    main_effects = np.array([[3.0, 3.4], [3.2, 3.6]])
    trials, rejections = 300, 0
    for _ in range(trials):
        errors = rng.exponential(0.3, (2, 2, 3)) - 0.3  # skewed, not normal
        result = interaction_test_2x2(np.exp(main_effects[:, :, None] + errors), permutations=499)
        rejections += result.permutation_p < 0.05
    assert rejections / trials <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / trials)
    interacting = main_effects + np.array([[0.0, 0.0], [0.0, 1.0]])
    strong = interaction_test_2x2(np.exp(interacting[:, :, None] + rng.normal(0, 0.1, (2, 2, 3))))
    assert strong.permutation_p < 0.01 and strong.interaction.p < 0.01 and strong.interaction.low > 1


def test_an_outlier_fails_the_residual_normality_check():
    logs = [[[3.0, 3.1, 2.9, 3.0, 3.05], [3.2, 3.1, 3.3, 3.2, 3.15]],
            [[3.1, 3.0, 3.2, 3.1, 3.12], [3.5, 3.4, 3.6, 3.5, 5.5]]]
    result = interaction_test_2x2(cells_from_logs(logs), permutations=0)
    assert result.residual_normality_p < 0.01
    empty = interaction_test_2x2([[[30.0], []], [[31.0], [32.0]]], permutations=0)
    assert math.isnan(empty.interaction.p) and empty.n_per_cell == (1, 0, 1, 1)


# --- the expected best of n random-search trials -------------------------------------------------------------

SEARCH = [41.0, 28.5, 33.0, 28.5, 55.0, 30.2, 33.0]  # FID of 7 trials, with ties


@pytest.mark.parametrize("lower_is_better", [True, False])
def test_expected_best_equals_brute_force_over_all_subsets(lower_is_better):
    best = min if lower_is_better else max
    for n in range(1, len(SEARCH) + 1):
        bests = [best(subset) for subset in itertools.combinations(SEARCH, n)]
        result = expected_best_of_n(SEARCH, n, lower_is_better)
        assert result.mean == pytest.approx(np.mean(bests)) and result.sd == pytest.approx(np.std(bests))
        assert result.n == n and result.trials == len(SEARCH) and not result.with_replacement
    assert expected_best_of_n(SEARCH, 1).mean == pytest.approx(np.mean(SEARCH))
    assert expected_best_of_n(SEARCH, 7).mean == 28.5 and expected_best_of_n(SEARCH, 7, False).mean == 55.0


@pytest.mark.parametrize("lower_is_better", [True, False])
def test_expected_best_with_replacement_equals_brute_force_over_all_draws(lower_is_better):
    best = min if lower_is_better else max
    scores = SEARCH[:5]
    for n in range(1, 5):
        bests = [best(draw) for draw in itertools.product(scores, repeat=n)]
        result = expected_best_of_n(scores, n, lower_is_better, with_replacement=True)
        assert result.mean == pytest.approx(np.mean(bests)) and result.sd == pytest.approx(np.std(bests))


def test_expected_best_curve_improves_with_trials_and_rejects_n_beyond_N():
    curve = expected_best_curve(SEARCH)
    assert [point.n for point in curve] == list(range(1, 8))
    assert all(later.mean <= earlier.mean for earlier, later in zip(curve, curve[1:]))
    # with replacement the best of N draws can miss the sample's best: worse than without
    assert expected_best_of_n(SEARCH, 7, with_replacement=True).mean > curve[-1].mean
    with pytest.raises(ValueError):
        expected_best_of_n(SEARCH, 8)


# --- the winner's curse --------------------------------------------------------------------------------------

def expected_minimum_of_normals(k):
    """E[min of k standard normals] = ∫ x · k φ(x) (1 − Φ(x))^{k−1} dx, by quadrature."""
    value, _ = integrate.quad(lambda x: x * k * stats.norm.pdf(x) * stats.norm.sf(x) ** (k - 1), -12, 12)
    return value


def test_the_searchs_best_is_optimistic_by_the_expected_minimum_and_fresh_seeds_are_unbiased():
    rng = np.random.default_rng(16)
    configurations, sigma, true_fid, fresh_seeds, replicates = 10, 0.2, 30.0, 5, 1500
    log_search, log_confirmed, log_flattery, covered = [], [], [], 0
    for _ in range(replicates):
        search = {f"c{i}": true_fid * math.exp(rng.normal(0, sigma)) for i in range(configurations)}
        chosen = min(search, key=search.get)
        confirmed = {chosen: true_fid * np.exp(rng.normal(0, sigma, fresh_seeds))}
        best = winners_curse(search, confirmed)[0]
        assert best.name == chosen and best.search_rank == 1
        log_search.append(math.log(best.search_score / true_fid))
        log_confirmed.append(math.log(best.confirmed.mean / true_fid))
        log_flattery.append(math.log(best.flattery))
        covered += best.confirmed.low <= true_fid <= best.confirmed.high
    expected_bias = sigma * expected_minimum_of_normals(configurations)
    assert expected_bias == pytest.approx(-1.5388 * sigma, abs=1e-3)  # tables: E[min of 10] = −1.5388
    error = 3 * np.std(log_search) / math.sqrt(replicates)
    assert np.mean(log_search) == pytest.approx(expected_bias, abs=error)
    confirmed_error = 3 * sigma / math.sqrt(fresh_seeds * replicates)  # 3 se of the mean log of the fresh seeds
    assert np.mean(log_confirmed) == pytest.approx(0.0, abs=confirmed_error)
    assert np.mean(log_flattery) == pytest.approx(expected_bias, abs=error + confirmed_error)
    assert 0.93 <= covered / replicates <= 0.97


def test_winners_curse_orders_by_search_score_and_leaves_unconfirmed_configurations_open():
    rows = winners_curse({"a": 25.0, "b": 20.0, "c": 22.0}, {"b": [27.0, 30.0, 24.0]})
    assert [row.name for row in rows] == ["b", "c", "a"] and [row.search_rank for row in rows] == [1, 2, 3]
    geometric_mean = (27.0 * 30.0 * 24.0) ** (1 / 3)
    assert rows[0].confirmed.mean == pytest.approx(geometric_mean) and rows[0].confirmed.n == 3
    assert rows[0].flattery == pytest.approx(20.0 / geometric_mean)
    assert math.isnan(rows[1].flattery) and rows[1].confirmed.n == 0
    higher = winners_curse({"a": 8.1, "b": 9.0}, {}, lower_is_better=False)  # e.g. an inception score
    assert [row.name for row in higher] == ["b", "a"]


# --- families of tests ---------------------------------------------------------------------------------------

def test_holm_by_family_adjusts_each_family_alone_and_labels_the_primary():
    families = {"fid": [0.01, 0.04, 0.03], "kid": [0.001, 0.2], "precision": [0.02]}
    adjusted = holm_by_family(families, primary="fid")
    # fid: sorted 0.01, 0.03, 0.04 → 0.03, 0.06, 0.06 (m = 3); kid: 0.002, 0.2 (m = 2); precision alone
    assert adjusted["fid"].adjusted == pytest.approx((0.03, 0.06, 0.06))
    assert adjusted["kid"].adjusted == pytest.approx((0.002, 0.2))
    assert adjusted["precision"].adjusted == pytest.approx((0.02,))
    assert adjusted["fid"].role == PRIMARY and adjusted["kid"].role == adjusted["precision"].role == SECONDARY
    assert adjusted["fid"].p == (0.01, 0.04, 0.03)
    # secondary families do not dilute the primary one
    assert holm_by_family({"fid": families["fid"]}, "fid")["fid"] == adjusted["fid"]
    assert adjusted["fid"].adjusted != pytest.approx(holm(families["fid"] + families["kid"])[:3])
    with pytest.raises(ValueError):
        holm_by_family(families, primary="is")
