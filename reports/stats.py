"""Confidence intervals for comparisons across seeds. Pure functions on arrays; no MLflow, no pandas.

- `t_interval`: mean ± t_{1−α/2, n−1} · s/√n, the interval of a mean over seeds (normal errors assumed).
  With 3 seeds t = 4.30, so the interval is wide: that is what three seeds can tell.
- `bootstrap_interval`: the percentile bootstrap of the mean: resample the n values with replacement,
  take the mean of each resample, report the α/2 and 1 − α/2 quantiles. Used for seed-paired differences
  (treated − control of the same seed). With few values it is narrower than the t-interval and covers
  the true mean less often than its nominal level; `n` is always reported beside it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # fixed, so a report is reproducible


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.n > 1 and (self.low > 0 or self.high < 0)


def _finite(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan


def t_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Student-t interval of the mean of the finite `values`; NaN bounds for fewer than 2 values."""
    from scipy.stats import t

    x = _finite(values)
    n, mean = len(x), _mean(x)
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = float(t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def bootstrap_interval(values, confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> Interval:
    """Percentile-bootstrap interval of the mean of the finite `values`; NaN bounds for fewer than 2 values."""
    x = _finite(values)
    n, mean = len(x), _mean(x)
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    low, high = np.quantile(means, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return Interval(mean, float(low), float(high), n)
