"""Confidence intervals against textbook values and their coverage on simulated data."""
import math

import numpy as np
import pytest

from reports.stats import bootstrap_interval, t_interval


def test_t_interval_of_1_2_3_uses_t_with_two_degrees_of_freedom():
    # mean 2, s = 1, n = 3; t_{0.975, 2} = 4.302653 (tables)
    interval = t_interval([1.0, 2.0, 3.0])
    assert interval.mean == 2.0 and interval.n == 3
    assert interval.low == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-5)
    assert interval.high == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-5)


def test_constant_values_give_a_zero_width_interval_and_one_value_gives_none():
    for method in (t_interval, bootstrap_interval):
        interval = method([4.0, 4.0, 4.0, 4.0])
        assert (interval.low, interval.mean, interval.high) == (4.0, 4.0, 4.0)
        single = method([5.0, float("nan")])
        assert single.mean == 5.0 and single.n == 1 and math.isnan(single.low) and not single.excludes_zero


def test_bootstrap_interval_approaches_the_normal_interval_for_many_values():
    x = np.random.default_rng(1).normal(10.0, 2.0, size=400)
    interval = bootstrap_interval(x)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert interval.low == pytest.approx(x.mean() - half, abs=0.05 * half)
    assert interval.high == pytest.approx(x.mean() + half, abs=0.05 * half)


@pytest.mark.parametrize("method,n,low,high", [(t_interval, 5, 0.93, 0.97), (bootstrap_interval, 30, 0.91, 0.97)])
def test_intervals_cover_the_true_mean_at_about_their_nominal_level(method, n, low, high):
    rng = np.random.default_rng(2)
    hits = 0
    trials = 1000
    for _ in range(trials):
        sample = rng.normal(3.0, 1.0, size=n)
        interval = method(sample, resamples=1000) if method is bootstrap_interval else method(sample)
        hits += interval.low <= 3.0 <= interval.high
    assert low <= hits / trials <= high


def test_excludes_zero_only_when_the_whole_interval_is_on_one_side():
    assert t_interval([1.0, 1.1, 0.9, 1.05]).excludes_zero
    assert not t_interval([1.0, -1.0, 0.5, -0.4]).excludes_zero
    assert bootstrap_interval([-2.0, -2.5, -1.9]).excludes_zero
