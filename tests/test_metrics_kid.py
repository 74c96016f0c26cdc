"""KID against a brute-force double loop, torch-fidelity's subset protocol and closed forms."""
import importlib

import numpy as np
import pytest

from gan.metrics.kid import kid

kid_module = importlib.import_module("gan.metrics.kid")  # gan.metrics.kid the attribute is the function


def brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD² with k(a, b) = (a·b/d + 1)³, one pair at a time."""
    m, d = len(x), x.shape[1]

    def k(a, b):
        return (sum(a[t] * b[t] for t in range(d)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def torch_fidelity_subsets(n_real: int, n_fake: int, size: int, subsets: int, seed: int):
    """torch-fidelity's kid_features_to_metric draws: RandomState(seed), real then fake, per subset."""
    rng = np.random.RandomState(seed)
    return [(rng.choice(n_real, size, replace=False), rng.choice(n_fake, size, replace=False)) for _ in range(subsets)]


@pytest.fixture
def features():
    rng = np.random.default_rng(0)
    return rng.normal(size=(9, 3)), rng.normal(0.5, 1.2, size=(11, 3))


def test_whole_sets_equal_the_brute_force_double_loop(features):
    real, fake = features[0][:7], features[1][:7]
    result = kid(real, fake, subsets=3, subset_size=7)
    assert result.mean == pytest.approx(brute_force_mmd2(real, fake), rel=1e-12)
    assert result.std == pytest.approx(0.0, abs=1e-12) and result.subset_size == 7  # every subset is the whole set


@pytest.mark.parametrize("full_kernel_max", [4000, 0])  # the full-kernel path and the per-subset path
def test_subsets_are_torch_fidelitys_and_each_equals_the_brute_force(features, monkeypatch, full_kernel_max):
    monkeypatch.setattr(kid_module, "FULL_KERNEL_MAX", full_kernel_max)
    real, fake = features
    expected = np.array([brute_force_mmd2(real[i], fake[j]) for i, j in torch_fidelity_subsets(9, 11, 5, 6, seed=3)])
    result = kid(real, fake, subsets=6, subset_size=5, seed=3)
    assert result.mean == pytest.approx(expected.mean(), rel=1e-12)
    assert result.std == pytest.approx(expected.std(ddof=0), rel=1e-9) and result.std > 0


def test_subset_size_is_capped_by_the_smaller_set(features):
    real, fake = features
    assert kid(real, fake, subset_size=1000).subset_size == 9


def test_point_masses_give_the_kernel_closed_form():
    # X all at a, Y all at b (d = 1): MMD² = k(a, a) + k(b, b) − 2 k(a, b) exactly, even unbiased
    a, b = 0.7, -0.4
    expected = (a * a + 1) ** 3 + (b * b + 1) ** 3 - 2 * (a * b + 1) ** 3
    assert kid(np.full((20, 1), a), np.full((30, 1), b), subsets=4, subset_size=10).mean == pytest.approx(expected)


def test_population_mmd_of_two_uniforms_matches_the_moment_closed_form():
    # d = 1: (xy + 1)³ = x³y³ + 3x²y² + 3xy + 1, so MMD² = (E x³ − E y³)² + 3(E x² − E y²)² + 3(E x − E y)²
    def moments(low, high):
        return [(high ** (k + 1) - low ** (k + 1)) / ((k + 1) * (high - low)) for k in (1, 2, 3)]

    (p1, p2, p3), (q1, q2, q3) = moments(0.0, 1.0), moments(0.3, 1.5)
    expected = (p3 - q3) ** 2 + 3 * (p2 - q2) ** 2 + 3 * (p1 - q1) ** 2
    rng = np.random.default_rng(2)
    result = kid(rng.uniform(0.0, 1.0, (3000, 1)), rng.uniform(0.3, 1.5, (3000, 1)), subsets=30)
    assert result.mean == pytest.approx(expected, rel=0.03)


def test_same_distribution_is_zero_in_expectation_and_can_be_negative():
    rng = np.random.default_rng(4)
    values = np.array([kid(rng.normal(size=(40, 4)), rng.normal(size=(40, 4)), subsets=1).mean for _ in range(300)])
    assert (values < 0).any()
    # unbiased: the mean over independent replicates is within 3 standard errors of 0
    assert abs(values.mean()) < 3 * values.std(ddof=1) / np.sqrt(len(values))
