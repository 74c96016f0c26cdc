"""Statistics for studies with few seeds. Pure functions on arrays; no MLflow, no pandas.

What a study of GAN trials can support is set by its number of seeds n, so every function here is exact or
calibrated at small n (REFERENCE.md, "Statistics for studies with few seeds"):

- `t_interval`: mean ± t_{1−α/2, n−1} · s/√n, the interval of a mean over seeds (normal errors assumed;
  95% coverage at any n ≥ 2 on normal data). With 3 seeds t = 4.30: wide, which is what three seeds can tell.
- `positive_interval`: for a positive metric (FID): the geometric mean with the t-interval of log values,
  exponentiated, so the interval stays above 0 and fits FID's spread, which grows with its level.
- `bounded_interval`: for a metric in [low, high] (classes covered, coverage): the t-interval on the logit
  of the rescaled values, mapped back, so it stays in the domain.
- `sign_flip_p`: the exact two-sided sign-flip (permutation) test of paired differences: under H0 each
  difference is symmetric about 0, so all 2^n sign assignments are equally likely; p is the share of them
  whose |sum| is at least the observed one. Its smallest value is 2/2^n (`min_exact_p`): 0.25 at n = 3,
  0.031 at n = 6. No normality assumed.
- `paired_log_ratio`: the primary comparison of two configurations: per seed log(treated) − log(control);
  the ratio exp(mean), its paired t-interval, the exact sign-flip p of the same differences, and how many
  seeds point the effect's way.
- `holm`: Holm's step-down adjustment of a family of p-values (family-wise error ≤ α).
- `clopper_pearson`: the exact binomial interval of a failure rate.
- `one_way_variance`: a one-way random-effects split of a score's variance into training seed and
  evaluation draw.

The percentile bootstrap is not offered: below about 20 values it covers far less than its nominal level
(75% at n = 3, 84% at n = 5).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
ALPHA = 0.05
EXACT_MAX_PAIRS = 16  # up to 2^16 sign assignments enumerated; above, a Monte Carlo estimate
MONTE_CARLO_FLIPS = 100_000
MONTE_CARLO_SEED = 0  # fixed, so a report is reproducible
LOGIT_MARGIN = 0.005  # values at a bound are pulled in by this share of the range before the logit


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


def t_quantile(n: int, confidence: float = CONFIDENCE) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def t_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Student-t interval of the mean of the finite `values`; NaN bounds for fewer than 2 values."""
    x = _finite(values)
    n, mean = len(x), _mean(x)
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = t_quantile(n, confidence) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def positive_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Geometric mean of positive `values` and exp of the t-interval of their logs (non-positive values dropped)."""
    x = _finite(values)
    x = x[x > 0]
    logs = t_interval(np.log(x), confidence)
    return Interval(math.exp(logs.mean) if logs.n else math.nan, math.exp(logs.low) if logs.n > 1 else math.nan,
                    math.exp(logs.high) if logs.n > 1 else math.nan, logs.n)


def bounded_interval(values, low: float, high: float, confidence: float = CONFIDENCE) -> Interval:
    """Mean of `values` in [low, high] with a t-interval on the logit scale, mapped back into (low, high).

    Values at a bound are pulled LOGIT_MARGIN of the range inside it (the logit of a bound is infinite);
    when every value is the same the interval is that value.
    """
    x = _finite(values)
    n, mean = len(x), _mean(x)
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    if np.all(x == x[0]):
        return Interval(mean, float(x[0]), float(x[0]), n)
    span = high - low
    share = np.clip((x - low) / span, LOGIT_MARGIN, 1 - LOGIT_MARGIN)
    logits = t_interval(np.log(share / (1 - share)), confidence)

    def back(logit: float) -> float:
        return low + span / (1 + math.exp(-logit))

    return Interval(mean, back(logits.low), back(logits.high), n)


def min_exact_p(n: int) -> float:
    """The smallest two-sided p the sign-flip test can give with n pairs: every pair on one side."""
    return 2.0 / 2 ** n if n > 0 else 1.0


def seeds_needed(comparisons: int, alpha: float = ALPHA) -> int:
    """The fewest seed pairs with which Holm across `comparisons` tests can reach alpha: 2/2^n < alpha/m."""
    n = 1
    while min_exact_p(n) * max(comparisons, 1) >= alpha:
        n += 1
    return n


def sign_flip_p(differences) -> float:
    """Exact two-sided sign-flip p of the mean of paired `differences` (Monte Carlo above EXACT_MAX_PAIRS).

    p = #{s in {−1, +1}^n : |Σ s_i d_i| ≥ |Σ d_i|} / 2^n. Zero differences count as pairs (they do not change
    the sum under any sign). NaN for no pairs.
    """
    d = _finite(differences)
    n = len(d)
    if n == 0:
        return math.nan
    observed = abs(d.sum())
    tolerance = 1e-9 * max(1.0, float(np.abs(d).sum()))  # sums equal up to rounding count as "at least"
    if n <= EXACT_MAX_PAIRS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        sums = np.abs(signs @ d)
        return float(np.mean(sums >= observed - tolerance))
    rng = np.random.default_rng(MONTE_CARLO_SEED)
    signs = rng.choice((1.0, -1.0), size=(MONTE_CARLO_FLIPS, n))
    hits = int(np.sum(np.abs(signs @ d) >= observed - tolerance))
    return (hits + 1) / (MONTE_CARLO_FLIPS + 1)  # the observed assignment counts (Phipson and Smyth 2010)


def holm(p_values) -> list[float]:
    """Holm (1979) adjusted p-values in the order given: sorted p(1) ≤ … ≤ p(m),
    adjusted p(i) = max_{j ≤ i} min(1, (m − j + 1) p(j)). NaN stays NaN and does not count in m."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(len(p), math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    running = 0.0
    for rank, index in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class RatioEffect:
    """treated / control, seed by seed: exp of the mean log ratio, its 95% paired t-interval, the exact p."""

    ratio: float
    low: float
    high: float
    n: int  # seed pairs
    p: float  # exact two-sided sign-flip p of the log ratios
    n_in_direction: int  # pairs whose log ratio has the sign of the mean (for a ratio of 1: pairs != 0)

    @property
    def direction(self) -> int:
        """+1 treated higher, −1 lower, 0 no difference."""
        return 0 if self.ratio == 1 or not math.isfinite(self.ratio) else (1 if self.ratio > 1 else -1)


