"""The statistics of few-seed studies against textbook values, scipy, brute force and simulated coverage."""
import itertools
import math

import numpy as np
import pytest

from reports.stats import (bounded_interval, clopper_pearson, holm, min_exact_p, one_way_variance,
                           paired_difference, paired_log_ratio, positive_interval, seeds_needed, sign_flip_p,
                           t_interval)


def test_t_interval_of_1_2_3_uses_t_with_two_degrees_of_freedom():
    # mean 2, s = 1, n = 3; t_{0.975, 2} = 4.302653 (tables)
    interval = t_interval([1.0, 2.0, 3.0])
    assert interval.mean == 2.0 and interval.n == 3
    assert interval.low == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-5)
    assert interval.high == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-5)


def test_constant_values_give_a_zero_width_interval_and_one_value_gives_none():
    interval = t_interval([4.0, 4.0, 4.0, 4.0])
    assert (interval.low, interval.mean, interval.high) == (4.0, 4.0, 4.0)
    single = t_interval([5.0, float("nan")])
    assert single.mean == 5.0 and single.n == 1 and math.isnan(single.low) and not single.excludes_zero


@pytest.mark.parametrize("n", [3, 6])
def test_the_paired_log_ratio_interval_covers_the_true_ratio_at_95_percent(n):
    # log FID of the control ~ N(log 30, 0.3), of the treated shifted by log 1.5 plus pair noise: ratio 1.5
    rng = np.random.default_rng(n)
    hits, trials = 0, 2000
    for _ in range(trials):
        control = np.exp(rng.normal(math.log(30), 0.3, n))
        treated = control * 1.5 * np.exp(rng.normal(0, 0.2, n))
        effect = paired_log_ratio(treated, control)
        hits += effect.low <= 1.5 <= effect.high
    assert 0.93 <= hits / trials <= 0.97


@pytest.mark.parametrize("n", [3, 6])
def test_positive_and_bounded_intervals_cover_at_95_percent_and_stay_in_their_domain(n):
    rng = np.random.default_rng(10 + n)
    trials, hits_positive, hits_bounded = 2000, 0, 0
    for _ in range(trials):
        fid = np.exp(rng.normal(math.log(40), 0.5, n))  # geometric mean 40
        share = 1 / (1 + np.exp(-rng.normal(1.0, 0.8, n)))  # logit-normal in (0, 1): median 1/(1+e^-1)
        positive, bounded = positive_interval(fid), bounded_interval(share, 0.0, 1.0)
        assert positive.low > 0 and 0 <= bounded.low <= bounded.high <= 1
        hits_positive += positive.low <= 40 <= positive.high
        hits_bounded += bounded.low <= 1 / (1 + math.exp(-1.0)) <= bounded.high
    assert 0.93 <= hits_positive / trials <= 0.97
    assert 0.93 <= hits_bounded / trials <= 0.97


def test_bounded_interval_of_values_at_a_bound_stays_inside_the_domain():
    interval = bounded_interval([10, 10, 6, 3], 0, 10)
    assert 0 < interval.low < interval.high < 10 and interval.mean == pytest.approx(7.25)
    assert bounded_interval([10, 10, 10], 0, 10).low == 10


def test_sign_flip_p_of_known_sign_patterns():
    assert sign_flip_p([0.3, 0.1, 0.5, 0.2, 0.9, 0.4]) == pytest.approx(2 / 64)  # 6 of 6 positive
    assert sign_flip_p([-1.0, -2.0, -3.0]) == pytest.approx(2 / 8)
    # equal magnitudes: |sum| >= 4 happens for 6 of 6 or 0 of 6 positive, |sum| >= 2 also at 5 and 1 of 6
    assert sign_flip_p([1, 1, 1, 1, 1, -1]) == pytest.approx((2 + 2 * 6) / 64)
    assert sign_flip_p([1, -1, 1, -1]) == 1.0