def _in_direction(d: np.ndarray) -> int:
    mean = d.mean() if len(d) else 0.0
    return int(np.sum(np.sign(d) == np.sign(mean))) if mean != 0 else 0


def paired_log_ratio(treated, control) -> RatioEffect:
    """Seed-paired ratio of positive values: `treated[i]` and `control[i]` share seed i. Pairs with a
    non-finite or non-positive value are dropped."""
    t, c = np.asarray(treated, dtype=np.float64), np.asarray(control, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(c) & (t > 0) & (c > 0)
    d = np.log(t[keep]) - np.log(c[keep])
    interval = t_interval(d)
    return RatioEffect(math.exp(interval.mean) if interval.n else math.nan,
                       math.exp(interval.low) if interval.n > 1 else math.nan,
                       math.exp(interval.high) if interval.n > 1 else math.nan,
                       interval.n, sign_flip_p(d), _in_direction(d))


@dataclass(frozen=True)
class DifferenceEffect:
    """treated − control, seed by seed: mean, paired t-interval, exact sign-flip p, pairs in its direction."""

    difference: Interval
    p: float
    n_in_direction: int

    @property
    def n(self) -> int:
        return self.difference.n


def paired_difference(treated, control) -> DifferenceEffect:
    t, c = np.asarray(treated, dtype=np.float64), np.asarray(control, dtype=np.float64)
    d = (t - c)[np.isfinite(t) & np.isfinite(c)]
    return DifferenceEffect(t_interval(d), sign_flip_p(d), _in_direction(d))


def clopper_pearson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact binomial interval of a proportion x/n: Beta(α/2; x, n − x + 1) to Beta(1 − α/2; x + 1, n − x)."""
    from scipy.stats import beta

    if n == 0:
        return math.nan, math.nan
    alpha = 1 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


@dataclass(frozen=True)
class VarianceSplit:
    """A one-way random-effects split of a score's variance: groups = training seeds, replicates = draws."""

    seeds: int
    draws: int  # evaluation draws per seed (balanced design)
    seed_variance: float  # σ²_seed = max(0, (MS_between − MS_within) / draws)
    draw_variance: float  # σ²_draw = MS_within
    grand_mean: float

    @property
    def seed_share(self) -> float:
        """σ²_seed / (σ²_seed + σ²_draw): the intraclass correlation, the share of variance due to the seed."""
        total = self.seed_variance + self.draw_variance
        return self.seed_variance / total if total > 0 else math.nan


def one_way_variance(scores) -> VarianceSplit:
    """Method-of-moments (ANOVA) estimates from a seeds × draws array (rows with a non-finite value dropped).

    MS_between = r Σ_i (ȳ_i − ȳ)² / (s − 1), MS_within = Σ_ij (y_ij − ȳ_i)² / (s (r − 1));
    E[MS_between] = σ²_draw + r σ²_seed and E[MS_within] = σ²_draw.
    """
    y = np.asarray(scores, dtype=np.float64)
    y = y[np.all(np.isfinite(y), axis=1)] if y.ndim == 2 else y.reshape(0, 0)
    seeds, draws = y.shape if y.size else (0, 0)
    if seeds < 2 or draws < 2:
        return VarianceSplit(seeds, draws, math.nan, math.nan, float(y.mean()) if y.size else math.nan)
    seed_means = y.mean(axis=1)
    ms_between = draws * float(np.sum((seed_means - y.mean()) ** 2)) / (seeds - 1)
    ms_within = float(np.sum((y - seed_means[:, None]) ** 2)) / (seeds * (draws - 1))
    return VarianceSplit(seeds, draws, max(0.0, (ms_between - ms_within) / draws), ms_within, float(y.mean()))