def test_sign_flip_p_equals_brute_force_over_all_assignments():
    d = np.random.default_rng(3).normal(0.4, 1.0, 9)
    observed = abs(d.sum())
    brute = sum(abs(sum(s * x for s, x in zip(signs, d))) >= observed - 1e-12
                for signs in itertools.product((1, -1), repeat=9)) / 2 ** 9
    assert sign_flip_p(d) == pytest.approx(brute)


def test_sign_flip_test_holds_its_level_under_the_null():
    rng = np.random.default_rng(4)
    rejections = sum(sign_flip_p(rng.normal(0, 1, 8)) < 0.05 for _ in range(2000))
    assert rejections / 2000 <= 0.055


def test_smallest_exact_p_and_seeds_needed_for_holm():
    assert min_exact_p(3) == 0.25 and min_exact_p(6) == pytest.approx(0.03125)
    assert seeds_needed(1) == 6  # 2/64 < 0.05
    assert seeds_needed(4) == 8  # 4 x 2/256 = 0.031 < 0.05, 4 x 2/128 = 0.0625 is not
    assert seeds_needed(10) == 9


def test_holm_on_a_known_list_of_p_values():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, 0.06, 0.06 (monotone: max(0.06, 2*0.03)), 0.5
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.2, math.nan, 0.01])[2] == pytest.approx(0.02)
    statsmodels_like = holm([0.001, 0.04, 0.04, 0.3])
    assert statsmodels_like == pytest.approx([0.004, 0.12, 0.12, 0.3])


def test_paired_log_ratio_on_constructed_pairs():
    control = np.array([20.0, 25.0, 30.0, 22.0, 28.0, 24.0])
    effect = paired_log_ratio(control * 2.0, control)
    assert effect.ratio == pytest.approx(2.0) and effect.low == pytest.approx(2.0) and effect.high == pytest.approx(2.0)
    assert effect.n == 6 and effect.n_in_direction == 6 and effect.p == pytest.approx(2 / 64) and effect.direction == 1
    factors = np.array([1.5, 1.2, 1.4, 0.9, 1.3, 1.6])
    effect = paired_log_ratio(control * factors, control)
    logs = np.log(factors)
    half = 2.570582 * logs.std(ddof=1) / math.sqrt(6)  # t_{0.975, 5}
    assert effect.ratio == pytest.approx(math.exp(logs.mean()))
    assert (effect.low, effect.high) == pytest.approx((math.exp(logs.mean() - half), math.exp(logs.mean() + half)))
    assert effect.n_in_direction == 5


def test_paired_difference_counts_direction_and_tests_exactly():
    effect = paired_difference([5, 6, 7, 8], [1, 1, 1, 1])
    assert effect.difference.mean == 5.5 and effect.p == pytest.approx(2 / 16) and effect.n_in_direction == 4


@pytest.mark.parametrize("x,n", [(0, 6), (1, 6), (3, 8), (8, 8), (2, 30)])
def test_clopper_pearson_equals_scipy_binomtest(x, n):
    from scipy.stats import binomtest

    expected = binomtest(x, n).proportion_ci(method="exact")
    assert clopper_pearson(x, n) == pytest.approx((expected.low, expected.high))


def test_variance_split_recovers_known_components():
    rng = np.random.default_rng(5)
    seeds, draws = 400, 3
    seed_effects = rng.normal(0, 3.0, (seeds, 1))  # sigma_seed^2 = 9
    scores = 30 + seed_effects + rng.normal(0, 1.0, (seeds, draws))  # sigma_draw^2 = 1
    split = one_way_variance(scores)
    assert split.seed_variance == pytest.approx(9.0, rel=0.15)
    assert split.draw_variance == pytest.approx(1.0, rel=0.1)
    assert split.seed_share == pytest.approx(0.9, abs=0.03)


def test_variance_split_of_draws_alone_gives_no_seed_variance():
    # identical seeds, the rows differ only by draw noise: the seed component is estimated near 0 (truncated)
    scores = np.array([[1.0, 2.0, 3.0], [2.0, 3.0, 1.0], [3.0, 1.0, 2.0]])
    split = one_way_variance(scores)
    assert split.seed_variance == 0.0 and split.draw_variance == pytest.approx(1.0)
